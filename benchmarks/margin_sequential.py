"""Rule R66's candidate: the sequential test with a margin per round
(docs/data/sequential_margin_rules_2026-12-07.md).

A DP task's FairFL turns an update away when its sender's record, ``T = (sum + z) /
sqrt(count + 1)`` over its rounds, is below ``-tolerance``
(:func:`fl_agent.aggregation.gate.sequential_out`). That asks whether the sender's mean
z-score ``mu`` is below 0, and it assumes an honest sender's is not. Rule R64 measured that
from a start that is already good some honest senders' ``mu`` is below 0 (down to -0.81 on
seeds 90-105 at epsilon 8), so they are turned away and banned.

The candidate asks instead whether ``mu`` is below ``-margin``: it turns an update away
when ``(sum + z + margin * (count + 1)) / sqrt(count + 1)`` is below ``-tolerance``. With
``margin`` 0 it is today's test. The line is fixed: the round's other records do not move
it, as they moved rule R65's candidate's; a sender's z-scores still depend on the
aggregate of the others, as today's do.

What it gives up, stated rather than hidden: every sender, an attacker too, is allowed
``margin`` a round. A sender at ``mu >= -margin`` is rarely turned away by it, not never:
the record is looked at every round, so one at exactly ``-margin`` crosses the line now
and then (in about 12 % of 20-round records of unit-variance z-scores), more often the
longer the task. The gate's round test still judges every update.

:func:`replay` reads the per-round trace :mod:`benchmarks.privacy_dp` records for a rule
with the sequential test (``sequential_trace``) and gives, for each margin, the refusals
and the registry's bans had the test used that margin on the same z-scores. It is a first
order estimate: a verdict that changes also changes the aggregate, and so every later
z-score, which only a run of :data:`benchmarks.privacy_dp.DP_MARGIN` measures. An update
today's test turned away counts as kept under a margin that spares it, although the gate's
round test may have turned it away too (the trace does not say; the attribution of rule
R64 found it did so for 3 of 40 honest refusals alone).

Lives in the benchmarks, not in ``fl_agent``: no task uses it unless a rule adopts it. R66
stopped at its tuning step: no margin from 0.05 to 0.75 kept the honest senders' FPR and
the flippers' detection both within the rule (the rule file's outcome).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click
import numpy as np
from numpy.typing import NDArray

from fl_agent.aggregation import FairFL
from fl_agent.aggregation.base import FloatArray
from fl_agent.aggregation.gate import sequential_out


def margin_sequential_out(sums: FloatArray, counts: FloatArray, z: FloatArray,
                          tolerance: float, margin: float) -> NDArray[np.bool_]:
    """Which updates to turn away: those whose record with ``margin`` added to each of its
    ``count + 1`` z-scores is below ``-tolerance`` (:func:`sequential_out` of the shifted
    sums)."""
    counts = np.asarray(counts, dtype=float)
    return sequential_out(np.asarray(sums, dtype=float) + margin * (counts + 1), counts,
                          z, tolerance)


@dataclass(frozen=True)
class MarginSequentialFairFL(FairFL):
    """FairFL with :func:`margin_sequential_out` as step 5b's verdict (build it with
    :func:`with_margin`, which checks the margin)."""

    margin: float = 0.0

    def sequential_verdicts(self, sums: FloatArray, counts: FloatArray,
                            z: FloatArray) -> NDArray[np.bool_]:
        return margin_sequential_out(sums, counts, z, self.tolerance, self.margin)


def with_margin(strategy: FairFL, margin: float) -> MarginSequentialFairFL:
    """``strategy`` with the candidate verdict at ``margin``, every option as it was."""
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"the margin is a z-score a round, 0 or more; got {margin!r}")
    return MarginSequentialFairFL(margin=margin, **{f.name: getattr(strategy, f.name)
                                                    for f in fields(strategy) if f.init})


@dataclass(frozen=True)
class Replayed:
    """One run's refusals and bans under one margin: honest and attack refusals, the
    highest is the run's honest FPR, and the clients the registry would ban."""

    honest_refused: int
    attack_refused: int
    attack_submissions: int
    fpr: float
    banned: tuple[int, ...]


def replay(run: dict[str, Any], margin: float, tolerance: float = FairFL.tolerance) -> Replayed:
    """``run`` (a :mod:`benchmarks.privacy_dp` row with ``sequential_trace``) as if its
    sequential test had used ``margin``, on the same z-scores (first order, see the module).
    A refusal today's test did not make stays; one it made goes unless the margin's test
    also makes it; an update the margin's test turns away that today's kept is added. The
    bans replay the registry's rule with the simulation's window and limit, as
    :mod:`benchmarks.privacy_dp` does."""
    from benchmarks.privacy_dp import would_blacklist
    from fl_agent.simulation.config import BLOCKS_PER_ROUND_SLACK, SimulationConfig

    window_rounds = SimulationConfig.model_fields["window_rounds"].default
    max_rejections = SimulationConfig.model_fields["max_rejections"].default

    trace = run["sequential_trace"]
    clients = len(run["evidence"])
    bad = set(run.get("malicious", ()))
    attack_rounds = set(run.get("attack_rounds", range(1, len(trace) + 1)))
    sums, counts = np.zeros(clients), np.zeros(clients)
    rejected: list[set[int]] = []
    honest = attack = 0
    for number, step in enumerate(trace, 1):
        z = {int(i): float(v) for i, v in step["z"].items()}
        refused = {int(i) for i in step["refused"]} - set(step["sequential_out"])
        if z:
            who = np.array(sorted(z))
            out = margin_sequential_out(sums[who], counts[who], np.array([z[i] for i in who]),
                                        tolerance, margin)
            refused |= {int(i) for i, o in zip(who, out, strict=True) if o}
            sums[who] += [z[i] for i in who]
            counts[who] += 1
        rejected.append(refused)
        honest += len(refused - bad)
        if number in attack_rounds:
            attack += len(refused & bad)
    submissions = len(trace) * (clients - len(bad))
    return Replayed(honest, attack, len(attack_rounds) * len(bad), honest / submissions,
                    tuple(would_blacklist(rejected, clients, window_rounds, max_rejections,
                                          BLOCKS_PER_ROUND_SLACK)))


def table(runs: Sequence[dict[str, Any]], margins: Sequence[float]) -> list[dict[str, Any]]:
    """For each margin, summed over ``runs``: honest refusals, the highest FPR of a run,
    honest and attacker bans, and the attackers' share of attack submissions refused
    (TPR, pooled) with the median of the runs' own TPRs."""
    rows = []
    for margin in margins:
        replays = [(run, replay(run, margin)) for run in runs]
        bad = [set(run.get("malicious", ())) for run, _ in replays]
        attack_submissions = sum(r.attack_submissions for _, r in replays)
        rows.append({
            "margin": margin, "runs": len(replays),
            "honest_refused": sum(r.honest_refused for _, r in replays),
            "highest_fpr": max((r.fpr for _, r in replays), default=0.0),
            "honest_banned": sum(len(set(r.banned) - b) for (_, r), b in zip(replays, bad,
                                                                            strict=True)),
            "attackers_banned": sum(len(set(r.banned) & b)
                                    for (_, r), b in zip(replays, bad, strict=True)),
            "attackers": sum(len(b) for b in bad),
            "tpr": (sum(r.attack_refused for _, r in replays) / attack_submissions
                    if attack_submissions else None),
            "median_tpr": (float(np.median([r.attack_refused / r.attack_submissions
                                            for _, r in replays if r.attack_submissions]))
                           if attack_submissions else None)})
    return rows


def honest_z(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The honest senders' z-scores in the runs' traces: each sender's variance over its
    rounds (a unit-variance null gives 1), and each round's median over the senders."""
    variances, by_round = [], []
    for run in runs:
        bad = set(run.get("malicious", ()))
        own: dict[int, list[float]] = {}
        for number, step in enumerate(run["sequential_trace"]):
            for i, z in step["z"].items():
                if int(i) not in bad:
                    own.setdefault(int(i), []).append(float(z))
                    while len(by_round) <= number:
                        by_round.append([])
                    by_round[number].append(float(z))
        variances += [float(np.var(v, ddof=1)) for v in own.values() if len(v) > 1]
    if not variances:
        return {"senders": 0}
    return {"senders": len(variances),
            "variance": {"median": float(np.median(variances)),
                         "p10": float(np.percentile(variances, 10)),
                         "p90": float(np.percentile(variances, 90)),
                         "max": float(np.max(variances))},
            "median_z_by_round": [round(float(np.median(r)), 3) for r in by_round]}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--margins", default="0,0.25,0.5,0.75", show_default=True,
              help="comma-separated margins, z-scores a round (rule R66's grid)")
@click.option("--strategy", default="fairfl-dp-seq-no-outliers", show_default=True,
              help="the rows to replay: a rule with the sequential test")
@click.option("--epsilon", default=8.0, show_default=True, type=float)
def main(files: tuple[str, ...], margins: str, strategy: str, epsilon: float) -> None:
    """Replay benchmarks.privacy_dp runs (FILES, with ``sequential_trace``) as if the
    sequential test had a margin (rule R66's candidate; first order: see the module), and
    print, per margin, the honest refusals, the highest honest FPR of a run, the bans and
    the attackers' TPR; then the honest senders' z-scores (:func:`honest_z`)."""
    try:
        chosen = [float(m) for m in margins.split(",")]
    except ValueError as error:
        raise click.BadParameter(f"margins are numbers; got {margins!r}") from error
    runs = [run for f in files for run in json.loads(Path(f).read_text())["runs"]
            if run["strategy"] == strategy and run.get("epsilon") == epsilon]
    if not runs or any("sequential_trace" not in run for run in runs):
        raise click.UsageError(f"need {strategy} rows at ε = {epsilon:g} with a "
                               "sequential_trace (benchmarks.privacy_dp records it since R66)")
    click.echo("| margin | runs | honest refused | highest FPR | honest banned "
               "| attackers banned | TPR (median of runs) |")
    click.echo("| --- | --- | --- | --- | --- | --- | --- |")
    for row in table(runs, chosen):
        tpr = "–" if row["tpr"] is None else f"{row['tpr']:.3f} ({row['median_tpr']:.3f})"
        click.echo(f"| {row['margin']:g} | {row['runs']} | {row['honest_refused']} | "
                   f"{row['highest_fpr']:.3f} | {row['honest_banned']} | "
                   f"{row['attackers_banned']} of {row['attackers']} | {tpr} |")
    click.echo(f"honest senders' z-scores: {json.dumps(honest_z(runs))}")


if __name__ == "__main__":
    main()

__all__ = ["MarginSequentialFairFL", "Replayed", "honest_z", "margin_sequential_out",
           "replay", "table", "with_margin"]
