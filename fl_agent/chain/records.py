"""Typed records of what the contracts store, as the rest of FairFL sees them.

Plain frozen dataclasses built from the tuples that ape returns, so that pages, agents and
reports never index into raw ABI output.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any


class TaskStatus(IntEnum):
    NONE = 0
    OPEN = 1
    COMPLETED = 2


class RoundStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FINALIZED = 2


class TrainingMode(IntFlag):
    """Privacy options of a task (the paper's "training mode"); combine with ``|``."""

    PLAIN = 0
    DP = 1
    PRUNING = 2
    HOMOMORPHIC = 4

    @classmethod
    def parse(cls, text: str) -> TrainingMode:
        """``"dp+pruning"`` → ``DP | PRUNING``; ``"plain"`` or ``""`` → ``PLAIN``."""
        mode = cls.PLAIN
        for part in filter(None, (p.strip().lower() for p in text.replace(",", "+").split("+"))):
            if part == "plain":
                continue
            try:
                mode |= cls[part.upper()]
            except KeyError:
                names = ", ".join(m.name.lower() for m in cls if m.name)
                raise ValueError(f"unknown training mode {part!r}; use {names}") from None
        return mode

    def label(self) -> str:
        return "+".join(m.name.lower() for m in TrainingMode if m and m in self) or "plain"


def _s(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class Participant:
    address: str
    registered: bool
    blacklisted: bool
    reputation_bps: int
    rejections_in_window: int
    window_start_block: int
    accepted_updates: int
    rejected_updates: int
    metadata_cid: str = ""

    @classmethod
    def from_chain(cls, address: str, raw: Any, metadata_cid: str = "") -> Participant:
        return cls(
            _s(address),
            bool(raw.registered),
            bool(raw.blacklisted),
            int(raw.reputationBps),
            int(raw.rejectionsInWindow),
            int(raw.windowStartBlock),
            int(raw.acceptedUpdates),
            int(raw.rejectedUpdates),
            metadata_cid,
        )


@dataclass(frozen=True)
class Task:
    task_id: int
    creator: str
    aggregator: str
    rounds: int
    current_round: int
    min_participants: int
    submission_window: int
    participant_count: int
    training_mode: TrainingMode
    status: TaskStatus
    reward_per_round: int
    total_rewarded: int
    global_model_hash: bytes
    spec_cid: str
    metric: str
    #: The current global model's CID; the contract keeps only its hash, the client reads the
    #: string back from the task's events (empty when built from storage alone).
    global_model_cid: str = ""

    @classmethod
    def from_chain(cls, task_id: int, raw: Any, global_model_cid: str = "") -> Task:
        return cls(
            task_id,
            _s(raw.creator),
            _s(raw.aggregator),
            int(raw.rounds),
            int(raw.currentRound),
            int(raw.minParticipants),
            int(raw.submissionWindow),
            int(raw.participantCount),
            TrainingMode(int(raw.trainingMode)),
            TaskStatus(int(raw.status)),
            int(raw.rewardPerRound),
            int(raw.totalRewarded),
            bytes(raw.globalModelHash),
            str(raw.specCid),
            str(raw.metric),
            global_model_cid,
        )


@dataclass(frozen=True)
class Round:
    task_id: int
    round: int
    start_block: int
    deadline_block: int
    finalized_block: int
    submissions: int
    status: RoundStatus

    @classmethod
    def from_chain(cls, task_id: int, number: int, raw: Any) -> Round:
        return cls(
            task_id,
            number,
            int(raw.startBlock),
            int(raw.deadlineBlock),
            int(raw.finalizedBlock),
            int(raw.submissions),
            RoundStatus(int(raw.status)),
        )


@dataclass(frozen=True)
class Membership:
    joined: bool
    last_submitted_round: int
    last_settled_round: int
    accepted_rounds: int
    rejected_rounds: int
    earned: int

    @classmethod
    def from_chain(cls, raw: Any) -> Membership:
        return cls(
            bool(raw.joined),
            int(raw.lastSubmittedRound),
            int(raw.lastSettledRound),
            int(raw.acceptedRounds),
            int(raw.rejectedRounds),
            int(raw.earned),
        )


@dataclass(frozen=True)
class Listing:
    model_id: int
    seller: str
    active: bool
    sales: int
    price: int
    revenue: int
    task_id: int
    plaintext_hash: bytes
    encrypted_cid: str
    metadata_cid: str
    payees: tuple[str, ...] = ()
    shares_bps: tuple[int, ...] = ()

    @classmethod
    def from_chain(cls, model_id: int, raw: Any, payees: Any = (), shares: Any = ()) -> Listing:
        return cls(
            model_id,
            _s(raw.seller),
            bool(raw.active),
            int(raw.sales),
            int(raw.price),
            int(raw.revenue),
            int(raw.taskId),
            bytes(raw.plaintextHash),
            str(raw.encryptedCid),
            str(raw.metadataCid),
            tuple(_s(p) for p in payees),
            tuple(int(s) for s in shares),
        )


@dataclass(frozen=True)
class RoundResult:
    """What an aggregator reports when it closes a round (ITaskLedger.RoundResult)."""

    new_model_cid: str
    contributors: tuple[str, ...]
    scores_bps: tuple[int, ...]
    rejected: tuple[str, ...] = ()
    aggregation_millis: int = 0

    @classmethod
    def from_chain(cls, raw: Any) -> RoundResult:
        """From an event's ``result``: ape gives a struct object or a plain list."""
        names = ("newModelCid", "contributors", "scoresBps", "rejected", "aggregationMillis")
        values = [getattr(raw, n) if hasattr(raw, n) else raw[i] for i, n in enumerate(names)]
        from eth_utils import to_checksum_address

        return cls(str(values[0]), tuple(to_checksum_address(str(a)) for a in values[1]),
                   tuple(int(s) for s in values[2]),
                   tuple(to_checksum_address(str(a)) for a in values[3]), int(values[4]))

    def as_abi(self) -> tuple[Any, ...]:
        return (
            self.new_model_cid,
            list(self.contributors),
            list(self.scores_bps),
            list(self.rejected),
            self.aggregation_millis,
        )


@dataclass(frozen=True)
class TaskSpec:
    """What a task creator supplies (ITaskLedger.TaskConfig)."""

    model_cid: str
    spec_cid: str
    metric: str
    aggregator: str
    rounds: int
    min_participants: int
    submission_window: int
    training_mode: TrainingMode
    reward_per_round: int

    def as_abi(self) -> dict[str, Any]:
        return {
            "modelCid": self.model_cid,
            "specCid": self.spec_cid,
            "metric": self.metric,
            "aggregator": self.aggregator,
            "rounds": self.rounds,
            "minParticipants": self.min_participants,
            "submissionWindow": self.submission_window,
            "trainingMode": int(self.training_mode),
            "rewardPerRound": self.reward_per_round,
        }


@dataclass(frozen=True)
class TxReceipt:
    """The part of a receipt that reports and the UI show."""

    tx_hash: str
    block: int
    gas_used: int
    return_value: Any = None
