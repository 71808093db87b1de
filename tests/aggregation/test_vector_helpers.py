"""The blockwise vector helpers give numpy's results bit for bit: FairFL's published
decisions were made with numpy's whole-matrix forms, and a faster helper must not move them
(``fl_agent.aggregation.base``)."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.aggregation.base import (
    BLOCK_VALUES,
    clip_factors,
    clip_norms,
    column_median,
    cosine_to,
    delta_gram,
    gram_cosines,
    row_norms,
    weighted_mean,
)


@pytest.fixture(scope="module")
def wide() -> np.ndarray:
    """More values than one block, so the blockwise (and threaded) paths run."""
    rng = np.random.default_rng(7)
    rows = 9
    return rng.standard_normal((rows, BLOCK_VALUES // rows + 1234)) * rng.uniform(
        0.1, 10, size=(rows, 1))


@pytest.mark.parametrize("shape", [(1, 5), (4, 7), (3, 4096), (5, 4097), (8, 20_001)])
def test_column_median_is_numpys(shape: tuple[int, int]) -> None:
    rows = np.random.default_rng(shape[1]).standard_normal(shape)
    assert np.array_equal(column_median(rows, block=4096), np.median(rows, axis=0))


def test_column_median_of_a_wide_matrix_is_numpys(wide: np.ndarray) -> None:
    assert np.array_equal(column_median(wide), np.median(wide, axis=0))


def test_row_norms_of_a_wide_matrix_are_numpys(wide: np.ndarray) -> None:
    assert np.array_equal(row_norms(wide), np.linalg.norm(wide, axis=1))


def test_weighted_mean_is_numpys_average(wide: np.ndarray) -> None:
    weights = np.arange(1.0, wide.shape[0] + 1) * 13.7
    assert np.array_equal(weighted_mean(wide, weights),
                          np.average(wide, axis=0, weights=weights))
    bound = float(np.median(row_norms(wide)))
    factors = clip_factors(row_norms(wide), bound)
    assert (factors < 1).any() and (factors == 1).any()
    assert np.array_equal(weighted_mean(wide, weights, factors),
                          np.average(clip_norms(wide, bound), axis=0, weights=weights))


def test_clip_factors_shorten_only_the_long_rows() -> None:
    norms = np.array([0.0, 1.0, 2.0, 4.0])
    assert clip_factors(norms, 2.0).tolist() == [1.0, 1.0, 1.0, 0.5]


def test_weighted_mean_of_one_column_and_of_picked_rows_is_numpys() -> None:
    rows = np.random.default_rng(3).standard_normal((40, 1)) * 1e3
    weights = np.random.default_rng(4).uniform(1, 90, 40)
    assert np.array_equal(weighted_mean(rows, weights), np.average(rows, axis=0,
                                                                   weights=weights))
    wide = np.random.default_rng(5).standard_normal((9, 33))
    which = np.array([1, 4, 8])
    assert np.array_equal(weighted_mean(wide, weights[:3], which=which),
                          np.average(wide[which], axis=0, weights=weights[:3]))


def test_weighted_mean_refuses_weights_it_cannot_use() -> None:
    rows = np.ones((3, 4))
    with pytest.raises(ValueError, match="weights for 3 rows"):
        weighted_mean(rows, np.ones(4))
    with pytest.raises(ZeroDivisionError):
        weighted_mean(rows, np.zeros(3))


@pytest.mark.parametrize("shape", [(4, 7), (5, 4097), (8, 20_001)])
def test_column_median_of_picked_scaled_rows_is_numpys(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[1])
    rows = rng.standard_normal(shape)
    which = np.array([shape[0] - 1, 0, 2])
    factors = np.array([0.25, 1.0, 0.7])
    assert np.array_equal(column_median(rows, block=4096, which=which, factors=factors),
                          np.median(rows[which] * factors[:, None], axis=0))
    assert np.array_equal(column_median(rows, block=4096, which=which),
                          np.median(rows[which], axis=0))


def test_column_median_of_picked_rows_of_a_wide_matrix_is_numpys(wide: np.ndarray) -> None:
    which = np.arange(1, wide.shape[0], 2)
    factors = np.linspace(0.3, 1.0, which.size)
    assert np.array_equal(column_median(wide, which=which, factors=factors),
                          np.median(wide[which] * factors[:, None], axis=0))
    with pytest.raises(ValueError, match="factors for"):
        column_median(wide, which=which, factors=factors[1:])


def test_cosines_of_picked_rows_are_those_of_the_copied_rows() -> None:
    rng = np.random.default_rng(11)
    rows = rng.standard_normal((7, 300))
    rows[3] = 0.0  # no length: 0
    direction = rng.standard_normal(300)
    which = [5, 3, 0]
    np.testing.assert_allclose(cosine_to(rows, direction, which=which),
                               cosine_to(rows[which], direction), rtol=0, atol=1e-12)
    assert cosine_to(rows, direction, which=[]).shape == (0,)


def test_cosines_from_the_gram_matrix_are_scikit_learns() -> None:
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(12)
    g = rng.standard_normal(20_000)
    updates = g + rng.standard_normal((9, 20_000)) * rng.uniform(0.01, 5, size=(9, 1))
    gram = delta_gram(g, updates, np.arange(9))
    rows = np.array([0, 4, 8, 2])
    expected = cosine_similarity(updates[rows] - g)
    got = gram_cosines(gram, rows)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.array_equal(np.diag(got), np.ones(4))
    # a delta of no length is 0 against everyone, itself included
    updates[4] = g
    assert not gram_cosines(delta_gram(g, updates, np.arange(9)), rows)[1].any()


def test_the_gram_matrix_of_some_rows_is_the_direct_product() -> None:
    rng = np.random.default_rng(13)
    g = rng.standard_normal(20_001)  # more columns than one block, and a ragged last one
    updates = g + rng.standard_normal((6, 20_001))
    for rows in (np.arange(6), np.array([5, 1, 3])):
        deltas = updates[rows] - g
        np.testing.assert_allclose(delta_gram(g, updates, rows), deltas @ deltas.T,
                                   rtol=1e-12, atol=1e-9)


def test_column_median_leaves_a_column_major_matrix_as_it_was() -> None:
    rows = np.asfortranarray(np.random.default_rng(14).standard_normal((5, 10_000)))
    before = rows.copy()
    assert np.array_equal(column_median(rows), np.median(before, axis=0))
    assert np.array_equal(rows, before)


def test_delta_rows_read_an_empty_selection() -> None:
    from fl_agent.aggregation.vectors import DeltaRows

    deltas = DeltaRows(np.ones((3, 4), dtype=np.float32), np.zeros(4), [0, 2])
    assert deltas[[]].shape == (0, 4) and deltas[np.array([], dtype=bool)].shape == (0, 4)
    with pytest.raises(ZeroDivisionError):
        weighted_mean(DeltaRows(np.ones((3, 1), dtype=np.float32), np.zeros(1), [0, 1]),
                      np.zeros(0), which=np.zeros(0, dtype=np.intp))
