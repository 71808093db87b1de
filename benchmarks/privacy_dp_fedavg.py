"""Participant-level differential privacy (DP-FedAvg at the aggregator) on digits: final
accuracy at ε = 1, 2, 4, 8 and larger, against the same rounds without the noise.

It runs offline on the federation of ``benchmarks.privacy_dp`` (the simulation's split,
standardisation, Dirichlet α = 0.5 shards, seeds and digits MLP; the same constants: 10
clients, 20 rounds of 20 local steps, lr 0.2), every client honest. Each round is what
the aggregator agent does in a ``dp`` task at level ``participant``
(``AggregatorAgent.finalize``):

1. the task's robust rule decides as on chain (FairFL as a participant-level DP task's
   aggregator sets it up, :func:`~fl_agent.simulation.offline.aggregator_strategy`);
2. the accepted updates are averaged by :func:`fl_agent.privacy.dp.dp_fedavg`: each delta
   clipped to the plan's clip (``DPPlan.clip``, 1.0 by default), a uniform average, and
   Gaussian noise of standard deviation ``σ · clip / n`` per coordinate, with ``σ`` from
   :func:`fl_agent.privacy.dp.noise_for_budget` so that the task's rounds spend ε at
   δ = 1e-5 (sample rate 1: participants who choose to take part are not a random sample;
   PRV, the task's default accountant).

Levels: ``rule`` (the rule's own sample-weighted aggregate: a plain task), ``clip only``
(steps 1 and 2 with σ = 0: what the uniform average and the clip cost) and each ε. Per run:
the final test accuracy, the curve over rounds, the share of accepted updates the clip
shortened, the noise's length on the averaged update against the clip, and the honest
updates the rule rejected. Blacklisting is not applied (every client submits in every
round, as in ``benchmarks.privacy_dp``): the honest clients the registry would have
blacklisted are replayed from the rejections and listed, since on chain they would leave,
and fewer participants mean more noise on the average. σ is by PRV up to ε = 64 and by
RDP beyond (:data:`fl_agent.privacy.accounting.PRV_RANGE`). Nothing here is
tuned: every constant is the task's default or ``benchmarks.privacy_dp``'s, so the seeds
11-13 are published as they came.

    python -m benchmarks.privacy_dp_fedavg                  # seeds 11-13, the published table
    python -m benchmarks.privacy_dp_fedavg --seeds 1 --epsilons 8 --rounds 2   # a check
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import machine, progress_bar, publish
from benchmarks.privacy_dp import (
    DELTA,
    EVALUATION_SEEDS,
    Setting,
    _numbers,
    honest_federation,
    standardized,
    would_blacklist,
)

#: The budgets: the issue's four, and two far larger ones, to show where DP-FedAvg starts to
#: leave a usable model with ten participants.
EPSILONS = (1.0, 2.0, 4.0, 8.0, 64.0, 512.0)
RULE, CLIP_ONLY = "rule", "clip only"


def run(fed: Any, level: str, sigma: float, clip: float,
        on_round: Any = lambda: None) -> dict[str, Any]:
    """One task at one level (:data:`RULE`, :data:`CLIP_ONLY` with ``sigma`` 0, or an ε)."""
    from fl_agent.chain.records import TrainingMode
    from fl_agent.learning.models import init_params
    from fl_agent.learning.training import evaluate, round_seed, train_local, validation_scores
    from fl_agent.privacy.dp import dp_fedavg
    from fl_agent.privacy.plan import build_plan
    from fl_agent.simulation.config import BLOCKS_PER_ROUND_SLACK
    from fl_agent.simulation.offline import aggregator_strategy, decide_as_on_chain

    config, spec = fed.config, fed.spec
    strategy = aggregator_strategy(fed, build_plan(TrainingMode.DP, epsilon=8.0,
                                                   dp_level="participant"))
    X_val, y_val, X_test, y_test, shards, claims = standardized(fed)
    rng_seed = config.seed * 1000 + 17  # the benchmark's noise is seeded to be rerun
    params = init_params(spec, config.seed)
    curve, clipped, accepted_counts, noise_lengths = [], 0, 0, []
    rejected: list[set[int]] = []  # every client is honest: each rejection is a false one
    for number in range(1, config.rounds + 1):
        updates = np.stack([
            train_local(spec, params, X, y, config.steps, seed=round_seed(client.seed, number),
                        batch_size=config.batch_size, lr=config.lr).vector
            for client, (X, y) in zip(fed.clients, shards, strict=True)])
        decision = decide_as_on_chain(
            strategy, params, updates, claims,
            gate=lambda v: validation_scores(spec, v, X_val, y_val, "loss"),
            score=lambda v: evaluate(spec, v, X_val, y_val, "accuracy"),
            scoring="loo", round_number=number)
        rejected.append(set(range(len(fed.clients))) - set(decision.accepted))
        if level == RULE:
            params = np.asarray(decision.params, dtype=np.float32)
        else:
            kept = updates[sorted(decision.accepted)]
            new, info = dp_fedavg(params, kept, clip, sigma, seed=rng_seed + number)
            params = np.asarray(new, dtype=np.float32)
            clipped += len(info.clipped)
            accepted_counts += info.participants
            noise_lengths.append(info.noise_std * math.sqrt(params.size))
        curve.append(round(evaluate(spec, params, X_test, y_test, "accuracy"), 4))
        on_round()
    row: dict[str, Any] = {
        "level": level, "sigma": sigma, "accuracy": curve[-1], "curve": curve,
        "fpr": round(sum(map(len, rejected)) / (len(rejected) * len(fed.clients)), 4),
        "would_blacklist": would_blacklist(rejected, len(fed.clients), config.window_rounds,
                                           config.max_rejections, BLOCKS_PER_ROUND_SLACK)}
    if level != RULE:
        row["clipped_share"] = round(clipped / accepted_counts, 4) if accepted_counts else 0
        row["noise_length_over_clip"] = round(statistics.mean(noise_lengths) / clip, 3)
    return row


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    levels = list(dict.fromkeys(r["level"] for r in rows))
    lines = ["| level | σ | accuracy, median (range) | accepted updates clipped | noise "
             "length on the average / clip, median | honest FPR (range) | honest clients the "
             "registry would blacklist (total) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for level in levels:
        cells = [r for r in rows if r["level"] == level]
        accuracy = [c["accuracy"] for c in cells]
        sigma = "-" if level == RULE else f"{cells[0]['sigma']:.3g}"
        clipped = "-" if level == RULE else \
            f"{statistics.median(c['clipped_share'] for c in cells):.2f}"
        noise = "-" if level == RULE else \
            f"{statistics.median(c['noise_length_over_clip'] for c in cells):.2f}"
        fpr = [c["fpr"] for c in cells]
        lines.append(f"| {level} | {sigma} | {statistics.median(accuracy):.3f} "
                     f"({min(accuracy):.3f}-{max(accuracy):.3f}) | {clipped} | {noise} | "
                     f"{min(fpr):.3f}-{max(fpr):.3f} | "
                     f"{sum(len(c['would_blacklist']) for c in cells)} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    levels = list(dict.fromkeys(r["level"] for r in rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3))
    epsilons = [e for e in result["settings"]["epsilons"]]
    for name, style in ((RULE, "--"), (CLIP_ONLY, ":")):
        values = [r["accuracy"] for r in rows if r["level"] == name]
        if values:
            left.axhline(statistics.median(values), ls=style, color="grey",
                         label=f"{name} (median)")
    medians = [statistics.median(r["accuracy"] for r in rows if r["level"] == f"ε = {e:g}")
               for e in epsilons]
    spans = [[r["accuracy"] for r in rows if r["level"] == f"ε = {e:g}"] for e in epsilons]
    left.plot(epsilons, medians, "o-", color="C0", label="DP-FedAvg (median over seeds)")
    left.fill_between(epsilons, [min(s) for s in spans], [max(s) for s in spans],
                      color="C0", alpha=0.2)
    left.set(xscale="log", xlabel="ε over the task (δ = 1e-5)", ylabel="test accuracy",
             title="Participant-level DP: accuracy against ε", ylim=(0, 1))
    left.legend(fontsize=8)
    for k, level in enumerate(levels):
        for r in (r for r in rows if r["level"] == level):
            right.plot(range(1, len(r["curve"]) + 1), r["curve"], color=f"C{k}", alpha=0.6,
                       label=level if r is next(x for x in rows if x["level"] == level)
                       else None)
    right.set(xlabel="round", ylabel="test accuracy", title="Per round (every seed)",
              ylim=(0, 1))
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command(help="\n\n".join("\b\n" + paragraph
                                  for paragraph in __doc__.replace("``", "`").split("\n\n")))
@click.option("--seeds", default=",".join(map(str, EVALUATION_SEEDS)), show_default=True,
              callback=_numbers(int))
@click.option("--epsilons", default=",".join(f"{e:g}" for e in EPSILONS), show_default=True,
              callback=_numbers(float), help="the task's ε budgets, comma-separated")
@click.option("--clients", type=click.IntRange(2), default=Setting.clients, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=Setting.rounds, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/bench/privacy_dp_fedavg.json"), show_default=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("docs/plots/privacy_dp_fedavg.png"), show_default=True)
def main(seeds: list[int], epsilons: list[float], clients: int, rounds: int,
         json_path: Path, plot_path: Path) -> None:
    import torch

    from fl_agent.privacy.dp import noise_for_budget
    from fl_agent.privacy.plan import DPPlan

    torch.set_num_threads(1)
    seed_list, budgets = seeds, epsilons
    setting = Setting(clients=clients, rounds=rounds)
    clip = DPPlan(level="participant", epsilon=8.0).clip  # the task's default
    sigmas = {e: noise_for_budget(e, DELTA, 1.0, rounds, "prv") for e in budgets}
    levels = [(RULE, 0.0), (CLIP_ONLY, 0.0), *((f"ε = {e:g}", sigmas[e]) for e in budgets)]
    rows = []
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("federated rounds", total=len(seed_list) * len(levels) * rounds)
        for seed in seed_list:
            fed = honest_federation(seed, setting)
            for level, sigma in levels:
                rows.append({"seed": seed, **run(fed, level, sigma, clip,
                                                 lambda: progress.advance(task))})
    result = {"settings": {"seeds": seed_list, "epsilons": budgets, "delta": DELTA,
                           "accountant": "prv", "sample_rate": 1.0, "clip": clip,
                           "clients": clients, "rounds": rounds, "steps": setting.steps,
                           "lr": setting.lr, "dataset": "digits", "model": "mlp",
                           "rule": "fairfl (a participant-level dp task's)"},
              "machine": machine(), "seconds": round(time.perf_counter() - started, 1),
              "rows": rows}
    publish(result, json_path, markdown(result))
    plot(result, plot_path)
    click.echo(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
