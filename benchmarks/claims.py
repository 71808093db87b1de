"""What a participant gains by lying about itself: a false sample count, or sybil accounts.

Offline (:mod:`fl_agent.simulation.offline`: the simulation's data, training and round
decision without the chain), digits, 20 clients, Dirichlet 0.5, no attackers, 20 rounds.
The *subject* is the honest client with the median amount of data. Per seed, five runs:

* ``honest``: everyone tells the truth (the reference);
* ``claims 1e6``: the subject reports 1,000,000 samples in every submission;
* ``sybil copies``: the subject runs 3 accounts, each training on all of its data;
* ``sybil split``: the subject runs 3 accounts, each with a third of its data;

each under two rules: ``on chain`` (what the aggregator runs,
:func:`fl_agent.aggregation.rounds.decide_round`: the aggregate, the gate and the Shapley
values weighted by the reported sample count, and half of each round's budget paid by it)
and ``uniform`` (a candidate: every update counts once, pay by contribution score alone).
Reported per rule and scenario: the subject's share of all rewards (its accounts
together), and the final test accuracy.

    python -m benchmarks.claims --seeds 11,12,13        # the evaluation seeds
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import publish
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.rounds import RoundDecision, decide_round
from fl_agent.simulation.offline import (
    Client,
    Federation,
    decide_as_on_chain,
    federation,
    run_offline,
)
from fl_agent.simulation.runner import SimulationConfig

LIE = 1_000_000
ACCOUNTS = 3
#: Seeds the rules were designed and checked on, and the seeds the docs report.
TUNING_SEEDS = (101, 102, 103)
EVALUATION_SEEDS = (11, 12, 13)
SCENARIOS = ("honest", "claims 1e6", "sybil copies", "sybil split")


def decide_uniform(strategy: Strategy, global_params: np.ndarray, updates: np.ndarray,
                   claims: np.ndarray, *, gate: Any, score: Any, scoring: str,
                   permutations: int, round_number: int) -> RoundDecision:
    """The candidate rule: every update counts once and pay follows the contribution score
    alone (``base_share = 0``); the claims are never read."""
    ones = np.ones(len(updates))
    return decide_round(strategy, global_params, updates, ones, gate=gate, score=score,
                        scoring=scoring, permutations=permutations, base_share=0.0,
                        round_number=round_number)


RULES = {"on chain": decide_as_on_chain, "uniform": decide_uniform}


def subject_of(fed: Federation) -> int:
    """The honest client with the median amount of data (lowest index on a tie)."""
    sizes = sorted((len(c.y), i) for i, c in enumerate(fed.clients) if not c.malicious)
    return sizes[(len(sizes) - 1) // 2][1]


def scenario(fed: Federation, name: str, subject: int) -> tuple[list[Client], list[int]]:
    """The clients of one scenario and the indices of the subject's accounts."""
    clients = list(fed.clients)
    me = clients[subject]
    if name == "honest":
        return clients, [subject]
    if name == "claims 1e6":
        clients[subject] = Client(me.X, me.y, me.seed, claimed_samples=LIE)
        return clients, [subject]
    if name == "sybil copies":
        parts = [np.arange(len(me.y))] * ACCOUNTS
    elif name == "sybil split":
        order = np.random.default_rng(me.seed).permutation(len(me.y))
        parts = np.array_split(order, ACCOUNTS)
    else:
        raise ValueError(f"unknown scenario {name!r}")
    accounts = [Client(me.X[rows], me.y[rows], me.seed + 7919 * k)
                for k, rows in enumerate(parts)]
    clients[subject] = accounts[0]
    clients += accounts[1:]
    return clients, [subject, *range(len(fed.clients), len(clients))]


def measure(seeds: Iterable[int], rounds: int, clients: int = 20) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        config = SimulationConfig(attack="none", seed=seed, rounds=rounds, clients=clients)
        fed = federation(config)
        subject = subject_of(fed)
        for rule, decide in RULES.items():
            for name in SCENARIOS:
                clients, mine = scenario(fed, name, subject)
                run = run_offline(fed, clients, decide=decide)
                earned = run.earned()
                rows.append({"seed": seed, "rule": rule, "scenario": name,
                             "subject_samples": len(fed.clients[subject].y),
                             "share": float(earned[mine].sum() / earned.sum()),
                             "accuracy": run.test_accuracy})
                print(f"seed {seed} {rule:8} {name:13} share {rows[-1]['share']:.3f} "
                      f"accuracy {run.test_accuracy:.4f}", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| rule | scenario | subject's share of all rewards | final accuracy |",
             "| --- | --- | --- | --- |"]
    for rule in RULES:
        for name in SCENARIOS:
            got = {r["seed"]: r for r in rows if r["rule"] == rule and r["scenario"] == name}
            share = " / ".join(f"{100 * got[s]['share']:.1f} %" for s in seeds)
            acc = " / ".join(f"{got[s]['accuracy']:.3f}" for s in seeds)
            lines.append(f"| {rule} | {name} | {share} | {acc} |")
    return "\n".join(lines) + f"\n\nseeds {', '.join(map(str, seeds))} (one figure per seed)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)),
                        help="comma-separated seeds (default: the evaluation seeds)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/claims.json"))
    args = parser.parse_args(argv)
    rows = measure([int(s) for s in args.seeds.split(",")], args.rounds, args.clients)
    publish(rows, args.json, markdown(rows))


if __name__ == "__main__":
    main()
