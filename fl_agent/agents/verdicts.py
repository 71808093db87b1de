"""What an aggregator decided in a round, as data: each update's :class:`Verdict`, the
round as its rule judged it (:class:`Judgement`), a finalized round (:class:`RoundOutcome`)
and what ``finalizeRound`` records for it (:func:`round_result`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_agent.agents.evidence import reason_code
from fl_agent.aggregation.rounds import UpdateFigures
from fl_agent.chain.records import RoundResult, TxReceipt


@dataclass(frozen=True)
class Verdict:
    """What the aggregator decided about one submitted update."""

    participant: str
    update_cid: str
    num_samples: int
    training_millis: int
    accepted: bool
    reason: str | None
    score: float
    share_ppm: int
    #: Figures for the evidence, whatever the rule (None: unread, or a homomorphic round).
    figures: UpdateFigures | None = None


@dataclass
class Judgement:
    """A round's updates as the aggregator read them and what its rule decided; indices
    are positions in ``logs`` (the round's submissions, in chain order)."""

    round: int
    workload_cid: str
    global_cid: str
    global_vector: np.ndarray = field(repr=False)
    logs: list[Any]
    vectors: list[np.ndarray] = field(repr=False)
    usable: list[int]  # the submissions in ``vectors``, in order
    accepted: set[int] = field(default_factory=set)
    reasons: dict[int, str] = field(default_factory=dict)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shares: list[int] = field(default_factory=list)
    params: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    #: What the rule measured, indices being positions in ``logs`` (evidence.renumbered).
    figures: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RoundOutcome:
    """One finalized round, as the aggregator saw it."""

    task_id: int
    round: int
    global_cid: str
    new_cid: str
    workload_cid: str
    verdicts: tuple[Verdict, ...]
    validation: float
    aggregation_millis: int
    receipt: TxReceipt
    params: np.ndarray = field(repr=False)
    evidence_cid: str = ""

    @property
    def accepted(self) -> list[str]:
        return [v.participant for v in self.verdicts if v.accepted]

    @property
    def rejected(self) -> list[str]:
        return [v.participant for v in self.verdicts if not v.accepted]


def round_result(new_cid: str, model_hash: bytes, verdicts: tuple[Verdict, ...],
                 evidence_cid: str, millis: int) -> RoundResult:
    """What ``finalizeRound`` records for these verdicts: contributors with their shares,
    the rejected with their reason codes."""
    rejected = [v for v in verdicts if not v.accepted]
    return RoundResult(
        new_model_cid=new_cid, model_hash=model_hash,
        contributors=tuple(v.participant for v in verdicts if v.accepted),
        scores_ppm=tuple(v.share_ppm for v in verdicts if v.accepted),
        rejected=tuple(v.participant for v in rejected),
        reasons=tuple(reason_code(v.reason) for v in rejected),
        evidence_cid=evidence_cid, aggregation_millis=millis)
