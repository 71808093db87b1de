"""The tables and plot of :mod:`benchmarks.privacy_dp`: its results as markdown (the median
and range over the seeds per privacy level and rule, the FPR, rejections and goals) and the
accuracy / FPR against ε figure. Presentation only; the runs are made there.

Split from :mod:`benchmarks.privacy_dp`, which calls :func:`markdown` and :func:`plot`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.privacy_dp import (
    CLIP_ONLY,
    DP_GATE,
    DP_MEDIAN_CLIP,
    DP_NO_OUTLIERS,
    DP_RECEIPT,
    DP_RELATIVE,
    DP_SEQUENTIAL,
    FPR_MAX,
    GAP_AT_8_MAX,
    NO_DP,
    NO_NOISE_CHECK,
    STRATEGIES,
)


def _rounds(numbers: list[int]) -> str:
    """``[11, 12, ..., 20]`` as "11-20", ``[1, 3, 5]`` as "1, 3, 5"."""
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(map(str, numbers))


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{format(low, fmt)}-{format(high, fmt)}"


def _median(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} ({_span(values, fmt)})"


def levels_of(rows: list[dict[str, Any]]) -> list[str]:
    """No DP, then σ = 0, then ε from the largest down (from the least noise to the most)."""
    def rank(name: str) -> float:
        if name in (NO_DP, CLIP_ONLY):
            return -2.0 if name == NO_DP else -1.0
        return 1 / float(name.split("=")[1])
    return sorted({r["level"] for r in rows}, key=rank)


def markdown(result: dict[str, Any]) -> str:
    rows, calibrations = result["runs"], result["calibrations"]
    seeds = sorted({r["seed"] for r in rows})
    strategies = [s for s in STRATEGIES if any(r["strategy"] == s for r in rows)]
    screened = [s for s in strategies if s.startswith("fairfl")]
    levels = levels_of(rows)
    header = ["privacy", "σ (every client, seed)", *(f"{s} accuracy" for s in strategies),
              "ms per local step"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    baseline: dict[str, float] = {}
    for level in levels:
        got = [r for r in rows if r["level"] == level]
        sigmas = [s for c in calibrations if c["level"] == level for s in c["sigmas"]]
        cells = [level, _span(sigmas, ".2f") if sigmas else "–"]
        for strategy in strategies:
            accuracy = [r["accuracy"] for r in got if r["strategy"] == strategy]
            cells.append(_median(accuracy, ".3f") if accuracy else "–")
            if level == NO_DP and accuracy:
                baseline[strategy] = statistics.median(accuracy)
        cells.append(_median([r["train_ms_per_step"] for r in got], ".1f"))
        lines.append("| " + " | ".join(cells) + " |")
    if screened:
        header = ["privacy", f"{screened[0]}: largest cosine to another update (median)"]
        attacked = any("tpr" in r for r in rows)
        for strategy in screened:
            header += [f"{strategy} FPR", *([f"{strategy} TPR"] if attacked else []),
                       "rejections by reason", "would be blacklisted"]
        lines += ["", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for level in levels:
            cosines = [r["closest_cosine"] for r in rows
                       if r["level"] == level and r["strategy"] == screened[0]]
            cells = [level, f"{statistics.median(cosines):.3f}"]
            for strategy in screened:
                got = [r for r in rows if r["level"] == level and r["strategy"] == strategy]
                why: Counter[str] = Counter()
                for r in got:
                    why.update(r["rejections_by_reason"])
                cells += [_median([r["fpr"] for r in got], ".3f") if got else "–",
                          *([_median([r["tpr"] for r in got], ".3f") if got else "–"]
                            if attacked else []),
                          ", ".join(f"{k} {v}" for k, v in why.most_common()) or "none",
                          str(sum(len(r["would_blacklist"]) for r in got))]
            lines.append("| " + " | ".join(cells) + " |")
    settings = result["settings"]
    notes = [f"\nseeds {', '.join(map(str, seeds))}; median (range) over the seeds; "
             f"δ = {settings['delta']:g}; {settings['clients']} clients, "
             f"{settings['rounds']} rounds of {settings['steps']} steps; FPR over "
             f"{settings['rounds'] * (settings['clients'] - len(rows[0].get('malicious', [])))}"
             " honest submissions per run "
             + (f"(attack: {settings['attack']}"
                f"{', padded to 0.95 of the clip' if settings.get('pad') else ''}"
                f"{', scaled to 0.95 of the clip' if settings.get('fit') else ''}, clients "
                f"{', '.join(map(str, rows[0]['malicious']))}; TPR over their submissions"
                + (f" in their attack rounds {_rounds(rows[0]['attack_rounds'])}"
                   + (", σ = 0 in the others" if settings.get("schedule", {})
                      .get("noiseless_credit") else "")
                   if "attack_rounds" in rows[0] else "") + ") "
                if rows[0].get("malicious") else "")
             + 
             "(reasons and blacklisting summed over the seeds; blacklisting replayed, not "
             "applied). FairFL's NOISE check rejects an update whose largest cosine to "
             f"another is below chance, {rows[0]['chance']:.3f} here."]
    eight = [r for r in rows if r["level"] == "ε = 8"]
    for strategy in strategies:
        at8 = [r["accuracy"] for r in eight if r["strategy"] == strategy]
        if at8 and strategy in baseline:
            gap = baseline[strategy] - statistics.median(at8)
            notes.append(f"{strategy}: ε = 8 is {100 * gap:.1f} points below no DP by the "
                         f"median of these seeds (goal: within {100 * GAP_AT_8_MAX:.0f}): "
                         f"{'met' if gap <= GAP_AT_8_MAX + 1e-9 else 'NOT met'}; per seed, "
                         "with a bound on the mean: python -m benchmarks.dp_gap")
    for strategy in screened:
        verdicts = []
        for level in levels:
            fprs = [r["fpr"] for r in rows if r["strategy"] == strategy and r["level"] == level]
            if fprs:
                verdicts.append(f"{level} {'met' if max(fprs) <= FPR_MAX else 'NOT met'}")
        notes.append(f"{strategy}: FPR ≤ {FPR_MAX:g} on every seed: {'; '.join(verdicts)}")
    cost = result.get("cost", [])
    if cost:
        plain = statistics.median(c["plain_cpu_ms_per_step"] for c in cost)
        private = statistics.median(c["dp_cpu_ms_per_step"] for c in cost)
        notes.append(f"training cost (CPU time, each seed's largest shard, median over the "
                     f"seeds): {plain:.2f} ms per step without DP, {private:.2f} ms with "
                     f"DP-SGD (x{private / plain:.1f})")
    checks = [c for c in calibrations if c["epsilon"] is not None]
    if checks:
        worst_spent = max(max(c["spent"]) / c["epsilon"] for c in checks)
        notes.append(f"budgets: the last round fits in every client's budget: "
                     f"{all(c['last_round_fits'] for c in checks)}; one more round would "
                     f"exceed it: {all(c['one_more_exceeds'] for c in checks)}; largest "
                     f"spent ε / target {worst_spent:.4f}")
    return "\n".join(lines) + "\n" + "\n".join(notes)


def _band(ax: Any, xs: list[float], groups: list[list[float]], **style: Any) -> None:
    mid = [float(np.median(g)) for g in groups]
    ax.errorbar(xs, mid, yerr=[[m - min(g) for m, g in zip(mid, groups, strict=True)],
                               [max(g) - m for m, g in zip(mid, groups, strict=True)]],
                marker="o", capsize=3, **style)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["runs"]
    epsilons = sorted({r["epsilon"] for r in rows if r["epsilon"] is not None})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    colours = {"fedavg": "#1f77b4", "fairfl": "#d62728", NO_NOISE_CHECK: "#ff7f0e",
               DP_GATE: "#2ca02c", DP_MEDIAN_CLIP: "#9467bd", DP_SEQUENTIAL: "#e377c2",
               DP_NO_OUTLIERS: "#17becf", DP_RECEIPT: "#8c564b", DP_RELATIVE: "#bcbd22"}
    for strategy in STRATEGIES:
        mine = [r for r in rows if r["strategy"] == strategy]
        if not mine:
            continue
        colour = colours[strategy]
        if epsilons:
            _band(left, epsilons, [[r["accuracy"] for r in mine if r["epsilon"] == e]
                                   for e in epsilons], color=colour, label=strategy)
        for level, style in ((NO_DP, "--"), (CLIP_ONLY, ":")):
            base = [r["accuracy"] for r in mine if r["level"] == level]
            if base and strategy == "fedavg":
                left.axhline(float(np.median(base)), ls=style, color="grey", lw=1,
                             label=f"fedavg, {level}")
        if strategy.startswith("fairfl") and epsilons:
            _band(right, epsilons, [[r["fpr"] for r in mine if r["epsilon"] == e]
                                    for e in epsilons], color=colour, label=strategy)
            clean = [r["fpr"] for r in mine if r["level"] == NO_DP]
            if clean:
                right.axhline(float(np.median(clean)), ls="--", color=colour, lw=1,
                              label=f"{strategy}, no DP")
    right.axhline(FPR_MAX, color="grey", lw=1, ls=":", label=f"target {FPR_MAX:g}")
    seeds = ", ".join(map(str, sorted({r["seed"] for r in rows})))
    for ax in (left, right):
        if epsilons:
            ax.set_xscale("log", base=2)
            ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
        ax.set_xlabel(f"ε per client for the whole task (δ = {result['settings']['delta']:g})")
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower right")
    right.legend(fontsize=7, loc="center right")
    left.set(ylabel="final test accuracy", ylim=(0, 1),
             title=f"digits, DP-SGD: median and range over seeds {seeds}")
    right.set(ylabel="honest updates rejected (FPR)", ylim=(-0.02, 1.02),
              title="FairFL's rule on honest DP updates")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
