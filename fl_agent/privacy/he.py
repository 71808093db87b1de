"""Homomorphic aggregation with CKKS (TenSEAL): FLTrust on encrypted updates, as pure
computation, in the manner of PBFL (Miao et al., "Privacy-preserving Byzantine-robust
federated learning via blockchain systems", IEEE TIFS 2022).

Roles, and what each holds::

    key holder   the task creator, or a key holder it names. Creates the CKKS context and
                 keeps its secret key; publishes the public context (its CID goes in the task
                 document). Decrypts only per-update scalars and the final aggregate.
    participant  encrypts its update's delta (local - global) under the public context.
    aggregator   no secret key. Trains the reference direction g0 in the clear on its own
                 validation data (FLTrust's server update, minus the global model) and
                 computes on ciphertexts.

A round (every arrow is a document of :mod:`fl_agent.privacy.he_format`)::

    participant  encrypt_update(ctx, delta)                        -> update document
    aggregator   encrypted_scalars(ctx, updates, g0)               -> scalars document
    key holder   KeyHolder.decrypt_scalars(scalars)                -> RoundScalars
    aggregator   decision = fltrust_weights(scalars, |g0|)            (he_rule, in the clear)
                 weighted_sum(ctx, updates, decision.weights)      -> aggregate document
    key holder   KeyHolder.decrypt_aggregate(aggregate, d)         -> sum_i w_i delta_i
    anyone       decision.result(global, delta)                    -> AggregationResult

On ciphertexts the aggregator computes, per update, ``<delta_i, g0>`` (plaintext-ciphertext
products of every chunk, added, then summed over the slots by rotations), ``|delta_i|^2``
(each chunk times its complex conjugate, added, relinearized once, summed over the slots),
:data:`PROJECTIONS` random projections that let the key holder check that squared norm (as
the inner product, on random directions) and,
once the weights are known, ``sum_i w_i delta_i`` (plaintext-scalar products, added). Adding
the chunk products before the one rotation sum per scalar keeps the rotations at 2 x 12 per
update however long the model is (plus 12 per projection); the conjugates cost one key
switch per chunk.

Why the conjugate: CKKS slots are complex, and a participant can encrypt ``a + ib`` (SEAL
encodes complex numbers; :func:`encrypt_update` never does). Only the real part ``a`` reaches
the aggregate and the inner product with the real ``g0``; a chunk squared would give
``sum(a^2 - b^2)``, a norm the participant shortens at will, so an update pulling hard in one
direction could pass as short and aligned with g0. ``x * conj(x)`` is ``a^2 + b^2`` in every
slot: the squared norm is never below the real part's, so imaginary parts can only lower
their sender's cosine and weight.

Why the random projections: the decrypted scalars are known only modulo ``W``, the modulus
over the product's scale (2^40 at the default parameters, below). A participant who crafts a
ciphertext can make its squared norm wrap around to a value of its choice while the update
itself is huge, nearly orthogonal to g0, and passes for short and aligned. Nothing computed
from the squared norm sees this (its every multiple wraps alike). So the aggregator also
computes, per update, :data:`PROJECTIONS` projections ``Re sum(x * r_j)`` on complex Gaussian
directions ``r_j``, independent over every slot of every chunk (real and imaginary parts
standard normal), from a fresh seed: the aggregator calls it once the round's updates are
fixed, so no participant can aim at them. For any update, wrapped or not, each
projection is a normal variable of variance ``|x|^2`` (the true squared norm, of the complex
slots), so the sum of their squares over ``|x|^2`` is chi-squared with :data:`PROJECTIONS`
degrees of freedom. The key holder decrypts them with the scalars and marks the update
implausible when that sum exceeds :data:`PROJECTION_BOUND` times the decrypted squared norm
(an honest update does so with chance :data:`PROJECTION_FALSE_ALARM`, 1e-9), or when the
decrypted squared norm is above ``PublicContext.max_squared_norm``, ``W / 2^20`` (four times
the most :func:`encrypt_update` encrypts: it shortens a longer delta, which FLTrust does not
notice). So a wrapped update that is not marked decrypts to at most ``W / 2^20`` while its
true squared norm is at least ``W``: ``R^2 >= 2^20`` times the decrypted one, and it passes
with chance at most ``P[chi2_4 <= 47.9 / 2^20]``, about 2.6e-10 for each crafted update,
whatever the other updates of the round. A projection wraps only where ``|x|`` itself
approaches ``W / 2`` (2^39), and then lands anywhere in the modulus: as good as huge. The
projections are linear in the update, so they cost one plaintext product per chunk and one
rotation sum each (:data:`PROJECTIONS` x 12 more rotations per update); their directions are
encoded once a round and held (4 x chunks plaintexts, about 125 MB at 1M parameters). The key
holder never releases them: it learns :data:`PROJECTIONS` random projections of each update a
round beyond its cosine and norm, and the aggregator one flag per update. The aggregator
draws the directions; one that chose them to let an update through could as well accept that
update outright.

Parameters (:class:`CKKSParameters`): ring degree 8192 (4096 slots per ciphertext), primes of
60, 60 and 60 bits (two data primes and the key-switching prime: 180 bits, within the 218 the
HE standard allows at 128-bit security for this degree) and scale 2^40. Every computation
has exactly one multiplication and its result is *not* rescaled: it stays at scale 2^80 in the
120-bit modulus, so a squared norm, inner product or aggregate coordinate up to 2^39 (5.5e11)
decrypts correctly. Rescaling would shrink the ciphertexts the key holder receives, but by a
60-bit prime it leaves scale 2^20 (too coarse) and with a 40-bit data prime instead only 2^19
(5e5) of room. :func:`encrypt_update` keeps every squared norm at most 2^18, a quarter of the
cap 2^20 that sits 2^20 times below the wrap (see the projections above).

What is checked, before any arithmetic: a document's header and that its context
fingerprint (SHA-256 of the public context bytes) is the task's, its size, its chunk count,
and every ciphertext: it must parse under the task's context (SEAL rejects other parameters),
have two polynomials, be at the top level and carry the expected scale. TenSEAL itself loads
a ciphertext made under *another key with the same parameters* without complaint and computes
garbage from it; the fingerprint is what catches an honest mistake, and a dishonest
participant could anyway encrypt anything (see docs/privacy-he.md for what the rule and the
key holder's checks bound).

Modules: this one has the aggregator's arithmetic, the key holder and a simulated round;
:mod:`~fl_agent.privacy.he_context` the context and the participant's side (encrypting and
checking updates); :mod:`~fl_agent.privacy.he_rule` the rule on decrypted scalars;
:mod:`~fl_agent.privacy.he_format` the documents. Everything is importable from here.

Errors: :class:`~fl_agent.privacy.he_format.HEError` (a ``FairFLError`` and ``ValueError``)
for a bad context or document; :class:`~fl_agent.errors.ConfigError` for bad arguments.
Arithmetic, keys and serialization are TenSEAL's and SEAL's (through ``tenseal.sealapi``,
because TenSEAL's vectors relinearize after every product and cannot add chunks before the
rotation sum); only the rotation sum's loop and the document framing are written here.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from fl_agent.errors import ConfigError
from fl_agent.learning.models import finite_vector
from fl_agent.privacy.he_context import (
    CKKSParameters,
    EncryptedUpdate,
    PublicContext,
    _as_context,
    _check_fingerprint,
    _checked_ciphertext,
    _load_context,
    _updates,
    context_fingerprint,
    decode_update,
    encrypt_update,
)
from fl_agent.privacy.he_format import (
    AGGREGATE_FORMAT,
    SCALARS_FORMAT,
    HEError,
    ciphertext_bytes,
    pack,
    unpack,
    vector_proto,
)
from fl_agent.privacy.he_rule import MIN_NORM, RoundScalars, TrustDecision, fltrust_weights

#: How far apart the slots of a decrypted scalar may be (relative, and absolute below 1).
SCALAR_SPREAD = 1e-6
#: Most updates one scalars document may carry.
MAX_UPDATES = 100_000
#: Random projections per update that check its squared norm (module docstring).
PROJECTIONS = 4
#: The chance that an honest update's projections exceed :data:`PROJECTION_BOUND`.
PROJECTION_FALSE_ALARM = 1e-9
#: The key holder refuses an update's scalars when its projections' squares add up to more
#: than this many times its squared norm: the ``1 - PROJECTION_FALSE_ALARM`` quantile of
#: chi-squared with :data:`PROJECTIONS` degrees of freedom, their sum's law for an honest
#: update (about 47.9).
PROJECTION_BOUND = float(chi2.isf(PROJECTION_FALSE_ALARM, PROJECTIONS))
#: How far (relative) a decrypted squared norm may exceed ``max_squared_norm`` from CKKS error
#: (honest deltas stay at a quarter of it: this only spares a vector exactly at the cap).
NORM_TOLERANCE = 1e-6
#: Standard deviation of the Gaussian noise the key holder adds to every value it releases
#: (about 30 times the CKKS error at the default parameters; see KeyHolder).
RELEASE_NOISE = 2.0 ** -30

FloatArray = NDArray[np.float64]
_MISSING: Any = object()


# -------------------------------------------------------------------------------- aggregator


def encrypted_scalars(public_context: PublicContext | bytes,
                      updates: Iterable[bytes | EncryptedUpdate], reference: ArrayLike, *,
                      seed: int | None = None) -> bytes:
    """The scalars document: for each update, its inner product with ``reference`` (g0, the
    aggregator's own update direction, in the clear), its squared norm (of the complex
    slots: never below the real part's) and :data:`PROJECTIONS` random projections that let
    the key holder check that squared norm (module docstring), all still encrypted.

    The projections' directions are complex Gaussian vectors over every slot of every chunk,
    drawn from ``seed``; ``None`` (what the aggregator passes) draws a fresh seed from the
    operating system once the updates are fixed, so no participant can aim at them.
    Updates are processed one at a time (documents may be a lazy iterable); with a given
    ``seed``, deterministic: the same inputs give the same bytes."""
    context = _as_context(public_context)
    evaluator, _ = context._arithmetic()
    direction = finite_vector(reference, "reference", HEError)
    if not np.any(direction):
        raise HEError("the reference direction is zero: FLTrust gives every update zero "
                      "trust, there is nothing to compute")
    relin = context.tenseal_context.data.relin_keys()
    galois = context.tenseal_context.data.galois_keys()
    conjugate = sealapi.Ciphertext()
    plain = [context._encode(chunk.tolist()) if np.any(chunk) else None
             for chunk in (direction[s:s + context.slots]
                           for s in range(0, direction.size, context.slots))]
    directions = _projection_directions(context, len(plain), seed)
    results: list[Any] = []
    for update in _updates(context, updates, direction.size):
        dot, square, term = sealapi.Ciphertext(), sealapi.Ciphertext(), sealapi.Ciphertext()
        first_dot = True
        for ciphertext, reference_chunk in zip(update.ciphertexts, plain, strict=True):
            if reference_chunk is None:  # SEAL refuses a product with an all-zero plaintext
                continue
            evaluator.multiply_plain(ciphertext, reference_chunk, dot if first_dot else term)
            if not first_dot:
                evaluator.add_inplace(dot, term)
            first_dot = False
        for j, ciphertext in enumerate(update.ciphertexts):
            # x * conj(x) = a^2 + b^2 per slot, not x^2 = a^2 - b^2 (module docstring)
            evaluator.complex_conjugate(ciphertext, galois, conjugate)
            evaluator.multiply(ciphertext, conjugate, square if j == 0 else term)
            if j:
                evaluator.add_inplace(square, term)
        evaluator.relinearize_inplace(square, relin)
        results += [context._sum_slots(dot), context._sum_slots(square)]
        for chunks in directions:
            projection = sealapi.Ciphertext()
            for j, (ciphertext, random_chunk) in enumerate(zip(update.ciphertexts, chunks,
                                                               strict=True)):
                evaluator.multiply_plain(ciphertext, random_chunk, projection if j == 0 else term)
                if j:
                    evaluator.add_inplace(projection, term)
            results.append(context._sum_slots(projection))
        if len(results) > (2 + PROJECTIONS) * MAX_UPDATES:
            raise ConfigError(f"more than {MAX_UPDATES} updates in one round")
    if not results:
        raise ConfigError("no updates: a round needs at least one")
    return pack({"context": context.fingerprint, "format": SCALARS_FORMAT,
                 "projections": PROJECTIONS, "updates": len(results) // (2 + PROJECTIONS)},
                ciphertext_bytes(results))


def _projection_directions(context: PublicContext, chunks: int,
                           seed: int | None) -> list[list[Any]]:
    """:data:`PROJECTIONS` directions, each ``chunks`` plaintexts of complex slots ``u + iv``
    with ``u`` and ``v`` independent standard normal: the real part of ``sum(x * (u + iv))``
    is ``sum(a u - b v)`` for slots ``x = a + ib``, a normal variable of variance
    ``sum(a^2 + b^2)``, the squared norm :func:`encrypted_scalars` computes."""
    if seed is not None and not (isinstance(seed, int) and seed >= 0):
        raise ConfigError(f"seed must be an integer >= 0 or None, got {seed!r}")
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    return [[context._encode((rng.standard_normal(context.slots)
                              + 1j * rng.standard_normal(context.slots)).tolist())
             for _ in range(chunks)] for _ in range(PROJECTIONS)]


def weighted_sum(public_context: PublicContext | bytes,
                 updates: Iterable[bytes | EncryptedUpdate], weights: ArrayLike,
                 length: int) -> bytes:
    """The aggregate document ``sum_i weights[i] * delta_i`` over updates of ``length``
    values. Updates with weight 0 are skipped without being decoded (a rejected update is
    never touched). Deterministic: the key holder can recompute it to check it."""
    context = _as_context(public_context)
    evaluator, _ = context._arithmetic()
    factors = finite_vector(weights, "weights", HEError)
    if not np.any(factors):
        raise ConfigError("every weight is 0: nothing to aggregate (keep the global model)")
    total: list[Any] | None = None
    term = sealapi.Ciphertext()
    for update, weight in zip_longest(updates, factors.tolist(), fillvalue=_MISSING):
        if update is _MISSING or weight is _MISSING:
            raise ConfigError("weights and updates differ in number")
        if weight == 0.0:
            continue
        (loaded,) = _updates(context, [update], length)
        factor = context._encode(float(weight))
        if total is None:
            total = []
            for ciphertext in loaded.ciphertexts:
                product = sealapi.Ciphertext()
                evaluator.multiply_plain(ciphertext, factor, product)
                total.append(product)
            continue
        for accumulated, ciphertext in zip(total, loaded.ciphertexts, strict=True):
            evaluator.multiply_plain(ciphertext, factor, term)
            evaluator.add_inplace(accumulated, term)
    assert total is not None  # some weight is non-zero
    return pack({"chunks": len(total), "context": context.fingerprint,
                 "format": AGGREGATE_FORMAT, "length": length, "slots": context.slots},
                ciphertext_bytes(total))


# -------------------------------------------------------------------------------- key holder


class KeyHolder:
    """Holds a task's secret key. Decrypts only what the protocol asks of it: per-update
    scalars (replicated in every slot, as a sum over the slots leaves them) and the final
    aggregate. ``secret_context`` and ``public_context`` are the bytes
    :meth:`create` made (kept together: a re-serialized context gets fresh Galois keys, hence
    another fingerprint).

    Every released value carries Gaussian noise of standard deviation ``release_noise``.
    The aggregator knows the ciphertexts it asks to have decrypted, and an exact CKKS
    decryption of a known ciphertext reveals its error term, from which enough decryptions
    recover the secret key (Li and Micciancio, EUROCRYPT 2021). The default, 2^-30, hides
    that error under noise about 30 times larger and costs nothing the rule can see; it is a
    heuristic, not the statistical flooding a proof needs (about 40 bits more, which these
    parameters cannot give). 0 turns it off."""

    def __init__(self, secret_context: bytes, public_context: bytes, *,
                 release_noise: float = RELEASE_NOISE) -> None:
        if not (isinstance(release_noise, int | float) and math.isfinite(release_noise)
                and release_noise >= 0):
            raise ConfigError(f"release_noise must be a finite number >= 0, got "
                              f"{release_noise!r}")
        self.release_noise = float(release_noise)
        self._rng = np.random.default_rng()  # seeded from the operating system's entropy
        self._secret = _load_context(secret_context, "the secret context")
        if not self._secret.is_private():
            raise HEError("the secret context holds no secret key")
        self.public = PublicContext(public_context)
        self.secret_context = bytes(secret_context)
        probe = ts.ckks_vector(self.public.tenseal_context, [1.0])
        try:
            value = ts.ckks_vector_from(self._secret, probe.serialize()).decrypt()[0]
        except (ValueError, RuntimeError) as err:
            raise HEError(f"the secret and public contexts do not match: {err}") from err
        if abs(value - 1.0) > 1e-3:
            raise HEError("the secret context does not decrypt what the public context "
                          "encrypts: they belong to different keys")
        self._top = self._secret.seal_context().data.first_parms_id()

    @classmethod
    def create(cls, poly_modulus_degree: int = 8192,
               coeff_mod_bit_sizes: Sequence[int] = (60, 60, 60),
               scale_bits: int = 40, *, release_noise: float = RELEASE_NOISE) -> KeyHolder:
        """A new key pair: a secret context (small: it regenerates its evaluation keys) and a
        public one with the public, relinearization and Galois keys (about 20 MB at the
        default parameters, nearly all Galois keys)."""
        params = CKKSParameters(poly_modulus_degree, tuple(coeff_mod_bit_sizes), scale_bits)
        context = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=params.poly_modulus_degree,
                             coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
        context.global_scale = 2.0 ** params.scale_bits
        context.generate_galois_keys()
        return cls(context.serialize(save_secret_key=True, save_galois_keys=False,
                                     save_relin_keys=False),
                   context.serialize(save_secret_key=False), release_noise=release_noise)

    @property
    def public_context(self) -> bytes:
        return self.public.data

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def _release(self, values: FloatArray) -> FloatArray:
        if self.release_noise == 0:
            return values
        return values + self._rng.normal(0.0, self.release_noise, values.shape)

    def _decrypt(self, frame: bytes, size: int, what: str) -> FloatArray:
        try:
            vector = ts.ckks_vector_from(self._secret,
                                         vector_proto([size], [frame], self.public.scale))
        except (ValueError, RuntimeError, TypeError) as err:
            raise HEError(f"{what} is not a ciphertext of this task's context: {err}") from err
        # A result of one product has scale^2; a fresh ciphertext (an update itself) does not.
        _checked_ciphertext(vector.ciphertext()[0], self._top, self.public.scale ** 2, what)
        return np.asarray(vector.decrypt(), dtype=np.float64)

    def decrypt_scalars(self, document: bytes) -> RoundScalars:
        """The inner products and squared norms of a scalars document (plus release noise),
        and which updates' squared norms are not to be believed (``RoundScalars.implausible``):
        a squared norm above ``max_squared_norm`` (four times what :func:`encrypt_update`
        lets through), or one that the update's random projections show to be far too short
        (module docstring). The
        projections themselves are never released.
        Each ciphertext must hold one value in every slot (what a sum over the slots leaves):
        a ciphertext that does not, such as an update's chunk, is refused, not decrypted for
        the caller."""
        header, frames = unpack(document, SCALARS_FORMAT,
                                {"context": str, "projections": int, "updates": int},
                                self.public.max_ciphertext_bytes)
        _check_fingerprint(header, self.fingerprint, "the scalars document")
        n, per_update = header["updates"], 2 + PROJECTIONS
        if header["projections"] != PROJECTIONS:
            raise HEError(f"the scalars document carries {header['projections']} random "
                          f"projections per update; the key holder checks each squared norm "
                          f"against exactly {PROJECTIONS}")
        if not 1 <= n <= MAX_UPDATES or len(frames) != per_update * n:
            raise HEError(f"scalars document must hold {per_update} ciphertexts for each of "
                          f"its {n} updates (1 to {MAX_UPDATES}), it holds {len(frames)}")
        names = ["inner product", "squared norm",
                 *(f"projection {j + 1}" for j in range(PROJECTIONS))]
        values = np.empty(per_update * n)
        for k, frame in enumerate(frames):
            what = f"{names[k % per_update]} of update {k // per_update}"
            slots = self._decrypt(frame, self.public.slots, what)
            value = float(slots.mean())
            if float(np.ptp(slots)) > SCALAR_SPREAD * max(1.0, abs(value)):
                raise HEError(f"the {what} is not one value in every slot (spread "
                              f"{float(np.ptp(slots)):.3g}): refusing to decrypt what may be "
                              "an individual update")
            values[k] = value
        # The check reads noised values too: a flag computed from the exact decryptions
        # would be a threshold oracle on them (see release_noise).
        table = self._release(values).reshape(n, per_update)
        squared = table[:, 1]
        projected = np.sum(table[:, 2:] ** 2, axis=1)
        with np.errstate(invalid="ignore"):
            implausible = (squared > self.public.max_squared_norm * (1 + NORM_TOLERANCE)) | (
                projected > PROJECTION_BOUND * np.maximum(squared, MIN_NORM ** 2))
        return RoundScalars(dots=table[:, 0].copy(), squared_norms=squared.copy(),
                            implausible=implausible)

    def decrypt_aggregate(self, document: bytes, length: int, *,
                          updates: Iterable[bytes | EncryptedUpdate] | None = None,
                          weights: ArrayLike | None = None) -> FloatArray:
        """The ``length`` values of an aggregate document (plus release noise). Given the
        round's ``updates`` and
        ``weights`` (both public), the key holder first recomputes the weighted sum and
        refuses a document that differs: otherwise it cannot tell an aggregate from an
        individual update multiplied by 1."""
        if not (isinstance(length, int) and length >= 1):
            raise ConfigError(f"length must be a positive number of parameters, got {length!r}")
        if (updates is None) != (weights is None):
            raise ConfigError("give both updates and weights to check the aggregate, or neither")
        if updates is not None and weights is not None and \
                weighted_sum(self.public, updates, weights, length) != bytes(document):
            raise HEError("the aggregate is not the weighted sum of these updates with these "
                          "weights: refusing to decrypt it")
        header, frames = unpack(document, AGGREGATE_FORMAT, {"chunks": int, "context": str,
                                                             "length": int, "slots": int},
                                self.public.max_ciphertext_bytes)
        _check_fingerprint(header, self.fingerprint, "the aggregate")
        expected = self.public.chunks(length)
        if header["length"] != length or header["slots"] != self.public.slots or \
                header["chunks"] != expected or len(frames) != expected:
            raise HEError(f"aggregate must hold {length} values in {expected} ciphertexts; it "
                          f"says {header['length']} values, {header['chunks']} chunks, and "
                          f"holds {len(frames)}")
        return self._release(np.concatenate([
            self._decrypt(frame, self.public.slots, f"aggregate chunk {j}")
            for j, frame in enumerate(frames)])[:length])


# ------------------------------------------------------------------- both roles, simulated


def fltrust_round(key_holder: KeyHolder, global_params: ArrayLike,
                  updates: Sequence[bytes | EncryptedUpdate], server_params: ArrayLike, *,
                  sample_weights: ArrayLike | None = None,
                  verify: bool = False) -> tuple[TrustDecision, FloatArray]:
    """One encrypted FLTrust round with every role in this process (simulation, tests,
    benchmarks; a deployment runs each step in its own role): the decision and the decrypted
    aggregate delta (zeros when nothing is accepted). ``server_params`` is the aggregator's
    model trained from ``global_params`` on its validation data. ``verify`` makes the key
    holder recompute the weighted sum before decrypting it."""
    context = key_holder.public
    global_vector = finite_vector(global_params, "global_params", HEError)
    reference = finite_vector(server_params, "server_params", HEError) - global_vector
    if reference.shape != global_vector.shape:
        raise ConfigError("server_params and global_params must have the same length")
    reference_norm = float(np.linalg.norm(reference))
    if reference_norm == 0.0:
        scalars = RoundScalars(np.zeros(len(updates)), np.zeros(len(updates)))
    else:
        scalars = key_holder.decrypt_scalars(encrypted_scalars(context, updates, reference))
    decision = fltrust_weights(scalars, reference_norm, sample_weights=sample_weights)
    if not decision.accepted:
        return decision, np.zeros(global_vector.size)
    aggregate = weighted_sum(context, updates, decision.weights, global_vector.size)
    delta = key_holder.decrypt_aggregate(
        aggregate, global_vector.size,
        **({"updates": updates, "weights": decision.weights} if verify else {}))
    return decision, delta


__all__ = ["CKKSParameters", "EncryptedUpdate", "HEError", "KeyHolder", "PublicContext",
           "RoundScalars", "TrustDecision", "context_fingerprint", "decode_update",
           "encrypt_update", "encrypted_scalars", "fltrust_round", "fltrust_weights",
           "weighted_sum"]
