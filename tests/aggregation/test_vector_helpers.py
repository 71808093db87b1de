"""The blockwise vector helpers give numpy's results bit for bit: FairFL's published
decisions were made with numpy's whole-matrix forms, and a faster helper must not move them
(``fl_agent.aggregation.base``)."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.aggregation.base import (
    _BLOCK_VALUES,
    clip_factors,
    clip_norms,
    column_median,
    row_norms,
    weighted_mean,
)


@pytest.fixture(scope="module")
def wide() -> np.ndarray:
    """More values than one block, so the blockwise (and threaded) paths run."""
    rng = np.random.default_rng(7)
    rows = 9
    return rng.standard_normal((rows, _BLOCK_VALUES // rows + 1234)) * rng.uniform(
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
