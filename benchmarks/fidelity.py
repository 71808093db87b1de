"""Contribution-score fidelity: how well the scores the aggregator pays by rank the
participants, against exact Shapley values, and what each costs.

Offline runs (:mod:`fl_agent.simulation.offline`) of 8 clients on digits (MLP, Dirichlet
α = 0.5, FairFL, 20 rounds, no blacklist), clean and with 25 % label flippers, on the
evaluation seeds. In the measured rounds, the game is the one the aggregator scored
(:func:`fl_agent.aggregation.rounds.decide_round`): the players are the accepted updates,
copies grouped as one player, weighted by the capped claims, and a set's value is the
validation accuracy of the strategy's combination of its updates (the empty set: the
current global model). Rounds with fewer than 3 players are skipped.

* **exact**: the Shapley formula over all ``2^n`` subsets, written here independently of
  the library's permutation sampler: ``phi_i = sum_S |S|! (n-|S|-1)! / n! (v(S+i) - v(S))``;
* **scored**: what the aggregator scores with its 40 permutations
  (:func:`~fl_agent.aggregation.scoring.shapley_values`): exact when ``2^n <= 40 n``, the
  most evaluations the sampler could make (up to 8 players), else 40 random permutations
  seeded by the round; before it is clipped at 0;
* **sampler-40**: the permutation sampler alone, 40 permutations
  (:func:`~fl_agent.aggregation.scoring.permutation_shapley_values`; exact when
  ``n! <= 40``): what is scored above 8 players;
* **truncated-40**: the same sampler, permutations and seed, truncated (after Ghorbani & Zou,
  at the tightest tolerance, :data:`SAME_SCORE`) once a prefix scores as the whole set does;
  measured, not used by the aggregator (``docs/sweep.md`` §5);
* **leave-one-out**: ``v(all) - v(all - i)``, the other scoring a task can choose, before
  clipping;
* **data size**: the players' weights alone (what a reward by data size ranks by);
* **paid**: the parts per million the ledger pays (half by weight, half by the clipped
  scores).

Per estimator: Spearman's correlation with the exact values in each measured round (a
round whose exact values are all equal ranks nobody and is counted apart; an estimator
that is constant where they are not scores 0), and its seconds on a cold cache (for the two
samplers also the sets they evaluated). Goal:
Spearman ≥ 0.8.

    python -m benchmarks.fidelity                       # seeds 11-13, rounds 1, 2, 5, 10, 20
    python -m benchmarks.fidelity --seeds 11 --rounds 2 --measure 1,2
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, progress_bar, publish
from benchmarks.held_out import EVALUATION_SEEDS
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.rounds import RoundDecision
from fl_agent.aggregation.scoring import (
    permutation_shapley_values,
    shapley_values,
    subset_value,
)
from fl_agent.simulation.config import SimulationConfig
from fl_agent.simulation.offline import decide_as_on_chain, federation, run_offline

ESTIMATORS = ("scored", "sampler-40", "truncated-40", "leave-one-out", "data size", "paid")
#: ``truncated-40`` stops a permutation once its prefix scores as the whole set does (within
#: float noise): the remaining marginals count as 0 (together they sum to within this of 0)
#: and are not evaluated.
SAME_SCORE = 1e-9
SETTINGS = {"clean": {"attack": "none"},
            "25 % label flippers": {"attack": "label_flip", "malicious": 0.25}}
GOAL = 0.8


def exact_shapley(value: Callable[[Sequence[int]], float], n: int) -> np.ndarray:
    """Shapley values of players ``0..n-1`` by the subset formula (``2^n`` values)."""
    values = {}
    for size in range(n + 1):
        for subset in itertools.combinations(range(n), size):
            values[subset] = value(list(subset))
    phi = np.zeros(n)
    for subset, v in values.items():
        weight = math.factorial(len(subset)) * math.factorial(n - len(subset) - 1) \
            if len(subset) < n else 0
        for i in range(n):
            if i not in subset:
                phi[i] += weight * (values[tuple(sorted((*subset, i)))] - v)
    return phi / math.factorial(n)


def _timed(make: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = make()
    return result, time.perf_counter() - start


def score_round(strategy: Strategy, global_params: np.ndarray, updates: np.ndarray,
                score: Callable[[np.ndarray], float],
                decision: RoundDecision, round_number: int) -> dict[str, Any] | None:
    """Every estimator and the exact values on the game the aggregator scored in this round
    (its accepted updates, copies as one player, its capped weights), each on a fresh
    cache; None when fewer than 3 players were accepted."""
    accepted = list(decision.accepted)
    weights, groups = decision.weights, decision.groups  # as decide_round set them
    assert weights is not None and groups is not None, "a decision of decide_round"
    members: dict[int, list[int]] = {}
    for i in accepted:
        members.setdefault(int(groups[i]), []).append(i)
    players = sorted(members)
    if len(players) < 3:
        return None

    calls: dict[str, int] = {}

    def fresh(name: str = "") -> Callable[[Sequence[int]], float]:
        value = subset_value(strategy, global_params, updates, weights, score)

        def counted(chosen: Sequence[int]) -> float:
            calls[name] = calls.get(name, 0) + 1
            return value([i for k in chosen for i in members[players[k]]])
        return counted

    n = len(players)
    exact, exact_s = _timed(lambda: exact_shapley(fresh(), n))
    scored, scored_s = _timed(lambda: shapley_values(fresh(), range(n), num_permutations=40,
                                                     seed=round_number))
    sampled, sampled_s = _timed(lambda: permutation_shapley_values(
        fresh("sampler-40"), range(n), num_permutations=40, seed=round_number))
    truncated, truncated_s = _timed(lambda: permutation_shapley_values(
        fresh("truncated-40"), range(n), num_permutations=40, seed=round_number,
        truncation=SAME_SCORE))

    def leave_one_out() -> list[float]:
        value = fresh()
        everyone = value(list(range(n)))
        return [everyone - value([k for k in range(n) if k != j]) for j in range(n)]

    loo, loo_s = _timed(leave_one_out)
    estimates = {"scored": [scored[k] for k in range(n)],
                 "sampler-40": [sampled[k] for k in range(n)],
                 "truncated-40": [truncated[k] for k in range(n)], "leave-one-out": loo,
                 "data size": [float(weights[members[p]].sum()) for p in players],
                 "paid": [float(sum(decision.shares[i] for i in members[p])) for p in players]}
    return {"players": [members[p] for p in players], "exact": exact.tolist(),
            "estimates": estimates,
            "seconds": {"exact": exact_s, "scored": scored_s, "sampler-40": sampled_s,
                        "truncated-40": truncated_s, "leave-one-out": loo_s},
            "evaluations": {k: calls[k] for k in ("sampler-40", "truncated-40")}}


def spearman(estimate: Sequence[float], exact: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None when the exact values
    do not rank the players (all equal), 0 when the estimate ranks nobody where they do."""
    from scipy.stats import spearmanr

    truth = np.round(np.asarray(exact, dtype=float), 12)  # float noise is no ranking
    if np.ptp(truth) == 0:
        return None
    if np.ptp(estimate) == 0:
        return 0.0
    return float(spearmanr(estimate, truth).statistic)


def measure(seeds: Sequence[int], rounds: int, measured: Sequence[int],
            clients: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    jobs = [(name, seed) for name in SETTINGS for seed in seeds]
    with progress_bar() as bar:
        task = bar.add_task("runs", total=len(jobs))
        for name, seed in jobs:
            config = SimulationConfig(clients=clients, seed=seed, rounds=rounds,
                                      **{"malicious": 0.0, **SETTINGS[name]})
            fed = federation(config)
            bad = [i for i, c in enumerate(fed.clients) if c.malicious]

            def decide(strategy: Strategy, params: np.ndarray, updates: np.ndarray,
                       claims: np.ndarray, *, name: str = name, seed: int = seed,
                       bad: list[int] = bad, **options: Any) -> RoundDecision:
                decision = decide_as_on_chain(strategy, params, updates, claims, **options)
                number = options["round_number"]
                if number in measured:
                    row = score_round(strategy, params, updates, options["score"], decision,
                                      number)
                    if row is not None:
                        row.update(setting=name, seed=seed, round=number, attackers=bad,
                                   spearman={k: spearman(v, row["exact"])
                                             for k, v in row["estimates"].items()})
                        rows.append(row)
                return decision

            run_offline(fed, decide=decide, blacklist=False)
            bar.advance(task)
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SETTINGS:
        got = [r for r in rows if r["setting"] == name]
        sizes = [len(r["players"]) for r in got]
        entry: dict[str, Any] = {"rounds": len(got),
                                 "players": {n: sizes.count(n) for n in sorted(set(sizes))}}
        for estimator in ESTIMATORS:
            values = [r["spearman"][estimator] for r in got
                      if r["spearman"][estimator] is not None]
            entry[estimator] = {
                "median": float(np.median(values)) if values else None,
                "min": min(values) if values else None,
                "at_least_goal": sum(v >= GOAL for v in values), "ranked": len(values)}
        for estimator in ("exact", "scored", "sampler-40", "truncated-40", "leave-one-out"):
            entry[f"{estimator}_seconds"] = float(np.median([r["seconds"][estimator]
                                                             for r in got])) if got else None
        out[name] = entry
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["| setting | estimator | Spearman with exact Shapley, median (min) | rounds ≥ 0.8 | "
             "seconds per round (median) |", "| --- | --- | --- | --- | --- |"]
    for name, entry in result["summary"].items():
        for estimator in (e for e in ESTIMATORS if e in entry):  # older runs lack some
            e = entry[estimator]
            rho = "–" if e["median"] is None else f"{e['median']:.2f} ({e['min']:.2f})"
            seconds = entry.get(f"{estimator}_seconds")
            lines.append(f"| {name} | {estimator} | {rho} | {e['at_least_goal']} of "
                         f"{e['ranked']} | {'–' if seconds is None else f'{seconds:.2f}'} |")
        if entry["exact_seconds"] is not None:
            lines.append(f"| {name} | exact (2^n subsets) | 1 | | "
                         f"{entry['exact_seconds']:.2f} |")
    lines.append("")
    for name, entry in result["summary"].items():
        counts = ", ".join(f"{n} players in {k}" for n, k in entry["players"].items())
        lines.append(f"{name}: {counts or 'no round measured'}.")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Each estimator's Spearman with the exact values, one point per scored round, a panel
    per setting, the goal as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(result["summary"])
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings), 4), squeeze=False)
    for ax, name in zip(axes[0], settings, strict=True):
        got = [r for r in result["rounds"] if r["setting"] == name]
        names = [e for e in ESTIMATORS if any(r["spearman"].get(e) is not None for r in got)]
        for x, estimator in enumerate(names):
            values = [r["spearman"][estimator] for r in got
                      if r["spearman"].get(estimator) is not None]
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(x + np.asarray(jitter), values, s=14, alpha=0.7)
            ax.hlines(np.median(values), x - 0.3, x + 0.3, color="black")
        ax.axhline(GOAL, color="red", linestyle="--", linewidth=1, label=f"goal {GOAL}")
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set(ylim=(-1.05, 1.05), ylabel="Spearman with exact Shapley",
               title=f"{name}, {result['clients']} clients (bar: median)")
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS[:3])))
    parser.add_argument("--rounds", type=int, default=20, help="rounds per run")
    parser.add_argument("--measure", default="1,2,5,10,20",
                        help="the rounds whose game is scored every way")
    parser.add_argument("--clients", type=int, default=8,
                        help="clients (the exact values take 2^clients evaluations)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/fidelity.json"))
    parser.add_argument("--plot", type=Path, default=None,
                        help="the plot (default: beside the JSON, .png)")
    parser.add_argument("--report-only", action="store_true",
                        help="no runs: the table and the plot of the JSON at --json")
    args = parser.parse_args(argv)
    figure = args.plot or args.json.with_suffix(".png")
    if args.report_only:
        if not args.json.is_file():
            parser.error(f"no run at {args.json}: give its JSON with --json")
        result = json.loads(args.json.read_text())
        print(markdown(result) + f"\n\nplot: {plot(result, figure)}")
        return
    if not 3 <= args.clients <= 12:
        parser.error("--clients must be between 3 and 12 (exact Shapley takes 2^n values)")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        measured = [int(r) for r in args.measure.split(",")]
    except ValueError:
        parser.error("--seeds and --measure take comma-separated integers")
    rows = measure(seeds, args.rounds, measured, args.clients)
    result = {"machine": machine(), "clients": args.clients, "seeds": seeds,
              "measured_rounds": measured, "summary": summary(rows), "rounds": rows}
    publish(result, args.json, markdown(result) + f"\n\nplot: {plot(result, figure)}")


if __name__ == "__main__":
    main()
