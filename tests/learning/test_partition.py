"""Partitioners: every example goes to exactly one client, no client is empty, skew is real."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fl_agent.errors import ConfigError
from fl_agent.learning.data import label_counts, load_dataset, partition

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def problems(draw):
    classes = draw(st.integers(1, 8))
    n = draw(st.integers(1, 300))
    y = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    scheme = draw(st.sampled_from(["iid", "dirichlet", "shards"]))
    shards = draw(st.integers(1, 4))
    most = n // shards if scheme == "shards" else n
    clients = draw(st.integers(1, max(1, min(most, 30))))
    alpha = draw(st.sampled_from([0.01, 0.1, 0.5, 1.0, 100.0]))
    return y, clients, scheme, shards, alpha, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(problems())
def test_every_index_goes_to_exactly_one_client(problem):
    y, clients, scheme, shards, alpha, seed = problem
    assume(scheme != "shards" or len(y) >= clients * shards)
    parts = partition(y, clients, scheme, alpha=alpha, shards_per_client=shards, seed=seed)
    assert len(parts) == clients
    assert all(part.size >= 1 and part.dtype == np.int64 for part in parts)
    assert all(np.all(np.diff(part) > 0) for part in parts)  # sorted, no repeats
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    again = partition(y, clients, scheme, alpha=alpha, shards_per_client=shards, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return load_dataset("digits").y


def _distance_from_global(y: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """Total variation distance between each client's label mix and the whole set's."""
    counts = label_counts(y, parts, 10)
    shares = counts / counts.sum(axis=1, keepdims=True)
    overall = np.bincount(y, minlength=10) / len(y)
    return 0.5 * np.abs(shares - overall).sum(axis=1)


def test_dirichlet_with_large_alpha_is_close_to_iid(labels):
    near_iid = _distance_from_global(labels, partition(labels, 5, "dirichlet", alpha=1000))
    iid = _distance_from_global(labels, partition(labels, 5, "iid"))
    skewed = _distance_from_global(labels, partition(labels, 5, "dirichlet", alpha=0.1))
    assert near_iid.max() < 0.1 and iid.max() < 0.1
    assert skewed.mean() > 0.4


def test_dirichlet_with_tiny_alpha_leaves_no_client_empty(labels):
    parts = partition(labels, 100, "dirichlet", alpha=0.001, seed=1, min_samples=3)
    assert min(part.size for part in parts) >= 3
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))


def test_dirichlet_depends_on_the_seed(labels):
    a = partition(labels, 4, "dirichlet", seed=1)
    b = partition(labels, 4, "dirichlet", seed=2)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_shards_give_few_labels_per_client(labels):
    parts = partition(labels, 10, "shards", shards_per_client=2, seed=3)
    held = (label_counts(labels, parts, 10) > 0).sum(axis=1)
    assert held.max() <= 4 and held.mean() <= 3
    iid_held = (label_counts(labels, partition(labels, 10, "iid"), 10) > 0).sum(axis=1)
    assert iid_held.min() == 10


def test_shards_aligned_with_classes_give_exactly_that_many_labels():
    y = np.repeat(np.arange(10), 50)
    for seed in range(5):
        parts = partition(y, 5, "shards", shards_per_client=2, seed=seed)
        assert ((label_counts(y, parts, 10) > 0).sum(axis=1) <= 2).all()


def test_label_counts_add_up(labels):
    parts = partition(labels, 7, "dirichlet", alpha=0.3, seed=0)
    counts = label_counts(labels, parts, 10)
    assert counts.shape == (7, 10)
    np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(labels))
    np.testing.assert_array_equal(counts.sum(axis=1), [part.size for part in parts])


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.arange(10), 0), {}, "num_clients"),
    ((np.arange(10), 2.0), {}, "num_clients"),
    ((np.arange(10), True), {}, "num_clients"),
    ((np.arange(10), 11), {}, "cannot give 11 clients"),
    ((np.arange(10), 6, "iid"), {"min_samples": 2}, "cannot give 6 clients"),
    ((np.arange(10), 2, "dirichlet"), {"alpha": 0}, "alpha"),
    ((np.arange(10), 2, "dirichlet"), {"alpha": -1.0}, "alpha"),
    ((np.arange(10), 2, "dirichlet"), {"alpha": float("nan")}, "alpha"),
    ((np.arange(10), 2, "shards"), {"shards_per_client": 0}, "shards_per_client"),
    ((np.arange(10), 4, "shards"), {"shards_per_client": 3}, "cannot give 4 clients"),
    ((np.arange(10), 2, "random"), {}, "iid, dirichlet, shards"),
    ((np.zeros(10), 2), {}, "integer labels"),
    ((np.zeros((2, 5), np.int64), 2), {}, "1-D"),
    ((np.arange(10), 2), {"min_samples": 0}, "min_samples"),
    ((np.arange(10), 2), {"seed": -3}, "seed"),
])
def test_bad_arguments(args, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        partition(*args, **kwargs)
