"""What the contracts' events say, folded into views: tasks with their rounds, listings
with their purchases, participants with their reputation history.

Pure functions over :class:`~fl_agent.chain.index.Event` lists (from the
:class:`~fl_agent.chain.index.EventIndex`), so that a page renders from one local query
instead of many calls to the node, and so that the folding is tested without a chain. The
events carry everything these views need: the contracts emit each change right after
making it (see the interfaces' NatSpec).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from fl_agent.chain.index import Event
from fl_agent.chain.records import RoundResult, WatermarkClaim

# Purchase states, as ModelMarketplace's PurchaseStatus names them.
PENDING, DELIVERED, REFUNDED = "pending", "delivered", "refunded"


def _lower(address: str) -> str:
    return str(address).lower()


def _checksum(address: object) -> str:
    """Addresses inside decoded structs come back in lower case; show them as the chain
    spells them elsewhere."""
    return to_checksum_address(str(address))


# ---------------------------------------------------------------------------------------------
# Tasks and rounds
# ---------------------------------------------------------------------------------------------


@dataclass
class Submission:
    participant: str
    update_cid: str
    samples: int
    training_millis: int
    block: int
    tx: str
    #: The update's public privacy receipt ("" when its task has no privacy plan).
    privacy_cid: str = ""


@dataclass
class RoundView:
    task_id: int
    round: int
    started_block: int
    start_tx: str
    global_model_cid: str
    workload_cid: str
    deadline_block: int
    submissions: list[Submission] = field(default_factory=list)
    finalized_block: int | None = None
    finalize_tx: str | None = None
    new_model_cid: str | None = None
    contributors: list[str] = field(default_factory=list)
    scores_ppm: list[int] = field(default_factory=list)
    #: SHA-256 of the new model's plaintext (0x-hex), as the aggregator committed to it.
    model_hash: str | None = None
    rewards: list[int] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    reasons: list[int] = field(default_factory=list)
    evidence_cid: str | None = None
    aggregation_millis: int | None = None
    #: Closed without a model or rewards (no quorum, or its aggregator did not finalize it).
    closed_block: int | None = None

    @property
    def finalized(self) -> bool:
        return self.finalized_block is not None

    @property
    def transactions(self) -> list[str]:
        txs = [self.start_tx, *(s.tx for s in self.submissions)]
        return txs + ([self.finalize_tx] if self.finalize_tx else [])


@dataclass
class TaskView:
    task_id: int
    creator: str
    aggregator: str
    metric: str
    rounds_planned: int
    min_participants: int
    submission_window: int
    training_mode: int
    reward_per_round: int
    initial_model_cid: str
    spec_cid: str
    created_block: int
    participants: list[str] = field(default_factory=list)
    rounds: list[RoundView] = field(default_factory=list)
    completed_block: int | None = None
    cancelled_block: int | None = None
    final_model_cid: str | None = None
    #: What each account was credited (from RoundFinalized's rewards), and has claimed.
    earned: dict[str, int] = field(default_factory=dict)
    claimed: dict[str, int] = field(default_factory=dict)
    #: Ownership claims on the final model (``WatermarkClaimed``), oldest first.
    watermark_claims: list[WatermarkClaim] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.completed_block is not None:
            return "completed"
        return "cancelled" if self.cancelled_block is not None else "open"

    @property
    def current_round(self) -> int:
        return len(self.rounds)

    @property
    def total_rewarded(self) -> int:
        return sum(self.earned.values())

    @property
    def global_model_cid(self) -> str:
        for rnd in reversed(self.rounds):
            if rnd.new_model_cid:
                return rnd.new_model_cid
        return self.initial_model_cid

    def address_of(self, account: str) -> str:
        """``account`` as the chain spells it (checksummed), for display."""
        return next((p for p in self.participants if _lower(p) == _lower(account)), account)

    def share_of(self, account: str) -> float:
        """``account``'s share of the task's rewards: its share of the model's revenue."""
        total = self.total_rewarded
        return self.earned.get(_lower(account), 0) / total if total else 0.0


def _field(struct: dict[str, object], name: str, index: int) -> object:
    """A struct member decoded by name (ape gives names; older records are lists)."""
    if isinstance(struct, dict):
        return struct[name]
    return struct[index]  # type: ignore[index]


def tasks(events: Iterable[Event]) -> dict[int, TaskView]:
    """Every task with its rounds, members and rewards, from the ledger's events (and the
    registry's ``UpdateRejected``, which alone names the rejections of a round closed short
    of its quorum; those of a finalized round are in its ``RoundFinalized``)."""
    views: dict[int, TaskView] = {}
    for e in events:
        if e.name == "TaskCreated":
            c = e["config"]
            views[e["taskId"]] = TaskView(
                e["taskId"], e["creator"], e["aggregator"], str(_field(c, "metric", 2)),
                int(_field(c, "rounds", 4)), int(_field(c, "minParticipants", 5)),
                int(_field(c, "submissionWindow", 6)), int(_field(c, "trainingMode", 7)),
                int(_field(c, "rewardPerRound", 8)), str(_field(c, "modelCid", 0)),
                str(_field(c, "specCid", 1)), e.block)
            continue
        task = views.get(e.args.get("taskId", -1))
        if task is None:
            continue
        if e.name == "ParticipantJoined":
            task.participants.append(e["participant"])
        elif e.name == "RoundStarted":
            task.rounds.append(RoundView(task.task_id, e["round"], e.block, e.tx,
                                         e["globalModelCid"], e["workloadCid"],
                                         e["deadlineBlock"]))
        elif e.name == "UpdateSubmitted" and task.rounds:
            task.rounds[-1].submissions.append(Submission(
                e["participant"], e["updateCid"], e["numSamples"], e["trainingMillis"],
                e.block, e.tx, str(e["privacyCid"] or "")))
        elif e.name == "RoundFinalized" and task.rounds:
            rnd, r = task.rounds[-1], e["result"]
            rnd.finalized_block, rnd.finalize_tx = e.block, e.tx
            result = RoundResult.from_chain(r)
            rnd.new_model_cid = result.new_model_cid
            rnd.model_hash = "0x" + result.model_hash.hex()
            rnd.contributors = list(result.contributors)
            rnd.scores_ppm = list(result.scores_ppm)
            rnd.rejected = list(result.rejected)
            rnd.reasons = list(result.reasons)
            rnd.evidence_cid = result.evidence_cid
            rnd.aggregation_millis = result.aggregation_millis
            rnd.rewards = [int(x) for x in e["rewards"]]
            for who, amount in zip(rnd.contributors, rnd.rewards, strict=False):
                task.earned[_lower(who)] = task.earned.get(_lower(who), 0) + amount
        elif e.name == "TaskCompleted":
            task.completed_block, task.final_model_cid = e.block, e["finalModelCid"]
        elif e.name == "TaskCancelled":
            task.cancelled_block = e.block
        elif e.name == "RoundClosed" and task.rounds:
            task.rounds[-1].closed_block = e.block
        elif e.name == "UpdateRejected" and task.rounds:
            rnd = task.rounds[-1]
            if rnd.round == int(e["round"]) and not rnd.finalized:
                rnd.rejected.append(e["account"])
                rnd.reasons.append(int(e["reason"]))
                rnd.evidence_cid = e["evidenceCid"]
        elif e.name == "AggregatorReplaced":
            task.aggregator = e["aggregator"]
        elif e.name == "RewardsClaimed":
            who = _lower(e["participant"])
            task.claimed[who] = task.claimed.get(who, 0) + int(e["amount"])
        elif e.name == "WatermarkClaimed":
            task.watermark_claims.append(WatermarkClaim(
                task.task_id, e["participant"], bytes.fromhex(e["commitment"].removeprefix("0x")),
                e["claimCid"], e.block))
    return views


# ---------------------------------------------------------------------------------------------
# Listings and purchases
# ---------------------------------------------------------------------------------------------


@dataclass
class PurchaseView:
    model_id: int
    buyer: str
    price: int
    status: str
    purchased_block: int
    deadline_block: int
    buyer_key: str
    tx: str
    delivered_block: int | None = None
    sealed_key: str | None = None
    refunded_block: int | None = None


@dataclass
class ListingView:
    model_id: int
    task_id: int
    seller: str
    price: int
    encrypted_cid: str
    metadata_cid: str
    plaintext_hash: str
    listed_block: int
    tx: str
    active: bool = True
    purchases: list[PurchaseView] = field(default_factory=list)
    withdrawn: dict[str, int] = field(default_factory=dict)

    @property
    def sales(self) -> int:
        return sum(1 for p in self.purchases if p.status == DELIVERED)

    @property
    def revenue(self) -> int:
        return sum(p.price for p in self.purchases if p.status == DELIVERED)

    @property
    def escrowed(self) -> int:
        return sum(p.price for p in self.purchases if p.status == PENDING)

    def purchase_of(self, buyer: str) -> PurchaseView | None:
        """``buyer``'s latest purchase (a refunded buyer may buy again)."""
        mine = [p for p in self.purchases if _lower(p.buyer) == _lower(buyer)]
        return mine[-1] if mine else None


def listings(events: Iterable[Event]) -> dict[int, ListingView]:
    """Every listing with its price, state and purchases, from the marketplace's events."""
    views: dict[int, ListingView] = {}
    for e in events:
        if e.name == "ModelListed":
            views[e["modelId"]] = ListingView(
                e["modelId"], e["taskId"], e["seller"], int(e["price"]), e["encryptedCid"],
                e["metadataCid"], e["plaintextHash"], e.block, e.tx)
            continue
        listing = views.get(e.args.get("modelId", -1))
        if listing is None:
            continue
        if e.name == "PriceChanged":
            listing.price = int(e["newPrice"])
        elif e.name == "ModelDelisted":
            listing.active = False
        elif e.name == "ModelPurchased":
            listing.purchases.append(PurchaseView(
                listing.model_id, e["buyer"], int(e["price"]), PENDING, e.block,
                int(e["deadlineBlock"]), e["buyerKey"], e.tx))
        elif e.name in ("BuyerKeyUpdated", "KeyDelivered", "PurchaseRefunded"):
            purchase = listing.purchase_of(e["buyer"])
            if purchase is None:
                continue
            if e.name == "BuyerKeyUpdated":
                purchase.buyer_key, purchase.deadline_block = e["buyerKey"], int(
                    e["deadlineBlock"])
            elif e.name == "KeyDelivered":
                purchase.status, purchase.delivered_block = DELIVERED, e.block
                purchase.sealed_key = e["sealedKey"]
            else:
                purchase.status, purchase.refunded_block = REFUNDED, e.block
        elif e.name == "RevenueWithdrawn":
            who = _lower(e["payee"])
            listing.withdrawn[who] = listing.withdrawn.get(who, 0) + int(e["amount"])
    return views


def entitlement(listing: ListingView, task: TaskView, payee: str) -> int:
    """What ``payee`` is owed by ``listing`` in all (withdrawn or not): the model's revenue
    times its share of the task's rewards, rounded down as the contract does."""
    total = task.total_rewarded
    return listing.revenue * task.earned.get(_lower(payee), 0) // total if total else 0


# ---------------------------------------------------------------------------------------------
# Participants
# ---------------------------------------------------------------------------------------------


@dataclass
class ReputationStep:
    block: int
    task_id: int
    round: int
    outcome_bps: int
    reputation_bps: int


@dataclass
class BlacklistEntry:
    block: int
    by: str
    automatic: bool
    evidence_cid: str
    tx: str
    lifted_block: int | None = None


@dataclass
class ParticipantView:
    address: str
    registered_block: int
    metadata_cid: str
    reputation_bps: int
    history: list[ReputationStep] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    blacklist: list[BlacklistEntry] = field(default_factory=list)
    #: (task, round, reason code) of each rejected update, from the rounds' results.
    rejections: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def blacklisted(self) -> bool:
        return bool(self.blacklist) and self.blacklist[-1].lifted_block is None


def participants(events: Iterable[Event],
                 task_views: dict[int, TaskView] | None = None) -> dict[str, ParticipantView]:
    """Every registered participant with its reputation history and blacklist record
    (keyed by lower-case address); rejection reasons come from ``task_views``."""
    views: dict[str, ParticipantView] = {}
    for e in events:
        who = _lower(e.args.get("account", ""))
        if e.name == "ParticipantRegistered":
            views[who] = ParticipantView(e["account"], e.block, e["metadataCid"],
                                         int(e["reputationBps"]))
            continue
        person = views.get(who)
        if person is None:
            continue
        if e.name == "MetadataUpdated":
            person.metadata_cid = e["metadataCid"]
        elif e.name == "ReputationUpdated":
            person.reputation_bps = int(e["newBps"])
            person.history.append(ReputationStep(e.block, e["taskId"], int(e["round"]),
                                                 int(e["outcomeBps"]), int(e["newBps"])))
        elif e.name == "UpdateRejected":
            person.rejected += 1
        elif e.name == "Blacklisted":
            person.blacklist.append(BlacklistEntry(e.block, e["by"], bool(e["automatic"]),
                                                   e["evidenceCid"], e.tx))
        elif e.name == "BlacklistLifted" and person.blacklist:
            person.blacklist[-1].lifted_block = e.block
    for task in (task_views or {}).values():
        for rnd in task.rounds:
            for who in rnd.contributors:
                if _lower(who) in views:
                    views[_lower(who)].accepted += 1
            for who, code in zip(rnd.rejected, rnd.reasons, strict=False):
                if _lower(who) in views:
                    views[_lower(who)].rejections.append((task.task_id, rnd.round, code))
    return views
