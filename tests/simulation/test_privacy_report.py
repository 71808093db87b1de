"""The report's privacy section (:func:`fl_agent.simulation.report.privacy_section`) read from
receipts as a reader finds them: a malformed or missing one is listed against its sender and
left out of the figures, never a crash nor a figure made up."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fl_agent.chain.records import TrainingMode
from fl_agent.learning.models import ModelSpec
from fl_agent.learning.task_doc import DataSpec, TaskDocument, TrainingPlan
from fl_agent.privacy.plan import PrivacyReceipt, build_plan
from fl_agent.storage.base import ContentNotFoundError

ALICE, BOB = "0x" + "a1" * 20, "0x" + "b2" * 20


class Store:
    def __init__(self, content: dict[str, bytes]) -> None:
        self.content = content

    def get(self, cid: str) -> bytes:
        if cid not in self.content:
            raise ContentNotFoundError(f"{cid} is not here")
        return self.content[cid]


def receipt(who: str, number: int, size: int, epsilon: float) -> bytes:
    return PrivacyReceipt(task=1, round=number, participant=who, mode="dp", update_bytes=size,
                          epsilon_spent=epsilon, delta=1e-5, accountant="prv",
                          noise_multiplier=3.0, sample_rate=0.2, steps=20 * number).to_json()


def test_bad_receipts_are_listed_and_left_out_of_the_figures():
    from fl_agent.simulation.report import privacy_section

    spec = ModelSpec(name="logreg", input_shape=(4,), num_classes=3)
    document = TaskDocument.build(
        model=spec, data=DataSpec(name="toy", num_features=4, num_classes=3),
        training=TrainingPlan(steps=5, batch_size=8, lr=0.1),
        privacy=build_plan(TrainingMode.DP, epsilon=8.0))
    store = Store({"a1": receipt(ALICE, 1, 100, 1.0), "a2": receipt(ALICE, 2, 300, 2.0),
                   "b1": receipt(BOB, 1, 50, 1.5), "b2": b"{not json", "b3": b"[]"})
    logs = [SimpleNamespace(participant=who, privacyCid=cid) for who, cid in
            [(ALICE, "a1"), (ALICE, "a2"), (BOB, "b1"), (BOB, "b2"), (BOB, "b3"),
             (BOB, "gone"), (ALICE, "")]]
    fairfl = SimpleNamespace(ledger=SimpleNamespace(events=lambda *a, **k: logs))
    section = privacy_section(fairfl, store, 1, document, np.zeros(15), {})
    alice, bob = section["participants"][ALICE], section["participants"][BOB]
    assert alice == {"updates": 2, "epsilon_spent": 2.0, "bytes_per_update": 200.0}
    assert bob["updates"] == 1 and bob["bytes_per_update"] == 50.0
    assert [line.split(":")[0] for line in bob["bad_receipts"]] == ["b2", "b3", "gone"]
    assert section["epsilon_spent_max"] == 2.0
    assert section["bytes_per_update_mean"] == pytest.approx(125.0)


def test_participant_level_records_are_read_from_each_rounds_evidence_and_a_gap_is_listed():
    """Round 1's evidence holds its DP-FedAvg record; round 2's cannot be read: the section
    lists both, and the ε spent is the largest one read, not a crash on the gap."""
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.simulation.report import privacy_section

    spec = ModelSpec(name="logreg", input_shape=(4,), num_classes=3)
    document = TaskDocument.build(
        model=spec, data=DataSpec(name="toy", num_features=4, num_classes=3),
        training=TrainingPlan(steps=5, batch_size=8, lr=0.1),
        privacy=build_plan(TrainingMode.DP, epsilon=8.0, dp_level="participant"))
    record = {"clip": 1.0, "noise_multiplier": 2.0, "noise_std": 0.5, "updates": 4,
              "clipped": 1, "applications": 1, "epsilon": 3.25, "delta": 1e-5,
              "accountant": "prv"}
    evidence = RoundEvidence(task=1, round=1, global_model="g", new_model="m", strategy="FedAvg",
                             metric="accuracy", validation=0.5, verdicts=(),
                             dp_fedavg=record).to_json()

    def finalized(number: int, cid: str) -> SimpleNamespace:
        fields = dict.fromkeys(("contributors", "scoresPpm", "rejected", "reasons"), [])
        return SimpleNamespace(round=number, result={
            **fields, "newModelCid": "m", "modelHash": "0x" + "11" * 32, "evidenceCid": cid,
            "aggregationMillis": 5})

    logs = {"UpdateSubmitted": [], "RoundFinalized": [finalized(1, "e1"), finalized(2, "gone")]}
    fairfl = SimpleNamespace(ledger=SimpleNamespace(events=lambda name, **k: logs[name]))
    section = privacy_section(fairfl, Store({"e1": evidence}), 1, document, np.zeros(15), {})
    first, second = section["dp_fedavg"]
    assert first == {"round": 1, **record}
    assert second["round"] == 2 and "gone" in second["error"]
    assert section["epsilon_spent_max"] == 3.25 and section["delta"] == 1e-5
