"""The DP goal over many seeds (rules R54 and R54b, docs/data/dp_gap_rules_2026-12-07.md and
dp_gap_logreg_rules_2026-12-07.md, each written before its runs): how far below no DP a task
at ε = 8 lands, seed by seed, from ``benchmarks.privacy_dp`` runs.

The issue's goal is "at ε = 8, within 5 points of no DP". On three evaluation seeds it was
met by the median and missed on one seed; three seeds say little about a fourth. This reads
any number of ``privacy_dp`` JSON files made with the same settings, pairs each strategy's
ε = 8 run with its own no-DP run on the same seed, and prints per seed the gap in points,
then the median, the mean with its one-sided 95 % upper bound (Student's t over the seeds)
and how many seeds are within the goal:

    python -m benchmarks.dp_gap docs/data/dp_gap_evaluation_2026-12-07_*.json \\
        --plot docs/plots/dp_gap.png

The verdict per strategy (fixed in the rule file): **met with confidence** if the upper
bound of the mean gap is within the goal, **met by the mean** if only the mean is, **not
met** otherwise; "every seed" is said separately.

``--baseline FILE...`` takes the no-DP accuracy from other runs instead (written for rule
R56, dp_narrow_mlp_rules_2026-12-07.md, and used by R57,
dp_logreg_default_rules_2026-12-07.md): another model's, such as the 64-unit MLP's below a
narrower MLP's ε = 8 run, paired by strategy and seed. The baseline files must share the
federation (clients, rounds, data, attack) but may differ in the model and its learning
rates; only their no-DP runs are read, and the main files' own no-DP runs are then ignored.

``--best`` measures every strategy against the most accurate no-DP run of any strategy on
the same seed, in the files and in the ``--baseline`` files together (rule R64,
dp_warm_start_best_rules_2026-12-07.md): no rule is measured against a no-DP run that its
own refusals made weaker, and a warm start is measured against the seeded start's no DP too.

Runs that started from a trained model (``privacy_dp --warm-start``, rule R62,
dp_warm_start_rules_2026-12-07.md) also print what ε = 8 adds to that start, per seed, with
the mean's one-sided 95 % lower bound: a gap within the goal means little if the start alone
was as accurate.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scipy import stats

#: The issue's goal, in accuracy (5 points), and the level it names.
GOAL = 0.05
EPSILON = 8.0
#: The honest FPR a dp task's rule may not exceed (the issue's "FPR <= 0.05").
FPR_CEILING = 0.05
#: One-sided confidence of the bound on the mean gap.
CONFIDENCE = 0.95
#: Settings every file must share (the seeds and strategies may differ).
SAME = ("clients", "rounds", "steps", "batch_size", "lr", "dp_lr", "clip", "momentum",
        "accountant", "delta", "model", "scoring", "blacklist", "attack", "malicious",
        "partition", "alpha", "pad", "pad_to", "fit", "flip_scale", "schedule", "hidden",
        "statistics", "warm_start", "gate_data", "scale_floor")
#: Settings a ``--baseline`` file may change: the model, how it is trained and where the
#: standardisation's mean and scale come from (rule R61), and where the task starts (R62).
MODEL = ("model", "hidden", "lr", "dp_lr", "statistics", "warm_start")
#: The hidden widths a file that records none trained (``fl_agent.learning.models``'s
#: defaults; a file made before ``--hidden`` or ``--model`` existed trained the MLP).
DEFAULT_WIDTHS = {"mlp": [64], "mlp_tanh": [64], "logreg": []}


#: What :func:`gaps` reads of each run.
RUN_FIELDS = ("seed", "strategy", "level", "epsilon", "accuracy")


def settings_of(document: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a ``privacy_dp`` file's ``document`` that :data:`SAME` names, with the
    hidden widths the model really had (a file records none for the model's default)."""
    settings = {key: document["settings"].get(key) for key in SAME}
    model = settings["model"] or "mlp"
    return {**settings, "model": model, "statistics": settings["statistics"] or "train",
            "warm_start": settings["warm_start"] or 0,
            "gate_data": settings["gate_data"] or "all",
            "scale_floor": settings["scale_floor"] or 0.0,
            "hidden": list(settings["hidden"] or DEFAULT_WIDTHS.get(model, []))}


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every run of the files, refusing files whose settings differ or a (seed, strategy,
    level) measured twice."""
    return load_with_settings(paths)[0]


def load_with_settings(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`load`'s runs, and the settings the files share (:func:`settings_of`)."""
    runs: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    seen: set[tuple[int, str, str]] = set()
    for path in paths:
        try:
            document = json.loads(Path(path).read_text())
            settings = settings_of(document)
            document_runs = list(document["runs"])
            for run in document_runs:
                if missing := [field for field in RUN_FIELDS if field not in run]:
                    raise KeyError(f"a run without {', '.join(missing)}")
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a benchmarks.privacy_dp JSON file (its "
                             f"--json output); missing or malformed: {err}") from err
        if first is None:
            first = settings
        elif settings != first:
            differ = sorted(k for k in SAME if settings[k] != first[k])
            raise ValueError(f"{path}: settings differ from the first file's in {differ}")
        for run in document_runs:
            key = (run["seed"], run["strategy"], run["level"])
            if key in seen:
                raise ValueError(f"{path}: seed {key[0]}, {key[1]}, {key[2]} measured twice")
            seen.add(key)
            runs.append(run)
    return runs, first or {}


def gaps(runs: Sequence[Mapping[str, Any]],
         baseline: Sequence[Mapping[str, Any]] | None = None) -> dict[str, dict[int, float]]:
    """Per strategy, per seed: no-DP accuracy minus ε = 8 accuracy (the same strategy and
    seed), the no-DP accuracy taken from ``baseline``'s runs when given (``runs``' own no-DP
    runs are then ignored). Without a baseline, a seed with only one of the two is left out;
    with one, an ε = 8 run the baseline has no no-DP run for is refused, so that a baseline
    file left off cannot shrink the seeds a verdict is read on."""
    base: dict[tuple[str, int], float] = {}
    at: dict[tuple[str, int], float] = {}
    for run, own in [*((run, True) for run in runs),
                     *((run, False) for run in baseline or ())]:
        key = (run["strategy"], run["seed"])
        if run["epsilon"] is None and run["level"] == "no DP" and own == (baseline is None):
            side = base
        elif own and run["epsilon"] is not None and math.isclose(run["epsilon"], EPSILON):
            side = at
        else:  # σ = 0 (clipping alone), the other budgets, the baseline's DP runs
            continue
        if key in side:
            raise ValueError(f"seed {key[1]}, {key[0]}, {run['level']} measured twice")
        side[key] = run["accuracy"]
    if baseline is not None and (missing := sorted(at.keys() - base.keys())):
        raise ValueError("the baseline has no no-DP run for " + ", ".join(
            f"{strategy} seed {seed}" for strategy, seed in missing))
    out: dict[str, dict[int, float]] = {}
    for strategy, seed in sorted(base.keys() & at.keys()):
        out.setdefault(strategy, {})[seed] = base[strategy, seed] - at[strategy, seed]
    return out


def best_gaps(runs: Sequence[Mapping[str, Any]],
              baseline: Sequence[Mapping[str, Any]] | None = None) -> dict[str, dict[int, float]]:
    """Per strategy, per seed: the highest no-DP accuracy of any strategy on that seed, in
    ``runs`` and ``baseline`` together, minus the strategy's ε = 8 accuracy. An ε = 8 run
    whose seed has no no-DP run in ``runs``, or (given a baseline) none in ``baseline``,
    is refused: a baseline file left off cannot lower the best."""
    best: dict[int, float] = {}
    in_baseline: set[int] = set()
    for run, own in [*((run, True) for run in runs),
                     *((run, False) for run in baseline or ())]:
        if run["epsilon"] is None and run["level"] == "no DP":
            best[run["seed"]] = max(best.get(run["seed"], -math.inf), run["accuracy"])
            if not own:
                in_baseline.add(run["seed"])
    own_seeds = {run["seed"] for run in runs if run["epsilon"] is None
                 and run["level"] == "no DP"}
    out: dict[str, dict[int, float]] = {}
    for run in runs:
        if run["epsilon"] is None or not math.isclose(run["epsilon"], EPSILON):
            continue
        if run["seed"] not in own_seeds:
            raise ValueError(f"no no-DP run for seed {run['seed']} in the files")
        if baseline is not None and run["seed"] not in in_baseline:
            raise ValueError(f"the baseline has no no-DP run for seed {run['seed']}")
        if run["seed"] in out.get(run["strategy"], {}):
            raise ValueError(f"seed {run['seed']}, {run['strategy']}, {run['level']} "
                             "measured twice")
        out.setdefault(run["strategy"], {})[run["seed"]] = best[run["seed"]] - run["accuracy"]
    return {strategy: dict(sorted(per_seed.items())) for strategy, per_seed in
            sorted(out.items())}


def gains_over_start(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """Per strategy, per seed: ε = 8 accuracy minus the accuracy of the model the task started
    from, for runs that record it (``start_accuracy``: a warm start, rule R62). A DP task
    from a good start can end below it: then its federation took accuracy away."""
    out: dict[str, dict[int, float]] = {}
    for run in runs:
        if run.get("start_accuracy") is None or run["epsilon"] is None \
                or not math.isclose(run["epsilon"], EPSILON):
            continue
        out.setdefault(run["strategy"], {})[run["seed"]] = run["accuracy"] - run["start_accuracy"]
    return out


def gain_report(per_strategy: Mapping[str, Mapping[int, float]]) -> str:
    """Each strategy's gain over its start at ε = 8: per seed, then the mean with its
    one-sided 95 % lower bound (R62's clause 3 asks that bound to be above 0)."""
    lines = []
    for strategy, per_seed in per_strategy.items():
        values = list(per_seed.values())
        lines.append(f"{strategy}: ε = {EPSILON:g} accuracy minus its start's, per seed "
                     "(points): " + ", ".join(f"{seed} {100 * gain:+.1f}"
                                              for seed, gain in sorted(per_seed.items())))
        if len(values) < 2:
            continue
        mean = statistics.fmean(values)
        lower = mean - stats.t.ppf(CONFIDENCE, len(values) - 1) * statistics.stdev(values) \
            / math.sqrt(len(values))
        lines.append(f"  {len(values)} seeds: mean {100 * mean:+.2f} (one-sided "
                     f"{CONFIDENCE:.0%} lower bound {100 * lower:+.2f}); above the start on "
                     f"{sum(v > 0 for v in values)} of {len(values)} seeds")
    return "\n".join(lines)


def honest_record(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per strategy, over its ε = 8 runs that record them: the highest honest FPR, the seeds
    above 0.05 (the issue's ceiling for a dp task's rule) and the honest clients the
    registry's replayed rule would have banned, summed over the seeds (R62's and R64's
    clauses on the rule)."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        if "fpr" not in run or run["epsilon"] is None \
                or not math.isclose(run["epsilon"], EPSILON):
            continue
        record = out.setdefault(run["strategy"], {"seeds": 0, "highest_fpr": 0.0,
                                                  "above": [], "banned": 0})
        bad = set(run.get("malicious", ()))
        record["seeds"] += 1
        record["highest_fpr"] = max(record["highest_fpr"], run["fpr"])
        if run["fpr"] > FPR_CEILING:
            record["above"].append(run["seed"])
        record["banned"] += len(set(run.get("would_blacklist", ())) - bad)
    return dict(sorted(out.items()))


def summary(per_seed: Mapping[int, float]) -> dict[str, Any]:
    """The figures the verdict reads, over one strategy's seeds (at least two)."""
    values = list(per_seed.values())
    if len(values) < 2:
        raise ValueError("the bound on the mean needs at least two seeds")
    mean = statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(len(values))
    upper = mean + stats.t.ppf(CONFIDENCE, len(values) - 1) * sem
    within = sum(v <= GOAL + 1e-12 for v in values)
    if upper <= GOAL:
        verdict = "met with confidence"
    elif mean <= GOAL:
        verdict = "met by the mean"
    else:
        verdict = "not met"
    return {"seeds": len(values), "median": statistics.median(values), "mean": mean,
            "upper": upper, "worst": max(values), "within": within,
            "every_seed": within == len(values), "verdict": verdict}


def report(per_strategy: Mapping[str, Mapping[int, float]], below: str = "no DP") -> str:
    """The per-seed gaps and each strategy's summary, as text (``below``: what the gap is
    measured from)."""
    lines = []
    for strategy, per_seed in per_strategy.items():
        lines.append(f"{strategy}: gap at ε = {EPSILON:g} per seed (points): " + ", ".join(
            f"{seed} {100 * gap:.1f}" for seed, gap in sorted(per_seed.items())))
        if len(per_seed) < 2:
            lines.append("  one seed: no bound on the mean, no verdict")
            continue
        figures = summary(per_seed)
        lines.append(
            f"  {figures['seeds']} seeds: median {100 * figures['median']:.2f}, mean "
            f"{100 * figures['mean']:.2f} (one-sided {CONFIDENCE:.0%} upper bound "
            f"{100 * figures['upper']:.2f}), worst {100 * figures['worst']:.2f}; within "
            f"{100 * GOAL:g} points on {figures['within']} of {figures['seeds']} seeds")
        lines.append(f"  goal (within {100 * GOAL:g} points of {below}): {figures['verdict']}"
                     f"; every seed: {'yes' if figures['every_seed'] else 'no'}")
    return "\n".join(lines)


def plot(per_strategy: Mapping[str, Mapping[int, float]], path: Path,
         below: str = "no DP") -> None:
    """Each strategy's per-seed gaps (points) as a strip, its mean with the one-sided bound,
    and the goal's line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.9 * len(per_strategy)))
    for row, per_seed in enumerate(per_strategy.values()):
        values = [100 * v for v in per_seed.values()]
        offsets = [0.15 * ((i % 5) - 2) / 2 for i in range(len(values))]
        ax.scatter(values, [row + o for o in offsets], s=18, alpha=0.7)
        if len(values) >= 2:
            figures = summary(per_seed)
            ax.errorbar([100 * figures["mean"]], [row - 0.3],
                        xerr=[[0], [100 * (figures["upper"] - figures["mean"])]],
                        fmt="D", color="black", capsize=4)
    ax.axvline(100 * GOAL, color="crimson", ls="--", lw=1)
    ax.text(100 * GOAL, len(per_strategy) - 0.45, f" goal: {100 * GOAL:g} points", color="crimson",
            va="bottom", fontsize=8)
    ax.set_yticks(range(len(per_strategy)), list(per_strategy))
    ax.set_ylim(-0.7, len(per_strategy) - 0.2)
    ax.set_xlabel(f"accuracy points at ε = {EPSILON:g} below {below}")
    ax.set_title(f"one dot per seed; diamond: the mean, bar to its one-sided {CONFIDENCE:.0%} "
                 "upper bound", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dp_gap", description=(
        "The ε = 8 goal over many seeds: each strategy's gap below its own no-DP run, per "
        "seed, with the mean's one-sided 95 % upper bound (rules R54, R54b and, with "
        "--baseline, R57; docs/privacy-dp.md)."))
    parser.add_argument("files", nargs="+", type=Path,
                        help="benchmarks.privacy_dp JSON files made with the same settings")
    parser.add_argument("--baseline", nargs="+", type=Path, metavar="FILE",
                        help="take the no-DP accuracy from these files' runs (another "
                             "model's, the same federation), not the files' own")
    parser.add_argument("--best", action="store_true",
                        help="measure every strategy against the most accurate no-DP run "
                             "of any strategy on the same seed, in the files and the "
                             "--baseline files together (rule R64)")
    parser.add_argument("--plot", type=Path, help="also draw the per-seed gaps into this PNG")
    args = parser.parse_args(argv)
    try:
        runs, ours = load_with_settings(args.files)
        baseline = None
        if args.baseline:
            baseline, theirs = load_with_settings(args.baseline)
            if differ := sorted(k for k in SAME if k not in MODEL and ours[k] != theirs[k]):
                raise ValueError(f"{args.baseline[0]}: a baseline must share the federation; "
                                 f"its settings differ in {differ}")
        per_strategy = best_gaps(runs, baseline) if args.best else gaps(runs, baseline)
        if not per_strategy:
            raise ValueError("no strategy has both a no-DP and an ε = 8 run on any seed")
        below = ("the best no DP of any strategy" + ("" if baseline is None else
                                                      " and baseline") if args.best else
                 "no DP" if baseline is None else "the baseline's no DP")
        print(report(per_strategy, below))
        for strategy, record in honest_record(runs).items():
            print(f"{strategy} at ε = {EPSILON:g}, honest updates: highest FPR "
                  f"{record['highest_fpr']:.3f} over {record['seeds']} seeds, above "
                  f"{FPR_CEILING:g} on seeds {record['above'] or 'none'}; honest clients the "
                  f"registry would ban, summed: {record['banned']}")
        if gains := gains_over_start(runs):
            print("what the federation adds to the model it started from (R62):")
            print(gain_report(gains))
        if args.plot:
            plot(per_strategy, args.plot, below)
            print(f"plot: {args.plot}")
    except (ValueError, KeyError, OSError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
