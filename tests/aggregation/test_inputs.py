"""Input rules shared by every strategy (fl_agent.aggregation.base) and get_strategy."""

from __future__ import annotations

import numpy as np
import pytest
from crafted import crafted_round

from fl_agent.aggregation import STRATEGIES, Reason, get_strategy
from fl_agent.errors import ConfigError

NAMES = sorted(STRATEGIES)


def build(name: str, round_=None):
    """Each strategy with the configuration the tests use (fltrust needs a server update)."""
    if name == "fltrust":
        r = round_ if round_ is not None else crafted_round(0)
        return get_strategy(name, server_update=r.root_update)
    return get_strategy(name)


def test_unknown_strategy_lists_the_names():
    with pytest.raises(ConfigError) as err:
        get_strategy("fedprox")
    for name in NAMES:
        assert name in str(err.value)


def test_unknown_option_is_named():
    with pytest.raises(ConfigError, match="betta"):
        get_strategy("trimmed_mean", betta=0.2)


def test_strategy_names_are_the_issue_list():
    assert set(NAMES) == {"fairfl", "fedavg", "median", "trimmed_mean", "krum", "multikrum",
                          "fltrust", "flame"}
    for name in NAMES:
        assert build(name).name == name


@pytest.mark.parametrize("name, config", [
    ("trimmed_mean", {"beta": 0.5}),
    ("trimmed_mean", {"beta": -0.1}),
    ("krum", {"num_byzantine": -1}),
    ("krum", {"num_selected": 3}),
    ("multikrum", {"num_selected": 0}),
    ("multikrum", {"num_byzantine": 1.5}),
    ("fltrust", {}),
    ("fltrust", {"server_update": [0.0, float("nan")]}),
    ("flame", {"noise_lambda": -1.0}),
    ("flame", {"min_cluster_size": 1}),
    ("fairfl", {"min_samples": 1}),
    ("fairfl", {"eps": 0.0}),
    ("fairfl", {"tolerance": -0.1}),
    ("fairfl", {"full_tolerance_at": -0.5}),
    ("fairfl", {"min_tolerance": -0.5}),
    ("fairfl", {"min_tolerance": 2.5}),  # above the tolerance (2)
    ("fairfl", {"free_rider_ratio": 1.0}),
    ("fairfl", {"max_norm_ratio": 1.0}),
    ("fairfl", {"max_norm_ratio": float("inf")}),
    ("fairfl", {"max_norm_ratio": True}),
    ("fairfl", {"similarity_z": 0}),
    ("fairfl", {"clip_ratio": 0.5}),
])
def test_constructors_reject_bad_configuration(name, config):
    with pytest.raises(ConfigError):
        get_strategy(name, **config)


@pytest.mark.parametrize("name", NAMES)
class TestMalformedRounds:
    def test_empty_updates(self, name):
        with pytest.raises(ConfigError, match="empty"):
            build(name).aggregate(np.zeros(4, np.float32), [], [])
        with pytest.raises(ConfigError):
            build(name).aggregate(np.zeros(4, np.float32), np.zeros((0, 4), np.float32), [])

    def test_mismatched_shapes(self, name):
        g = np.zeros(4, np.float32)
        with pytest.raises(ConfigError, match="update 1"):
            build(name).aggregate(g, [np.ones(4), np.ones(5)], [1, 1])
        with pytest.raises(ConfigError):
            build(name).aggregate(g, np.ones((2, 5), np.float32), [1, 1])
        with pytest.raises(ConfigError):
            build(name).aggregate(g, np.ones((2, 2, 2), np.float32), [1, 1])

    def test_bad_global_model(self, name):
        with pytest.raises(ConfigError):
            build(name).aggregate(np.array([0.0, np.nan]), np.ones((2, 2)), [1, 1])
        with pytest.raises(ConfigError):
            build(name).aggregate(np.zeros((2, 2)), np.ones((2, 4)), [1, 1])

    def test_bad_sample_counts(self, name):
        r = crafted_round(1, n_benign=5)
        strategy = build(name, r)
        with pytest.raises(ConfigError, match="negative"):
            strategy.aggregate(r.global_params, r.updates, [10, 10, -1, 10, 10])
        with pytest.raises(ConfigError, match="one count per update"):
            strategy.aggregate(r.global_params, r.updates, [10, 10])
        with pytest.raises(ConfigError):
            strategy.aggregate(r.global_params, r.updates, [10, 10, np.nan, 10, 10])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_update_is_rejected_and_the_round_goes_on(name, bad):
    r = crafted_round(2, n_benign=8)
    updates = r.updates.copy()
    updates[3, 7] = bad
    strategy = build(name, r)
    result = strategy.aggregate(r.global_params, updates, r.num_samples)
    assert 3 in result.rejected and result.reasons[3] == Reason.NON_FINITE
    assert result.scores[3] == 0.0
    assert np.all(np.isfinite(result.params))
    # The same as aggregating the other updates alone (indices shift by one after 3).
    others = [i for i in range(8) if i != 3]
    alone = strategy.aggregate(r.global_params, r.updates[others], r.num_samples[others])
    np.testing.assert_allclose(result.params, alone.params, rtol=1e-6, atol=1e-6)
    assert result.accepted == tuple(others[i] for i in alone.accepted)


@pytest.mark.parametrize("name", NAMES)
def test_an_update_trained_on_no_samples_is_rejected(name):
    r = crafted_round(3, n_benign=6)
    counts = r.num_samples.copy()
    counts[0] = 0
    result = build(name, r).aggregate(r.global_params, r.updates, counts)
    assert result.reasons[0] == Reason.NO_SAMPLES
    assert 0 not in result.accepted


@pytest.mark.parametrize("name", NAMES)
def test_nothing_usable_keeps_the_global_model(name):
    g = np.arange(6, dtype=np.float32)
    updates = np.full((3, 6), np.nan, dtype=np.float32)
    result = build(name, crafted_round(0, d=6)).aggregate(g, updates, [5, 5, 5])
    np.testing.assert_array_equal(result.params, g)
    assert result.accepted == () and result.rejected == (0, 1, 2)
    assert set(result.reasons.values()) == {Reason.NON_FINITE}


@pytest.mark.parametrize("name", NAMES)
def test_result_partitions_the_updates_and_keeps_the_dtype(name):
    r = crafted_round(4, attack="sign_flip", n_benign=10, n_malicious=3)
    result = build(name, r).aggregate(r.global_params, list(r.updates), list(r.num_samples))
    n = len(r.updates)
    assert set(result.accepted) | set(result.rejected) == set(range(n))
    assert not set(result.accepted) & set(result.rejected)
    assert list(result.accepted) == sorted(result.accepted)
    assert set(result.reasons) == set(result.rejected)
    assert result.scores.shape == (n,)
    assert all(result.scores[i] == 0.0 for i in result.rejected)
    assert result.params.dtype == np.float32 and result.params.shape == r.global_params.shape
    as64 = build(name, r).aggregate(r.global_params.astype(np.float64), r.updates, r.num_samples)
    assert as64.params.dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
def test_a_prepared_round_aggregates_as_the_raw_one(name):
    """decide_round checks a round once and hands the strategy the checked round."""
    from fl_agent.aggregation.base import prepare_round

    r = crafted_round(4, attack="sign_flip")
    strategy = build(name, r)
    raw = strategy.aggregate(r.global_params, r.updates, r.num_samples, r.gate_scores)
    prepared = strategy.aggregate_round(
        prepare_round(r.global_params, r.updates, r.num_samples), r.gate_scores)
    assert prepared.accepted == raw.accepted and dict(prepared.reasons) == dict(raw.reasons)
    assert np.array_equal(prepared.params, raw.params)


def test_a_round_reads_float_updates_without_copying_them():
    """prepare_round keeps a float array of updates as it is; the float64 copy, the deltas
    and the Gram matrix are made from it when asked for, the Gram matrix once a round."""
    from fl_agent.aggregation.base import DeltaRows, delta_gram, prepare_round

    r = crafted_round(5)
    updates = r.updates.copy()
    updates[3, 7] = np.nan
    before = updates.copy()
    rnd = prepare_round(r.global_params, updates, r.num_samples)
    assert rnd.raw is updates and rnd.valid.tolist() == [i for i in range(rnd.n) if i != 3]
    wide = updates.astype(np.float64)
    assert rnd.updates.dtype == np.float64 and np.array_equal(rnd.updates, wide,
                                                              equal_nan=True)
    assert rnd.updates is not updates
    deltas = rnd.deltas()
    expected = wide[rnd.valid] - r.global_params.astype(np.float64)
    assert isinstance(deltas, DeltaRows) and deltas.shape == expected.shape
    assert np.array_equal(deltas[4], expected[4]) and np.array_equal(deltas[2:6], expected[2:6])
    assert np.array_equal(deltas[[5, 0]], expected[[5, 0]])
    mask = np.arange(len(deltas)) % 2 == 0
    assert np.array_equal(deltas[mask, 3:9], expected[mask, 3:9])
    assert np.array_equal(np.asarray(deltas), expected)
    direction = np.random.default_rng(0).standard_normal(expected.shape[1])
    np.testing.assert_allclose(deltas @ direction, expected @ direction, rtol=1e-12)
    gram = rnd.delta_gram()
    assert np.array_equal(gram, delta_gram(r.global_params, wide, rnd.valid))
    weighted = rnd.with_num_samples(np.arange(1.0, rnd.n + 1))
    assert weighted.delta_gram() is gram and weighted.updates is rnd.updates  # shared
    get_strategy("fairfl").aggregate_round(weighted, r.gate_scores)
    assert np.array_equal(updates, before, equal_nan=True)  # never written to


def test_a_usable_update_cannot_be_given_no_weight():
    from fl_agent.aggregation.base import prepare_round

    r = crafted_round(5)
    rnd = prepare_round(r.global_params, r.updates, r.num_samples)
    weights = np.ones(rnd.n)
    weights[2] = 0.0
    with pytest.raises(ConfigError, match="positive weight"):
        rnd.with_num_samples(weights)
    with pytest.raises(ConfigError, match="one count per update"):
        rnd.with_num_samples(np.ones(rnd.n + 1))


@pytest.mark.parametrize("kind", ["masked", "matrix", "longdouble"])
def test_updates_that_are_not_plain_float_arrays_are_checked_as_before(kind):
    """Only a plain float16/32/64 array is kept as given; a masked array with NaN under its
    mask, a matrix or long doubles beyond float64 go through the row-by-row conversion."""
    from fl_agent.aggregation.base import prepare_round

    r = crafted_round(6)
    g = r.global_params
    if kind == "masked":
        values = r.updates.astype(np.float64)
        values[2, 5] = np.nan
        updates = np.ma.masked_array(values, mask=np.isnan(values))
        rnd = prepare_round(g, updates, r.num_samples)
        assert rnd.reasons == {2: Reason.NON_FINITE} and type(rnd.raw) is np.ndarray
    elif kind == "matrix":
        with pytest.raises(ConfigError, match="has shape"):
            prepare_round(g, np.asmatrix(r.updates), r.num_samples)
    else:
        updates = r.updates.astype(np.longdouble)
        updates[4, 0] = np.longdouble(10) ** 400 if np.finfo(np.longdouble).maxexp > 1024 \
            else np.inf
        rnd = prepare_round(g, updates, r.num_samples)
        assert rnd.reasons == {4: Reason.NON_FINITE} and rnd.raw.dtype == np.float64
