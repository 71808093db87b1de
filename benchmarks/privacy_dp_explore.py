"""Ideas for closing DP-SGD's accuracy gap, tried on the tuning seeds (``python -m
benchmarks.privacy_dp_explore``).

``benchmarks.privacy_dp`` measures DP-SGD at the constants chosen on seeds 1-3 (lr 0.15,
clip 1, 20 rounds of 20 steps, 10 clients). This harness runs the same tasks (its
:func:`~benchmarks.privacy_dp.measure_run`, FedAvg, one ε) with one change each, to see
whether anything cheap moves the accuracy at a fixed budget.

A learning-rate schedule over rounds (``--schedules``): ``const``; ``cosine`` (from 1 to 0
over the task); ``linear<x>`` (from 1 to ``x`` at the last round); ``step<x>`` (``x`` from
the second half on); ``x<k>`` (``k`` times the lr throughout). The noise a step adds is
proportional to the lr, and the accountant does not see the lr, so any schedule spends the
same ε.

Averaging the last K global models (``--tails``), and the accuracy of that average:
post-processing, so it costs no privacy either.

Only the tuning seeds belong here: what this finds is chosen on them, then measured by
``benchmarks.privacy_dp`` on seeds 11-13. The findings are in docs/privacy-dp.md.

\b
    python -m benchmarks.privacy_dp_explore          # seeds 1-3, ε = 8 (~6 min)
    python -m benchmarks.privacy_dp_explore --seeds 1 --schedules const,x2 --rounds 2 \\
        --clients 4 --steps 2
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks import machine, progress_bar, publish
from benchmarks.privacy_dp import (
    TUNING_SEEDS,
    Setting,
    _help,
    _numbers,
    calibrate,
    federation_options,
    honest_federation,
    measure_run,
)

SCHEDULES = ("const", "cosine", "linear0.1", "step0.3", "x1.5", "x2")
TAILS = (1, 3, 5, 10)


def lr_factor(name: str, rounds: int) -> Callable[[int], float]:
    """The factor on the DP learning rate in round ``r`` (1-based) under schedule ``name``."""
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value > 0:
            raise click.BadParameter(f"schedule {name!r}: a positive number after the name")
        return value

    last = max(rounds - 1, 1)
    if name == "const":
        return lambda r: 1.0
    if name == "cosine":
        return lambda r: 0.5 * (1 + math.cos(math.pi * (r - 1) / rounds))
    if name.startswith("linear"):
        end = number(name[6:])
        return lambda r: 1 + (end - 1) * (r - 1) / last
    if name.startswith("step"):
        low = number(name[4:])
        return lambda r: 1.0 if r <= rounds // 2 else low
    if name.startswith("x"):
        k = number(name[1:])
        return lambda r: k
    raise click.BadParameter(f"unknown schedule {name!r}; use const, cosine, linear<x>, "
                             "step<x> or x<k>")


def markdown(result: dict[str, Any]) -> str:
    tails = result["settings"]["tails"]
    lines = ["| schedule | final accuracy, median (range) | "
             + " | ".join(f"mean of last {k}" for k in tails) + " |",
             "| --- | --- | " + " | ".join("---" for _ in tails) + " |"]
    for name in result["settings"]["schedules"]:
        rows = [r for r in result["runs"] if r["schedule"] == name]
        final = [r["accuracy"] for r in rows]
        cells = [f"{statistics.median(r['tail_accuracy'][str(k)] for r in rows):.3f}"
                 for k in tails]
        lines.append(f"| {name} | {statistics.median(final):.3f} "
                     f"({min(final):.3f}-{max(final):.3f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@click.command(help=_help(__doc__ or ""), context_settings={"max_content_width": 100})
@click.option("--seeds", default=",".join(map(str, TUNING_SEEDS)), show_default=True,
              callback=_numbers(int), help="comma-separated tuning seeds")
@click.option("--epsilon", default=8.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option("--schedules", default=",".join(SCHEDULES), show_default=True)
@click.option("--tails", default=",".join(map(str, TAILS)), show_default=True,
              callback=_numbers(int), help="average the last K global models, for each K")
@federation_options
@click.option("--json", "json_path", default="reports/bench/privacy_dp_explore.json",
              show_default=True, type=click.Path(dir_okay=False, path_type=Path))
def main(seeds: list[int], epsilon: float, schedules: str, tails: list[int], clients: int,
         rounds: int, steps: int, json_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    tail_list = tuple(tails)
    names = [x.strip() for x in schedules.split(",") if x.strip()]
    factors = {name: lr_factor(name, rounds) for name in names}
    setting = Setting(clients=clients, rounds=rounds, steps=steps)
    level = f"ε = {epsilon:g}"
    rows: list[dict[str, Any]] = []
    with progress_bar() as progress:
        task = progress.add_task("rounds", total=len(seeds) * len(names) * rounds)
        for seed in seeds:
            fed = honest_federation(seed, setting)
            calibration = calibrate([len(c.y) for c in fed.clients], setting, epsilon)
            for name in names:
                progress.update(task, description=f"seed {seed} {name}")
                row = measure_run(fed, "fedavg", level, setting, calibration,
                                  on_round=lambda: progress.advance(task),
                                  lr_factor=factors[name], tails=tail_list)
                rows.append({"seed": seed, "schedule": name, "accuracy": row["accuracy"],
                             "tail_accuracy": {str(k): v
                                               for k, v in row["tail_accuracy"].items()},
                             "curve": row["curve"]})
    result = {"settings": {"seeds": seeds, "epsilon": epsilon, "schedules": names,
                           "tails": list(tail_list), "clients": clients, "rounds": rounds,
                           "steps": setting.steps, "dp_lr": setting.dp_lr,
                           "clip": setting.clip, "accountant": setting.accountant,
                           "strategy": "fedavg"},
              "machine": machine(), "runs": rows}
    publish(result, json_path, markdown(result))


if __name__ == "__main__":
    main()
