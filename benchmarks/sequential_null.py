"""What FairFL's sequential test does to a sender whose updates are as good as noise of their
size (``python -m benchmarks.sequential_null``).

A DP task's sequential test (:func:`fl_agent.aggregation.gate.sequential_out`) turns an update
away when its sender's summed z-scores, over the square root of their count, fall below
``-tolerance``. For a sender whose z-scores are N(μ, 1) each round, that statistic is N(0, 1)
each round when μ = 0, so a single submission is turned away with probability Φ(−2) ≈ 2.3 %.
But the rounds share the sum: once it dips, the next rounds are turned away too, and the
registry blacklists at three rejections within its window. This harness draws senders'
z-scores, runs the shipped test and the registry's window
(:func:`benchmarks.privacy_dp.would_blacklist`) on them, and prints, per drift μ, the share
of submissions turned away, the chance of being turned away at least once and the chance of
being blacklisted. A tiny shard at ε = 1 is such a sender: its update is nearly all noise
(docs/privacy-dp.md). The single round's own gate, which turns away some more, is not
modelled, so the figures are a floor for the test as shipped; and a sender is judged in every
round here, banned or not, so "submissions turned away" is the test's own rate, counting
rounds a banned sender would not submit.

Pure simulation of the test's arithmetic: no model is trained. Writes
``reports/bench/sequential_null.json``.

\b
    python -m benchmarks.sequential_null                      # 20 rounds, 20,000 senders
    python -m benchmarks.sequential_null --rounds 60 --drifts 0,0.2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import comma_numbers, machine, publish
from benchmarks.privacy_dp import Setting, would_blacklist
from fl_agent.simulation.config import BLOCKS_PER_ROUND_SLACK, SimulationConfig

#: The registry's rule as the simulation configures it (SimulationConfig's defaults: three
#: rejections within a window of ``4 * (clients + BLOCKS_PER_ROUND_SLACK)`` blocks, which, as a
#: round spends ``clients + 2`` blocks, holds five rounds).
_DEFAULTS = SimulationConfig()
WINDOW_ROUNDS, MAX_REJECTIONS = _DEFAULTS.window_rounds, _DEFAULTS.max_rejections
#: The DP benchmark's federation (benchmarks.privacy_dp), whose size sets the window's blocks.
CLIENTS = Setting().clients


def null_run(drift: float, rounds: int, senders: int, tolerance: float,
             seed: int = 0) -> dict[str, Any]:
    """``senders`` senders whose z-scores are N(``drift``, 1), judged by the shipped test over
    ``rounds`` rounds and replayed through the registry's window."""
    from fl_agent.aggregation.gate import sequential_out

    rng = np.random.default_rng(seed)
    sums, counts = np.zeros(senders), np.zeros(senders)
    rejected: list[set[int]] = []
    out = np.zeros((rounds, senders), dtype=bool)
    for number in range(rounds):
        z = rng.normal(drift, 1.0, senders)
        out[number] = sequential_out(sums, counts, z, tolerance)
        sums += z  # a rejected update's z still counts, as in FairFL
        counts += 1
        rejected.append(set(np.flatnonzero(out[number]).tolist()))
    # The registry's window in blocks, as benchmarks.privacy_dp replays it for its 10 clients
    # (the senders here are many draws of one client, not one federation).
    banned = would_blacklist(rejected, CLIENTS, WINDOW_ROUNDS, MAX_REJECTIONS,
                             BLOCKS_PER_ROUND_SLACK)
    return {"drift": drift, "rounds": rounds, "senders": senders,
            "share_turned_away": round(float(out.mean()), 4),
            "turned_away_at_least_once": round(float(out.any(axis=0).mean()), 4),
            "blacklisted": round(len(banned) / senders, 4)}


@click.command(help=__doc__)
@click.option("--drifts", default="0,-0.2,-0.36,0.2,0.5", show_default=True,
              callback=comma_numbers(float, lambda _: True, "finite numbers"),
              help="mean z-scores per round, comma-separated (0: as good as noise)")
@click.option("--rounds", default=20, show_default=True)
@click.option("--senders", default=20_000, show_default=True)
@click.option("--tolerance", default=2.0, show_default=True,
              help="the test's threshold (FairFL's gate slack)")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              default=Path("reports/bench/sequential_null.json"), show_default=True)
def main(drifts: list[float], rounds: int, senders: int, tolerance: float,
         json_path: Path) -> None:
    rows = [null_run(drift, rounds, senders, tolerance) for drift in drifts]
    table = ["| drift μ | submissions turned away | turned away at least once | blacklisted |",
             "| --- | --- | --- | --- |"]
    table += [f"| {row['drift']:+.2f} | {row['share_turned_away']:.4f} | "
              f"{row['turned_away_at_least_once']:.3f} | {row['blacklisted']:.3f} |"
              for row in rows]
    publish({"settings": {"rounds": rounds, "senders": senders, "tolerance": tolerance,
                          "window_rounds": WINDOW_ROUNDS, "max_rejections": MAX_REJECTIONS,
                          "clients": CLIENTS, "slack": BLOCKS_PER_ROUND_SLACK},
             "machine": machine(), "rows": rows}, json_path, "\n".join(table))

if __name__ == "__main__":
    main()
