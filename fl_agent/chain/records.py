"""Typed records of what the contracts store, as the rest of FairFL sees them.

Plain frozen dataclasses built from the tuples that ape returns, so that pages, agents and
reports never index into raw ABI output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any


class TaskStatus(IntEnum):
    NONE = 0
    OPEN = 1
    COMPLETED = 2
    #: Its creator or governance stopped it; what it credited stays claimable.
    CANCELLED = 3


class RoundStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FINALIZED = 2
    #: Closed without a new model or rewards (no quorum, or the aggregator did not finalize).
    CLOSED = 3


class AppealStatus(IntEnum):
    """Where a blacklisted address's appeal stands (IParticipantRegistry.AppealStatus)."""

    NONE = 0
    PENDING = 1
    #: Governance lifted the blacklisting.
    GRANTED = 2
    DENIED = 3


class PurchaseStatus(IntEnum):
    """Where a buyer's purchase stands (IModelMarketplace.PurchaseStatus)."""

    NONE = 0
    #: Paid into escrow, waiting for the seller's key.
    PENDING = 1
    #: The key was delivered; the price counts as the model's revenue.
    DELIVERED = 2
    #: No key by the deadline: the buyer took its money back (and may buy again).
    REFUNDED = 3


class RejectReason(IntEnum):
    """Why an aggregator rejected an update (``RoundResult.reasons``, spec section 6).

    The ledger records these codes without interpreting them; the registry interprets one,
    :attr:`HELD_BACK`, which it records without counting it towards a ban.
    """

    OTHER = 0
    INVALID_UPDATE = 1
    NON_FINITE = 2
    NO_SAMPLES = 3
    FREE_RIDER = 4
    NORM_OUTLIER = 5
    TRIGGER = 6
    NOISE = 7
    DISSIMILAR = 8
    VALIDATION = 9
    OUTLIER_CLUSTER = 10
    NOT_SELECTED = 11
    ZERO_TRUST = 12
    #: Left out of the aggregate without evidence of harm: the registry neither counts it
    #: towards the blacklist nor moves the sender's reputation (ParticipantRegistry.HELD_BACK).
    HELD_BACK = 13


_MODE_ALIASES = {"prune": "pruning", "he": "homomorphic"}


class TrainingMode(IntFlag):
    """Privacy options of a task (the paper's "training mode"); combine with ``|``."""

    PLAIN = 0
    DP = 1
    PRUNING = 2
    HOMOMORPHIC = 4
    WATERMARK = 8

    @classmethod
    def parse(cls, text: str) -> TrainingMode:
        """``"dp+pruning"`` → ``DP | PRUNING``; ``"plain"`` or ``""`` → ``PLAIN``; ``prune``
        and ``he`` are short for ``pruning`` and ``homomorphic``."""
        mode = cls.PLAIN
        for part in filter(None, (p.strip().lower() for p in text.replace(",", "+").split("+"))):
            if part == "plain":
                continue
            part = _MODE_ALIASES.get(part, part)
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
    #: Rounds finalized so far; the task completes at ``rounds`` (closed rounds do not count,
    #: so ``current_round`` may run past ``rounds``).
    finalized_rounds: int = 0
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
            int(raw.finalizedRounds),
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
class WatermarkCommitment:
    """A member's commitment to its watermark key in one task (``commitment`` is 32 zero
    bytes and ``block`` 0 when it made none) and whether it has claimed it since."""

    commitment: bytes
    block: int
    claimed: bool

    @property
    def exists(self) -> bool:
        return any(self.commitment)


@dataclass(frozen=True)
class WatermarkClaim:
    """A ``WatermarkClaimed`` event: ``account`` revealed its key for task ``task_id`` in
    the claim document at ``claim_cid``, against the on-chain ``commitment``."""

    task_id: int
    account: str
    commitment: bytes
    claim_cid: str
    block: int


@dataclass(frozen=True)
class Listing:
    """A task's model for sale. Its payees are the task's contributors, weighted by what they
    earned (see ``Ledger.reward_share``); the contract stores no payee list."""

    model_id: int
    seller: str
    active: bool
    sales: int
    price: int
    escrowed: int
    revenue: int
    task_id: int
    plaintext_hash: bytes
    encrypted_cid: str
    metadata_cid: str

    @classmethod
    def from_chain(cls, model_id: int, raw: Any) -> Listing:
        return cls(
            model_id,
            _s(raw.seller),
            bool(raw.active),
            int(raw.sales),
            int(raw.price),
            int(raw.escrowed),
            int(raw.revenue),
            int(raw.taskId),
            bytes(raw.plaintextHash),
            str(raw.encryptedCid),
            str(raw.metadataCid),
        )


@dataclass(frozen=True)
class Purchase:
    """One buyer's purchase of one model (IModelMarketplace.Purchase)."""

    model_id: int
    buyer: str
    status: PurchaseStatus
    purchased_block: int
    #: Last block for the seller's key; the buyer may take a refund after it.
    deadline_block: int
    price_paid: int
    buyer_key: bytes

    @classmethod
    def from_chain(cls, model_id: int, buyer: str, raw: Any) -> Purchase:
        return cls(
            model_id,
            _s(buyer),
            PurchaseStatus(int(raw.status)),
            int(raw.purchasedBlock),
            int(raw.deadlineBlock),
            int(raw.pricePaid),
            bytes(raw.buyerKey),
        )


#: A zero ``RoundResult.model_hash``: the ledger refuses it (``TaskLedgerEmptyModelHash``).
NO_MODEL_HASH = b"\0" * 32
#: Scores are parts per million of a round's reward budget (``RoundResult.scores_ppm``).
PPM = 1_000_000


@dataclass(frozen=True)
class RoundResult:
    """What an aggregator reports when it closes a round (ITaskLedger.RoundResult).

    Fields are in ABI order. ``model_hash`` is the SHA-256 of the new model's plaintext
    weights, required by the ledger (the default, all zero, is refused: it is there so that a
    result can be built step by step). ``scores_ppm`` are the contributors' shares of the
    round's budget in parts per million, adding up to at most :data:`PPM`. ``reasons`` holds one
    :class:`RejectReason` code per ``rejected`` address; ``evidence_cid`` names the round's
    evidence document, which the ledger requires.
    """

    new_model_cid: str
    model_hash: bytes = NO_MODEL_HASH
    contributors: tuple[str, ...] = ()
    scores_ppm: tuple[int, ...] = ()
    rejected: tuple[str, ...] = ()
    reasons: tuple[int, ...] = ()
    evidence_cid: str = ""
    aggregation_millis: int = 0

    #: Field names in ABI order.
    ABI_FIELDS = (
        "newModelCid",
        "modelHash",
        "contributors",
        "scoresPpm",
        "rejected",
        "reasons",
        "evidenceCid",
        "aggregationMillis",
    )

    def __post_init__(self) -> None:
        if len(self.model_hash) != 32:
            raise ValueError(
                f"model_hash is a 32-byte SHA-256 digest, got {len(self.model_hash)} bytes"
            )

    @classmethod
    def from_chain(cls, raw: Any) -> RoundResult:
        """From an event's ``result``: ape gives a struct object or a plain list; the event
        index gives a dict of JSON values (bytes as 0x-hex)."""
        from eth_utils import to_checksum_address

        def field(i: int, name: str) -> Any:
            if isinstance(raw, Mapping):
                return raw[name]
            return getattr(raw, name) if hasattr(raw, name) else raw[i]

        values = [field(i, n) for i, n in enumerate(cls.ABI_FIELDS)]
        cid, model_hash, contributors, scores, rejected, reasons, evidence, millis = values
        if isinstance(model_hash, str):
            model_hash = bytes.fromhex(model_hash.removeprefix("0x"))
        return cls(
            new_model_cid=str(cid),
            model_hash=bytes(model_hash),
            contributors=tuple(to_checksum_address(str(a)) for a in contributors),
            scores_ppm=tuple(int(s) for s in scores),
            rejected=tuple(to_checksum_address(str(a)) for a in rejected),
            reasons=tuple(int(r) for r in reasons),
            evidence_cid=str(evidence),
            aggregation_millis=int(millis),
        )

    def as_abi(self) -> tuple[Any, ...]:
        """The struct as a tuple in ABI order."""
        return (
            self.new_model_cid,
            bytes(self.model_hash),
            list(self.contributors),
            list(self.scores_ppm),
            list(self.rejected),
            [int(r) for r in self.reasons],
            self.evidence_cid,
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
