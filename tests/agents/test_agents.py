"""Participant and aggregator agents on a real anvil with the real contracts and store."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from safetensors.numpy import save

from fl_agent.agents import RoundOutcome
from fl_agent.agents.evidence import RoundEvidence
from fl_agent.chain.records import RejectReason, RoundResult, RoundStatus, TaskStatus
from fl_agent.crypto.envelopes import Keyring, decrypt_model, model_epoch, seal_update
from fl_agent.crypto.sealing import SealingError, new_buyer_key
from fl_agent.errors import ChainError, ConfigError
from fl_agent.learning import ModelSpec, decode_weights, encode_weights, init_params
from fl_agent.learning.workload import Workload
from fl_agent.storage.cid import compute_cid


def finalize(aggregator) -> RoundOutcome:
    outcome = aggregator.step()
    assert isinstance(outcome, RoundOutcome), outcome
    return outcome


def test_a_task_runs_to_completion_and_the_chain_records_every_step(world):
    task_id = world.create_task(rounds=2)
    people = [world.participant(task_id, i) for i in range(3)]
    aggregator = world.aggregator_agent(task_id)

    number, _, workload = aggregator.step()
    assert number == 1 and workload.default_steps == 5
    for agent in people:
        submitted, skipped = agent.step()
        assert len(submitted) == 1 and not skipped
        assert submitted[0].round == 1 and submitted[0].steps == 5
    outcome = finalize(aggregator)
    assert sorted(outcome.accepted) == sorted(p.address for p in people)

    event = world.fairfl.ledger.events("RoundFinalized", taskId=task_id, round=1)[-1]
    assert str(event.transaction_hash) == outcome.receipt.tx_hash
    result = RoundResult.from_chain(event.result)
    assert result.new_model_cid == outcome.new_cid
    assert list(result.contributors) == [v.participant for v in outcome.verdicts]
    assert sum(result.scores_ppm) == 1_000_000
    blob = world.store.get(outcome.new_cid)
    assert model_epoch(blob) == 1  # encrypted under the task key: not readable as weights
    assert decode_weights(decrypt_model(blob, aggregator.keys.keys, task_id),
                          world.document.model).tolist() == pytest.approx(outcome.params.tolist())
    assert people[0].read_global_model().tolist() == pytest.approx(outcome.params.tolist())
    evidence = RoundEvidence.from_json(world.store.get(result.evidence_cid))
    assert (evidence.task, evidence.round, evidence.new_model) == (task_id, 1, outcome.new_cid)
    assert [v.participant for v in evidence.verdicts] == [v.participant for v in outcome.verdicts]
    assert [v.share_ppm for v in evidence.verdicts] == list(result.scores_ppm)
    # The ledger's model hash is the SHA-256 of what the encrypted model holds.
    assert result.model_hash.hex() == evidence.new_model_sha256 == hashlib.sha256(
        decrypt_model(blob, aggregator.keys.keys, task_id)).hexdigest()
    assert evidence.validation == pytest.approx(outcome.validation)
    for record in evidence.verdicts:  # figures anyone can compare, whatever the rule
        assert record.cosine > 0 and record.norm_ratio > 0 and 0 < record.alone <= 1
    assert evidence.format == "fairfl-round-evidence/5"
    old = evidence.model_dump(mode="json")
    old["format"] = "fairfl-round-evidence/1"
    del old["rule"], old["validation_sha256"], old["rule_figures"]  # versions 3 and 4
    for record in old["verdicts"]:
        for name in ("cosine", "norm_ratio", "alone"):
            del record[name]
    assert RoundEvidence.model_validate(old).verdicts[0].cosine is None  # version 1 still read

    # round 2 gets a workload balanced from the measured times of round 1
    number, _, workload = aggregator.step()
    assert number == 2
    doc = Workload.from_json(world.store.get(
        str(world.fairfl.ledger.events("RoundStarted", taskId=task_id, round=2)[-1].workloadCid)))
    assert set(doc.steps) == {p.address.lower() for p in people}
    assert all(3 <= s <= 10 for s in doc.steps.values())
    for agent in people:
        agent.step()
    finalize(aggregator)
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    assert aggregator.finished and aggregator.step() is None
    for agent in people:
        agent.step()
        assert agent.finished
    assert sum(world.fairfl.ledger.contributions(task_id).values()) == 200 * 10**18


def test_a_restarted_participant_neither_misses_nor_repeats_a_round(world):
    task_id = world.create_task(rounds=2)
    first = world.participant(task_id, 0)
    world.participant(task_id, 1)
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    assert len(first.step()[0]) == 1

    again = world.participant(task_id, 0)  # same state folder: the cursor is on disk
    assert again.step() == ([], [])
    # Lost cursor (crash before the ack): the ledger's record prevents a second submission.
    again.watcher.cursor_file.path.unlink()
    fresh = world.participant(task_id, 0)
    assert fresh.step() == ([], [])
    assert world.fairfl.ledger.round(task_id, 1).submissions == 1


def test_a_restarted_aggregator_finalizes_the_open_round_once(world):
    task_id = world.create_task(rounds=2)
    people = [world.participant(task_id, i) for i in range(2)]
    world.aggregator_agent(task_id).step()
    for agent in people:
        agent.step()
    restarted = world.aggregator_agent(task_id)  # reads the open round's reported times
    assert set(restarted.measurements) == {p.address.lower() for p in people}
    outcome = finalize(restarted)
    assert outcome.round == 1
    third = world.aggregator_agent(task_id)
    assert third.measurements == restarted.measurements
    number, _, _ = third.step()
    assert number == 2
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.FINALIZED


def _nan_weights(spec: ModelSpec) -> bytes:
    vector = init_params(spec, 0)
    good = encode_weights(spec, vector)
    return good.replace(np.float32(vector[0]).tobytes(), np.float32(np.nan).tobytes(), 1)


def test_bad_updates_are_rejected_with_a_reason_and_the_round_goes_on(world):
    spec = world.document.model
    task_id = world.create_task(rounds=1, min_participants=1)
    honest = world.participant(task_id, 0)
    cheats = world.bare_members(task_id, world.accounts[3:9])
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    [honest_update], _ = honest.step()

    def sealed(payload: bytes, account) -> bytes:
        return seal_update(payload, workload.aggregator_key, task_id, 1, account.address)

    nan = _nan_weights(spec)
    assert b"\x00\x00\xc0\x7f" in nan
    wrong_shape = encode_weights(ModelSpec(name="logreg", input_shape=(32,), num_classes=10),
                                 np.zeros(330, np.float32))
    oversized = b"\x00" * (2 * len(encode_weights(spec, init_params(spec, 0))) + 70_000)
    missing = compute_cid(b"never stored")
    tampered = world.store.add(sealed(encode_weights(spec, init_params(spec, 5)), cheats[4]))
    path = world.store._path(tampered)
    path.chmod(0o644)
    path.write_bytes(sealed(encode_weights(spec, init_params(spec, 6)), cheats[4]))
    cids = [world.store.add(sealed(nan, cheats[0])),
            world.store.add(sealed(wrong_shape, cheats[1])),
            world.store.add(sealed(oversized, cheats[2])), missing, tampered,
            honest_update.update_cid]  # the last one resubmits the honest participant's update
    for account, cid in zip(cheats, cids, strict=True):
        world.fairfl.ledger.submit_update(task_id, 1, cid, 10, 5, sender=account)

    outcome = finalize(aggregator)
    assert outcome.accepted == [honest.address]
    reasons = {v.participant: v.reason for v in outcome.verdicts if not v.accepted}
    assert set(reasons) == {a.address for a in cheats}
    expected = ["NaN", "shape", "limit", "is not in", "hash to", "copied from another sender"]
    for account, word in zip(cheats, expected, strict=True):
        assert reasons[account.address].startswith("invalid_update:")
        assert word.lower() in reasons[account.address].lower(), reasons[account.address]
    event = world.fairfl.ledger.events("RoundFinalized", taskId=task_id, round=1)[-1]
    result = RoundResult.from_chain(event.result)
    assert list(result.rejected) == [a.address for a in cheats]
    assert list(result.reasons) == [RejectReason.INVALID_UPDATE] * len(cheats)
    assert list(result.scores_ppm) == [1_000_000]
    evidence = RoundEvidence.from_json(world.store.get(result.evidence_cid))
    assert {v.participant: v.code for v in evidence.verdicts if not v.accepted} == \
        {a.address: RejectReason.INVALID_UPDATE for a in cheats}
    assert {v.participant for v in evidence.verdicts if v.cosine is not None} == \
        {honest.address}  # an update that could not be read has no figures
    for account in cheats:
        assert world.fairfl.registry.participant(account).rejected_updates == 1


def test_sybils_sending_junk_make_no_quorum_and_their_rejections_stand(world):
    """A quorum of three: one member trains, two sybils send junk. The aggregator does not
    publish the honest member's update as "the aggregate of three": it closes the round with
    the sybils' rejections and its evidence on record, pays nobody, and opens the next round
    on the same model."""
    spec = world.document.model
    task_id = world.create_task(rounds=1, min_participants=3)
    honest = world.participant(task_id, 0)
    sybils = world.bare_members(task_id, world.accounts[3:5])
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    global_cid = world.fairfl.ledger.task(task_id).global_model_cid
    honest.step()
    for account in sybils:
        junk = seal_update(_nan_weights(spec), workload.aggregator_key, task_id, 1,
                           account.address)
        world.fairfl.ledger.submit_update(task_id, 1, world.store.add(junk), 10, 5,
                                          sender=account)

    receipt = aggregator.step()

    assert not isinstance(receipt, RoundOutcome)
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.CLOSED
    assert world.fairfl.ledger.events("RoundFinalized", taskId=task_id) == []
    rejections = world.fairfl.registry.events("UpdateRejected", taskId=task_id)
    assert sorted(str(e.account) for e in rejections) == sorted(a.address for a in sybils)
    for account in sybils:
        assert world.fairfl.registry.participant(account).rejected_updates == 1
    assert world.fairfl.registry.participant(honest.account).rejected_updates == 0
    evidence = RoundEvidence.from_json(world.store.get(str(rejections[0].evidenceCid)))
    assert (evidence.round, evidence.global_model, evidence.new_model) == (1, global_cid, "")
    assert {v.participant: v.accepted for v in evidence.verdicts} == {
        honest.address: True, **{a.address: False for a in sybils}}
    [mine] = [v for v in evidence.verdicts if v.accepted]
    # Nobody is paid, and the aggregate that was never released is not measured against.
    assert (mine.share_ppm, mine.cosine) == (0, None) and mine.alone is not None
    assert all(world.fairfl.ledger.claimable(task_id, a) == 0
               for a in [honest.account, *sybils])
    number, _, _ = aggregator.step()
    assert number == 2
    assert world.fairfl.ledger.task(task_id).global_model_cid == global_cid
    # The app's views show the closed round's rejections, from the registry's events.
    from ape import chain

    from fl_agent.chain import history
    from fl_agent.chain.client import load_project
    from fl_agent.chain.index import EventIndex, JsonRpc, ape_decoder

    index = EventIndex(world.tmp / "index.sqlite", world.fairfl.deployment,
                       JsonRpc(chain.provider.http_uri), ape_decoder(load_project()))
    index.sync()
    view = history.tasks(index.events(task=task_id))[task_id].rounds[0]
    assert (view.finalized, view.closed_block is not None) == (False, True)
    assert sorted(view.rejected) == sorted(a.address for a in sybils)
    assert view.reasons == [RejectReason.INVALID_UPDATE] * 2
    assert view.evidence_cid == str(rejections[0].evidenceCid)


def test_a_plain_update_is_refused_the_aggregator_never_reads_unsealed_weights(world):
    task_id = world.create_task(rounds=1, min_participants=1)
    honest = world.participant(task_id, 0)
    plain = world.participant(task_id, 1)
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    honest.step()
    cid = world.store.add(encode_weights(world.document.model, init_params(world.document.model,
                                                                           1)))
    world.fairfl.ledger.submit_update(task_id, 1, cid, 10, 5, sender=plain.account)
    outcome = finalize(aggregator)
    reason = {v.participant: v.reason for v in outcome.verdicts}[plain.address]
    assert reason.startswith("invalid_update:") and "not sealed to the aggregator" in reason


def test_unknown_task_and_wrong_aggregator_give_clear_errors(world):
    with pytest.raises(ChainError, match="task 99 does not exist"):
        world.participant(99, 0)
    task_id = world.create_task()
    from fl_agent.agents import AggregatorAgent

    with pytest.raises(ConfigError, match="is not the aggregator"):
        AggregatorAgent(world.fairfl, world.store, world.accounts[0], task_id,
                        world.splits.validation.X, world.splits.validation.y, world.tmp)


def test_a_participant_with_data_of_the_wrong_shape_is_refused(world):
    task_id = world.create_task()
    from fl_agent.agents import ParticipantAgent

    with pytest.raises(ConfigError, match="64 features"):
        ParticipantAgent(world.fairfl, world.store, world.accounts[2], task_id,
                         np.zeros((5, 30)), np.zeros(5, np.int64), world.tmp)
    with pytest.raises(ConfigError, match="labels must lie"):
        ParticipantAgent(world.fairfl, world.store, world.accounts[2], task_id,
                         np.zeros((5, 64)), np.full(5, 12), world.tmp)


def test_a_blacklisted_participant_stops_and_the_others_go_on(world):
    task_id = world.create_task(rounds=1, min_participants=1)
    good, bad = world.participant(task_id, 0), world.participant(task_id, 1)
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    world.fairfl.registry.blacklist(bad.address, compute_cid(b"evidence"),
                                    sender=world.accounts[0])
    submitted, skipped = bad.step()
    assert submitted == [] and "blacklisted" in skipped[0].reason and bad.finished
    assert len(good.step()[0]) == 1
    outcome = finalize(aggregator)  # the quorum counts active participants only
    assert outcome.accepted == [good.address]
    with pytest.raises(ChainError, match="blacklisted"):
        bad.join()


def test_a_free_rider_is_paid_nothing(world):
    task_id = world.create_task(rounds=1, min_participants=1)
    people = [world.participant(task_id, i) for i in range(3)]
    rider = world.participant(task_id, 3, train=False)
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    for agent in [*people, rider]:
        agent.step()
    outcome = finalize(aggregator)
    verdict = {v.participant: v for v in outcome.verdicts}[rider.address]
    assert not verdict.accepted and verdict.reason == "free_rider" and verdict.share_ppm == 0
    assert (verdict.figures.cosine, verdict.figures.norm_ratio) == (0.0, 0.0)  # no change
    assert all(v.figures.norm_ratio > 0.5 for v in outcome.verdicts if v.accepted)
    assert world.fairfl.ledger.contributions(task_id).get(rider.address, 0) == 0


def test_only_the_aggregator_reads_updates_and_only_members_read_models(world):
    task_id = world.create_task(rounds=2, min_participants=1)
    agent = world.participant(task_id, 0)
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    [submission], _ = agent.step()
    blob = world.store.get(submission.update_cid)
    assert blob.startswith(b"FFLU") and b'"dtype"' not in blob  # sealed, not safetensors
    assert save({"x": np.zeros(1, np.float32)})[8:9] == b"{"
    outcome = finalize(aggregator)
    model = world.store.get(outcome.new_cid)
    assert model.startswith(b"FFLM") and b'"dtype"' not in model
    # The round's keyring gives the task key to members, the creator and the aggregator.
    aggregator.step()
    workload = Workload.from_json(world.store.get(str(world.fairfl.ledger.events(
        "RoundStarted", taskId=task_id, round=2)[-1].workloadCid)))
    ring = Keyring.from_json(world.store.get(workload.keyring))
    assert ring.holders() == {agent.address.lower(), aggregator.address.lower()}
    outsider, _ = new_buyer_key()
    with pytest.raises(SealingError, match="holds no key"):
        ring.open(world.accounts[7].address, outsider)
    assert decode_weights(decrypt_model(model, ring.open(agent.address, agent.member_key),
                                        task_id), world.document.model).shape == (650,)


def test_a_blacklisted_member_is_left_out_of_the_next_key_epoch(world):
    task_id = world.create_task(rounds=3, min_participants=1)
    good, bad = world.participant(task_id, 0), world.participant(task_id, 1)
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    good.step()
    bad.step()
    finalize(aggregator)
    world.fairfl.registry.blacklist(bad.address, compute_cid(b"evidence"),
                                    sender=world.accounts[0])
    aggregator.step()
    good.step()
    outcome = finalize(aggregator)
    new_model = world.store.get(outcome.new_cid)
    assert model_epoch(new_model) == 2
    bad_keys = Keyring.from_json(world.store.get(Workload.from_json(world.store.get(str(
        world.fairfl.ledger.events("RoundStarted", taskId=task_id, round=1)[-1].workloadCid
    ))).keyring)).open(bad.address, bad.member_key)
    with pytest.raises(SealingError, match="epoch 2"):
        decrypt_model(new_model, bad_keys, task_id)
    assert good.read_global_model().tolist() == pytest.approx(outcome.params.tolist())
    # A restarted aggregator reopens both epochs from its own keyring entry.
    restarted = world.aggregator_agent(task_id)
    assert set(restarted.keys.keys) == {1, 2}


def test_a_member_joining_once_training_began_is_never_given_the_model(world):
    """Whoever holds the task key reads the current global model: a newcomer in round 2
    would get round 1's model for the price of a join, so it gets no key at all."""
    task_id = world.create_task(rounds=3)
    people = [world.participant(task_id, i) for i in range(2)]
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    for agent in people:
        agent.step()
    finalize(aggregator)
    late = world.participant(task_id, 2)  # its watcher replays RoundStarted 1
    for _ in (2, 3):
        _, _, workload = aggregator.step()
        assert late.address.lower() not in \
            Keyring.from_json(world.store.get(workload.keyring)).holders()
        submitted, skipped = late.step()
        # Round 1 is closed (skipped without a word); the open round's key is not its.
        assert submitted == [] and len(skipped) == 1 and "holds no key" in skipped[0].reason
        for agent in people:
            agent.step()
        finalize(aggregator)
    assert world.fairfl.ledger.membership(task_id, late.address).last_submitted_round == 0
    model = world.store.get(world.fairfl.ledger.task(task_id).global_model_cid)
    with pytest.raises(SealingError):
        decrypt_model(model, {}, task_id)


def test_the_aggregator_points_fairfl_at_the_models_input_layer(world):
    from fl_agent.aggregation import FairFL, FedAvg
    from fl_agent.learning import input_layer

    task_id = world.create_task()
    from_document = world.aggregator_agent(task_id).strategy
    assert isinstance(from_document, FairFL)
    assert from_document.input_layer == input_layer(world.document.model) == (0, 10, 64)
    given = world.aggregator_agent(task_id, strategy=FairFL(tolerance=0.002)).strategy
    assert (given.input_layer, given.tolerance) == ((0, 10, 64), 0.002)
    pinned = world.aggregator_agent(task_id, strategy=FairFL(input_layer=(1, 2, 3))).strategy
    assert pinned.input_layer == (1, 2, 3)
    assert world.aggregator_agent(task_id, strategy=FedAvg()).strategy == FedAvg()


@pytest.mark.parametrize(("spec", "feature_shape", "layer"), [
    (ModelSpec(name="mlp", input_shape=(64,), num_classes=10), (8, 8), (0, 64, 64)),
    (ModelSpec(name="logreg", input_shape=(64,), num_classes=10), (1, 8, 8), (0, 10, 64)),
    (ModelSpec(name="mlp", input_shape=(30,), num_classes=2), (30,), None),  # tabular
    (ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10), (1, 8, 8), None),
])
def test_the_trigger_screen_reads_image_data_only(spec, feature_shape, layer):
    from fl_agent.agents.task_rule import trigger_screen_layer

    assert trigger_screen_layer(spec, feature_shape) == layer


def test_an_input_layer_that_does_not_fit_the_model_is_refused_at_start(world):
    from fl_agent.aggregation import FairFL

    task_id = world.create_task()
    with pytest.raises(ConfigError, match="input_layer=.*does not fit the task's logreg"):
        world.aggregator_agent(task_id, strategy=FairFL(input_layer=(600, 10, 64)))


def test_holding_the_key_is_earned_and_the_final_model_is_for_contributors_only(world):
    """Joining is open, so a member that never trains keeps the task key for its trial rounds
    only, and the final model (the one sold) opens for contributors, not for a member whose
    last update was rejected (a free rider here)."""
    from fl_agent.agents.access import TRIAL_ROUNDS, latest_keyring

    task_id = world.create_task(rounds=4, min_participants=1)
    honest = [world.participant(task_id, i) for i in range(2)]
    idle = world.participant(task_id, 2)  # joins, never submits
    rider = world.participant(task_id, 3, train=False)  # re-submits the model: rejected
    aggregator = world.aggregator_agent(task_id)
    holders, rider_rounds = [], []
    for _ in range(4):
        _, _, workload = aggregator.step()
        holders.append(Keyring.from_json(world.store.get(workload.keyring)).holders())
        for agent in honest:
            agent.step()
        rider_rounds += [s.round for s in rider.step()[0]]
        finalize_with_window(world, aggregator)
    # Left out from round 3, the rider goes on with the newest model it could read (round
    # 2's), is rejected a third time and blacklisted: losing the key does not let an
    # attacker slip away from the blacklist.
    assert rider_rounds == [1, 2, 3] and rider.blacklisted
    assert world.fairfl.registry.is_blacklisted(rider.address)
    assert all(idle.address.lower() in h for h in holders[:TRIAL_ROUNDS])
    assert all(idle.address.lower() not in h for h in holders[TRIAL_ROUNDS:])
    final = Keyring.from_json(world.store.get(latest_keyring(world.fairfl, world.store,
                                                             task_id)))
    assert {p.address.lower() for p in honest} <= final.holders()
    assert idle.address.lower() not in final.holders()
    assert rider.address.lower() not in final.holders()
    model = world.store.get(world.fairfl.ledger.task(task_id).global_model_cid)
    with pytest.raises(SealingError):
        decrypt_model(model, final.open(rider.address, rider.member_key), task_id)
    assert honest[0].read_global_model().shape == (650,)


def test_a_member_back_after_its_trial_trains_on_the_last_model_it_was_given(world):
    """A member named in the trial rounds' keyrings that trained in none of them (offline,
    or restarted: it remembers no model) and is left out of round 3's trains on round 2's
    model, read back from the chain and the store: the one the aggregator measures a DP
    update from. Before, it had no model in memory and skipped the round."""
    from fl_agent.agents.access import TRIAL_ROUNDS

    task_id = world.create_task(rounds=3, min_participants=1)
    honest = world.participant(task_id, 0)
    late = world.participant(task_id, 1)  # joined; its agent first runs in round 3
    aggregator = world.aggregator_agent(task_id)
    for _ in range(TRIAL_ROUNDS):
        aggregator.step()
        honest.step()
        finalize_with_window(world, aggregator)
    _, _, workload = aggregator.step()
    assert late.address.lower() not in Keyring.from_json(world.store.get(workload.keyring)) \
        .holders()
    seen: list[str] = []
    late.log = seen.append
    submitted, _ = late.step()
    assert [s.round for s in submitted] == [TRIAL_ROUNDS + 1]
    assert any("training on round 2's model" in line for line in seen)


def finalize_with_window(world, aggregator) -> RoundOutcome:
    """Finalizes the open round, letting the window run out if a member did not submit."""
    from ape import chain

    outcome = aggregator.step()
    while not isinstance(outcome, RoundOutcome):
        chain.provider.make_request("anvil_mine", [40])
        outcome = aggregator.step()
    return outcome


def test_an_updates_score_alone_is_published_in_the_metrics_own_sign():
    """The aggregator scores lower-is-better metrics negated (so higher is better inside);
    the evidence must show MSE as MSE, as it does the new model's validation."""
    from types import SimpleNamespace

    from fl_agent.agents.aggregator import AggregatorAgent
    from fl_agent.aggregation.rounds import UpdateFigures
    from fl_agent.learning.metrics import get_metric

    figures = UpdateFigures(cosine=0.5, norm_ratio=1.0, alone=-0.41)  # as score() gives MSE
    mse = AggregatorAgent._figures(SimpleNamespace(metric=get_metric("mse")), figures)
    assert mse == {"cosine": 0.5, "norm_ratio": 1.0, "alone": 0.41}
    accuracy = AggregatorAgent._figures(SimpleNamespace(metric=get_metric("accuracy")),
                                        UpdateFigures(0.5, 1.0, 0.9))
    assert accuracy["alone"] == 0.9
    assert AggregatorAgent._figures(SimpleNamespace(metric=get_metric("mse")), None) == {}


def test_a_round_finalized_between_the_state_read_and_the_event_read_is_read_again(
        world, monkeypatch):
    """``Ledger.task`` reads the task's state, then its events; a round finalized in
    between makes the events name a newer model than the state's hash. That is a race, not
    a gap in the node's history: the pair is read again."""
    from fl_agent.chain.client import ModelHistoryMismatch

    task_id = world.create_task(rounds=1)
    ledger = world.fairfl.ledger
    real = type(ledger).global_model_cid
    calls = []

    def racing(self, task, stored_hash=None):
        calls.append(task)
        if len(calls) == 1:
            raise ModelHistoryMismatch("a round was finalized between the two reads")
        return real(self, task, stored_hash)

    monkeypatch.setattr(type(ledger), "global_model_cid", racing)
    assert ledger.task(task_id).global_model_cid == real(ledger, task_id)
    assert len(calls) == 2
    calls.clear()
    monkeypatch.setattr(type(ledger), "global_model_cid",
                        lambda self, task, stored_hash=None: (_ for _ in ()).throw(
                            ModelHistoryMismatch("the node's history is incomplete")))
    with pytest.raises(ModelHistoryMismatch):
        ledger.task(task_id)  # three disagreements in a row: a real gap, reported
