"""The sequential test's record in the evidence: folded from earlier rounds
(:mod:`fl_agent.agents.sequential`), checked against them, and replayed by the audit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_agent.agents.audit import replay_screens
from fl_agent.agents.evidence import RoundEvidence, VerdictRecord, renumbered, rule_parameters
from fl_agent.agents.sequential import fold, prior_problems, prior_rows, scores_of
from fl_agent.aggregation.base import prepare_round
from fl_agent.aggregation.fairfl import FairFL

D = 300
SENDERS = [f"0x{i:040x}" for i in range(1, 7)]


def _round(number: int, record: np.ndarray, seed: int = 0) -> RoundEvidence:
    """A DP task's round under the sequential test, as the aggregator records it: six
    noisy helpful updates (after an unreadable one at position 0), judged with the senders'
    ``record``, through JSON."""
    target = np.zeros(D)
    target[0] = 1.0
    scatter = np.random.default_rng(1).normal(0.0, 0.05, (64, D))
    examples = target + scatter - scatter.mean(axis=0)

    def evaluate(v):
        return -np.square(examples - np.asarray(v, dtype=float)).sum(axis=1)

    g = np.zeros(D)
    updates = 0.3 * target + np.random.default_rng(seed).normal(0.0, math.sqrt(1.0 / D), (6, D))
    rule = FairFL(chance_z=math.sqrt(D), similarity_z=100.0, noise_control=True,
                  sequential=True)
    result = rule.aggregate_round(prepare_round(g, updates, np.ones(6), evidence=record),
                                  evaluate)
    verdicts = (VerdictRecord(participant="0x" + "f" * 40, update="bafy-x", samples=1,
                              training_millis=1, accepted=False,
                              reason="invalid_update: not a safetensors document", code=1),
                *(VerdictRecord(participant=SENDERS[i], update=f"bafy-{number}-{i}", samples=1,
                                training_millis=1, accepted=i in result.accepted,
                                reason=None if i in result.accepted else str(result.reasons[i]))
                  for i in range(6)))
    evidence = RoundEvidence(task=1, round=number, global_model="bafy-g", new_model="bafy-n",
                             strategy="FairFL", metric="accuracy", validation=0.5,
                             verdicts=verdicts, rule=rule_parameters(rule),
                             rule_figures=renumbered(result.figures, list(range(1, 7))))
    return RoundEvidence.from_json(evidence.to_json())


def _three_rounds(start: np.ndarray | None = None) -> list[RoundEvidence]:
    """Three rounds, each judged with the record the earlier ones' evidence gives."""
    rounds: list[RoundEvidence] = []
    for number in (1, 2, 3):
        record = prior_rows(fold(rounds), SENDERS)
        if start is not None:
            record = record + start
        rounds.append(_round(number, record, seed=number))
    return rounds


def test_the_record_is_the_earlier_rounds_z_scores_added_up():
    rounds = _three_rounds()
    record = fold(rounds)
    for sender in SENDERS:
        zs = [scores_of(r)[sender] for r in rounds]
        assert record[sender] == (pytest.approx(sum(zs)), 3)
        assert all(z > 0 for z in zs)  # helpful updates beat noise of their size
    assert prior_problems(rounds[2], rounds[:2]) == []
    assert replay_screens(rounds[2], rounds[2].rule, D) == ([], 6)


def test_a_sum_the_earlier_rounds_do_not_give_is_named():
    rounds = _three_rounds()
    figures = rounds[2].rule_figures
    rows = [list(row) for row in figures["sequential"]]
    rows[1][2] -= 5.0  # a sender's earlier sum, lowered
    forged = rounds[2].model_copy(update={"rule_figures": {**figures, "sequential": rows}})
    problems = prior_problems(forged, rounds[:2])
    assert len(problems) == 1 and SENDERS[1] in problems[0], problems
    # ... and with one earlier round left out, every sender's count is off
    assert len(prior_problems(rounds[2], rounds[:1])) == 6


def test_the_audit_replays_a_rejection_by_the_sum_and_names_a_forged_one():
    """A sender whose record is far below the threshold is turned away in round 3 by the
    sum alone; the audit gives the same verdict from the figures. With that sender's
    recorded sum raised, the figures say accepted and the audit names it; with the rows
    dropped, the audit names the updates the test should have scored."""
    start = np.zeros((6, 2))
    start[3] = (-20.0, 4)
    rounds = _three_rounds(start)
    evidence = rounds[2]
    verdict = evidence.verdicts[4]  # position 4: sender 3
    assert not verdict.accepted and verdict.reason == "validation"
    assert replay_screens(evidence, evidence.rule, D) == ([], 6)
    figures = evidence.rule_figures
    rows = [list(row) for row in figures["sequential"]]
    row = next(r for r in rows if r[0] == 4)
    row[2] += 40.0
    raised = evidence.model_copy(update={"rule_figures": {**figures, "sequential": rows}})
    assert f"{verdict.participant}: the figures say accepted, the evidence says validation" \
        in replay_screens(raised, evidence.rule, D)[0]
    dropped = evidence.model_copy(update={"rule_figures": {**figures, "sequential": []}})
    assert any("the sequential test scored updates []" in p
               for p in replay_screens(dropped, evidence.rule, D)[0])
    plain = {**evidence.rule, "options": {**evidence.rule["options"], "sequential": False}}
    assert any("a sequential test the task's rule does not run" in p
               for p in replay_screens(evidence, plain, D)[0])


@pytest.mark.parametrize("row", [[9, 1.0, 0.0, 0], [1, float("nan"), 0.0, 0]])
def test_a_row_naming_no_verdict_or_no_number_is_refused(row):
    evidence = _three_rounds()[0]
    bad = evidence.model_copy(update={"rule_figures": {**evidence.rule_figures,
                                                       "sequential": [row]}})
    with pytest.raises(ValueError, match="sequential figures"):
        scores_of(bad)


def test_prior_rows_reads_senders_in_any_case():
    record = {SENDERS[0]: (2.5, 2)}
    rows = prior_rows(record, [SENDERS[0].upper().replace("0X", "0x"), SENDERS[1]])
    assert rows.tolist() == [[2.5, 2.0], [0.0, 0.0]]
    assert prior_rows({}, []).shape == (0, 2)


def _view(number: int, cid: str, finalized: bool = True):
    from fl_agent.chain.history import RoundView

    view = RoundView(1, number, 10 * number, "0xa", "bafy-g", "bafy-w", 10 * number + 5)
    view.evidence_cid = cid
    view.finalized_block = 10 * number + 6 if finalized else None
    return view


def test_the_aggregator_reads_finalized_rounds_once_and_leaves_out_what_it_cannot_read():
    """Round 1 finalized; round 2 closed short (its z-scores do not count); round 3's
    evidence is not in the store and round 4's names a verdict it does not have: both are
    left out, said so, and read once; a store that is down stops the round instead."""
    from fl_agent.agents.sequential import SequentialRecords
    from fl_agent.storage.base import ContentNotFoundError, NodeUnavailableError

    first, second = _three_rounds()[:2]
    bad = first.model_copy(update={"rule_figures": {**first.rule_figures,
                                                    "sequential": [[99, 1.0, 0.0, 0]]}})
    documents = {"bafy-1": first.to_json(), "bafy-2": second.to_json(), "bafy-4": bad.to_json()}
    asked: list[str] = []
    down = False

    def get(cid):
        asked.append(cid)
        if down:
            raise NodeUnavailableError("the node is down")
        if cid not in documents:
            raise ContentNotFoundError(cid)
        return documents[cid]

    views = [_view(1, "bafy-1"), _view(2, "bafy-2", finalized=False), _view(3, "bafy-3"),
             _view(4, "bafy-4"), _view(5, "")]
    logged: list[str] = []
    records = SequentialRecords(lambda: views, get, logged.append)
    rows = records.prior(5, SENDERS)
    expected = scores_of(first)
    assert rows.tolist() == [[expected[s], 1.0] for s in SENDERS]
    assert sorted(asked) == ["bafy-1", "bafy-3", "bafy-4"]
    assert len(logged) == 2 and "bafy-3" in logged[0] and "bafy-4" in logged[1]
    assert records.prior(2, SENDERS).tolist() == [[expected[s], 1.0] for s in SENDERS]
    assert records.prior(5, SENDERS).tolist() == rows.tolist()
    assert len(asked) == 3  # each document read once
    down = True
    views.append(_view(5, "bafy-5"))
    with pytest.raises(NodeUnavailableError):
        records.prior(6, SENDERS)
    assert records.prior(1, SENDERS).tolist() == [[0.0, 0.0]] * 6


def test_a_record_made_before_the_option_names_the_same_rule():
    from fl_agent.agents.evidence import same_rule

    rule = rule_parameters(FairFL(noise_control=True))
    older = {**rule, "options": {k: v for k, v in rule["options"].items()
                                 if k != "sequential"}}
    assert same_rule(older, rule) and same_rule(rule, older)
    chosen = rule_parameters(FairFL(noise_control=True, sequential=True))
    assert not same_rule(older, chosen) and not same_rule(chosen, older)
    assert not same_rule({**older, "name": "fedavg"}, rule)


@pytest.mark.parametrize("option, chosen", [("min_tolerance", 1.5), ("copies_once", True),
                                            ("held_back", True)])
def test_a_record_made_before_a_later_option_names_the_rule_at_its_old_value(option, chosen):
    from fl_agent.agents.evidence import same_rule

    rule = rule_parameters(FairFL())
    older = {**rule, "options": {k: v for k, v in rule["options"].items() if k != option}}
    assert same_rule(older, rule) and same_rule(rule, older)
    other = rule_parameters(FairFL(**{option: chosen}))
    assert not same_rule(older, other) and not same_rule(other, older)
