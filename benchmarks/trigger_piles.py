"""Where FairFL's trigger screen stands between honest updates and a backdoor, round by round.

Offline (the held-out benchmark's federation: digits, MLP, 20 clients, 20 rounds, the
simulation's shards and attacks), with FairFL as the aggregator runs it but its trigger screen
switched off (``trigger_share=0``) and no blacklisting, so that every client submits in every
round. For each round it records every update's trigger statistic, the largest excess of an
input feature's share of the update's input-layer change over the round's median share of
that feature (:func:`fl_agent.aggregation.trigger_screen.trigger_excess`, what the screen
compares with ``trigger_share`` = 0.2), and reports per round the largest honest excess and the
smallest attacker's. The backdoor is learned once the attackers' updates are accepted, so
only the first round's attacker figures show what the screen faces when it is on (it then
keeps the backdoor out, and the attackers' excess stays that high).

    python -m benchmarks.trigger_piles                        # tuning seeds 1-5, both splits
    python -m benchmarks.trigger_piles --seeds 1 --rounds 2 --attacks none
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import publish
from fl_agent.aggregation.trigger_screen import trigger_excess
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import (
    aggregator_strategy,
    decide_as_on_chain,
    federation,
    run_offline,
)

ATTACKS = ("none", "backdoor", "backdoor-out-of-range")
PARTITIONS = ("dirichlet", "iid")


def piles(seed: int, attack: str, partition: str, rounds: int) -> list[dict[str, Any]]:
    """Per round: the honest updates' and the attackers' trigger excess, screen off."""
    settings = attack_settings(attack) if attack != "none" else {"attack": "none",
                                                                  "malicious": 0.0}
    fed = federation(SimulationConfig(seed=seed, partition=partition, rounds=rounds,
                                      scoring="loo", **settings))
    strategy = aggregator_strategy(fed)
    layer = strategy.input_layer
    bad = [c.malicious for c in fed.clients]
    seen: list[np.ndarray] = []

    def decide(rule: Any, params: np.ndarray, updates: np.ndarray, claims: np.ndarray,
               **kwargs: Any) -> Any:
        deltas = np.asarray(updates, np.float64) - np.asarray(params, np.float64)
        seen.append(trigger_excess(deltas, layer))
        return decide_as_on_chain(rule, params, updates, claims, **kwargs)

    submitted: list[tuple[int, ...]] = []
    run_offline(fed, strategy=replace(strategy, trigger_share=0.0), decide=decide,
                blacklist=False, on_round=lambda r: submitted.append(r.submitted))
    rows = []
    for number, (excess, who) in enumerate(zip(seen, submitted, strict=True), start=1):
        honest = [float(x) for x, i in zip(excess, who, strict=True) if not bad[i]]
        attackers = [float(x) for x, i in zip(excess, who, strict=True) if bad[i]]
        rows.append({"round": number, "honest_max": max(honest),
                     "honest_above_screen": sum(x >= strategy.trigger_share for x in honest),
                     "attackers_min": min(attackers) if attackers else None})
    return rows


def rare_features(seed: int, below: float = 0.02) -> dict[str, Any]:
    """The input features that are non-zero in fewer than ``below`` of the training images,
    with that share and their largest standardised value, and the corner trigger's value
    standardised on the same features: what a rare honest feature and a trigger look like
    to the input layer."""
    fed = federation(SimulationConfig(seed=seed, attack="backdoor"))
    raw = np.asarray(fed.splits.train.X, np.float64).reshape(len(fed.splits.train.X), -1)
    scaled = np.asarray(fed.data.standardize(fed.splits.train.X), np.float64).reshape(
        raw.shape)
    share = (raw != 0).mean(axis=0)
    rare = [{"feature": int(j), "share_non_zero": round(float(share[j]), 4),
             "largest_standardised": round(float(np.abs(scaled[:, j]).max()), 1)}
            for j in np.flatnonzero((share > 0) & (share < below))]
    trigger = fed.trigger
    stamped = np.zeros((1, raw.shape[1]))
    stamped[0, list(trigger.features)] = trigger.value
    standard = np.abs(np.asarray(fed.data.standardize(stamped), np.float64)[0])
    return {"seed": seed, "rare": rare,
            "trigger": {"features": [int(j) for j in trigger.features],
                        "standardised": [round(float(standard[j]), 1)
                                         for j in trigger.features]}}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| split | attack | largest honest excess, rounds 1-7 | rounds 8 on | honest "
             "updates at 0.2 or above | smallest attacker's excess, round 1 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        early = [x["honest_max"] for x in r["rounds"] if x["round"] < 8]
        late = [x["honest_max"] for x in r["rounds"] if x["round"] >= 8]
        first = r["rounds"][0]["attackers_min"]
        lines.append(f"| {r['partition']} | {r['attack']} | {max(early):.2f} | "
                     f"{format(max(late), '.2f') if late else '–'} | "
                     f"{sum(x['honest_above_screen'] for x in r['rounds'])} | "
                     f"{'–' if first is None else format(first, '.2f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3,4,5",
                        help="comma-separated seeds (default: FairFL's tuning seeds)")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--partitions", default=",".join(PARTITIONS))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/trigger_piles.json"))
    args = parser.parse_args(argv)
    results = []
    for partition in args.partitions.split(","):
        if partition not in PARTITIONS:
            parser.error(f"unknown split {partition!r}; use one of {', '.join(PARTITIONS)}")
        for attack in args.attacks.split(","):
            rounds: dict[int, dict[str, Any]] = {}
            for seed in (int(s) for s in args.seeds.split(",")):
                for row in piles(seed, attack, partition, args.rounds):
                    merged = rounds.setdefault(row["round"], {"round": row["round"],
                                                              "honest_max": 0.0,
                                                              "honest_above_screen": 0,
                                                              "attackers_min": None})
                    merged["honest_max"] = max(merged["honest_max"], row["honest_max"])
                    merged["honest_above_screen"] += row["honest_above_screen"]
                    if row["attackers_min"] is not None:
                        merged["attackers_min"] = row["attackers_min"] if merged[
                            "attackers_min"] is None else min(merged["attackers_min"],
                                                              row["attackers_min"])
            results.append({"partition": partition, "attack": attack, "seeds": args.seeds,
                            "rounds": [rounds[k] for k in sorted(rounds)]})
            print(f"{partition} {attack} done", flush=True)
    rare = rare_features(int(args.seeds.split(",")[0]))
    values = [f["largest_standardised"] for f in rare["rare"]]
    note = (f"\n\nseed {rare['seed']}: {len(values)} features are non-zero in fewer than 2 % "
            f"of the training images, standardised up to {min(values, default=0):g}-"
            f"{max(values, default=0):g}; the corner trigger, standardised: "
            f"{rare['trigger']['standardised']}")
    publish({"piles": results, "rare_features": rare}, args.json, markdown(results) + note)


if __name__ == "__main__":
    main()
