"""The key holder of a homomorphic task on a real anvil: what it refuses to decrypt, and
``fl-agent keyholder`` as its own process.

A dishonest aggregator can only ask, through the KeyHolderDesk, for decryptions; each check
here reads the answer where the aggregator would, from the desk's result CID and the store,
not from the key holder agent's return value alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fl_agent.agents import RoundOutcome
from fl_agent.agents.he_round import (
    DecryptionOrder,
    DecryptionResult,
    HERequest,
    decode_aggregate,
)
from fl_agent.chain.client import DecryptionKind
from fl_agent.chain.records import TaskStatus
from fl_agent.crypto.envelopes import decrypt_model
from fl_agent.learning import decode_weights
from fl_agent.learning.models import param_count
from fl_agent.privacy.he import weighted_sum


def scalars_released(world, task_id, people):
    """Round 1 of an HE task opened, every member's update in, the scalars asked for and
    answered: the aggregator, the key holder, the request and the answer."""
    aggregator = world.aggregator_agent(task_id)
    keyholder = world.key_holder_agent(task_id)
    aggregator.step()
    for agent in people:
        agent.step()
    asked = aggregator.step()
    [answer] = keyholder.step()
    return aggregator, keyholder, asked, answer


def test_a_dishonest_aggregator_cannot_have_one_update_decrypted_with_one_hot_weights(
        world, holder):
    """After an honest release of the round's scalars, the aggregator asks the desk to
    decrypt the weighted sum with all the weight on one update, and says so in its order:
    the key holder answers on chain with a refusal and releases no aggregate. (It checks the
    weights the order declares; it cannot check that the ciphertexts were made with them,
    see docs/privacy-he.md, threat model.)"""
    task_id = world.he_task(holder, rounds=1, min_participants=3)
    sent: dict[str, np.ndarray] = {}

    def capture(index: int):
        def hook(global_vector, result):
            sent[world.accounts[2 + index].address] = (
                np.asarray(result.vector, np.float64) - np.asarray(global_vector, np.float64))
            return result.vector
        return hook

    people = [world.participant(task_id, i, update_hook=capture(i)) for i in range(3)]
    aggregator, keyholder, asked, answer = scalars_released(world, task_id, people)
    desk = world.fairfl.desk
    assert isinstance(asked, HERequest) and asked.kind == DecryptionKind.SCALARS
    assert answer.refused is None  # the scalars were released honestly

    # The aggregator's own arithmetic, with all the weight on one update.
    scalars = DecryptionOrder.from_json(world.store.get(asked.order_cid))
    victim = 1
    one_hot = tuple(float(i == victim) for i in range(len(scalars.updates)))
    he = aggregator.he
    ciphertexts = weighted_sum(he.context, he._updates(1, scalars), one_hot, he.length)
    # Decrypted, it would be the victim's update itself.
    exposed = holder.decrypt_aggregate(ciphertexts, he.length)
    assert np.max(np.abs(exposed - sent[scalars.participants[victim]])) < 1e-6
    forged = scalars.model_copy(update={
        "kind": "aggregate", "ciphertexts": world.store.add(ciphertexts),
        "scalars_request": asked.request_id, "weights": one_hot})
    request_id, _ = desk.request_decryption(task_id, 1, DecryptionKind.AGGREGATE,
                                            world.store.add(forged.to_json()),
                                            sender=world.aggregator)
    stored = set(world.store.directory.rglob("*"))
    [answer] = keyholder.step()

    # The answer on chain: by the key holder, a refusal that says why, no aggregate.
    request = desk.request(request_id)
    assert request.answered
    [log] = desk.events("DecryptionAnswered", requestId=request_id)
    assert str(log.keyHolder) == world.accounts[0].address
    result_cid = desk.result_cid(request)
    result = DecryptionResult.from_json(world.store.get(result_cid))
    assert (result.task, result.round, result.request, result.kind) == (
        task_id, 1, request_id, "aggregate")
    assert result.refused is not None and "not FLTrust's weights" in result.refused
    assert result.aggregate is None and not result.dots and not result.squared_norms
    assert answer.refused == result.refused and answer.result_cid == result_cid
    new = set(world.store.directory.rglob("*")) - stored
    assert [path.name for path in new if path.is_file()] == [result_cid]  # nothing else
    assert keyholder.step() == []
    # The round gets no model from it: the aggregator waits for its window to close it.
    assert aggregator.step() is None
    assert world.fairfl.ledger.events("RoundFinalized", taskId=task_id) == []


def test_an_aggregate_of_fewer_trusted_updates_than_the_quorum_is_never_decrypted(
        world, holder):
    """A quorum of three; one of three members sends its update reversed, which FLTrust
    does not trust. Asked for the aggregate of the other two with FLTrust's own weights, the
    key holder refuses (two updates are fewer than the task promised to hide each one among);
    the aggregator itself never asks: it closes the round with the rejection on record."""
    from fl_agent.chain.records import RoundStatus
    from fl_agent.privacy.he import RoundScalars, fltrust_weights

    task_id = world.he_task(holder, rounds=1, min_participants=3)

    def reversed_update(global_vector, result):
        return global_vector - 3.0 * (np.asarray(result.vector) - global_vector)

    people = [world.participant(task_id, i, update_hook=reversed_update if i == 2 else None)
              for i in range(3)]
    aggregator, keyholder, asked, answer = scalars_released(world, task_id, people)
    desk = world.fairfl.desk
    assert answer.refused is None
    scalars = DecryptionOrder.from_json(world.store.get(asked.order_cid))
    released = DecryptionResult.from_json(world.store.get(answer.result_cid))
    decision = fltrust_weights(RoundScalars(np.array(released.dots),
                                            np.array(released.squared_norms)),
                               scalars.reference_norm)
    assert len(decision.accepted) == 2
    assert scalars.participants[sorted(set(range(3)) - set(decision.accepted))[0]] == \
        people[2].address

    he = aggregator.he
    ciphertexts = weighted_sum(he.context, he._updates(1, scalars), decision.weights,
                               he.length)
    order = scalars.model_copy(update={
        "kind": "aggregate", "ciphertexts": world.store.add(ciphertexts),
        "scalars_request": asked.request_id,
        "weights": tuple(float(w) for w in decision.weights)})
    request_id, _ = desk.request_decryption(task_id, 1, DecryptionKind.AGGREGATE,
                                            world.store.add(order.to_json()),
                                            sender=world.aggregator)
    [answer] = keyholder.step()
    result = DecryptionResult.from_json(world.store.get(desk.result_cid(desk.request(request_id))))
    assert result.refused is not None and "quorum of 3" in result.refused
    assert result.aggregate is None

    closed = aggregator.step()
    assert not isinstance(closed, (RoundOutcome, HERequest)) and closed is not None
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.CLOSED
    assert world.fairfl.ledger.events("RoundFinalized", taskId=task_id) == []
    [rejection] = world.fairfl.registry.events("UpdateRejected", taskId=task_id)
    assert str(rejection.account) == people[2].address


@pytest.mark.parametrize("field, value", [("task", 99), ("round", 2), ("kind", "aggregate")])
def test_an_order_for_another_task_round_or_kind_than_requested_is_refused(
        world, holder, monkeypatch, field, value):
    """The round's scalars request on chain names an order (the aggregator's real one) that
    says it is for another task, round or kind: refused, nothing decrypted."""
    task_id = world.he_task(holder, rounds=1, min_participants=2)
    people = [world.participant(task_id, i) for i in range(2)]
    aggregator = world.aggregator_agent(task_id)
    keyholder = world.key_holder_agent(task_id)
    desk = world.fairfl.desk
    aggregator.step()
    for agent in people:
        agent.step()
    ask = aggregator.he._ask  # sends its order through desk.request_decryption
    monkeypatch.setattr(aggregator.he, "_ask", lambda number, kind, order: ask(
        number, kind, order.model_copy(update={field: value})))
    asked = aggregator.step()
    assert isinstance(asked, HERequest) and asked.kind == DecryptionKind.SCALARS
    order = DecryptionOrder.from_json(world.store.get(desk.document_cid(
        desk.request(asked.request_id))))
    assert getattr(order, field) == value and order.ciphertexts != "-"
    [answer] = keyholder.step()

    result = DecryptionResult.from_json(world.store.get(desk.result_cid(
        desk.request(asked.request_id))))
    assert (result.task, result.round, result.request, result.kind) == (
        task_id, 1, asked.request_id, "scalars")
    assert result.refused is not None and "not for what was requested on chain" in \
        result.refused, result.refused
    assert not result.dots and not result.squared_norms and result.aggregate is None
    assert answer.refused == result.refused
    # The aggregator reads the refusal: no aggregate is asked for, no model comes of it.
    assert aggregator.step() is None
    assert desk.request_of(task_id, 1, DecryptionKind.AGGREGATE) == 0
    assert world.fairfl.ledger.events("RoundFinalized", taskId=task_id) == []


def cli_env(world, anvil_url: str) -> dict[str, str]:
    """The environment of an ``fl-agent`` process sharing ``world``'s home (keys, store,
    cursors) and deployment, on the test chain."""
    from fl_agent.chain.deployment import save_deployment

    deployments = world.tmp / "deployments"
    save_deployment(world.fairfl.deployment, deployments)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FAIRFL_")}
    return {**inherited, "FAIRFL_HOME": str(world.tmp), "FAIRFL_DEPLOYMENTS": str(deployments),
            "FAIRFL_NETWORK": anvil_url, "COLUMNS": "200"}


def test_fl_agent_keyholder_as_its_own_process_serves_a_round_then_exits(world, holder,
                                                                          anvil_url):
    task_id = world.he_task(holder, rounds=1, min_participants=2)
    process = subprocess.Popen(
        [sys.executable, "-m", "fl_agent.cli", "keyholder", "--task", str(task_id),
         "--account", "TEST::0", "--poll-interval", "0.2"], env=cli_env(world, anvil_url),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        people = [world.participant(task_id, i) for i in range(2)]
        aggregator = world.aggregator_agent(task_id)
        aggregator.step()
        for agent in people:
            agent.step()
        outcomes = []
        deadline = time.monotonic() + 120
        while not aggregator.finished:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the round was not finalized in time"
            step = aggregator.step()
            if isinstance(step, RoundOutcome):
                outcomes.append(step)
            elif step is None:
                time.sleep(0.2)
        out, _ = process.communicate(timeout=30)  # exits by itself once the task is over
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, out
    assert "scalars decrypted" in out and "aggregate decrypted" in out, out
    assert "task ended" in out, out

    [outcome] = outcomes
    assert sorted(outcome.accepted) == sorted(p.address for p in people)
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    desk = world.fairfl.desk
    answers = desk.events("DecryptionAnswered", taskId=task_id)
    assert [(int(log.round), int(log.kind)) for log in answers] == [(1, 0), (1, 1)]
    assert {str(log.keyHolder) for log in answers} == {world.accounts[0].address}
    assert all(DecryptionResult.from_json(world.store.get(str(log.resultCid))).refused is None
               for log in answers)
    # The aggregate it released is the aggregator's ciphertext under the task's key (checked
    # here with the key), and the new model is the global one plus it.
    request = desk.request(desk.request_of(task_id, 1, DecryptionKind.AGGREGATE))
    result = DecryptionResult.from_json(world.store.get(desk.result_cid(request)))
    order = DecryptionOrder.from_json(world.store.get(desk.document_cid(request)))
    assert result.aggregate is not None
    length = param_count(world.document.model)
    delta = decode_aggregate(world.store.get(result.aggregate), length)
    mine = holder.decrypt_aggregate(world.store.get(order.ciphertexts), length)
    assert np.max(np.abs(delta - mine)) < 1e-6 and np.linalg.norm(mine) > 1e-3
    global_vector = decode_weights(decrypt_model(world.store.get(outcome.global_cid),
                                                 aggregator.keys.keys, task_id),
                                   world.document.model)
    assert np.max(np.abs(outcome.params - (global_vector + delta))) < 1e-5
    assert list((world.tmp / "agents").glob(f"keyholder-*-{task_id}-*.json"))  # its cursor


def test_a_key_holder_makes_the_keys_on_its_own_machine_and_the_creator_never_sees_them(
        world, holder, anvil_url):
    """`fl-agent keyholder --new-context` on the key holder's machine (its own FAIRFL_HOME;
    the shared store stands for IPFS), then `task create --he-context CID` on the creator's:
    the task names that context and that key holder, and only the key holder's machine has
    the secret key, from which its agent serves the task. A context holding a secret key is
    refused."""
    import re

    from click.testing import CliRunner

    from fl_agent.agents.keyholder import KeyHolderAgent
    from fl_agent.agents.participant import load_task_document
    from fl_agent.cli import main
    from fl_agent.errors import ConfigError

    home = world.tmp / "key-holder-home"
    home.mkdir()
    (home / "store").symlink_to(world.tmp / "store")
    env = {**cli_env(world, anvil_url), "FAIRFL_HOME": str(home)}
    made = CliRunner().invoke(main, ["keyholder", "--new-context", "--account", "TEST::4"],
                              env=env)
    assert made.exit_code == 0, made.output
    cid = re.search(r"public context (\S+)", made.output).group(1)
    signature = re.search(r"--he-attestation (0x[0-9a-f]+)", made.output).group(1)
    assert f"--key-holder {world.accounts[4].address} --he-context {cid}" in made.output
    assert len(list((home / "keys" / "ckks").glob("*.secret"))) == 1

    def create(*extra: str):
        return world.cli("task", "create", "--mode", "he", "--aggregator", "TEST::1",
                         "--account", "TEST::0", "--model", "logreg", "--rounds", "1", *extra)

    # The creator cannot pass the pair off as another's: the attestation must be signed by
    # the key holder it names, and it must be given.
    for extra, says in (
            (("--key-holder", "TEST::5", "--he-context", cid, "--he-attestation", signature),
             "not by the key holder"),  # (the message names its key holder: another
            # name recovers some other address)
            (("--key-holder", "TEST::4", "--he-context", cid), "go together")):
        refused = create(*extra)
        assert refused.exit_code != 0 and says in refused.output, refused.output
    created = create("--key-holder", "TEST::4", "--he-context", cid, "--he-attestation",
                     signature)
    assert created.exit_code == 0, created.output
    assert "creating the task's CKKS keys" not in created.output
    task_id = int(re.search(r"task (\d+) created", created.output).group(1))
    plan = load_task_document(world.store, world.fairfl.ledger.task(task_id).spec_cid
                              ).privacy.he
    assert plan.context_cid == cid and plan.key_holder == world.accounts[4].address
    assert plan.attestation == signature  # every participant's copy is checked as it parses
    assert world.fairfl.desk.key_holder_of(task_id) == world.accounts[4].address
    assert not list((world.tmp / "keys").glob("ckks/*.secret"))  # the creator has none
    agent = KeyHolderAgent(world.fairfl, world.store, world.accounts[4], task_id,
                           home / "keys", world.tmp / "agents")
    assert agent.holder.fingerprint == plan.fingerprint
    with pytest.raises(ConfigError, match="no secret CKKS context"):
        KeyHolderAgent(world.fairfl, world.store, world.accounts[4], task_id,
                       world.tmp / "keys", world.tmp / "agents")

    assert "where it ran `fl-agent keyholder" in created.output
    secret = world.store.add(holder.secret_context)
    refused = world.cli("task", "create", "--mode", "he", "--he-context", secret,
                        "--he-attestation", signature, "--key-holder", "TEST::4",
                        "--aggregator", "TEST::1", "--account", "TEST::0")
    assert refused.exit_code != 0 and "holds a secret key" in refused.output, refused.output
    nobody = world.cli("task", "create", "--mode", "he", "--he-context", cid, "--aggregator",
                       "TEST::1", "--account", "TEST::0")
    assert nobody.exit_code != 0 and "give that account with --key-holder" in nobody.output
    both = CliRunner().invoke(main, ["keyholder", "--new-context", "--task", "1", "--account",
                                     "TEST::4"], env=env)
    assert both.exit_code != 0 and "without --task" in both.output
