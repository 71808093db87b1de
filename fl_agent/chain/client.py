"""Typed wrappers around the FairFL contracts, in the manner of ApePay's ``StreamManager``.

Every other module talks to the chain through these classes: they turn ABI tuples into the
records of :mod:`fl_agent.chain.records`, turn reverts into :class:`ContractRevertError`
carrying the custom error's name, and read event history. Works on any network ape can
connect to; the caller connects (``ape.networks.parse_network_choice``) and passes accounts.

Here: the token, the registry, the ledger and :class:`FairFL`, which holds one deployment's
contracts. The marketplace's wrapper is in :mod:`~fl_agent.chain.marketplace`, the key
holder desk's in :mod:`~fl_agent.chain.desk`, and what they all share (the contract handle,
its events, the compiled project) in :mod:`~fl_agent.chain.contract`; this module
re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from fl_agent.chain.contract import PROJECT_ROOT, ContractWrapper, chain_height, load_project
from fl_agent.chain.deployment import Deployment
from fl_agent.chain.desk import DecryptionKind, DecryptionRequest, KeyHolderDesk
from fl_agent.chain.marketplace import Marketplace
from fl_agent.chain.records import (
    AppealStatus,
    Membership,
    Participant,
    Round,
    RoundResult,
    Task,
    TaskSpec,
    TxReceipt,
    WatermarkClaim,
    WatermarkCommitment,
)
from fl_agent.chain.transactions import transact
from fl_agent.errors import ChainError


class ModelHistoryMismatch(ChainError):
    """The events name a global model whose hash is not the one the task's state stores: a
    round was finalized between the two reads, or the node's event history is incomplete."""


class Token(ContractWrapper):
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


class Registry(ContractWrapper):
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


class Ledger(ContractWrapper):
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

    def round_started(self, task_id: int, round_number: int) -> Any:
        """The ``RoundStarted`` log of a round (its global model and workload CIDs); a round
        has one, as round numbers only grow."""
        logs = self.events("RoundStarted", taskId=task_id, round=round_number)
        if not logs:
            raise ChainError(f"task {task_id} round {round_number} has no RoundStarted")
        return logs[-1]

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


__all__ = ["PROJECT_ROOT", "ContractWrapper", "DecryptionKind", "DecryptionRequest", "FairFL",
           "KeyHolderDesk", "Ledger", "Marketplace", "ModelHistoryMismatch", "Registry",
           "Token", "chain_height", "load_project"]
