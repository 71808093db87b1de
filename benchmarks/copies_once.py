"""Rule R49 beyond its tuning runs: FairFL as a task made since 2026-12-06 runs it, exact
copies counted once in the round's direction (``fairfl``), against the rule before, every
copy a vote (``fairfl-every-copy``), on the sweep's grid (:mod:`benchmarks.sweep`: offline,
with blacklisting, 20 clients, 20 rounds, evaluation seeds 11-13).

Only rounds with exact copies differ, so run it on the attacks whose colluders submit one
crafted update (``alie``, ``minmax``, ``ipm``); any other run is the same under both.

    python -m benchmarks.copies_once --datasets breast_cancer --attacks alie,minmax,ipm \\
        --alphas 0.1,0.5,1.0 --malicious 0.1,0.3,0.45 --runs reports/bench/copies_once.jsonl
"""

from __future__ import annotations

from dataclasses import replace

from benchmarks.sweep import run_grid
from fl_agent.aggregation.base import Strategy
from fl_agent.errors import ConfigError
from fl_agent.simulation.offline import Federation, aggregator_strategy

VARIANTS = ("fairfl", "fairfl-every-copy")


def variant_strategy(rule: str, fed: Federation) -> Strategy:
    """The task's FairFL with ``copies_once`` on (``fairfl``) or off."""
    if rule not in VARIANTS:
        raise ConfigError(f"unknown variant {rule!r}; use one of {', '.join(VARIANTS)}")
    return replace(aggregator_strategy(fed), copies_once=rule == "fairfl")


def main(argv: list[str] | None = None) -> None:
    run_grid(argv, __doc__ or "", VARIANTS, "copies_once", variant_strategy,
             detail=VARIANTS)


if __name__ == "__main__":
    main()
