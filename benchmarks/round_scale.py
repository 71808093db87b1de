"""One aggregator round at scale, whole: FairFL's default path with a real model, the way
:func:`fl_agent.aggregation.rounds.decide_round` runs it on chain and offline, split into
its parts.

``benchmarks.scale`` times each rule alone on synthetic updates with a stand-in gate. This
runs the round the aggregator runs: ``--clients`` participants (30 % sign-flippers) of
digits (an IID split: 200 clients share 1,167 training examples, 5-6 each, so the batch size
is 8 and each step uses a client's whole shard), each training 20 local SGD steps of an MLP
whose hidden widths ``--hidden`` set its size (``960,960``: 994,570 parameters), for
``--rounds`` rounds offline (:func:`fl_agent.simulation.offline.run_offline`, no
blacklisting); in each round the aggregator's rule as the task sets it up
(``aggregator_strategy``), its validation gate reading the model's loss on the validation
split, Shapley scoring with the aggregator's 40 permutations (``--scoring loo``: leave-one-out,
the other scoring a task can choose), and then the evidence's
per-update figures (:func:`~fl_agent.aggregation.rounds.update_figures`, one evaluation per
update) that the aggregator publishes. Per round it reports the wall time of:

* ``copy groups``: the round's Gram matrix of the deltas and the weights
  (:meth:`~fl_agent.aggregation.base.Round.delta_gram`, which FairFL's similarities read
  too, and :func:`~fl_agent.aggregation.rounds.round_weights`);
* ``rule``: the strategy's ``aggregate`` (and a recombination if the final weights differ),
  the rest of ``decide_round``; of which ``gate``: the gate's forward passes (counted);
* ``scoring``: the contribution scores (counted in model evaluations; ``positive_scores``:
  how many accepted updates scored above 0);
* ``evidence``: the per-update figures.

``--profile FILE`` then makes the last round's decision once more without contribution
scoring (the scores replaced by zeros) under ``cProfile``, writes its statistics to FILE
and prints where the time went.

After the last round it also times valuing single coalitions the way scoring did before it
grew a permutation's coalitions from running sums: the strategy's ``combine`` over all the
members afresh, at a tenth, a quarter, half, three quarters and all of the accepted
updates (``afresh_seconds``), to set beside the scoring's seconds per evaluation.

The decision and the evidence run with ``--threads`` torch threads (default: torch's own
default, the machine's cores, which is what the aggregator agent runs with: ``fl-agent
aggregate`` does not pin it); the clients' training runs on one, as the offline harness pins
it. ``--threads 1`` times the decision on one core's torch, as the runs published before
2026-12-05 did.

The parts are timed by wrapping the functions ``decide_round`` calls (``unittest.mock.
patch``, scoped to the round) and the gate and score callbacks; nothing in them changes.
Round 1 starts from the model's initialisation and pays the process's first touch of its
memory; the later rounds are the warm ones. ``training_seconds`` is the wall time from the
previous round's end (round 1: from the start of the offline run, which also standardises
the shards) to the decision: all the clients' local training, one after the other.

    python -m benchmarks.round_scale --clients 200 --hidden 960,960
    python -m benchmarks.round_scale --clients 20 --hidden 64 --rounds 2
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from benchmarks import machine, publish
from fl_agent.aggregation import base as base_module
from fl_agent.aggregation import rounds as round_module
from fl_agent.aggregation.rounds import RoundDecision, update_figures
from fl_agent.aggregation.scoring import subset_value
from fl_agent.learning.models import ModelSpec, param_count
from fl_agent.learning.training import evaluate
from fl_agent.simulation.config import SimulationConfig
from fl_agent.simulation.offline import (
    aggregator_strategy,
    decide_as_on_chain,
    federation,
    run_offline,
)

PARTS = ("copy groups", "rule", "scoring", "evidence")


class _Clock:
    """Wall time and calls of the functions it wraps, by part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start
                self.calls[part] = self.calls.get(part, 0) + 1
        return timed


def afresh_seconds(strategy: Any, global_params: np.ndarray, updates: np.ndarray,
                   weights: np.ndarray, accepted: Sequence[int],
                   score: Callable[[np.ndarray], float]) -> dict[int, float]:
    """Seconds to value one coalition by combining its members afresh (a combine function,
    which :func:`~fl_agent.aggregation.scoring.subset_value` never grows from running sums),
    per coalition size: seeded prefixes of the accepted updates."""
    value = subset_value(lambda g, chosen, w: strategy.combine(g, chosen, w), global_params,
                         updates, weights, score)
    order = [int(i) for i in np.random.default_rng(0).permutation(list(accepted))]
    seconds = {}
    for share in (0.1, 0.25, 0.5, 0.75, 1.0):
        size = max(1, round(share * len(order)))
        start = time.perf_counter()
        value(order[:size])
        seconds[size] = round(time.perf_counter() - start, 3)
    return seconds


def profile_decision(path: Path, strategy: Any, global_params: np.ndarray,
                     updates: np.ndarray, claims: np.ndarray, **options: Any) -> None:
    """A round's decision without contribution scoring, under cProfile: statistics to
    ``path``, the 30 largest cumulative times printed."""
    import cProfile
    import pstats

    def no_scores(strategy_: Any, global_params_: Any, updates_: Any, *args: Any,
                  **kwargs: Any) -> np.ndarray:
        return np.zeros(len(updates_))

    with mock.patch.object(round_module, "contribution_scores", no_scores):
        profiler = cProfile.Profile()
        profiler.runcall(decide_as_on_chain, strategy, global_params, updates, claims,
                         **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(path)
    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(30)


def run(clients: int, hidden: tuple[int, ...], rounds: int, seed: int,
        on_round: Callable[[dict[str, Any]], Any] | None = None,
        profile: Path | None = None, threads: int | None = None,
        scoring: str = "shapley") -> list[dict[str, Any]]:
    import torch

    threads = threads or torch.get_num_threads()  # before run_offline pins training to one
    config = SimulationConfig(dataset="digits", model="mlp", clients=clients, malicious=0.3,
                              attack="sign_flip", partition="iid", batch_size=8, rounds=rounds,
                              seed=seed, scoring=scoring)
    fed = federation(config)
    spec = ModelSpec(name="mlp", input_shape=fed.spec.input_shape,
                     num_classes=fed.spec.num_classes, hidden=hidden)
    fed = dataclasses.replace(fed, spec=spec)
    strategy = aggregator_strategy(fed)
    X_val = fed.data.standardize(fed.splits.validation.X)
    y_val = np.asarray(fed.splits.validation.y, dtype=np.int64)
    rows: list[dict[str, Any]] = []
    trained_since = [time.perf_counter()]

    def decide(strategy_: Any, global_params: np.ndarray, updates: np.ndarray,
               claims: np.ndarray, **options: Any) -> RoundDecision:
        training = time.perf_counter() - trained_since[0]
        pinned = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return timed_decision(strategy_, global_params, updates, claims, training,
                                  **options)
        finally:
            torch.set_num_threads(pinned)

    def timed_decision(strategy_: Any, global_params: np.ndarray, updates: np.ndarray,
                       claims: np.ndarray, training: float, **options: Any) -> RoundDecision:
        clock = _Clock()
        options_gate, options_score = options.pop("gate"), options.pop("score")
        gate = clock.wrap("gate", options_gate)
        score = clock.wrap("evaluations", options_score)
        start = time.perf_counter()
        with (mock.patch.object(base_module, "delta_gram",
                                clock.wrap("copy groups", base_module.delta_gram)),
              mock.patch.object(round_module, "round_weights",
                                clock.wrap("copy groups", round_module.round_weights)),
              mock.patch.object(round_module, "contribution_scores",
                                clock.wrap("scoring", round_module.contribution_scores))):
            decision = decide_as_on_chain(strategy_, global_params, updates, claims,
                                          gate=gate, score=score, **options)
        decided = time.perf_counter() - start
        evaluations = clock.calls.get("evaluations", 0)
        figures_start = time.perf_counter()
        update_figures(global_params, updates, decision.params,
                       lambda vector: evaluate(spec, vector, X_val, y_val, "accuracy"))
        seconds = {
            "copy groups": clock.seconds.get("copy groups", 0.0),
            "scoring": clock.seconds.get("scoring", 0.0),
            "evidence": time.perf_counter() - figures_start,
        }
        seconds["rule"] = decided - seconds["copy groups"] - seconds["scoring"]
        row = {"round": options.get("round_number"), "clients": len(updates),
               "params": int(updates.shape[1]), "accepted": len(decision.accepted),
               "players": len(set(decision.groups[list(decision.accepted)].tolist()))
               if decision.accepted else 0,
               "training_seconds": round(training, 2), "torch_threads": threads,
               "seconds": {part: round(seconds[part], 3) for part in PARTS},
               "gate_calls": clock.calls.get("gate", 0),
               "gate_seconds": round(clock.seconds.get("gate", 0.0), 3),
               "scoring_evaluations": evaluations,
               "positive_scores": int(np.count_nonzero(
                   np.asarray(decision.scores)[list(decision.accepted)] > 0)),
               "total_seconds": round(sum(seconds.values()), 3),
               "without_scoring_seconds": round(sum(seconds.values()) - seconds["scoring"], 3)}
        if options.get("round_number") == rounds and profile is not None:
            profile_decision(profile, strategy_, global_params, updates, claims,
                             gate=options_gate, score=options_score, **options)
        if options.get("round_number") == rounds and decision.accepted:
            row["afresh_seconds"] = afresh_seconds(strategy_, global_params, updates,
                                                   decision.weights, decision.accepted, score)
            row["seconds_per_scoring_evaluation"] = round(
                seconds["scoring"] / max(1, evaluations), 4)
        rows.append(row)
        if on_round is not None:
            on_round(row)
        return decision

    # the training clock restarts once a round's bookkeeping (its test accuracy) is done
    run_offline(fed, blacklist=False, decide=decide, strategy=strategy,
                on_round=lambda _: trained_since.__setitem__(0, time.perf_counter()))
    return rows


def markdown(result: dict[str, Any]) -> str:
    threads = {row.get("torch_threads") for row in result["rounds"]} - {None}
    decided_on = f", the decision on {min(threads)} torch thread(s)" if threads else ""
    lines = [f"One round of {result['clients']} clients x {result['params']:,} parameters "
             f"(MLP {result['hidden']}{decided_on}), seconds:", "",
             "| round | accepted (players) | copy groups | rule (gate: calls, s) | scoring "
             "(evaluations) | evidence | total | total without scoring | training, all "
             "clients |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rounds"]:
        s = row["seconds"]
        lines.append(
            f"| {row['round']} | {row['accepted']} ({row['players']}) | {s['copy groups']:.2f} "
            f"| {s['rule']:.2f} ({row['gate_calls']}, {row['gate_seconds']:.2f}) | "
            f"{s['scoring']:.2f} ({row['scoring_evaluations']}) | {s['evidence']:.2f} | "
            f"{row['total_seconds']:.2f} | {row['without_scoring_seconds']:.2f} | "
            f"{row['training_seconds']:.1f} |")
    last = result["rounds"][-1] if result["rounds"] else {}
    if "afresh_seconds" in last:
        sizes = ", ".join(f"{k} members {v:.2f} s" for k, v in last["afresh_seconds"].items())
        lines += ["", f"Valuing one coalition afresh in round {last['round']}: {sizes}; "
                  f"scoring with running sums: {last['seconds_per_scoring_evaluation']:.4f} s "
                  "an evaluation."]
    return "\n".join(lines)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--hidden takes widths like 960,960: {err}") from err
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError("--hidden takes positive widths like 960,960")
    return widths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="participants (2-200)")
    parser.add_argument("--hidden", type=_widths, default=(960, 960),
                        help="the MLP's hidden widths (960,960: about 1M parameters)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the first is cold)")
    parser.add_argument("--seed", type=int, default=11, help="federation seed (evaluation "
                        "seeds are 11-15)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/round_scale.json"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the decision and the evidence (default: "
                        "torch's default, as the aggregator agent runs)")
    parser.add_argument("--scoring", choices=("shapley", "loo"), default="shapley",
                        help="the task's contribution scores: Shapley values (40 "
                        "permutations, the default) or leave-one-out")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="profile the last round's decision without scoring into FILE")
    args = parser.parse_args(argv)
    if not 2 <= args.clients <= 200:
        parser.error(f"--clients must be 2 to 200 (a task's limit), got {args.clients}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    size = param_count(ModelSpec(name="mlp", input_shape=(64,), num_classes=10,
                                 hidden=args.hidden))
    print(f"{args.clients} clients x {size:,} parameters, {args.rounds} rounds, seed "
          f"{args.seed}", flush=True)
    rows = run(args.clients, args.hidden, args.rounds, args.seed,
               on_round=lambda row: print(row, flush=True), profile=args.profile,
               threads=args.threads, scoring=args.scoring)
    result = {"machine": machine(), "clients": args.clients, "params": size,
              "scoring": args.scoring,
              "hidden": list(args.hidden), "seed": args.seed, "rounds": rows}
    publish(result, args.json, markdown(result))


if __name__ == "__main__":
    main()
