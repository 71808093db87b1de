"""Rule R50's probing attacker: what a sender that knows the rule gains from held-back
updates being free (rules R51 and R51a, [docs/held-out.md](../docs/held-out.md#r51)).

Under FairFL's ``held_back`` (rule R50), an update the gate turns away only because the
similarity scaling cut its slack, with a harm within the full tolerance, is held back: not
aggregated, not paid, and not counted towards a ban. An attacker can then probe: read its
verdict on chain, strengthen its attack when accepted and change it when turned away, at no
cost when held back. :class:`~fl_agent.simulation.attackers.Probing` is that attacker
(R51a's; R51's, which blended its honest update with the attack and was capped at the plain
attack, is at commit 0f8b89b): it also sends its honest update whenever one more counted
rejection would ban it, so its own attacks never do.

Each run: digits, MLP, 20 clients, 30 % attackers, Dirichlet α = 0.5, 60 rounds, offline
(:mod:`fl_agent.simulation.offline`), FairFL as a new task records it, with ``held_back``
on (R50) or off (the rule before). ``--variants`` lists the attackers: ``plain`` (the attack
as the held-out table runs it) and ``UP/DOWN/HELD`` (probing: its strength times UP when
accepted, DOWN when rejected, HELD when held back). Per run: final accuracy, its loss
against the same seed and rule without attackers, the attack's success (the targeted flip:
the share of test 1s put in 7), the attackers' share of the rewards, who was banned, and
what the attackers sent from their first attack round on: attack updates accepted, held
back and rejected, their strengths, and the attack that got in (the sum of the accepted
attack updates' strengths, in plain attack updates).

    python -m benchmarks.probing --seeds 1,2,3,4,5 \\
        --json reports/bench/probing_tuning.json           # the attacker's best response
    python -m benchmarks.probing --choose reports/bench/probing_tuning.json
    python -m benchmarks.probing --seeds 11,12,13,14,15 --variants plain,1.25/0.8/1
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

#: Late attacks of a 60-round task, where R50 holds updates back: sign flips, and the
#: targeted flip (class 1 relabelled as 7), whose success is measured.
ATTACKS = ("sign_flip-from-41", "targeted_flip-from-41")
#: The probing attackers tried for the attacker's best response (UP/DOWN/HELD).
VARIANTS = ("plain", "1.25/0.8/1", "1.25/0.8/0.8", "1.5/0.5/1", "1.5/0.5/0.5")


def parse_variant(name: str) -> tuple[float, float, float] | None:
    """``plain`` -> None; ``UP/DOWN/HELD`` -> (up, down, held), checked as :class:`Probing`
    does."""
    if name == "plain":
        return None
    try:
        up, down, held = (float(x) for x in name.split("/"))
    except ValueError:
        raise ConfigError(f"attacker {name!r}: use plain or UP/DOWN/HELD, as 1.25/0.8/1") \
            from None
    if not (up >= 1.0 and 0.0 < down < 1.0 and 0.0 < held <= 1.0):
        raise ConfigError(f"attacker {name!r}: UP must be >= 1, DOWN in (0, 1) and HELD in "
                          f"(0, 1]")
    return up, down, held


def probing_clients(fed: Federation, up: float, down: float, held: float) -> list[Client]:
    """The federation's clients with every attacker probing from its first attack round."""
    first = fed.config.attack_from
    return [replace(c, poison=Probing(c.poison, first, up=up, down=down, held=held))
            if c.malicious and c.poison is not None else c for c in fed.clients]


def _counts(sends: list[list[Any]]) -> dict[str, Any]:
    """Attack updates by verdict, the attack that got in, and every send."""
    return {"attacks_sent": len(sends),
            **{f"attacks_{v}": sum(1 for s in sends if s[2] == v)
               for v in ("accepted", "held_back", "rejected")},
            "attack_in": round(sum(s[1] for s in sends if s[2] == "accepted"), 4),
            "sends": sends}


def sent_by_attackers(clients: list[Client]) -> dict[str, Any]:
    """What the probing attackers sent: :attr:`Probing.sent`'s [round, strength, verdict],
    each with the sender's index after it."""
    return _counts([[*s, i] for i, c in enumerate(clients) if isinstance(c.poison, Probing)
                    for s in c.poison.sent])


def plain_sent(fed: Federation, run: Any) -> dict[str, Any]:
    """The same for the plain attack: every attacker's update in an attack round is a full
    attack (strength 1); the verdict is the one the rule recorded."""
    bad = {i for i, c in enumerate(fed.clients) if c.malicious}
    sends = []
    for r in run.rounds:
        if not fed.config.attacks_in(r.round):
            continue
        accepted = {r.submitted[j] for j in r.decision.accepted}
        held = {r.submitted[j] for j, why in r.decision.reasons.items() if why == "held_back"}
        sends += [[r.round, 1.0, "accepted" if i in accepted else "held_back" if i in held
                   else "rejected", i] for i in sorted(set(r.submitted) & bad)]
    return _counts(sends)


def measure(seeds: list[int], attacks: list[str], rules: list[bool], variants: list[str],
            rounds: int) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        base = clean_fedavg(seed, rounds, SimulationConfig().device_spread)
        print(f"seed {seed} clean fedavg accuracy {base:.4f}", flush=True)
        calm = {}  # the same seed and rule without attackers
        for held_back in rules:
            fed = federation(SimulationConfig(seed=seed, rounds=rounds, attack="none"))
            calm[held_back] = run_offline(fed, strategy=replace(
                aggregator_strategy(fed), held_back=held_back)).test_accuracy
            print(f"seed {seed} held_back={held_back} without attackers: accuracy "
                  f"{calm[held_back]:.4f}", flush=True)
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
                           "ratio": run.test_accuracy / base,
                           "without_attackers": calm[held_back],
                           "loss": calm[held_back] - run.test_accuracy,
                           "test_size": len(fed.splits.test.y), "asr": attack_rate(fed, run),
                           "malicious_reward": found["malicious_reward"],
                           "benign_blacklisted": found["benign_blacklisted"],
                           "malicious_blacklisted": found["malicious_blacklisted"],
                           "honest_reasons": honest_reasons(fed, run),
                           # rounds that accepted nothing keep the model, which the hooks
                           # count as one round with the next (plain rows count real rounds)
                           "stalled_rounds": [r.round for r in run.rounds
                                              if not r.decision.accepted],
                           **sent}
                    rows.append(row)
                    asr = "" if row["asr"] is None else f" success {row['asr']:.3f}"
                    print(f"seed {seed} {name} held_back={held_back} {variant:>12}: accuracy "
                          f"{row['accuracy']:.4f} (loss {row['loss']:+.4f}){asr} attack in "
                          f"{row['attack_in']:.2f} ({row['attacks_accepted']}/"
                          f"{row['attacks_held_back']}/{row['attacks_rejected']} of "
                          f"{row['attacks_sent']}) rewards {row['malicious_reward']:.1%} "
                          f"banned {row['benign_blacklisted']}/{row['malicious_blacklisted']}",
                          flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| attack | held_back | attacker | accuracy loss without → with attackers "
             "(median, range) | attack success (median) | attack in (total) | accepted / "
             "held back / rejected | attackers' rewards (median) | banned honest / attackers |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    keys = dict.fromkeys((r["attack"], r["held_back"], r["attacker"]) for r in rows)
    for attack, held_back, variant in keys:
        got = [r for r in rows if (r["attack"], r["held_back"], r["attacker"])
               == (attack, held_back, variant)]
        loss = [r["loss"] for r in got]
        asr = [r["asr"] for r in got if r["asr"] is not None]
        lines.append(
            f"| {attack} | {held_back} | {variant} | {np.median(loss):+.4f} "
            f"({min(loss):+.4f} to {max(loss):+.4f}) | "
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
    """R51a's choice of the probing attacker, per attack and rule (plain rows aside): for an
    attack with a success measure (the targeted flip), the highest median success (to 0.01),
    then the largest median accuracy loss (in test examples); for the others, the largest
    median loss; ties then by the larger total attack that got in, last by the name that
    sorts first. Every variant of an attack must have a success or none."""
    chosen = {}
    for key in dict.fromkeys((r["attack"], r["held_back"]) for r in rows):
        ranked = []
        for variant in dict.fromkeys(r["attacker"] for r in rows if r["attacker"] != "plain"):
            got = [r for r in rows if (r["attack"], r["held_back"]) == key
                   and r["attacker"] == variant]
            if not got:
                continue
            examples = round(float(np.median([r["loss"] * r["test_size"] for r in got])))
            asr = [r["asr"] for r in got if r["asr"] is not None]
            if asr and len(asr) != len(got):
                raise ConfigError(f"{key}: some rows of {variant} have an attack success and "
                                  f"some not")
            attack_in = sum(r["attack_in"] for r in got)
            ranked.append(((-round(float(np.median(asr)), 2),) if asr else ())
                          + (-examples, -attack_in, variant))
        if ranked:
            chosen[key] = min(ranked)[-1]
    return chosen


#: R51a compares the five evaluation seeds.
SEEDS_COMPARED = 5


def material_gain(rows: list[dict[str, Any]], chosen: dict[tuple[str, bool], str]
                  ) -> dict[str, dict[str, Any]]:
    """R51a's verdict per attack: R50's row (held_back true) against B's (false), each
    against its own best-response attacker (``chosen``), on R51a's four criteria."""
    out = {}
    for attack in dict.fromkeys(r["attack"] for r in rows):
        side = {}
        for held_back in (True, False):
            if (attack, held_back) not in chosen:
                raise ConfigError(f"no best response for {attack} with held_back "
                                  f"{held_back}: give the tuning rows of that attack and rule")
            got = sorted((r for r in rows if r["attack"] == attack
                          and r["held_back"] == held_back
                          and r["attacker"] == chosen[(attack, held_back)]),
                         key=lambda r: r["seed"])
            if not got:
                raise ConfigError(f"{attack}, held_back {held_back}: the evaluation has no "
                                  f"row of the best response {chosen[(attack, held_back)]}")
            asr = [r["asr"] for r in got if r["asr"] is not None]
            side[held_back] = {
                "attacker": chosen[(attack, held_back)], "seeds": [r["seed"] for r in got],
                "loss_examples": [round(r["loss"] * r["test_size"]) for r in got],
                "loss_median": float(np.median([r["loss"] for r in got])),
                "test_size": got[0]["test_size"],
                "asr_median": float(np.median(asr)) if asr else None,
                "attack_in": round(sum(r["attack_in"] for r in got), 4),
                "reward_median": float(np.median([r["malicious_reward"] for r in got]))}
        r50, b = side[True], side[False]
        if r50["seeds"] != b["seeds"]:
            raise ConfigError(f"{attack}: the rules ran on different seeds")
        if len(set(r50["seeds"])) != len(r50["seeds"]) or len(r50["seeds"]) != SEEDS_COMPARED:
            raise ConfigError(f"{attack}: R51a compares {SEEDS_COMPARED} distinct seeds, got "
                              f"{r50['seeds']}")
        gains = []
        # losses in whole test examples; shares to 1e-9, so that a difference of exactly
        # the threshold is not one by a rounding error
        if np.median(r50["loss_examples"]) - np.median(b["loss_examples"]) > 2 or all(
                x > y for x, y in zip(r50["loss_examples"], b["loss_examples"], strict=True)):
            gains.append("loss")
        if attack.startswith("targeted_flip") and r50["asr_median"] is not None \
                and b["asr_median"] is not None \
                and round(r50["asr_median"] - b["asr_median"], 9) > 0.05:
            gains.append("success")
        if r50["attack_in"] > 1.25 * b["attack_in"]:
            gains.append("attack in")
        if round(r50["reward_median"] - b["reward_median"], 9) > 0.02:
            gains.append("rewards")
        out[attack] = {"r50": r50, "b": b, "material_gain": gains}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)),
                        help="comma-separated seeds (default: the evaluation seeds)")
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help="comma-separated attacks, as the held-out table names them "
                             "(default: late sign flips and late targeted flips, from round "
                             "41 of 60)")
    parser.add_argument("--held-back", default="true,false",
                        help="FairFL's held_back to run: true (rule R50), false (the rule "
                             "before) or both, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="the attackers: plain (the attack as the held-out table runs "
                             "it) or UP/DOWN/HELD, a probing attacker whose attack strength "
                             "is multiplied by UP when accepted, DOWN when rejected and HELD "
                             "when held back")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/probing.json"))
    parser.add_argument("--choose", type=Path, nargs="+", default=None, metavar="JSON",
                        help="run nothing: print R51a's best-response attacker per attack and "
                             "rule from these files' rows (the tuning runs)")
    parser.add_argument("--verdict", type=Path, nargs=2, default=None,
                        metavar=("TUNING", "EVALUATION"),
                        help="run nothing: R51a's verdict, R50 against B on the evaluation "
                             "rows, each against its best response chosen on the tuning rows "
                             "(each a JSON file or several, comma-separated)")
    args = parser.parse_args(argv)
    if args.verdict:
        tuning, evaluation = ([r for path in str(paths).split(",")
                               for r in json.loads(Path(path).read_text())["rows"]]
                              for paths in args.verdict)
        print(json.dumps(material_gain(evaluation, best_response(tuning)), indent=2))
        return
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
