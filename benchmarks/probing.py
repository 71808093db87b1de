"""Rule R50's probing attacker: what a sender that knows the rule gains from held-back
updates being free.

Under FairFL's ``held_back`` (rule R50, [docs/held-out.md](../docs/held-out.md#r50)), an
update the gate turns away only because the similarity scaling cut its slack, with a harm
within the full tolerance, is held back: not aggregated, not paid, and not counted towards
a ban. An attacker can then probe: send a weakened attack, read its verdict on chain,
strengthen it when accepted and weaken it when turned away, at no cost when held back.
:class:`~fl_agent.simulation.attackers.Probing` is that attacker: it also sends its honest
update whenever one more counted rejection would ban it, so its own attacks never do.

Each run: digits, MLP, 20 clients, 30 % attackers, Dirichlet α = 0.5, offline
(:mod:`fl_agent.simulation.offline`), FairFL as a new task records it, with ``held_back``
on (R50) or off (the rule before). ``--variants`` lists the attackers: ``plain`` (the attack
as the held-out table runs it) and ``UP/DOWN`` (probing with those factors). Per run: final
accuracy and its ratio to clean FedAvg, the backdoor's attack success, the attackers'
share of the rewards, who was banned, and what the attackers sent from their first attack
round on: attack updates accepted, held back and rejected, and the attack that got in (the
sum of the strengths of the accepted attack updates, in full attack updates).

    python -m benchmarks.probing --seeds 1,2,3,4,5 --held-back true \\
        --json reports/bench/probing_tuning.json           # the attacker's best response
    python -m benchmarks.probing --choose reports/bench/probing_tuning.json
    python -m benchmarks.probing --seeds 11,12,13,14,15 --held-back true,false \\
        --variants plain,1.5/0.5
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, publish
from benchmarks.held_out import EVALUATION_SEEDS, clean_fedavg, detection, honest_reasons
from benchmarks.rule_alone import attack_rate
from fl_agent.errors import ConfigError
from fl_agent.simulation.attackers import Probing
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import (
    Client,
    Federation,
    aggregator_strategy,
    federation,
    run_offline,
)

#: Late attacks of a 60-round task, where R50 holds updates back.
ATTACKS = ("sign_flip-from-41", "backdoor-centre-20%-from-41")
#: The probing attackers tried for the attacker's best response (UP/DOWN).
VARIANTS = ("plain", "1.5/0.5", "1.25/0.8", "1.1/0.9")


def parse_variant(name: str) -> tuple[float, float] | None:
    """``plain`` -> None; ``UP/DOWN`` -> (up, down), checked as :class:`Probing` does."""
    if name == "plain":
        return None
    try:
        up, down = (float(x) for x in name.split("/"))
    except ValueError:
        raise ConfigError(f"attacker {name!r}: use plain or UP/DOWN, as 1.5/0.5") from None
    if not (up >= 1.0 and 0.0 < down < 1.0):
        raise ConfigError(f"attacker {name!r}: UP must be >= 1 and DOWN in (0, 1)")
    return up, down


def probing_clients(fed: Federation, up: float, down: float) -> list[Client]:
    """The federation's clients with every attacker probing. The attacker estimates the
    registry's window as one round longer than ``window_rounds`` (a round's blocks are
    fewer than the window's per-round allowance), so that it errs on the side of no ban."""
    config = fed.config
    return [replace(c, poison=Probing(c.poison, config.attack_from, up=up, down=down,
                                      max_rejections=config.max_rejections,
                                      window_rounds=config.window_rounds + 1))
            if c.malicious and c.poison is not None else c for c in fed.clients]


def sent_by_attackers(clients: list[Client]) -> dict[str, Any]:
    """What the probing attackers sent: attack updates by verdict, the attack that got in
    and the mean strength of what they sent."""
    sent = [s for c in clients if isinstance(c.poison, Probing) for s in c.poison.sent]
    verdicts = {v: sum(1 for s in sent if s[2] == v)
                for v in ("accepted", "held_back", "rejected")}
    return {"attacks_sent": len(sent), **{f"attacks_{v}": n for v, n in verdicts.items()},
            "attack_in": round(sum(s[1] for s in sent if s[2] == "accepted"), 4),
            "strength_mean": round(float(np.mean([s[1] for s in sent])), 4) if sent else None}


def plain_sent(fed: Federation, run: Any) -> dict[str, Any]:
    """The same counts for the plain attack (every update from the first attack round on is
    a full attack; it has no held-back verdict to read, but the rule records one)."""
    bad = {i for i, c in enumerate(fed.clients) if c.malicious}
    counts = {"accepted": 0, "held_back": 0, "rejected": 0}
    for r in run.rounds:
        if not fed.config.attacks_in(r.round):
            continue
        accepted = {r.submitted[j] for j in r.decision.accepted}
        held = {r.submitted[j] for j, why in r.decision.reasons.items() if why == "held_back"}
        for i in set(r.submitted) & bad:
            counts["accepted" if i in accepted else "held_back" if i in held
                   else "rejected"] += 1
    return {"attacks_sent": sum(counts.values()),
            **{f"attacks_{v}": n for v, n in counts.items()},
            "attack_in": float(counts["accepted"]), "strength_mean": 1.0}


def measure(seeds: list[int], attacks: list[str], rules: list[bool], variants: list[str],
            rounds: int) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        base = clean_fedavg(seed, rounds, SimulationConfig().device_spread)
        print(f"seed {seed} clean fedavg accuracy {base:.4f}", flush=True)
        for name in attacks:
            for held_back in rules:
                for variant in variants:
                    fed = federation(SimulationConfig(seed=seed, rounds=rounds,
                                                      **attack_settings(name)))
                    strategy = replace(aggregator_strategy(fed), held_back=held_back)
                    factors = parse_variant(variant)
                    clients = list(fed.clients) if factors is None \
                        else probing_clients(fed, *factors)
                    run = run_offline(fed, clients, strategy=strategy)
                    sent = plain_sent(fed, run) if factors is None \
                        else sent_by_attackers(clients)
                    found = detection(fed, run)
                    row = {"seed": seed, "attack": name, "held_back": held_back,
                           "attacker": variant, "accuracy": run.test_accuracy, "clean": base,
                           "ratio": run.test_accuracy / base, "asr": attack_rate(fed, run),
                           "malicious_reward": found["malicious_reward"],
                           "benign_blacklisted": found["benign_blacklisted"],
                           "malicious_blacklisted": found["malicious_blacklisted"],
                           "honest_reasons": honest_reasons(fed, run), **sent}
                    rows.append(row)
                    asr = "" if row["asr"] is None else f" ASR {row['asr']:.3f}"
                    print(f"seed {seed} {name} held_back={held_back} {variant:>8}: accuracy "
                          f"{row['accuracy']:.4f}{asr} attack in {row['attack_in']:.2f} "
                          f"({row['attacks_accepted']}/{row['attacks_held_back']}/"
                          f"{row['attacks_rejected']} of {row['attacks_sent']}) banned "
                          f"{row['benign_blacklisted']}/{row['malicious_blacklisted']}",
                          flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| attack | held_back | attacker | accuracy × clean FedAvg (median, range) | "
             "attack success (median) | attack in (total) | accepted / held back / rejected "
             "| attackers' rewards (median) | banned honest / attackers |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    keys = dict.fromkeys((r["attack"], r["held_back"], r["attacker"]) for r in rows)
    for attack, held_back, variant in keys:
        got = [r for r in rows if (r["attack"], r["held_back"], r["attacker"])
               == (attack, held_back, variant)]
        ratio = [r["ratio"] for r in got]
        asr = [r["asr"] for r in got if r["asr"] is not None]
        lines.append(
            f"| {attack} | {held_back} | {variant} | {np.median(ratio):.3f} "
            f"({min(ratio):.3f}-{max(ratio):.3f}) | "
            f"{f'{np.median(asr):.3f}' if asr else '–'} | "
            f"{sum(r['attack_in'] for r in got):.1f} | "
            f"{sum(r['attacks_accepted'] for r in got)} / "
            f"{sum(r['attacks_held_back'] for r in got)} / "
            f"{sum(r['attacks_rejected'] for r in got)} | "
            f"{100 * np.median([r['malicious_reward'] for r in got]):.1f} % | "
            f"{sum(r['benign_blacklisted'] for r in got)} / "
            f"{sum(r['malicious_blacklisted'] for r in got)} |")
    return "\n".join(lines)


def best_response(rows: list[dict[str, Any]]) -> dict[tuple[str, bool], str]:
    """R51's choice of the probing attacker, per attack and rule (plain rows aside): for an
    attack with an attack success (the backdoor), the highest median success, then the
    lowest median accuracy ratio; for the others, the lowest median accuracy ratio; ties
    then by the larger total attack that got in."""
    chosen = {}
    for key in dict.fromkeys((r["attack"], r["held_back"]) for r in rows):
        ranked = []
        for variant in dict.fromkeys(r["attacker"] for r in rows if r["attacker"] != "plain"):
            got = [r for r in rows if (r["attack"], r["held_back"]) == key
                   and r["attacker"] == variant]
            if not got:
                continue
            ratio = float(np.median([r["ratio"] for r in got]))
            asr = [r["asr"] for r in got if r["asr"] is not None]
            attack_in = sum(r["attack_in"] for r in got)
            ranked.append(((-float(np.median(asr)),) if asr else ()) + (ratio, -attack_in)
                          + (variant,))
        if ranked:
            chosen[key] = min(ranked)[-1]
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)),
                        help="comma-separated seeds (default: the evaluation seeds)")
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help="comma-separated attacks, as the held-out table names them "
                             "(default: late sign flips and late centre triggers on 20 %% of "
                             "examples, from round 41 of 60)")
    parser.add_argument("--held-back", default="true,false",
                        help="FairFL's held_back to run: true (rule R50), false (the rule "
                             "before) or both, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="the attackers: plain (the attack as the held-out table runs "
                             "it) or UP/DOWN, a probing attacker whose attack strength is "
                             "multiplied by UP when accepted and by DOWN when turned away")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/probing.json"))
    parser.add_argument("--choose", type=Path, nargs="+", default=None, metavar="JSON",
                        help="run nothing: print R51's best-response attacker per attack and "
                             "rule from these files' rows (the tuning runs)")
    args = parser.parse_args(argv)
    if args.choose:
        rows = [r for path in args.choose for r in json.loads(path.read_text())["rows"]]
        for (attack, held_back), variant in best_response(rows).items():
            print(f"{attack} held_back={str(held_back).lower()}: {variant}")
        return
    attacks = args.attacks.split(",")
    variants = args.variants.split(",")
    rules = [value == "true" for value in args.held_back.split(",")]
    if not set(args.held_back.split(",")) <= {"true", "false"}:
        parser.error("--held-back takes true, false or true,false")
    try:
        for name in attacks:
            config = SimulationConfig.build(rounds=args.rounds, **attack_settings(name))
            if name.startswith("none") or config.attack == "none":
                raise ConfigError("a probing attacker needs an attack")
        for variant in variants:
            parse_variant(variant)
    except ConfigError as err:
        parser.error(str(err))
    about = machine()
    rows = measure([int(s) for s in args.seeds.split(",")], attacks, rules, variants,
                   args.rounds)
    settings = {key: str(value) if isinstance(value, Path) else value
                for key, value in vars(args).items()}
    publish({"settings": settings, "machine": about, "rows": rows}, args.json, markdown(rows))


if __name__ == "__main__":
    main()
