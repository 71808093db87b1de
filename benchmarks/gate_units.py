"""Does FairFL's gate depend on the units of its validation score? (issue 11, item 5)

The gate reads one score per validation example and measures its slack in standard errors
of the paired difference (:mod:`fl_agent.aggregation.fairfl`, step 5), so the verdicts
should not change when the score does. Two measurements, offline
(:mod:`fl_agent.simulation.offline`, the held-out setting: digits, MLP, 20 clients,
Dirichlet α = 0.5, 30 % malicious, 20 rounds, blacklisting as on chain):

* **Same rounds.** A run gated on minus the loss; in every round, FairFL also decides the
  same updates (same global model, same provisional weights) with the gate reading the
  expected accuracy and the soft macro-F1 (:mod:`fl_agent.learning.gate_scores`), and, as a
  control that shows the comparison can fail, hard 0/1 accuracy. Reported: the share of
  verdicts (accept or reject, one per update and round) that differ from the loss gate's.
  Only updates that reach the gate count. What "within noise" means is measured alongside:
  the loss gate reading ten bootstrap resamples of the same validation split (as many
  examples, drawn with replacement), which is how much the verdicts move when only the luck
  of the validation draw changes (median and largest of the ten).
* **End to end** (``--end-to-end``): the whole run gated on each score; final accuracy,
  TPR, FPR, honest participants blacklisted.

    python -m benchmarks.gate_units                  # evaluation seeds 11-15
    python -m benchmarks.gate_units --seeds 11 --attacks label_flip --end-to-end
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import publish
from benchmarks.held_out import EVALUATION_SEEDS, detection
from fl_agent.aggregation.base import prepare_round
from fl_agent.aggregation.rounds import decide_round as _decide_round
from fl_agent.aggregation.rounds import round_weights
from fl_agent.learning.gate_scores import GATE_SCORES
from fl_agent.learning.training import predict, validation_scores
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import federation, run_offline

ATTACKS = ("none", "label_flip", "sign_flip", "targeted_flip", "alie")
HARD = "hard accuracy (control)"
RESAMPLES = 10


def same_rounds(config: SimulationConfig, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Verdicts of the other scores on the rounds of a loss-gated run of ``config``, and of
    the loss gate on ``resamples`` bootstrap resamples of the validation split (the noise).
    Only updates that reach the gate count (not those screened out before it, on which
    every score agrees by construction)."""
    fed = federation(config)
    X_val = fed.data.standardize(fed.splits.validation.X)
    y_val = np.asarray(fed.splits.validation.y, dtype=np.int64)
    gates = {kind: (lambda v, k=kind: validation_scores(fed.spec, v, X_val, y_val, k))
             for kind in GATE_SCORES}
    gates[HARD] = lambda v: (predict(fed.spec, v, X_val) == y_val).astype(np.float64)
    draws = np.random.default_rng([config.seed, 7]).integers(0, y_val.size,
                                                              (resamples, y_val.size))
    noise = [lambda v, i=i: validation_scores(fed.spec, v, X_val[i], y_val[i]) for i in draws]
    differ = dict.fromkeys(gates, 0)
    noisy = [0] * resamples
    verdicts = 0

    def decide(strategy, global_params, updates, claims, **options):  # noqa: ANN001, ANN003
        nonlocal verdicts
        decision = _decide_round(strategy, global_params, updates, claims, **options)
        rnd = prepare_round(global_params, updates, claims)
        provisional, _ = round_weights(rnd.global_params, rnd.updates, rnd.num_samples,
                                       rnd.valid)
        loss = set(decision.accepted)
        gated = [i for i in range(len(updates))
                 if decision.reasons.get(i) in (None, "validation", "held_back")]
        verdicts += len(gated)

        def changed(gate):  # noqa: ANN001, ANN202
            got = set(strategy.aggregate(global_params, updates, provisional,
                                         evaluate=gate).accepted)
            return len(got ^ loss)

        for kind, gate in gates.items():
            differ[kind] += changed(gate)
        for k, gate in enumerate(noise):
            noisy[k] += changed(gate)
        return decision

    run = run_offline(fed, decide=decide)
    assert differ["loss"] == 0, "the replayed loss gate must repeat the run's verdicts"
    return {"seed": config.seed, "attack": config.attack, "verdicts": verdicts,
            "differ": {k: v for k, v in differ.items() if k != "loss"}, "noise": noisy,
            "accuracy": run.test_accuracy}


def end_to_end(seed: int, attack: str, kind: str) -> dict[str, Any]:
    fed = federation(SimulationConfig(seed=seed, **attack_settings(attack)))
    run = run_offline(fed, gate_score=kind)
    return {"seed": seed, "attack": attack, "gate": kind, "accuracy": run.test_accuracy,
            **detection(fed, run)}


def markdown(rows: list[dict[str, Any]], ends: list[dict[str, Any]]) -> str:
    kinds = list(rows[0]["differ"]) if rows else []
    lines = ["| attack | verdicts at the gate | " + " | ".join(f"differ: {k}" for k in kinds)
             + " | differ: loss on a resampled split (noise; median, largest of "
             f"{len(rows[0]['noise']) if rows else 0}) |",
             "| --- | --- | " + " | ".join("---" for _ in kinds) + " | --- |"]
    for attack in dict.fromkeys(r["attack"] for r in rows):
        got = [r for r in rows if r["attack"] == attack]
        n = sum(r["verdicts"] for r in got)
        cells = [f"{sum(r['differ'][k] for r in got)} ({sum(r['differ'][k] for r in got) / n:.1%})"
                 for k in kinds]
        noise = np.sum([r["noise"] for r in got], axis=0)
        lines.append(f"| {attack} | {n} | " + " | ".join(cells)
                     + f" | {np.median(noise):.0f} ({np.median(noise) / n:.1%}), "
                     f"{noise.max()} ({noise.max() / n:.1%}) |")
    if ends:
        lines += ["", "| attack | gate | accuracy (mean) | TPR | FPR | honest blacklisted |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for attack in dict.fromkeys(r["attack"] for r in ends):
            for kind in dict.fromkeys(r["gate"] for r in ends):
                got = [r for r in ends if r["attack"] == attack and r["gate"] == kind]
                tprs = [r["tpr"] for r in got if r["tpr"] is not None]
                lines.append(
                    f"| {attack} | {kind} | {np.mean([r['accuracy'] for r in got]):.4f} | "
                    + (f"{np.mean(tprs):.3f}" if tprs else "–")
                    + f" | {np.mean([r['fpr'] for r in got]):.3f} | "
                    f"{sum(r['benign_blacklisted'] for r in got)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(map(str, EVALUATION_SEEDS)))
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--end-to-end", action="store_true",
                        help="also run each attack gated on each score, end to end")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/gate_units.json"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    attacks = args.attacks.split(",")
    rows, ends = [], []
    for seed in seeds:
        for attack in attacks:
            row = same_rounds(SimulationConfig(seed=seed, **attack_settings(attack)))
            rows.append(row)
            print(f"seed {seed} {attack:14} verdicts {row['verdicts']} differ "
                  + ", ".join(f"{k} {v}" for k, v in row["differ"].items())
                  + f"; noise {row['noise']}", flush=True)
            if args.end_to_end:
                for kind in GATE_SCORES:
                    end = end_to_end(seed, attack, kind)
                    ends.append(end)
                    print(f"  gated on {kind:9} accuracy {end['accuracy']:.4f} FPR "
                          f"{end['fpr']:.3f} honest blacklisted {end['benign_blacklisted']}",
                          flush=True)
    publish({"same_rounds": rows, "end_to_end": ends}, args.json, markdown(rows, ends))


if __name__ == "__main__":
    main()
