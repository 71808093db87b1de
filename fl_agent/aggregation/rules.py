"""The baseline aggregation rules as plain functions over validated float64 arrays.

Each takes the ``(n, d)`` matrix of FULL parameter vectors of the usable updates (and the
global model / sample counts where the rule needs them) and returns the new global vector,
plus what the rule selected. The strategy classes in :mod:`fl_agent.aggregation.strategies`
check the inputs, call these and report accepted / rejected updates.

Library code does the heavy lifting: ``sklearn.metrics.pairwise`` (distances, cosine
distances) and ``sklearn.cluster.HDBSCAN`` (FLAME's clustering). Written here:

* the trimmed mean, as ``scipy.stats.trim_mean`` computes it (the same partition and mean,
  so the same bits), without its array-API wrapper, which cost about a millisecond a call
  and most of the time of scoring a round's thousands of coalitions;
* because no library offers them as functions, Krum's score (the sum of squared distances
  to the ``n - f - 2`` nearest neighbours; Blanchard et al. 2017), FLTrust's
  trust-weighted, norm-rescaled mean (Cao et al. 2021) and FLAME's cluster-clip-noise
  pipeline (Nguyen et al. 2022) -- each only a few array operations.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fl_agent.aggregation.base import FloatArray, clip_norms, cosine_to, row_norms


def fedavg(updates: FloatArray, num_samples: FloatArray) -> FloatArray:
    """Sample-weighted mean of the updates (McMahan et al. 2017)."""
    return np.average(updates, axis=0, weights=num_samples)


def coordinate_median(updates: FloatArray) -> FloatArray:
    """Coordinate-wise median (Yin et al. 2018); unweighted."""
    return np.median(updates, axis=0)


def trimmed_mean(updates: FloatArray, beta: float) -> FloatArray:
    """Coordinate-wise mean after removing the ``floor(beta * n)`` largest and smallest values
    of each coordinate (Yin et al. 2018); unweighted."""
    n = updates.shape[0]
    low = int(beta * n)
    if n == 0 or low > n - low:
        raise ValueError(f"cannot trim {beta} of {n} updates from each end")
    ordered = np.partition(updates, (low, n - low - 1), axis=0)
    return np.asarray(ordered[low:n - low].mean(axis=0), dtype=np.float64)


def krum_scores(updates: FloatArray, num_byzantine: int) -> FloatArray:
    """Krum score of each update: the sum of squared distances to its ``n - f - 2`` nearest
    other updates (lower is more central). With fewer updates than Krum's ``n >= 2f + 3``
    needs, the neighbourhood is clamped to at least one update so a round still completes."""
    n = updates.shape[0]
    if n == 1:
        return np.zeros(1)
    from sklearn.metrics.pairwise import euclidean_distances  # participants never need it

    squared = euclidean_distances(updates, squared=True)
    np.fill_diagonal(squared, np.inf)
    k = min(max(n - num_byzantine - 2, 1), n - 1)
    nearest = np.sort(squared, axis=1)[:, :k]
    return nearest.sum(axis=1)


def multikrum_select(updates: FloatArray, num_byzantine: int,
                     num_selected: int) -> NDArray[np.intp]:
    """Indices of the ``num_selected`` updates with the lowest Krum scores (ties: lower
    index first). Krum is ``num_selected == 1``."""
    scores = krum_scores(updates, num_byzantine)
    order = np.lexsort((np.arange(scores.size), scores))
    return np.sort(order[: max(1, min(num_selected, scores.size))]).astype(np.intp)


def fltrust(global_params: FloatArray, updates: FloatArray,
            server_params: FloatArray) -> tuple[FloatArray, FloatArray]:
    """FLTrust: trust ``TS_i = ReLU(cos(delta_i, delta_server))``; every delta is rescaled to
    the server delta's norm and the new model is ``global + sum(TS_i * rescaled_i) / sum(TS_i)``
    (the global model is kept if every trust score is 0). Returns ``(new_params, trust)``."""
    deltas = updates - global_params
    server_delta = server_params - global_params
    trust = np.maximum(cosine_to(deltas, server_delta), 0.0)
    total = float(trust.sum())
    if total <= 0.0:
        return global_params.copy(), trust
    norms = row_norms(deltas)
    scale = np.where(norms > 0, float(np.linalg.norm(server_delta)) / np.where(norms > 0, norms,
                                                                                1.0), 0.0)
    return global_params + (trust * scale) @ deltas / total, trust


def flame_admitted(deltas: FloatArray, min_cluster_size: int | None = None) -> NDArray[np.bool_]:
    """FLAME's filter: HDBSCAN on the pairwise cosine distances of the deltas with
    ``min_cluster_size = n // 2 + 1`` (so only a majority can form a cluster), ``min_samples=1``
    and a single cluster allowed; members of that cluster are admitted, the rest are
    outliers. Fewer than 3 updates are all admitted (too few to cluster)."""
    n = deltas.shape[0]
    if n < 3:
        return np.ones(n, dtype=bool)
    size = n // 2 + 1 if min_cluster_size is None else min_cluster_size
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics.pairwise import cosine_distances

    distances = np.clip(cosine_distances(deltas), 0.0, 2.0)
    labels = HDBSCAN(min_cluster_size=max(2, min(size, n)), min_samples=1, metric="precomputed",
                     allow_single_cluster=True, copy=True).fit_predict(distances)
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return np.zeros(n, dtype=bool)
    largest = np.bincount(clustered).argmax()
    return labels == largest


def flame(global_params: FloatArray, updates: FloatArray, *, min_cluster_size: int | None = None,
          noise_lambda: float = 0.0,
          rng: np.random.Generator | None = None) -> tuple[FloatArray, NDArray[np.bool_]]:
    """FLAME: admit the majority cluster (:func:`flame_admitted`), clip the admitted deltas to
    the median delta norm of all updates, average them, and add Gaussian noise of standard
    deviation ``noise_lambda * clip_bound`` (off when ``noise_lambda == 0``).
    Returns ``(new_params, admitted)``."""
    deltas = updates - global_params
    admitted = flame_admitted(deltas, min_cluster_size)
    if not admitted.any():
        return global_params.copy(), admitted
    bound = float(np.median(row_norms(deltas)))
    new = global_params + clip_norms(deltas[admitted], bound).mean(axis=0)
    if noise_lambda > 0.0:
        generator = rng if rng is not None else np.random.default_rng()
        new = new + generator.normal(0.0, noise_lambda * bound, size=new.shape)
    return new, admitted
