"""The aggregation rule alone, every round: attackers are never blacklisted and attack in
every round, so the table measures the rule, not the blacklist.

Offline (:mod:`fl_agent.simulation.offline`: the simulation's data, shards, training and
attacks, the aggregator's strategy set-up, without the chain), digits, MLP, 20 clients,
Dirichlet α = 0.5, 30 % malicious, 20 rounds. For every attack, every rule runs on the same
clients, plus a **perfect detector**: FedAvg over the honest clients only (the benchmark
knows who attacks), the limit for any defence. Reported: final test accuracy per rule;
for the backdoor the attack success rate (share of triggered test inputs, not of the
target class, sent to the target), and for the targeted flip the share of the source
class's test inputs put in the flip's target.

Weights are the clients' true sample counts (what honest participants report). No
contribution scoring: it does not change the aggregate.

    python -m benchmarks.rule_alone                          # evaluation seeds 11-15
    python -m benchmarks.rule_alone --seeds 101 --attacks label_flip --rules fairfl,median
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from benchmarks import publish
from fl_agent.aggregation import STRATEGIES, get_strategy
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.rounds import RoundDecision
from fl_agent.learning.training import predict
from fl_agent.simulation import DEFAULT_DEVICE_SPREAD
from fl_agent.simulation.attacks import ATTACKS, Attack, apply_trigger, attack_success_rate
from fl_agent.simulation.offline import (
    Federation,
    OfflineRun,
    aggregator_strategy,
    federation,
    run_offline,
)
from fl_agent.simulation.runner import SimulationConfig

RULES = ("fairfl", "fedavg", "median", "trimmed_mean", "krum", "multikrum", "fltrust", "flame")
PERFECT = "perfect detector"
EVALUATION_SEEDS = (11, 12, 13, 14, 15)


def decide_aggregate_only(strategy: Strategy, global_params: np.ndarray, updates: np.ndarray,
                          claims: np.ndarray, *, gate: Any, **_: Any) -> RoundDecision:
    """The strategy's aggregate on the reported sample counts; nobody is paid."""
    result = strategy.aggregate(global_params, updates, claims, evaluate=gate)
    n = len(updates)
    return RoundDecision(np.asarray(result.params), tuple(result.accepted),
                         MappingProxyType({int(i): str(w) for i, w in result.reasons.items()}),
                         np.zeros(n), (0,) * n)


def attack_rate(fed: Federation, run: OfflineRun) -> float | None:
    """For the backdoor, its attack success rate on triggered test inputs; for the targeted
    flip, the share of the source class's test inputs put in the flip's target; else
    None."""
    attack = Attack(fed.config.attack)
    y_test = np.asarray(fed.splits.test.y)
    if fed.trigger is not None:
        X_test = fed.data.standardize(apply_trigger(fed.splits.test.X, fed.trigger))
        return attack_success_rate(predict(fed.spec, run.params, X_test), y_test,
                                   attack.target)
    if attack.name == "targeted_flip":
        source = y_test == attack.source
        predicted = predict(fed.spec, run.params, fed.data.standardize(fed.splits.test.X))
        return float(np.mean(predicted[source] == attack.flip_target))
    return None


def run_rule(fed: Federation, rule: str) -> OfflineRun:
    if rule == PERFECT:
        honest = [c for c in fed.clients if not c.malicious]
        return run_offline(fed, honest, blacklist=False, decide=decide_aggregate_only,
                           strategy=get_strategy("fedavg"))
    config = fed.config.model_copy(update={"aggregator": rule})
    fed_rule = Federation(config, fed.splits, fed.spec, fed.data, fed.clients, fed.trigger)
    return run_offline(fed_rule, blacklist=False, decide=decide_aggregate_only,
                       strategy=aggregator_strategy(fed_rule))


def measure(seeds: list[int], attacks: list[str], rules: list[str], rounds: int,
            device_spread: float = DEFAULT_DEVICE_SPREAD) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        for attack in attacks:
            for rule in [*rules, PERFECT]:
                # A fresh federation for every rule: an attacker that draws noise (gaussian,
                # noisy free rider) draws from a generator made with the federation, so a
                # shared one gave each rule the draws the rules before it had left.
                fed = federation(SimulationConfig(attack=attack, seed=seed, rounds=rounds,
                                                  device_spread=device_spread))
                run = run_rule(fed, rule)
                rows.append({"seed": seed, "attack": attack, "rule": rule,
                             "accuracy": run.test_accuracy, "asr": attack_rate(fed, run)})
                asr = "" if rows[-1]["asr"] is None else f" asr {rows[-1]['asr']:.3f}"
                print(f"seed {seed} {attack:11} {rule:16} accuracy {run.test_accuracy:.4f}{asr}",
                      flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    lines = ["| attack | " + " | ".join(rules) + " |",
             "| --- |" + " --- |" * len(rules)]
    for attack in attacks:
        cells = []
        for rule in rules:
            got = [r for r in rows if r["attack"] == attack and r["rule"] == rule]
            acc = float(np.mean([r["accuracy"] for r in got]))
            cell = f"{acc:.3f}"
            if got and got[0]["asr"] is not None:
                cell += f" (ASR {np.mean([r['asr'] for r in got]):.2f})"
            cells.append(cell)
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\nmean final test accuracy over seeds "
                               f"{', '.join(map(str, seeds))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)))
    parser.add_argument("--attacks", default=",".join(a for a in ATTACKS if a != "none"))
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--device-spread", type=float, default=DEFAULT_DEVICE_SPREAD,
                        help="simulated device speeds (1: equal devices, every client the "
                             "base steps)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/rule_alone.json"))
    args = parser.parse_args(argv)
    rules = args.rules.split(",")
    unknown = [r for r in rules if r not in STRATEGIES]
    if unknown:
        parser.error(f"unknown rules {unknown}; use {', '.join(STRATEGIES)}")
    rows = measure([int(s) for s in args.seeds.split(",")], args.attacks.split(","), rules,
                   args.rounds, args.device_spread)
    publish(rows, args.json, markdown(rows))


if __name__ == "__main__":
    main()
