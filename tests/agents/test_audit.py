"""A round's evidence checked against the chain and by running the round again
(``fl-agent evidence check``, :mod:`fl_agent.agents.audit`)."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.agents import RoundOutcome
from fl_agent.agents.audit import (
    Rerun,
    changed_commitments,
    check_against_chain,
    compare_rerun,
    replay_screens,
    rerun_round,
    unjudged,
)
from fl_agent.agents.evidence import RoundEvidence, VerdictRecord, validation_digest
from fl_agent.chain.history import RoundView, Submission
from fl_agent.crypto.envelopes import seal_update
from fl_agent.learning import encode_weights, init_params
from fl_agent.learning.workload import Workload

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52z"


def reversed_update(global_vector, result):
    return global_vector - 3.0 * (np.asarray(result.vector) - global_vector)


def send_junk(world, task_id: int, round_number: int, aggregator_key: bytes, accounts) -> None:
    """Submits weights with a NaN for each of ``accounts`` (members with no agent)."""
    spec = world.document.model
    vector = init_params(spec, 0)
    good = encode_weights(spec, vector)
    bad = good.replace(np.float32(vector[0]).tobytes(), np.float32(np.nan).tobytes(), 1)
    for account in accounts:
        sealed = seal_update(bad, aggregator_key, task_id, round_number, account.address)
        world.fairfl.ledger.submit_update(task_id, round_number, world.store.add(sealed), 10,
                                          5, sender=account)


def test_a_finalized_round_and_a_closed_one_check_out_and_a_forged_verdict_does_not(world):
    task_id = world.create_task(rounds=1, min_participants=2)
    people = [world.participant(task_id, i, update_hook=reversed_update if i == 3 else None)
              for i in range(4)]
    junk = world.bare_members(task_id, world.accounts[6:7])
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    for person in people:
        person.step()
    send_junk(world, task_id, 1, workload.aggregator_key, junk)
    outcome = aggregator.step()
    assert isinstance(outcome, RoundOutcome)
    # One rejection by the rule (the reversed update), one for unreadable weights.
    assert set(outcome.rejected) == {people[3].address, junk[0].address}
    evidence = RoundEvidence.from_json(world.store.get(outcome.evidence_cid))
    assert evidence.format == "fairfl-round-evidence/5"
    assert evidence.validation_sha256 == validation_digest(world.splits.validation.X,
                                                           world.splits.validation.y)
    assert evidence.rule["name"] == "fairfl"
    assert evidence.rule["options"]["trigger_share"] == 0.2
    # ... committed to when the round opened, before any update existed
    assert workload.validation_sha256 == evidence.validation_sha256

    anyone = world.cli("evidence", "check", "--task", str(task_id), "--round", "1")
    assert anyone.exit_code == 0, anyone.output
    assert "the evidence is the chain's record" in anyone.output
    assert "the rule's 4 verdicts follow from the figures" in anyone.output
    # ... and an aggregator that calls an update noise while its own figures show it agrees
    # with another beyond chance is caught, by anyone.
    figures = evidence.rule_figures
    assert replay_screens(evidence) == ([], 4)
    reversed_at = next(i for i, v in enumerate(evidence.verdicts) if v.reason == "noise")
    row = figures["candidates"].index(reversed_at)
    similarity = [list(r) for r in figures["similarity"]]
    other = (row + 1) % len(similarity)
    similarity[row][other] = similarity[other][row] = 0.9
    lied = evidence.model_copy(update={"rule_figures": {**figures, "similarity": similarity}})
    problems, _ = replay_screens(lied)
    assert any(p.startswith(f"{people[3].address}: the figures say ")
               and p.endswith("the evidence says noise") for p in problems), problems
    again = world.cli("evidence", "check", "--task", str(task_id), "--round", "1",
                "--validation", "digits", "--seed", "0", "--account", "TEST::1")
    assert again.exit_code == 0, again.output
    assert "decides the same" in again.output
    other = world.cli("evidence", "check", "--task", str(task_id), "--round", "1",
                "--validation", "digits", "--seed", "1", "--account", "TEST::1")
    assert other.exit_code == 1, other.output
    assert "not what the round committed to" in other.output
    assert ": score " in other.output  # and the scores on other data differ
    no_key = world.cli("evidence", "check", "--task", str(task_id), "--round", "1",
                 "--validation", "digits")
    assert no_key.exit_code == 2 and "--account" in no_key.output

    # An aggregator that turned an honest member away, and said so in its evidence: the
    # rerun accepts the member.
    rerun = rerun_round(world.aggregator_agent(task_id), evidence)
    assert compare_rerun(evidence, rerun) == []
    honest = next(i for i, v in enumerate(evidence.verdicts) if v.accepted)
    records = list(evidence.verdicts)
    records[honest] = records[honest].model_copy(update={
        "accepted": False, "reason": "validation", "code": 9, "share_ppm": 0})
    forged = evidence.model_copy(update={"verdicts": tuple(records)})
    problems = compare_rerun(forged, rerun)
    assert problems == [f"{records[honest].participant}: rejected in the evidence, accepted "
                        "(None) on rerun"]

    # A round closed short of its quorum: its rejections check out too, by both means.
    short = world.create_task(rounds=1, min_participants=3)
    person = world.participant(short, 0)
    sybils = world.bare_members(short, world.accounts[7:9])
    aggregator = world.aggregator_agent(short)
    _, _, workload = aggregator.step()
    person.step()
    send_junk(world, short, 1, workload.aggregator_key, sybils)
    assert not isinstance(aggregator.step(), RoundOutcome)  # closed short
    closed = world.cli("evidence", "check", "--task", str(short), "--round", "1",
                 "--validation", "digits", "--seed", "0", "--account", "TEST::1")
    assert closed.exit_code == 0, closed.output
    assert "(none: closed short)" in closed.output


# -- pure checks ------------------------------------------------------------------------


def _view(**changes) -> RoundView:
    view = RoundView(1, 2, 10, "0xa", "bafy-global", "bafy-work", 40, submissions=[
        Submission("0xAa", "bafy-u1", 100, 5, 11, "0xb"),
        Submission("0xBb", "bafy-u2", 200, 5, 12, "0xc"),
        Submission("0xCc", "bafy-u3", 300, 5, 13, "0xd")],
        finalized_block=20, finalize_tx="0xe", new_model_cid="bafy-new",
        contributors=["0xAa", "0xBb"], scores_ppm=[400_000, 600_000],
        model_hash="0x" + "ab" * 32, rejected=["0xCc"], reasons=[9], evidence_cid="bafy-ev")
    for name, value in changes.items():
        setattr(view, name, value)
    return view


def _evidence(**changes) -> RoundEvidence:
    verdicts = (
        VerdictRecord(participant="0xaa", update="bafy-u1", samples=100, training_millis=5,
                      accepted=True, share_ppm=400_000),
        VerdictRecord(participant="0xbb", update="bafy-u2", samples=200, training_millis=5,
                      accepted=True, share_ppm=600_000),
        VerdictRecord(participant="0xcc", update="bafy-u3", samples=300, training_millis=5,
                      accepted=False, reason="validation", code=9))
    fields = {"task": 1, "round": 2, "global_model": "bafy-global", "new_model": "bafy-new",
              "strategy": "FairFL", "metric": "accuracy", "new_model_sha256": "ab" * 32,
              "validation": 0.9, "verdicts": verdicts, "validation_sha256": "cd" * 32}
    return RoundEvidence(**{**fields, **changes})


def _replace(index: int, **changes) -> tuple[VerdictRecord, ...]:
    records = list(_evidence().verdicts)
    records[index] = records[index].model_copy(update=changes)
    return tuple(records)


WORKLOAD = Workload(2, 16, {}, 5, aggregator_key=b"k" * 32, validation_sha256="cd" * 32)


def test_the_faithful_record_passes_the_chain_check():
    assert check_against_chain(_evidence(), _view(), 2, WORKLOAD) == []
    # A submission mined after the aggregator read the round is not judged, and said so.
    late = Submission("0xDd", "bafy-u4", 50, 5, 14, "0xf")
    view = _view(submissions=[*_view().submissions, late])
    assert check_against_chain(_evidence(), view, 2, WORKLOAD) == []
    assert unjudged(_evidence(), view) == [late]
    assert unjudged(_evidence(), _view()) == []


def test_a_commitment_changed_during_the_task_is_named():
    again = Workload(3, 16, {}, 5, aggregator_key=b"k" * 32, validation_sha256="cd" * 32)
    other = Workload(4, 16, {}, 5, aggregator_key=b"k" * 32, validation_sha256="ee" * 32)
    successor = Workload(5, 16, {}, 5, aggregator_key=b"n" * 32, validation_sha256="ff" * 32)
    assert changed_commitments([WORKLOAD, again]) == []
    assert changed_commitments([WORKLOAD, again, other, successor]) == [
        "round 4: the aggregator's validation commitment changed since round 3"]


@pytest.mark.parametrize(("evidence", "view", "expected"), [
    (_evidence(verdicts=_replace(1, share_ppm=700_000)), _view(), "contributors"),
    (_evidence(verdicts=_replace(2, code=4, reason="noise")), _view(), "rejections"),
    (_evidence(verdicts=_replace(2, code=4)), _view(), "reason 'validation' has code 9"),
    (_evidence(verdicts=_replace(0, update="bafy-other")), _view(), "submissions"),
    (_evidence(verdicts=_replace(1, samples=2_000)), _view(), "submissions"),
    (_evidence(verdicts=_evidence().verdicts[::-1]), _view(), "submissions"),
    (_evidence(new_model_sha256="ef" * 32), _view(), "new model hash"),
    (_evidence(new_model="bafy-else"), _view(), "finalized with bafy-new"),
    (_evidence(global_model="bafy-old"), _view(), "the round started on bafy-global"),
    (_evidence(round=3), _view(), "not task 1 round 2"),
    (_evidence(), _view(finalized_block=None, closed_block=20), "closed without a model"),
    (_evidence(), _view(finalized_block=None), "still open"),
    # closed short, though two accepted updates make the quorum of 2
    (_evidence(new_model="", verdicts=_replace(0, share_ppm=0)[:1] + _replace(1, share_ppm=0)[1:]),
     _view(finalized_block=None, closed_block=20), "could have been finalized"),
    (_evidence(validation_sha256="00" * 32), _view(), "not the one the round opened with"),
    (_evidence(verdicts=_evidence().verdicts[:2] + _evidence().verdicts[:1]), _view(),
     "submissions"),
])
def test_each_disagreement_with_the_chain_is_named(evidence, view, expected):
    problems = check_against_chain(evidence, view, 2, WORKLOAD)
    assert len(problems) >= 1 and any(expected in p for p in problems), problems


def _rerun(**changes) -> Rerun:
    verdicts = tuple({"participant": v.participant, "accepted": v.accepted,
                      "reason": v.reason, "code": v.code, "share_ppm": v.share_ppm,
                      "score": v.score, "cosine": None, "norm_ratio": None, "alone": None}
                     for v in _evidence().verdicts)
    fields = {"validation_sha256": "cd" * 32, "verdicts": verdicts,
              "model_sha256": "ab" * 32, "validation": 0.9, "cosines": True,
              "rule": {"name": "fairfl", "options": {"min_samples": 3}}}
    return Rerun(**{**fields, **changes})


def test_a_rerun_that_agrees_has_nothing_to_say_and_each_difference_is_named():
    assert compare_rerun(_evidence(), _rerun()) == []
    shares = list(_rerun().verdicts)
    shares[0] = {**shares[0], "share_ppm": 300_000}
    reason = list(_rerun().verdicts)
    reason[2] = {**reason[2], "reason": "noise", "code": 4}
    cases = {
        "not what the round committed to": _rerun(validation_sha256="00" * 32),
        "share 400000 ppm in the evidence, 300000 on rerun": _rerun(verdicts=tuple(shares)),
        "reason 'validation' in the evidence, 'noise' on rerun": _rerun(
            verdicts=tuple(reason)),
        "new model's hash on rerun": _rerun(model_sha256="ef" * 32),
        "validation accuracy is 0.8": _rerun(validation=0.8),
        "1 updates rerun, 3 in the evidence": _rerun(verdicts=_rerun().verdicts[:1]),
    }
    figured = _evidence(verdicts=_replace(0, cosine=0.5, norm_ratio=1.0, alone=0.8),
                        rule={"name": "fairfl", "options": {"min_samples": 3}})
    same = list(_rerun().verdicts)
    same[0] = {**same[0], "cosine": 0.5, "norm_ratio": 1.0, "alone": 0.8}
    assert compare_rerun(figured, _rerun(verdicts=tuple(same))) == []
    for name in ("cosine", "norm_ratio", "alone"):
        moved = list(same)
        moved[0] = {**same[0], name: same[0][name] * 1.001}
        problems = compare_rerun(figured, _rerun(verdicts=tuple(moved)))
        assert problems == [f"0xaa: {name} {same[0][name]} in the evidence, "
                            f"{same[0][name] * 1.001} on rerun"], problems
    noisy = list(same)
    noisy[0] = {**same[0], "cosine": 0.1}  # under participant-level DP: not compared
    assert compare_rerun(figured, _rerun(verdicts=tuple(noisy), cosines=False)) == []
    assert any("the task's is" in p for p in compare_rerun(
        figured, _rerun(verdicts=tuple(same), rule={"name": "fairfl", "options": {}})))
    nudged = list(_rerun().verdicts)
    nudged[0] = {**nudged[0], "share_ppm": 400_002}  # rounding on another machine
    assert compare_rerun(_evidence(), _rerun(verdicts=tuple(nudged))) == []
    for expected, rerun in cases.items():
        problems = compare_rerun(_evidence(), rerun)
        assert any(expected in p for p in problems), (expected, problems)
    old = _evidence(validation_sha256="", format="fairfl-round-evidence/2")
    assert any("no validation commitment" in p for p in compare_rerun(old, _rerun()))
    # A rerun under participant-level DP compares no model hash or validation.
    assert compare_rerun(_evidence(), _rerun(model_sha256=None, validation=None)) == []


def _fairfl_round(seed: int, input_layer=None, updates=None, **options) -> RoundEvidence:
    """FairFL's own decision on a synthetic linear-regression round (honest updates toward
    the true weights, free riders, a scaled update, noise and reversed updates), as the
    aggregator would record it: after an unreadable update at position 0, through JSON.
    ``updates``: another round, decided the same way."""
    from fl_agent.aggregation.fairfl import FairFL

    rng = np.random.default_rng(seed)
    d, m = 64, 200
    X = rng.normal(size=(m, d))
    truth = rng.normal(size=d)
    y = X @ truth + 0.1 * rng.normal(size=m)
    g = np.zeros(d)
    honest = [g + 0.3 * (truth + 0.5 * rng.normal(size=d)) for _ in range(10)]
    chosen = updates
    updates = [*honest, g.copy(), g + 1e-9, g + 30 * (truth + 0.5 * rng.normal(size=d)),
               g + rng.normal(size=d), g + rng.normal(size=d), g - 0.3 * truth, g - 0.3 * truth]
    if chosen is not None:  # the caller's round instead
        updates = list(chosen)
    elif input_layer is not None:  # a "trigger": one input feature's column pushed hard
        updates.append(g + 0.3 * truth + 1.5 * (np.arange(d) % 8 == 0))
    return _decided(FairFL(input_layer=input_layer, **options), g, updates,
                    lambda w: -(X @ w - y) ** 2)


def _decided(rule, g, updates, evaluate) -> RoundEvidence:
    """``rule``'s decision on ``updates`` (50 samples each) as the aggregator would record
    it: after an unreadable update at position 0, through JSON."""
    from fl_agent.agents.evidence import renumbered, rule_parameters

    result = rule.aggregate(g, np.stack(updates), np.full(len(updates), 50.0),
                            evaluate=evaluate)
    unreadable = VerdictRecord(participant="0xff", update="bafy-x", samples=50,
                               training_millis=1, accepted=False,
                               reason="invalid_update: not a safetensors document", code=1)
    verdicts = (unreadable, *(VerdictRecord(
        participant=f"0x{i:02x}", update=f"bafy-{i}", samples=50, training_millis=1,
        accepted=i in result.accepted,
        reason=None if i in result.accepted else str(result.reasons[i]))
        for i in range(len(updates))))
    evidence = _evidence(verdicts=verdicts, rule=rule_parameters(rule), rule_figures=renumbered(
        result.figures, list(range(1, len(updates) + 1))))
    return RoundEvidence.from_json(evidence.to_json())


@pytest.mark.parametrize(("seed", "layer"), [(0, None), (1, None), (2, None), (0, (0, 8, 8))])
def test_fairfls_own_verdicts_are_what_its_figures_give(seed, layer):
    evidence = _fairfl_round(seed, layer)
    reasons = {v.reason for v in evidence.verdicts}
    assert {"free_rider", "norm_outlier", None} <= reasons, reasons
    assert layer is None or "trigger" in reasons, reasons
    assert replay_screens(evidence, evidence.rule, 64) == ([], len(evidence.verdicts) - 1)


def test_a_rule_without_length_outliers_is_replayed_as_such():
    """``max_norm_ratio`` None (a DP task's): the scaled update is no norm outlier, the
    replay agrees, and a norm-outlier verdict the rule could not give is named."""
    evidence = _fairfl_round(0, max_norm_ratio=None)
    assert "norm_outlier" not in {v.reason for v in evidence.verdicts}
    assert evidence.rule["options"]["max_norm_ratio"] is None
    assert replay_screens(evidence, evidence.rule, 64) == ([], len(evidence.verdicts) - 1)
    screened = _fairfl_round(0)
    at = next(i for i, v in enumerate(screened.verdicts) if v.reason == "norm_outlier")
    records = list(evidence.verdicts)
    records[at] = records[at].model_copy(update={"accepted": False, "reason": "norm_outlier",
                                                 "share_ppm": 0})
    forged = evidence.model_copy(update={"verdicts": tuple(records)})
    assert any(p.endswith("the evidence says norm_outlier") for p in _problems(forged)), \
        _problems(forged)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_round_that_counts_copies_once_is_replayed_with_one_vote_per_copy(seed):
    """The round holds two identical reversed updates: under ``copies_once`` one of them
    stands for both in the similarity test, and the replay finds the same from the recorded
    cosines; a forged list of who stood for the round is named."""
    evidence = _fairfl_round(seed, copies_once=True)
    figures = evidence.rule_figures
    twins = [16, 17]  # the last two updates, renumbered after the unreadable one
    assert set(twins) <= set(figures["pool"])
    assert figures["voters"] == [i for i in figures["pool"] if i != 17]
    assert replay_screens(evidence, evidence.rule, 64) == ([], len(evidence.verdicts) - 1)
    forged = _with(evidence, voters=figures["pool"])
    assert any("to stand for the round" in p for p in _problems(forged, rule=evidence.rule,
                                                                   dimension=64))


def test_the_replay_gives_copies_one_vote_in_the_similarity_test():
    """Eight exact copies among 15 updates: counted once they are the similarity test's
    outliers, counted eight times the honest updates would be. The replay agrees with the
    aggregator under the rule the evidence names, and a replay under the other rule names
    every verdict that changes."""
    e, w = np.eye(64)[0], np.eye(64)[1]
    rng = np.random.default_rng(0)
    updates = [0.6 * e + 0.8 * w + 0.01 * rng.normal(size=64) for _ in range(7)] + [e] * 8
    evidence = _fairfl_round(0, updates=updates, copies_once=True)
    assert [v.reason for v in evidence.verdicts[8:]] == ["dissimilar"] * 8
    assert replay_screens(evidence, evidence.rule, 64) == ([], len(evidence.verdicts) - 1)
    every_copy = {**evidence.rule, "options": {**evidence.rule["options"],
                                               "copies_once": False}}
    problems = _problems(evidence, rule=every_copy, dimension=64)
    assert any(p.startswith("the evidence names the rule") for p in problems)
    assert sum(p.endswith("the evidence says dissimilar") for p in problems) == 8, problems


def _a_round_that_holds_back() -> RoundEvidence:
    """A converged linear-regression round (noisy labels) with ten honest updates and two
    identical small updates that point nowhere in particular: the gate turns the two away
    for lack of slack, and their cost is within the full tolerance, so they are held back."""
    from fl_agent.aggregation.fairfl import FairFL

    rng = np.random.default_rng(2)
    d, m = 64, 200
    X = rng.normal(size=(m, d))
    truth = rng.normal(size=d)
    y = X @ truth + 2.0 * rng.normal(size=m)
    g = truth + 0.05 * rng.normal(size=d)
    honest = [g + 0.2 * (truth - g) + 0.01 * rng.normal(size=d) for _ in range(10)]
    odd = g + 0.005 * rng.normal(size=d)
    return _decided(FairFL(held_back=True, similarity_z=100.0), g, [*honest, odd, odd],
                    lambda w: -(X @ w - y) ** 2)


def test_a_round_that_holds_back_is_replayed_and_a_forged_hold_back_is_named():
    evidence = _a_round_that_holds_back()
    assert [v.reason for v in evidence.verdicts[11:]] == ["held_back"] * 2
    rows = evidence.rule_figures["held_back"]
    assert [row[0] for row in rows] == [11, 12] and all(row[2] >= 0 for row in rows)
    assert replay_screens(evidence, evidence.rule, 64) == ([], len(evidence.verdicts) - 1)
    # A margin recorded as failing: the figures say validation.
    failing = _with(evidence, held_back=[[i, slack, -1.0] for i, slack, _ in rows])
    assert any(p.endswith("the figures say validation, the evidence says held_back")
               for p in _problems(failing, rule=evidence.rule, dimension=64))
    # The boundary: a margin of exactly 0 is within the tolerance (held back), as FairFL
    # decides it; one a hair below is not.
    at_zero = _with(evidence, held_back=[[i, slack, 0.0] for i, slack, _ in rows])
    assert replay_screens(at_zero, evidence.rule, 64) == ([], len(evidence.verdicts) - 1)
    below = _with(evidence, held_back=[[i, slack, -1e-12] for i, slack, _ in rows])
    assert any(p.endswith("the figures say validation, the evidence says held_back")
               for p in _problems(below, rule=evidence.rule, dimension=64))
    # A slack the similarities do not give (the full one: nothing to hold back).
    full = _with(evidence, held_back=[[i, 2.0, margin] for i, _, margin in rows])
    assert any("the similarities give a slack of" in p
               for p in _problems(full, rule=evidence.rule, dimension=64))
    # Untested: turned away with less than the full slack, and no row.
    untested = _with(evidence, held_back=[])
    assert any("not tested for holding back" in p
               for p in _problems(untested, rule=evidence.rule, dimension=64))
    # A row for an update the gate let in.
    accepted = next(i for i, v in enumerate(evidence.verdicts) if v.accepted)
    extra = _with(evidence, held_back=[*rows, [accepted, 0.0, 1.0]])
    assert any("the gate did not turn them away" in p
               for p in _problems(extra, rule=evidence.rule, dimension=64))
    # A row whose slack is the full one, as the similarities give it under a rule without
    # the scaling: nothing to hold back, whatever the margin.
    unscaled = {**evidence.rule, "options": {**evidence.rule["options"],
                                             "full_tolerance_at": 0.0}}
    flat = _with(evidence, held_back=[[i, 2.0, margin] for i, _, margin in rows])
    problems = _problems(flat, rule=unscaled, dimension=64)
    assert not any("the similarities give a slack of" in p for p in problems), problems
    assert sum(p.endswith("the figures say validation, the evidence says held_back")
               for p in problems) == 2, problems
    # Under a rule without the option, the same round is two validation rejections.
    without = {**evidence.rule, "options": {**evidence.rule["options"], "held_back": False}}
    problems = _problems(evidence, rule=without, dimension=64)
    assert any("which the task's rule does not do" in p for p in problems)
    assert sum(p.endswith("the figures say validation, the evidence says held_back")
               for p in problems) == 2, problems


def _with(evidence: RoundEvidence, **figures) -> RoundEvidence:
    return evidence.model_copy(update={"rule_figures": {**evidence.rule_figures, **figures}})


def _problems(evidence: RoundEvidence, **kwargs) -> list[str]:
    return replay_screens(evidence, **kwargs)[0]


def test_a_noise_test_over_rounds_is_replayed_only_where_the_rule_runs_it():
    """Sums' cosines (rule R52's ``noise_rounds``) in the evidence of a rule that tests the
    update alone, or of another window, are named and not replayed: forged ones could
    otherwise pass noise as agreement. A rule over two rounds records none in round 1, and
    must from round 2."""
    plain = _fairfl_round(0)
    figures = plain.rule_figures
    noisy = [k for k, i in enumerate(figures["candidates"])
             if plain.verdicts[i].reason == "noise"]
    assert noisy
    forged = np.array(figures["similarity"])
    forged[noisy, :] = forged[:, noisy] = 0.9
    np.fill_diagonal(forged, 1.0)
    problems = _problems(_with(plain, noise={"rounds": 2, "similarity": forged.tolist()}))
    assert any("which the task's rule does not run in round 2" in p for p in problems)
    assert not any("the figures say" in p for p in problems), problems
    two = _fairfl_round(0, noise_rounds=2)  # decided without history: no sums recorded
    assert "noise" not in two.rule_figures
    assert _problems(two.model_copy(update={"round": 1})) == []
    assert any("records no sums' cosines" in p for p in _problems(two))
    other = _with(two, noise={"rounds": 3, "similarity": figures["similarity"]})
    assert any("over 3 rounds, which the task's rule does not run" in p
               for p in _problems(other))


def test_a_verdict_its_figures_do_not_give_is_named():
    evidence = _fairfl_round(0)
    figures = evidence.rule_figures
    accepted = next(i for i, v in enumerate(evidence.verdicts) if v.accepted)
    who = evidence.verdicts[accepted].participant
    norms = list(figures["norms"])
    norms[figures["indices"].index(accepted)] = 0.0  # the figures make it a free rider
    assert f"{who}: the figures say free_rider, the evidence says accepted" \
        in _problems(_with(evidence, norms=norms))
    relabelled = _with(evidence, labels=[label + 1 for label in figures["labels"]])
    assert any("the clusters from the similarities" in p for p in _problems(relabelled))
    # An update left out of the figures, then rejected as if the rule had: named.
    records = list(evidence.verdicts)
    records[accepted] = records[accepted].model_copy(update={
        "accepted": False, "reason": "dissimilar", "share_ppm": 0})
    keep = [k for k, i in enumerate(figures["indices"]) if i != accepted]
    hidden = evidence.model_copy(update={"verdicts": tuple(records), "rule_figures": {
        **figures, "indices": [figures["indices"][k] for k in keep],
        "norms": [figures["norms"][k] for k in keep]}})
    assert any(f"updates [{accepted}] are missing from the rule's figures" in p
               for p in _problems(hidden))
    # A chance level the model's size does not give (every candidate would be "noise").
    assert any("the chance level for 64 parameters" in p
               for p in _problems(_with(evidence, chance=1.0), dimension=64))
    # A trigger screen where the rule has none.
    passed = [i for i in figures["indices"] if evidence.verdicts[i].reason not in
              ("free_rider", "norm_outlier")]
    assert any("trigger screen's figures" in p for p in _problems(_with(
        evidence, trigger={"indices": passed, "excess": [0.9] * len(passed)})))
    # An update the gate's own steps kept, rejected for validation.
    gate = [dict(step) for step in figures["gate"]]
    records = list(evidence.verdicts)
    kept = gate[0]["kept"][0]
    records[kept] = records[kept].model_copy(update={
        "accepted": False, "reason": "validation", "share_ppm": 0})
    assert f"{records[kept].participant}: the figures say accepted, the evidence says " \
        "validation" in _problems(evidence.model_copy(update={"verdicts": tuple(records)}))
    # Malformed figures are a finding, not a crash; so are missing ones and another rule.
    assert "malformed" in _problems(_with(evidence, norms=[1.0]))[0]
    bare = evidence.model_copy(update={"rule_figures": {}})
    assert _problems(bare) == ["the evidence of a FairFL round records no figures"]
    assert replay_screens(bare.model_copy(update={"format": "fairfl-round-evidence/3"})) \
        == ([], 0)
    other = {**evidence.rule, "options": {**evidence.rule["options"], "free_rider_ratio": 0.5}}
    assert any("the task's document makes it" in p
               for p in _problems(evidence.model_copy(update={"rule": other}),
                                  rule=evidence.rule))
    # A rule other than FairFL has no screens to replay.
    assert replay_screens(evidence.model_copy(update={"rule": {"name": "fedavg"}})) == ([], 0)
