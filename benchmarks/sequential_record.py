"""Which honest senders the sequential test ends up judging worse than noise, and what they
have in common (rule R64's refusals, docs/privacy-dp.md).

A DP task's FairFL scores every update against noise of its own size and sums each sender's
z-scores over its rounds (:func:`fl_agent.aggregation.gate.sequential_out`, which assumes an
honest sender's z is about N(mu, 1) with mu >= 0). ``benchmarks.privacy_dp`` records each
client's sum and count at the task's end (a run's ``evidence``). This reads those records
from ``privacy_dp`` JSON files made without attackers, rebuilds each seed's federation to
learn every client's number of examples and label mix, and reports, per file group:

* each client's statistic ``T = sum / sqrt(count)`` (the test turns an update away when its
  sender's ``T``, this round's z included, is below ``-tolerance``, 2);
* its Spearman correlation with the client's number of examples and with the total variation
  distance of its label mix from the whole federation's;
* the clients the registry's replayed rule would have banned.

A diagnosis; it decides nothing.

    python -m benchmarks.sequential_record \\
        --files 'docs/data/dp_warm_start_best_evaluation_2026-12-07_*.json' \\
        --files 'docs/data/dp_warm_start_best_control_2026-12-07_*.json'
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from numpy.typing import NDArray

#: The sequential test's threshold in a DP task: FairFL's gate tolerance.
TOLERANCE = 2.0


def client_rows(seed: int, evidence: Sequence[Sequence[float]],
                labels: Sequence[NDArray[np.integer]], banned: Sequence[int]
                ) -> list[dict[str, Any]]:
    """One row per client: its ``T`` (``None`` if it was never scored), its examples, its
    label distance (:func:`benchmarks.gate_trace.label_mix_distances`) and whether it would
    have been banned."""
    from benchmarks.gate_trace import label_mix_distances

    distances = label_mix_distances([np.asarray(y, dtype=np.int64) for y in labels])
    return [{"seed": seed, "client": client,
             "T": total / math.sqrt(count) if count else None,
             "examples": int(y.size), "label_distance": distance,
             "banned": client in set(banned)}
            for client, ((total, count), y, distance)
            in enumerate(zip(evidence, labels, distances, strict=True))]


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The figures the report prints over ``rows`` (clients never scored left out)."""
    from scipy.stats import spearmanr

    scored = [r for r in rows if r["T"] is not None]
    t = np.array([r["T"] for r in scored])
    size = spearmanr(t, [r["examples"] for r in scored])
    mix = spearmanr(t, [r["label_distance"] for r in scored])
    banned = [r for r in scored if r["banned"]]
    return {"clients": len(scored), "T_median": float(np.median(t)),
            "T_range": [float(t.min()), float(t.max())],
            "below_tolerance": int((t < -TOLERANCE).sum()),
            "spearman_examples": [float(size.statistic), float(size.pvalue)],
            "spearman_label_distance": [float(mix.statistic), float(mix.pvalue)],
            "examples_median": float(np.median([r["examples"] for r in scored])),
            "label_distance_median": float(np.median([r["label_distance"] for r in scored])),
            "banned": [{k: r[k] for k in ("seed", "client", "T", "examples", "label_distance")}
                       for r in banned]}


def read_runs(paths: Sequence[Path], level: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(settings, run)`` for each run at ``level`` that records the sequential test's
    evidence; a file made with attackers is refused (its clients are not all honest)."""
    out = []
    for path in paths:
        document = json.loads(Path(path).read_text())
        if document["settings"].get("attack", "none") != "none":
            raise click.UsageError(f"{path}: made with attackers; this reads honest runs only")
        out += [(document["settings"], run) for run in document["runs"]
                if run["level"] == level and "evidence" in run]
    return out


def shard_labels(settings: Mapping[str, Any], seed: int) -> list[NDArray[np.integer]]:
    """Each client's labels in ``seed``'s federation, rebuilt as ``privacy_dp`` built it."""
    from benchmarks.privacy_dp import Setting, honest_federation, standardized

    fields = {f.name for f in dataclasses.fields(Setting)}
    setting = Setting(**{k: (tuple(v) if isinstance(v, list) else v)
                         for k, v in settings.items() if k in fields})
    return [np.asarray(y) for _, y in standardized(honest_federation(seed, setting))[4]]


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--files", "patterns", multiple=True, required=True, metavar="GLOB",
              help="A group of privacy_dp JSON files (a glob; repeat for more groups).")
@click.option("--level", default="ε = 8", show_default=True,
              help="The runs' level to read.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the rows and summaries here.")
def main(patterns: tuple[str, ...], level: str, json_path: Path | None) -> None:
    groups = {}
    for pattern in patterns:
        paths = [Path(p) for p in sorted(glob.glob(pattern))]
        if not paths:
            raise click.UsageError(f"no file matches {pattern!r}")
        rows = [row for settings, run in read_runs(paths, level)
                for row in client_rows(run["seed"], run["evidence"],
                                       shard_labels(settings, run["seed"]),
                                       run.get("would_blacklist", []))]
        if not rows:
            raise click.UsageError(f"{pattern!r}: no run at {level!r} records the evidence")
        groups[pattern] = {"rows": rows, "summary": summary(rows)}
    for pattern, group in groups.items():
        s = group["summary"]
        click.echo(
            f"{pattern}: {s['clients']} clients; T median {s['T_median']:.2f} (range "
            f"{s['T_range'][0]:.2f} to {s['T_range'][1]:.2f}), {s['below_tolerance']} below "
            f"-{TOLERANCE:g}; Spearman with examples {s['spearman_examples'][0]:+.2f} (p "
            f"{s['spearman_examples'][1]:.3f}), with label distance "
            f"{s['spearman_label_distance'][0]:+.2f} (p {s['spearman_label_distance'][1]:.3f}); "
            f"medians: {s['examples_median']:g} examples, label distance "
            f"{s['label_distance_median']:.2f}")
        for b in s["banned"]:
            click.echo(f"  banned: seed {b['seed']} client {b['client']}, T {b['T']:.2f}, "
                       f"{b['examples']} examples, label distance {b['label_distance']:.2f}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(groups, indent=1) + "\n")
        click.echo(f"written to {json_path}")


if __name__ == "__main__":
    main()
