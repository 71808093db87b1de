"""Why FairFL accepted or rejected whom, round by round, in one offline run of the sweep.

The sweep's tables say *that* a cell went wrong; this prints *how*: for each round, the
honest and attacking clients that submitted, FairFL's reason for each rejection
(``dissimilar``, ``validation``, ...), which unit seeded the bottom-up merge order (and
whether it held attackers), the updates' lengths (the honest range, each attacker's), and
who is blacklisted after the round. The run is the sweep's
(:func:`benchmarks.sweep.measure_run` settings, same data, training and attacks); FairFL's
:meth:`~fl_agent.aggregation.fairfl.FairFL.report` is recorded as the aggregator decides.

    python -m benchmarks.round_reasons --attack alie --alpha 0.1 --malicious 0.45 --seed 11
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import fields
from typing import Any

from fl_agent.aggregation.base import AggregationResult, Evaluate, Round
from fl_agent.aggregation.fairfl import FairFL, FairFLReport
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import OfflineRound, aggregator_strategy, federation, run_offline


class RecordingFairFL(FairFL):
    """FairFL that keeps the report of every round it aggregates."""

    reports: list[FairFLReport]

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        report = self._run(rnd, evaluate)
        self.reports.append(report)
        return report.result


def explain(dataset: str, attack: str, alpha: float, malicious: float, seed: int,
            rounds: int = 20) -> list[dict[str, Any]]:
    """One row per round: who submitted, FairFL's reasons by kind of client, the seed unit
    of the merge order, and the blacklist after the round."""
    config = SimulationConfig(dataset=dataset, alpha=alpha, seed=seed, rounds=rounds,
                              malicious=malicious, aggregator="fairfl",
                              **attack_settings(attack))
    fed = federation(config)
    base = aggregator_strategy(fed)
    if not isinstance(base, FairFL):
        raise SystemExit("the task's strategy is not FairFL")
    strategy = RecordingFairFL(**{f.name: getattr(base, f.name) for f in fields(base)})
    object.__setattr__(strategy, "reports", [])
    attacker = [c.malicious for c in fed.clients]  # label flippers poison data, not updates
    rows: list[dict[str, Any]] = []

    def on_round(row: OfflineRound) -> None:
        if not row.submitted:
            rows.append({"round": row.round, "submitted": 0})
            return
        report = strategy.reports[-1]
        client = list(row.submitted)  # round index -> client
        reasons = {"honest": Counter(), "attacker": Counter()}
        for j, why in report.result.reasons.items():
            reasons["attacker" if attacker[client[j]] else "honest"][str(why)] += 1
        seed_unit = report.order[0] if report.order else ()
        rejected = {client[j] for j in report.result.rejected}
        figures = report.result.figures or {}
        norms = dict(zip(figures.get("indices", []), figures.get("norms", []), strict=True))
        honest_norms = [n for j, n in norms.items() if not attacker[client[j]]]
        rows.append({
            "round": row.round,
            "honest": sum(not attacker[c] for c in client),
            "attackers": sum(attacker[c] for c in client),
            "honest_rejected": dict(reasons["honest"]),
            "attackers_rejected": dict(reasons["attacker"]),
            "seed_unit": {"size": len(seed_unit),
                          "attackers": sum(attacker[client[j]] for j in seed_unit)},
            "rejected": sorted(rejected),
            # the update's length as FairFL's norm screen saw it: the honest range, and
            # each attacker's (an attack can look ordinary in one round and not another)
            "norms": {"honest": [round(min(honest_norms), 3), round(max(honest_norms), 3)]
                      if honest_norms else [],
                      "attackers": {client[j]: round(n, 3) for j, n in norms.items()
                                    if attacker[client[j]]}},
            "test_accuracy": round(row.test_accuracy, 3),
        })

    result = run_offline(fed, strategy=strategy, on_round=on_round)
    honest_banned = [c for c in result.blacklisted if not attacker[c]]
    rows.append({"blacklisted_honest": len(honest_banned),
                 "blacklisted_attackers": len(result.blacklisted) - len(honest_banned),
                 "final_accuracy": round(result.test_accuracy, 3)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--attack", default="alie")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--malicious", type=float, default=0.45)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    for row in explain(args.dataset, args.attack, args.alpha, args.malicious, args.seed,
                       args.rounds):
        print(row)


if __name__ == "__main__":
    main()
