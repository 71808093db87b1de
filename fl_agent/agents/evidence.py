"""The evidence of a round: why each update was accepted or rejected, in public.

The aggregator stores this JSON document in IPFS and names it in ``finalizeRound``
(``evidenceCid``), with one reason code per rejected sender in the same transaction, so
anyone can see why a participant lost reputation and what each update earned. It holds
figures only (scores, shares, the new model's validation score, and per update its cosine
to the new model's change, its relative length and its validation score alone), never
weights.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fl_agent.aggregation.base import Reason
from fl_agent.chain.records import RejectReason
from fl_agent.documents import Document

#: Version 2 added each update's figures (``cosine``, ``norm_ratio``, ``alone``); a reader
#: takes both versions, and a record of version 1 has none.
FORMAT = "fairfl-round-evidence/2"

#: A sent update that could not be fetched, opened (not sealed to the aggregator, copied
#: from another sender) or decoded as the task's weights.
INVALID_UPDATE = "invalid_update"

#: Each rejection reason's on-chain code (``RoundResult.reasons``, ITaskLedger).
REASON_CODES: dict[str, RejectReason] = {
    INVALID_UPDATE: RejectReason.INVALID_UPDATE,
    **{str(reason): RejectReason[reason.name] for reason in Reason},
}


def reason_code(reason: str | None) -> int:
    """The on-chain code of a rejection reason (``"invalid_update: ..."`` counts as
    :data:`INVALID_UPDATE`)."""
    if reason is None:
        return int(RejectReason.OTHER)
    return int(REASON_CODES.get(reason.split(":", 1)[0].strip(), RejectReason.OTHER))


def reason_name(code: int) -> str:
    """``9`` -> ``"validation"``: the name of an on-chain reason code."""
    try:
        return RejectReason(code).name.lower()
    except ValueError:
        return "other"


class VerdictRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    participant: str
    update: str
    samples: int  # as the participant reported it: unchecked, unused by the decision
    training_millis: int
    accepted: bool
    reason: str | None = None
    code: int = 0
    score: float = 0.0
    #: The update's share of the round's reward budget, in parts per million.
    share_ppm: int = 0
    #: Figures about the update whatever the rule (``fl_agent.aggregation.rounds.
    #: update_figures``), absent for an update that could not be read: the cosine of its
    #: delta to the new model's delta, its length over the round's median, and the task
    #: metric of the global model plus this update alone on the aggregator's validation data.
    cosine: float | None = None
    norm_ratio: float | None = None
    alone: float | None = None


class RoundEvidence(Document):
    """What the aggregator decided in one round, and on what figures."""

    KIND = "FairFL round evidence document"

    format: str = Field(FORMAT, pattern=r"^fairfl-round-evidence/[12]$")
    task: int
    round: int
    global_model: str
    #: Empty when the round was closed short of its quorum (``closeRoundRejecting``): the
    #: verdicts stand, but no model was made and the global model stays.
    new_model: str
    strategy: str
    metric: str
    #: SHA-256 (hex) of the new model's plaintext, as in the round's ``modelHash``.
    new_model_sha256: str = ""
    #: The task metric of the new model on the aggregator's validation split.
    validation: float
    verdicts: tuple[VerdictRecord, ...]
    aggregation_millis: int = 0
    #: The keyring that opens ``new_model`` (its readers: see fl_agent.agents.access).
    keyring: str | None = None
    key_epoch: int = 0
