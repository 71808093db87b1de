"""The held-out table: FairFL on the evaluation seeds, every attack and variant, with the
registry's blacklisting, against clean FedAvg and the targets of ``fl-agent bench``.

Offline (:mod:`fl_agent.simulation.offline`: the simulation's data, shards, device speeds,
workload balancing, training, attacks and round decision, without the chain, which the
agents' test ``test_the_offline_harness_replays_the_chain_run`` shows gives the same
rounds), digits, MLP, 20 clients, Dirichlet α = 0.5 (``--partition iid``: equal shards),
30 % malicious, 20 rounds. Every
attack of :data:`fl_agent.simulation.BENCH_ATTACKS` (the ten attacks and the named
variants: the backdoor's trigger in the centre, out of range, on 10 or 20 % of the
examples; attackers that attack every other round), plus clean FedAvg per seed.

Per run: final test accuracy and its ratio to clean FedAvg; TPR (rejected attack
submissions over attack submissions; for ``-every-2`` only the attack rounds count) and
FPR (rejected honest submissions over honest submissions); the attackers' share of all
rewards; honest and malicious participants blacklisted; the backdoor's attack success
rate and the targeted flip's success (share of class 1 put in 7). ``--watermark``: a
watermark task, every honest client embedding its own key with the task's defaults, and
the honest keys that verify on the final model.

The JSON holds the command's ``settings``, the ``machine`` with the commit it ran at
(:func:`benchmarks.machine`) and the ``rows``; files made before 2026-12-05's second
session are the bare list of rows (their docs name the commit).

The thresholds of FairFL were chosen on seeds 1-5 and on crafted rounds; the claims rule
on seeds 101-103. The evaluation seeds 11-15 were used for none of them.

    python -m benchmarks.held_out                          # seeds 11-15, every attack
    python -m benchmarks.held_out --seeds 11 --attacks label_flip-every-2
    python -m benchmarks.held_out --seeds 11 --rounds 60 --attacks sign_flip-from-41
    python -m benchmarks.held_out --seeds 1,2,3,4,5 --attacks none,label_flip,sign_flip \
        --tolerance 3 --json reports/bench/tuning.json       # how the gate was tuned
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, publish
from benchmarks.claims import RULES
from benchmarks.rule_alone import attack_rate
from benchmarks.scale_floor import with_scale_floor
from fl_agent.aggregation import get_strategy
from fl_agent.aggregation.clustering import chance_z_off
from fl_agent.aggregation.fairfl import FairFL
from fl_agent.errors import ConfigError
from fl_agent.learning.models import param_count
from fl_agent.simulation import BENCH_ATTACKS, DEFAULT_DEVICE_SPREAD
from fl_agent.simulation.bench import (
    ACCURACY_RATIO,
    CLEAN_GAP_MAX,
    FPR_MAX,
    MALICIOUS_REWARD_MAX,
    TPR_MIN,
)
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import (
    Decide,
    Federation,
    OfflineRun,
    aggregator_strategy,
    decide_as_on_chain,
    federation,
    run_offline,
)

EVALUATION_SEEDS = (11, 12, 13, 14, 15)


def smallest_scale(fed: Any) -> float:
    """The smallest standardisation scale of a feature that varies in the training split
    (a constant feature's scale is 1 whatever the floor): with ``--scale-floor f``, the
    floor itself on data with features that rarely move (rule R63)."""
    varies = np.asarray(fed.splits.train.X, dtype=np.float64).std(axis=0) > 0
    return float(np.asarray(fed.data.scale)[varies].min())


def clean_fedavg(seed: int, rounds: int, device_spread: float,
                 partition: str = "dirichlet", scale_floor: float = 0.0) -> float:
    """Clean FedAvg's final accuracy: no attackers, plain FedAvg, as ``fl-agent bench``."""
    fed = with_scale_floor(federation(SimulationConfig(
        attack="none", malicious=0.0, aggregator="fedavg", seed=seed, rounds=rounds,
        device_spread=device_spread, partition=partition)), scale_floor)
    return run_offline(fed, strategy=get_strategy("fedavg")).test_accuracy


def detection(fed: Federation, run: OfflineRun) -> dict[str, Any]:
    """TPR, FPR, the attackers' reward share and who was blacklisted (how many honest and
    malicious, and each banned client's last submitted round, keyed by its index as a
    string: the registry bans it in the round of its last rejection, so it submits no
    more; the task's last round if the ban came then, and had no effect; None if it never
    submitted)."""
    bad = {i for i, c in enumerate(fed.clients) if c.malicious}
    caught = attacks = flagged = honest = 0
    for r in run.rounds:
        accepted = {r.submitted[j] for j in r.decision.accepted}
        attacking = fed.config.attacks_in(r.round)
        for i in r.submitted:
            if i in bad:
                if attacking:
                    attacks += 1
                    caught += i not in accepted
            else:
                honest += 1
                flagged += i not in accepted
    earned = run.earned()
    total = float(earned.sum())
    last = {i: r.round for r in run.rounds for i in r.submitted}  # rounds only grow
    return {"banned_after_round": {str(i): last.get(i) for i in run.blacklisted},
            "tpr": caught / attacks if attacks else None,
            "fpr": flagged / honest if honest else 0.0,
            "malicious_reward": float(earned[sorted(bad)].sum()) / total
            if total and bad else 0.0,
            "benign_blacklisted": len(set(run.blacklisted) - bad),
            "malicious_blacklisted": len(set(run.blacklisted) & bad)}


def banned_among(clients: list[int], banned_after_round: dict[str, int | None]) -> list[int]:
    """Those of ``clients`` (indices) that :func:`detection`'s ``banned_after_round`` names."""
    return [i for i in clients if str(i) in banned_after_round]


def honest_reasons(fed: Federation, run: OfflineRun) -> dict[str, int]:
    """Why honest updates were rejected: a count per reason."""
    reasons: dict[str, int] = {}
    for r in run.rounds:
        for j, i in enumerate(r.submitted):
            if not fed.clients[i].malicious and j in r.decision.reasons:
                reason = r.decision.reasons[j].split(":")[0]
                reasons[reason] = reasons.get(reason, 0) + 1
    return dict(sorted(reasons.items()))


def watermark_plan(hinge: str = "reach", reach: float | None = None,
                   bits: int | None = None) -> Any:
    """A watermark task's privacy plan (FairFL then runs without its NOISE check, as
    :meth:`~fl_agent.learning.task_doc.TaskDocument.build` records): its defaults
    (``"reach"``, with another ``reach`` or signature length ``bits`` if given), or with
    FedIPR's hinge (``"fedipr"``: no reach, margin 0.1), a task's plan before 2026-12-05."""
    from fl_agent.chain.records import TrainingMode
    from fl_agent.privacy.plan import WatermarkPlan, build_plan

    plan = build_plan(TrainingMode.WATERMARK)
    if hinge == "fedipr":
        # the plans of the time: 32 bits (the default until 40 replaced it on 2026-12-05)
        old = WatermarkPlan(bits=32, strength=plan.watermark.strength)
        plan = plan.model_copy(update={"watermark": old})
    elif reach is not None:
        plan = plan.model_copy(update={"watermark": plan.watermark.model_copy(
            update={"reach": reach})})
    if bits is not None:
        plan = plan.model_copy(update={"watermark": plan.watermark.model_copy(
            update={"bits": bits})})
    return plan


class ShareScaledMarks:
    """Rule R43's candidate, tried on the tuning seeds and not adopted: each honest client's
    hook rebuilt at the first step of each round with the reach
    :func:`benchmarks.privacy_watermark.reach_for` gives its sample count, given the mean
    weight the round before accepted (:meth:`on_round` reads it from the offline run's
    decision, as a participant would from the chain)."""

    def __init__(self, fed: Federation, keys: dict[int, Any], mark: Any, lr: float | None,
                 share_cap: float, length_cap: float | None = None) -> None:
        self.fed, self.keys, self.mark, self.lr = fed, keys, mark, lr
        self.share_cap, self.length_cap = share_cap, length_cap
        self.mean: float | None = None

    def hook(self, i: int) -> Any:
        from benchmarks.privacy_watermark import reach_for
        from benchmarks.watermark_cap import marking

        client, mark = self.fed.clients[i], self.mark
        current: list[Any] = [None]

        def hook(step: int, parameters: Any) -> None:
            if step == 0:
                current[0] = marking(self.fed.spec, self.keys[i], mark.strength,
                                     mark.margin, reach_for(mark.reach, len(client.y),
                                                            self.mean, self.share_cap),
                                     self.lr, self.length_cap)
            current[0](step, parameters)

        return hook

    def on_round(self, row: Any) -> None:
        from benchmarks.privacy_watermark import mean_weight

        clients = self.fed.clients
        claims = [clients[i].claimed_samples or len(clients[i].y) for i in row.submitted]
        self.mean = mean_weight(claims, row.decision.accepted)


def honest_marks(fed: Federation, hinge: str = "reach", reach: float | None = None,
                 bits: int | None = None, share_cap: float | None = None,
                 length_cap: float | None = None
                 ) -> tuple[dict[int, Any], list[Any], Callable[[Any], None] | None]:
    """Each honest client's key (``benchmarks.privacy_watermark.bench_key``), every client's
    gradient hook (the task's watermark for the honest, none for attackers, whose marks are
    not what is measured) and, with a ``share_cap`` (:class:`ShareScaledMarks`), the
    callback the run must call after each round. ``length_cap``: rule R55's candidate, not
    adopted (:mod:`benchmarks.watermark_cap`)."""
    from benchmarks.privacy_watermark import bench_key
    from benchmarks.watermark_cap import marking

    mark = watermark_plan(hinge, reach, bits).watermark
    keys = {i: bench_key(fed.config.seed, i, mark.bits, None)
            for i, c in enumerate(fed.clients) if not c.malicious}
    lr = None if mark.reach is None else fed.config.lr  # as the participant agent passes it
    if share_cap is not None:
        scaled = ShareScaledMarks(fed, keys, mark, lr, share_cap, length_cap)
        return keys, [scaled.hook(i) if i in keys else None
                      for i in range(len(fed.clients))], scaled.on_round
    hooks = [marking(fed.spec, keys[i], mark.strength, mark.margin, mark.reach, lr,
                     length_cap)
             if i in keys else None for i in range(len(fed.clients))]
    return keys, hooks, None


def marks_verified(fed: Federation, run: OfflineRun, keys: dict[int, Any]) -> dict[str, Any]:
    """How many honest clients' keys verify on the final model, and which do not."""
    from fl_agent.privacy.watermark import verify

    final = np.asarray(run.rounds[-1].decision.params, dtype=np.float32)
    results = {i: verify(fed.spec, final, key) for i, key in keys.items()}
    return {"verified": sum(r.verified for r in results.values()), "honest": len(keys),
            "not_verified": sorted(i for i, r in results.items() if not r.verified),
            "match_rate_min": round(min(r.match_rate for r in results.values()), 4)}


def measure(seeds: list[int], attacks: list[str], rounds: int,
            device_spread: float = DEFAULT_DEVICE_SPREAD,
            decide: Decide = decide_as_on_chain,
            tolerance: float | None = None, partition: str = "dirichlet",
            noise_check: bool = True, watermark: str | None = None,
            reach: float | None = None, bits: int | None = None,
            share_cap: float | None = None,
            full_tolerance_at: float | None = None,
            min_tolerance: float | None = None,
            copies_once: bool | None = None,
            held_back: bool | None = None,
            length_cap: float | None = None,
            scale_floor: float = 0.0) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        base = clean_fedavg(seed, rounds, device_spread, partition, scale_floor)
        print(f"seed {seed} clean fedavg accuracy {base:.4f}", flush=True)
        for name in attacks:
            config = SimulationConfig(seed=seed, rounds=rounds, device_spread=device_spread,
                                      partition=partition, **attack_settings(name))
            fed = with_scale_floor(federation(config), scale_floor)
            strategy = aggregator_strategy(fed, watermark_plan(watermark) if watermark
                                           else None)
            if tolerance is not None:
                strategy = replace(strategy, tolerance=tolerance)
            if full_tolerance_at is not None:
                strategy = replace(strategy, full_tolerance_at=full_tolerance_at)
            if min_tolerance is not None:
                strategy = replace(strategy, min_tolerance=min_tolerance)
            if copies_once is not None:
                strategy = replace(strategy, copies_once=copies_once)
            if held_back is not None:
                strategy = replace(strategy, held_back=held_back)
            if not noise_check:  # a chance level of 1: what DP and watermark tasks run
                strategy = replace(strategy, chance_z=chance_z_off(param_count(fed.spec)))
            plan = watermark_plan(watermark, reach, bits) if watermark else None
            keys, hooks, after = honest_marks(fed, watermark, reach, bits, share_cap,
                                              length_cap) if watermark else ({}, None, None)
            run = run_offline(fed, decide=decide, strategy=strategy, hooks=hooks,
                              on_round=after)
            row = {"seed": seed, "attack": name, "partition": partition,
                   "smallest_scale": smallest_scale(fed),  # with --scale-floor, R63
                   # a watermark task's document switches the check off (TaskDocument.build)
                   "noise_check": noise_check and not watermark, "watermark": watermark,
                   "reach": plan.watermark.reach if plan else None,
                   "bits": plan.watermark.bits if plan else None,
                   "share_cap": share_cap if plan else None,
                   "length_cap": length_cap if plan else None,
                   # the rule that ran (rows from before 2026-12-06 ran it off)
                   "copies_once": getattr(strategy, "copies_once", None),
                   "held_back": getattr(strategy, "held_back", None),
                   "accuracy": run.test_accuracy,
                   "clean": base, "ratio": run.test_accuracy / base,
                   "asr": attack_rate(fed, run), **detection(fed, run),
                   "honest_reasons": honest_reasons(fed, run)}
            checks = {"accuracy": row["ratio"] >= ACCURACY_RATIO,
                      "tpr": row["tpr"] is None or row["tpr"] >= TPR_MIN,
                      "fpr": row["fpr"] <= FPR_MAX,
                      "blacklist": row["benign_blacklisted"] == 0,
                      "rewards": row["malicious_reward"] <= MALICIOUS_REWARD_MAX}
            if name == "none":
                checks["clean_gap"] = base - run.test_accuracy <= CLEAN_GAP_MAX
            if watermark:
                marks = marks_verified(fed, run, keys)
                row["watermarks"] = {**marks, "not_verified_banned": banned_among(
                    marks["not_verified"], row["banned_after_round"])}
            row["failed"] = [k for k, ok in checks.items() if not ok]
            rows.append(row)
            tpr = "–" if row["tpr"] is None else f"{row['tpr']:.3f}"
            print(f"seed {seed} {name:22} accuracy {row['accuracy']:.4f} "
                  f"({row['ratio']:.3f}) TPR {tpr} FPR {row['fpr']:.3f} "
                  f"attackers {row['malicious_reward']:.1%} blacklisted "
                  f"{row['benign_blacklisted']}/{row['malicious_blacklisted']} "
                  f"{'ok' if not row['failed'] else 'MISSED ' + ','.join(row['failed'])}"
                  + (f" keys {row['watermarks']['verified']}/{row['watermarks']['honest']}"
                     if watermark else ""), flush=True)
    return rows


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{format(low, fmt)}-{format(high, fmt)}"


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    marked = any("watermarks" in r for r in rows)
    lines = ["| attack | × clean FedAvg (median, range) | TPR | FPR | attackers' rewards | "
             "blacklisted honest / malicious (total) | attack success | targets met |"
             + (" honest keys verified (total) |" if marked else ""),
             "| --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if marked else "")]
    for name in dict.fromkeys(r["attack"] for r in rows):
        got = [r for r in rows if r["attack"] == name]
        ratio = [r["ratio"] for r in got]
        tprs = [r["tpr"] for r in got if r["tpr"] is not None]
        asr = [r["asr"] for r in got if r["asr"] is not None]
        met = sum(1 for r in got if not r["failed"])
        missed = sorted({f for r in got for f in r["failed"]})
        lines.append(
            f"| {name} | {np.median(ratio):.3f} ({_span(ratio, '.3f')}) | "
            f"{_span(tprs, '.2f') if tprs else '–'} | {_span([r['fpr'] for r in got], '.3f')} | "
            f"{_span([100 * r['malicious_reward'] for r in got], '.1f')} % | "
            f"{sum(r['benign_blacklisted'] for r in got)} / "
            f"{sum(r['malicious_blacklisted'] for r in got)} | "
            f"{_span(asr, '.2f') if asr else '–'} | {met} of {len(got)}"
            + (f" (missed: {', '.join(missed)})" if missed else "") + " |"
            + (f" {sum(r['watermarks']['verified'] for r in got)} of "
               f"{sum(r['watermarks']['honest'] for r in got)} |" if marked else ""))
    clean = {r["seed"]: r["clean"] for r in rows}
    return "\n".join(lines) + (
        f"\n\nseeds {', '.join(map(str, seeds))}; clean FedAvg "
        + " / ".join(f"{clean[s]:.3f}" for s in seeds))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)),
                        help="comma-separated seeds (default: the evaluation seeds)")
    parser.add_argument("--attacks", default=",".join(BENCH_ATTACKS),
                        help="comma-separated attacks and variants; either may end in "
                             "-from-F: honest until round F, attacking from then on "
                             "(sign_flip-from-41)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--device-spread", type=float, default=DEFAULT_DEVICE_SPREAD,
                        help="simulated device speeds (1: equal devices, as when FairFL's "
                             "thresholds were tuned)")
    parser.add_argument("--rule", choices=sorted(RULES), default="on chain",
                        help="the round decision: the aggregator's (default) or the one "
                             "before issue 11 (claims as weights)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="FairFL's gate tolerance in standard errors (default: FairFL's "
                             "own; set it only to tune, on tuning seeds)")
    parser.add_argument("--full-tolerance-at", type=float, default=None,
                        help="FairFL's full_tolerance_at (default: FairFL's own; 0: every "
                             "update gets the full tolerance, whatever its similarity to the "
                             "round's direction; rule R46 measured the trade on tuning seeds)")
    parser.add_argument("--min-tolerance", type=float, default=None,
                        help="FairFL's min_tolerance: the least slack, in standard errors, "
                             "that the similarity scaling leaves an update (default: the "
                             "task's own; rule R48's candidates, tuning seeds)")
    parser.add_argument("--copies-once", choices=("true", "false"), default=None,
                        help="FairFL's copies_once: a group of exact copies is one row of "
                             "the round's median direction and one value of its similarity "
                             "medians (default: the task's own, true since rule R49; false: "
                             "every copy votes, the rule before, which the rows published "
                             "before 2026-12-06 ran)")
    parser.add_argument("--held-back", choices=("true", "false"), default=None,
                        help="FairFL's held_back: an update the gate turns away only because "
                             "the similarity scaling took its slack, and whose harm is within "
                             "the full tolerance, is held back, which the registry does not "
                             "count towards a ban (default: the task's own; rule R50)")
    parser.add_argument("--partition", choices=("dirichlet", "iid"), default="dirichlet",
                        help="the clients' shards: Dirichlet α = 0.5 (the default, unequal "
                             "sizes and label mixes) or iid (equal sizes, every label alike)")
    parser.add_argument("--no-noise-check", dest="noise_check", action="store_false",
                        help="FairFL without its NOISE check (step 2), as a task with "
                             "example-level DP or watermarks runs it: what the check buys")
    parser.add_argument("--watermark", nargs="?", const="reach", choices=("reach", "fedipr"),
                        default=None,
                        help="a watermark task: every honest client embeds its own key (the "
                             "task defaults, or 'fedipr': FedIPR's hinge, the default before "
                             "2026-12-05), FairFL runs as such a task's aggregator does, and "
                             "each row counts the honest keys verified on the final model")
    parser.add_argument("--reach", type=float, default=None,
                        help="with --watermark reach: another reach than the task default "
                             "(how the default was checked under attack; tuning seeds only)")
    parser.add_argument("--bits", type=int, default=None,
                        help="with --watermark: another signature length than the task "
                             "default (tuning seeds only)")
    parser.add_argument("--share-cap", type=float, default=None,
                        help="with --watermark reach: rule R43's candidate, not adopted: a "
                             "participant below the round's mean weight pushes up to this "
                             "many times the reach (1: the same reach for all, as the task "
                             "does; benchmarks.privacy_watermark.reach_for; tuning seeds)")
    parser.add_argument("--length-cap", type=float, default=None,
                        help="with --watermark reach: rule R55's candidate, not adopted: the "
                             "mark's moves in a round at most this many times the rest of "
                             "the update's (benchmarks.watermark_cap; tuning seeds)")
    parser.add_argument("--scale-floor", type=float, default=0.0,
                        help="no feature's standardisation scale below this share of the "
                             "median scale, for every client and the clean baseline alike "
                             "(rule R63; 0, the default: the training split's scales)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/held_out.json"))
    args = parser.parse_args(argv)
    if args.bits is not None and (args.watermark is None or args.bits < 1):
        parser.error("--bits needs --watermark and a positive number")
    if args.reach is not None and (args.watermark != "reach" or args.reach <= 0):
        parser.error("--reach needs --watermark reach and a positive number")
    if not 0 <= args.scale_floor <= 1:
        parser.error("--scale-floor needs a share from 0 to 1")
    if args.full_tolerance_at is not None and args.full_tolerance_at < 0:
        parser.error("--full-tolerance-at needs a number of at least 0")
    ceiling = FairFL.tolerance if args.tolerance is None else args.tolerance
    if args.min_tolerance is not None and not 0 <= args.min_tolerance <= ceiling:
        parser.error(f"--min-tolerance needs a number from 0 to the gate's tolerance ({ceiling})")
    if args.share_cap is not None and (args.watermark != "reach" or args.share_cap < 1):
        parser.error("--share-cap needs --watermark reach and a number of at least 1")
    if args.length_cap is not None and (args.watermark != "reach" or not
                                        0 < args.length_cap < float("inf")):
        parser.error("--length-cap needs --watermark reach and a positive number")
    attacks = args.attacks.split(",")
    for name in attacks:
        try:
            SimulationConfig.build(rounds=args.rounds, **attack_settings(name))  # an unknown
        except ConfigError as err:  # name, or attackers who never attack, fail before any run
            parser.error(str(err))
    about = machine()  # the commit and the machine, taken before the runs
    rows = measure([int(s) for s in args.seeds.split(",")], attacks, args.rounds,
                   args.device_spread, RULES[args.rule], args.tolerance, args.partition,
                   args.noise_check, args.watermark, args.reach, args.bits, args.share_cap,
                   args.full_tolerance_at, args.min_tolerance,
                   None if args.copies_once is None else args.copies_once == "true",
                   None if args.held_back is None else args.held_back == "true",
                   length_cap=args.length_cap, scale_floor=args.scale_floor)
    settings = {key: str(value) if isinstance(value, Path) else value
                for key, value in vars(args).items()}
    publish({"settings": settings, "machine": about, "rows": rows}, args.json, markdown(rows))


if __name__ == "__main__":
    main()
