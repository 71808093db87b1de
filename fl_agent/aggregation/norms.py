"""FairFL's steps 1 and 6 (:mod:`fl_agent.aggregation.fairfl`): screening the updates by the
length of their deltas, and the combination rule that clips them to a multiple of the median
length before the sample-weighted mean.

Split from :mod:`fl_agent.aggregation.fairfl`, whose module docstring explains the method;
hand-written (plain numpy): the screen and the clip are a few comparisons with the median.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fl_agent.aggregation.base import FloatArray, clip_factors, row_norms, weighted_mean

#: float32's machine epsilon: a delta this short, relative to the global model, is what
#: re-submitting the global model unchanged leaves after float rounding.
ROUNDING = float(np.finfo(np.float32).eps)


def unchanged_below(reference_norm: float) -> float:
    """The delta length up to which an update counts as the global model (of norm
    ``reference_norm``) re-submitted unchanged: float32 rounding of its parameters."""
    return 4 * ROUNDING * max(reference_norm, 1.0)


def fairfl_combine(global_params: FloatArray, updates: FloatArray, num_samples: FloatArray,
                   clip_ratio: float = 2.0) -> FloatArray:
    """FairFL's combination rule: deltas clipped to ``clip_ratio`` times their median norm,
    then their sample-weighted mean."""
    if updates.shape[0] == 0:
        return global_params.copy()
    deltas = updates - global_params
    return global_params + clipped_mean(deltas, row_norms(deltas), num_samples, clip_ratio)


def clipped_mean(deltas: FloatArray, norms: FloatArray, num_samples: FloatArray,
                 clip_ratio: float, which: NDArray[np.intp] | None = None) -> FloatArray:
    """:func:`fairfl_combine`'s step on the deltas ``which`` (default: all), whose norms
    are known (one per picked delta, as ``num_samples``)."""
    factors = clip_factors(norms, clip_ratio * float(np.median(norms)))
    return weighted_mean(deltas, num_samples, factors, which)


def norm_screen(deltas: FloatArray, reference_norm: float, free_rider_ratio: float,
                max_norm_ratio: float | None, norms: FloatArray | None = None
                ) -> tuple[NDArray[np.bool_], NDArray[np.bool_], float]:
    """``(free_rider, norm_outlier, median_norm)`` masks for step 1.

    ``reference_norm`` (the global model's norm) sets what counts as "unchanged up to float32
    rounding". The median is taken over the deltas that are not unchanged, so a crowd of
    exact free riders cannot drag it to zero. ``norms``, if given, are the deltas' norms.
    ``max_norm_ratio`` None: no delta is an outlier for its length (the combination's clip
    still bounds it)."""
    norms = row_norms(deltas) if norms is None else norms
    unchanged = norms <= unchanged_below(reference_norm)
    moving = norms[~unchanged]
    median = float(np.median(moving)) if moving.size else 0.0
    free_rider = unchanged | (norms < free_rider_ratio * median)
    outlier = ~free_rider & (norms > (np.inf if max_norm_ratio is None
                                      else max_norm_ratio * median))
    return free_rider, outlier, median


__all__ = ["ROUNDING", "clipped_mean", "fairfl_combine", "norm_screen", "unchanged_below"]
