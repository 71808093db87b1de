"""Homomorphic mode end to end on a real anvil: participants encrypt, the aggregator runs
FLTrust on ciphertexts and asks the key holder, through the KeyHolderDesk, to decrypt only the
round's scalars and its aggregate.

The new model is checked against plaintext FLTrust computed here from the vectors the
participants encrypted (captured by an update hook) and a reference direction trained here
the way FLTrust's server does; the aggregator is checked to hold no secret key.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
import tenseal as ts

from fl_agent.agents import RoundOutcome
from fl_agent.agents.evidence import RoundEvidence
from fl_agent.agents.he_round import (
    DecryptionOrder,
    DecryptionResult,
    HERequest,
    decode_aggregate,
)
from fl_agent.agents.keyholder import secret_context_path
from fl_agent.aggregation import rules
from fl_agent.chain.client import DecryptionKind
from fl_agent.chain.records import RejectReason, RoundResult, TaskStatus
from fl_agent.crypto.envelopes import decrypt_model, seal_update
from fl_agent.learning import decode_weights, encode_weights, init_params
from fl_agent.learning.models import param_count
from fl_agent.learning.training import train_local
from fl_agent.privacy.he import KeyHolder, PublicContext, encrypt_update
from fl_agent.privacy.plan import PrivacyReceipt
from fl_agent.storage.cid import compute_cid


def secrets_in(root: Any) -> tuple[list[Any], list[ts.Context]]:
    """Every KeyHolder and every TenSEAL context reachable from ``root`` through FairFL's
    own objects and plain containers."""
    holders, contexts, seen, stack = [], [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, KeyHolder):
            holders.append(obj)
        elif isinstance(obj, ts.Context):
            contexts.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif type(obj).__module__.startswith("fl_agent") and hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return holders, contexts


def plaintext_fltrust(world, global_vector: np.ndarray, vectors: list[np.ndarray]
                      ) -> np.ndarray:
    """FLTrust on the plain vectors, with the server update trained here on the aggregator's
    validation data as FLTrust's server does (seed 0, the task's training plan)."""
    document = world.document
    plan = document.training
    X_val = document.data.standardize(world.splits.validation.X)
    server = train_local(document.model, global_vector, X_val,
                         np.asarray(world.splits.validation.y, np.int64), plan.steps, seed=0,
                         batch_size=plan.batch_size, lr=plan.lr, momentum=plan.momentum).vector
    new, _ = rules.fltrust(global_vector.astype(np.float64),
                           np.stack(vectors).astype(np.float64),
                           np.asarray(server, np.float64))
    return new


def test_an_encrypted_fltrust_task_runs_to_completion_and_matches_plaintext_fltrust(
        world, holder):
    task_id = world.he_task(holder, rounds=2, min_participants=2)  # the two honest members
    captured: dict[str, list[np.ndarray]] = defaultdict(list)

    def capture(index: int, flip: bool):
        def hook(global_vector, result):
            vector = np.asarray(result.vector, np.float64)
            if flip:  # sign flip: the opposite of what it trained
                vector = 2 * np.asarray(global_vector, np.float64) - vector
            captured[world.accounts[2 + index].address].append(vector)
            return vector
        return hook

    people = [world.participant(task_id, i, update_hook=capture(i, flip=i == 2))
              for i in range(3)]
    attacker = people[2].address
    aggregator = world.aggregator_agent(task_id)
    keyholder = world.key_holder_agent(task_id)
    desk = world.fairfl.desk

    for number in (1, 2):
        opened, _, _ = aggregator.step()
        assert opened == number
        for agent in people:
            submitted, skipped = agent.step()
            assert len(submitted) == 1 and not skipped
        asked = aggregator.step()
        assert isinstance(asked, HERequest) and asked.kind == DecryptionKind.SCALARS
        assert aggregator.step() is None  # polled while the key holder works: no blocking
        if number == 2:  # both restart mid-round and resume from the chain and the store
            aggregator = world.aggregator_agent(task_id)
            keyholder = world.key_holder_agent(task_id)
            assert aggregator.step() is None
        [answer] = keyholder.step()
        assert answer.kind == DecryptionKind.SCALARS and answer.refused is None
        asked = aggregator.step()
        assert isinstance(asked, HERequest) and asked.kind == DecryptionKind.AGGREGATE
        [answer] = keyholder.step()
        assert answer.kind == DecryptionKind.AGGREGATE and answer.refused is None
        assert keyholder.step() == []
        outcome = aggregator.step()
        assert isinstance(outcome, RoundOutcome) and outcome.round == number

        # The attacker gets zero trust, the honest share the round's budget by trust.
        verdicts = {v.participant: v for v in outcome.verdicts}
        assert verdicts[attacker].reason == "zero_trust" and verdicts[attacker].score == 0
        assert verdicts[attacker].share_ppm == 0
        assert sorted(outcome.accepted) == sorted(p.address for p in people[:2])
        assert sum(v.share_ppm for v in outcome.verdicts) == 1_000_000
        result = RoundResult.from_chain(world.fairfl.ledger.events(
            "RoundFinalized", taskId=task_id, round=number)[-1].result)
        assert list(result.rejected) == [attacker]
        assert list(result.reasons) == [RejectReason.ZERO_TRUST]

        # The new model is plaintext FLTrust's on the vectors the participants encrypted.
        global_vector = decode_weights(decrypt_model(world.store.get(outcome.global_cid),
                                                     aggregator.keys.keys, task_id),
                                       world.document.model)
        expected = plaintext_fltrust(world, global_vector,
                                     [captured[p.address][number - 1] for p in people])
        assert np.max(np.abs(outcome.params - expected)) < 1e-3
        assert people[0].read_global_model().tolist() == pytest.approx(outcome.params.tolist())
        evidence = RoundEvidence.from_json(world.store.get(result.evidence_cid))
        assert evidence.strategy == "FLTrust (CKKS)"
        assert {v.participant: v.code for v in evidence.verdicts} == {
            people[0].address: 0, people[1].address: 0, attacker: RejectReason.ZERO_TRUST}

        # What the key holder released: three pairs of scalars, then one aggregate, on chain.
        scalars_id = desk.request_of(task_id, number, DecryptionKind.SCALARS)
        aggregate_id = desk.request_of(task_id, number, DecryptionKind.AGGREGATE)
        released = DecryptionResult.from_json(world.store.get(desk.result_cid(
            desk.request(scalars_id))))
        assert len(released.dots) == len(released.squared_norms) == 3
        order = DecryptionOrder.from_json(world.store.get(desk.document_cid(
            desk.request(aggregate_id))))
        assert order.scalars_request == scalars_id and order.weights[2] == 0.0
        aggregate = DecryptionResult.from_json(world.store.get(desk.result_cid(
            desk.request(aggregate_id))))
        delta = decode_aggregate(world.store.get(aggregate.aggregate),
                                 param_count(world.document.model))
        assert np.max(np.abs(global_vector + delta - expected)) < 1e-3

    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    assert aggregator.finished and keyholder.finished
    logs = desk.events("DecryptionRequested", taskId=task_id)
    assert [(int(log.round), int(log.kind)) for log in logs] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert {str(log.aggregator) for log in logs} == {world.aggregator.address}
    assert len(desk.events("DecryptionAnswered", taskId=task_id)) == 4

    # Participants published what they encrypted under; the aggregator never held a key
    # that decrypts: only the public context, whose decryption raises.
    receipts = [PrivacyReceipt.from_json(world.store.get(str(log.privacyCid)))
                for log in world.fairfl.ledger.events("UpdateSubmitted", taskId=task_id)]
    assert {r.he_fingerprint for r in receipts} == {holder.fingerprint}
    assert isinstance(aggregator.he.context, PublicContext)
    holders, contexts = secrets_in(aggregator)
    assert not holders and contexts
    assert not any(c.is_private() or c.has_secret_key() for c in contexts)
    with pytest.raises(ValueError):
        ts.ckks_vector(aggregator.he.context.tenseal_context, [1.0]).decrypt()
    secret = secret_context_path(world.tmp / "keys", holder.fingerprint)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert not world.store.has(compute_cid(holder.secret_context))  # never in the store


def test_dp_and_he_combine_dp_sgd_updates_are_encrypted_and_aggregated_by_fltrust(
        world, holder):
    """``dp+he``: each participant trains with DP-SGD, then encrypts; the aggregator runs
    FLTrust on the ciphertexts, reads every receipt (its ε and the context), and the new
    model is plaintext FLTrust's on the DP updates the participants encrypted."""
    task_id = world.he_task(holder, rounds=1, min_participants=2, epsilon=8.0)
    assert world.fairfl.ledger.task(task_id).training_mode.label() == "dp+homomorphic"
    captured: dict[str, np.ndarray] = {}

    def capture(index: int):
        def hook(global_vector, result):
            captured[world.accounts[2 + index].address] = np.asarray(result.vector, np.float64)
            return result.vector
        return hook

    people = [world.participant(task_id, i, update_hook=capture(i)) for i in range(3)]
    aggregator = world.aggregator_agent(task_id)
    keyholder = world.key_holder_agent(task_id)
    aggregator.step()
    for agent in people:
        submitted, skipped = agent.step()
        assert len(submitted) == 1 and not skipped
    assert isinstance(aggregator.step(), HERequest)
    keyholder.step()
    assert isinstance(aggregator.step(), HERequest)
    keyholder.step()
    outcome = aggregator.step()
    assert isinstance(outcome, RoundOutcome), outcome

    receipts = [PrivacyReceipt.from_json(world.store.get(str(log.privacyCid)))
                for log in world.fairfl.ledger.events("UpdateSubmitted", taskId=task_id)]
    assert len(receipts) == 3 and {r.he_fingerprint for r in receipts} == {holder.fingerprint}
    assert all(r.mode == "dp+homomorphic" and 0 < r.epsilon_spent <= 8.0
               and r.noise_multiplier > 0 and r.steps > 0 for r in receipts)
    expected = plaintext_fltrust(world, init_params(world.document.model, 0),
                                 [captured[p.address] for p in people])
    assert np.max(np.abs(outcome.params - expected)) < 1e-3


def test_bad_ciphertexts_are_rejected_with_a_reason_and_the_round_goes_on(world, holder):
    task_id = world.he_task(holder, rounds=1, min_participants=1)
    honest = world.participant(task_id, 0)
    cheats = world.bare_members(task_id, world.accounts[3:6])
    aggregator = world.aggregator_agent(task_id)
    keyholder = world.key_holder_agent(task_id)
    _, _, workload = aggregator.step()
    honest.step()

    spec = world.document.model
    delta = np.full(param_count(spec), 0.01)
    stranger = KeyHolder.create()  # another key pair: its fingerprint is not the task's
    good = encrypt_update(holder.public, delta)
    payloads = [encrypt_update(stranger.public, delta),  # another context
                good[:-1000],  # truncated
                encode_weights(spec, init_params(spec, 3))]  # plain weights in an he task
    for account, payload in zip(cheats, payloads, strict=True):
        cid = world.store.add(seal_update(payload, workload.aggregator_key, task_id, 1,
                                          account.address))
        world.fairfl.ledger.submit_update(task_id, 1, cid, 10, 5, sender=account)

    asked = aggregator.step()
    assert isinstance(asked, HERequest)
    order = DecryptionOrder.from_json(world.store.get(asked.order_cid))
    assert order.participants == (honest.address,)  # only the honest update is computed on
    keyholder.step()
    aggregator.step()
    keyholder.step()
    outcome = aggregator.step()
    assert isinstance(outcome, RoundOutcome)
    assert outcome.accepted == [honest.address]
    reasons = {v.participant: v.reason for v in outcome.verdicts if not v.accepted}
    expected = ["not this task's context", "truncated", "not a fairfl-ckks-update/2 document"]
    for account, words in zip(cheats, expected, strict=True):
        assert reasons[account.address].startswith("invalid_update:")
        assert words in reasons[account.address], reasons[account.address]
    result = RoundResult.from_chain(world.fairfl.ledger.events(
        "RoundFinalized", taskId=task_id, round=1)[-1].result)
    assert list(result.rejected) == [a.address for a in cheats]
    assert list(result.reasons) == [RejectReason.INVALID_UPDATE] * 3
    assert list(result.scores_ppm) == [1_000_000]
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED


def test_a_ciphertext_whose_squared_norm_wraps_around_is_refused_on_chain(world, holder,
                                                                         monkeypatch):
    """A member crafts its ciphertext (SEAL directly) as ``v + h``: ``v`` close to the
    aggregator's own step g0 (granted to the attacker, the worst case), ``h`` orthogonal to
    both with ``|h|^2`` one wrap period of the modulus, so its squared norm decrypts to
    ``|v|^2`` and FLTrust alone would let ``h`` take the round. The key holder's projections
    expose it: it is rejected as ``norm_outlier`` on chain, the released answer names it
    implausible, and the new model is plaintext FLTrust's on the honest update alone."""
    from benchmarks.privacy_he_wrap import wrapped_update

    task_id = world.he_task(holder, rounds=1, min_participants=1)
    captured: list[np.ndarray] = []

    def capture(global_vector, result):
        captured.append(np.asarray(result.vector, np.float64))
        return result.vector

    honest = world.participant(task_id, 0, update_hook=capture)
    [cheat] = world.bare_members(task_id, world.accounts[3:4])
    aggregator = world.aggregator_agent(task_id)
    keyholder = world.key_holder_agent(task_id)
    _, _, workload = aggregator.step()
    honest.step()
    global_vector = honest.read_global_model().astype(np.float64)
    plan = world.document.training
    X_val = world.document.data.standardize(world.splits.validation.X)
    g0 = np.asarray(train_local(world.document.model, global_vector, X_val,
                                np.asarray(world.splits.validation.y, np.int64), plan.steps,
                                seed=0, batch_size=plan.batch_size, lr=plan.lr,
                                momentum=plan.momentum).vector, np.float64) - global_vector
    rng = np.random.default_rng(5)
    noise = rng.normal(size=g0.size)
    noise *= 0.75 * np.linalg.norm(g0) / np.linalg.norm(noise)
    # Cosine 0.8 with g0, claiming a squared norm of 1: the CKKS error of h (a few hundredths
    # on the squared norm) cannot give the attacker away by a cosine above 1.
    document, _ = wrapped_update(holder.public, g0 + noise, g0, "hidden", rng, claimed=1.0)
    cid = world.store.add(seal_update(document, workload.aggregator_key, task_id, 1,
                                      cheat.address))
    # Its privacy receipt is in order: only the squared norm is a lie.
    privacy = aggregator.document.privacy
    receipt = PrivacyReceipt(task=task_id, round=1, participant=cheat.address.lower(),
                             mode=privacy.mode().label(), update_bytes=len(document),
                             he_fingerprint=privacy.he.fingerprint)
    world.fairfl.ledger.submit_update(task_id, 1, cid, 10, 5, sender=cheat,
                                      privacy_cid=world.store.add(receipt.to_json()))

    import fl_agent.privacy.he as he

    seeds: list[Any] = []
    computed = he.encrypted_scalars

    def spy(*args: Any, **kwargs: Any) -> bytes:
        seeds.append(kwargs.get("seed"))
        return computed(*args, **kwargs)

    monkeypatch.setattr(he, "encrypted_scalars", spy)
    assert isinstance(aggregator.step(), HERequest)
    assert seeds == [None]  # fresh directions, drawn once the round's updates are fixed
    keyholder.step()
    assert isinstance(aggregator.step(), HERequest)  # the aggregate of the honest update
    keyholder.step()
    outcome = aggregator.step()
    assert isinstance(outcome, RoundOutcome)
    assert outcome.accepted == [honest.address]
    verdicts = {v.participant: v for v in outcome.verdicts}
    assert verdicts[cheat.address].reason == "norm_outlier"
    result = RoundResult.from_chain(world.fairfl.ledger.events(
        "RoundFinalized", taskId=task_id, round=1)[-1].result)
    assert list(result.rejected) == [cheat.address]
    assert list(result.reasons) == [RejectReason.NORM_OUTLIER]
    desk = world.fairfl.desk
    released = DecryptionResult.from_json(world.store.get(desk.result_cid(desk.request(
        desk.request_of(task_id, 1, DecryptionKind.SCALARS)))))
    order = DecryptionOrder.from_json(world.store.get(desk.document_cid(desk.request(
        desk.request_of(task_id, 1, DecryptionKind.SCALARS)))))
    assert released.implausible == (order.participants.index(cheat.address),)
    # Without the flag the crafted update would have looked honest: a cosine near 0.9.
    i = order.participants.index(cheat.address)
    cosine = released.dots[i] / np.sqrt(released.squared_norms[i]) / order.reference_norm
    assert 0.5 < cosine <= 1.0
    expected = plaintext_fltrust(world, global_vector.astype(np.float32), captured)
    assert np.max(np.abs(outcome.params - expected)) < 1e-3
