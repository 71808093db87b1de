"""A squared norm wrapped around the CKKS modulus, against the key holder's projection check
(:mod:`fl_agent.privacy.he`, "Why the random projections").

The decrypted scalars are known only modulo ``W = q / scale^2`` (about 2^40 at the default
parameters). A participant that crafts its ciphertext (SEAL directly, not
:func:`~fl_agent.privacy.he.encrypt_update`) can send ``x = v + h``: ``v`` an honest-looking
delta, ``h`` orthogonal to ``v`` and to the aggregator's g0 (the attacker is granted g0,
the worst case) with ``|h|^2`` a multiple of ``W`` minus ``|v|^2`` plus the squared norm it
wants decrypted. The scalars then describe ``v`` alone, so FLTrust trusts it, and its weight
multiplies the huge ``h``: the round's aggregate becomes ``h``'s direction, held only to
``|g0|`` by the bound on the aggregate.

Trials, each with fresh projection directions and a fresh attacker (its own noise):

* ``hidden``: ``h`` in the update's values, the harmful case, claiming ``|v|^2``;
* ``padding``: ``h`` in the slots past the update's length (reaches no parameter);
* ``imaginary``: ``h`` as the imaginary parts of the slots (reaches no parameter);
* ``largest``: ``hidden``, claiming the longest norm the rule lets through
  (``MAX_NORM_RATIO`` times the round's typical norm): the attacker's best chance;
* ``unbounded``: ``hidden``, claiming a squared norm near the most an honest encryption
  carries, 2^37: what the projections alone would face without the rule's norm bound
  (predicted to pass with chance ``P[chi2_4 <= 47.9 / R^2]``, ``R^2 = (W + s) / s``).

Measured: how often the key holder marks each kind implausible, how often FLTrust then
rejects it, and how far the round's aggregate moves off the honest-only aggregate with and
without the check; and, over the same trials, how often an honest update is marked
(expected: never; the bound's false alarm is 1e-9).

    python -m benchmarks.privacy_he_wrap                 # 200 trials, about 2 minutes
    python -m benchmarks.privacy_he_wrap --trials 20     # quick
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import machine, progress_bar, publish

#: The crafted kinds, in the order of the table.
KINDS = ("hidden", "padding", "imaginary", "largest", "unbounded")
#: Honest updates per trial (their norms set the round's median).
HONEST = 4
#: Parameters of the synthetic model: one ciphertext, with 96 slots of padding.
LENGTH = 4000


def wrap_period(context: Any) -> float:
    """``W``: the modulus of a decrypted scalar (the top level's data primes over the
    product's scale, ``scale^2``)."""
    seal = context.tenseal_context.seal_context().data
    modulus = 1
    for prime in seal.first_context_data().parms().coeff_modulus():
        modulus *= prime.value()
    return modulus / context.scale ** 2


def crafted_update(context: Any, slots: np.ndarray, length: int) -> bytes:
    """An update document whose chunks encrypt ``slots`` (complex, ``chunks x slots``
    values) as they are: what a participant can send by calling SEAL itself, without
    :func:`~fl_agent.privacy.he.encrypt_update`'s checks."""
    import tenseal.sealapi as sealapi

    from fl_agent.privacy.he_format import UPDATE_FORMAT, ciphertext_bytes, pack

    seal = context.tenseal_context.seal_context().data
    encoder = sealapi.CKKSEncoder(seal)
    encryptor = sealapi.Encryptor(seal, context.tenseal_context.data.public_key())
    values = np.asarray(slots, dtype=np.complex128).reshape(-1, context.slots)
    ciphertexts = []
    for chunk in values:
        plaintext, ciphertext = sealapi.Plaintext(), sealapi.Ciphertext()
        encoder.encode(chunk.tolist(), seal.first_parms_id(), context.scale, plaintext)
        encryptor.encrypt(plaintext, ciphertext)
        ciphertexts.append(ciphertext)
    return pack({"chunks": len(ciphertexts), "context": context.fingerprint,
                 "format": UPDATE_FORMAT, "length": length, "slots": context.slots},
                ciphertext_bytes(ciphertexts))


def wrapped_update(context: Any, visible: np.ndarray, g0: np.ndarray, kind: str,
                   rng: np.random.Generator, *, claimed: float | None = None
                   ) -> tuple[bytes, np.ndarray]:
    """The crafted document of ``kind`` (module docstring) and the real parts of its
    ``length`` values, which is what the aggregate adds. ``visible`` is rescaled so that the
    decrypted squared norm is ``claimed`` (default ``|visible|^2``)."""
    length = visible.size
    total = context.chunks(length) * context.slots
    v = np.asarray(visible, dtype=np.float64)
    if claimed is not None:
        v = v * np.sqrt(claimed) / np.linalg.norm(v)
    squared = float(v @ v)
    period = wrap_period(context)
    hidden = np.zeros(total, dtype=np.complex128)
    if kind == "imaginary":
        noise = rng.normal(size=total)
        hidden = 1j * noise
    elif kind == "padding":
        if total == length:
            raise ValueError("no padding slots: choose a length that leaves some")
        hidden[length:] = rng.normal(size=total - length)
    else:  # in the update's values, orthogonal to g0 and to v
        basis, _ = np.linalg.qr(np.stack([g0, v], axis=1))
        direction = rng.normal(size=length)
        hidden[:length] = direction - basis @ (basis.T @ direction)
    hidden *= np.sqrt(period) / np.linalg.norm(hidden)  # |h|^2 = W: decrypts to |v|^2
    values = hidden.copy()
    values[:length] += v
    assert abs(float(np.vdot(values, values).real) - (period + squared)) < 1e-3 * period
    return crafted_update(context, values, length), values[:length].real.copy()


def trial(key_holder: Any, rng: np.random.Generator) -> dict[str, Any]:
    """One round of ``HONEST`` honest updates and one crafted update of every kind, on fresh
    projection directions: which are marked implausible and rejected, and how far the
    aggregate moves off the honest-only one with and without the check."""
    from fl_agent.privacy.he import (
        RoundScalars,
        encrypt_update,
        encrypted_scalars,
        fltrust_weights,
    )
    from fl_agent.privacy.he_rule import MAX_NORM_RATIO

    context = key_holder.public
    g0 = rng.normal(0, 0.01, LENGTH)
    honest = [g0 * rng.uniform(0.5, 2.0) + rng.normal(0, 0.01, LENGTH) for _ in range(HONEST)]
    typical = max(float(np.linalg.norm(g0)), float(np.median(np.linalg.norm(honest, axis=1))))
    visible = g0 * 0.9 + rng.normal(0, 0.005, LENGTH)
    claims = {"largest": (0.99 * MAX_NORM_RATIO * typical) ** 2,
              "unbounded": 0.99 * context.max_squared_norm}
    documents = [encrypt_update(context, delta) for delta in honest]
    reals = list(honest)
    for kind in KINDS:
        document, real = wrapped_update(context, visible, g0, kind, rng,
                                        claimed=claims.get(kind))
        documents.append(document)
        reals.append(real)
    scalars = key_holder.decrypt_scalars(encrypted_scalars(context, documents, g0))
    norm = float(np.linalg.norm(g0))

    def decide(among: list[int], check: bool) -> Any:
        flags = scalars.implausible[among] if check else None
        return fltrust_weights(RoundScalars(scalars.dots[among], scalars.squared_norms[among],
                                            flags), norm)

    def moved(decision: Any, among: list[int]) -> np.ndarray:
        delta = np.asarray(reals)[among].T @ decision.weights
        length = float(np.linalg.norm(delta))
        return delta * (norm / length) if length > norm else delta  # the aggregate's bound

    honest_ids = list(range(HONEST))
    target = moved(decide(honest_ids, True), honest_ids)
    everyone = decide(list(range(len(documents))), True)
    rows: dict[str, Any] = {"honest_marked": int(np.sum(scalars.implausible[:HONEST])),
                            "honest_rejected": sum(i in everyone.reasons for i in honest_ids)}
    for k, kind in enumerate(KINDS):
        among = [*honest_ids, HONEST + k]  # the round with this attacker alone in it
        checked, unchecked = decide(among, True), decide(among, False)
        rows[kind] = {
            "decrypted_squared_norm": float(scalars.squared_norms[HONEST + k]),
            "claimed": claims.get(kind, float(visible @ visible)),
            "marked": bool(scalars.implausible[HONEST + k]),
            "rejected": checked.reasons.get(HONEST),
            "rejected_without_check": unchecked.reasons.get(HONEST),
            # how far the round's step lands from the honest-only step, in units of |g0|
            "drift_checked": float(np.linalg.norm(moved(checked, among) - target) / norm),
            "drift_unchecked": float(np.linalg.norm(moved(unchecked, among) - target) / norm),
        }
    return rows


def summarize(trials: list[dict[str, Any]], period: float) -> dict[str, Any]:
    """Counts and extremes over the trials; ``period`` is :func:`wrap_period`."""
    from scipy.stats import chi2

    from fl_agent.privacy.he import PROJECTION_BOUND, PROJECTIONS

    n = len(trials)
    out: dict[str, Any] = {
        "trials": n,
        "honest_updates": n * HONEST,
        "honest_marked": sum(t["honest_marked"] for t in trials),
        "honest_rejected": sum(t["honest_rejected"] for t in trials),
        "kinds": {},
    }
    for kind in KINDS:
        rows = [t[kind] for t in trials]
        out["kinds"][kind] = {
            "marked": sum(r["marked"] for r in rows),
            "rejected": sum(r["rejected"] is not None for r in rows),
            "accepted_without_check": sum(r["rejected_without_check"] is None for r in rows),
            "drift_checked_max": max(r["drift_checked"] for r in rows),
            "drift_unchecked_median": float(np.median([r["drift_unchecked"] for r in rows])),
        }
    claimed = float(np.median([t["unbounded"]["claimed"] for t in trials]))
    out["unbounded_pass_predicted"] = float(chi2.cdf(
        PROJECTION_BOUND * claimed / (period + claimed), PROJECTIONS))
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [f"{s['trials']} trials; honest updates marked implausible: {s['honest_marked']} "
             f"of {s['honest_updates']}, rejected: {s['honest_rejected']}",
             "",
             "| crafted update | marked implausible | rejected | accepted without the check "
             "| aggregate off the honest one, checked (max) | unchecked (median) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind, k in s["kinds"].items():
        lines.append(f"| {kind} | {k['marked']} / {s['trials']} | {k['rejected']} / "
                     f"{s['trials']} | {k['accepted_without_check']} / {s['trials']} | "
                     f"{k['drift_checked_max']:.3f} |g0| | {k['drift_unchecked_median']:.3f} "
                     "|g0| |")
    lines.append("")
    lines.append(f"unbounded: predicted to pass the projections alone with chance "
                 f"{s['unbounded_pass_predicted']:.3f}")
    return "\n".join(lines)


@click.command(help=__doc__)
@click.option("--trials", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="Rounds, each with fresh projection directions and attackers.")
@click.option("--seed", default=11, show_default=True, type=int)
@click.option("--json", "json_path", default=Path("reports/bench/privacy_he_wrap.json"),
              show_default=True, type=click.Path(dir_okay=False, path_type=Path))
def main(trials: int, seed: int, json_path: Path) -> None:
    from fl_agent.privacy.he import KeyHolder

    key_holder = KeyHolder.create()
    rng = np.random.default_rng(seed)
    results = []
    with progress_bar() as progress:
        task = progress.add_task("wrapped norms", total=trials)
        for _ in range(trials):
            results.append(trial(key_holder, rng))
            progress.advance(task)
    summary = summarize(results, wrap_period(key_holder.public))
    result = {"machine": machine(), "seed": seed, "summary": summary, "trials": results}
    publish(result, json_path, markdown(result))


if __name__ == "__main__":
    main()
