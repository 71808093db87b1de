"""Privacy modes on the real local chain: what each participant applies, what the chain
records about it, and that the aggregator reads sparse updates.

Each check reads the chain (events, the watermark commitments) and the store (the public
receipts), not the agents' own view. Whether the robust rule keeps honest noisy or sparse
updates is measured in the privacy benchmarks (docs/privacy-*.md); here the task aggregates
with fedavg so that the plumbing is tested apart from that.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from fl_agent.chain.records import RoundResult, TaskStatus, TrainingMode
from fl_agent.errors import ConfigError
from fl_agent.learning.models import param_count
from fl_agent.privacy.plan import PrivacyReceipt, build_plan
from fl_agent.privacy.watermark import commitment

#: What every new FairFL task records since rule R49 (2026-12-06).
NEW = {"copies_once": True}
#: ... and, without the DP noise control, rule R50's (2026-12-06).
NEW_PLAIN = {**NEW, "held_back": True}


def private_task(world, mode: str, rounds: int = 2, **settings) -> int:
    from fl_agent.learning.task_doc import AggregationPlan

    document = world.document.model_copy(update={
        "aggregation": AggregationPlan(strategy="fedavg", scoring="loo"),
        "privacy": build_plan(TrainingMode.parse(mode), **settings)})
    return world.create_task(rounds=rounds, window=60, document=document)


def run_task(world, task_id: int, people: list, aggregator) -> list[RoundResult]:
    results = []
    for _ in range(20):  # a round that never finalizes fails the test, not the suite
        if aggregator.finished:
            break
        aggregator.step()
        for person in people:
            person.step()
        outcome = aggregator.step()
        if outcome is not None and hasattr(outcome, "evidence_cid"):
            results.append(outcome)
    assert aggregator.finished, "the task did not complete"
    return results


def test_dp_prune_and_watermark_are_applied_recorded_and_audited_on_chain(world):
    task_id = private_task(world, "dp+prune+watermark", epsilon=8.0, prune_ratio=0.9)
    assert world.fairfl.ledger.task(task_id).training_mode == (
        TrainingMode.DP | TrainingMode.PRUNING | TrainingMode.WATERMARK)
    people = [world.participant(task_id, i) for i in range(3)]
    aggregator = world.aggregator_agent(task_id)
    outcomes = run_task(world, task_id, people, aggregator)

    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    assert len(outcomes) == 2
    for outcome in outcomes:  # every sparse update was read and aggregated, none invalid
        assert all(v.accepted for v in outcome.verdicts), [v.reason for v in outcome.verdicts]

    d = param_count(world.document.model)
    logs = world.fairfl.ledger.events("UpdateSubmitted", taskId=task_id)
    assert len(logs) == 6
    spent: dict[str, list[float]] = {}
    for log in logs:
        assert int(log.trainingMode) == 11
        receipt = PrivacyReceipt.from_json(world.store.get(str(log.privacyCid)))
        who = str(log.participant).lower()
        assert (receipt.task, receipt.round, receipt.participant) == (task_id, int(log.round),
                                                                      who)
        assert receipt.mode == "dp+pruning+watermark"
        assert (receipt.kept, receipt.length) == (round(0.1 * d), d)
        assert receipt.update_bytes < 0.4 * 4 * d
        assert receipt.delta == 1e-5 and receipt.accountant == "prv"
        spent.setdefault(who, []).append(receipt.epsilon_spent)
    for history in spent.values():  # grows each round, never past the budget
        assert history[0] < history[1] <= 8.0 + 1e-6

    for person in people:  # the key each participant keeps is the one it committed
        committed = world.fairfl.ledger.watermark_commitment(task_id, person.address)
        assert committed.commitment == commitment(person.privacy.watermark_key,
                                                  person.address, task_id)
        assert committed.commitment == person.watermark_commitment() and committed.block > 0


def test_bad_privacy_submissions_are_refused_with_a_reason_and_the_round_goes_on(world):
    """A dp+prune task: members submit well-formed sparse updates, but without a privacy
    receipt, with no ε record, with ε above the task's budget, or denser than the task's
    ratio (its receipt honest about it). Each is rejected with what is wrong; the honest
    participants' updates make the round."""
    from fl_agent.crypto.envelopes import seal_update
    from fl_agent.privacy.sparse import choose_entries, encode_sparse

    task_id = private_task(world, "dp+prune", rounds=1, epsilon=8.0, prune_ratio=0.9)
    people = [world.participant(task_id, i) for i in range(2)]
    cheats = world.bare_members(task_id, world.accounts[5:9])
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    spec, plan = world.document.model, aggregator.document.privacy
    rng = np.random.default_rng(3)
    kept = choose_entries(rng.normal(size=param_count(spec)), 0.9, spec)  # as one would send
    honest_dp = {"epsilon_spent": 1.5, "delta": 1e-5, "accountant": "prv",
                 "noise_multiplier": 3.0, "sample_rate": 0.2, "steps": 20}
    cases = [  # (entries sent, receipt fields or None, what the rejection says)
        (kept, None, "without a privacy receipt"),
        (kept, {**honest_dp, "epsilon_spent": None}, "no ε record"),
        (kept, {**honest_dp, "epsilon_spent": 9.0}, "above the task's budget of 8"),
        (np.arange(param_count(spec)), honest_dp, "so at most"),  # every entry: dense
    ]
    for cheat, (indices, fields, _) in zip(cheats, cases, strict=True):
        k = len(indices)
        plain = encode_sparse(spec, indices, rng.normal(0, 0.01, k).astype(np.float32))
        cid = world.store.add(seal_update(plain, workload.aggregator_key, task_id, 1,
                                          cheat.address))
        receipt = "" if fields is None else world.store.add(PrivacyReceipt(
            task=task_id, round=1, participant=cheat.address.lower(),
            mode=plan.mode().label(), update_bytes=len(plain), kept=k,
            length=param_count(spec), **fields).to_json())
        world.fairfl.ledger.submit_update(task_id, 1, cid, 80, 5, sender=cheat,
                                          privacy_cid=receipt)  # 80 samples: rate 16 / 80
    for person in people:
        person.step()
    outcome = aggregator.step()

    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    verdicts = {v.participant.lower(): v for v in outcome.verdicts}
    assert all(verdicts[p.address.lower()].accepted for p in people)
    for cheat, (_, _, message) in zip(cheats, cases, strict=True):
        verdict = verdicts[cheat.address.lower()]
        assert not verdict.accepted and verdict.reason.startswith("invalid_update: ")
        assert message in verdict.reason, verdict.reason

    # Anyone can check the receipts of what was accepted: the round's evidence passes; had the
    # aggregator accepted the three whose receipts are wrong, `evidence check` would name them
    # (the too-dense update's receipt is in order: only the opened update shows its density).
    from fl_agent.agents.audit import round_of
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.agents.privacy_audit import receipt_problems
    from fl_agent.chain.history import tasks

    checked = world.cli("evidence", "check", "--task", str(task_id), "--round", "1")
    assert checked.exit_code == 0, checked.output
    assert "rule fedavg" in checked.output and "records no figures" in checked.output
    view = round_of(tasks(world.fairfl.task_events(task_id)), task_id, 1)
    evidence = RoundEvidence.from_json(world.store.get(outcome.evidence_cid))
    lenient = evidence.model_copy(update={"verdicts": tuple(
        v.model_copy(update={"accepted": True}) for v in evidence.verdicts)})
    problems = receipt_problems(lenient, view, plan, world.store.get)
    named = sorted(p.split(":")[0].lower() for p in problems)
    assert named == sorted(c.address.lower() for c in cheats[:3]), problems


def test_a_sender_whose_epsilon_or_steps_do_not_grow_is_refused_in_its_next_round(world):
    """A dp task of two rounds and two cheats whose round-1 receipts are in order. In round
    2 one reports the same ε again (a budget restarted, or never spent); the other the same
    step count, its ε nudged up. The aggregator holds each receipt against the sender's
    round-1 receipt and the steps the chain's workloads assigned, and refuses both; the
    honest participants' updates make the round; `evidence check` passes both rounds, and
    would name both cheats had they been accepted."""
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.agents.privacy_audit import receipt_problems
    from fl_agent.chain.history import tasks
    from fl_agent.crypto.envelopes import seal_update
    from fl_agent.learning.weights import encode_weights
    from fl_agent.privacy.receipts import composed_epsilon

    task_id = private_task(world, "dp", rounds=2, epsilon=8.0)
    people = [world.participant(task_id, i) for i in range(2)]
    repeater, still = world.bare_members(task_id, world.accounts[5:7])
    aggregator = world.aggregator_agent(task_id)
    spec, plan = world.document.model, aggregator.document.privacy
    # 80 claimed samples in the task's batches of 16: DP-SGD samples at rate 0.2; one round
    # of the task's 5 steps at sigma 3 spends `first`, which the cheats report (a little more).
    rate, steps = 16 / 80, world.document.training.steps
    record = {"delta": 1e-5, "accountant": "prv", "noise_multiplier": 3.0,
              "sample_rate": rate}
    first = composed_epsilon([PrivacyReceipt(task=task_id, round=1, participant="0x", mode="dp",
                                             update_bytes=0, steps=steps, **record)],
                             1e-5, "prv")
    spent = round(first * 1.01, 4)
    lies = {repeater: lambda number: {"steps": steps * number, "epsilon_spent": spent},
            still: lambda number: {"steps": steps, "epsilon_spent": spent + 0.01 * number}}
    outcomes = []
    for number in (1, 2):
        _, _, workload = aggregator.step()
        start = people[0].read_global_model()
        plain = encode_weights(spec, start + np.float32(0.001))
        for cheat, lie in lies.items():
            cid = world.store.add(seal_update(plain, workload.aggregator_key, task_id, number,
                                              cheat.address))
            receipt = world.store.add(PrivacyReceipt(
                task=task_id, round=number, participant=cheat.address.lower(),
                mode=plan.mode().label(), update_bytes=len(plain), **lie(number),
                **record).to_json())
            world.fairfl.ledger.submit_update(task_id, number, cid, 80, 5, sender=cheat,
                                              privacy_cid=receipt)
        for person in people:
            person.step()
        outcomes.append(aggregator.step())

    first_round, second = ({v.participant.lower(): v for v in o.verdicts} for o in outcomes)
    assert all(v.accepted for v in first_round.values())
    for cheat, says in ((repeater, f"no more than the {spent:.6g} its receipt of round 1"),
                        (still, f"counts {steps} DP-SGD steps; the rounds it submitted in had "
                                f"it run {2 * steps}")):
        verdict = second[cheat.address.lower()]
        assert not verdict.accepted and says in verdict.reason, verdict.reason
    assert all(second[p.address.lower()].accepted for p in people)
    for number in ("1", "2"):
        checked = world.cli("evidence", "check", "--task", str(task_id), "--round", number)
        assert checked.exit_code == 0, checked.output
    # Had the aggregator accepted them, anyone reading the chain would name them.
    rounds = tasks(world.fairfl.task_events(task_id))[task_id].rounds
    evidence = RoundEvidence.from_json(world.store.get(outcomes[1].evidence_cid))
    lenient = evidence.model_copy(update={"verdicts": tuple(
        v.model_copy(update={"accepted": True}) for v in evidence.verdicts)})
    problems = receipt_problems(lenient, rounds[1], plan, world.store.get, rounds[:1], steps)
    named = {p.split(":")[0].lower(): p for p in problems}
    assert set(named) == {repeater.address.lower(), still.address.lower()}, problems
    assert "no more than" in named[repeater.address.lower()]
    assert "the rounds it submitted in had it run" in named[still.address.lower()]


def test_a_dp_update_its_receipt_does_not_describe_is_refused_and_the_round_goes_on(world):
    """A plain dp task that asks for the length check (``--dp-length-check``, rule R44):
    three members with receipts in order (the calibrated σ,
    rate, steps and ε) send an update of the noise's length, that update ×10, and one of a
    hundredth of it (noise the receipt reports but that was not added); a fourth reports
    twice the noise its budget needs. The aggregator refuses the last three and the fourth,
    each saying why; the first and the honest participants make the round, and `evidence
    check` passes. ε = 0.5: the noise is well above the most the clipped gradients of one
    round can add (0.75), so an update without it is too short to pass."""
    from fl_agent.crypto.envelopes import seal_update
    from fl_agent.learning.weights import encode_weights
    from fl_agent.privacy.dp import noise_for_budget
    from fl_agent.privacy.receipts import composed_epsilon

    # Two rounds, judged in the first: every participant calibrates its noise for both, so
    # a check that took the task for one round would refuse them all as too noisy.
    task_id = private_task(world, "dp", rounds=2, epsilon=0.5, dp_length_check=True)
    people = [world.participant(task_id, i) for i in range(2)]
    cheats = world.bare_members(task_id, world.accounts[5:9])
    aggregator = world.aggregator_agent(task_id)
    spec, plan = world.document.model, aggregator.document.privacy
    training = world.document.training
    rate, steps = training.batch_size / 80, training.steps
    sigma = noise_for_budget(0.5, 1e-5, rate, 2 * steps, "prv")
    _, _, workload = aggregator.step()
    start = people[0].read_global_model().astype(np.float64)
    # DP-SGD's noise over one round: lr·σ·C·√S / B per coordinate.
    noise = np.random.default_rng(5).normal(
        0, training.lr * sigma * plan.dp.clip * np.sqrt(steps) / training.batch_size,
        param_count(spec))
    cases = [(noise, sigma, None), (10 * noise, sigma, "longer: scaled"),
             (noise / 100, sigma, "shorter: its noise was not added"),
             (2 * noise, 2 * sigma, "would spend only")]
    for cheat, (delta, reported, _) in zip(cheats, cases, strict=True):
        plain = encode_weights(spec, (start + delta).astype(np.float32))
        cid = world.store.add(seal_update(plain, workload.aggregator_key, task_id, 1,
                                          cheat.address))
        record = {"delta": 1e-5, "accountant": "prv", "noise_multiplier": reported,
                  "sample_rate": rate, "steps": steps}
        spent = composed_epsilon([PrivacyReceipt(task=task_id, round=1, participant="0x",
                                                 mode="dp", update_bytes=0, **record)],
                                 1e-5, "prv")
        receipt = world.store.add(PrivacyReceipt(
            task=task_id, round=1, participant=cheat.address.lower(), mode="dp",
            update_bytes=len(plain), epsilon_spent=spent, **record).to_json())
        world.fairfl.ledger.submit_update(task_id, 1, cid, 80, 5, sender=cheat,
                                          privacy_cid=receipt)
    for person in people:
        person.step()
    outcome = aggregator.step()

    verdicts = {v.participant.lower(): v for v in outcome.verdicts}
    assert all(verdicts[p.address.lower()].accepted for p in people)
    for cheat, (_, _, message) in zip(cheats, cases, strict=True):
        verdict = verdicts[cheat.address.lower()]
        if message is None:
            assert verdict.accepted, verdict.reason
        else:
            assert not verdict.accepted and verdict.reason.startswith("invalid_update: ")
            assert message in verdict.reason, verdict.reason
    checked = world.cli("evidence", "check", "--task", str(task_id), "--round", "1")
    assert checked.exit_code == 0, checked.output
    # The aggregator's rerun (evidence check --validation) opens the updates and replays the
    # check: it decides the same, and evidence that had accepted the scaled update is caught.
    from fl_agent.agents.audit import compare_rerun, rerun_round
    from fl_agent.agents.evidence import RoundEvidence

    evidence = RoundEvidence.from_json(world.store.get(outcome.evidence_cid))
    rerun = rerun_round(world.aggregator_agent(task_id), evidence)
    assert compare_rerun(evidence, rerun) == []
    scaled = next(i for i, v in enumerate(evidence.verdicts)
                  if v.participant.lower() == cheats[1].address.lower())
    records = list(evidence.verdicts)
    records[scaled] = records[scaled].model_copy(update={"accepted": True, "reason": None,
                                                         "code": 0})
    problems = compare_rerun(evidence.model_copy(update={"verdicts": tuple(records)}), rerun)
    assert any(p.startswith(records[scaled].participant) and "accepted in the evidence" in p
               and "longer: scaled" in p for p in problems), problems


def test_participant_level_dp_noises_the_aggregate_and_nothing_on_the_participants(world):
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.agents.privacy_audit import dp_fedavg_problems
    from fl_agent.chain.history import tasks
    from fl_agent.privacy.accounting import PrivacyStep, epsilon_spent

    task_id = private_task(world, "dp", rounds=2, epsilon=4.0, dp_level="participant")
    sent: list[np.ndarray] = []

    def capture(global_vector, result):
        sent.append(np.asarray(result.vector, np.float64))
        return result.vector

    people = [world.participant(task_id, i, update_hook=capture) for i in range(3)]
    start = people[0].read_global_model().astype(np.float64)
    aggregator = world.aggregator_agent(task_id)
    outcome, second = run_task(world, task_id, people, aggregator)

    for log in world.fairfl.ledger.events("UpdateSubmitted", taskId=task_id):
        receipt = PrivacyReceipt.from_json(world.store.get(str(log.privacyCid)))
        assert receipt.epsilon_spent is None  # no DP-SGD at the participants
    # Each round's evidence (named on chain) records what the aggregation cost: the
    # accountant's ε for one and two applications of the noise, the second at most the budget.
    sigma = aggregator._dp_noise
    plan = aggregator.document.privacy
    records = [RoundEvidence.from_json(world.store.get(o.evidence_cid)).dp_fedavg
               for o in (outcome, second)]
    for k, record in enumerate(records, start=1):
        assert record["applications"] == k and record["updates"] == 3
        assert record["epsilon"] == epsilon_spent([PrivacyStep.build(sigma, 1.0, k)], 1e-5,
                                                  "prv")
    assert 0 < records[0]["epsilon"] < records[1]["epsilon"] <= 4.0
    from fl_agent.simulation.report import central_records  # the report reads them back
    assert central_records(world.fairfl, world.store, task_id) == [
        {"round": k, **record} for k, record in enumerate(records, start=1)]
    # Anyone can check it from the chain; a record that understates ε is named.
    for number in ("1", "2"):
        checked = world.cli("evidence", "check", "--task", str(task_id), "--round", number)
        assert checked.exit_code == 0, checked.output
    task = tasks(world.fairfl.task_events(task_id))[task_id]
    evidence = RoundEvidence.from_json(world.store.get(second.evidence_cid))
    assert dp_fedavg_problems(evidence, task, plan) == []
    understated = evidence.model_copy(update={"dp_fedavg": {**records[1],
                                                            "epsilon": records[0]["epsilon"]}})
    [problem] = dp_fedavg_problems(understated, task, plan)
    assert "records ε" in problem
    [problem] = dp_fedavg_problems(evidence.model_copy(update={"dp_fedavg": None}), task, plan)
    assert "no DP-FedAvg record" in problem

    # The model is the mean of the deltas clipped to 1 (computed here), plus Gaussian noise
    # of std sigma / 3 per coordinate: the distance to that mean is the noise's length.
    sent = sent[:3]  # the first round's updates
    deltas = [v - start for v in sent]
    clipped = [d * min(1.0, 1.0 / np.linalg.norm(d)) for d in deltas]
    plain = start + np.mean(clipped, axis=0)
    expected = sigma / 3 * np.sqrt(start.size)
    distance = float(np.linalg.norm(outcome.params.astype(np.float64) - plain))
    assert sigma > 0.5 and 0.8 * expected < distance < 1.2 * expected


def test_watermarks_verify_then_claimed_are_listed_on_the_model_for_sale(world, tmp_path):
    """``watermark verify`` confirms the owner and refuses a stranger; ``watermark claim``
    reveals the owner's key once, refuses another member's claim on it, and ``market show``
    lists the claim (re-checked on the weights when given them)."""
    from fl_agent.agents.access import member_key
    from fl_agent.agents.participant import load_task_document, read_task_model_bytes
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.learning.task_doc import AccessPlan
    from fl_agent.market.listing import list_task_model

    seller = world.accounts[0]
    world.document = world.document.model_copy(update={"access": AccessPlan(
        creator_key=public_bytes(member_key(world.fairfl, seller)).hex())})
    task_id = private_task(world, "watermark", rounds=3)
    people = [world.participant(task_id, i) for i in range(2)]
    run_task(world, task_id, people, world.aggregator_agent(task_id))
    owner = people[0]
    key_file = owner._privacy_dir() / "watermark-key.json"
    assert key_file.stat().st_mode & 0o077 == 0  # the secret is the owner's alone

    def cli(*args: str) -> Any:
        # in this process: each `python -m fl_agent.cli` cost 6-9 s of imports. Off a
        # terminal the console is 160 columns wide (fl_agent/cli/common.py), in a pipe as here
        return world.cli(*args)

    def verify(*args: str) -> Any:
        return cli("watermark", "verify", "--task", str(task_id), *args)

    def claim(*args: str) -> Any:
        return cli("watermark", "claim", "--task", str(task_id), "--yes", *args)

    mine = verify("--key", str(key_file), "--account", "TEST::2")
    assert mine.exit_code == 0, mine.output
    assert "commitment: matches" in mine.stdout and "verified" in mine.stdout
    # The same key claimed by another member: the model may carry it, the commitment is not
    # that member's.
    other = verify("--key", str(key_file), "--account", "TEST::3")
    assert other.exit_code == 1 and "does not match" in other.stdout
    from fl_agent.privacy.watermark import WatermarkKey

    stranger = tmp_path / "stranger.json"
    WatermarkKey.generate(owner.privacy.watermark_key.bits).save(stranger)
    refused = verify("--key", str(stranger), "--account", "TEST::2")
    assert refused.exit_code == 1 and "not verified" in refused.stdout

    # Claims: another member cannot claim the owner's key, a stranger key claims nothing,
    # the owner claims once.
    ledger = world.fairfl.ledger
    theft = claim("--key", str(key_file), "--account", "TEST::3")
    assert theft.exit_code == 1 and "is not the key" in theft.stdout, theft.stdout
    assert not ledger.watermark_commitment(task_id, people[1].address).claimed
    assert ledger.watermark_claims(task_id) == []
    mine = claim("--key", str(key_file), "--account", "TEST::2")
    assert mine.exit_code == 0 and "claimed" in mine.stdout, mine.output
    (event,) = ledger.watermark_claims(task_id)
    assert event.account == owner.address
    assert event.commitment == commitment(owner.privacy.watermark_key, owner.address, task_id)
    assert ledger.watermark_commitment(task_id, owner.address).claimed
    again = claim("--key", str(key_file), "--account", "TEST::2")
    assert again.exit_code == 1 and "already claimed" in again.stdout

    # The model for sale lists the claim; with the weights, the bits are re-checked.
    listed = list_task_model(world.fairfl, world.store, task_id, 10**18, seller=seller,
                             keys_dir=world.tmp / "keys")
    shown = cli("market", "show", str(listed.model_id))
    assert shown.exit_code == 0, shown.output
    row = [line for line in shown.stdout.splitlines() if owner.address in line][-1]  # not payees
    assert "claimed: key matches its" in row and re.search(r"\b(3[6-9]|40)/40\b", row), \
        shown.stdout  # verified: at least 90 % of the task's 40 bits
    assert event.claim_cid[:30] in row  # the cell folds the rest onto the next line
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(read_task_model_bytes(
        world.fairfl, world.store, task_id, seller.address, member_key(world.fairfl, seller),
        load_task_document(world.store, ledger.task(task_id).spec_cid)))
    rechecked = cli("market", "show", str(listed.model_id), "--model", str(weights))
    assert rechecked.exit_code == 0, rechecked.output
    assert "verified on the weights given" in rechecked.stdout
    weights.write_bytes(weights.read_bytes() + b" ")
    wrong = cli("market", "show", str(listed.model_id), "--model", str(weights))
    assert wrong.exit_code == 1 and "not this model's plaintext" in wrong.stdout


def test_a_member_joining_after_round_one_trains_without_a_claimable_watermark(world):
    task_id = private_task(world, "watermark", rounds=2)
    early = [world.participant(task_id, i) for i in range(2)]
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()  # round 1 opens
    assert world.fairfl.ledger.task(task_id).current_round == 1
    said: list[str] = []
    late = world.participant(task_id, 2, log=said.append)  # joins; its commit is refused

    assert world.fairfl.ledger.membership(task_id, late.address).joined
    assert not world.fairfl.ledger.watermark_commitment(task_id, late.address).exists
    assert any("watermark can never be claimed" in line for line in said), said
    assert all(world.fairfl.ledger.watermark_commitment(task_id, p.address).exists
               for p in early)


@pytest.mark.parametrize("mode, settings, message", [
    ("dp", {}, "--epsilon"),
    ("prune", {}, "--prune-ratio"),
])
def test_a_privacy_mode_without_its_settings_is_refused(mode, settings, message):
    from fl_agent.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_plan(TrainingMode.parse(mode), **settings)


def test_fairfl_does_not_run_its_noise_check_on_dp_sgd_updates(world):
    """Honest DP-SGD updates are mostly noise: the NOISE check refused all of them in the
    benchmark (docs/privacy-dp.md), so a DP task's aggregator turns it off and gates each
    update against noise of its own size; a watermark task turns the check off as well; other
    tasks keep the check and the plain gate."""
    from fl_agent.agents.task_rule import task_strategy
    from fl_agent.aggregation.clustering import chance_similarity

    d = param_count(world.document.model)
    X, y = world.splits.validation.X, world.splits.validation.y
    plain = task_strategy(world.document, X, y)
    unheld = world.document.model_copy(update={  # held_back is refused with the control
        "aggregation": world.document.aggregation.model_copy(update={"options": {
            k: v for k, v in world.document.aggregation.options.items() if k != "held_back"}})})
    dp = task_strategy(unheld.model_copy(update={
        "privacy": build_plan(TrainingMode.DP, epsilon=8)}), X, y)
    sparse = task_strategy(world.document.model_copy(update={
        "privacy": build_plan(TrainingMode.PRUNING, prune_ratio=0.9)}), X, y)
    assert chance_similarity(d, plain.chance_z) == pytest.approx(4 / np.sqrt(d))
    assert chance_similarity(d, sparse.chance_z) == chance_similarity(d, plain.chance_z)
    assert chance_similarity(d, dp.chance_z) == 1.0  # nothing is beyond a chance level of 1
    assert dp.noise_control and not plain.noise_control and not sparse.noise_control
    dp_document = unheld.model_copy(update={
        "privacy": build_plan(TrainingMode.DP, epsilon=8)})
    chosen = dp_document.model_copy(update={"aggregation": dp_document.aggregation.model_copy(
        update={"options": {**dp_document.aggregation.options, "noise_control": False}})})
    assert not task_strategy(chosen, X, y).noise_control  # the task's explicit choice holds
    # A new watermark task's document turns the NOISE check off too (each mark is a direction
    # nobody else shares) and keeps the plain gate; a document made before keeps its check.
    from fl_agent.learning.task_doc import TaskDocument

    new = TaskDocument.build(**{**dict(world.document),
                                "privacy": build_plan(TrainingMode.WATERMARK)})
    assert new.aggregation.options["chance_z"] == pytest.approx(np.sqrt(d))
    marked = task_strategy(new, X, y)
    assert chance_similarity(d, marked.chance_z) == 1.0 and not marked.noise_control
    older = world.document.model_copy(update={"privacy": build_plan(TrainingMode.WATERMARK)})
    assert chance_similarity(d, task_strategy(older, X, y).chance_z) == pytest.approx(
        4 / np.sqrt(d))


def test_a_new_example_dp_task_records_the_sequential_test_and_an_older_one_keeps_its_rule(
        world):
    """Since 2026-12-05 a new FairFL task with example-level DP and the noise control records
    ``sequential: true`` (docs/privacy-dp.md); the task's explicit choice, participant-level
    DP, a task without the control and a document made before keep the single-round test."""
    from fl_agent.agents.task_rule import task_strategy
    from fl_agent.learning.task_doc import TaskDocument

    X, y = world.splits.validation.X, world.splits.validation.y

    def built(privacy, **options):
        aggregation = world.document.aggregation.model_copy(update={"options": options})
        return TaskDocument.build(**{**dict(world.document), "privacy": privacy,
                                     "aggregation": aggregation})

    dp = build_plan(TrainingMode.DP, epsilon=8)
    new = built(dp)
    assert new.aggregation.options == {**NEW, "sequential": True, "max_norm_ratio": None}
    rule = task_strategy(new, X, y)
    assert rule.sequential and rule.noise_control and rule.max_norm_ratio is None
    assert built(dp, max_norm_ratio=3.0).aggregation.options == {
        **NEW, "max_norm_ratio": 3.0, "sequential": True}
    pruned = built(build_plan(TrainingMode.DP | TrainingMode.PRUNING, epsilon=8,
                              prune_ratio=0.9))
    assert pruned.aggregation.options["sequential"] is True
    assert built(dp, sequential=False).aggregation.options == {**NEW, "sequential": False}
    # named, the sequential test brings no length outliers too
    assert built(dp, sequential=True).aggregation.options == {
        **NEW, "sequential": True, "max_norm_ratio": None}
    assert not task_strategy(built(dp, sequential=False), X, y).sequential
    assert built(dp, noise_control=False).aggregation.options == {**NEW_PLAIN,
                                                                  "noise_control": False}
    assert "sequential" not in built(build_plan(TrainingMode.DP, epsilon=8,
                                                dp_level="participant")).aggregation.options
    assert built(None).aggregation.options == NEW_PLAIN  # a plain task: rules R49 and R50
    assert task_strategy(built(None), X, y).held_back
    assert not rule.held_back  # the noise control's verdicts are its own
    with pytest.raises(ConfigError, match="held_back does not apply"):
        built(dp, held_back=True)
    assert built(dp, held_back=False).aggregation.options["held_back"] is False
    older = world.document.model_copy(update={  # as read from the store
        "privacy": dp, "aggregation": world.document.aggregation.model_copy(update={
            "options": {"copies_once": True}})})
    old_rule = task_strategy(older, X, y)
    assert not old_rule.sequential and old_rule.noise_control and old_rule.max_norm_ratio == 3.0
    assert rule.copies_once
    before = world.document.model_copy(update={  # a plain task made before rule R49
        "aggregation": world.document.aggregation.model_copy(update={"options": {}})})
    assert not task_strategy(before, X, y).copies_once
    # the same document read back from its JSON keeps what it recorded
    again = TaskDocument.model_validate_json(new.model_dump_json())
    assert again.aggregation.options == {**NEW, "sequential": True, "max_norm_ratio": None}
    marked = built(build_plan(TrainingMode.DP | TrainingMode.WATERMARK, epsilon=8))
    assert set(marked.aggregation.options) == {"chance_z", "sequential", "max_norm_ratio",
                                                "copies_once"}


def test_simulate_publishes_a_dp_task_with_the_sequential_test_unless_told_otherwise():
    """`fl-agent simulate --mode dp` builds its task document as a new task's: the
    sequential test recorded, `--rule-option sequential=false` the single-round test."""
    from fl_agent.simulation.config import SimulationConfig, task_document
    from fl_agent.simulation.offline import federation

    config = SimulationConfig(mode="dp", epsilon=8.0, clients=4, rounds=1)
    fed = federation(config)
    assert task_document(config, fed.spec, fed.data).aggregation.options == {
        **NEW, "sequential": True, "max_norm_ratio": None}
    single = config.model_copy(update={"rule_options": {"sequential": False}})
    assert task_document(single, fed.spec, fed.data).aggregation.options == {
        **NEW, "sequential": False}


def test_a_task_that_prunes_screens_each_senders_last_two_rounds_on_chain(world):
    """Under FairFL a task that prunes screens, for the trigger, each update alone and plus
    what its sender sent the round before, and (``noise_rounds``, rule R52) tests each
    update's sum over those rounds for noise. The aggregator keeps what it decoded, whole (a
    restart, or a store that loses the update, changes nothing) and reads from the chain and
    the store what it did not; the evidence records the statistics and which updates each
    sum holds, and anyone's replay and the rerun agree with it. A member sending junk first
    in round 2 makes the rule's indices differ from the verdicts' positions."""
    from sklearn.metrics.pairwise import cosine_similarity

    from fl_agent.agents.audit import compare_rerun, replay_screens, rerun_round
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.aggregation.trigger_screen import trigger_excess
    from fl_agent.crypto.envelopes import seal_update
    from fl_agent.learning.task_doc import AggregationPlan
    from fl_agent.storage.base import ContentNotFoundError

    document = world.document.model_copy(update={
        "aggregation": AggregationPlan(strategy="fairfl", scoring="loo",
                                       options={"noise_rounds": 2}),
        "privacy": build_plan(TrainingMode.PRUNING, prune_ratio=0.9)})
    task_id = world.create_task(rounds=2, window=60, document=document)
    people = [world.participant(task_id, i) for i in range(4)]
    junk = world.bare_members(task_id, world.accounts[6:7])
    aggregator = world.aggregator_agent(task_id)
    assert aggregator.strategy.trigger_rounds == aggregator.strategy.noise_rounds == 2
    outcomes = []
    for number in (1, 2):
        _, _, workload = aggregator.step()
        if number == 2:  # junk, not even a sparse document
            sealed = seal_update(b"junk", workload.aggregator_key, task_id, 2, junk[0].address)
            world.fairfl.ledger.submit_update(task_id, 2, world.store.add(sealed), 10, 5,
                                              sender=junk[0])
        for person in people:
            person.step()
        outcomes.append(aggregator.step())
    assert junk[0].address in outcomes[1].rejected

    restarted = world.aggregator_agent(task_id)  # nothing kept in memory
    first, second = restarted.judge(1), restarted.judge(2)
    assert second.usable == [1, 2, 3, 4]  # the junk came first
    layer = restarted.strategy.input_layer
    width = layer[0] + layer[1] * layer[2]
    sent = {str(first.logs[i].participant).lower():
            first.vectors[k].astype(np.float64) - first.global_vector
            for k, i in enumerate(first.usable)}  # whole: the NOISE check reads them all
    cids = {str(log.participant).lower(): str(log.updateCid) for log in first.logs}
    logs = [second.logs[i] for i in second.usable]
    expected = [sent[str(log.participant).lower()] for log in logs]
    assert restarted.earlier(1, logs) is None
    earlier, sources = restarted.earlier(2, logs)
    np.testing.assert_allclose(earlier, expected, rtol=0, atol=1e-12)
    assert sources == [[cids[str(log.participant).lower()]] for log in logs]

    class Losing:  # the store, without round 1's updates
        def get(self, cid):
            if cid in cids.values():
                raise ContentNotFoundError(f"{cid} was collected")
            return world.store.get(cid)

    restarted.store = Losing()
    np.testing.assert_allclose(restarted.earlier(2, logs)[0], expected, rtol=0, atol=1e-12)
    for kept in (world.tmp / "agents" / f"task-{task_id}-inputs").glob("r1-*.npy"):
        kept.unlink()  # what it did not judge itself, and cannot read, counts for nothing
    left_out = restarted.earlier(2, logs)
    assert not np.any(left_out[0]) and left_out[1] == [[]] * 4
    restarted.store = world.store  # read back from the store instead
    np.testing.assert_allclose(restarted.earlier(2, logs)[0], expected, rtol=0, atol=1e-12)

    evidence = RoundEvidence.from_json(world.store.get(outcomes[1].evidence_cid))
    trigger = evidence.rule_figures["trigger"]
    assert trigger["rounds"] == 2 and evidence.rule["options"]["trigger_rounds"] == 2
    own = np.array([second.vectors[k].astype(np.float64) - second.global_vector
                    for k in range(len(logs))])
    order = [second.usable.index(i) for i in trigger["indices"]]
    np.testing.assert_allclose(trigger["alone"], trigger_excess(own[order, :width], layer),
                               rtol=1e-9)
    np.testing.assert_allclose(trigger["summed"],
                               trigger_excess((own + earlier)[order, :width], layer), rtol=1e-9)
    assert trigger["earlier_cids"] == [sources[k] for k in order]
    noise = evidence.rule_figures["noise"]
    assert noise["rounds"] == 2 and evidence.rule["options"]["noise_rounds"] == 2
    order = [second.usable.index(i) for i in evidence.rule_figures["candidates"]]
    np.testing.assert_allclose(noise["similarity"], cosine_similarity((own + earlier)[order]),
                               atol=1e-9)
    assert noise["earlier_cids"] == [sources[k] for k in order]
    first_evidence = RoundEvidence.from_json(world.store.get(outcomes[0].evidence_cid))
    assert "rounds" not in first_evidence.rule_figures["trigger"]  # round 1: alone
    assert "noise" not in first_evidence.rule_figures
    assert replay_screens(evidence)[0] == []
    assert compare_rerun(evidence, rerun_round(restarted, evidence)) == []
    # Sums' cosines that put an update's sum within chance of every other: anyone's replay
    # names the verdict they contradict; and evidence that leaves the sums out is named too.
    cosines = np.array(noise["similarity"])
    cosines[0, 1:] = cosines[1:, 0] = 0.0
    forged = evidence.model_copy(update={"rule_figures": {
        **evidence.rule_figures, "noise": dict(noise, similarity=cosines.tolist())}})
    who = evidence.verdicts[evidence.rule_figures["candidates"][0]].participant
    assert f"{who}: the figures say noise" in " ".join(replay_screens(forged)[0])
    bare = evidence.model_copy(update={"rule_figures": {
        k: v for k, v in evidence.rule_figures.items() if k != "noise"}})
    assert any("records no sums' cosines" in p for p in replay_screens(bare)[0])
    # An excess that is not the larger of the two statistics is named by anyone's replay.
    forged = dict(trigger, excess=[x / 2 for x in trigger["excess"]])
    lied = evidence.model_copy(update={"rule_figures": {**evidence.rule_figures,
                                                        "trigger": forged}})
    problems, _ = replay_screens(lied)
    assert sum("is not the larger of" in p for p in problems) == 4, problems


def test_an_earlier_update_nobody_provides_does_not_hold_the_next_round_up(world):
    """A member whose round-1 update is a CID nobody provides is rejected for it; its round-2
    update is screened alone, and round 2 is judged (the store serves the round's model, so
    the store is up). A reviewer's case: before, the aggregator waited on that CID forever."""
    from ape import chain

    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.chain.node import free_port
    from fl_agent.learning.task_doc import AggregationPlan
    from fl_agent.storage.store import KuboStore

    class Store:  # the local store, with some CIDs that no node provides
        def __init__(self, store):
            self.store, self.missing = store, set()
            self.dead = KuboStore(f"http://127.0.0.1:{free_port()}", attempts=1, backoff=0.01)

        def get(self, cid):
            return (self.dead if cid in self.missing else self.store).get(cid)

        def __getattr__(self, name):
            return getattr(self.store, name)

    document = world.document.model_copy(update={
        "aggregation": AggregationPlan(strategy="fairfl", scoring="loo"),
        "privacy": build_plan(TrainingMode.PRUNING, prune_ratio=0.9)})
    task_id = world.create_task(rounds=2, window=30, min_participants=1, document=document)
    people = [world.participant(task_id, i) for i in range(4)]
    aggregator = world.aggregator_agent(task_id)
    aggregator.store = Store(world.store)
    aggregator.step()
    for person in people:
        person.step()
    hidden = next(str(e.updateCid) for e in world.fairfl.ledger.events(
        "UpdateSubmitted", taskId=task_id, round=1)
        if str(e.participant).lower() == people[0].address.lower())
    aggregator.store.missing.add(hidden)
    deadline = world.fairfl.ledger.round(task_id, 1).deadline_block
    chain.provider.make_request("anvil_mine", [deadline - int(chain.blocks.height) + 1])
    first = aggregator.step()
    assert people[0].address in first.rejected
    aggregator.step()  # opens round 2
    for person in people:
        person.step()
    second = aggregator.step()
    assert hasattr(second, "evidence_cid"), second  # judged, not held up
    evidence = RoundEvidence.from_json(world.store.get(second.evidence_cid))
    trigger = evidence.rule_figures["trigger"]
    position = next(k for k, v in enumerate(evidence.verdicts)
                    if v.participant.lower() == people[0].address.lower())
    assert trigger["earlier_cids"][trigger["indices"].index(position)] == []
    assert all(len(c) == 1 for i, c in zip(trigger["indices"], trigger["earlier_cids"],
                                           strict=True) if i != position)


def test_the_sequential_test_reads_each_senders_record_from_the_published_evidence(world):
    """A DP task under FairFL with the sequential test (its default), three rounds on the
    chain, one participant sending its DP-SGD update reversed: each round's evidence holds
    the z-score of every update that reached the gate and the sum it was judged with (the
    reversed one is turned away before, as dissimilar), and the sums of round 3
    are rounds 1 and 2's z-scores added up (the aggregator read them from that evidence, not
    from memory). A fresh aggregator agent runs round 3 again and decides the same, and
    anyone replays its verdicts from the figures."""
    from fl_agent.agents.audit import compare_rerun, replay_screens, rerun_round
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.agents.sequential import prior_problems, scores_of
    from fl_agent.learning.task_doc import AggregationPlan

    def reversed_update(global_vector, result):
        return global_vector - (np.asarray(result.vector) - global_vector)

    document = world.document.model_copy(update={
        "aggregation": AggregationPlan(strategy="fairfl", scoring="loo",
                                       options={"sequential": True}),
        "privacy": build_plan(TrainingMode.DP, epsilon=8.0)})
    task_id = world.create_task(rounds=3, window=60, min_participants=2, document=document)
    people = [world.participant(task_id, i, update_hook=reversed_update if i == 3 else None)
              for i in range(4)]
    aggregator = world.aggregator_agent(task_id)
    assert aggregator.strategy.sequential and aggregator.strategy.noise_control
    outcomes = run_task(world, task_id, people, aggregator)
    assert len(outcomes) == 3
    records = [RoundEvidence.from_json(world.store.get(o.evidence_cid)) for o in outcomes]
    for record in records:
        rows = record.rule_figures["sequential"]
        judged = {v.participant.lower() for v in record.verdicts
                  if v.accepted or v.reason == "validation"}
        assert set(scores_of(record)) == judged and len(rows) == len(judged)
    third = records[2]
    assert {int(row[3]) for row in third.rule_figures["sequential"]} == {2}
    assert prior_problems(third, records[:2]) == []
    assert prior_problems(third, records[:1])  # a record that leaves a round out is named
    honest = [p.address.lower() for p in people[:3]]
    totals = {row[0]: row[1] + row[2] for row in third.rule_figures["sequential"]}
    by_sender = {third.verdicts[i].participant.lower(): t for i, t in totals.items()}
    assert all(by_sender[a] > 0 for a in honest), by_sender  # helpful, round after round
    # the reversed update is turned away before the gate (as dissimilar): never scored
    assert people[3].address.lower() not in by_sender
    assert replay_screens(third, third.rule, param_count(world.document.model))[0] == []
    assert compare_rerun(third, rerun_round(world.aggregator_agent(task_id), third)) == []
    anyone = world.cli("evidence", "check", "--task", str(task_id), "--round", "3")
    assert anyone.exit_code == 0, anyone.output
