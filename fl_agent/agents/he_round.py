"""The aggregator's side of a homomorphic round, and the documents it exchanges with the
task's key holder through the KeyHolderDesk contract.

Wiring only: the arithmetic and the rule are :mod:`fl_agent.privacy.he`; the key holder is
:mod:`fl_agent.agents.keyholder`. :class:`EncryptedRounds` runs FLTrust on ciphertexts and
never holds a secret key (only the task's :class:`~fl_agent.privacy.he.PublicContext`). Each
call of :meth:`EncryptedRounds.advance` (from :meth:`AggregatorAgent.step
<fl_agent.agents.aggregator.AggregatorAgent.step>`) does the next thing the round needs and
returns at once, so a polled aggregator never blocks on the key holder::

    no scalars request   open and decode every update strictly (a bad ciphertext is rejected
                         with its reason, as any invalid update), train the reference
                         direction g0 in the clear on the validation data (FLTrust's server
                         update), store encrypted_scalars(...) and a DecryptionOrder naming
                         it, requestDecryption(Scalars)                       -> HERequest
    scalars asked        wait for DecryptionAnswered                           -> None
    scalars answered     fltrust_weights(scalars, |g0|); store weighted_sum(...) and its
                         order, requestDecryption(Aggregate)                   -> HERequest
                         (nothing accepted: finalize at once on the global model)
    aggregate answered   new model = global + decrypted delta (held to |g0|); rewards by
                         trust; evidence; finalizeRound                        -> RoundOutcome

Everything a later step needs is on chain (the desk's requests and answers) or in the store
(the orders name the updates in the ciphertexts' order, the updates rejected before any
arithmetic with their reasons, |g0| and the weights), so a restarted aggregator resumes where
it was; only the decoded ciphertexts are cached in memory, and decoded again after a restart.
A refused decryption (the result document says why) leaves the round unfinalizable: the
aggregator closes it once its submission window has passed, and the next round opens on the
same model.

Rewards: FairFL's contribution scores (Shapley values or leave-one-out on validation) need
the plain updates, so in this mode a round's budget is shared in proportion to the FLTrust
trust scores of the accepted updates. An update submitted after the scalars were asked for is
not in the round's decision: it is neither accepted nor rejected (it earns nothing and costs
no reputation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, StrictInt

from fl_agent.agents.evidence import INVALID_UPDATE
from fl_agent.chain.client import DecryptionKind, DecryptionRequest, chain_height
from fl_agent.chain.records import TxReceipt
from fl_agent.crypto.envelopes import decrypt_model, encrypt_model, open_update
from fl_agent.crypto.sealing import plaintext_hash
from fl_agent.documents import Document
from fl_agent.errors import ChainError, ConfigError, FairFLError
from fl_agent.learning.models import param_count
from fl_agent.learning.weights import decode_weights, encode_weights
from fl_agent.learning.workload import Workload
from fl_agent.storage.store import NodeUnavailableError
from fl_agent.timings import Stopwatch

if TYPE_CHECKING:
    from fl_agent.agents.aggregator import AggregatorAgent
    from fl_agent.agents.verdicts import RoundOutcome, Verdict
    from fl_agent.privacy.he import EncryptedUpdate, PublicContext, RoundScalars, TrustDecision

ORDER_FORMAT = "fairfl-decryption-order/1"
RESULT_FORMAT = "fairfl-decryption-result/2"  # 2: with implausible
#: The tensor of a decrypted aggregate's safetensors file.
AGGREGATE_TENSOR = "delta"

KindName = Literal["scalars", "aggregate"]
KIND_NAMES: dict[DecryptionKind, KindName] = {DecryptionKind.SCALARS: "scalars",
                                              DecryptionKind.AGGREGATE: "aggregate"}


class RejectedUpdate(Document):
    """An update refused before any arithmetic (it could not be fetched, opened or decoded)."""

    participant: str
    update: str
    reason: str


class DecryptionOrder(Document):
    """What the aggregator asks the key holder to decrypt (named in ``requestDecryption``).

    ``ciphertexts`` is the :mod:`~fl_agent.privacy.he_format` document (scalars or aggregate)
    made from ``updates`` (sent by ``participants``, in that order) and, for the aggregate,
    ``weights``, which the key holder checks are FLTrust's weights on the scalars it released
    for ``scalars_request`` with ``reference_norm`` (|g0|)."""

    KIND = "FairFL decryption order"

    format: Literal["fairfl-decryption-order/1"] = ORDER_FORMAT
    task: int = Field(ge=1)
    round: int = Field(ge=1)
    kind: KindName
    context: str = Field(pattern=r"^[0-9a-f]{64}$")
    ciphertexts: str = Field(min_length=1)
    length: int = Field(ge=1)
    global_model: str = Field(min_length=1)
    participants: tuple[str, ...]
    updates: tuple[str, ...]
    rejected: tuple[RejectedUpdate, ...] = ()
    reference_norm: float = Field(ge=0, allow_inf_nan=False)
    scalars_request: int = Field(0, ge=0)
    weights: tuple[float, ...] = ()
    #: Time the aggregator spent making this order (decoding, training g0, arithmetic).
    millis: int = Field(0, ge=0)


class DecryptionResult(Document):
    """The key holder's answer: the decrypted scalars (release noise included), or the CID of
    the decrypted aggregate (safetensors, one float64 tensor ``delta``), or why it refused."""

    KIND = "FairFL decryption result"

    format: Literal["fairfl-decryption-result/2"] = RESULT_FORMAT
    task: int = Field(ge=1)
    round: int = Field(ge=1)
    request: int = Field(ge=1)
    kind: KindName
    context: str = Field(pattern=r"^[0-9a-f]{64}$")
    dots: tuple[float, ...] = ()
    squared_norms: tuple[float, ...] = ()
    #: The updates (by position, ascending) whose squared norm the key holder found
    #: implausible.
    implausible: tuple[StrictInt, ...] = ()
    aggregate: str | None = None
    refused: str | None = None

    def scalars(self) -> RoundScalars:
        """The released scalars, for :func:`~fl_agent.privacy.he.fltrust_weights`."""
        from fl_agent.privacy.he import RoundScalars

        flags = np.zeros(len(self.dots), dtype=bool)
        if list(self.implausible) != sorted(set(self.implausible)) or \
                any(not 0 <= i < flags.size for i in self.implausible):
            raise ConfigError(f"the key holder's answer marks updates {self.implausible} "
                              f"implausible: they must be distinct positions in ascending "
                              f"order among its {flags.size}")
        flags[list(self.implausible)] = True
        return RoundScalars(np.array(self.dots), np.array(self.squared_norms), flags)


def encode_aggregate(delta: np.ndarray) -> bytes:
    """A decrypted aggregate as safetensors (never pickle)."""
    from safetensors.numpy import save

    return save({AGGREGATE_TENSOR: np.ascontiguousarray(delta, dtype=np.float64)})


def decode_aggregate(data: bytes, length: int) -> np.ndarray:
    """The ``length`` finite float64 values of :func:`encode_aggregate`'s file, strictly."""
    from safetensors.numpy import load

    try:
        tensors = load(bytes(data))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise ConfigError(f"the decrypted aggregate is not a safetensors file: {err}") from err
    delta = tensors.get(AGGREGATE_TENSOR)
    if set(tensors) != {AGGREGATE_TENSOR} or delta is None or delta.dtype != np.float64 \
            or delta.shape != (length,) or not np.all(np.isfinite(delta)):
        raise ConfigError(f"the decrypted aggregate must be one finite float64 tensor "
                          f"{AGGREGATE_TENSOR!r} of {length} values")
    return delta


@dataclass(frozen=True)
class HERequest:
    """The aggregator asked the key holder for a decryption (the round goes on once answered)."""

    round: int
    kind: DecryptionKind
    request_id: int
    order_cid: str
    receipt: TxReceipt


@dataclass
class EncryptedRounds:
    """The encrypted rounds of one aggregator (see the module docstring)."""

    agent: AggregatorAgent
    context: PublicContext = field(init=False)
    _decoded: dict[int, tuple[EncryptedUpdate, ...]] = field(default_factory=dict, init=False,
                                                            repr=False)
    _orders: dict[str, DecryptionOrder] = field(default_factory=dict, init=False, repr=False)
    _refusals: set[int] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        from fl_agent.aggregation import FLTrust
        from fl_agent.privacy.he import PublicContext, context_fingerprint

        agent = self.agent
        plan = agent.document.privacy.he
        if not isinstance(agent.strategy, FLTrust):
            raise ConfigError(f"task {agent.task_id} aggregates ciphertexts (he), where only "
                              "FLTrust's rule runs; its document names "
                              f"{agent.document.aggregation.strategy!r}: create it with "
                              "--strategy fltrust")
        raw = agent.store.get(plan.context_cid)
        if context_fingerprint(raw) != plan.fingerprint:
            raise ConfigError(f"the CKKS context at {plan.context_cid} is not the one the task "
                              "document names (fingerprint mismatch)")
        self.context = PublicContext(raw)  # refuses a context that holds a secret key
        holder = agent.fairfl.desk.key_holder_of(agent.task_id)
        if holder.lower() != plan.key_holder.lower():
            raise ConfigError(f"task {agent.task_id}'s document names key holder "
                              f"{plan.key_holder}, the KeyHolderDesk {holder}: the creator must "
                              "name the same account on chain (setKeyHolder)")
        self.length = param_count(agent.document.model)

    # -- the round ------------------------------------------------------------------------
    def advance(self, number: int) -> RoundOutcome | HERequest | TxReceipt | None:
        """Does the next thing round ``number`` needs; None while the key holder works."""
        desk = self.agent.fairfl.desk
        task = self.agent.task_id
        scalars_id = desk.request_of(task, number, DecryptionKind.SCALARS)
        if scalars_id == 0:
            return self._ask_scalars(number)
        scalars = desk.request(scalars_id)
        if not scalars.answered:
            return None
        order = self._order(desk.document_cid(scalars))
        result = self._result(scalars, order)
        if result.refused is not None:
            return self._refused(number, result)
        from fl_agent.privacy.he import fltrust_weights

        decision = fltrust_weights(result.scalars(), order.reference_norm)
        if len(decision.accepted) < self.quorum:
            return self._close_short(number, order, decision)
        aggregate_id = desk.request_of(task, number, DecryptionKind.AGGREGATE)
        if aggregate_id == 0:
            return self._ask_aggregate(number, scalars, order, decision)
        aggregate = desk.request(aggregate_id)
        if not aggregate.answered:
            return None
        aggregate_order = self._order(desk.document_cid(aggregate))
        result = self._result(aggregate, aggregate_order)
        if result.refused is not None:
            return self._refused(number, result)
        if result.aggregate is None:
            raise ConfigError(f"the key holder's answer to request {aggregate_id} holds no "
                              "aggregate")
        delta = decode_aggregate(self.agent.store.get(result.aggregate), self.length)
        return self._finalize(number, aggregate_order, decision, delta)

    def _ask_scalars(self, number: int) -> RoundOutcome | HERequest:
        from fl_agent.privacy.he import (
            RoundScalars,
            decode_update,
            encrypted_scalars,
            fltrust_weights,
        )

        agent = self.agent
        started = time.perf_counter()
        clock = Stopwatch("he-scalars", task=agent.task_id, round=number)
        from fl_agent.agents.aggregator import UpdateUnavailableError

        global_cid, global_vector, logs = self._round(number)
        rnd = agent.fairfl.ledger.round(agent.task_id, number)
        deadline = rnd.deadline_block
        decoded: list[EncryptedUpdate] = []
        participants: list[str] = []
        updates: list[str] = []
        rejected: list[RejectedUpdate] = []
        unavailable = 0
        for log in logs:
            who, cid = str(log.participant), str(log.updateCid)
            try:
                plain = open_update(agent.fetch_update(cid, global_cid, deadline),
                                    agent.keys.private, agent.task_id, number, who)
                update = decode_update(self.context, plain, self.length)
                agent.fetcher.check_receipt(log, number, len(plain), None, global_cid,
                                            deadline)
                decoded.append(update)
            except NodeUnavailableError:
                raise  # the store is down, not the sender at fault: judge nobody yet
            except FairFLError as err:
                unavailable += isinstance(err, UpdateUnavailableError)
                rejected.append(RejectedUpdate(participant=who, update=cid,
                                               reason=f"{INVALID_UPDATE}: {err}"))
                agent.log(f"[yellow]round {number}: update of {who} rejected:[/] {err}")
                continue
            participants.append(who)
            updates.append(cid)
        agent.check_reach(unavailable, len(logs), rnd)
        clock.lap("fetch")
        reference = agent.strategy.server_params(global_vector.astype(np.float64)) \
            - global_vector.astype(np.float64)
        norm = float(np.linalg.norm(reference))
        clock.lap("reference")
        fields = dict(task=agent.task_id, round=number, context=self.context.fingerprint,
                      length=self.length, global_model=global_cid,
                      participants=tuple(participants), updates=tuple(updates),
                      rejected=tuple(rejected), reference_norm=norm)
        if not decoded or norm == 0.0:
            # Nothing to decrypt: no usable update, or no direction to trust (every update
            # gets zero trust, as in plaintext FLTrust). The round ends on the global model.
            order = DecryptionOrder(kind="scalars", ciphertexts="-", **fields)
            n = len(decoded)
            decision = fltrust_weights(RoundScalars(np.zeros(n), np.zeros(n)), norm)
            if len(decision.accepted) < self.quorum:
                return self._close_short(number, order, decision, started=started)
            return self._finalize(number, order, decision, None, started=started)
        ciphertexts = agent.store.add(encrypted_scalars(self.context, decoded, reference))
        clock.lap("scalars")
        self._decoded[number] = tuple(decoded)
        order = DecryptionOrder(kind="scalars", ciphertexts=ciphertexts, **fields,
                                millis=round((time.perf_counter() - started) * 1000))
        request = self._ask(number, DecryptionKind.SCALARS, order)
        clock.done("request")
        return request

    def _ask_aggregate(self, number: int, scalars: DecryptionRequest, order: DecryptionOrder,
                       decision: TrustDecision) -> HERequest:
        from fl_agent.privacy.he import weighted_sum

        started = time.perf_counter()
        updates = self._updates(number, order)
        document = weighted_sum(self.context, updates, decision.weights, self.length)
        aggregate = order.model_copy(update={
            "kind": "aggregate", "ciphertexts": self.agent.store.add(document),
            "scalars_request": scalars.request_id,
            "weights": tuple(float(w) for w in decision.weights),
            "millis": round((time.perf_counter() - started) * 1000)})
        return self._ask(number, DecryptionKind.AGGREGATE, aggregate)

    def _ask(self, number: int, kind: DecryptionKind, order: DecryptionOrder) -> HERequest:
        order_cid = self.agent.store.add(order.to_json())
        self._orders[order_cid] = order
        request_id, receipt = self.agent.fairfl.desk.request_decryption(
            self.agent.task_id, number, kind, order_cid, sender=self.agent.account)
        self.agent.log(f"round {number}: asked the key holder to decrypt the "
                       f"{KIND_NAMES[kind]} (request {request_id}, {len(order.updates)} "
                       "updates)")
        return HERequest(number, kind, request_id, order_cid, receipt)

    def _refused(self, number: int, result: DecryptionResult) -> TxReceipt | None:
        agent = self.agent
        if result.request not in self._refusals:
            self._refusals.add(result.request)
            agent.log(f"[red]round {number}: the key holder refused to decrypt the "
                      f"{result.kind}:[/] {result.refused}")
        rnd = agent.fairfl.ledger.round(agent.task_id, number)
        if chain_height() <= rnd.deadline_block:
            return None
        agent.log(f"[yellow]round {number} closed without a model (decryption refused)[/]")
        return agent.fairfl.ledger.close_round(agent.task_id, number, sender=agent.account)

    def _verdicts(self, number: int, order: DecryptionOrder, decision: TrustDecision,
                  logs: list[Any]) -> tuple[Verdict, ...]:
        """Each judged update's verdict: FLTrust's on the decrypted scalars, or the reason
        it could not be read; updates submitted after the scalars were asked for are not
        judged (and said so)."""
        from fl_agent.agents.verdicts import Verdict
        from fl_agent.aggregation.scoring import to_reward_shares

        shares = to_reward_shares(decision.trust, decision.accepted, tie_break=number)
        judged: dict[str, tuple[bool, str | None, float, int]] = {}
        for i, who in enumerate(order.participants):
            reason = decision.reasons.get(i)
            judged[who.lower()] = (i in decision.accepted,
                                   None if reason is None else str(reason),
                                   float(decision.trust[i]), int(shares[i]))
        for bad in order.rejected:
            judged[bad.participant.lower()] = (False, bad.reason, 0.0, 0)
        late = [str(log.participant) for log in logs
                if str(log.participant).lower() not in judged]
        if late:
            self.agent.log(f"[yellow]round {number}: {len(late)} update(s) arrived after the "
                           f"scalars were asked for; not judged:[/] {', '.join(late)}")
        return tuple(
            Verdict(str(log.participant), str(log.updateCid), int(log.numSamples),
                    int(log.trainingMillis), *judged[str(log.participant).lower()])
            for log in logs if str(log.participant).lower() in judged)

    def _close_short(self, number: int, order: DecryptionOrder, decision: TrustDecision, *,
                     started: float | None = None) -> TxReceipt:
        """Fewer updates trusted than the task's quorum: the aggregate is never asked for
        (decrypting it would reveal too few members' updates) and the round is closed with
        the rejections on record (:meth:`AggregatorAgent.close_short`); updates submitted
        after the scalars were asked for are not judged."""
        began = time.perf_counter() if started is None else started
        global_cid, global_vector, logs = self._round(number)
        receipt = self.agent.close_short(number, global_cid, global_vector,
                                         self._verdicts(number, order, decision, logs),
                                         self.quorum, began - order.millis / 1000)
        self._decoded.pop(number, None)
        return receipt

    @property
    def quorum(self) -> int:
        """Accepted updates the task needs to finalize a round (``minParticipants``)."""
        return self.agent.fairfl.ledger.task(self.agent.task_id).min_participants

    # -- reading back -----------------------------------------------------------------------
    def _round(self, number: int) -> tuple[str, np.ndarray, list[Any]]:
        """The round's global model (CID and weights) and its ``UpdateSubmitted`` logs."""
        agent = self.agent
        rnd = agent.fairfl.ledger.round(agent.task_id, number)
        global_cid = str(agent._round_started(number).globalModelCid)
        global_vector = decode_weights(decrypt_model(agent.store.get(global_cid),
                                                     agent.keys.keys, agent.task_id),
                                       agent.document.model)
        return global_cid, global_vector, agent._submissions(number, rnd.start_block)

    def _order(self, cid: str) -> DecryptionOrder:
        if cid not in self._orders:
            self._orders[cid] = DecryptionOrder.from_json(self.agent.store.get(cid))
        return self._orders[cid]

    def _result(self, request: DecryptionRequest, order: DecryptionOrder) -> DecryptionResult:
        """The key holder's answer to ``request``, checked against what was asked."""
        cid = self.agent.fairfl.desk.result_cid(request)
        result = DecryptionResult.from_json(self.agent.store.get(str(cid)))
        expected = (self.agent.task_id, request.round, request.request_id,
                    KIND_NAMES[request.kind], self.context.fingerprint)
        if (result.task, result.round, result.request, result.kind, result.context) != expected:
            raise ConfigError(f"the answer to decryption request {request.request_id} is for "
                              f"task {result.task} round {result.round} request "
                              f"{result.request} ({result.kind}): not what was asked")
        n = len(order.updates)
        if result.refused is None and request.kind == DecryptionKind.SCALARS and \
                not len(result.dots) == len(result.squared_norms) == n:
            raise ConfigError(f"the key holder released {len(result.dots)} inner products and "
                              f"{len(result.squared_norms)} squared norms for {n} updates")
        return result

    def _updates(self, number: int, order: DecryptionOrder) -> tuple[EncryptedUpdate, ...]:
        """The order's updates, decoded (again, after a restart: they decoded before)."""
        if number not in self._decoded:
            from fl_agent.privacy.he import decode_update

            agent = self.agent
            try:
                self._decoded[number] = tuple(
                    decode_update(self.context, open_update(
                        agent.store.get(cid), agent.keys.private, agent.task_id, number, who),
                        self.length)
                    for who, cid in zip(order.participants, order.updates, strict=True))
            except FairFLError as err:
                raise ChainError(f"round {number}: an update that decoded when the scalars "
                                 f"were asked for no longer does ({err}); the store lost or "
                                 "changed it") from err
        return self._decoded[number]

    # -- finalizing ---------------------------------------------------------------------------
    def _finalize(self, number: int, order: DecryptionOrder, decision: TrustDecision,
                  delta: np.ndarray | None, *, started: float | None = None) -> RoundOutcome:
        """The new model (global + decrypted delta), rewards by trust, evidence, on chain."""
        from fl_agent.agents.verdicts import RoundOutcome, round_result

        agent = self.agent
        began = time.perf_counter() if started is None else started
        clock = Stopwatch("finalize", task=agent.task_id, round=number)
        global_cid, global_vector, logs = self._round(number)
        if global_cid != order.global_model:
            raise ChainError(f"round {number} opened on {global_cid}, the order on "
                             f"{order.global_model}")
        outcome = decision.result(global_vector, np.zeros(self.length) if delta is None
                                  else delta)
        params = np.asarray(outcome.params, dtype=np.float32)
        verdicts = self._verdicts(number, order, decision, logs)
        accepted = frozenset(v.participant.lower() for v in verdicts if v.accepted)
        keyring, epoch = agent.keys.keyring_for(agent.readers(
            agent.active_participants(),
            excluded=frozenset(v.participant.lower() for v in verdicts if not v.accepted),
            accepted_now=accepted,
            contributors_only=agent.fairfl.ledger.task(agent.task_id).finalized_rounds + 1
            == agent.rounds))
        plain = encode_weights(agent.document.model, params)
        model_hash = plaintext_hash(plain)
        new_cid = agent.store.add(encrypt_model(plain, agent.keys.keys[epoch], epoch,
                                                agent.task_id))
        validation = agent.score(params)
        millis = order.millis + round((time.perf_counter() - began) * 1000)
        if order.kind == "aggregate":
            millis += self._order(agent.fairfl.desk.document_cid(agent.fairfl.desk.request(
                order.scalars_request))).millis
        evidence_cid = agent.publish_evidence(number, global_cid, new_cid, "FLTrust (CKKS)",
                                              model_hash, validation, verdicts, millis,
                                              keyring, epoch)
        rejected = [v for v in verdicts if not v.accepted]
        clock.lap("aggregate")
        receipt = agent.fairfl.ledger.finalize_round(
            agent.task_id, number, round_result(new_cid, model_hash, verdicts, evidence_cid,
                                                millis), sender=agent.account)
        clock.done("finalize")
        opened = agent._round_started(number)
        agent._measure(Workload.from_json(agent.store.get(str(opened.workloadCid))), logs)
        self._decoded.pop(number, None)
        agent.log(f"round {number} finalized (encrypted FLTrust): {len(accepted)} accepted, "
                  f"{len(rejected)} rejected, new model {new_cid}")
        return RoundOutcome(agent.task_id, number, global_cid, new_cid,
                            str(opened.workloadCid), verdicts, validation, millis, receipt,
                            params, evidence_cid)


__all__ = ["DecryptionOrder", "DecryptionResult", "EncryptedRounds", "HERequest",
           "RejectedUpdate", "decode_aggregate", "encode_aggregate"]
