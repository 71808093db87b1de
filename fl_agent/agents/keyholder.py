"""The key holder of a homomorphic task: keeps the CKKS secret key and decrypts, on chain
request, only what the protocol releases.

Wiring only (the keys and the decryption: :class:`fl_agent.privacy.he.KeyHolder`; the
documents: :mod:`fl_agent.agents.he_round`; the channel: the KeyHolderDesk contract).

* :func:`create_context` makes a task's key pair before the task exists: the secret context
  goes to ``<keys dir>/ckks/<fingerprint>.secret`` (mode 0600, in a 0700 folder; never in the
  store), the public context to the content store; the returned
  :class:`~fl_agent.privacy.plan.HEPlan` goes in the task document. ``fl-agent task create
  --mode he`` calls it, with the creator as the key holder unless told otherwise.
* :class:`KeyHolderAgent` (``fl-agent keyholder --task N``) follows the desk's
  ``DecryptionRequested`` events of its task with an
  :class:`~fl_agent.chain.watcher.EventWatcher` (cursor file, as the other agents), fetches
  each request's :class:`~fl_agent.agents.he_round.DecryptionOrder` and its ciphertexts,
  decrypts them and answers with a small public
  :class:`~fl_agent.agents.he_round.DecryptionResult`: the scalars as canonical JSON, the
  aggregate as safetensors.

What the key holder checks before it releases anything: the order is for this task, round,
kind and context; a scalars document holds one value in every slot and each update's four
random projections agree with its squared norm (``decrypt_scalars``; an update whose do not,
or whose squared norm is longer than any participant encrypts, is named ``implausible`` in
the answer and FLTrust rejects it);
an aggregate's declared weights are exactly FLTrust's weights on the scalars this key holder
released for the round's scalars request (so an aggregator cannot *declare* a one-hot weight
vector to have one update decrypted), that they accept at least the task's quorum of
updates (``minParticipants``: an aggregate of fewer would expose too few members' updates),
and the aggregate released is held to the reference norm |g0|,
as :meth:`TrustDecision.bounded <fl_agent.privacy.he.TrustDecision.bounded>` does. It cannot
recompute the weighted sum itself: that needs the update documents, which are sealed to the
aggregator (see docs/privacy-he.md, threat model). So an aggregator that deviates from the
protocol, declaring FLTrust's weights but sending one update's ciphertext as the aggregate,
gets that update decrypted (scaled to |g0|): the aggregator is trusted to follow the
protocol, as PBFL's two servers are. A document that fails a check, or cannot
be decrypted, is answered with a refusal that says why; a store or node that does not answer
is retried (the event is not acknowledged).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fl_agent.agents.he_round import (
    KIND_NAMES,
    DecryptionOrder,
    DecryptionResult,
    encode_aggregate,
)
from fl_agent.agents.participant import load_task_document
from fl_agent.chain.client import DecryptionKind, DecryptionRequest, FairFL
from fl_agent.chain.records import TaskStatus, TxReceipt
from fl_agent.chain.watcher import EventWatcher
from fl_agent.errors import ChainError, ConfigError, FairFLError
from fl_agent.privacy.he import (
    KeyHolder,
    TrustDecision,
    context_fingerprint,
    fltrust_weights,
)
from fl_agent.privacy.plan import HEPlan
from fl_agent.storage.store import ContentStore

#: Folder of the secret contexts under the keys directory.
CONTEXT_FOLDER = "ckks"
#: How far the order's weights may be from the key holder's own (float rounding only: both
#: sides compute them from the same released scalars).
WEIGHT_TOLERANCE = 1e-9


def secret_context_path(keys_dir: Path | str, fingerprint: str) -> Path:
    """Where the secret context of the public context with ``fingerprint`` is kept."""
    return Path(keys_dir) / CONTEXT_FOLDER / f"{fingerprint}.secret"


def create_context(store: ContentStore, keys_dir: Path | str, key_holder: str, *,
                   holder: KeyHolder | None = None) -> HEPlan:
    """A new key pair for a task (or ``holder``'s): the secret context kept under
    ``keys_dir`` (0600), the public context put in ``store``; returns the task document's
    :class:`HEPlan` naming ``key_holder`` (an address)."""
    holder = holder or KeyHolder.create()
    path = secret_context_path(keys_dir, holder.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        if path.read_bytes() != holder.secret_context:
            raise ConfigError(f"{path} holds another secret context for the same public "
                              "context: refusing to overwrite it")
    else:
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # created 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(holder.secret_context)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    context_cid = store.add(holder.public_context)
    return HEPlan(context_cid=context_cid, fingerprint=holder.fingerprint,
                  key_holder=str(key_holder))


def attest(account: Any, fingerprint: str) -> str:
    """``account``'s signature (0x-hex) that it made the key pair of ``fingerprint``
    (:func:`fl_agent.privacy.plan.attestation_message`)."""
    from eth_account.messages import encode_defunct

    from fl_agent.privacy.plan import attestation_message

    signature = account.sign_message(encode_defunct(
        text=attestation_message(fingerprint, str(account.address))))
    if signature is None:
        raise ConfigError(f"account {account.address} refused to sign the attestation")
    return "0x" + signature.encode_rsv().hex()


def load_key_holder(store: ContentStore, keys_dir: Path | str, plan: HEPlan) -> KeyHolder:
    """The key holder of ``plan``'s context: its secret from ``keys_dir``, its public context
    from the store (checked against the plan's fingerprint)."""
    path = secret_context_path(keys_dir, plan.fingerprint)
    if not path.exists():
        raise ConfigError(f"no secret CKKS context {path.name} in {path.parent}: the key holder "
                          "runs where the task's context was created (fl-agent task create "
                          "--mode he), with the same keys directory (FAIRFL_HOME)")
    public = store.get(plan.context_cid)
    if context_fingerprint(public) != plan.fingerprint:
        raise ConfigError(f"the public context at {plan.context_cid} is not the one the task "
                          "document names (fingerprint mismatch)")
    return KeyHolder(path.read_bytes(), public)


@dataclass(frozen=True)
class Answer:
    """One decryption request answered (``refused``: why not, if it was refused)."""

    request_id: int
    round: int
    kind: DecryptionKind
    result_cid: str
    refused: str | None
    receipt: TxReceipt


class Refusal(FairFLError, ValueError):
    """An order the key holder will not decrypt; the message is the public reason."""


@dataclass
class KeyHolderAgent:
    """The key holder of task ``task_id`` (see the module docstring)."""

    fairfl: FairFL
    store: ContentStore
    account: Any
    task_id: int
    keys_dir: Path
    state_dir: Path
    confirmations: int = 0
    log: Callable[[str], None] = field(default=lambda message: None)

    def __post_init__(self) -> None:
        self.address = str(self.account.address)
        task = self.fairfl.ledger.task(self.task_id)
        document = load_task_document(self.store, task.spec_cid)
        if document.privacy is None or document.privacy.he is None:
            raise ConfigError(f"task {self.task_id} does not aggregate homomorphically: it "
                              "has no key holder")
        self.plan = document.privacy.he
        desk = self.fairfl.desk
        holder = desk.key_holder_of(self.task_id)
        if holder.lower() != self.address.lower() or \
                self.plan.key_holder.lower() != self.address.lower():
            raise ConfigError(f"{self.address} is not the key holder of task {self.task_id} "
                              f"(the desk names {holder}, the task document "
                              f"{self.plan.key_holder}); use its account")
        self.holder = load_key_holder(self.store, self.keys_dir, self.plan)
        self.watcher = EventWatcher(
            desk.contract, ("DecryptionRequested",),
            Path(self.state_dir) / f"keyholder-{desk.address.lower()}-{self.task_id}-"
                                   f"{self.address.lower()}.json",
            start_block=self.fairfl.deployment.block, confirmations=self.confirmations,
            filters={"taskId": self.task_id})

    def step(self) -> list[Answer]:
        """Answers every request after the cursor; returns the answers given."""
        answers = []
        for log in self.watcher.poll():
            answer = self.handle(log)
            if answer is not None:
                answers.append(answer)
            self.watcher.ack(log)
        return answers

    def handle(self, log: Any) -> Answer | None:
        """Serves one ``DecryptionRequested`` (None: answered already, e.g. before a
        restart)."""
        desk = self.fairfl.desk
        request = desk.request(int(log.requestId))
        if request.answered:
            return None
        kind = KIND_NAMES[request.kind]
        fields: dict[str, Any] = {"task": self.task_id, "round": request.round,
                                  "request": request.request_id, "kind": kind,
                                  "context": self.holder.fingerprint}
        try:
            fields.update(self._decrypt(request, str(log.documentCid)))
            refused = None
        except FairFLError as err:
            if isinstance(err, ConnectionError | TimeoutError | ChainError):
                raise  # the store or the node failed us: retried, the event stays unacked
            refused = str(err)
            fields["refused"] = refused
            self.log(f"[yellow]round {request.round}: refused to decrypt the {kind}:[/] {err}")
        result_cid = self.store.add(DecryptionResult(**fields).to_json())
        receipt = desk.answer_decryption(request.request_id, result_cid, sender=self.account)
        if refused is None:
            self.log(f"round {request.round}: {kind} decrypted (request "
                     f"{request.request_id}) -> {result_cid}")
        return Answer(request.request_id, request.round, request.kind, result_cid, refused,
                      receipt)

    def _decrypt(self, request: DecryptionRequest, order_cid: str) -> dict[str, Any]:
        order = self._order(order_cid, request)
        ciphertexts = self.store.get(order.ciphertexts)
        if request.kind == DecryptionKind.SCALARS:
            scalars = self.holder.decrypt_scalars(ciphertexts)
            if scalars.dots.size != len(order.updates):
                raise Refusal(f"the scalars document holds {scalars.dots.size} updates, the "
                              f"order names {len(order.updates)}")
            return {"dots": tuple(float(v) for v in scalars.dots),
                    "squared_norms": tuple(float(v) for v in scalars.squared_norms),
                    "implausible": tuple(int(i) for i in np.flatnonzero(scalars.implausible))}
        decision = self._released_decision(request, order)
        delta = self.holder.decrypt_aggregate(ciphertexts, order.length)
        return {"aggregate": self.store.add(encode_aggregate(decision.bounded(delta)))}

    def _order(self, cid: str, request: DecryptionRequest) -> DecryptionOrder:
        order = DecryptionOrder.from_json(self.store.get(cid))
        expected = (self.task_id, request.round, KIND_NAMES[request.kind],
                    self.holder.fingerprint)
        if (order.task, order.round, order.kind, order.context) != expected:
            raise Refusal(f"the order is for task {order.task} round {order.round} "
                          f"({order.kind}, context {order.context[:16]}...), not for what "
                          "was requested on chain")
        if len(order.participants) != len(order.updates):
            raise Refusal("the order names a different number of participants and updates")
        return order

    def _released_decision(self, request: DecryptionRequest, order: DecryptionOrder
                           ) -> TrustDecision:
        """FLTrust's decision on the scalars this key holder released in the round, which
        the aggregate's weights must be."""
        desk = self.fairfl.desk
        scalars_id = desk.request_of(self.task_id, request.round, DecryptionKind.SCALARS)
        if order.scalars_request != scalars_id or scalars_id == 0:
            raise Refusal(f"the order names scalars request {order.scalars_request}, the "
                          f"round's is {scalars_id}")
        scalars_request = desk.request(scalars_id)
        released = DecryptionResult.from_json(self.store.get(str(
            desk.result_cid(scalars_request))))
        scalars_order = DecryptionOrder.from_json(self.store.get(
            desk.document_cid(scalars_request)))
        if released.refused is not None or released.context != self.holder.fingerprint:
            raise Refusal("the round's scalars were not released by this key holder")
        if released.task != self.task_id or released.request != scalars_id:
            raise Refusal("the round's scalars answer is not for this request")
        if (scalars_order.updates, scalars_order.reference_norm) != \
                (order.updates, order.reference_norm):
            raise Refusal("the aggregate's order names other updates or another reference "
                          "norm than the round's scalars")
        decision = fltrust_weights(released.scalars(), order.reference_norm)
        quorum = self.fairfl.ledger.task(self.task_id).min_participants
        if len(decision.accepted) < quorum:
            raise Refusal(f"FLTrust accepts {len(decision.accepted)} of the round's updates "
                          f"on the scalars released, fewer than the task's quorum of "
                          f"{quorum}: an aggregate of so few updates is not decrypted")
        weights = np.asarray(order.weights, dtype=np.float64)
        if weights.shape != decision.weights.shape or not np.allclose(
                weights, decision.weights, rtol=WEIGHT_TOLERANCE, atol=WEIGHT_TOLERANCE):
            raise Refusal("the aggregate's weights are not FLTrust's weights on the scalars "
                          "released for this round: refusing to decrypt it")
        return decision

    @property
    def finished(self) -> bool:
        status = self.fairfl.ledger.task(self.task_id).status
        return status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED)


__all__ = ["Answer", "KeyHolderAgent", "Refusal", "attest", "create_context", "load_key_holder",
           "secret_context_path"]
