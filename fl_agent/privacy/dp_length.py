"""How long a DP-SGD update can be, given what its privacy receipt and its task say.

One round of DP-SGD (:func:`fl_agent.privacy.dp.train_local_dp`: Poisson sampling at rate
``q``, each example's gradient clipped to ``C``, Gaussian noise ``N(0, (σC)² I_d)`` added to
each step's sum, divided by the expected batch ``B = q·n``, then SGD with learning rate
``lr`` and momentum ``μ``) moves the weights by

    Δ = −lr · Σ_s c_s (G_s + Z_s) / B,       c_s = (1 − μ^(S − s + 1)) / (1 − μ)

(``c_s = 1`` without momentum). The noise part ``lr·Σ c_s Z_s / B`` is Gaussian, with a
per-coordinate standard deviation ``lr·σ·C·√(Σ c_s²) / B``, so its length is that times a
χ variable with ``d`` degrees of freedom. The signal part is at most
``lr·C·c_max·K / B``, where ``K = Σ |b_s|``, the examples sampled over the round, is
Binomial(S·n, q) (beyond 2⁵³ trials, its Poisson bound: Anderson and Samuels, 1967). By
the triangle inequality ``|Δ|`` lies within ``noise ± signal``;
:func:`length_band` takes each of the three variables at its ``tail`` quantile, so an honest
update falls outside the band with probability below ``3 × tail``.

Why it matters: the honest update of a small shard is long because its σ is large (its
sampling rate gives little amplification), so a screen on the median length turns it away
(docs/privacy-dp.md, "No length outliers in DP tasks"), while measured against its own
noise every honest update on the benchmark's seeds lay at 0.97-1.10 of its expected noise
length. An update far longer than its receipt allows (a scaled poisoned update) or far
shorter (noise its receipt reports but that was not added) is not what its receipt
describes. :func:`fl_agent.privacy.receipts.check_update_length` refuses it.

Not for updates the band does not describe: a watermark's hinge (not clipped), pruning's
error feedback (it carries earlier rounds' residual) or ciphertexts.

Hand-written: the bound is DP-SGD's own arithmetic; the quantiles are scipy's.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from fl_agent.errors import ConfigError

#: The probability each of the band's three variables (the noise's χ length, low and high,
#: and the examples sampled) is taken at: fixed before any run, as the watermark's α.
TAIL = 1e-6


@dataclass(frozen=True)
class LengthBand:
    """The lengths a DP-SGD update can have (outside them with probability below
    ``3 × tail``), and its parts: the expected noise length and the largest signal."""

    low: float
    high: float
    noise: float
    signal: float

    def holds(self, length: float) -> bool:
        return self.low <= length <= self.high


def length_band(*, params: int, steps: int, lr: float, momentum: float, clip: float,
                noise_multiplier: float, sample_rate: float, samples: int,
                tail: float = TAIL) -> LengthBand:
    """The band of :mod:`this module <fl_agent.privacy.dp_length>` for one round of
    ``steps`` DP-SGD steps on ``samples`` examples (so the expected batch is
    ``sample_rate * samples``) of a model with ``params`` parameters."""
    from scipy.stats import binom, chi, poisson

    for name, value in (("lr", lr), ("clip", clip), ("noise_multiplier", noise_multiplier),
                        ("sample_rate", sample_rate), ("tail", tail)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    if sample_rate > 1 or tail >= 0.5:
        raise ConfigError(f"need a sample rate in (0, 1] and a tail below 1/2, got "
                          f"{sample_rate!r} and {tail!r}")
    if isinstance(momentum, bool) or not (isinstance(momentum, numbers.Real)
                                          and 0 <= momentum < 1):
        raise ConfigError(f"momentum must be in [0, 1), got {momentum!r}")
    for name, count in (("params", params), ("steps", steps), ("samples", samples)):
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise ConfigError(f"{name} must be a positive integer, got {count!r}")
    steps, samples, params = int(steps), int(samples), int(params)
    factors = [(1 - momentum ** (steps - s)) / (1 - momentum) if momentum else 1.0
               for s in range(steps)]
    batch = sample_rate * samples
    scale = lr * noise_multiplier * clip * math.sqrt(sum(c * c for c in factors)) / batch
    if steps * samples <= 2**53:
        sampled = float(binom.isf(tail, steps * samples, sample_rate))  # K, the examples drawn
    else:  # beyond exact integers: Poisson's upper tail bounds the binomial's above its mean
        sampled = float(poisson.isf(tail, steps * samples * sample_rate))
    signal = lr * clip * max(factors) * sampled / batch
    low = scale * float(chi.ppf(tail, params)) - signal
    high = scale * float(chi.isf(tail, params)) + signal
    return LengthBand(low=max(0.0, low), high=high, noise=scale * math.sqrt(params),
                      signal=signal)


__all__ = ["TAIL", "LengthBand", "length_band"]
