"""The clustering ablation's variants: each puts what it claims in place of FairFL's DBSCAN,
and the ``dbscan`` variant is FairFL itself."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.ablation import CLUSTERINGS, ClusteredFairFL, directions
from benchmarks.fidelity import exact_shapley
from fl_agent.aggregation import get_strategy


def _planted(seed: int = 0) -> np.ndarray:
    """Cosine similarities of 16 directions: 12 around one direction, 4 scattered."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(16, 40))
    u[:12] = rng.normal(size=40) * 3 + rng.normal(size=(12, 40))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u @ u.T


def test_directions_recover_the_distances_of_the_unit_vectors():
    s = _planted()
    x = directions(s)
    squared = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(squared, 2 - 2 * s, atol=1e-9)


@pytest.mark.parametrize("name", ["dbscan", "agglomerative"])
def test_radius_clusterings_find_the_planted_group_and_call_the_rest_noise(name):
    labels = CLUSTERINGS[name](_planted(), 0.5, 3)
    assert len(set(labels[:12].tolist())) == 1 and labels[0] >= 0
    assert (labels[12:] == -1).all()


def test_kmeans_splits_in_two_with_the_planted_group_on_one_side():
    labels = CLUSTERINGS["kmeans"](_planted(1), 0.5, 3)
    assert set(labels.tolist()) == {0, 1}
    assert len(set(labels[:12].tolist())) == 1 and labels[0] not in labels[12:]


def test_optics_labels_every_update():
    """OPTICS's clusters on so few points vary with the seed (the ablation measures what
    that costs); here only that it reads the distances and labels every update."""
    for seed in range(3):
        labels = CLUSTERINGS["optics"](_planted(seed), 0.5, 3)
        assert labels.shape == (16,) and labels.min() >= -1 and (labels >= 0).any()


def test_hdbscan_as_flame_sets_it_finds_the_honest_majority():
    for seed in range(4):
        labels = CLUSTERINGS["hdbscan"](_planted(seed), 0.5, 3)
        clustered = set(np.flatnonzero(labels >= 0).tolist())
        assert len(clustered & set(range(12))) >= 9 and not clustered - set(range(12))


@pytest.mark.parametrize("name", sorted(CLUSTERINGS))
def test_a_pool_too_small_to_cluster_is_noise_or_one_group(name):
    for n in (1, 2):
        labels = CLUSTERINGS[name](np.ones((n, n)), 0.5, 3)
        assert labels.shape == (n,) and labels.min() >= -1


def test_no_clustering_leaves_every_update_alone():
    assert (CLUSTERINGS["none"](_planted(), 0.5, 3) == -1).all()


def test_the_dbscan_variant_decides_as_fairfl():
    """Same fields, same clustering: the same decision, bit for bit (the hook changes
    nothing by itself); another variant's clustering is the one FairFL uses."""
    rng = np.random.default_rng(3)
    d = 300
    g = rng.normal(size=d).astype(np.float32)
    honest = rng.normal(size=d)
    updates = np.vstack([g + 0.05 * (honest + 0.6 * rng.normal(size=(12, d))),
                         g - 0.05 * (honest + 0.3 * rng.normal(size=(4, d)))]).astype(np.float32)
    samples = np.full(16, 50.0)
    examples = g + 0.05 * honest * 5 + rng.normal(size=(64, d))

    def gate(params):
        return -np.square(examples - np.asarray(params, dtype=np.float64)).sum(axis=1)

    decisions = {name: strategy.aggregate(g, updates, samples, evaluate=gate)
                 for name, strategy in [("fairfl", get_strategy("fairfl")),
                                        ("dbscan", ClusteredFairFL(clustering="dbscan"))]}
    assert decisions["fairfl"].accepted == decisions["dbscan"].accepted
    assert set(decisions["fairfl"].accepted) <= set(range(12))
    np.testing.assert_array_equal(decisions["fairfl"].params, decisions["dbscan"].params)
    # ...and the hook is what FairFL clusters with: another variant's labels show up.
    dbscan = ClusteredFairFL(clustering="dbscan").report(g, updates, samples, evaluate=gate)
    alone = ClusteredFairFL(clustering="none").report(g, updates, samples, evaluate=gate)
    assert max(dbscan.labels.values()) >= 0 and set(alone.labels.values()) == {-1}


def test_exact_shapley_by_subsets_on_a_game_with_known_values():
    """v(S) = sum of the members' weights plus 1 if players 0 and 1 are both in: additive
    parts go to their owner, the pair's bonus is split between 0 and 1."""
    weights = [1.0, 2.0, 3.0, 4.0]

    def value(players):
        return sum(weights[p] for p in players) + (1.0 if {0, 1} <= set(players) else 0.0)

    phi = exact_shapley(value, 4)
    np.testing.assert_allclose(phi, [1.5, 2.5, 3.0, 4.0])
    assert phi.sum() == pytest.approx(value(range(4)) - value([]))  # efficiency
