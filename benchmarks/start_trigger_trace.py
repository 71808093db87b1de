"""Why FairFL's trigger screen turns away honest updates made from a good start (rules R62
and R62b, docs/privacy-dp.md): for each client, its first-round update without DP from the
seeded start and from a start trained on the validation split, the update's trigger
statistic (:func:`fl_agent.aggregation.trigger_screen.trigger_excess`, which the screen
compares with ``trigger_share`` = 0.2), the input feature it piles on, that feature's scale
in the task's standardisation, and how far out the client's own examples lie on it.

The federation and training are ``benchmarks.privacy_dp``'s (10 clients, 20 steps at the
no-DP lr 0.2, the training split's standardisation). One round is enough to see the pile:
the screen compares an update with the round's median share of each feature, so a single
round's updates are what it reads. This is a diagnosis; it decides nothing.

    python -m benchmarks.start_trigger_trace                       # tuning seeds 1-3, K = 0, 100
    python -m benchmarks.start_trigger_trace --seeds 1 --starts 0,5 --clients 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import comma_numbers, machine, publish

#: Standardised values this many standard deviations out count as far out.
FAR = 3.0


def trace(seed: int, warm_start: int, clients: int) -> list[dict[str, Any]]:
    """Each client's first-round update from the start: its trigger statistic, the feature
    with the largest excess, that feature's scale, the largest |value| the client's shard
    holds on it and how many of its examples lie beyond :data:`FAR`."""
    import torch

    from benchmarks.privacy_dp import (
        DP_NO_OUTLIERS,
        Setting,
        honest_federation,
        standardized,
        strategy_for,
        warm_started,
    )
    from fl_agent.aggregation.trigger_screen import input_feature_shares, trigger_excess
    from fl_agent.learning.models import init_params
    from fl_agent.learning.training import round_seed, train_local

    torch.set_num_threads(1)
    setting = Setting(clients=clients, warm_start=warm_start)
    fed = honest_federation(seed, setting)
    X_val, y_val, _, _, shards, _ = standardized(fed)
    start = warm_started(fed.spec, init_params(fed.spec, seed), X_val, y_val, setting, seed)
    layer = strategy_for(fed, DP_NO_OUTLIERS).input_layer
    deltas = np.stack([
        np.asarray(train_local(fed.spec, start, X, y, setting.steps,
                               seed=round_seed(client.seed, 1), batch_size=setting.batch_size,
                               lr=setting.lr).vector, dtype=np.float64) - start
        for client, (X, y) in zip(fed.clients, shards, strict=True)])
    excess = trigger_excess(deltas, layer)
    shares = input_feature_shares(deltas, layer)
    above = shares - np.median(shares, axis=0)
    rows = []
    for i, (X, _) in enumerate(shards):
        feature = int(np.argmax(above[i]))
        values = np.abs(X[:, feature])
        rows.append({"seed": seed, "warm_start": warm_start, "client": i,
                     "examples": len(X), "excess": float(excess[i]), "feature": feature,
                     "feature_scale": float(fed.data.scale[feature]),
                     "largest_value": float(values.max()),
                     "examples_far_out": int((values > FAR).sum())})
    return rows


@click.command(help=__doc__)
@click.option("--seeds", default="1,2,3", show_default=True, callback=comma_numbers(int))
@click.option("--starts", default="0,100", show_default=True,
              callback=comma_numbers(int, lambda k: k >= 0, "numbers of steps, 0 or more"),
              help="warm-start steps on the validation split (0: the seeded start)")
@click.option("--clients", default=10, show_default=True, type=click.IntRange(2))
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/bench/start_trigger_trace.json"), show_default=True)
def main(seeds: list[int], starts: list[int], clients: int, json_path: Path) -> None:
    about = machine()
    rows = [row for seed in seeds for k in starts for row in trace(seed, k, clients)]
    lines = []
    for seed in seeds:
        for k in starts:
            mine = sorted((r for r in rows if r["seed"] == seed and r["warm_start"] == k),
                          key=lambda r: -r["excess"])
            lines.append(f"seed {seed}, start {k} steps: " + "; ".join(
                f"client {r['client']} excess {r['excess']:.2f} on feature {r['feature']} "
                f"(scale {r['feature_scale']:.3f}; its largest value {r['largest_value']:.1f}"
                f" SD, {r['examples_far_out']} of {r['examples']} beyond {FAR:g})"
                for r in mine[:3]))
    publish({"machine": about, "seeds": seeds, "starts": starts, "clients": clients,
             "far": FAR, "rows": rows},
            json_path, "\n".join(lines))


if __name__ == "__main__":
    main()
