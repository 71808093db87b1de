"""The paper's clustering ablation: FairFL with its DBSCAN step replaced by HDBSCAN, OPTICS,
KMeans, agglomerative clustering, or no clustering at all, everything else unchanged, on
the runs of ``benchmarks.sweep`` (offline, with blacklisting and rewards; 20 clients, 20
rounds, evaluation seeds 11-13; attacker share 0.3 unless ``--malicious`` says otherwise).

What each variant puts in place of step 3 (:meth:`fl_agent.aggregation.fairfl.FairFL.
cluster`), on the same cosine distances ``1 - S`` of the clipped updates:

* ``dbscan``: FairFL as shipped (DBSCAN at the data-driven radius, ``min_samples`` 3);
* ``hdbscan``: scikit-learn's HDBSCAN set as FLAME sets it (``min_cluster_size`` a majority
  of the updates, ``min_samples`` 1, a single cluster allowed: the honest majority is one
  group); no radius;
* ``optics``: scikit-learn's OPTICS with ``min_samples`` and its default ξ extraction; no
  radius;
* ``kmeans``: KMeans with two clusters (the "honest and malicious" split of many FL
  defences) on the updates' directions, recovered exactly from ``S`` by classical
  multidimensional scaling (for unit vectors ``|u_i - u_j|^2 = 2 - 2 S_ij``); no noise;
* ``agglomerative``: average linkage cut at DBSCAN's data-driven radius; clusters of one
  update count as noise, as DBSCAN's would;
* ``none``: no clustering: every update is its own unit in the merge order and the gate.

A pool smaller than ``min_samples`` is all noise for every variant, as DBSCAN makes it.
The clustering also decides which updates the gate treats strictly (a noise update far
from the others needs a resolved gain: :func:`fl_agent.aggregation.gate.strict_noise`), so
``none`` makes every update a candidate for that and ``kmeans`` none: the ablation
measures the clustering together with what FairFL does with its noise label.

    python -m benchmarks.ablation --datasets digits --attacks label_flip,alie --malicious 0.3
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from benchmarks.sweep import run_grid
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.clustering import dbscan_labels
from fl_agent.aggregation.fairfl import FairFL
from fl_agent.errors import ConfigError
from fl_agent.simulation.offline import Federation, aggregator_strategy

Labels = NDArray[np.intp]


def _distance(similarity: np.ndarray) -> np.ndarray:
    distance = np.clip(1.0 - similarity, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    return distance


def _singletons_as_noise(labels: np.ndarray) -> Labels:
    labels = np.asarray(labels, dtype=np.intp).copy()
    values, counts = np.unique(labels, return_counts=True)
    for value in values[counts == 1]:
        labels[labels == value] = -1
    return labels


def directions(similarity: np.ndarray) -> np.ndarray:
    """Coordinates of the unit vectors whose Gram matrix is ``similarity`` (classical MDS:
    the double-centred Gram matrix's eigenvectors scaled by the root of its non-negative
    eigenvalues), so that Euclidean distances between rows are those of the directions."""
    n = similarity.shape[0]
    centre = np.eye(n) - np.full((n, n), 1.0 / n)
    values, vectors = np.linalg.eigh(centre @ similarity @ centre)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def hdbscan(similarity: np.ndarray, eps: float, min_samples: int) -> Labels:
    from sklearn.cluster import HDBSCAN

    n = similarity.shape[0]
    if n < min_samples:
        return no_clustering(similarity, eps, min_samples)
    return HDBSCAN(min_cluster_size=max(2, n // 2 + 1), min_samples=1, metric="precomputed",
                   allow_single_cluster=True, copy=True).fit_predict(_distance(similarity))


def optics(similarity: np.ndarray, eps: float, min_samples: int) -> Labels:
    from sklearn.cluster import OPTICS

    if similarity.shape[0] < min_samples:
        return no_clustering(similarity, eps, min_samples)
    return OPTICS(min_samples=min_samples, metric="precomputed"
                  ).fit_predict(_distance(similarity))


def kmeans(similarity: np.ndarray, eps: float, min_samples: int) -> Labels:
    from sklearn.cluster import KMeans

    if similarity.shape[0] < 2:
        return np.zeros(similarity.shape[0], dtype=np.intp)
    return KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(directions(similarity))


def agglomerative(similarity: np.ndarray, eps: float, min_samples: int) -> Labels:
    from sklearn.cluster import AgglomerativeClustering

    if similarity.shape[0] < 2:
        return np.full(similarity.shape[0], -1, dtype=np.intp)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                    distance_threshold=eps)
    return _singletons_as_noise(model.fit_predict(_distance(similarity)))


def no_clustering(similarity: np.ndarray, eps: float, min_samples: int) -> Labels:
    return np.full(similarity.shape[0], -1, dtype=np.intp)


CLUSTERINGS: dict[str, Callable[[np.ndarray, float, int], Labels]] = {
    "dbscan": dbscan_labels, "hdbscan": hdbscan, "optics": optics, "kmeans": kmeans,
    "agglomerative": agglomerative, "none": no_clustering,
}
VARIANTS = tuple(CLUSTERINGS)


@dataclass(frozen=True)
class ClusteredFairFL(FairFL):
    """FairFL with step 3's clustering swapped (:data:`CLUSTERINGS`)."""

    clustering: str = "dbscan"

    def cluster(self, similarity: np.ndarray, eps: float) -> Labels:
        return np.asarray(CLUSTERINGS[self.clustering](similarity, eps, self.min_samples),
                          dtype=np.intp)


def variant_strategy(variant: str, fed: Federation) -> Strategy:
    """The aggregator's FairFL for ``fed`` (its input layer and defaults), clustering by
    ``variant``."""
    if variant not in CLUSTERINGS:
        raise ConfigError(f"unknown clustering {variant!r}; use one of {', '.join(VARIANTS)}")
    base = aggregator_strategy(fed)
    return ClusteredFairFL(**{f.name: getattr(base, f.name) for f in fields(base)},
                           clustering=variant)


def main(argv: list[str] | None = None) -> None:
    run_grid(argv, __doc__ or "", VARIANTS, "ablation", variant_strategy, subject="dbscan",
             detail=VARIANTS, shares=(0.3,))


if __name__ == "__main__":
    main()
