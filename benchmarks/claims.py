"""What a participant gains by lying about itself: a false sample count, or sybil accounts.

Offline (:mod:`fl_agent.simulation.offline`: the simulation's data, training and round
decision without the chain), digits, 20 clients, Dirichlet 0.5, no attackers, 20 rounds.
The *subject* is the honest client with the median amount of data; the *small* client is
the one with the least. Per seed, six runs:

* ``honest``: everyone tells the truth (the reference for both);
* ``claims 1e6``: the subject reports 1,000,000 samples in every submission;
* ``small claims 1e6``: the small client does;
* ``sybil copies``: the subject runs 3 accounts, each training on all of its data;
* ``sybil split``: the subject runs 3 accounts, each with a third of its data;

each under two rules: ``before`` (the rule until issue 11: the aggregate, the gate and the
Shapley values weighted by the reported sample count, half of each round's budget paid by
it) and ``on chain`` (what the aggregator runs now,
:func:`fl_agent.aggregation.rounds.decide_round`: claims capped at the others' median,
copies counted once). Reported per rule and scenario: the liar's share of all rewards (its
accounts together), its share when honest, and the final test accuracy.

    python -m benchmarks.claims --seeds 11,12,13,14,15   # the evaluation seeds
    python -m benchmarks.claims --seeds 101,102,103      # the tuning seeds
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks import publish
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.rounds import RoundDecision
from fl_agent.aggregation.scoring import (
    blend_with_samples,
    contribution_scores,
    to_reward_shares,
)
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
EVALUATION_SEEDS = (11, 12, 13, 14, 15)
SCENARIOS = ("honest", "claims 1e6", "small claims 1e6", "sybil copies", "sybil split")


def decide_before(strategy: Strategy, global_params: np.ndarray, updates: np.ndarray,
                  claims: np.ndarray, *, gate: Any, score: Any, scoring: Literal["loo", "shapley"],
                  permutations: int, round_number: int) -> RoundDecision:
    """The rule before issue 11, for comparison: the reported claims are the weights, and
    half of the budget is paid by them."""
    result = strategy.aggregate(global_params, updates, claims, evaluate=gate)
    n = len(updates)
    scores, shares = np.zeros(n), [0] * n
    if result.accepted:
        scores = contribution_scores(strategy, global_params, updates, claims,
                                     result.accepted, score, method=scoring,
                                     num_permutations=permutations, seed=round_number)
        shares = to_reward_shares(blend_with_samples(scores, claims, result.accepted, 0.5),
                                  result.accepted, tie_break=round_number)
    return RoundDecision(np.asarray(result.params), tuple(result.accepted),
                         dict(result.reasons), scores, tuple(shares))


RULES = {"before": decide_before, "on chain": decide_as_on_chain}


def subject_of(fed: Federation) -> int:
    """The honest client with the median amount of data (lowest index on a tie)."""
    sizes = sorted((len(c.y), i) for i, c in enumerate(fed.clients) if not c.malicious)
    return sizes[(len(sizes) - 1) // 2][1]


def smallest_of(fed: Federation) -> int:
    """The honest client with the least data (lowest index on a tie)."""
    return min((len(c.y), i) for i, c in enumerate(fed.clients) if not c.malicious)[1]


def liar_of(fed: Federation, name: str) -> int:
    """The client a scenario is about."""
    return smallest_of(fed) if name.startswith("small") else subject_of(fed)


def scenario(fed: Federation, name: str, subject: int) -> tuple[list[Client], list[int]]:
    """The clients of one scenario and the indices of the ``subject``'s accounts."""
    clients = list(fed.clients)
    me = clients[subject]
    if name == "honest":
        return clients, [subject]
    if name.endswith("claims 1e6"):
        clients[subject] = replace(me, claimed_samples=LIE)
        return clients, [subject]
    if name == "sybil copies":
        parts = [np.arange(len(me.y))] * ACCOUNTS
    elif name == "sybil split":
        order = np.random.default_rng(me.seed).permutation(len(me.y))
        parts = np.array_split(order, ACCOUNTS)
    else:
        raise ValueError(f"unknown scenario {name!r}")
    accounts = [replace(me, X=me.X[rows], y=me.y[rows], seed=me.seed + 7919 * k)
                for k, rows in enumerate(parts)]
    clients[subject] = accounts[0]
    clients += accounts[1:]
    return clients, [subject, *range(len(fed.clients), len(clients))]


def measure(seeds: Iterable[int], rounds: int, clients: int = 20) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        config = SimulationConfig(attack="none", seed=seed, rounds=rounds, clients=clients)
        fed = federation(config)
        for rule, decide in RULES.items():
            reference = run_offline(fed, decide=decide)
            honest = reference.earned()
            for name in SCENARIOS:
                liar = liar_of(fed, name)
                accounts, mine = scenario(fed, name, liar)
                run = reference if name == "honest" else run_offline(fed, accounts,
                                                                     decide=decide)
                earned = run.earned()
                rows.append({"seed": seed, "rule": rule, "scenario": name,
                             "samples": len(fed.clients[liar].y),
                             "share": float(earned[mine].sum() / earned.sum()),
                             "honest_share": float(honest[liar] / honest.sum()),
                             "accuracy": run.test_accuracy})
                print(f"seed {seed} {rule:8} {name:16} share {rows[-1]['share']:.3f} "
                      f"(honest {rows[-1]['honest_share']:.3f}) "
                      f"accuracy {run.test_accuracy:.4f}", flush=True)
    return rows


#: The settings ``--closeness`` measures copies in: (partition, alpha, dataset).
CLOSENESS_SETTINGS = (("dirichlet", 0.5, "digits"), ("dirichlet", 100.0, "digits"),
                      ("dirichlet", 0.1, "digits"), ("dirichlet", 0.5, "breast_cancer"))


class _Closeness:
    """A round decision that first records, per round, the closest honest pair and the
    farthest pair of copies, each as cosine distance over the round's median."""

    def __init__(self, copies: list[int]) -> None:
        self.copies = copies
        self.rounds: list[tuple[float, float]] = []

    def __call__(self, strategy: Strategy, global_params: np.ndarray, updates: np.ndarray,
                 claims: np.ndarray, **options: Any) -> RoundDecision:
        deltas = updates.astype(np.float64) - global_params
        unit = deltas / np.linalg.norm(deltas, axis=1, keepdims=True)
        distance = 1.0 - unit @ unit.T
        ratio = distance / np.median(distance[np.triu_indices(len(updates), 1)])
        others = [i for i in range(len(updates)) if i not in self.copies]
        honest = ratio[np.ix_(others, others)][np.triu_indices(len(others), 1)]
        copied = [ratio[a, b] for a in self.copies for b in self.copies if a < b]
        self.rounds.append((float(honest.min()), float(max(copied))))
        return decide_as_on_chain(strategy, global_params, updates, claims, **options)


def closeness(seeds: Iterable[int], rounds: int = 10) -> list[dict[str, Any]]:
    """How close copies come, against the closest honest pair, in the round's own terms: per
    round, the cosine distance of a pair over the round's median pairwise cosine distance
    (what :data:`fl_agent.aggregation.rounds.COPY_CLOSENESS` bounds). The subject runs three
    accounts on its data (``sybil copies``); the other clients are honest; nobody is
    blacklisted, so every account submits in every round."""
    rows = []
    for seed in seeds:
        for part, alpha, dataset in CLOSENESS_SETTINGS:
            config = SimulationConfig(attack="none", seed=seed, rounds=rounds, clients=20,
                                      partition=part, alpha=alpha, dataset=dataset)
            fed = federation(config)
            accounts, mine = scenario(fed, "sybil copies", subject_of(fed))
            decide = _Closeness(mine)
            run_offline(fed, accounts, blacklist=False, decide=decide)
            rows.append({"seed": seed, "dataset": dataset, "alpha": alpha,
                         "closest_honest": min(h for h, _ in decide.rounds),
                         "farthest_copies": max(c for _, c in decide.rounds)})
            print(f"seed {seed} {dataset} alpha {alpha}: closest honest pair "
                  f"{rows[-1]['closest_honest']:.3f}, farthest copies "
                  f"{rows[-1]['farthest_copies']:.3f} (of the round's median)", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| rule | scenario | liar's share of all rewards | same client, honest | "
             "ratio (median) | final accuracy |", "| --- | --- | --- | --- | --- | --- |"]
    for rule in RULES:
        for name in SCENARIOS:
            got = {r["seed"]: r for r in rows if r["rule"] == rule and r["scenario"] == name}
            share = " / ".join(f"{100 * got[s]['share']:.1f}" for s in seeds)
            truth = " / ".join(f"{100 * got[s]['honest_share']:.1f}" for s in seeds)
            ratio = np.median([got[s]["share"] / got[s]["honest_share"] for s in seeds])
            acc = " / ".join(f"{got[s]['accuracy']:.3f}" for s in seeds)
            lines.append(f"| {rule} | {name} | {share} % | {truth} % | {ratio:.2f} | {acc} |")
    return "\n".join(lines) + f"\n\nseeds {', '.join(map(str, seeds))} (one figure per seed)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)),
                        help="comma-separated seeds (default: the evaluation seeds)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per run (default: 20, or 10 with --closeness)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/claims.json"))
    parser.add_argument("--closeness", action="store_true",
                        help="instead: how close copies come against honest pairs, per "
                             "setting (how COPY_CLOSENESS was chosen; run it on seed 102)")
    args = parser.parse_args(argv)
    if args.closeness:
        found = closeness([int(s) for s in args.seeds.split(",")], args.rounds or 10)
        publish(found, args.json.with_name("closeness.json"),
                "\n".join(f"seed {r['seed']} {r['dataset']} alpha {r['alpha']}: "
                          f"{r['closest_honest']:.3f} / {r['farthest_copies']:.3f}"
                          for r in found))
        return
    rows = measure([int(s) for s in args.seeds.split(",")], args.rounds or 20, args.clients)
    publish(rows, args.json, markdown(rows))


if __name__ == "__main__":
    main()
