"""The model page's table of watermark claims (app/rows.py ``watermarks``): each claim checked
as far as a reader without the weights can, from the folded history and the store.

The claims are real claim documents (fl_agent.privacy.claims) and the task and listing views
are folded from the events as the index stores them; the store is a dict. The end-to-end path
(agents, ``watermark claim``, ``market show``) is in tests/agents/test_privacy_modes.py.
"""

from __future__ import annotations

import hashlib
import sys

import pytest
from eth_utils import to_checksum_address

from fl_agent.chain import history
from fl_agent.chain.index import Event
from fl_agent.privacy.claims import make_claim
from fl_agent.privacy.watermark_key import WatermarkKey, WatermarkResult, commitment
from harness import REPO

ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b2" * 20)
CAROL = to_checksum_address("0x" + "c3" * 20)
WEIGHTS = b"the model's safetensors"


def event(name: str, block: int, **args) -> Event:
    return Event(block, 0, f"0x{block:064x}", "TaskLedger", name, args)


@pytest.fixture
def rows(monkeypatch: pytest.MonkeyPatch):
    sys.path.insert(0, str(REPO / "app"))
    import chain_data
    import rows as app_rows

    from fl_agent.chain.records import TrainingMode
    from fl_agent.privacy.plan import build_plan

    documents: dict[str, bytes] = {}
    monkeypatch.setattr(chain_data, "document", documents.get)
    plan = build_plan(TrainingMode.WATERMARK)  # the task document's plan, made with 32 bits
    plans = {"bafks": plan.model_copy(update={"watermark": plan.watermark.model_copy(
        update={"bits": 32})})}
    monkeypatch.setattr(chain_data, "task_plan", plans.get)
    return app_rows, documents


def test_claims_are_listed_with_what_a_reader_without_the_weights_can_check(rows):
    app_rows, documents = rows
    keys = {who: WatermarkKey(bytes([i + 1]) * 32, 32)
            for i, who in enumerate((ALICE, BOB, CAROL))}
    honest = WatermarkResult(32, 31, 31 / 32, 7.7e-9, True)
    documents["bafkalice"] = make_claim(keys[ALICE], ALICE, 1, WEIGHTS, honest).to_json()
    # Bob reveals a key it never committed (Carol's); Carol's document is missing.
    documents["bafkbob"] = make_claim(keys[CAROL], BOB, 1, WEIGHTS, honest).to_json()
    committed = {who: "0x" + commitment(keys[who], who, 1).hex() for who in keys}
    config = {"modelCid": "bafkm", "specCid": "bafks", "metric": "accuracy", "rounds": 1,
              "minParticipants": 1, "submissionWindow": 10, "trainingMode": 8,
              "rewardPerRound": 0}
    events = [event("TaskCreated", 1, taskId=1, creator=ALICE, aggregator=BOB, config=config),
              *[event("ParticipantJoined", 2, taskId=1, participant=w, participantCount=i + 1)
                for i, w in enumerate(keys)],
              event("WatermarkClaimed", 9, taskId=1, participant=ALICE,
                    commitment=committed[ALICE], claimCid="bafkalice"),
              event("WatermarkClaimed", 10, taskId=1, participant=BOB,
                    commitment=committed[BOB], claimCid="bafkbob"),
              event("WatermarkClaimed", 11, taskId=1, participant=CAROL,
                    commitment=committed[CAROL], claimCid="bafkcarol")]
    task = history.tasks(events)[1]
    task.earned.update({ALICE.lower(): 10, BOB.lower(): 10})  # Carol had nothing accepted
    listing = history.ListingView(1, 1, ALICE, 10, "bafke", "bafkmeta",
                                  "0x" + hashlib.sha256(WEIGHTS).hexdigest(), 12, "0x01")

    table = app_rows.watermarks(listing, task).set_index("claimant")

    assert list(table.index) == [ALICE, BOB, CAROL]
    assert table.loc[ALICE, "check"] == "claimed: key matches its commitment, bits not re-checked"
    assert table.loc[ALICE, "bits"] == "31/32"
    assert table.loc[ALICE, "chance_without"] == pytest.approx(33 / 2**32)
    assert table.loc[BOB, "check"].startswith("rejected: ")
    assert "not the one committed" in table.loc[BOB, "check"]
    assert "not in the store" in table.loc[CAROL, "check"]
    documents["bafkcarol"] = make_claim(keys[CAROL], CAROL, 1, WEIGHTS, honest).to_json()
    carol = app_rows.watermarks(listing, task).set_index("claimant").loc[CAROL, "check"]
    assert "contributed no accepted update" in carol

    other = history.ListingView(2, 1, ALICE, 10, "bafke", "bafkmeta", "0x" + "00" * 32, 12,
                                "0x02")
    assert "other weights" in app_rows.watermarks(other, task).loc[0, "check"]
