"""Every strategy on crafted rounds: close to FedAvg without attackers, close to the benign
mean with them, and (for the strategies that select) attackers rejected or scored 0.

Distances are in units of a benign step (the norm of the shared part of a benign delta);
the rounds are IID (one data group): 16 benign updates and 4 attackers of one kind."""

from __future__ import annotations

import numpy as np
import pytest
from crafted import crafted_round

from fl_agent.aggregation import Reason, get_strategy
from fl_agent.aggregation.rules import krum_scores, multikrum_select, trimmed_mean
from fl_agent.errors import ConfigError

ATTACKS = ("sign_flip", "scaling", "gaussian", "free_rider", "collude", "label_flip")
SEEDS = range(3)

# strategy -> (config, distance to FedAvg without attack, distance to the benign mean with one)
BOUNDS = {
    "fairfl": ({}, 0.02, 0.05),
    "median": ({}, 0.10, 0.15),
    "trimmed_mean": ({"beta": 0.25}, 0.10, 0.15),
    "krum": ({"num_byzantine": 4}, 0.35, 0.35),  # one benign update: its own noise
    "multikrum": ({"num_byzantine": 4}, 0.10, 0.05),
    "fltrust": ({}, 0.10, 0.15),
    "flame": ({}, 0.15, 0.15),
}
DETECTING = {"fairfl", "krum", "multikrum", "flame"}


def build(name, r):
    config, _, _ = BOUNDS[name]
    if name == "fltrust":  # the server trains on the aggregator's validation split
        config = {"server_update": r.root_update}
    return get_strategy(name, **config)


def fedavg(r):
    return get_strategy("fedavg").aggregate(r.global_params, r.updates, r.num_samples).params


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_benign_only_is_close_to_fedavg(name):
    for seed in SEEDS:
        r = crafted_round(seed, n_benign=20, n_malicious=0)
        result = build(name, r).aggregate(r.global_params, r.updates, r.num_samples)
        gap = np.linalg.norm(result.params - fedavg(r)) / r.step
        assert gap <= BOUNDS[name][1], (seed, gap)
        if name in ("fairfl", "fedavg", "median", "trimmed_mean", "fltrust"):
            assert result.rejected == ()


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_attacked_round_stays_near_the_benign_mean(name, attack):
    for seed in SEEDS:
        r = crafted_round(seed, attack=attack, n_benign=16, n_malicious=4)
        result = build(name, r).aggregate(r.global_params, r.updates, r.num_samples)
        assert r.distance(result.params) <= BOUNDS[name][2], (seed, r.distance(result.params))
        if name in DETECTING and not (name == "flame" and attack == "scaling"):
            assert r.malicious <= set(result.rejected), (seed, result.rejected, r.malicious)
            assert all(result.scores[i] == 0 for i in r.malicious)


@pytest.mark.parametrize("attack", ATTACKS)
def test_fedavg_is_not_robust_to_these_attacks(attack):
    """The control: the crafted attacks do move an undefended aggregate."""
    worst = max(crafted_round(s, attack=attack, n_benign=16, n_malicious=4).distance(
        fedavg(crafted_round(s, attack=attack, n_benign=16, n_malicious=4))) for s in SEEDS)
    assert worst > 0.25


def test_flame_clips_scaled_updates_it_lets_in():
    """FLAME's clustering sees only directions, so scaled copies of benign deltas may join
    the majority cluster; median-norm clipping makes them harmless."""
    for seed in SEEDS:
        r = crafted_round(seed, attack="scaling", n_benign=16, n_malicious=4)
        result = build("flame", r).aggregate(r.global_params, r.updates, r.num_samples)
        assert r.distance(result.params) < 0.15


@pytest.mark.parametrize("attack", ["sign_flip", "gaussian", "free_rider", "collude",
                                    "label_flip"])
def test_fltrust_trusts_attackers_far_less(attack):
    for seed in SEEDS:
        r = crafted_round(seed, attack=attack, n_benign=16, n_malicious=4)
        result = build("fltrust", r).aggregate(r.global_params, r.updates, r.num_samples)
        benign = min(result.scores[i] for i in r.benign)
        assert benign > 0.8
        assert max(result.scores[i] for i in r.malicious) < 0.3
        for i in r.malicious:
            if result.scores[i] == 0:
                assert result.reasons[i] == Reason.ZERO_TRUST


def test_fltrust_rescales_every_update_to_the_server_norm():
    g = np.zeros(3)
    server = np.array([1.0, 0.0, 0.0])
    updates = np.array([[100.0, 0.0, 0.0], [0.0, 5.0, 0.0], [-2.0, 0.0, 0.0]])
    result = get_strategy("fltrust", server_update=server).aggregate(g, updates, [1, 1, 1])
    np.testing.assert_allclose(result.params, [1.0, 0.0, 0.0])
    assert result.accepted == (0,)
    assert result.reasons[1] == result.reasons[2] == Reason.ZERO_TRUST
    np.testing.assert_allclose(result.scores, [1.0, 0.0, 0.0])


def test_fltrust_calls_a_server_callable_once_per_global_model():
    r = crafted_round(5, n_benign=6)
    calls = []

    def server(global_params):
        calls.append(global_params)
        return r.root_update

    strategy = get_strategy("fltrust", server_update=server)
    strategy.aggregate(r.global_params, r.updates, r.num_samples)
    strategy.combine(r.global_params.astype(np.float64), r.updates[:2].astype(np.float64),
                     r.num_samples[:2].astype(np.float64))
    assert len(calls) == 1
    strategy.aggregate(r.global_params + 1, r.updates, r.num_samples)
    assert len(calls) == 2


def test_fltrust_server_update_must_match_the_model():
    r = crafted_round(0, n_benign=4)
    with pytest.raises(ConfigError, match="shape"):
        get_strategy("fltrust", server_update=np.zeros(3)).aggregate(
            r.global_params, r.updates, r.num_samples)


def test_krum_score_and_selection_by_hand():
    updates = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # f = 1: each update's 5 - 1 - 2 = 2 nearest squared distances.
    np.testing.assert_allclose(krum_scores(updates, 1), [1 + 4, 1 + 1, 1 + 4, 1 + 64, 1 + 81])
    np.testing.assert_array_equal(multikrum_select(updates, 1, 1), [1])
    np.testing.assert_array_equal(multikrum_select(updates, 1, 3), [0, 1, 2])
    result = get_strategy("krum", num_byzantine=1).aggregate(np.zeros(1), updates, [1] * 5)
    np.testing.assert_allclose(result.params, [1.0])
    assert result.accepted == (1,)
    assert all(result.reasons[i] == Reason.NOT_SELECTED for i in (0, 2, 3, 4))


def test_multikrum_averages_the_selected_by_samples():
    updates = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    result = get_strategy("multikrum", num_byzantine=1, num_selected=3).aggregate(
        np.zeros(1), updates, [1, 1, 2, 1, 1])
    np.testing.assert_allclose(result.params, [(0 + 1 + 4) / 4])


def test_krum_copes_with_fewer_updates_than_its_bound():
    result = get_strategy("krum", num_byzantine=5).aggregate(np.zeros(2), np.eye(2), [1, 1])
    assert len(result.accepted) == 1


def test_trimmed_mean_and_median_by_hand():
    updates = np.array([[1.0, -5.0], [2.0, 0.0], [3.0, 1.0], [4.0, 2.0], [100.0, 3.0]])
    median = get_strategy("median").aggregate(np.zeros(2), updates, [1] * 5)
    np.testing.assert_allclose(median.params, [3.0, 1.0])
    trimmed = get_strategy("trimmed_mean", beta=0.2).aggregate(np.zeros(2), updates, [1] * 5)
    np.testing.assert_allclose(trimmed.params, [3.0, 1.0])  # one value cut from each end
    plain = get_strategy("trimmed_mean", beta=0.0).aggregate(np.zeros(2), updates, [1] * 5)
    np.testing.assert_allclose(plain.params, updates.mean(axis=0))


@pytest.mark.parametrize("n, beta", [(1, 0.1), (2, 0.1), (5, 0.2), (9, 0.1), (20, 0.25),
                                     (20, 0.0), (37, 0.45)])
def test_the_trimmed_mean_is_scipys_to_the_last_bit(n, beta):
    from scipy.stats import trim_mean

    updates = np.random.default_rng(n).normal(size=(n, 300)) * np.logspace(-3, 3, 300)
    assert trimmed_mean(updates, beta).tobytes() == trim_mean(updates, beta, axis=0).tobytes()


def test_fedavg_weights_by_samples():
    result = get_strategy("fedavg").aggregate(np.zeros(1), [[0.0], [3.0]], [1, 2])
    np.testing.assert_allclose(result.params, [2.0])
    assert result.accepted == (0, 1)


def test_flame_noise_is_seeded_and_scaled_to_the_clip_bound():
    r = crafted_round(6, n_benign=12)
    quiet = get_strategy("flame").aggregate(r.global_params, r.updates, r.num_samples)
    noisy = [get_strategy("flame", noise_lambda=0.01, seed=3).aggregate(
        r.global_params, r.updates, r.num_samples) for _ in range(2)]
    np.testing.assert_array_equal(noisy[0].params, noisy[1].params)
    extra = noisy[0].params.astype(np.float64) - quiet.params
    bound = np.median(np.linalg.norm(r.updates.astype(np.float64) - r.global_params, axis=1))
    assert 0.5 * 0.01 * bound < np.std(extra) < 2 * 0.01 * bound
