"""Rule R67, a measurement: is an honest DP update's direction evidence against a sign
flipper where its validation loss is not? (docs/data/dp_reference_direction_rules_2026-12-08.md)

From a start already trained on data the participants do not hold (rule R62b's warm
start), a DP task at ε = 8 comes within 3.7 points of no DP, but FairFL's sequential test
then turns honest senders away: their validation-loss z-scores average below 0 for some of
them (rule R64; R65 and R66 tried other lines on the same z-scores and failed). The lead
the stop-59 note named was evidence of another kind: each update's direction against a
reference the aggregator trains on its own validation data, as FLTrust does (and as a
task with ``--mode he`` already runs).

This harness measures that evidence on honest runs, without deciding anything:

* each round the aggregator trains a reference, ``reference_steps`` steps of plain SGD
  from the round's global model on the half of its validation split that the start did
  not see (the gate's half in R62b), at the no-DP learning rate;
* each honest DP update's cosine to it, as a z-score ``z = cos * sqrt(d)``: for an update
  whose direction is independent of the reference, which is what DP noise is, ``z`` is
  about standard normal (``cos`` has mean 0 and variance ``1/d`` for a uniformly random
  direction), so no spread is estimated from the senders, whom an attacker is among;
* each sender's record ``T = sum(z) / sqrt(rounds)`` after every round, the sequential
  test's form.

A sign flipper sends the negation of the update it trained, so its cosine to the same
reference is exactly the negation: the flippers' records are the honest records
mirrored. That is what makes an honest run enough to read the trade of any line ``-L``
on ``T``: an honest sender is turned away once its running ``T`` is below ``-L``; a
flipper who trained like it is caught once that sender's running ``T`` is above ``L``. It
is a first-order reading: with the flippers in the aggregate the global model and the
references move, which only a run with attackers measures.

The aggregate is FedAvg's as the DP benchmark decides it (every update kept, each
weighted by its claim capped as on chain), so that the records do not depend on a rule's
verdicts. Written here, not taken from :mod:`benchmarks.privacy_dp`, because that
loop judges updates and does not train a reference; the federation, calibration, start
and DP training are that module's.
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import comma_numbers, machine, progress_bar, publish

#: The line on a sender's record that FairFL's sequential test uses (its gate tolerance).
LINE = 2.0
#: Caps on one round's z-score the amended rule reads the records at (None: uncapped): a
#: sender whose records are summed can bank credit in one round (a round trained without
#: noise scores about cos * sqrt(d), tens), and a cap bounds what one round can buy.
CAPS: tuple[float | None, ...] = (None, 2.0, 1.0)


def direction_z(delta: np.ndarray, reference: np.ndarray) -> float:
    """``cos(delta, reference) * sqrt(d)``: about standard normal for a ``delta`` whose
    direction is independent of ``reference``; 0 for a zero vector."""
    a = np.asarray(delta, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if norms == 0 else float(a @ b / norms * math.sqrt(a.size))


def running_records(z: np.ndarray) -> np.ndarray:
    """Each sender's record after each round: ``cumsum(z) / sqrt(rounds so far)``, for ``z``
    of shape (rounds, senders)."""
    z = np.asarray(z, dtype=np.float64)
    return np.cumsum(z, axis=0) / np.sqrt(np.arange(1, z.shape[0] + 1))[:, None]


def line_trade(records: np.ndarray, line: float = LINE) -> dict[str, Any]:
    """What a line at ``-line`` on the running records would do (see the module docstring):
    the honest senders turned away at least once, the rounds that cost them and those still
    below it at the end; the mirrored flippers caught at least once, the round each was
    first caught in, and those still caught at the end."""
    records = np.asarray(records, dtype=np.float64)
    below = records < -line
    caught = records > line  # a flipper's record is the honest one mirrored
    first = [int(np.argmax(column)) + 1 if column.any() else None for column in caught.T]
    return {"honest_turned_away": int(below.any(axis=0).sum()),
            "honest_rounds_turned_away": int(below.sum()),
            "honest_below_at_end": int(below[-1].sum()),
            "flippers_caught": int(caught.any(axis=0).sum()),
            "flippers_caught_at_end": int(caught[-1].sum()),
            "first_caught_round": first,
            "senders": int(records.shape[1]), "rounds": int(records.shape[0])}


@lru_cache(maxsize=4)
def calibration_for(seed: int, epsilon: float, rounds: int, clients: int) -> Any:
    """Each client's noise for the seed's federation (:func:`benchmarks.privacy_dp.
    calibrate`, seconds of accountant calls a client): the same for both starts, so made
    once."""
    from benchmarks.privacy_dp import Setting, calibrate, honest_federation

    setting = Setting(rounds=rounds, clients=clients)
    fed = honest_federation(seed, setting)
    return calibrate([len(c.y) for c in fed.clients], setting, epsilon)


def capped_trade(z: np.ndarray, cap: float | None, line: float = LINE) -> dict[str, Any]:
    """What a line at ``-line`` does when each round's z-score is capped at ``cap``: the
    honest records ``running_records(min(z, cap))`` and the flippers' ``running_records(
    min(-z, cap))`` (no longer each other's mirror once capped). A sender is turned away in
    each round its record is below ``-line``; the registry's bans are replayed on those
    rounds (:func:`benchmarks.privacy_dp.would_blacklist`, the simulation's window and
    count; each side replayed alone, as if it were the only one turned away)."""
    from benchmarks.privacy_dp import would_blacklist
    from fl_agent.simulation.config import BLOCKS_PER_ROUND_SLACK, SimulationConfig

    z = np.asarray(z, dtype=np.float64)
    limit = np.inf if cap is None else cap
    config = SimulationConfig()

    def side(values: np.ndarray) -> dict[str, Any]:
        below = running_records(np.minimum(values, limit)) < -line
        turned = [set(np.flatnonzero(row).tolist()) for row in below]
        return {"ever": int(below.any(axis=0).sum()), "rounds": int(below.sum()),
                "at_end": int(below[-1].sum()),
                "banned": len(would_blacklist(turned, values.shape[1], config.window_rounds,
                                              config.max_rejections, BLOCKS_PER_ROUND_SLACK))}

    return {"cap": cap, "honest": side(z), "flippers": side(-z), "senders": int(z.shape[1])}


def per_round(runs: list[dict[str, Any]], start: str) -> dict[str, list[float]]:
    """Over the seeds' honest senders of ``start``, each round's median z and the share of
    updates with z <= 0 (which FLTrust's ReLU trust gives no weight)."""
    z = np.concatenate([np.asarray(r["z"]) for r in runs if r["start"] == start], axis=1)
    return {"median_z": np.median(z, axis=1).round(3).tolist(),
            "share_not_positive": (z <= 0).mean(axis=1).round(3).tolist()}


def measure(seed: int, start: str, epsilon: float, reference_steps: int,
            warm_steps: int, on_round: Any = lambda: None, *, rounds: int = 20,
            clients: int = 10) -> dict[str, Any]:
    """One honest DP run under FedAvg from ``start`` (``"warm"``: R62b's; ``"seeded"``: the
    seeded weights, the gate's half as in R62b's control), with every round's z-scores."""
    from benchmarks.privacy_dp import (
        Setting,
        halves,
        honest_federation,
        standardized,
        strategy_for,
        warm_started,
    )
    from fl_agent.learning.models import init_params
    from fl_agent.learning.training import evaluate, round_seed, train_local, validation_scores
    from fl_agent.privacy.dp import train_local_dp
    from fl_agent.simulation.offline import decide_as_on_chain

    setting = Setting(warm_start=warm_steps if start == "warm" else 0, gate_data="half",
                      rounds=rounds, clients=clients)
    fed = honest_federation(seed, setting)
    sizes = [len(c.y) for c in fed.clients]
    calibration = calibration_for(seed, epsilon, rounds, clients)
    X_val, y_val, X_test, y_test, shards, claims = standardized(fed)
    (X_start, y_start), (X_gate, y_gate) = halves(X_val, y_val, seed)
    spec = fed.spec
    params = warm_started(spec, init_params(spec, seed), X_start, y_start, setting, seed)
    start_accuracy = evaluate(spec, params, X_test, y_test, "accuracy")
    fedavg = strategy_for(fed, "fedavg")

    def gate(vector: np.ndarray) -> np.ndarray:  # as the DP benchmark's run has them
        return validation_scores(spec, vector, X_gate, y_gate, "loss")

    def score(vector: np.ndarray) -> float:
        return evaluate(spec, vector, X_gate, y_gate, "accuracy")
    z_rows = []
    for number in range(1, setting.rounds + 1):
        reference = np.asarray(train_local(
            spec, params, X_gate, y_gate, reference_steps, seed=round_seed(seed, number),
            batch_size=setting.batch_size, lr=setting.lr).vector, dtype=np.float64) - params
        deltas = []
        for i, (client, (X, y)) in enumerate(zip(fed.clients, shards, strict=True)):
            result = train_local_dp(spec, params, X, y, setting.steps,
                                    seed=round_seed(client.seed, number),
                                    batch_size=setting.batch_size, lr=setting.dp_lr,
                                    momentum=setting.momentum,
                                    noise_multiplier=calibration.sigmas[i],
                                    max_grad_norm=setting.clip)
            deltas.append(np.asarray(result.vector, dtype=np.float64) - params)
        z_rows.append([direction_z(delta, reference) for delta in deltas])
        decision = decide_as_on_chain(  # FedAvg as the DP benchmark decides it (claims capped)
            fedavg, params, np.stack([(params + d).astype(np.float32) for d in deltas]),
            claims, gate=gate, score=score, scoring="loo",
            permutations=fed.config.permutations, round_number=number)
        params = np.asarray(decision.params, dtype=np.float32)
        on_round()
    z = np.asarray(z_rows)
    records = running_records(z)
    return {"seed": seed, "start": start, "epsilon": epsilon, "sizes": sizes,
            "start_accuracy": start_accuracy,
            "accuracy": evaluate(spec, params, X_test, y_test, "accuracy"),
            "z": z.round(4).tolist(), "final_records": records[-1].round(4).tolist(),
            "trade": line_trade(records)}


def clauses(runs: list[dict[str, Any]]) -> str:
    """The rule's two clauses per start and cap (summed over the seeds), the per-seed counts
    from the warm start, and each round's honest z."""
    lines = ["| start | cap on a round's z | honest senders ever below −2 (rounds; replayed "
             "bans) | flippers below −2 at the end (ever; replayed bans) |",
             "| --- | --- | --- | --- |"]
    for start in ("warm", "seeded"):
        rows = [r for r in runs if r["start"] == start]
        for cap in CAPS:
            trades = [capped_trade(np.asarray(r["z"]), cap) for r in rows]
            if not trades:
                continue
            senders = sum(t["senders"] for t in trades)

            def total(who: str, key: str, trades: list[dict[str, Any]] = trades) -> int:
                return sum(t[who][key] for t in trades)

            lines.append(f"| {start} | {'none' if cap is None else cap:} | "
                         f"{total('honest', 'ever')} of {senders} "
                         f"({total('honest', 'rounds')}; {total('honest', 'banned')}) | "
                         f"{total('flippers', 'at_end')} of {senders} "
                         f"({total('flippers', 'ever')}; {total('flippers', 'banned')}) |")
    warm = [r for r in runs if r["start"] == "warm"]
    if warm:
        lines += ["", "warm start, per seed (uncapped): honest ever below −2 / mirrored "
                  "flippers below −2 at the end, of each seed's senders: " + ", ".join(
                      f"{r['seed']}: {t['honest']['ever']} / {t['flippers']['at_end']}"
                      for r in warm for t in [capped_trade(np.asarray(r["z"]), None)])]
        rounds = per_round(runs, "warm")
        lines += ["warm start, each round's median honest z: "
                  + " ".join(f"{v:.2f}" for v in rounds["median_z"]),
                  "warm start, each round's share of honest updates with z <= 0: "
                  + " ".join(f"{v:.2f}" for v in rounds["share_not_positive"])]
    return "\n".join(lines)


def summary(runs: list[dict[str, Any]]) -> str:
    """A Markdown table: per start, the honest records at the task's end and the trade of a
    line at -2, summed over the seeds."""
    lines = ["| start | seeds | accuracy at ε (median) | honest T at the end: min / 10 % / median "
             "| honest z a round: mean | honest senders turned away by −2 at least once "
             "(rounds; at the end) | mirrored flippers caught at least once (at the end) | "
             "round first caught: median |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for start in ("warm", "seeded"):
        rows = [r for r in runs if r["start"] == start]
        if not rows:
            continue
        finals = np.concatenate([r["final_records"] for r in rows])
        z = np.concatenate([np.ravel(r["z"]) for r in rows])
        firsts = [f for r in rows for f in r["trade"]["first_caught_round"] if f is not None]
        senders = sum(r["trade"]["senders"] for r in rows)

        def total(key: str, rows: list[dict[str, Any]] = rows) -> int:
            return sum(r["trade"][key] for r in rows)

        lines.append(
            f"| {start} | {len(rows)} | {np.median([r['accuracy'] for r in rows]):.3f} | "
            f"{finals.min():.2f} / {np.percentile(finals, 10):.2f} / {np.median(finals):.2f} | "
            f"{z.mean():.2f} | "
            f"{total('honest_turned_away')} of {senders} "
            f"({total('honest_rounds_turned_away')}; {total('honest_below_at_end')}) | "
            f"{total('flippers_caught')} of {senders} ({total('flippers_caught_at_end')}) | "
            f"{np.median(firsts) if firsts else '–'} |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Each sender's record at the task's end, per start, with the lines at ±2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.4))
    for row, start in enumerate(("seeded", "warm")):
        finals = np.concatenate([r["final_records"] for r in runs if r["start"] == start]
                                or [np.zeros(0)])
        jitter = np.random.default_rng(row).uniform(-0.15, 0.15, finals.size)
        ax.scatter(finals, row + jitter, s=12, alpha=0.7,
                   label=f"{start} start: honest senders")
        ax.scatter(-finals, row + jitter, s=12, alpha=0.7, marker="x",
                   label=f"{start} start: the same, sign-flipped")
    for x in (-LINE, LINE):
        ax.axvline(x, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks([0, 1], ["seeded start", "warm start"])
    ax.set_xlabel("sender's record T = sum(z) / sqrt(rounds), z = cos(update, reference) √d")
    ax.set_title("Direction evidence at the task's end, DP-SGD ε = 8, FedAvg")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command(help=__doc__)
@click.option("--seeds", callback=comma_numbers(int, lambda s: s >= 0), default="1,2",
              show_default=True, help="comma-separated seeds (R67's evaluation: 106-121)")
@click.option("--starts", type=click.Choice(["both", "warm", "seeded"]), default="both",
              show_default=True)
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), default=8.0,
              show_default=True)
@click.option("--reference-steps", type=click.IntRange(1), default=20, show_default=True,
              help="plain SGD steps of the aggregator's reference (a client's steps)")
@click.option("--warm-steps", type=click.IntRange(1), default=100, show_default=True,
              help="the warm start's steps (R62b's 100)")
@click.option("--rounds", type=click.IntRange(1), default=20, show_default=True,
              help="rounds of the task (the DP benchmark's 20)")
@click.option("--clients", type=click.IntRange(2), default=10, show_default=True,
              help="honest clients (the DP benchmark's 10)")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              default=Path("reports/bench/dp_reference_direction.json"), show_default=True)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              default=Path("reports/bench/dp_reference_direction.png"), show_default=True)
@click.option("--files", "files", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="print the tables of these runs' JSON files and plot them (no run); "
              "repeatable")
def main(seeds: list[int], starts: str, epsilon: float, reference_steps: int,
         warm_steps: int, rounds: int, clients: int, json_path: Path,
         plot_path: Path, files: tuple[Path, ...]) -> None:
    if files:
        runs = [run for path in files for run in json.loads(path.read_text())["runs"]]
        print(summary(runs) + "\n\n" + clauses(runs))
        plot(runs, plot_path)
        print(f"plot: {plot_path}")
        return
    import torch

    torch.set_num_threads(1)
    chosen = ["warm", "seeded"] if starts == "both" else [starts]
    started = time.time()
    about = machine()
    runs = []
    with progress_bar() as progress:
        task = progress.add_task("rounds", total=len(seeds) * len(chosen) * rounds)
        for seed in seeds:
            for start in chosen:
                progress.update(task, description=f"seed {seed}, {start} start")
                runs.append(measure(seed, start, epsilon, reference_steps, warm_steps,
                                    on_round=lambda: progress.advance(task), rounds=rounds,
                                    clients=clients))
    result = {"settings": {"seeds": seeds, "starts": chosen, "epsilon": epsilon,
                           "reference_steps": reference_steps, "warm_steps": warm_steps,
                           "line": LINE, "aggregate": "fedavg", "clients": clients,
                           "rounds": rounds},
              "machine": about, "wall_s": round(time.time() - started, 1), "runs": runs}
    publish(result, json_path, summary(runs) + "\n\n" + clauses(runs))
    plot(runs, plot_path)
    print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
