"""The model the aggregator measures a DP update's length from
(:meth:`fl_agent.agents.update_fetch.UpdateFetcher.trained_from`): the round's own for a
member the round's keyring names, the newest earlier round's it was named in otherwise (a
member left out trains on the last model it could read). Pure: the chain and store are
stand-ins holding real keyrings and models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

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
