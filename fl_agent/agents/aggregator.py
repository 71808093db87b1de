"""The aggregator agent: opens rounds, collects updates, aggregates robustly, pays by merit.

Wiring only (chain: :class:`fl_agent.chain.FairFL`; content: a ContentStore; computation:
:mod:`fl_agent.aggregation` and :mod:`fl_agent.learning`). Each :meth:`AggregatorAgent.step`
reads the task's state from the chain and does the next thing:

1. no round open → assign next round's workload from measured throughput
   (:mod:`fl_agent.learning.workload`), store the assignment, ``startRound``;
2. a round open → wait until every active participant submitted (the quorum) or the
   submission window closed; then fetch every update, decode it strictly, run the task's
   strategy with minus the validation loss as the gate, score the accepted updates on
   validation with the task's metric (Shapley or leave-one-out), blend the scores with the
   sample counts (the task's ``base_share``), store the new global model and
   ``finalizeRound`` with the contributors' reward shares and the rejected senders.

All state lives on chain and in the store, so a restarted aggregator simply carries on: a
round that was open is finalized, a finalized one is never finalized again. An update that
cannot be fetched, does not match its CID, or is not valid weights (NaN, wrong shape, too
large) is rejected with its reason, on chain too; the round goes on with everyone else.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fl_agent.agents.participant import load_task_document
from fl_agent.aggregation import (
    blend_with_samples,
    contribution_scores,
    get_strategy,
    to_reward_shares,
)
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.fairfl import FairFL as FairFLStrategy
from fl_agent.chain.client import FairFL, chain_height
from fl_agent.chain.records import RoundResult, RoundStatus, Task, TaskStatus, TxReceipt
from fl_agent.errors import ChainError, ConfigError, FairFLError
from fl_agent.learning.metrics import get_metric
from fl_agent.learning.models import ModelSpec, input_layer, param_count
from fl_agent.learning.training import evaluate, validation_loss
from fl_agent.learning.weights import decode_weights, encode_weights
from fl_agent.learning.workload import Measurement, Workload, assign_steps
from fl_agent.storage.store import ContentStore


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
    share_bps: int


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

    @property
    def accepted(self) -> list[str]:
        return [v.participant for v in self.verdicts if v.accepted]

    @property
    def rejected(self) -> list[str]:
        return [v.participant for v in self.verdicts if not v.accepted]


def trigger_screen_layer(spec: ModelSpec, feature_shape: tuple[int, ...]
                         ) -> tuple[int, int, int] | None:
    """The input layer FairFL's trigger screen reads (its step 1b), or None to skip it.

    Only for image data (``feature_shape``, the data's shape before a dense model flattens
    it, has two or more axes) read by a dense layer: a trigger patch shows as a few pixel
    columns carrying most of the change, and pixels are alike enough for that to stand out.
    Tabular features differ in scale and tail, and an honest client piles its change on a
    heavy-tailed one (breast_cancer without attack: 3 % of honest MLP and 13 % of honest
    logistic-regression updates were taken for triggers), so a tabular task is screened
    only if it names ``input_layer`` in its aggregation options. A CNN has no per-feature
    input layer."""
    return input_layer(spec) if len(feature_shape) >= 2 else None


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
        self.document = load_task_document(self.store, task.spec_cid)
        self.metric = get_metric(task.metric)
        self.X_val = self.document.data.standardize(self.X_val)
        self.y_val = np.asarray(self.y_val, dtype=np.int64)
        if len(self.y_val) == 0 or self.y_val.shape != (self.X_val.shape[0],):
            raise ConfigError("the aggregator needs a non-empty validation set with one label "
                              "per example")
        if self.strategy is None:
            plan = self.document.aggregation
            self.strategy = get_strategy(plan.strategy, **plan.options)
        if isinstance(self.strategy, FairFLStrategy) and self.strategy.input_layer is None:
            self.strategy = dataclasses.replace(
                self.strategy, input_layer=trigger_screen_layer(
                    self.document.model, self.document.data.feature_shape))
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

    # -- pure-ish helpers ---------------------------------------------------------------
    def gate(self, vector: np.ndarray) -> float:
        """The validation gate of robust aggregation: minus the validation loss."""
        return -validation_loss(self.document.model, vector, self.X_val, self.y_val)

    def score(self, vector: np.ndarray) -> float:
        """The task's metric on validation, oriented so that higher is better."""
        value = evaluate(self.document.model, vector, self.X_val, self.y_val, self.metric)
        return value if self.metric.higher_is_better else -value

    # -- chain ----------------------------------------------------------------------------
    def active_participants(self) -> list[str]:
        return [p for p in self.fairfl.ledger.participants(self.task_id)
                if not self.fairfl.registry.is_blacklisted(p)]

    def _round_started(self, round_number: int) -> Any:
        logs = self.fairfl.ledger.events("RoundStarted", taskId=self.task_id, round=round_number)
        if not logs:
            raise ChainError(f"task {self.task_id} round {round_number} has no RoundStarted")
        return logs[-1]

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

    def open_round(self, task: Task | None = None) -> tuple[int, TxReceipt, Workload]:
        """Assigns the workload and starts the next round (``task``: its state, if just
        read)."""
        task = task or self.fairfl.ledger.task(self.task_id)
        plan = self.document.training
        people = [p.lower() for p in self.active_participants()]
        workload = Workload(task.current_round + 1, plan.batch_size,
                            assign_steps(people, self.measurements, plan.steps), plan.steps)
        workload_cid = self.store.add(workload.to_json())
        number, receipt = self.fairfl.ledger.start_round(
            self.task_id, workload_cid, sender=self.account,
            global_model_cid=task.global_model_cid)
        self.log(f"round {number} opened on {task.global_model_cid}")
        return number, receipt, workload

    def ready(self, round_number: int) -> bool:
        """True once the quorum has submitted or the submission window has closed."""
        rnd = self.fairfl.ledger.round(self.task_id, round_number)
        quorum = self.quorum or max(1, len(self.active_participants()))
        return rnd.submissions >= quorum or chain_height() > rnd.deadline_block

    def finalize(self, round_number: int) -> RoundOutcome:
        """Aggregates, scores and finalizes an open round (see the module docstring)."""
        started = time.perf_counter()
        rnd = self.fairfl.ledger.round(self.task_id, round_number)
        opened = self._round_started(round_number)
        global_cid = str(opened.globalModelCid)
        spec = self.document.model
        global_vector = decode_weights(self.store.get(global_cid), spec)
        logs = self._submissions(round_number, rnd.start_block)

        vectors: list[np.ndarray] = []
        usable: list[int] = []
        problems: dict[int, str] = {}
        for i, log in enumerate(logs):
            try:
                vectors.append(decode_weights(self.store.get(str(log.updateCid)), spec))
                usable.append(i)
            except FairFLError as err:
                problems[i] = f"bad_update: {err}"
                self.log(f"[yellow]round {round_number}: update of {log.participant} "
                         f"rejected:[/] {err}")
        samples = np.array([int(logs[i].numSamples) for i in usable], dtype=np.float64)
        accepted: set[int] = set()
        reasons: dict[int, str] = dict(problems)
        scores = np.zeros(len(logs))
        shares = [0] * len(logs)
        params = global_vector
        if usable:
            updates = np.stack(vectors)
            result = self.strategy.aggregate(global_vector, updates, samples,
                                             evaluate=self.gate)
            params = np.asarray(result.params, dtype=np.float32)
            accepted = {usable[j] for j in result.accepted}
            for j, why in result.reasons.items():
                reasons[usable[j]] = str(why)
            if result.accepted:
                plan = self.document.aggregation
                local = contribution_scores(self.strategy, global_vector, updates,
                                            samples, result.accepted, self.score,
                                            method=plan.scoring,
                                            num_permutations=plan.permutations,
                                            seed=round_number)
                local_shares = to_reward_shares(
                    blend_with_samples(local, samples, result.accepted, plan.base_share),
                    result.accepted)
                for j, i in enumerate(usable):
                    scores[i] = float(local[j])
                    shares[i] = local_shares[j]
        new_cid = self.store.add(encode_weights(spec, params))
        millis = round((time.perf_counter() - started) * 1000)
        contributors = [i for i in range(len(logs)) if i in accepted]
        outcome = RoundResult(
            new_model_cid=new_cid,
            contributors=tuple(str(logs[i].participant) for i in contributors),
            scores_bps=tuple(shares[i] for i in contributors),
            rejected=tuple(str(logs[i].participant) for i in range(len(logs))
                           if i not in accepted),
            aggregation_millis=millis)
        receipt = self.fairfl.ledger.finalize_round(self.task_id, round_number, outcome,
                                                    sender=self.account)
        workload = Workload.from_json(self.store.get(str(opened.workloadCid)))
        self._measure(workload, logs)
        verdicts = tuple(
            Verdict(str(log.participant), str(log.updateCid), int(log.numSamples),
                    int(log.trainingMillis), i in accepted, reasons.get(i),
                    float(scores[i]), int(shares[i]))
            for i, log in enumerate(logs))
        self.log(f"round {round_number} finalized: {len(contributors)} accepted, "
                 f"{len(logs) - len(contributors)} rejected, new model {new_cid}")
        return RoundOutcome(self.task_id, round_number, global_cid, new_cid,
                            str(opened.workloadCid), verdicts, self.score(params), millis,
                            receipt, params)

    def step(self) -> RoundOutcome | tuple[int, TxReceipt, Workload] | None:
        """Does the next thing the task needs (see the module docstring); None: wait."""
        task = self.fairfl.ledger.task(self.task_id)
        if task.status == TaskStatus.COMPLETED:
            return None
        current = task.current_round
        if current == 0 or \
                self.fairfl.ledger.round(self.task_id, current).status == RoundStatus.FINALIZED:
            if task.participant_count < task.min_participants:
                return None
            return self.open_round(task)
        if self.ready(current):
            return self.finalize(current)
        return None

    @property
    def finished(self) -> bool:
        return self.fairfl.ledger.task(self.task_id).status == TaskStatus.COMPLETED

