"""The participants page's blacklist evidence names the rejections that counted: a held-back
update (ParticipantRegistry.HELD_BACK) is recorded, but the registry does not count it."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from fl_agent.chain.history import BlacklistEntry, ParticipantView
from fl_agent.chain.records import RejectReason
from harness import REPO


def test_held_back_updates_are_not_named_as_the_evidence_of_an_automatic_ban():
    sys.path.insert(0, str(REPO / "app"))
    import rows

    person = ParticipantView("0xabc", 1, "bafy-meta", 5_000)
    person.blacklist.append(BlacklistEntry(40, "0xagg", True, "bafy-ev", "0xtx"))
    validation, held = int(RejectReason.VALIDATION), int(RejectReason.HELD_BACK)
    person.rejections += [(1, 2, validation), (1, 3, validation), (1, 4, held),
                          (1, 5, validation), (1, 6, held)]
    table = rows.blacklist(SimpleNamespace(participants={"0xabc": person}))
    assert table.loc[0, "evidence"] == ("task 1 round 2: validation; task 1 round 3: "
                                        "validation; task 1 round 5: validation")
