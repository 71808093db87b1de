"""How the registry's ban grows with a task's length, for an honest client whose updates are
turned away now and then (``python -m benchmarks.ban_null``).

The registry blacklists a participant at three rejections within its window (four rounds'
blocks, which hold five rounds of a 20-client federation). That test is repeated every
round: a client that any rule turns away in a share ``p`` of its rounds, for whatever reason,
meets three rejections in one window sooner or later, and the longer the task, the likelier.
This harness draws each round's rejections independently with probability ``p`` for many
clients, replays them through the registry's window as the benchmarks do
(:func:`benchmarks.privacy_dp.would_blacklist`) and prints the chance of a ban within
``R`` rounds. Independence is the simplest case, not the measured one: in the held-out runs
the rejections pile up on a few clients (seed 11's 31-example client was turned away in 36
of 60 rounds), who are banned sooner, while the others are safer than this table says. Set
``p`` to a rule's honest FPR to read what the ban adds to it (docs/held-out.md).

Pure simulation of the registry's arithmetic: no model is trained. Writes
``reports/bench/ban_null.json``.

\b
    python -m benchmarks.ban_null                                 # p 0.01-0.2, 20-60 rounds
    python -m benchmarks.ban_null --rates 0.03 --lengths 20,100
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from benchmarks import comma_numbers, machine, publish
from benchmarks.privacy_dp import would_blacklist
from fl_agent.simulation.config import BLOCKS_PER_ROUND_SLACK, SimulationConfig

#: The registry's rule as the simulation configures it, for the held-out federation (the
#: simulation's defaults: 20 clients, three rejections within four rounds' blocks).
_DEFAULTS = SimulationConfig()
WINDOW_ROUNDS, MAX_REJECTIONS = _DEFAULTS.window_rounds, _DEFAULTS.max_rejections
CLIENTS = _DEFAULTS.clients


def ban_chance(rate: float, rounds: int, senders: int, seed: int = 0) -> float:
    """The share of ``senders`` clients, each turned away in a round with probability
    ``rate`` independently, that the registry's window bans within ``rounds`` rounds."""
    rng = np.random.default_rng(seed)
    out = rng.random((rounds, senders)) < rate
    rejected = [set(np.flatnonzero(row).tolist()) for row in out]
    banned = would_blacklist(rejected, CLIENTS, WINDOW_ROUNDS, MAX_REJECTIONS,
                             BLOCKS_PER_ROUND_SLACK)
    return len(banned) / senders


@click.command(help=__doc__)
@click.option("--rates", default="0.01,0.02,0.05,0.1,0.2", show_default=True,
              callback=comma_numbers(float, lambda r: 0 <= r <= 1, "rates between 0 and 1"),
              help="a client's chance of being turned away in a round")
@click.option("--lengths", default="20,40,60", show_default=True,
              callback=comma_numbers(int, lambda n: n >= 1, "rounds of at least 1"),
              help="task lengths in rounds")
@click.option("--senders", default=20_000, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              default=Path("reports/bench/ban_null.json"), show_default=True)
def main(rates: list[float], lengths: list[int], senders: int, json_path: Path) -> None:
    rows = [{"rate": rate, "rounds": rounds, "senders": senders,
             "banned": round(ban_chance(rate, rounds, senders), 4)}
            for rate in rates for rounds in lengths]
    table = ["| turned away per round | " + " | ".join(f"banned within {n} rounds"
                                                      for n in lengths) + " |",
             "| --- |" + " --- |" * len(lengths)]
    for rate in rates:
        table.append(f"| {rate:.2f} | " + " | ".join(
            f"{row['banned']:.3f}" for row in rows if row["rate"] == rate) + " |")
    publish({"settings": {"senders": senders, "window_rounds": WINDOW_ROUNDS,
                          "max_rejections": MAX_REJECTIONS, "clients": CLIENTS,
                          "slack": BLOCKS_PER_ROUND_SLACK},
             "machine": machine(), "rows": rows}, json_path, "\n".join(table))


if __name__ == "__main__":
    main()
