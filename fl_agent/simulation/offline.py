"""The simulation without the chain: the same data, training, attacks and round decision as
``fl-agent simulate``, in one process, for experiments over many seeds.

What is the same as on chain: the data split and the clients' shards
(:func:`~fl_agent.simulation.runner.plan_clients`), the task's standardisation, local
training (:func:`~fl_agent.learning.training.train_local` with the participant's seeds),
the attacks, and the aggregator's decision (:func:`~fl_agent.aggregation.rounds.
decide_round` with each validation example's loss as the gate, or another
:mod:`~fl_agent.learning.gate_scores` score, and accuracy as the score).
Workload balancing is the aggregator's (:func:`~fl_agent.learning.workload.assign_steps`)
on the times the simulated devices report (:attr:`Client.speed`). What is left out:
encryption, the chain and reputation. Blacklisting follows the registry's rule when
``blacklist`` is on: ``max_rejections`` rejections (not those held back, which the registry
does not count) within a tumbling window of
``window_rounds * (clients + 4)`` blocks that opens at a rejection, counted in the blocks an
auto-mining chain spends (each round: its start, one submission per participant, its
finalization), as the simulation deploys the registry. An attacker whose hook has an
``observe`` method (:class:`~fl_agent.simulation.attackers.Probing`) is told its verdict
after each round, the rule's reason when it was turned away, and whether one more rejection
would ban it, as the chain tells everyone.

Experiments change the federation through :class:`Client` (its data, its seed, its
attack) rather than through options here: a client that lies about its sample count, or
one person behind several accounts, is a list of clients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from fl_agent.aggregation.base import Reason, Strategy, earlier_window
from fl_agent.aggregation.rounds import RoundDecision, decide_round
from fl_agent.learning.data import DatasetSplits, load_dataset, split_dataset
from fl_agent.learning.models import ModelSpec, init_params
from fl_agent.learning.task_doc import AggregationPlan, DataSpec
from fl_agent.learning.training import evaluate, round_seed, train_local, validation_scores
from fl_agent.learning.workload import Measurement, assign_steps
from fl_agent.simulation.attackers import backdoor_trigger, client_data, colluder_trainer
from fl_agent.simulation.attacks import Trigger
from fl_agent.simulation.config import (
    BLOCKS_PER_ROUND_SLACK,
    STEP_MILLIS,
    SimulationConfig,
    client_seed,
    device_speeds,
    plan_clients,
    task_document,
)

#: A round's decision: the strategy, the global model, the stacked updates and the sample
#: counts the submitters report (keywords: ``gate``, ``score``, ``scoring``,
#: ``permutations``, ``round_number``); a :class:`RoundDecision` out.
Decide = Callable[..., RoundDecision]


def decide_as_on_chain(strategy: Strategy, global_params: np.ndarray, updates: np.ndarray,
                       claims: np.ndarray, **options: Any) -> RoundDecision:
    """The aggregator's rule: :func:`decide_round` on the reported sample counts, with the
    task document's default ``base_share``."""
    return decide_round(strategy, global_params, updates, claims,
                        base_share=AggregationPlan().base_share, **options)


@dataclass(frozen=True)
class Client:
    """One account of the federation: its (raw) training data, its training seed and, for an
    attacker, what it does to its update."""

    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    seed: int
    malicious: bool = False
    claimed_samples: int | None = None  # what it reports in submitUpdate (None: the truth)
    #: Its simulated device speed (``runner.device_speeds``); None: a real device, whose
    #: wall-clock time offline counts as unmeasured (every round gets the base steps).
    speed: float | None = None
    poison: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = field(default=None,
                                                                        repr=False)


@dataclass(frozen=True)
class Federation:
    """The task as the simulation sets it up: splits, model, standardisation, clients."""

    config: SimulationConfig
    splits: DatasetSplits
    spec: ModelSpec
    data: DataSpec
    clients: tuple[Client, ...]
    trigger: Trigger | None = None


def federation(config: SimulationConfig) -> Federation:
    """The clients ``fl-agent simulate`` would run for ``config`` (same shards, seeds and
    attacks)."""
    dataset = load_dataset(config.dataset)
    splits = split_dataset(dataset, validation_fraction=config.validation_fraction,
                           test_fraction=config.test_fraction, seed=config.seed,
                           standardize=False)
    spec = ModelSpec.for_features(config.model_name, dataset.feature_shape, dataset.num_classes)
    trigger = backdoor_trigger(config, dataset.feature_shape, splits.train.X)
    data = DataSpec.describe(dataset, splits.train.X)
    plans = plan_clients(config, splits.train.y)
    speeds = device_speeds(config)
    clients = [Client(X, y, client_seed(config, plan), plan.malicious, poison=poison,
                      speed=None if speeds is None else speeds[plan.index])
               for plan, X, y, poison in client_data(config, plans, splits.train,
                                                     dataset.num_classes, trigger,
                                                     colluder_trainer(config, spec, data))]
    return Federation(config, splits, spec, data,
                      tuple(clients), trigger)


def aggregator_strategy(fed: Federation, privacy: Any = None) -> Strategy:
    """The task's strategy as the aggregator agent sets it up
    (:func:`fl_agent.agents.task_rule.task_strategy`), for a task with the ``privacy``
    plan (:func:`fl_agent.privacy.plan.build_plan`; None: plain)."""
    from fl_agent.agents.task_rule import task_strategy

    document = task_document(fed.config, fed.spec, fed.data)
    if privacy is not None:  # built as a new task's document is (its recorded options too,
        # from the options asked for, not those the plain task's document recorded)
        aggregation = document.aggregation.model_copy(
            update={"options": dict(fed.config.rule_options)})
        document = type(document).build(**{**dict(document), "aggregation": aggregation,
                                           "privacy": privacy})
    return task_strategy(document, fed.data.standardize(fed.splits.validation.X),
                         np.asarray(fed.splits.validation.y, dtype=np.int64))


@dataclass(frozen=True)
class OfflineRound:
    """One round: who submitted (client indices), the decision, the new model's accuracy."""

    round: int
    submitted: tuple[int, ...]
    decision: RoundDecision
    test_accuracy: float


@dataclass(frozen=True)
class OfflineRun:
    rounds: tuple[OfflineRound, ...]
    params: np.ndarray = field(repr=False)
    test_accuracy: float
    blacklisted: tuple[int, ...]

    def earned(self, clients: Sequence[int] | None = None) -> np.ndarray:
        """Parts per million earned per client over the run (the ledger pays a round's
        budget by these shares)."""
        n = 1 + max((max(r.submitted, default=-1) for r in self.rounds), default=-1)
        total = np.zeros(n)
        for r in self.rounds:
            for j, i in enumerate(r.submitted):
                total[i] += r.decision.shares[j]
        return total if clients is None else total[list(clients)]


def run_offline(fed: Federation, clients: Sequence[Client] | None = None, *,
                blacklist: bool = True, decide: Decide = decide_as_on_chain,
                strategy: Strategy | None = None,
                on_round: Callable[[OfflineRound], Any] | None = None,
                gate_score: str = "loss",
                hooks: Sequence[Any] | None = None) -> OfflineRun:
    """Runs ``fed.config.rounds`` rounds with ``clients`` (default: the federation's).
    ``gate_score`` is the per-example validation score the gate reads
    (:mod:`fl_agent.learning.gate_scores`; the agents use ``"loss"``); ``hooks``, one per
    client (or None), are their training's ``gradient_hook`` (e.g. a watermark's)."""
    import torch

    torch.set_num_threads(1)
    config = fed.config
    members = list(fed.clients if clients is None else clients)
    spec = fed.spec
    X_val = fed.data.standardize(fed.splits.validation.X)
    y_val = np.asarray(fed.splits.validation.y, dtype=np.int64)
    X_test = fed.data.standardize(fed.splits.test.X)
    y_test = np.asarray(fed.splits.test.y, dtype=np.int64)
    shards = [(fed.data.standardize(c.X), np.asarray(c.y, dtype=np.int64)) for c in members]
    strategy = strategy or aggregator_strategy(fed)

    def gate(vector: np.ndarray) -> np.ndarray:
        return validation_scores(spec, vector, X_val, y_val, gate_score)

    def score(vector: np.ndarray) -> float:
        return evaluate(spec, vector, X_val, y_val, "accuracy")

    params = init_params(spec, config.seed)
    window = config.window_rounds * (config.clients + BLOCKS_PER_ROUND_SLACK)
    opened: dict[int, tuple[int, int]] = {}  # client -> (window's first block, rejections)
    block = 0
    blacklisted: set[int] = set()
    measured: dict[str, Measurement] = {}
    rounds = []
    # What each client sent in its latest rounds, for a rule that screens them together
    # (FairFL's trigger_rounds and noise_rounds; the aggregator agent reads the same back
    # from the chain).
    screened, width = earlier_window(strategy, params.size) or (1, 0)
    sent: dict[int, list[tuple[int, np.ndarray]]] = {}  # client -> (round, kept delta)
    for number in range(1, config.rounds + 1):
        submitted = tuple(i for i in range(len(members)) if i not in blacklisted)
        if not submitted:  # everyone is blacklisted: nobody submits, the model stays
            row = OfflineRound(number, (), RoundDecision(params, (), MappingProxyType({}),
                                                         np.zeros(0), ()),
                               evaluate(spec, params, X_test, y_test, "accuracy"))
            rounds.append(row)
            if on_round is not None:
                on_round(row)
            continue
        steps = assign_steps([str(i) for i in submitted], measured, config.steps)
        updates = []
        for i in submitted:
            client, (X, y), work = members[i], shards[i], steps[str(i)]
            trained = train_local(spec, params, X, y, work,
                                  seed=round_seed(client.seed, number),
                                  batch_size=config.batch_size, lr=config.lr,
                                  gradient_hook=hooks[i] if hooks else None).vector
            if client.speed is not None:  # what its device reports, as the participant does
                millis = max(1, round(work * (STEP_MILLIS / client.speed)))
                measured[str(i)] = Measurement(work, config.batch_size, millis)
            if client.poison is not None:
                trained = client.poison(params, trained)
            updates.append(np.asarray(trained, dtype=np.float32))
        claims = np.array([members[i].claimed_samples or len(members[i].y) for i in submitted],
                          dtype=np.float64)
        extra: dict[str, Any] = {}
        if width:
            extra["earlier"] = np.array([
                sum((d for r, d in sent.get(i, ()) if r > number - screened), np.zeros(width))
                for i in submitted])
            for i, update in zip(submitted, updates, strict=True):
                kept = [(r, d) for r, d in sent.get(i, ()) if r > number + 1 - screened]
                sent[i] = [*kept, (number, update[:width].astype(np.float64) - params[:width])]
        decision = decide(strategy, params, np.stack(updates), claims, gate=gate, score=score,
                          scoring=config.scoring, permutations=config.permutations,
                          round_number=number, **extra)
        params = np.asarray(decision.params, dtype=np.float32)
        block += len(submitted) + 2  # startRound, the submissions, finalizeRound
        accepted = {submitted[j] for j in decision.accepted}
        held = {submitted[j] for j, reason in decision.reasons.items()
                if reason == Reason.HELD_BACK}  # ParticipantRegistry does not count these
        for i in submitted:
            if i not in accepted and i not in held:
                start, count = opened.get(i, (block, 0))
                if count == 0 or block >= start + window:  # ParticipantRegistry's window
                    start, count = block, 0
                opened[i] = (start, count + 1)
                if blacklist and count + 1 >= config.max_rejections:
                    blacklisted.add(i)
        # An attacker that reads its standing (public on chain: its verdict, and the
        # registry's count and window) learns whether one more rejection would ban it.
        next_block = block + len(members) - len(blacklisted) + 2
        for i in submitted:
            observe = getattr(members[i].poison, "observe", None)
            if observe is not None and i not in blacklisted:
                start, count = opened.get(i, (0, 0))
                count = count if next_block < start + window else 0  # the window will close
                j = submitted.index(i)
                observe("accepted" if i in accepted else
                        "held_back" if i in held else "rejected",
                        ban_next=blacklist and count + 1 >= config.max_rejections,
                        reason=None if i in accepted else str(decision.reasons[j]))
        row = OfflineRound(number, submitted, decision,
                           evaluate(spec, params, X_test, y_test, "accuracy"))
        rounds.append(row)
        if on_round is not None:
            on_round(row)
    return OfflineRun(tuple(rounds), params, rounds[-1].test_accuracy if rounds else 0.0,
                      tuple(sorted(blacklisted)))


__all__ = ["Client", "Federation", "OfflineRound", "OfflineRun", "aggregator_strategy",
           "decide_as_on_chain", "federation", "run_offline"]
