"""The aggregator agent: opens rounds, collects updates, aggregates robustly, pays by merit.

Wiring only (chain: :class:`fl_agent.chain.FairFL`; content: a ContentStore; computation:
:mod:`fl_agent.aggregation` and :mod:`fl_agent.learning`). Each :meth:`AggregatorAgent.step`
reads the task's state from the chain and does the next thing:

1. no round open → assign next round's workload from measured throughput
   (:mod:`fl_agent.learning.workload`), store the assignment, ``startRound``;
2. a round open → wait until every active participant submitted (the quorum) or the
   submission window closed; then fetch every update, decode it strictly, run the task's
   strategy with each validation example's loss as the gate, score the accepted updates on
   validation with the task's metric (Shapley or leave-one-out), blend the scores with the
   reported sample counts (the task's ``base_share``; all of it in
   :func:`fl_agent.aggregation.rounds.decide_round`), store the new global model and
   ``finalizeRound`` with the contributors' reward shares and the rejected senders. Only
   accepted updates make the task's quorum: when fewer are accepted, the round is closed
   with ``closeRoundRejecting`` (the rejections and the evidence on record, no model, no
   rewards) and the next one opens on the same model. A
   homomorphic task's round runs FLTrust on ciphertexts instead, over several steps, with
   the task's key holder (:mod:`fl_agent.agents.he_round`).

The task's models are encrypted under the task key that the aggregator seals to every member
in good standing (:mod:`fl_agent.agents.access`; each round's workload names the keyring);
updates arrive sealed to the aggregator. Each finalization publishes the round's evidence
document (verdicts, reasons, scores, shares, the new model's validation score) and a reason
code per rejected sender.

All state lives on chain and in the store, so a restarted aggregator simply carries on: a
round that was open is finalized, a finalized one is never finalized again, and the task
keys are reopened from the last keyring. An update that cannot be fetched, does not match
its CID, is not sealed to the aggregator by its sender for this round, or is not valid
weights (NaN, wrong shape, too large) is rejected with its reason, on chain too; the round
goes on with everyone else. A store node that does not answer at all is not a reason to
reject anyone: the round waits (see :mod:`fl_agent.agents.update_fetch`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fl_agent.agents.access import (
    Member,
    TaskKeyHolder,
    latest_keyring,
    member_key,
)
from fl_agent.agents.earlier_inputs import EarlierInputs
from fl_agent.agents.evidence import (
    INVALID_UPDATE,
    RoundEvidence,
    VerdictRecord,
    reason_code,
    renumbered,
    rule_parameters,
    validation_digest,
)
from fl_agent.agents.members import MemberRecords
from fl_agent.agents.participant import load_task_document
from fl_agent.agents.sequential import SequentialRecords
from fl_agent.agents.task_rule import task_strategy
from fl_agent.agents.update_fetch import (
    UpdateFetcher,
    UpdateNotYetAvailableError,
    UpdateUnavailableError,
)
from fl_agent.agents.verdicts import Judgement, RoundOutcome, Verdict, round_result
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.rounds import UpdateFigures, decide_round, update_figures
from fl_agent.chain.client import FairFL, chain_height
from fl_agent.chain.history import tasks
from fl_agent.chain.records import RoundStatus, Task, TaskStatus, TxReceipt
from fl_agent.crypto.envelopes import decrypt_model, encrypt_model, open_update
from fl_agent.crypto.sealing import plaintext_hash
from fl_agent.errors import ConfigError, FairFLError
from fl_agent.faults import failpoint
from fl_agent.learning.metrics import get_metric
from fl_agent.learning.models import param_count
from fl_agent.learning.training import evaluate, validation_scores
from fl_agent.learning.weights import decode_weights, encode_weights
from fl_agent.learning.workload import Measurement, Workload, assign_steps
from fl_agent.storage.store import ContentStore, NodeUnavailableError
from fl_agent.timings import Stopwatch


@dataclass
class AggregatorAgent:
    """The aggregator of one task; ``X_val``/``y_val`` is its own validation data (raw
    features: the task's standardisation is applied here)."""

    fairfl: FairFL
    store: ContentStore
    account: Any
    task_id: int
    X_val: np.ndarray
    y_val: np.ndarray
    state_dir: Path
    strategy: Strategy | None = None
    quorum: int | None = None
    log: Callable[[str], None] = field(default=lambda message: None)

    def __post_init__(self) -> None:
        self.address = str(self.account.address)
        task = self.fairfl.ledger.task(self.task_id)
        if task.aggregator.lower() != self.address.lower():
            raise ConfigError(f"{self.address} is not the aggregator of task {self.task_id} "
                              f"(that is {task.aggregator}); use its account")
        self.spec_cid = str(task.spec_cid)  # the store must hold it: read just below
        self.document = load_task_document(self.store, self.spec_cid)
        self.metric = get_metric(task.metric)
        #: The commitment each round's evidence makes to this validation data, as given.
        self.validation_sha256 = validation_digest(self.X_val, self.y_val)
        self.X_val = self.document.data.standardize(self.X_val)
        self.y_val = np.asarray(self.y_val, dtype=np.int64)
        if len(self.y_val) == 0 or self.y_val.shape != (self.X_val.shape[0],):
            raise ConfigError("the aggregator needs a non-empty validation set with one label "
                              "per example")
        self.strategy = task_strategy(self.document, self.X_val, self.y_val, self.strategy)
        layer = getattr(self.strategy, "input_layer", None)
        size = param_count(self.document.model)
        if layer is not None and layer[0] + layer[1] * layer[2] > size:
            raise ConfigError(f"the aggregation option input_layer={list(layer)} does not fit "
                              f"the task's {self.document.model.name} ({size} parameters); "
                              "remove it to let the aggregator find the model's input layer")
        if self.quorum is not None and self.quorum < 1:
            raise ConfigError(f"quorum must be >= 1, got {self.quorum}")
        self.measurements: dict[str, Measurement] = {}
        self._recover_measurements(task.current_round)
        self.creator = task.creator
        self.keys = TaskKeyHolder(self.task_id, self.address,
                                  member_key(self.fairfl, self.account), self.store, self.log)
        #: Gets the round's updates from the store (:meth:`fetch_update`, :meth:`check_reach`).
        self.fetcher = UpdateFetcher(self)
        #: Who the task's members are and who may read its models (:meth:`readers`).
        self.member_records = MemberRecords(self)
        self._opened_by: dict[int, bool] = {}  # round -> opened with this aggregator's key
        self.rounds = task.rounds
        self._dp_noise: float | None = None  # participant-level DP, calibrated on first use
        self.keys.recover(latest_keyring(self.fairfl, self.store, self.task_id))
        #: The deltas of earlier rounds, for screens over several rounds.
        self.inputs = EarlierInputs(self)
        #: The senders' earlier z-scores, for FairFL's sequential test (from the evidence).
        self.records = SequentialRecords(
            lambda: tasks(self.fairfl.task_events(self.task_id))[self.task_id].rounds,
            self.store.get, self.log)
        #: Homomorphic tasks: FLTrust on ciphertexts with the task's key holder
        #: (:mod:`fl_agent.agents.he_round`); None otherwise.
        self.he: Any = None
        if self.document.privacy is not None and self.document.privacy.he is not None:
            from fl_agent.agents.he_round import EncryptedRounds

            self.he = EncryptedRounds(self)

    # -- pure-ish helpers ---------------------------------------------------------------
    def gate(self, vector: np.ndarray) -> np.ndarray:
        """The validation gate's scores: minus the cross-entropy of each validation example."""
        return validation_scores(self.document.model, vector, self.X_val, self.y_val)

    def score(self, vector: np.ndarray) -> float:
        """The task's metric on validation, oriented so that higher is better."""
        value = evaluate(self.document.model, vector, self.X_val, self.y_val, self.metric)
        return value if self.metric.higher_is_better else -value

    # -- chain ----------------------------------------------------------------------------
    def active_participants(self) -> list[str]:
        return [p for p in self.fairfl.ledger.participants(self.task_id)
                if not self.fairfl.registry.is_blacklisted(p)]

    def _round_started(self, round_number: int) -> Any:
        return self.fairfl.ledger.round_started(self.task_id, round_number)

    def fetch_update(self, cid: str, global_cid: str, deadline_block: int) -> bytes:
        """A submitted update's bytes (:meth:`UpdateFetcher.fetch`)."""
        return self.fetcher.fetch(cid, global_cid, deadline_block)

    def check_reach(self, unavailable: int, submitted: int, rnd: Any) -> None:
        """Whether the round can be judged with ``unavailable`` of its ``submitted`` updates
        out of reach (:meth:`UpdateFetcher.check_reach`)."""
        self.fetcher.check_reach(unavailable, submitted, rnd)

    def _submissions(self, round_number: int, start_block: int) -> list[Any]:
        return self.fairfl.ledger.events("UpdateSubmitted", start_block, taskId=self.task_id,
                                         round=round_number)

    def _recover_measurements(self, current_round: int) -> None:
        """After a restart: the last round's reported times and assigned steps."""
        for number in range(current_round, 0, -1):
            rnd = self.fairfl.ledger.round(self.task_id, number)
            logs = self._submissions(number, rnd.start_block)
            if not logs:
                continue
            try:
                workload = Workload.from_json(
                    self.store.get(str(self._round_started(number).workloadCid)))
            except FairFLError:
                return
            self._measure(workload, logs)
            return

    def _measure(self, workload: Workload, logs: list[Any]) -> None:
        for log in logs:
            who = str(log.participant).lower()
            self.measurements[who] = Measurement(workload.steps_for(who), workload.batch_size,
                                                 int(log.trainingMillis))

    def members(self, active: list[str], accepted_now: frozenset[str] = frozenset()
                ) -> list[Member]:
        """The chain's record of each active member (:meth:`MemberRecords.members`)."""
        return self.member_records.members(active, accepted_now)

    def readers(self, active: list[str], *, excluded: frozenset[str] = frozenset(),
                accepted_now: frozenset[str] = frozenset(),
                contributors_only: bool = False) -> dict[str, bytes]:
        """Who may read the next model (:meth:`MemberRecords.readers`)."""
        return self.member_records.readers(active, excluded=excluded,
                                           accepted_now=accepted_now,
                                           contributors_only=contributors_only)

    def open_round(self, task: Task | None = None) -> tuple[int, TxReceipt, Workload]:
        """Assigns the workload, seals the task key to the round's readers and starts the
        next round (``task``: its state, if just read)."""
        task = task or self.fairfl.ledger.task(self.task_id)
        clock = Stopwatch("open", task=self.task_id, round=task.current_round + 1)
        plan = self.document.training
        active = self.active_participants()
        people = [p.lower() for p in active]
        keyring, epoch = self.keys.keyring_for(self.readers(active))
        clock.lap("readers")
        workload = Workload(task.current_round + 1, plan.batch_size,
                            assign_steps(people, self.measurements, plan.steps), plan.steps,
                            keyring=keyring, key_epoch=epoch, aggregator_key=self.keys.public,
                            validation_sha256=self.validation_sha256)
        workload_cid = self.store.add(workload.to_json())
        clock.lap("workload")
        number, receipt = self.fairfl.ledger.start_round(
            self.task_id, workload_cid, sender=self.account,
            global_model_cid=task.global_model_cid)
        clock.done("start_round")
        self.log(f"round {number} opened on {task.global_model_cid}")
        return number, receipt, workload

    def ready(self, round_number: int) -> bool:
        """True once the quorum has submitted or the submission window has closed. The
        default quorum is every active participant that holds this round's task key (one
        that joined after the round opened cannot train in it)."""
        rnd = self.fairfl.ledger.round(self.task_id, round_number)
        holders = self.keys.holders
        able = [p for p in self.active_participants() if not holders or p.lower() in holders]
        quorum = self.quorum or max(1, len(able))
        return rnd.submissions >= quorum or chain_height() > rnd.deadline_block

    def judge(self, round_number: int, clock: Stopwatch | None = None, *,
              only: Collection[tuple[str, str]] | None = None) -> Judgement:
        """Fetches, opens and decodes a round's updates and runs the task's rule on them
        (:func:`~fl_agent.aggregation.rounds.decide_round`): what the round's evidence
        records, before any noise, upload or transaction. A rerun of a decided round
        (:mod:`fl_agent.agents.audit`) calls this too, with ``only`` the (lower-case
        sender, update CID) pairs its evidence judged."""
        rnd = self.fairfl.ledger.round(self.task_id, round_number)
        opened = self._round_started(round_number)
        global_cid = str(opened.globalModelCid)
        spec = self.document.model
        global_vector = decode_weights(
            decrypt_model(self.store.get(global_cid), self.keys.keys, self.task_id), spec)
        logs = self._submissions(round_number, rnd.start_block)
        if only is not None:
            logs = [log for log in logs
                    if (str(log.participant).lower(), str(log.updateCid)) in only]

        vectors: list[np.ndarray] = []
        usable: list[int] = []
        problems: dict[int, str] = {}
        unavailable = 0
        for i, log in enumerate(logs):
            try:
                plain = open_update(
                    self.fetch_update(str(log.updateCid), global_cid, rnd.deadline_block),
                    self.keys.private, self.task_id, round_number, str(log.participant))
                vector, kept = self.fetcher.decode(plain, global_vector)
                self.fetcher.check_receipt(log, round_number, len(plain), kept, global_cid,
                                           rnd.deadline_block, vector, global_vector)
                vectors.append(vector)
                usable.append(i)
            except NodeUnavailableError:
                raise  # the store is down, not the sender at fault: judge nobody yet
            except FairFLError as err:
                unavailable += isinstance(err, UpdateUnavailableError)
                problems[i] = f"{INVALID_UPDATE}: {err}"
                self.log(f"[yellow]round {round_number}: update of {log.participant} "
                         f"rejected:[/] {err}")
        self.check_reach(unavailable, len(logs), rnd)
        self.inputs.keep(round_number, logs, usable, vectors, global_vector)
        if clock is not None:
            clock.lap("fetch")
        judgement = Judgement(round_number, str(opened.workloadCid), global_cid,
                              global_vector, logs, vectors, usable, reasons=dict(problems),
                              scores=np.zeros(len(logs)), shares=[0] * len(logs),
                              params=global_vector)
        if usable:
            plan = self.document.aggregation
            samples = np.array([int(logs[i].numSamples) for i in usable], dtype=np.float64)
            history = self.earlier(round_number, [logs[i] for i in usable])
            decision = decide_round(self.strategy, global_vector, np.stack(vectors), samples,
                                    gate=self.gate, score=self.score, scoring=plan.scoring,
                                    permutations=plan.permutations,
                                    base_share=plan.base_share, round_number=round_number,
                                    earlier=None if history is None else history[0],
                                    evidence=self.records.prior(
                                        round_number, [str(logs[i].participant)
                                                       for i in usable])
                                    if getattr(self.strategy, "sequential", False) else None)
            judgement.params = np.asarray(decision.params, dtype=np.float32)
            judgement.accepted = {usable[j] for j in decision.accepted}
            judgement.reasons.update({usable[j]: why for j, why in decision.reasons.items()})
            judgement.figures = renumbered(decision.figures, usable)
            figures = judgement.figures
            if history is not None:  # which updates each screen's sums hold
                for key, indices in (("trigger", "indices"), ("noise", None)):
                    if key in figures:
                        rows = figures[key][indices] if indices else figures["candidates"]
                        figures[key] = {**figures[key], "earlier_cids": [
                            history[1][usable.index(i)] for i in rows]}
            for j, i in enumerate(usable):
                judgement.scores[i] = float(decision.scores[j])
                judgement.shares[i] = decision.shares[j]
        return judgement

    def earlier(self, round_number: int, logs: list[Any]
                ) -> tuple[np.ndarray, list[list[str]]] | None:
        """What each of ``logs``' senders sent in its earlier rounds, for the screens over
        rounds (:meth:`fl_agent.agents.earlier_inputs.EarlierInputs.sums`)."""
        return self.inputs.sums(round_number, logs)

    def verdicts(self, judgement: Judgement, params: np.ndarray) -> tuple[Verdict, ...]:
        """Each submission's verdict, with its figures measured against ``params`` (the
        model as released: after any participant-level DP noise)."""
        logs, usable = judgement.logs, judgement.usable
        figures = dict(zip(usable, update_figures(judgement.global_vector,
                                                  np.stack(judgement.vectors), params,
                                                  self.score), strict=True)) if usable else {}
        return tuple(
            Verdict(str(log.participant), str(log.updateCid), int(log.numSamples),
                    int(log.trainingMillis), i in judgement.accepted, judgement.reasons.get(i),
                    float(judgement.scores[i]), int(judgement.shares[i]), figures.get(i))
            for i, log in enumerate(logs))

    def finalize(self, round_number: int) -> RoundOutcome | TxReceipt:
        """Aggregates, scores and finalizes an open round (see the module docstring); a
        round whose accepted updates fall short of the quorum is closed instead
        (:meth:`close_short`, its receipt is returned)."""
        started = time.perf_counter()
        clock = Stopwatch("finalize", task=self.task_id, round=round_number)
        judgement = self.judge(round_number, clock)
        failpoint("aggregator:fetched")
        logs, accepted, spec = judgement.logs, judgement.accepted, self.document.model
        global_cid, global_vector = judgement.global_cid, judgement.global_vector
        params = judgement.params
        quorum = self.fairfl.ledger.task(self.task_id).min_participants
        dp = self.document.privacy.dp if self.document.privacy else None
        central = None  # participant-level DP's record of this round
        if dp is not None and dp.level == "participant" and len(accepted) >= quorum:
            params, central = self._dp_fedavg(global_vector, [judgement.vectors[j] for j, i in
                                                              enumerate(judgement.usable)
                                                              if i in accepted])
        verdicts = self.verdicts(judgement, params)
        if len(accepted) < quorum:
            # Sybils' junk makes no quorum: no model is finalized with fewer accepted updates
            # than the task's quorum (see closeRoundRejecting).
            return self.close_short(round_number, global_cid, global_vector, verdicts,
                                    quorum, started, judgement.figures)
        # The new model's readers: this round's, less those it rejected; for the final model
        # only members with an accepted update (see fl_agent.agents.access).
        addresses = [str(log.participant).lower() for log in logs]
        keyring, epoch = self.keys.keyring_for(self.readers(
            self.active_participants(),
            excluded=frozenset(a for i, a in enumerate(addresses) if i not in accepted),
            accepted_now=frozenset(addresses[i] for i in accepted),
            contributors_only=self.fairfl.ledger.task(self.task_id).finalized_rounds + 1
            == self.rounds))
        plain = encode_weights(spec, params)
        model_hash = plaintext_hash(plain)  # committed on chain: what a listing must sell
        new_cid = self.store.add(encrypt_model(plain, self.keys.keys[epoch], epoch,
                                               self.task_id))
        failpoint("aggregator:model-uploaded")
        validation = self.score(params)
        millis = round((time.perf_counter() - started) * 1000)
        evidence_cid = self.publish_evidence(
            round_number, global_cid, new_cid, type(self.strategy).__name__, model_hash,
            validation, verdicts, millis, keyring, epoch, judgement.figures, central)
        rejected = [v for v in verdicts if not v.accepted]
        outcome = round_result(new_cid, model_hash, verdicts, evidence_cid, millis)
        failpoint("aggregator:before-finalize")
        clock.lap("aggregate")
        receipt = self.fairfl.ledger.finalize_round(self.task_id, round_number, outcome,
                                                    sender=self.account)
        clock.done("finalize")
        workload = Workload.from_json(self.store.get(judgement.workload_cid))
        self._measure(workload, logs)
        self.log(f"round {round_number} finalized: {len(outcome.contributors)} accepted, "
                 f"{len(rejected)} rejected, new model {new_cid}")
        return RoundOutcome(self.task_id, round_number, global_cid, new_cid,
                            judgement.workload_cid, verdicts, validation, millis,
                            receipt, params, evidence_cid)

    def close_short(self, round_number: int, global_cid: str, global_vector: np.ndarray,
                    verdicts: tuple[Verdict, ...], quorum: int, started: float,
                    figures: dict[str, Any] | None = None) -> TxReceipt:
        """Closes a round whose accepted updates fall short of the task's quorum: the
        evidence (every verdict; no new model) is published and the rejections recorded on
        chain, nobody is paid, and the next round opens on the same model. The evidence gives
        no share and no cosine: the aggregate those would be measured against is never
        released (it is what the quorum keeps from being seen)."""
        millis = round((time.perf_counter() - started) * 1000)
        verdicts = tuple(dataclasses.replace(v, share_ppm=0) for v in verdicts)
        rejected = [v for v in verdicts if not v.accepted]
        evidence_cid = self.publish_evidence(
            round_number, global_cid, "", type(self.strategy).__name__, b"",
            self.score(global_vector), verdicts, millis, None, 0, figures)
        receipt = self.fairfl.ledger.close_round_rejecting(
            self.task_id, round_number, [v.participant for v in rejected],
            [reason_code(v.reason) for v in rejected], evidence_cid, sender=self.account)
        self.log(f"[yellow]round {round_number} closed short of its quorum: "
                 f"{len(verdicts) - len(rejected)} update(s) accepted, {quorum} needed; "
                 f"{len(rejected)} rejected (on record, evidence {evidence_cid}); "
                 "nobody paid, the model stays[/]")
        return receipt

    def _figures(self, figures: UpdateFigures | None, *, released: bool = True
                 ) -> dict[str, float | None]:
        """An update's figures for its evidence record, ``alone`` in the metric's own sign
        (:meth:`score` negates a metric where lower is better); no cosine when the new model
        is not ``released`` (a round closed short of its quorum)."""
        if figures is None:
            return {}
        alone = figures.alone if self.metric.higher_is_better else -figures.alone
        cosine = figures.cosine if released else None
        return {**dataclasses.asdict(figures), "alone": alone, "cosine": cosine}

    def publish_evidence(self, round_number: int, global_cid: str, new_cid: str,
                         strategy: str, model_hash: bytes, validation: float,
                         verdicts: tuple[Verdict, ...], millis: int, keyring: str | None,
                         epoch: int, figures: dict[str, Any] | None = None,
                         dp_fedavg: dict[str, Any] | None = None) -> str:
        """Stores the round's evidence document (every verdict, its reason and share, and
        participant-level DP's record); returns its CID. An empty ``new_cid``: the round is
        closed short of its quorum."""
        return self.store.add(RoundEvidence(
            task=self.task_id, round=round_number, global_model=global_cid, new_model=new_cid,
            strategy=strategy, metric=self.metric.name, new_model_sha256=model_hash.hex(),
            validation=validation if self.metric.higher_is_better else -validation,
            verdicts=tuple(VerdictRecord(
                participant=v.participant, update=v.update_cid, samples=v.num_samples,
                training_millis=v.training_millis, accepted=v.accepted, reason=v.reason,
                code=0 if v.accepted else reason_code(v.reason), score=v.score,
                share_ppm=v.share_ppm, **self._figures(v.figures, released=bool(new_cid)))
                for v in verdicts),
            aggregation_millis=millis, keyring=keyring, key_epoch=epoch,
            rule=rule_parameters(self.strategy),
            validation_sha256=self.validation_sha256, rule_figures=figures or {},
            dp_fedavg=dp_fedavg).to_json())

    def _dp_fedavg(self, global_vector: np.ndarray, accepted: list[np.ndarray]
                   ) -> tuple[np.ndarray, dict[str, Any]]:
        """Participant-level DP: the accepted updates' DP-FedAvg aggregate, with the noise
        calibrated so that the task's rounds spend its ε (every member sampled each round),
        and the record of it for the round's evidence (:mod:`fl_agent.privacy.central`)."""
        from fl_agent.privacy.central import record_round
        from fl_agent.privacy.dp import dp_fedavg, noise_for_budget

        dp = self.document.privacy.dp
        if self._dp_noise is None:
            self._dp_noise = noise_for_budget(dp.epsilon, dp.delta, 1.0, self.rounds,
                                              dp.accountant)
        params, info = dp_fedavg(global_vector, np.stack(accepted), dp.clip, self._dp_noise,
                                 seed=None)
        applications = self.fairfl.ledger.task(self.task_id).finalized_rounds + 1
        record = record_round(info, dp, applications)
        self.log(f"DP-FedAvg: {len(info.clipped)} of {info.participants} updates clipped to "
                 f"{dp.clip}, noise std {info.noise_std:.4g} per coordinate; ε spent "
                 f"{record.epsilon:.3g} of {dp.epsilon:g} after {applications} round(s)")
        return np.asarray(params, dtype=np.float32), record.model_dump(mode="json")

    def step(self) -> RoundOutcome | tuple[int, TxReceipt, Workload] | TxReceipt | Any | None:
        """Does the next thing the task needs (see the module docstring); None: wait. A
        round whose window passed with fewer submissions than the task's quorum is closed
        without a model (the receipt is returned) and the next one opens on the same model.
        A homomorphic task's round takes several steps (an
        :class:`~fl_agent.agents.he_round.HERequest` each time the key holder is asked to
        decrypt, None while it works)."""
        task = self.fairfl.ledger.task(self.task_id)
        if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            return None
        current = task.current_round
        status = RoundStatus.NONE if current == 0 else \
            self.fairfl.ledger.round(self.task_id, current).status
        if status != RoundStatus.OPEN:
            if task.participant_count < task.min_participants:
                return None
            return self.open_round(task)
        if not self._opened_by_me(current):
            # Opened by the aggregator this one replaced: its updates are sealed to that
            # aggregator's key, so nobody can be judged on them. Close it once its window has
            # passed; the next round opens with this aggregator's key.
            rnd = self.fairfl.ledger.round(self.task_id, current)
            if chain_height() <= rnd.deadline_block:
                return None
            self.log(f"[yellow]round {current} was opened by the previous aggregator; "
                     "closed without a model, nobody judged[/]")
            return self.fairfl.ledger.close_round(self.task_id, current, sender=self.account)
        if self.ready(current):
            rnd = self.fairfl.ledger.round(self.task_id, current)
            if rnd.submissions < task.min_participants:
                if chain_height() <= rnd.deadline_block:
                    return None  # fewer members than the quorum can train: wait for the window
                self.log(f"[yellow]round {current}: {rnd.submissions} of the "
                         f"{task.min_participants} submissions needed; closed without a model[/]")
                return self.fairfl.ledger.close_round(self.task_id, current, sender=self.account)
            if self.he is not None:
                return self.he.advance(current)
            return self.finalize(current)
        return None

    def _opened_by_me(self, round_number: int) -> bool:
        """Whether the open round's workload names this aggregator's sealing key."""
        if round_number not in self._opened_by:
            opened = self._round_started(round_number)
            workload = Workload.from_json(self.store.get(str(opened.workloadCid)))
            self._opened_by[round_number] = workload.aggregator_key in (None, self.keys.public)
        return self._opened_by[round_number]

    @property
    def finished(self) -> bool:
        status = self.fairfl.ledger.task(self.task_id).status
        return status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED)


__all__ = ["AggregatorAgent", "UpdateNotYetAvailableError", "UpdateUnavailableError"]
