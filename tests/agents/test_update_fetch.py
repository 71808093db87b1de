"""The model the aggregator measures a DP update's length from
(:meth:`fl_agent.agents.update_fetch.UpdateFetcher.trained_from`): the round's own for a
member the round's keyring names, the newest earlier round's it was named in otherwise; and
the model such a member trains on (:meth:`fl_agent.agents.participant.ParticipantAgent.
_model_to_train_on`), which must be the same. Pure: the chain and store are stand-ins
holding real keyrings, workloads and encrypted models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fl_agent.agents.update_fetch import UpdateFetcher
from fl_agent.crypto.envelopes import Keyring
from fl_agent.crypto.sealing import new_buyer_key, new_content_key
from fl_agent.learning.models import ModelSpec, param_count
from fl_agent.learning.weights import encode_weights

SPEC = ModelSpec(name="logreg", input_shape=(64,), num_classes=10)
ALICE, BOB = "0x" + "aa" * 20, "0x" + "bb" * 20


def test_a_member_left_out_of_a_round_is_measured_from_the_last_model_it_could_read():
    store: dict[str, bytes] = {}
    keys = {1: new_content_key()}
    _, aggregator_pub = new_buyer_key()
    members = {ALICE: new_buyer_key()[1], BOB: new_buyer_key()[1]}
    # Rounds 1-2 name both members; round 3 leaves Bob out.
    for number, named in ((1, members), (2, members), (3, {ALICE: members[ALICE]})):
        store[f"ring{number}"] = Keyring.seal(7, 1, keys, named, aggregator_pub).to_json()
        store[f"model{number}"] = encode_weights(SPEC, np.full(param_count(SPEC), number,
                                                               np.float32))
    agent = SimpleNamespace(
        store=SimpleNamespace(get=store.__getitem__), task_id=7,
        keys=SimpleNamespace(keys=keys), document=SimpleNamespace(model=SPEC),
        _round_started=lambda n: SimpleNamespace(globalModelCid=f"model{n}"))
    fetcher = UpdateFetcher(agent)
    fetcher._workload = lambda n: SimpleNamespace(keyring=f"ring{n}")
    assert fetcher.trained_from(3, ALICE.upper().replace("0X", "0x"))[0] == 3
    assert fetcher.trained_from(3, BOB)[0] == 2  # round 2's model, the last it could read
    assert fetcher.trained_from(2, BOB)[0] == 2
    # A task without keyrings (plain models): every member trains on the round's model.
    fetcher._workload = lambda n: SimpleNamespace(keyring=None)
    assert fetcher.trained_from(3, BOB)[0] == 3


def _stand_in_task(named_in: dict[int, set[str]]):
    """Rounds 1..N with encrypted models (round n's model is all n) and keyrings naming
    ``named_in[n]``; Alice and Bob's key pairs. Returns (aggregator's fetcher, a function
    making a participant agent for an address, without its chain)."""
    from fl_agent.agents.participant import ParticipantAgent
    from fl_agent.crypto.envelopes import encrypt_model
    from fl_agent.learning.workload import Workload

    store: dict[str, bytes] = {}
    keys = {1: new_content_key()}
    pairs = {ALICE: new_buyer_key(), BOB: new_buyer_key()}
    _, aggregator_pub = new_buyer_key()
    for number, named in named_in.items():
        store[f"ring{number}"] = Keyring.seal(
            7, 1, keys, {a: pairs[a][1] for a in named}, aggregator_pub).to_json()
        store[f"model{number}"] = encrypt_model(
            encode_weights(SPEC, np.full(param_count(SPEC), number, np.float32)), keys[1], 1, 7)
        store[f"work{number}"] = Workload(round=number, batch_size=32, steps={},
                                          default_steps=20, keyring=f"ring{number}", key_epoch=1,
                                          aggregator_key=aggregator_pub).to_json()
    started = {n: SimpleNamespace(globalModelCid=f"model{n}", workloadCid=f"work{n}")
               for n in named_in}
    agent = SimpleNamespace(
        store=SimpleNamespace(get=store.__getitem__), task_id=7,
        keys=SimpleNamespace(keys=keys), document=SimpleNamespace(model=SPEC),
        _round_started=started.__getitem__)
    fetcher = UpdateFetcher(agent)
    fetcher._workload = lambda n: SimpleNamespace(keyring=f"ring{n}")

    def participant(address: str, last_read: int | None = None) -> ParticipantAgent:
        member = ParticipantAgent.__new__(ParticipantAgent)  # no chain: stand-ins below
        member.store = agent.store
        member.task_id, member.address, member.member_key = 7, address, pairs[address][0]
        member.document = agent.document
        member._keyrings, member._earlier, member._holders = {}, {}, {}
        member._last_read = None if last_read is None else (
            last_read, np.full(param_count(SPEC), last_read, np.float32))
        member.log = lambda message: None
        member.fairfl = SimpleNamespace(ledger=SimpleNamespace(
            round_started=lambda task, number: started[number]))
        return member

    return fetcher, participant


def trains_on(member, number: int) -> float:
    return float(member._model_to_train_on(SimpleNamespace(keyring=f"ring{number}"),
                                            f"model{number}", number)[0])


def test_a_member_left_out_trains_on_the_model_the_aggregator_measures_it_from():
    """Bob is named in rounds 1 and 2 and left out of round 3. Whatever it read before (it
    trained round 1 and missed round 2, or it restarted and remembers nothing), it trains on
    round 2's model, the one the aggregator measures its update from (before, a member that
    missed round 2 trained on round 1's, and its honest update looked longer)."""
    fetcher, participant = _stand_in_task({1: {ALICE, BOB}, 2: {ALICE, BOB}, 3: {ALICE}})
    assert fetcher.trained_from(3, BOB)[0] == 2
    assert trains_on(participant(BOB, last_read=1), 3) == 2
    assert trains_on(participant(BOB), 3) == 2
    assert trains_on(participant(ALICE, last_read=1), 3) == 3


def test_a_member_named_only_long_ago_trains_on_that_model_and_one_never_named_cannot():
    from fl_agent.crypto.envelopes import NotAReaderError

    fetcher, participant = _stand_in_task({1: {ALICE, BOB}, 2: {ALICE}, 3: {ALICE}})
    assert fetcher.trained_from(3, BOB)[0] == 1
    assert trains_on(participant(BOB), 3) == 1
    fetcher, participant = _stand_in_task({1: {ALICE}, 2: {ALICE}})
    with pytest.raises(NotAReaderError):
        trains_on(participant(BOB), 2)
    assert fetcher.trained_from(2, BOB, np.zeros(param_count(SPEC)))[0] == 0  # its own
