"""Why FairFL's gate turns the same honest clients away round after round: each screened
update's verdict, slack and leave-one-out effect, measured on the validation examples the
gate reads *and* on test examples it never sees (``python -m benchmarks.gate_trace``).

The gate asks, on one fixed validation split, whether the aggregate with an update is worse
than without it beyond its slack, in standard errors. The split is the same in every round,
and so is an honest client's data, so the same answer can come back round after round. For
every round and every update that passed the norm screen this harness records:

\b
- FairFL's verdict (accepted, or its reason);
- the update's similarity s_i to the round's direction, the round's median, and the slack
  the similarity scaling gives it (gate_tolerances; a lone dissimilar update that the
  strict rule holds to a gain gets none instead: each row says whether it was a candidate
  for that rule; the traces published on 2026-12-06 were made before that field);
- its effect: the aggregate of the accepted updates with it against the aggregate without
  it (FairFL's combination, with the sample counts FairFL was given; the round's decision
  may reweigh them), example by example, as z = mean(d) / se(d) and the mean, on the
  validation split (what the gate sees) and on the test split (which no rule reads).

The run has blacklisting off, so each client is traced in every round; the registry's rule
is replayed on the rejections to say whom it would have banned
(:func:`benchmarks.privacy_dp.would_blacklist`). Each run also records its clients' label
distance from the federation's mix, and the summary says whether size or label mix predicts
the honest rejections (:func:`predictors`). ``--from-json`` summarises a published trace
again without training (``--late-from 1`` for a 20-round trace).

This is a diagnosis on tuning seeds; it decides nothing by itself. Writes
``reports/bench/gate_trace.json``.

\b
    python -m benchmarks.gate_trace --seeds 6 --attacks none --rounds 60
    python -m benchmarks.gate_trace --seeds 1,2,3,4,5 --attacks alie-from-41 --rounds 60
    python -m benchmarks.gate_trace --from-json docs/data/gate_trace_tuning_2026-12-06.json
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import comma_numbers, machine, publish
from benchmarks.privacy_dp import would_blacklist
from fl_agent.aggregation.base import AggregationResult, Evaluate, Reason, Round, row_norms
from fl_agent.aggregation.fairfl import FairFL
from fl_agent.aggregation.gate import (
    gate_tolerances,
    paired_margin,
    standard_error,
    strict_noise,
)
from fl_agent.aggregation.norms import clipped_mean
from fl_agent.learning.training import validation_scores
from fl_agent.simulation.config import BLOCKS_PER_ROUND_SLACK, SimulationConfig, attack_settings
from fl_agent.simulation.offline import OfflineRound, aggregator_strategy, federation, run_offline

#: Rounds from which a run counts as converged for the summary (the late half of 60).
LATE_FROM = 21


def effect_z(with_: np.ndarray, without: np.ndarray) -> tuple[float, float]:
    """``(z, mean)`` of the paired per-example differences ``with_ - without``: the mean
    over its standard error (0 if there is no spread), and the mean."""
    d = with_ - without
    se = standard_error(d)
    mean = float(d.mean())
    return (mean / se if se > 0 else 0.0), mean


def combined(global_params: np.ndarray, deltas: np.ndarray, norms: np.ndarray,
             num_samples: np.ndarray, clip_ratio: float, members: list[int]) -> np.ndarray:
    """FairFL's combination (step 6) of the round's ``members``: their deltas (of norms
    ``norms``) clipped to ``clip_ratio`` times their median norm, sample-weighted; the
    current model if none."""
    if not members:
        return global_params
    which = np.array(sorted(members))
    return global_params + clipped_mean(deltas, norms[which], num_samples[which],
                                        clip_ratio, which)


class TracingFairFL(FairFL):
    """FairFL that, after deciding a round, measures each screened update's effect."""

    test_score: Any
    trace: list[dict[str, Any]]

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        report = self._run(rnd, evaluate)
        result = report.result
        reference = report.reference_similarity
        if evaluate is None or not reference:
            self.trace.append({})
            return result
        g = rnd.global_params
        deltas = np.asarray(rnd.updates, dtype=np.float64) - g
        accepted = set(result.accepted)
        screened = sorted(reference)  # round indices that passed the norm screen
        sims = np.array([reference[i] for i in screened])
        # the gate's median is over the updates the chance test kept (FairFL's pool), a
        # group of exact copies counted once under copies_once: FairFL's own figure
        pool = [reference[i] for i in screened if result.reasons.get(i) != Reason.NOISE]
        median_sim = float(result.figures.get("median_similarity",
                                              np.median(pool) if pool else 0.0))
        # the scaled slack; a lone update held to a gain by the strict rule (a candidate
        # here: DBSCAN noise below strict_noise_at times the median) may get none instead
        slack = gate_tolerances(sims, median_sim, self.tolerance, self.full_tolerance_at,
                                self.min_tolerance)
        labels = np.array([report.labels.get(i, -1) for i in screened])
        strict = strict_noise(labels, sims, median_sim, self.strict_noise_at)

        def scores(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            cast = params.astype(rnd.dtype)
            return (np.asarray(evaluate(cast), dtype=np.float64),
                    np.asarray(self.test_score(cast), dtype=np.float64))

        norms = row_norms(deltas)  # once a round, not for every leave-one-out model

        def model(members: set[int]) -> np.ndarray:
            return combined(g, deltas, norms, rnd.num_samples, self.clip_ratio,
                            sorted(members))

        rows = {}
        for k, i in enumerate(screened):
            with_ = scores(model(accepted | {i}))
            without = scores(model(accepted - {i}))
            z_val, mean_val = effect_z(with_[0], without[0])
            z_test, mean_test = effect_z(with_[1], without[1])
            reason = result.reasons.get(i)
            rows[i] = {"verdict": "accepted" if i in accepted else str(reason),
                       "s": float(sims[k]), "slack": float(slack[k]),
                       "strict_candidate": bool(strict[k]),
                       "cluster": report.labels.get(i),
                       "z_val": z_val, "z_test": z_test,
                       "mean_val": mean_val, "mean_test": mean_test,
                       "margin_val": paired_margin(with_[0], without[0], float(slack[k]))}
        # the leave-one-out models are the round's own aggregate with one update more or less:
        # how far the aggregate of the accepted is from FairFL's (0 up to float32 rounding)
        gap = float(np.max(np.abs(model(accepted) - np.asarray(result.params, np.float64))))
        self.trace.append({"median_s": median_sim, "aggregate_gap": gap, "updates": rows})
        return result


def label_distances(fed: Any) -> list[float]:
    """Each client's label mix against the federation's: the total variation distance
    between the two label distributions (0: the same mix, 1: no label in common)."""
    return label_mix_distances([np.asarray(c.y, dtype=np.int64) for c in fed.clients])


def label_mix_distances(labels: list[np.ndarray]) -> list[float]:
    """:func:`label_distances` for the clients' ``labels`` (one integer array each)."""
    k = 1 + max(int(y.max()) for y in labels if y.size)
    pooled = np.bincount(np.concatenate(labels), minlength=k) / sum(y.size for y in labels)
    return [float(0.5 * np.abs(np.bincount(y, minlength=k) / y.size - pooled).sum())
            for y in labels]


def held_out_federation(seed: int, attack: str, rounds: int) -> Any:
    """The held-out benchmark's federation for ``seed`` and ``attack`` (its seed fixes the
    data, the shards and the attackers)."""
    return federation(SimulationConfig(seed=seed, rounds=rounds, **attack_settings(attack)))


def trace_run(seed: int, attack: str, rounds: int,
              copies_once: bool | None = None) -> dict[str, Any]:
    """One offline run of the held-out federation with blacklisting off, traced
    (``copies_once``: None, the task's own; the published traces of 2026-12-06 ran before
    rule R49, as ``False``)."""
    fed = held_out_federation(seed, attack, rounds)
    config = fed.config
    base = aggregator_strategy(fed)
    if not isinstance(base, FairFL):
        raise click.UsageError("the task's strategy is not FairFL")
    chosen = {} if copies_once is None else {"copies_once": copies_once}
    strategy = TracingFairFL(**{**{f.name: getattr(base, f.name) for f in fields(base)},
                                **chosen})
    X_test = fed.data.standardize(fed.splits.test.X)
    y_test = np.asarray(fed.splits.test.y, dtype=np.int64)
    object.__setattr__(strategy, "test_score",
                       lambda v: validation_scores(fed.spec, v, X_test, y_test, "loss"))
    object.__setattr__(strategy, "trace", [])
    attacker = [bool(c.malicious) for c in fed.clients]
    per_round: list[dict[str, Any]] = []

    def on_round(row: OfflineRound) -> None:
        # one entry per round FairFL decided (none if no update was usable)
        traced = strategy.trace.pop() if strategy.trace else {}
        updates = {}
        for j, numbers in traced.get("updates", {}).items():
            client = row.submitted[j]
            updates[client] = {**numbers, "attacker": attacker[client]}
        rejected = {row.submitted[j] for j in range(len(row.submitted))
                    if j not in set(row.decision.accepted)}
        held = {row.submitted[j] for j, why in row.decision.reasons.items()
                if why == Reason.HELD_BACK}  # rejected, but not counted towards a ban
        per_round.append({"round": row.round, "median_s": traced.get("median_s"),
                          "aggregate_gap": traced.get("aggregate_gap"),
                          "rejected": sorted(rejected), "held_back": sorted(held),
                          "updates": updates,
                          "test_accuracy": row.test_accuracy})

    run = run_offline(fed, strategy=strategy, on_round=on_round, blacklist=False)
    banned = would_blacklist([set(r["rejected"]) - set(r["held_back"]) for r in per_round],
                             config.clients,
                             config.window_rounds, config.max_rejections,
                             BLOCKS_PER_ROUND_SLACK)
    return {"seed": seed, "attack": attack, "rounds": rounds,
            "examples": [int(len(c.y)) for c in fed.clients], "attacker": attacker,
            "label_distance": label_distances(fed),
            "would_ban": banned, "test_accuracy": run.test_accuracy,
            "validation_examples": int(len(fed.splits.validation.y)),
            "test_examples": int(len(y_test)), "per_round": per_round}


def summary(run: dict[str, Any], late_from: int = LATE_FROM) -> dict[str, Any]:
    """Per honest client, over the late rounds: validation rejections, and the mean of its
    validation and test ``z``; and over all honest client-rounds, how well the validation
    ``z`` predicts the test ``z`` (their correlation) and how well a client's validation
    ``z`` predicts its own next round's (the persistence the repeated rejections need)."""
    clients: dict[int, dict[str, list[float]]] = {}
    for r in run["per_round"]:
        if r["round"] < late_from:
            continue
        for client, u in r["updates"].items():
            if u["attacker"]:
                continue
            c = clients.setdefault(int(client), {"z_val": [], "z_test": [], "rejected": []})
            c["z_val"].append(u["z_val"])
            c["z_test"].append(u["z_test"])
            c["rejected"].append(u["verdict"] == "validation")
    per_client = {c: {"examples": run["examples"][c], "rounds": len(v["z_val"]),
                      "validation_rejections": int(sum(v["rejected"])),
                      "z_val": float(np.mean(v["z_val"])), "z_test": float(np.mean(v["z_test"]))}
                  for c, v in sorted(clients.items())}
    pairs = [(a, b) for v in clients.values() for a, b in zip(v["z_val"], v["z_test"],
                                                               strict=True)]
    lagged = [(v["z_val"][k], v["z_val"][k + 1]) for v in clients.values()
              for k in range(len(v["z_val"]) - 1)]
    return {"seed": run["seed"], "attack": run["attack"],
            "honest_would_ban": [c for c in run["would_ban"] if not run["attacker"][c]],
            "corr_val_test": _corr(pairs), "corr_val_next_round": _corr(lagged),
            "per_client": per_client}


def _corr(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 3:
        return None
    a, b = np.array(pairs).T
    if a.std() == 0 or b.std() == 0:
        return None
    value = float(np.corrcoef(a, b)[0, 1])
    return value if math.isfinite(value) else None


def predictors(runs: list[dict[str, Any]], late_from: int = LATE_FROM) -> dict[str, Any]:
    """Whether a client's size or label mix says which honest clients the gate turns away:
    the Spearman correlation, over the honest clients of ``runs``, of their validation
    rejection rate from ``late_from`` on with their number of examples and with their
    label distance (:func:`label_distances`; recomputed from the run's federation, which
    its seed fixes, for a run traced before the field)."""
    from scipy.stats import spearmanr

    rate, size, distance = [], [], []
    for run in runs:
        labels = run.get("label_distance") or label_distances(
            held_out_federation(run["seed"], run["attack"], run["rounds"]))
        for c, numbers in summary(run, late_from)["per_client"].items():
            rate.append(numbers["validation_rejections"] / numbers["rounds"])
            size.append(numbers["examples"])
            distance.append(labels[c])

    def rank(x: list[float]) -> float | None:
        if len(rate) < 3:
            return None
        value = float(spearmanr(x, rate).statistic)
        return value if math.isfinite(value) else None  # no spread: nothing to rank

    return {"clients": len(rate), "spearman_size": rank(size),
            "spearman_label_distance": rank(distance)}


def runs_in(path: Path) -> list[dict[str, Any]]:
    """The traced runs of a file this harness wrote (or of several, published together
    under ``parts``)."""
    data = json.loads(path.read_text())
    return [run for part in data.get("parts", [data]) for run in part["runs"]]


def markdown(summaries: list[dict[str, Any]]) -> str:
    lines = ["| seed | attack | honest banned (replayed) | corr(z val, z test) | "
             "corr(z val, next round's) | most rejected honest: examples, rejections, "
             "mean z val / z test |", "| --- | --- | --- | --- | --- | --- |"]
    for s in summaries:
        worst = sorted(s["per_client"].items(), key=lambda kv: -kv[1]["validation_rejections"])
        top = "; ".join(f"{c}: {v['examples']} ex, {v['validation_rejections']}/{v['rounds']}, "
                        f"{v['z_val']:+.2f} / {v['z_test']:+.2f}"
                        for c, v in worst[:3] if v["validation_rejections"])
        corr = ["–" if x is None else f"{x:+.2f}"
                for x in (s["corr_val_test"], s["corr_val_next_round"])]
        lines.append(f"| {s['seed']} | {s['attack']} | {len(s['honest_would_ban'])} | "
                     f"{corr[0]} | {corr[1]} | {top or '–'} |")
    return "\n".join(lines)


@click.command(help=__doc__)
@click.option("--seeds", default="6", callback=comma_numbers(int),
              help="comma-separated seeds (tuning seeds only: this is a diagnosis)")
@click.option("--attacks", default="none", help="comma-separated attacks (as held_out)")
@click.option("--rounds", default=60, type=click.IntRange(1))
@click.option("--late-from", default=LATE_FROM, type=click.IntRange(1),
              help="the summary's first round")
@click.option("--copies-once", type=click.Choice(["true", "false"]), default=None,
              help="FairFL's copies_once (default: the task's own, true since rule R49; the "
                   "published traces ran before it: false reproduces them)")
@click.option("--json", "json_path", default="reports/bench/gate_trace.json",
              type=click.Path(path_type=Path))
@click.option("--from-json", "from_json", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="summarise a trace this harness wrote (no training): the table, and "
                   "whether size or label mix predicts the honest rejections")
def main(seeds: list[int], attacks: str, rounds: int, late_from: int,
         copies_once: str | None, json_path: Path, from_json: Path | None) -> None:
    if from_json is not None:
        traced = runs_in(from_json)
        print(markdown([summary(run, late_from) for run in traced]))
        print(json.dumps(predictors(traced, late_from)))
        return
    runs, summaries = [], []
    for seed in seeds:
        for attack in [a.strip() for a in attacks.split(",") if a.strip()]:
            run = trace_run(seed, attack, rounds,
                            None if copies_once is None else copies_once == "true")
            runs.append(run)
            summaries.append(summary(run, late_from))
            print(markdown(summaries[-1:]).splitlines()[-1], flush=True)
    publish({"settings": {"seeds": seeds, "attacks": attacks, "rounds": rounds,
                          "late_from": late_from, "copies_once": copies_once},
             "machine": machine(), "summaries": summaries,
             "predictors": predictors(runs, late_from), "runs": runs},
            json_path, markdown(summaries))


if __name__ == "__main__":
    main()
