"""FairFL's similarity steps (steps 2-4 of :mod:`fl_agent.aggregation.fairfl`): the chance
level of a cosine, DBSCAN's data-driven radius and labels, the std test's outliers and the
bottom-up merge order.

Split from :mod:`fl_agent.aggregation.fairfl`, whose module docstring explains the method;
this module holds the steps' pure functions. Hand-written (plain numpy): the eps rule, the
outlier test and the merge order; the clustering is scikit-learn's DBSCAN.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from fl_agent.aggregation.base import FloatArray
from fl_agent.aggregation.gate import Unit


def chance_similarity(dimension: int, chance_z: float) -> float:
    """Cosines above ``chance_z / sqrt(d)`` are unlikely between a random direction and any
    fixed vector in ``d`` dimensions (the cosine is ~ N(0, 1/d))."""
    return min(1.0, chance_z / math.sqrt(dimension))


def chance_z_off(dimension: int) -> float:
    """A ``chance_z`` that switches the NOISE check off in ``dimension`` dimensions: a chance
    level of 1 (:func:`chance_similarity`), which no cosine exceeds. DP and watermark tasks
    run FairFL so (:mod:`fl_agent.agents.task_rule`, :meth:`fl_agent.learning.task_doc.
    TaskDocument.build`)."""
    return math.sqrt(dimension)


def data_driven_eps(distances: FloatArray, min_samples: int, eps_scale: float,
                    cap: float) -> float:
    """``eps_scale`` times the median distance of each point to its ``(min_samples - 1)``-th
    nearest other point, capped at ``cap`` (and kept above 0, as DBSCAN requires)."""
    n = distances.shape[0]
    if n < 2:
        return max(cap, 1e-9)
    others = np.sort(distances + np.diag(np.full(n, np.inf)), axis=1)
    k = min(max(min_samples - 1, 1), n - 1)
    eps = eps_scale * float(np.median(others[:, k - 1]))
    return float(min(max(eps, 1e-9), cap))


def dbscan_labels(similarity: FloatArray, eps: float, min_samples: int) -> NDArray[np.intp]:
    """DBSCAN on cosine distance; ``-1`` marks noise."""
    distances = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    from sklearn.cluster import DBSCAN  # imported here: participants never cluster

    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
    return model.fit_predict(distances).astype(np.intp)


def similarity_outliers(similarity: FloatArray, z: float, min_std: float, *,
                        basis: FloatArray | None = None) -> NDArray[np.bool_]:
    """Low-side outliers of the similarities to the global direction: below
    ``median - z * max(robust std, min_std)``, the robust std being ``1.4826 * MAD``, both
    of ``basis`` (default: the similarities themselves; FairFL's ``copies_once`` gives one
    value per copy group)."""
    of = similarity if basis is None else basis
    median = float(np.median(of))
    spread = 1.4826 * float(np.median(np.abs(of - median)))
    return similarity < median - z * max(spread, min_std)


_TIE = 1e-12  # closeness values of the merge order this close are a tie (rounding)


def merge_order(gram: FloatArray, weights: FloatArray, labels: NDArray[np.intp],
                reference_sim: FloatArray) -> list[Unit]:
    """Step 4's bottom-up order over candidate positions ``0..k-1``: the seed is the unit of
    largest support ``sum(s_i)``; then, repeatedly, the unit whose (sample-weighted) mean
    delta is most similar to the aggregate built so far.

    ``gram`` is the Gram matrix of the deltas being merged: every inner product the order
    needs (of a unit's weighted sum with the aggregate so far) is a weighted sum of its
    entries, so the order costs ``O(k^2)`` for ``k`` deltas and none of their ``d``
    coordinates (summing the units' deltas took 1.6 s at 140 deltas of 1M parameters)."""
    k = gram.shape[0]
    units: list[Unit] = [(tuple(i for i in range(k) if labels[i] == label), int(label))
                         for label in sorted(set(labels.tolist()) - {-1})]
    units.extend(((i,), -1) for i in range(k) if labels[i] == -1)
    membership = np.zeros((k, len(units)))  # a unit's sum is membership[:, u] @ deltas
    for u, (members, _) in enumerate(units):
        membership[list(members), u] = weights[list(members)]
    inner = membership.T @ gram @ membership  # the units' sums' Gram matrix
    lengths = np.sqrt(np.clip(np.diag(inner), 0.0, None))
    remaining = list(range(len(units)))
    along = np.zeros(len(units))  # each unit's sum's inner product with the aggregate so far
    squared = 0.0  # the aggregate's squared length
    order: list[Unit] = []
    while remaining:
        if order:
            scale = lengths[remaining] * math.sqrt(max(squared, 0.0))
            with np.errstate(divide="ignore", invalid="ignore"):
                closeness = np.where(scale > 0, along[remaining] / np.where(
                    scale > 0, scale, 1.0), 0.0)
        else:
            closeness = np.array([float(reference_sim[list(units[u][0])].sum())
                                  for u in remaining])
        # the first of the closest: values within _TIE of the largest count as equal (the
        # order computed on the vectors broke exact ties, such as copies, by the first unit;
        # from the Gram matrix they come out equal only up to rounding)
        tie = _TIE if order else 0.0  # the seed's support is summed as it was
        unit = remaining.pop(int(np.flatnonzero(closeness >= closeness.max() - tie)[0]))
        squared += 2.0 * along[unit] + inner[unit, unit]
        along += inner[:, unit]
        order.append(units[unit])
    return order


__all__ = ["chance_similarity", "data_driven_eps", "dbscan_labels", "merge_order",
           "similarity_outliers"]
