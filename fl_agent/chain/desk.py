"""The KeyHolderDesk's typed wrapper: a homomorphic task's decryption requests and answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from fl_agent.chain.contract import ContractWrapper
from fl_agent.chain.records import TxReceipt
from fl_agent.chain.transactions import transact
from fl_agent.errors import ChainError


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


class KeyHolderDesk(ContractWrapper):
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
        return self._event_cid(request, "DecryptionRequested", request.requested_block,
                               "documentCid", "has no DecryptionRequested event on this node")

    def result_cid(self, request: DecryptionRequest) -> str | None:
        """The answer's result document CID, from ``DecryptionAnswered`` (None: unanswered)."""
        if not request.answered:
            return None
        return self._event_cid(request, "DecryptionAnswered", request.answered_block,
                               "resultCid", "is answered but its DecryptionAnswered event is "
                               "not on this node")

    def _event_cid(self, request: DecryptionRequest, event: str, block: int, field: str,
                   missing: str) -> str:
        """``field`` of the request's latest ``event`` since ``block``; a ChainError
        ("decryption request N " + ``missing``) when this node does not have it."""
        logs = self.events(event, block, requestId=request.request_id)
        if not logs:
            raise ChainError(f"decryption request {request.request_id} {missing}")
        return str(getattr(logs[-1], field))


__all__ = ["DecryptionKind", "DecryptionRequest", "KeyHolderDesk"]
