"""Homomorphic FLTrust (:mod:`fl_agent.privacy.he`): time, bytes and error of one encrypted
round, and accuracy of an offline digits federation in HE mode against plaintext FLTrust.

Synthetic rounds, per model size (default 100k and 1M parameters), ``--clients`` updates
(default 20): the aggregator's reference direction g0 ~ N(0, 0.01²) per coordinate; 70 %
honest deltas ``a_i * g0 + N(0, 0.01²)``, then sign-flipped (``-3 x`` an honest one), scaled
(``10 x`` one) and zero deltas in turn. Measured: encryption and decoding per client, the
aggregator's scalars (inner products, squared norms and the random projections that check
them) and weighted sum, the key holder's
decryption of the scalars and of the aggregate (and its check, which recomputes the weighted
sum), document sizes, and the largest error against the plaintext
:class:`~fl_agent.aggregation.strategies.FLTrust` on the same vectors (and whether both
reject the same updates).

Federation: :func:`fl_agent.simulation.offline.run_offline` on digits (MLP, Dirichlet 0.5)
with the FLTrust aggregator (server update trained on the aggregator's validation split),
once deciding each round with the plaintext strategy and once in HE mode (participants
encrypt their deltas, the aggregator and key holder run :func:`fl_agent.privacy.he.
fltrust_round`), same seeds, same clients: final test accuracy of both and the largest
parameter difference.

Single-threaded: SEAL's Python binding holds the GIL, so one process uses one core.


    python -m benchmarks.privacy_he                            # 20 x 100k, 20 x 1M, federation
    python -m benchmarks.privacy_he --sizes 100000 --no-federation     # the quick figure
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import machine, percentiles, progress_bar, publish

#: Share of honest clients in a synthetic round; the rest cycle through these attacks.
HONEST_SHARE = 0.7
ATTACKS = ("sign_flip", "scaled", "zero")


def synthetic_round(clients: int, size: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Global model, server model and the ``(clients, size)`` deltas, with their kinds."""
    rng = np.random.default_rng(seed)
    global_params = rng.normal(size=size)
    reference = rng.normal(0, 0.01, size)
    honest = max(1, round(HONEST_SHARE * clients))
    kinds = ["honest"] * honest + [ATTACKS[i % len(ATTACKS)] for i in range(clients - honest)]
    deltas = np.empty((clients, size))
    for i, kind in enumerate(kinds):
        if kind == "honest":
            deltas[i] = reference * rng.uniform(0.5, 2.0) + rng.normal(0, 0.01, size)
        else:
            deltas[i] = {"sign_flip": -3.0, "scaled": 10.0, "zero": 0.0}[kind] * deltas[0]
    return global_params, global_params + reference, deltas, kinds


@contextmanager
def stopwatch(into: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    into[key] = round(time.perf_counter() - started, 4)


def measure_round(clients: int, size: int, seed: int, progress: Any) -> dict[str, Any]:
    from fl_agent.aggregation.strategies import FLTrust
    from fl_agent.privacy.he import (
        KeyHolder,
        decode_update,
        encrypt_update,
        encrypted_scalars,
        fltrust_weights,
        weighted_sum,
    )

    global_params, server, deltas, kinds = synthetic_round(clients, size, seed)
    times: dict[str, float] = {}
    with stopwatch(times, "key_holder_create_s"):
        key_holder = KeyHolder.create()
    context = key_holder.public
    task = progress.add_task(f"{size:,} parameters: encrypting", total=clients)
    encrypt_s, documents = [], []
    for delta in deltas:  # each participant, in turn
        started = time.perf_counter()
        documents.append(encrypt_update(context, delta))
        encrypt_s.append(time.perf_counter() - started)
        progress.advance(task)
    progress.update(task, description=f"{size:,} parameters: decoding", completed=0)
    decode_s, updates = [], []
    for document in documents:
        started = time.perf_counter()
        updates.append(decode_update(context, document, size))
        decode_s.append(time.perf_counter() - started)
        progress.advance(task)
    progress.update(task, description=f"{size:,} parameters: aggregating", total=4, completed=0)
    reference = server - global_params
    with stopwatch(times, "scalars_s"):
        scalars_document = encrypted_scalars(context, updates, reference)
    progress.advance(task)
    with stopwatch(times, "key_holder_decrypt_scalars_s"):
        scalars = key_holder.decrypt_scalars(scalars_document)
    decision = fltrust_weights(scalars, float(np.linalg.norm(reference)))
    with stopwatch(times, "weighted_sum_s"):
        aggregate_document = weighted_sum(context, updates, decision.weights, size)
    progress.advance(task)
    with stopwatch(times, "key_holder_decrypt_aggregate_s"):
        delta = key_holder.decrypt_aggregate(aggregate_document, size)
    progress.advance(task)
    with stopwatch(times, "key_holder_check_s"):  # recomputing the weighted sum
        key_holder.decrypt_aggregate(aggregate_document, size, updates=updates,
                                     weights=decision.weights)
    progress.advance(task)
    times["aggregation_s"] = round(sum(decode_s) + times["scalars_s"]
                                   + times["weighted_sum_s"], 4)
    times["aggregation_without_decoding_s"] = round(times["scalars_s"]
                                                    + times["weighted_sum_s"], 4)

    encrypted = decision.result(global_params, delta)
    plain = FLTrust(server_update=server).aggregate(global_params, global_params + deltas,
                                                    np.ones(clients))
    return {
        "clients": clients, "parameters": size, "kinds": kinds,
        # The process's peak so far: all documents and decoded updates are held at once.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "seconds": times,
        "encrypt_per_client_s": percentiles(encrypt_s, 4),
        "decode_per_client_s": percentiles(decode_s, 4),
        "bytes": {"public_context": len(key_holder.public_context),
                  "secret_context": len(key_holder.secret_context),
                  "update_per_client": len(documents[0]),
                  "update_per_parameter": round(len(documents[0]) / size, 2),
                  "scalars": len(scalars_document), "aggregate": len(aggregate_document)},
        "max_abs_error_vs_plaintext": float(np.max(np.abs(encrypted.params - plain.params))),
        "scalar_errors": scalar_errors(scalars, deltas, reference),
        "accepted": list(encrypted.accepted),
        "same_decision_as_plaintext": (encrypted.accepted == plain.accepted
                                       and encrypted.rejected == plain.rejected),
        "reasons": {str(i): str(r) for i, r in encrypted.reasons.items()},
        "plaintext_reasons": {str(i): str(r) for i, r in plain.reasons.items()},
    }


def scalar_errors(scalars: Any, deltas: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Largest absolute errors of the decrypted scalars, and of the cosines they give (over
    the non-zero deltas), against numpy."""
    dots, squared = deltas @ reference, (deltas ** 2).sum(axis=1)
    nonzero = squared > 0
    scale = np.sqrt(squared[nonzero]) * np.linalg.norm(reference)
    he_cosines = scalars.dots[nonzero] / (np.sqrt(scalars.squared_norms[nonzero])
                                          * np.linalg.norm(reference))
    return {"dots_abs": float(np.max(np.abs(scalars.dots - dots))),
            "squared_norms_abs": float(np.max(np.abs(scalars.squared_norms - squared))),
            "squared_norms_rel": float(np.max(np.abs(scalars.squared_norms - squared)[nonzero]
                                              / squared[nonzero])),
            "cosines_abs": float(np.max(np.abs(he_cosines - dots[nonzero] / scale)))}


def _as_decision(result: Any) -> Any:
    """A :class:`RoundDecision` from an :class:`AggregationResult`: rewards by trust score
    (the offline harness needs shares; contribution scoring would need the plain updates)."""
    from fl_agent.aggregation.rounds import RoundDecision

    total = float(result.scores.sum())
    shares = tuple(int(round(1e6 * s / total)) if total else 0 for s in result.scores)
    return RoundDecision(params=result.params, accepted=result.accepted,
                         reasons={i: str(r) for i, r in result.reasons.items()},
                         scores=result.scores, shares=shares)


def measure_federation(clients: int, rounds: int, attack: str, malicious: float, seed: int,
                       progress: Any) -> dict[str, Any]:
    from fl_agent.privacy.he import KeyHolder, encrypt_update, fltrust_round
    from fl_agent.simulation.config import SimulationConfig
    from fl_agent.simulation.offline import aggregator_strategy, federation, run_offline

    config = SimulationConfig(dataset="digits", clients=clients, rounds=rounds,
                              aggregator="fltrust", attack=attack,
                              malicious=malicious if attack != "none" else 0.0, seed=seed)
    fed = federation(config)
    strategy = aggregator_strategy(fed)
    key_holder = KeyHolder.create()
    task = progress.add_task(f"federation, {attack}", total=2 * rounds)
    he_seconds: list[float] = []

    def plaintext(strategy: Any, global_params: np.ndarray, updates: np.ndarray,
                  claims: np.ndarray, **_: Any) -> Any:
        return _as_decision(strategy.aggregate(global_params, updates, claims))

    def encrypted(strategy: Any, global_params: np.ndarray, updates: np.ndarray,
                  claims: np.ndarray, **_: Any) -> Any:
        started = time.perf_counter()
        base = np.asarray(global_params, dtype=np.float64)
        documents = [encrypt_update(key_holder.public, np.asarray(u, np.float64) - base)
                     for u in updates]  # each participant encrypts its own delta
        decision, delta = fltrust_round(key_holder, base, documents,
                                        strategy.server_params(base))
        he_seconds.append(time.perf_counter() - started)
        return _as_decision(decision.result(global_params, delta))

    def advance(_: Any) -> None:
        progress.advance(task)

    runs: dict[str, Any] = {}
    for name, decide in (("plaintext", plaintext), ("he", encrypted)):
        runs[name] = run_offline(fed, decide=decide, strategy=strategy, on_round=advance)
    plain, he = runs["plaintext"], runs["he"]
    differing = [p.round for p, h in zip(plain.rounds, he.rounds, strict=True)
                 if p.decision.accepted != h.decision.accepted]
    return {"attack": attack, "clients": clients, "rounds": rounds,
            "malicious": config.malicious, "seed": seed,
            "parameters": int(np.asarray(plain.params).size),
            "plaintext_accuracy": plain.test_accuracy, "he_accuracy": he.test_accuracy,
            "difference_points": round(100 * (he.test_accuracy - plain.test_accuracy), 3),
            "rounds_with_different_decisions": differing,
            "max_abs_param_difference": float(np.max(np.abs(
                np.asarray(plain.params, np.float64) - np.asarray(he.params, np.float64)))),
            "he_seconds_per_round": percentiles(he_seconds, 3)}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| parameters × clients | encrypt / client (s) | update (MB) | decode all (s) | "
             "scalars (s) | weighted sum (s) | aggregation (s) | key holder: scalars / "
             "aggregate / check (s) | max abs error | same decision |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rounds"]:
        s = row["seconds"]
        lines.append(
            f"| {row['parameters']:,} × {row['clients']} | {row['encrypt_per_client_s']['p50']} "
            f"| {row['bytes']['update_per_client'] / 1e6:.2f} | "
            f"{sum_of(row['decode_per_client_s']):.2f} | {s['scalars_s']:.2f} | "
            f"{s['weighted_sum_s']:.2f} | {s['aggregation_s']:.2f} | "
            f"{s['key_holder_decrypt_scalars_s']:.2f} / {s['key_holder_decrypt_aggregate_s']:.2f}"
            f" / {s['key_holder_check_s']:.2f} | {row['max_abs_error_vs_plaintext']:.1e} | "
            f"{'yes' if row['same_decision_as_plaintext'] else 'NO'} |")
    if result["federation"]:
        lines += ["", "| attack | plaintext FLTrust | HE FLTrust | difference (points) | "
                  "rounds decided differently | HE s / round (p50) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in result["federation"]:
            lines.append(f"| {row['attack']} | {row['plaintext_accuracy']:.4f} | "
                         f"{row['he_accuracy']:.4f} | {row['difference_points']:+.2f} | "
                         f"{len(row['rounds_with_different_decisions'])} | "
                         f"{row['he_seconds_per_round']['p50']} |")
    return "\n".join(lines)


def sum_of(stats: dict[str, float]) -> float:
    return stats["mean"] * stats["n"]


def _ints(_: Any, __: Any, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v]
    except ValueError as err:
        raise click.BadParameter("comma-separated integers") from err


@click.command(help=__doc__)
@click.option("--clients", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Updates per synthetic round.")
@click.option("--sizes", default="100000,1000000", show_default=True, callback=_ints,
              help="Comma-separated model sizes (parameters).")
@click.option("--federation/--no-federation", default=True, show_default=True,
              help="Also run the digits federation in HE and plaintext mode.")
@click.option("--federation-clients", default=10, show_default=True,
              type=click.IntRange(2, 200))
@click.option("--federation-rounds", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--attacks", default="none,sign_flip", show_default=True,
              help="Comma-separated attacks for the federation.")
@click.option("--malicious", default=0.3, show_default=True, type=click.FloatRange(0, 0.9),
              help="Share of attackers in the federation (when attacking).")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--json", "json_path", default=Path("reports/bench/privacy_he.json"),
              show_default=True, type=click.Path(dir_okay=False, path_type=Path))
def main(clients: int, sizes: list[int], federation: bool, federation_clients: int,
         federation_rounds: int, attacks: str, malicious: float, seed: int,
         json_path: Path) -> None:

    from fl_agent.simulation.attacks import ATTACKS as SIMULATED

    names = [a for a in attacks.split(",") if a]
    unknown = sorted(set(names) - set(SIMULATED))
    if unknown:
        raise click.BadParameter(f"unknown attack(s) {', '.join(unknown)}",
                                 param_hint="--attacks")
    if any(size < 1 for size in sizes):
        raise click.BadParameter("sizes must be positive", param_hint="--sizes")
    about = machine()
    with progress_bar() as progress:
        result = {
            "machine": about,
            "rounds": [measure_round(clients, size, seed, progress) for size in sizes],
            "federation": [measure_federation(federation_clients, federation_rounds, attack,
                                              malicious, seed, progress)
                           for attack in names] if federation else [],
        }
    publish(result, json_path, markdown(result))


if __name__ == "__main__":
    main()
