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

Trials, each with fresh projection directions and a fresh attacker (its own noise), on a
model of two ciphertexts (8096 values):

* ``hidden``: ``h`` in the update's values, the harmful case, claiming ``|v|^2``;
* ``padding``: ``h`` in the slots past the update's length (reaches no parameter);
* ``imaginary``: ``h`` as the imaginary parts of the slots (reaches no parameter);
* ``split``: ``h`` in the first chunk and ``-h`` in the same slots of the second (what
  would cancel in the projections if they reused one direction for every chunk);
* ``largest``: ``hidden``, claiming the longest squared norm the key holder lets through
  (0.99 of ``max_squared_norm``, ``W / 2^20``): the attacker's best chance;
* ``beyond``: ``hidden``, claiming 0.99 x 2^37, past that cap (refused by it): its
  projections alone test the statistics (predicted to pass them with chance
  ``P[chi2_4 <= 47.9 / R^2]``, ``R^2 = (W + s) / s`` about 9).

Measured: how often the key holder marks each kind implausible and FLTrust rejects it, how
often its projections alone would let it through (the sum of their squares within
``PROJECTION_BOUND`` times the decrypted squared norm), and how far the round's step goes
along ``h`` with and without the check (in units of ``|g0|``, after the key holder's bound
of the aggregate to ``|g0|``); and, over the same trials, how often an honest update is
marked (expected: never; the bound's false alarm is 1e-9).

    python -m benchmarks.privacy_he_wrap                 # 200 trials, about 3 minutes
    python -m benchmarks.privacy_he_wrap --trials 20     # quick
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import machine, progress_bar, publish

#: The crafted kinds, in the order of the table.
KINDS = ("hidden", "padding", "imaginary", "split", "largest", "beyond")
#: Honest updates per trial.
HONEST = 4
#: Parameters of the synthetic model: two ciphertexts, with 96 slots of padding.
LENGTH = 8096


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
    period = context.wrap_period
    hidden = np.zeros(total, dtype=np.complex128)
    if kind == "imaginary":
        hidden = 1j * rng.normal(size=total)
    elif kind == "padding":
        if total == length:
            raise ValueError("no padding slots: choose a length that leaves some")
        hidden[length:] = rng.normal(size=total - length)
    elif kind == "split":  # h in chunk 0, -h in the same slots of chunk 1
        width = length - context.slots
        if width <= 0:
            raise ValueError("split needs two chunks: choose a longer length")
        pair = np.stack([g0[:width] - g0[context.slots:length],
                         v[:width] - v[context.slots:length]], axis=1)
        basis, _ = np.linalg.qr(pair)  # <h, g0> = <h0, g0a - g0b>: keep h0 orthogonal
        first = rng.normal(size=width)
        first -= basis @ (basis.T @ first)
        hidden[:width], hidden[context.slots:length] = first, -first
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
    projection directions: which are marked implausible and rejected, whether their
    projections alone would pass, and how far the round's step goes along ``h`` with and
    without the key holder's flags."""
    from fl_agent.privacy.he import (
        PROJECTION_BOUND,
        PROJECTIONS,
        RoundScalars,
        encrypt_update,
        encrypted_scalars,
        fltrust_weights,
    )
    from fl_agent.privacy.he_format import SCALARS_FORMAT, unpack

    context = key_holder.public
    g0 = rng.normal(0, 0.01, LENGTH)
    honest = [g0 * rng.uniform(0.5, 2.0) + rng.normal(0, 0.01, LENGTH) for _ in range(HONEST)]
    visible = g0 * 0.9 + rng.normal(0, 0.005, LENGTH)
    claims = {"largest": 0.99 * context.max_squared_norm, "beyond": 0.99 * 2.0 ** 37}
    documents = [encrypt_update(context, delta) for delta in honest]
    reals = list(honest)
    for kind in KINDS:
        document, real = wrapped_update(context, visible, g0, kind, rng,
                                        claimed=claims.get(kind))
        documents.append(document)
        reals.append(real)
    document = encrypted_scalars(context, documents, g0)
    scalars = key_holder.decrypt_scalars(document)
    # The projections themselves, which the key holder never releases: decrypted here only
    # to measure the test on them alone.
    frames = unpack(document, SCALARS_FORMAT, {"context": str, "projections": int,
                                               "updates": int},
                    context.max_ciphertext_bytes)[1]
    per_update = 2 + PROJECTIONS
    norm = float(np.linalg.norm(g0))

    def decide(among: list[int], check: bool) -> Any:
        flags = scalars.implausible[among] if check else None
        return fltrust_weights(RoundScalars(scalars.dots[among], scalars.squared_norms[among],
                                            flags), norm)

    def along_h(decision: Any, among: list[int], h: np.ndarray) -> float:
        step = np.asarray(reals)[among].T @ decision.weights
        length = float(np.linalg.norm(step))
        if length > norm:  # the key holder's bound on the aggregate
            step = step * (norm / length)
        length_h = float(np.linalg.norm(h))
        return float(step @ h / length_h / norm) if length_h else 0.0

    honest_ids = list(range(HONEST))
    everyone = decide(list(range(len(documents))), True)
    rows: dict[str, Any] = {"honest_marked": int(np.sum(scalars.implausible[:HONEST])),
                            "honest_rejected": sum(i in everyone.reasons for i in honest_ids)}
    for k, kind in enumerate(KINDS):
        i = HONEST + k
        among = [*honest_ids, i]  # the round with this attacker alone in it
        checked, unchecked = decide(among, True), decide(among, False)
        projections = [float(key_holder._decrypt(frames[per_update * i + 2 + j],
                                                 context.slots, "projection").mean())
                       for j in range(PROJECTIONS)]
        squared = float(scalars.squared_norms[i])
        h = reals[i] - visible * np.sqrt(claims.get(kind, float(visible @ visible))
                                         / float(visible @ visible))
        rows[kind] = {
            "decrypted_squared_norm": squared,
            "claimed": claims.get(kind, float(visible @ visible)),
            "marked": bool(scalars.implausible[i]),
            "rejected": checked.reasons.get(HONEST),
            "rejected_without_check": unchecked.reasons.get(HONEST),
            "projections_pass": bool(sum(p * p for p in projections)
                                     <= PROJECTION_BOUND * max(squared, 1e-8)),
            "along_h_checked": along_h(checked, among, h),
            "along_h_unchecked": along_h(unchecked, among, h),
        }
    return rows


def summarize(trials: list[dict[str, Any]], period: float) -> dict[str, Any]:
    """Counts and extremes over the trials; ``period`` is ``PublicContext.wrap_period``."""
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
            "projections_pass": sum(r["projections_pass"] for r in rows),
            "along_h_checked_max": max(abs(r["along_h_checked"]) for r in rows),
            "along_h_unchecked_median": float(np.median([r["along_h_unchecked"]
                                                         for r in rows])),
        }
    claimed = float(np.median([t["beyond"]["claimed"] for t in trials]))
    out["beyond_projections_pass_predicted"] = float(chi2.cdf(
        PROJECTION_BOUND * claimed / (period + claimed), PROJECTIONS))
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [f"{s['trials']} trials; honest updates marked implausible: {s['honest_marked']} "
             f"of {s['honest_updates']}, rejected: {s['honest_rejected']}",
             "",
             "| crafted update | marked implausible | rejected | its projections alone pass "
             "| accepted without the check | step along h, checked (largest) "
             "| unchecked (median) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    n = s["trials"]
    for kind, k in s["kinds"].items():
        lines.append(f"| {kind} | {k['marked']} / {n} | {k['rejected']} / {n} | "
                     f"{k['projections_pass']} / {n} | {k['accepted_without_check']} / {n} | "
                     f"{k['along_h_checked_max']:.3f} |g0| | "
                     f"{k['along_h_unchecked_median']:.3f} |g0| |")
    lines.append("")
    lines.append(f"beyond: predicted to pass the projections alone with chance "
                 f"{s['beyond_projections_pass_predicted']:.3f}")
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
    summary = summarize(results, key_holder.public.wrap_period)
    result = {"machine": machine(), "seed": seed, "summary": summary, "trials": results}
    publish(result, json_path, markdown(result))


if __name__ == "__main__":
    main()
