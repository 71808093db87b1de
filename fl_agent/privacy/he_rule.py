"""FLTrust's rule on the scalars the key holder decrypts, in the clear.

Given each update's inner product with the reference direction g0 and its squared norm
(:class:`RoundScalars`) and ``|g0|``, :func:`fltrust_weights` computes, as
:func:`fl_agent.aggregation.rules.fltrust` does on plaintext vectors::

    cos_i = <delta_i, g0> / (|delta_i| |g0|)       TS_i = max(cos_i, 0)
    w_i   = TS_i * |g0| / |delta_i| / sum_j TS_j    (so the aggregate is sum_i w_i delta_i)

Each accepted delta is rescaled to ``|g0|`` and the rescaled deltas are averaged with the
trust scores as weights: the aggregate's norm is at most ``|g0|``, and
:meth:`TrustDecision.result` holds the decrypted aggregate to that bound.

Rejected (weight 0), with a :class:`~fl_agent.aggregation.base.Reason`:

* ``non_finite``: scalars no finite real vector has: NaN or infinite, a clearly negative
  squared norm, or ``|cos| > 1 + cosine_tolerance`` (Cauchy-Schwarz). A ciphertext that was
  not an honest encryption decrypts to such scalars more often than not;
* ``norm_outlier``: a squared norm the key holder marked ``implausible``: longer than an
  honest participant encrypts, or far shorter than the update's random projections show (a
  ciphertext crafted so that its squared norm wraps around the modulus; see
  :mod:`fl_agent.privacy.he`);
* ``free_rider``: a norm below ``min_norm`` (the participant sent the global model back);
* ``no_samples``: a sample weight of 0, when sample weights are given;
* ``zero_trust``: ``cos_i <= 0`` (opposite or orthogonal to g0: a sign-flipped update).

Differences from the plaintext strategy :class:`~fl_agent.aggregation.strategies.FLTrust`:
it rejects a zero delta as ``zero_trust`` (its cosine is taken as 0) where this rule says
``free_rider``, it has no ``non_finite`` check on scalars (it sees the vectors, and
:func:`~fl_agent.aggregation.base.prepare_round` rejects NaN updates) and no
``norm_outlier`` (it sees the true norms); decisions agree otherwise, except for an update
whose cosine is within CKKS error (about 1e-9) of 0.

Sample weights: none by default, as in FLTrust (Cao et al. 2021) and the plaintext strategy.
Sample counts are self-reported and unverifiable; multiplying by them would let a participant
that lies about its data buy weight that FLTrust means to come only from agreeing with the
aggregator's own data. A task that wants them passes ``sample_weights``:
``w_i = TS_i * s_i * |g0| / |delta_i| / sum_j TS_j * s_j`` (still at most ``|g0|`` long).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fl_agent.aggregation.base import AggregationResult, Reason
from fl_agent.errors import ConfigError

FloatArray = NDArray[np.float64]

#: An update shorter than this is no update (a free rider). A zero delta's squared norm
#: decrypts to the key holder's release noise (standard deviation 2^-30, about 1e-9), far
#: below ``MIN_NORM**2``; so does nothing an honest participant sends.
MIN_NORM = 1e-4
#: How far past 1 a cosine may be from CKKS error before the scalars are refused.
COSINE_TOLERANCE = 1e-4
#: How far (relative) the aggregate may exceed the reference norm from CKKS error.
BOUND_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RoundScalars:
    """What the key holder decrypts: ``dots[i] = <delta_i, g0>``, ``squared_norms[i] =
    |delta_i|^2``, and ``implausible[i]``, true when the key holder found that squared norm
    not to be believed (above what an honest encryption carries, or far shorter than the
    update's random projections show; :meth:`fl_agent.privacy.he.KeyHolder.decrypt_scalars`).
    ``implausible`` defaults to all false."""

    dots: FloatArray
    squared_norms: FloatArray
    implausible: NDArray[np.bool_] = None  # type: ignore[assignment]  # None: all false

    def __post_init__(self) -> None:
        dots = np.asarray(self.dots, dtype=np.float64)
        norms = np.asarray(self.squared_norms, dtype=np.float64)
        if dots.ndim != 1 or dots.shape != norms.shape:
            raise ConfigError(f"dots and squared_norms must be 1-D of the same length, got "
                              f"{dots.shape} and {norms.shape}")
        flags = np.zeros(dots.shape, dtype=bool) if self.implausible is None \
            else np.asarray(self.implausible)
        if flags.dtype != np.bool_ or flags.shape != dots.shape:
            raise ConfigError(f"implausible must be {dots.size} booleans, got {flags.dtype} "
                              f"{flags.shape}")
        object.__setattr__(self, "dots", dots)
        object.__setattr__(self, "squared_norms", norms)
        object.__setattr__(self, "implausible", flags)


@dataclass(frozen=True)
class TrustDecision:
    """The rule's outcome for ``n`` updates. ``weights`` multiply the deltas in the encrypted
    sum (0 for rejected updates); ``trust`` is ``TS_i`` (the scores FLTrust reports);
    ``cosines`` and ``norms`` are what the aggregator learns of each update (NaN where the
    scalars were unusable)."""

    weights: FloatArray
    trust: FloatArray
    cosines: FloatArray
    norms: FloatArray
    accepted: tuple[int, ...]
    rejected: tuple[int, ...]
    reasons: Mapping[int, Reason] = field(default_factory=lambda: MappingProxyType({}))
    reference_norm: float = math.inf

    def bounded(self, aggregate_delta: ArrayLike) -> FloatArray:
        """``aggregate_delta`` shortened to ``reference_norm`` if it is longer. An honest
        round never is (the aggregate is a convex combination of deltas of that length, up
        to CKKS error); one is when an update's ciphertext decrypts to other values than its
        scalars describe (a crafted or wrong-key ciphertext, see docs/privacy-he.md), and
        this bounds what it can do to one round."""
        delta = np.asarray(aggregate_delta, dtype=np.float64)
        norm = float(np.linalg.norm(delta))
        if norm > self.reference_norm * (1 + BOUND_TOLERANCE):
            return delta * (self.reference_norm / norm)
        return delta

    def result(self, global_params: ArrayLike, aggregate_delta: ArrayLike) -> AggregationResult:
        """The round as an :class:`AggregationResult`: ``global_params`` plus the decrypted
        ``aggregate_delta`` (:meth:`bounded`; ignored when nothing was accepted), in the
        global model's float dtype (float32 for integer input), with ``trust`` as scores."""
        raw = np.asarray(global_params)
        dtype = raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.dtype(np.float32)
        params = raw.astype(np.float64)
        if self.accepted:
            delta = self.bounded(aggregate_delta)
            if delta.shape != params.shape:
                raise ConfigError(f"aggregate delta has shape {delta.shape}; the global model "
                                  f"has {params.shape}")
            params = params + delta
        return AggregationResult(params=params.astype(dtype), accepted=self.accepted,
                                 rejected=self.rejected, scores=self.trust.copy(),
                                 reasons=MappingProxyType(dict(self.reasons)))


def fltrust_weights(scalars: RoundScalars, reference_norm: float, *,
                    sample_weights: ArrayLike | None = None, min_norm: float = MIN_NORM,
                    cosine_tolerance: float = COSINE_TOLERANCE) -> TrustDecision:
    """FLTrust's weights from decrypted scalars (see the module docstring). A
    ``reference_norm`` of 0 gives every update zero trust, whatever its scalars, as the
    plaintext rule does."""
    n = scalars.dots.size
    if not (math.isfinite(reference_norm) and reference_norm >= 0):
        raise ConfigError(f"reference_norm must be a finite number >= 0, got {reference_norm!r}")
    for name, value in (("min_norm", min_norm), ("cosine_tolerance", cosine_tolerance)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    samples = np.ones(n)
    if sample_weights is not None:
        samples = np.asarray(sample_weights, dtype=np.float64)
        if samples.shape != (n,) or not np.all(np.isfinite(samples)) or np.any(samples < 0):
            raise ConfigError(f"sample_weights must be {n} finite numbers >= 0")
    reasons: dict[int, Reason] = {}
    cosines = np.full(n, np.nan)
    norms = np.full(n, np.nan)
    for i, (dot, squared) in enumerate(zip(scalars.dots, scalars.squared_norms, strict=True)):
        if reference_norm == 0.0:  # no direction to trust: the scalars are not even needed
            reasons[i] = Reason.ZERO_TRUST
            continue
        if not (math.isfinite(dot) and math.isfinite(squared)) or squared < -min_norm ** 2:
            reasons[i] = Reason.NON_FINITE
            continue
        if scalars.implausible[i]:
            reasons[i] = Reason.NORM_OUTLIER
            continue
        norms[i] = math.sqrt(max(squared, 0.0))
        if norms[i] < min_norm:
            reasons[i] = Reason.FREE_RIDER
            continue
        cosine = dot / (norms[i] * reference_norm)
        if abs(cosine) > 1.0 + cosine_tolerance:
            reasons[i] = Reason.NON_FINITE
            continue
        cosines[i] = min(max(cosine, -1.0), 1.0)
        if samples[i] == 0:
            reasons[i] = Reason.NO_SAMPLES
        elif cosines[i] <= 0:
            reasons[i] = Reason.ZERO_TRUST
    accepted = tuple(i for i in range(n) if i not in reasons)
    trust = np.zeros(n)
    weights = np.zeros(n)
    if accepted:
        index = np.array(accepted)
        trust[index] = cosines[index]
        total = float(np.sum(trust[index] * samples[index]))
        weights[index] = trust[index] * samples[index] * reference_norm / norms[index] / total
    return TrustDecision(weights=weights, trust=trust, cosines=cosines, norms=norms,
                         accepted=accepted, rejected=tuple(sorted(reasons)),
                         reasons=MappingProxyType(reasons), reference_norm=reference_norm)
