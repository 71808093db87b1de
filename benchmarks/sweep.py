"""Every aggregation rule side by side across settings: each rule under each attack, for
non-IID levels α and attacker shares, on digits (MLP) and breast_cancer (logistic
regression), over evaluation seeds.

Offline (:mod:`fl_agent.simulation.offline`: the simulation's data, shards, device speeds,
workload balancing, training, attacks, round decision and contribution scoring, with the
registry's blacklisting, without the chain; the agents' test
``test_the_offline_harness_replays_the_chain_run`` shows it gives the chain's rounds).
20 clients, 20 rounds. Every rule is what the platform does with it: an update the rule
leaves out is a rejection, and three rejections within the registry's window blacklist
the sender (Krum, which keeps one update a round, blacklists nearly everyone; without the
blacklist, the rules alone are in ``docs/rules-alone.md``). Rewards are the on-chain
Shapley scores blended with sample counts, as the aggregator pays them.

Per run: final test accuracy and macro-F1, TPR (rejected attack submissions over attack
submissions) and FPR (rejected honest submissions over honest ones), the attackers' share
of the rewards, honest participants blacklisted, the backdoor's or targeted flip's attack
success. Per cell (dataset, attack, α, share, rule): the median over seeds and the range.
The goal: FairFL's median accuracy within 1 point of the best rule's in every cell.

FairFL's constants were chosen on seeds 1-5 and crafted rounds; the evaluation seeds 11-15
were used for none of them. Runs are appended to ``--runs`` (JSON lines) as they finish, so
an interrupted sweep resumes where it stopped; ``--workers`` processes share the grid.

    python -m benchmarks.sweep                                  # the whole grid (hours)
    python -m benchmarks.sweep --datasets digits --attacks label_flip --seeds 11
    python -m benchmarks.sweep --report-only                    # tables and plots again
    python -m benchmarks.sweep --runs docs/data/sweep_runs.jsonl --verify 16   # kept rows
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, progress_bar, publish
from benchmarks.held_out import EVALUATION_SEEDS, detection
from benchmarks.rule_alone import RULES, attack_rate
from fl_agent.aggregation.base import Strategy
from fl_agent.errors import ConfigError
from fl_agent.learning.training import evaluate
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import Federation, aggregator_strategy, federation, run_offline

DATASETS = ("digits", "breast_cancer")
ALPHAS = (0.1, 0.5, 1.0)
SHARES = (0.1, 0.3, 0.45)
#: The attacks that apply to every dataset (the backdoor stamps an image patch and the
#: targeted flip moves class 1 to 7: digits only).
ATTACKS = ("none", "label_flip", "sign_flip", "scaling", "gaussian", "free_rider",
           "noisy_free_rider", "alie", "ipm", "minmax", "backdoor", "targeted_flip")
IMAGE_ONLY = frozenset({"backdoor", "targeted_flip"})
#: The metrics of a run, with how a heat map shows them (label, format, higher is better).
METRICS: dict[str, tuple[str, str, bool]] = {
    "accuracy": ("test accuracy", ".2f", True),
    "f1": ("test macro-F1", ".2f", True),
    "tpr": ("TPR (attack submissions rejected)", ".2f", True),
    "fpr": ("FPR (honest submissions rejected)", ".2f", False),
    "malicious_reward": ("attackers' share of rewards", ".2f", False),
    "benign_blacklisted": ("honest participants blacklisted", ".0f", False),
}
#: Beside the medians: the spread over seeds of each cell's accuracy (max - min).
SPREAD = ("accuracy_spread", ("test accuracy: spread over seeds (max - min)", ".2f", False))
#: FairFL's goal: its accuracy within this of the best rule's, in every cell.
WITHIN = 0.01


@dataclass(frozen=True, order=True)
class Run:
    """One run of the grid: a rule (or a FairFL variant) on one setting and seed."""

    dataset: str
    attack: str
    alpha: float
    malicious: float
    rule: str
    seed: int
    rounds: int = 20

    @property
    def cell(self) -> tuple[str, str, float, float]:
        return self.dataset, self.attack, self.alpha, self.malicious


#: Builds a run's strategy from its rule name and federation (the sweep: the aggregator's
#: own set-up of that rule; the ablation: FairFL with another clustering).
StrategyFor = Callable[[str, Federation], Strategy]


def rule_strategy(rule: str, fed: Federation) -> Strategy:
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    return aggregator_strategy(fed)


def grid(datasets: Iterable[str], attacks: Iterable[str], alphas: Iterable[float],
         shares: Iterable[float], rules: Iterable[str], seeds: Iterable[int],
         rounds: int = 20) -> list[Run]:
    """The runs in the order they are measured: attack by attack, so that a sweep cut short
    leaves whole cells. ``none`` runs once per α (its attacker share is 0); the image-only
    attacks run on digits only."""
    rules, seeds, shares = list(rules), list(seeds), list(shares)
    runs = []
    for attack in attacks:
        for dataset in datasets:
            if attack_settings(attack)["attack"] in IMAGE_ONLY and dataset != "digits":
                continue
            for alpha in alphas:
                for share in ([0.0] if attack == "none" else shares):
                    runs += [Run(dataset, attack, alpha, share, rule, seed, rounds)
                             for rule in rules for seed in seeds]
    return runs


def measure_run(run: Run, strategy_for: StrategyFor = rule_strategy) -> dict[str, Any]:
    """One run, offline, with blacklisting; its metrics."""
    start = time.perf_counter()
    settings = attack_settings(run.attack)
    config = SimulationConfig(dataset=run.dataset, alpha=run.alpha, seed=run.seed,
                              rounds=run.rounds,
                              malicious=run.malicious,
                              aggregator=run.rule if run.rule in RULES else "fairfl",
                              **settings)
    fed = federation(config)
    result = run_offline(fed, strategy=strategy_for(run.rule, fed))
    X_test = fed.data.standardize(fed.splits.test.X)
    y_test = np.asarray(fed.splits.test.y, dtype=np.int64)
    return {**asdict(run), "accuracy": result.test_accuracy,
            "f1": evaluate(fed.spec, result.params, X_test, y_test, "f1_macro"),
            "asr": attack_rate(fed, result), **detection(fed, result),
            "seconds": round(time.perf_counter() - start, 2)}


def _key(row: dict[str, Any]) -> Run:
    return Run(row["dataset"], row["attack"], float(row["alpha"]), float(row["malicious"]),
               row["rule"], int(row["seed"]), int(row.get("rounds", 20)))


def load_runs(path: Path) -> dict[Run, dict[str, Any]]:
    """The runs already measured (a line that does not parse, from a sweep killed while
    writing, is skipped and measured again)."""
    done: dict[Run, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                done[_key(row)] = row
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _one_thread() -> None:
    """A worker's numeric libraries on one core each (the workers share the machine)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def sweep(runs: Sequence[Run], path: Path, workers: int,
          strategy_for: StrategyFor = rule_strategy,
          label: str = "runs") -> dict[Run, dict[str, Any]]:
    """Measures the runs not yet in ``path`` on ``workers`` processes, appending each to
    ``path`` as it finishes; all of ``runs``' rows."""
    done = load_runs(path)
    todo = [r for r in runs if r not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    with progress_bar() as bar, path.open("a") as out:
        task = bar.add_task(label, total=len(runs), completed=len(runs) - len(todo))

        def keep(row: dict[str, Any]) -> None:
            done[_key(row)] = row
            out.write(json.dumps(row) + "\n")
            out.flush()
            bar.advance(task)

        if workers <= 1:
            for r in todo:
                keep(measure_run(r, strategy_for))
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                     initializer=_one_thread) as pool:
                futures = {pool.submit(measure_run, r, strategy_for): r for r in todo}
                try:
                    for future in as_completed(futures):
                        keep(future.result())
                except BaseException as err:  # stop now, not after every queued run
                    pool.shutdown(wait=False, cancel_futures=True)
                    failed = next((futures[f] for f in futures
                                   if f.done() and not f.cancelled() and f.exception()), None)
                    raise RuntimeError(f"the sweep stopped at {failed}: {err!r}; the runs "
                                       f"finished are kept in {path}") from err
    return {r: done[r] for r in runs}


def verify(runs: Sequence[Run], kept: dict[Run, dict[str, Any]], count: int,
           strategy_for: StrategyFor = rule_strategy, seed: int = 0,
           banned: int = 0) -> list[dict[str, Any]]:
    """Measures ``count`` of the kept ``runs`` again, drawn at random in turn from each rule
    and dataset, and compares every metric with the kept row: whoever doubts a kept row
    can remake a sample of them. ``banned``: draw only runs whose kept row blacklisted at
    least that many accounts, honest and malicious (the runs whose late rounds have few
    players). One dict per run: the run, the metrics that differ (kept, now) and both
    times."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in sorted(r for r in runs if r in kept and kept[r]["benign_blacklisted"]
                      + kept[r]["malicious_blacklisted"] >= banned):
        groups.setdefault((run.rule, run.dataset), []).append(run)
    picks: list[Run] = []
    while len(picks) < count and any(groups.values()):
        for members in groups.values():
            if members and len(picks) < count:
                picks.append(members.pop(rng.randrange(len(members))))
    checked = []
    with progress_bar() as bar:
        task = bar.add_task("runs made again", total=len(picks))
        for run in picks:
            row, now = kept[run], measure_run(run, strategy_for)
            checked.append({"run": asdict(run), "seconds_kept": row.get("seconds"),
                            "seconds_now": now["seconds"],
                            "differs": {m: [row.get(m), v] for m, v in now.items()
                                        if m != "seconds" and row.get(m) != v}})
            bar.advance(task)
    return checked


# ----------------------------------------------------------------------------- the report


def _median(rows: Sequence[dict[str, Any]], metric: str) -> float | None:
    values = [r[metric] for r in rows if r[metric] is not None]
    return float(np.median(values)) if values else None


def cells(rows: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, dict[str, Any]]]:
    """Per cell and rule: the median and range of each metric over seeds."""
    grouped: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        run = _key(row)
        grouped.setdefault(run.cell, {}).setdefault(run.rule, []).append(row)
    summary: dict[tuple, dict[str, dict[str, Any]]] = {}
    for cell, by_rule in grouped.items():
        summary[cell] = {}
        for rule, got in by_rule.items():
            entry: dict[str, Any] = {"seeds": sorted(r["seed"] for r in got)}
            for metric in (*METRICS, "asr"):
                values = [r[metric] for r in got if r[metric] is not None]
                entry[metric] = _median(got, metric)
                entry[f"{metric}_range"] = [min(values), max(values)] if values else None
            summary[cell][rule] = entry
    return summary


def goal(summary: dict[tuple, dict[str, dict[str, Any]]], rules: Sequence[str],
         subject: str = "fairfl") -> list[dict[str, Any]]:
    """Per cell: the best rule by median accuracy, ``subject``'s gap to it, and whether it
    is within :data:`WITHIN`. Only complete cells count: every one of ``rules`` ran, on
    the same seeds."""
    verdicts = []
    for cell, by_rule in sorted(summary.items()):
        if set(rules) - set(by_rule) or len({tuple(e["seeds"]) for e in by_rule.values()}) > 1:
            continue
        best = max(by_rule, key=lambda rule: by_rule[rule]["accuracy"])
        gap = by_rule[best]["accuracy"] - by_rule[subject]["accuracy"]
        verdicts.append({"dataset": cell[0], "attack": cell[1], "alpha": cell[2],
                         "malicious": cell[3], "best": best, "gap": round(gap, 4),
                         "met": gap <= WITHIN + 1e-12})
    return verdicts


def _setting(alpha: float, share: float) -> str:
    return f"α={alpha:g} m={share:g}" if share else f"α={alpha:g} clean"


def markdown(summary: dict[tuple, dict[str, dict[str, Any]]], rules: Sequence[str],
             subject: str = "fairfl", detail: Sequence[str] = ("fairfl",)) -> str:
    """One table per dataset and attack (rules × settings, median accuracy, the best in
    bold; TPR, FPR and honest participants blacklisted for the rules in ``detail``), then
    the goal's verdicts for ``subject``."""
    lines: list[str] = []
    keys = sorted(summary)
    for dataset, attack in dict.fromkeys((c[0], c[1]) for c in keys):
        settings = [c for c in keys if c[:2] == (dataset, attack)]
        lines += [f"\n**{dataset}, {attack}**: median test accuracy (TPR / FPR / honest "
                  f"blacklisted for {', '.join(detail)})\n",
                  "| rule | " + " | ".join(_setting(c[2], c[3]) for c in settings) + " |",
                  "| --- |" + " --- |" * len(settings)]
        for rule in rules:
            row = []
            for c in settings:
                entry = summary[c].get(rule)
                if entry is None:
                    row.append("–")
                    continue
                best = max(v["accuracy"] for v in summary[c].values())
                text = f"{entry['accuracy']:.3f}"
                text = f"**{text}**" if entry["accuracy"] >= best - 1e-12 else text
                if rule in detail:
                    tpr = "–" if entry["tpr"] is None else f"{entry['tpr']:.2f}"
                    text += f" ({tpr} / {entry['fpr']:.2f} / {entry['benign_blacklisted']:g})"
                row.append(text)
            lines.append(f"| {rule} | " + " | ".join(row) + " |")
    verdicts = goal(summary, rules, subject)
    missed = [v for v in verdicts if not v["met"]]
    lines.append(f"\n{subject} within {WITHIN * 100:g} point of the best rule in "
                 f"{len(verdicts) - len(missed)} of {len(verdicts)} complete cells"
                 f" ({len(summary) - len(verdicts)} incomplete).")
    lines += [f"- missed: {v['dataset']}, {v['attack']}, {_setting(v['alpha'], v['malicious'])}"
              f": {v['best']} is {100 * v['gap']:.1f} points ahead" for v in missed]
    return "\n".join(lines)


def heat_maps(summary: dict[tuple, dict[str, dict[str, Any]]], rules: Sequence[str],
              folder: Path, prefix: str = "sweep") -> list[Path]:
    """One PNG per dataset and metric: a panel per attack, rules × settings, the median;
    and one of the accuracy's spread over the seeds (max - min)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    keys = sorted(summary)
    for dataset in dict.fromkeys(c[0] for c in keys):
        attacks = list(dict.fromkeys(c[1] for c in keys if c[0] == dataset))
        for metric, (label, fmt, higher) in [*METRICS.items(), SPREAD]:
            columns = min(3, len(attacks))
            rows_n = -(-len(attacks) // columns)
            widest = max(sum(1 for c in keys if c[:2] == (dataset, a)) for a in attacks)
            fig, axes = plt.subplots(rows_n, columns, squeeze=False,
                                     figsize=((0.75 * widest + 1.6) * columns,
                                              0.42 * len(rules) * rows_n + 1.6))
            for ax in axes.flat[len(attacks):]:
                ax.axis("off")
            for ax, attack in zip(axes.flat, attacks, strict=False):
                settings = [c for c in keys if c[:2] == (dataset, attack)]
                data = np.array([[_value(summary[c].get(r, {}), metric) for c in settings]
                                 for r in rules], dtype=float)
                cmap = "viridis" if higher else "viridis_r"
                vmax = 1.0 if metric not in ("benign_blacklisted", SPREAD[0]) else max(
                    1.0 if metric == "benign_blacklisted" else 0.1,
                    np.nanmax(data) if np.isfinite(data).any() else 0.0)
                ax.imshow(data, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto")
                for (i, j), value in np.ndenumerate(data):
                    if np.isfinite(value):
                        ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=7,
                                color="white" if (value < vmax / 2) == higher else "black")
                ax.set_title(attack, fontsize=9)
                ax.set_xticks(range(len(settings)),
                              [_setting(c[2], c[3]).replace(" ", "\n") for c in settings],
                              fontsize=6)
                ax.set_yticks(range(len(rules)), rules, fontsize=7)
            fig.suptitle(f"{dataset}: {label}" + ("" if metric == SPREAD[0]
                                                  else " (median over seeds)"), fontsize=11)
            fig.tight_layout()
            path = folder / f"{prefix}_{dataset}_{metric}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written


def _value(entry: dict[str, Any], metric: str) -> float:
    """A heat map's value of a cell's ``entry``: the median of ``metric``, or for the spread
    the accuracy's range over seeds; NaN when absent."""
    if metric == SPREAD[0]:
        span = entry.get("accuracy_range")
        return np.nan if span is None else span[1] - span[0]
    value = entry.get(metric)
    return np.nan if value is None else value


def report(rows: dict[Run, dict[str, Any]], rules: Sequence[str], json_path: Path,
           plots: Path | None, prefix: str, subject: str = "fairfl",
           detail: Sequence[str] = ("fairfl",)) -> None:
    summary = cells(rows.values())
    written = heat_maps(summary, rules, plots, prefix) if plots is not None else []
    seconds = [r["seconds"] for r in rows.values()]
    result = {"machine": machine(), "runs": len(rows),
              "run_seconds": {"total": round(sum(seconds), 1),
                              "median": float(np.median(seconds)) if seconds else None},
              "seeds": sorted({r.seed for r in rows}), "rules": list(rules),
              "goal": goal(summary, rules, subject),
              "cells": [{"dataset": c[0], "attack": c[1], "alpha": c[2], "malicious": c[3],
                         "rules": by_rule} for c, by_rule in sorted(summary.items())],
              "plots": [str(p) for p in written]}
    publish(result, json_path, markdown(summary, rules, subject, detail))


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def arguments(description: str, rules: Sequence[str], prefix: str,
              shares: Sequence[float] = SHARES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help="comma-separated attacks and variants")
    parser.add_argument("--alphas", default=",".join(map(str, ALPHAS)),
                        help="Dirichlet α of the non-IID split (smaller: more skewed)")
    parser.add_argument("--malicious", default=",".join(map(str, shares)),
                        help="attacker shares")
    parser.add_argument("--rules", default=",".join(rules))
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS[:3])),
                        help="comma-separated seeds (default: evaluation seeds 11-13)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per run")
    parser.add_argument("--workers", type=int, default=2, help="processes (one core each)")
    parser.add_argument("--runs", type=Path, default=Path(f"reports/bench/{prefix}_runs.jsonl"),
                        help="JSON lines of finished runs; a sweep resumes from them")
    parser.add_argument("--json", type=Path, default=Path(f"reports/bench/{prefix}.json"))
    parser.add_argument("--plots", type=Path, default=Path("docs/plots"),
                        help="folder for the heat maps")
    parser.add_argument("--report-only", action="store_true",
                        help="no new runs: tables and plots from the runs of the grid "
                             "already in --runs")
    parser.add_argument("--verify", type=int, metavar="N",
                        help="no new runs: make N of the grid's runs kept in --runs again "
                             "(drawn at random from each rule and dataset in turn) and "
                             "compare every metric with the kept row; exit 1 if any differs")
    parser.add_argument("--verify-banned", type=int, default=0, metavar="K",
                        help="with --verify: draw only runs that blacklisted at least K "
                             "accounts (their late rounds have few players)")
    return parser


def parse_grid(parser: argparse.ArgumentParser, args: argparse.Namespace,
               known_rules: Sequence[str]) -> list[Run]:
    rules = args.rules.split(",")
    unknown = [r for r in rules if r not in known_rules]
    if unknown:
        parser.error(f"unknown rule {unknown[0]!r}; use one of {', '.join(known_rules)}")
    for name in args.attacks.split(","):
        try:
            attack_settings(name)  # an unknown name fails here, before any run
        except ConfigError as err:
            parser.error(str(err))
    for name in args.datasets.split(","):
        if name not in DATASETS:
            parser.error(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    try:
        return grid(args.datasets.split(","), args.attacks.split(","), _floats(args.alphas),
                    _floats(args.malicious), rules, [int(s) for s in args.seeds.split(",")],
                    args.rounds)
    except ValueError as err:
        parser.error(f"--alphas, --malicious and --seeds take comma-separated numbers: {err}")


def run_grid(argv: list[str] | None, description: str, rules: Sequence[str], prefix: str,
             strategy_for: StrategyFor = rule_strategy, subject: str = "fairfl",
             detail: Sequence[str] = ("fairfl",), shares: Sequence[float] = SHARES) -> None:
    """The command line of a grid benchmark (this one and ``benchmarks.ablation``)."""
    parser = arguments(description, rules, prefix, shares)
    args = parser.parse_args(argv)
    runs = parse_grid(parser, args, rules)
    if args.verify is not None:
        checked = verify(runs, load_runs(args.runs), args.verify, strategy_for,
                         banned=args.verify_banned)
        if not checked:
            parser.error(f"no run of this grid that blacklisted at least "
                         f"{args.verify_banned} accounts is kept in {args.runs}")
        for c in checked:
            r = c["run"]
            print(f"{r['dataset']} {r['attack']} α={r['alpha']:g} m={r['malicious']:g} "
                  f"{r['rule']} seed {r['seed']}: "
                  f"{'differs ' + json.dumps(c['differs']) if c['differs'] else 'the same'} "
                  f"({c['seconds_kept']} s kept, {c['seconds_now']} s now)")
        differ = sum(bool(c["differs"]) for c in checked)
        print(f"{len(checked) - differ} of {len(checked)} runs made again match their kept "
              f"rows in every metric")
        raise SystemExit(1 if differ else 0)
    if args.report_only:
        done = load_runs(args.runs)
        rows = {r: done[r] for r in runs if r in done}
    else:
        rows = sweep(runs, args.runs, args.workers, strategy_for)
    chosen = args.rules.split(",")
    report(rows, chosen, args.json, args.plots, prefix, subject,
           [r for r in detail if r in chosen])


def main(argv: list[str] | None = None) -> None:
    run_grid(argv, __doc__ or "", RULES, "sweep")


if __name__ == "__main__":
    main()
