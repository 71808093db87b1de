"""Typed wrappers around the FairFL contracts, in the manner of ApePay's ``StreamManager``.

Every other module talks to the chain through these classes: they turn ABI tuples into the
records of :mod:`fl_agent.chain.records`, turn reverts into :class:`ContractRevertError`
carrying the custom error's name, and read event history. Works on any network ape can
connect to; the caller connects (``ape.networks.parse_network_choice``) and passes accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from fl_agent.chain.deployment import Deployment
from fl_agent.chain.logs import contract_logs, height
from fl_agent.chain.records import (
    AppealStatus,
    Listing,
    Membership,
    Participant,
    Purchase,
    Round,
    RoundResult,
    Task,
    TaskSpec,
    TxReceipt,
    WatermarkClaim,
    WatermarkCommitment,
)
from fl_agent.chain.transactions import transact
from fl_agent.errors import ChainError, ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_project() -> Any:
    """The ape project holding the compiled FairFL contracts (compiles on first use)."""
    import ape

    if Path(ape.project.path).resolve() == PROJECT_ROOT:
        return ape.project
    return ape.Project(PROJECT_ROOT)


class ModelHistoryMismatch(ChainError):
    """The events name a global model whose hash is not the one the task's state stores: a
    round was finalized between the two reads, or the node's event history is incomplete."""


class _Wrapper:
    contract_name: str = ""

    def __init__(self, address: str, project: Any | None = None, start_block: int = 0) -> None:
        project = project or load_project()
        self.contract = getattr(project, self.contract_name).at(address)
        #: Where event queries start by default: the deployment's block (none before it).
        self.start_block = start_block

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def events(self, name: str, start_block: int | None = None, **filters: Any) -> list[Any]:
        """Logs of event ``name`` (e.g. ``"UpdateSubmitted"``) since ``start_block`` (default:
        the deployment's block), filtered on indexed fields (``taskId=1``)."""
        first = self.start_block if start_block is None else max(start_block, self.start_block)
        return contract_logs(self.contract, name, first, chain_height(), filters)


class Token(_Wrapper):
    """An ERC-20: FLT, or whatever token the marketplace takes payment in.

    Only ERC-20 functions are called here, through the FairToken ABI, whose ERC-20 part is the
    standard one; ``mint`` exists on FLT only.
    """

    contract_name = "FairToken"

    def symbol(self) -> str:
        return str(self.contract.symbol())

    def decimals(self) -> int:
        return int(self.contract.decimals())

    def balance_of(self, account: Any) -> int:
        return int(self.contract.balanceOf(account))

    def total_supply(self) -> int:
        return int(self.contract.totalSupply())

    def allowance(self, owner: Any, spender: Any) -> int:
        return int(self.contract.allowance(owner, spender))

    def approve(self, spender: Any, amount: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.approve, spender, amount, sender=sender)

    def transfer(self, to: Any, amount: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.transfer, to, amount, sender=sender)

    def mint(self, to: Any, amount: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.mint, to, amount, sender=sender)


class Registry(_Wrapper):
    """Identity, reputation and blacklist."""

    contract_name = "ParticipantRegistry"

    def register(self, metadata_cid: str, *, sender: Any) -> TxReceipt:
        return transact(self.contract.register, metadata_cid, sender=sender)

    def update_metadata(self, metadata_cid: str, *, sender: Any) -> TxReceipt:
        return transact(self.contract.updateMetadata, metadata_cid, sender=sender)

    def blacklist(self, account: Any, evidence_cid: str, *, sender: Any) -> TxReceipt:
        return transact(self.contract.blacklist, account, evidence_cid, sender=sender)

    def lift_blacklist(self, account: Any, *, sender: Any) -> TxReceipt:
        return transact(self.contract.liftBlacklist, account, sender=sender)

    def file_appeal(self, statement_cid: str, *, sender: Any) -> TxReceipt:
        """The sender, blacklisted, appeals (once per blacklisting) with its statement's CID."""
        return transact(self.contract.fileAppeal, statement_cid, sender=sender)

    def resolve_appeal(self, account: Any, granted: bool, decision_cid: str, *,
                       sender: Any) -> TxReceipt:
        """Governance grants (lifts the blacklisting) or denies the pending appeal."""
        return transact(self.contract.resolveAppeal, account, granted, decision_cid,
                         sender=sender)

    def appeal_of(self, account: Any) -> AppealStatus:
        return AppealStatus(int(self.contract.appealOf(account)))

    def participant(self, account: Any) -> Participant:
        address = str(getattr(account, "address", account))
        raw = self.contract.participant(address)
        return Participant.from_chain(address, raw, str(self.contract.metadataOf(address)))

    def is_blacklisted(self, account: Any) -> bool:
        return bool(self.contract.isBlacklisted(account))

    def participants(self) -> list[Participant]:
        count = int(self.contract.participantCount())
        return [self.participant(self.contract.participantAt(i)) for i in range(count)]


class Ledger(_Wrapper):
    """Tasks, rounds, uploads and aggregations."""

    contract_name = "TaskLedger"

    def create_task(self, spec: TaskSpec, *, sender: Any) -> tuple[int, TxReceipt]:
        receipt = transact(self.contract.createTask, spec.as_abi(), sender=sender)
        return int(receipt.return_value or self.task_count()), receipt

    def join(self, task_id: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.join, task_id, sender=sender)

    def start_round(
        self, task_id: int, workload_cid: str, *, sender: Any, global_model_cid: str | None = None
    ) -> tuple[int, TxReceipt]:
        """Opens the next round on the task's current global model (read from its events
        unless given)."""
        model = global_model_cid or self.global_model_cid(task_id)
        receipt = transact(self.contract.startRound, task_id, model, workload_cid, sender=sender)
        return int(receipt.return_value or self.task(task_id).current_round), receipt

    def submit_update(
        self,
        task_id: int,
        round_number: int,
        update_cid: str,
        num_samples: int,
        training_millis: int,
        *,
        sender: Any,
        privacy_cid: str = "",
    ) -> TxReceipt:
        """Records an update; ``privacy_cid`` names its public privacy receipt (see
        :mod:`fl_agent.privacy.receipt`), empty in plain mode."""
        return transact(
            self.contract.submitUpdate,
            task_id,
            round_number,
            update_cid,
            num_samples,
            training_millis,
            privacy_cid,
            sender=sender,
        )

    def commit_watermark(self, task_id: int, commitment: bytes, *, sender: Any) -> TxReceipt:
        """Commits, once per member and task, to the key of the watermark it embeds."""
        return transact(self.contract.commitWatermark, task_id, commitment, sender=sender)

    def watermark_commitment(self, task_id: int, participant: str) -> WatermarkCommitment:
        """``participant``'s commitment to its watermark key in the task (32 zero bytes and
        block 0 when it committed none), and whether it has claimed it."""
        commitment, block, claimed = self.contract.watermarkCommitment(task_id, participant)
        return WatermarkCommitment(bytes(commitment), int(block), bool(claimed))

    def claim_watermark(self, task_id: int, claim_cid: str, *, sender: Any) -> TxReceipt:
        """Once the task completed, reveals the caller's watermark key in the claim document
        at ``claim_cid`` (see :mod:`fl_agent.privacy.claims`)."""
        return transact(self.contract.claimWatermark, task_id, claim_cid, sender=sender)

    def watermark_claims(self, task_id: int) -> list[WatermarkClaim]:
        """Every ``WatermarkClaimed`` of the task, oldest first."""
        return [
            WatermarkClaim(int(log.taskId), str(log.participant), bytes(log.commitment),
                           str(log.claimCid), int(log.block_number))
            for log in self.events("WatermarkClaimed", taskId=task_id)
        ]

    def finalize_round(
        self, task_id: int, round_number: int, result: RoundResult, *, sender: Any
    ) -> TxReceipt:
        return transact(
            self.contract.finalizeRound, task_id, round_number, result.as_abi(), sender=sender
        )

    def close_round(self, task_id: int, round_number: int, *, sender: Any) -> TxReceipt:
        """Closes an open round without a model or rewards: the aggregator once its window
        has passed, anyone after one more window."""
        return transact(self.contract.closeRound, task_id, round_number, sender=sender)

    def close_round_rejecting(self, task_id: int, round_number: int, rejected: Sequence[str],
                              reasons: Sequence[int], evidence_cid: str, *,
                              sender: Any) -> TxReceipt:
        """Closes an open round whose updates, less the ``rejected`` ones, fall short of the
        quorum: the rejections count as in ``finalize_round``; no model, no rewards."""
        return transact(self.contract.closeRoundRejecting, task_id, round_number,
                         list(rejected), list(reasons), evidence_cid, sender=sender)

    def propose_aggregator(self, task_id: int, aggregator: Any, *, sender: Any) -> TxReceipt:
        """The task's creator proposes a new aggregator (installable after the delay)."""
        return transact(self.contract.proposeAggregator, task_id, aggregator, sender=sender)

    def replace_aggregator(self, task_id: int, aggregator: Any, *, sender: Any) -> TxReceipt:
        """Governance (at once) or the creator (its proposal, after the delay)."""
        return transact(self.contract.replaceAggregator, task_id, aggregator, sender=sender)

    def cancel_task(self, task_id: int, *, sender: Any) -> TxReceipt:
        """The creator or governance cancels the task; its credits stay claimable."""
        return transact(self.contract.cancelTask, task_id, sender=sender)

    def claim_rewards(self, task_id: int, *, sender: Any) -> TxReceipt:
        """Mints the sender's unclaimed rewards of ``task_id``."""
        return transact(self.contract.claimRewards, task_id, sender=sender)

    def claimable(self, task_id: int, account: Any) -> int:
        return int(self.contract.claimable(task_id, account))

    def task_count(self) -> int:
        return int(self.contract.taskCount())

    def task(self, task_id: int) -> Task:
        """The task's state, with its current global model's CID. The state and the events
        are two reads: a round finalized between them makes the events name a newer model
        than the state's hash, so the pair is read again (up to three times in all)."""
        for attempt in range(3):
            raw = self.contract.task(task_id)
            if int(raw.status) == 0:
                raise ChainError(f"task {task_id} does not exist (there are "
                                 f"{self.task_count()} tasks)")
            try:
                return Task.from_chain(task_id, raw,
                                       self.global_model_cid(task_id, raw.globalModelHash))
            except ModelHistoryMismatch:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def global_model_cid(self, task_id: int, stored_hash: bytes | None = None) -> str:
        """The task's current global model: the newest ``RoundFinalized`` model, else the
        initial model of ``TaskCreated``. Checked against the hash the contract stores."""
        from eth_utils import keccak

        finalized = self.events("RoundFinalized", taskId=task_id)
        if finalized:
            cid = str(_field(finalized[-1].result, "newModelCid", 0))
        else:
            created = self.events("TaskCreated", taskId=task_id)
            if not created:
                raise ChainError(f"task {task_id} has no TaskCreated event on this chain")
            cid = str(_field(created[-1].config, "modelCid", 0))
        if stored_hash is None:
            stored_hash = self.contract.task(task_id).globalModelHash
        stored = bytes(stored_hash)
        if keccak(text=cid) != stored:
            raise ModelHistoryMismatch(
                f"task {task_id}: the events name model {cid}, whose hash is not the "
                "one stored on chain; the node's event history is incomplete"
            )
        return cid

    def tasks(self) -> list[Task]:
        return [self.task(i) for i in range(1, self.task_count() + 1)]

    def round(self, task_id: int, round_number: int) -> Round:
        return Round.from_chain(task_id, round_number, self.contract.round(task_id, round_number))

    def rounds(self, task_id: int) -> list[Round]:
        return [self.round(task_id, r) for r in range(1, self.task(task_id).current_round + 1)]

    def membership(self, task_id: int, account: Any) -> Membership:
        return Membership.from_chain(self.contract.membership(task_id, account))

    def participants(self, task_id: int) -> list[str]:
        return [str(a) for a in self.contract.participants(task_id)]

    def reward_share(self, task_id: int, account: Any) -> tuple[int, int]:
        """``(earned, total_rewarded)``: the account's share of the task's rewards, which is
        also its share of the revenue of the task's model."""
        earned, total = self.contract.rewardShare(task_id, account)
        return int(earned), int(total)

    def contributions(self, task_id: int) -> dict[str, int]:
        accounts, earned = self.contract.contributions(task_id)
        return {str(a): int(e) for a, e in zip(accounts, earned, strict=True)}


class Marketplace(_Wrapper):
    """Listing task models, escrowed purchases, key delivery, refunds and revenue sharing."""

    contract_name = "ModelMarketplace"

    def list_task_model(
        self,
        task_id: int,
        encrypted_cid: str,
        metadata_cid: str,
        plaintext_hash: bytes,
        price: int,
        *,
        sender: Any,
    ) -> tuple[int, TxReceipt]:
        receipt = transact(
            self.contract.listTaskModel,
            task_id,
            encrypted_cid,
            metadata_cid,
            plaintext_hash,
            price,
            sender=sender,
        )
        return int(receipt.return_value or self.model_count()), receipt

    def buy(self, model_id: int, max_price: int, buyer_key: bytes, *, sender: Any) -> TxReceipt:
        """Pays the price (at most ``max_price``) into escrow from the sender's allowance and
        asks for the content key sealed to ``buyer_key`` (32 bytes, X25519)."""
        return transact(
            self.contract.buy, model_id, max_price, _key32(buyer_key), sender=sender
        )

    def buy_with_permit(
        self,
        model_id: int,
        max_price: int,
        buyer_key: bytes,
        deadline: int,
        v: int,
        r: bytes,
        s: bytes,
        *,
        sender: Any,
    ) -> TxReceipt:
        """``buy`` after an EIP-2612 permit of ``max_price`` signed by the sender."""
        return transact(
            self.contract.buyWithPermit,
            model_id,
            max_price,
            _key32(buyer_key),
            deadline,
            v,
            r,
            s,
            sender=sender,
        )

    def update_buyer_key(self, model_id: int, new_key: bytes, *, sender: Any) -> TxReceipt:
        """Replaces the key of the sender's pending purchase; the deadline restarts.

        Sent with a quarter more gas than estimated: a node estimates at the latest block,
        where the restarted deadline may equal the stored one (a free write), while the
        transaction runs in the next block and pays for the write (anvil: 34,507 estimated,
        37,307 used, right after the purchase)."""
        method = self.contract.updateBuyerKey
        key = _key32(new_key)
        gas = int(method.estimate_gas_cost(model_id, key, sender=sender) * 5 // 4)
        return transact(method, model_id, key, sender=sender, gas=gas)

    def deliver_key(
        self, model_id: int, buyer: Any, buyer_key: bytes, sealed_key: bytes, *, sender: Any
    ) -> TxReceipt:
        """Publishes the content key sealed to ``buyer_key`` (92 bytes, see
        :func:`fl_agent.crypto.sealing.seal_key`). ``buyer_key`` is the key read from the
        purchase: if the buyer has replaced it since, the contract reverts with
        ``ModelMarketplaceBuyerKeyChanged`` and the escrow stays; seal to the new key."""
        return transact(
            self.contract.deliverKey,
            model_id,
            buyer,
            _key32(buyer_key),
            bytes(sealed_key),
            sender=sender,
        )

    def deliver_keys(
        self,
        model_id: int,
        buyers: list[Any],
        buyer_keys: list[bytes],
        sealed_keys: list[bytes],
        *,
        sender: Any,
    ) -> TxReceipt:
        """Delivers to several pending buyers at once, each key sealed to the buyer key given
        for it; reverts as a whole if one buyer is not pending or changed its key."""
        if not len(buyers) == len(buyer_keys) == len(sealed_keys):
            raise ConfigError(
                f"{len(buyers)} buyers, {len(buyer_keys)} buyer keys and "
                f"{len(sealed_keys)} sealed keys: give one of each per buyer"
            )
        return transact(
            self.contract.deliverKeys,
            model_id,
            list(buyers),
            [_key32(k) for k in buyer_keys],
            [bytes(k) for k in sealed_keys],
            sender=sender,
        )

    def refund(self, model_id: int, *, sender: Any) -> TxReceipt:
        """Takes back the price of the sender's pending purchase once its deadline has passed."""
        return transact(self.contract.refund, model_id, sender=sender)

    def withdraw(self, model_id: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.withdraw, model_id, sender=sender)

    def withdrawable(self, model_id: int, payee: Any) -> int:
        return int(self.contract.withdrawable(model_id, payee))

    def withdrawn(self, model_id: int, payee: Any) -> int:
        return int(self.contract.withdrawn(model_id, payee))

    def set_price(self, model_id: int, price: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.setPrice, model_id, price, sender=sender)

    def delist(self, model_id: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.delist, model_id, sender=sender)

    def purchase(self, model_id: int, buyer: Any) -> Purchase:
        address = str(getattr(buyer, "address", buyer))
        return Purchase.from_chain(model_id, address, self.contract.purchase(model_id, address))

    def has_access(self, model_id: int, buyer: Any) -> bool:
        return bool(self.contract.hasAccess(model_id, buyer))

    def model_of_task(self, task_id: int) -> int:
        """The model listed for ``task_id``, or 0 if none is."""
        return int(self.contract.modelOfTask(task_id))

    def payment_token(self) -> str:
        return str(self.contract.paymentToken())

    def delivery_window(self) -> int:
        """Blocks the seller has to deliver a key before the buyer may take a refund."""
        return int(self.contract.deliveryWindow())

    def model_count(self) -> int:
        return int(self.contract.modelCount())

    def listing(self, model_id: int) -> Listing:
        raw = self.contract.listing(model_id)
        if str(raw.seller) == "0x" + "0" * 40:
            raise ChainError(f"model {model_id} does not exist (there are {self.model_count()})")
        return Listing.from_chain(model_id, raw)

    def listings(self) -> list[Listing]:
        return [self.listing(i) for i in range(1, self.model_count() + 1)]


class DecryptionKind(IntEnum):
    """What a homomorphic task's aggregator asks its key holder to decrypt (IKeyHolderDesk)."""

    SCALARS = 0
    AGGREGATE = 1


@dataclass(frozen=True)
class DecryptionRequest:
    """A decryption request as the desk stores it; the CIDs are in its events."""

    request_id: int
    task_id: int
    round: int
    kind: DecryptionKind
    answered: bool
    requested_block: int
    answered_block: int


class KeyHolderDesk(_Wrapper):
    """Decryption requests and answers between a homomorphic task's aggregator and its key
    holder (see :mod:`fl_agent.agents.keyholder`)."""

    contract_name = "KeyHolderDesk"

    def set_key_holder(self, task_id: int, key_holder: Any, *, sender: Any) -> TxReceipt:
        """The task's creator names its key holder (before round 1; default: the creator)."""
        return transact(self.contract.setKeyHolder, task_id, key_holder, sender=sender)

    def request_decryption(self, task_id: int, round_number: int, kind: DecryptionKind,
                           document_cid: str, *, sender: Any) -> tuple[int, TxReceipt]:
        """The task's aggregator asks, once per round and kind, for the decryption that the
        request document at ``document_cid`` describes; returns the request's id."""
        receipt = transact(self.contract.requestDecryption, task_id, round_number, int(kind),
                            document_cid, sender=sender)
        request_id = receipt.return_value or self.request_of(task_id, round_number, kind)
        return int(request_id), receipt

    def answer_decryption(self, request_id: int, result_cid: str, *, sender: Any) -> TxReceipt:
        """The task's key holder answers a request, once, with its result document's CID."""
        return transact(self.contract.answerDecryption, request_id, result_cid, sender=sender)

    def key_holder_of(self, task_id: int) -> str:
        return str(self.contract.keyHolderOf(task_id))

    def request(self, request_id: int) -> DecryptionRequest:
        raw = self.contract.request(request_id)
        if int(raw.requestedBlock) == 0:
            raise ChainError(f"decryption request {request_id} does not exist (there are "
                             f"{self.request_count()})")
        return DecryptionRequest(request_id, int(raw.taskId), int(raw.round),
                                 DecryptionKind(int(raw.kind)), bool(raw.answered),
                                 int(raw.requestedBlock), int(raw.answeredBlock))

    def request_of(self, task_id: int, round_number: int, kind: DecryptionKind) -> int:
        """The id of the round's request of ``kind`` (0: none yet)."""
        return int(self.contract.requestOf(task_id, round_number, int(kind)))

    def request_count(self) -> int:
        return int(self.contract.requestCount())

    def document_cid(self, request: DecryptionRequest) -> str:
        """The request document's CID, from its ``DecryptionRequested`` event."""
        logs = self.events("DecryptionRequested", request.requested_block,
                           requestId=request.request_id)
        if not logs:
            raise ChainError(f"decryption request {request.request_id} has no "
                             "DecryptionRequested event on this node")
        return str(logs[-1].documentCid)

    def result_cid(self, request: DecryptionRequest) -> str | None:
        """The answer's result document CID, from ``DecryptionAnswered`` (None: unanswered)."""
        if not request.answered:
            return None
        logs = self.events("DecryptionAnswered", request.answered_block,
                           requestId=request.request_id)
        if not logs:
            raise ChainError(f"decryption request {request.request_id} is answered but its "
                             "DecryptionAnswered event is not on this node")
        return str(logs[-1].resultCid)


def _key32(key: bytes) -> bytes:
    """A buyer key as the contract's ``bytes32``; anything but 32 bytes is a caller's bug."""
    key = bytes(key)
    if len(key) != 32:
        raise ConfigError(f"a buyer key is a 32-byte X25519 public key, got {len(key)} bytes")
    return key


#: The ledger's events that :meth:`FairFL.task_events` reads (those ``history.tasks`` folds).
_TASK_EVENTS = ("TaskCreated", "ParticipantJoined", "RoundStarted", "UpdateSubmitted",
                "RoundFinalized", "RoundClosed", "TaskCompleted", "TaskCancelled",
                "AggregatorReplaced", "RewardsClaimed", "WatermarkClaimed")


class FairFL:
    """All the contracts of one deployment."""

    def __init__(self, deployment: Deployment, project: Any | None = None) -> None:
        self.deployment = deployment
        self._project = project or load_project()
        # Nothing of FairFL's happened before its contracts were deployed and wired.
        self._first_block = deployment.block

    @cached_property
    def token(self) -> Token:
        return Token(self.deployment.address("FairToken"), self._project, self._first_block)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.deployment.address("ParticipantRegistry"), self._project,
                        self._first_block)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.deployment.address("TaskLedger"), self._project, self._first_block)

    @cached_property
    def marketplace(self) -> Marketplace:
        return Marketplace(self.deployment.address("ModelMarketplace"), self._project,
                           self._first_block)

    @cached_property
    def desk(self) -> KeyHolderDesk:
        """The KeyHolderDesk (homomorphic tasks); a record from before it has none: redeploy."""
        return KeyHolderDesk(self.deployment.address("KeyHolderDesk"), self._project,
                             self._first_block)

    def task_events(self, task_id: int) -> list[Any]:
        """Every ledger event of task ``task_id``, with the registry's ``UpdateRejected`` in
        it, as :class:`~fl_agent.chain.index.Event` in chain order: what
        :func:`fl_agent.chain.history.tasks` folds, without an event index."""
        from fl_agent.chain.index import event_of

        events = [event_of(log, "TaskLedger") for name in _TASK_EVENTS
                  for log in self.ledger.events(name, taskId=task_id)]
        events += [event_of(log, "ParticipantRegistry")
                   for log in self.registry.events("UpdateRejected", taskId=task_id)]
        return sorted(events, key=lambda e: (e.block, e.log_index))

    @cached_property
    def payment_token(self) -> Token:
        """The ERC-20 the marketplace takes payment in (FLT unless deployed with another)."""
        return Token(self.marketplace.payment_token(), self._project, self._first_block)


def _field(struct: Any, name: str, index: int) -> Any:
    """A field of a struct decoded from an event: ape gives a struct object or a plain list."""
    return getattr(struct, name) if hasattr(struct, name) else struct[index]


def chain_height() -> int:
    """The latest block number; raises when the node does not answer (not ape's
    ``chain.blocks.height``, which answers 0 then: see :mod:`fl_agent.chain.logs`)."""
    return height()
