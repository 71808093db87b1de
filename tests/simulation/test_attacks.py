"""The attacks do what their names say (pure functions, seeded)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_agent.errors import ConfigError
from fl_agent.simulation.attacks import (
    Attack,
    Trigger,
    apply_trigger,
    attack_success_rate,
    poison_data,
    poison_update,
)
from fl_agent.simulation.report import detection_rates

RNG = np.random.default_rng


def test_label_flip_mirrors_the_labels_and_keeps_the_features():
    X, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 8, 9])
    X2, y2 = poison_data(Attack("label_flip"), X, y, 10, rng=RNG(0))
    assert y2.tolist() == [9, 8, 1, 0] and np.array_equal(X2, X)
    assert y.tolist() == [0, 1, 8, 9]  # the input is not modified


def test_backdoor_stamps_a_fraction_and_relabels_it_to_the_target():
    X, y = np.zeros((10, 64), np.float32), np.full(10, 5)
    trigger = Trigger.corner((1, 8, 8), size=2, value=16.0)
    assert trigger.features == (54, 55, 62, 63)
    X2, y2 = poison_data(Attack("backdoor", poison_fraction=0.5, target=0), X, y, 10,
                         trigger=trigger, rng=RNG(0))
    stamped = np.all(X2[:, list(trigger.features)] == 16.0, axis=1)
    assert stamped.sum() == 5 and np.all(y2[stamped] == 0) and np.all(y2[~stamped] == 5)
    with pytest.raises(ConfigError, match="needs a trigger"):
        poison_data(Attack("backdoor"), X, y, 10, rng=RNG(0))
    with pytest.raises(ConfigError, match="not a class"):
        poison_data(Attack("backdoor", target=12), X, y, 10, trigger=trigger, rng=RNG(0))


def test_trigger_on_flat_features_takes_the_last_ones():
    assert Trigger.corner((30,), size=2).features == (26, 27, 28, 29)
    stamped = apply_trigger(np.zeros((2, 30)), Trigger((0, 29), 7.0))
    assert stamped[:, [0, 29]].tolist() == [[7.0, 7.0], [7.0, 7.0]] and stamped.sum() == 28


VALUE = st.one_of(st.just(0.0), st.floats(0.01, 10), st.floats(-10, -0.01))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(VALUE, min_size=2, max_size=20), st.integers(0, 2**31))
def test_model_attacks_relative_to_the_honest_delta(values, seed):
    g = np.zeros(len(values), np.float32)
    trained = np.asarray(values, np.float32)
    delta = trained - g
    flipped = poison_update(Attack("sign_flip"), g, trained, rng=RNG(seed))
    assert np.allclose(flipped, -delta)
    boosted = poison_update(Attack("scaling", scale=10), g, trained, rng=RNG(seed))
    assert np.allclose(boosted, 10 * delta, atol=1e-4)
    noise = poison_update(Attack("gaussian"), g, trained, rng=RNG(seed))
    expected = np.linalg.norm(delta) or 1e-3
    assert np.linalg.norm(noise) == pytest.approx(expected, rel=1e-4)
    assert np.array_equal(poison_update(Attack("free_rider"), g, trained, rng=RNG(seed)), g)
    assert np.array_equal(poison_update(Attack("label_flip"), g, trained, rng=RNG(seed)),
                          trained)


def test_attack_success_rate_ignores_inputs_already_of_the_target_class():
    y = np.array([0, 1, 2, 3])
    assert attack_success_rate(np.array([0, 0, 0, 3]), y, 0) == pytest.approx(2 / 3)
    assert attack_success_rate(np.array([0]), np.array([0]), 0) == 0.0


@pytest.mark.parametrize("fields", [{"name": "bribe"}, {"scale": 0}, {"flip_scale": -1},
                                    {"poison_fraction": 0}, {"poison_fraction": 1.5}])
def test_bad_attack_settings(fields):
    with pytest.raises(ConfigError):
        Attack(**fields)


def test_an_attack_from_a_round_is_honest_before_it():
    from fl_agent.simulation.config import SimulationConfig, attack_settings

    late = SimulationConfig(**attack_settings("sign_flip-from-11"))
    assert late.attack == "sign_flip" and late.attack_from == 11
    assert [r for r in range(1, 16) if late.attacks_in(r)] == list(range(11, 16))
    both = SimulationConfig(**attack_settings("label_flip-every-2-from-4"))
    assert [r for r in range(1, 11) if both.attacks_in(r)] == [4, 6, 8, 10]


@pytest.mark.parametrize("name", ["sign_flip-from-0", "sign_flip-from-x", "-from-3",
                                  "bribe-from-3", "sign_flip-from-3-from-4",
                                  "sign_flip-from-10001", "sign_flip-from-041",
                                  "sign_flip-from-\u00b2", "sign_flip-from-\u0664\u0661",
                                  "sign_flip-from-", "none-from-5"])
def test_a_bad_attack_name_says_how_to_write_one(name):
    from fl_agent.simulation.config import attack_settings

    with pytest.raises(ConfigError, match="attack"):
        attack_settings(name)


def test_attackers_who_would_never_attack_are_refused():
    from fl_agent.simulation.config import SimulationConfig, attack_settings

    with pytest.raises(ConfigError, match="never attack"):
        SimulationConfig.build(rounds=60, **attack_settings("sign_flip-from-61"))
    assert SimulationConfig.build(rounds=60, **attack_settings("sign_flip-from-60"))


def test_free_rider_does_not_train():
    assert not Attack("free_rider").trains and Attack("label_flip").trains


def test_detection_rates_count_flags_over_all_rounds():
    rounds = [{"submissions": 10, "malicious_submissions": 3, "malicious_flagged": 3,
               "benign_flagged": 1},
              {"submissions": 8, "malicious_submissions": 1, "malicious_flagged": 0,
               "benign_flagged": 0}]
    rates = detection_rates(rounds)
    assert rates["tpr"] == pytest.approx(3 / 4) and rates["fpr"] == pytest.approx(1 / 14)
    assert detection_rates([])["tpr"] == 1.0


def test_targeted_flip_relabels_only_the_source_class():
    X, y = np.zeros((6, 2)), np.array([0, 1, 1, 7, 2, 1])
    _, y2 = poison_data(Attack("targeted_flip"), X, y, 10, rng=RNG(0))
    assert y2.tolist() == [0, 7, 7, 7, 2, 7]
    with pytest.raises(ConfigError, match="targeted_flip needs classes"):
        poison_data(Attack("targeted_flip", flip_target=12), X, y, 10, rng=RNG(0))


def test_alie_z_is_the_normal_quantile_of_the_majority_it_needs():
    from fl_agent.simulation.attacks import alie_z

    # n = 20, m = 6: s = floor(11) - 6 = 5 honest needed, z = Phi^-1(15 / 20) = 0.6745.
    assert alie_z(20, 6) == pytest.approx(0.674490, abs=1e-6)
    # n = 50, m = 12: s = 14, z = Phi^-1(36 / 50) = 0.5828.
    assert alie_z(50, 12) == pytest.approx(0.582842, abs=1e-6)


def test_colluders_submit_the_crafted_update_from_their_own_deltas():
    from fl_agent.simulation.attacks import alie_z, collude

    g = np.array([1.0, 1.0, 1.0])
    honest = g + np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])  # mean (2, 0, 2), std (1, 0, 0)
    ipm = collude(Attack("ipm"), g, honest, num_clients=20)
    assert ipm.tolist() == pytest.approx([1 - 1.0, 1.0, 1 - 1.0])  # g - 0.5 * mean
    alie = collude(Attack("alie"), g, honest, num_clients=20)
    assert alie.tolist() == pytest.approx([1 + 2 - alie_z(20, 2), 1.0, 3.0], abs=1e-6)
    with pytest.raises(ConfigError):
        collude(Attack("sign_flip"), g, honest, num_clients=20)


def test_a_noisy_free_rider_moves_as_far_as_the_last_global_step():
    from fl_agent.simulation.attacks import noisy_free_ride

    g, before = np.full(100, 2.0), np.full(100, 1.9)
    out = noisy_free_ride(g, before, rng=RNG(1))
    assert np.linalg.norm(out - g) == pytest.approx(np.linalg.norm(g - before), rel=1e-5)
    first = noisy_free_ride(g, None, rng=RNG(1))
    assert np.linalg.norm(first - g) == pytest.approx(1e-3 * np.linalg.norm(g), rel=1e-5)
    assert not Attack("noisy_free_rider").trains


def test_minmax_goes_as_far_against_the_spread_as_the_colluders_own_distances_allow():
    from fl_agent.simulation.attacks import collude, minmax_gamma

    # Colluders at (+-1, 0): the farthest pair is 2 apart. Pushing the mean (0, 0) along
    # (0, -1) by gamma puts it sqrt(1 + gamma^2) from each: at most 2 for gamma <= sqrt(3).
    deltas = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert minmax_gamma(deltas, np.array([0.0, -1.0])) == pytest.approx(np.sqrt(3), rel=1e-6)
    assert minmax_gamma(deltas, np.zeros(2)) == 0.0
    rng = np.random.default_rng(3)
    g = rng.normal(size=50)
    colluders = g + rng.normal(size=(4, 50))
    crafted = collude(Attack("minmax"), g, colluders, num_clients=10).astype(np.float64)
    d = colluders - g
    spread = max(np.linalg.norm(a - b) for a in d for b in d)
    farthest = np.linalg.norm(crafted - g - d, axis=1).max()
    assert farthest == pytest.approx(spread, rel=1e-4)  # on the boundary, not inside
    assert np.linalg.norm(crafted - g - d.mean(axis=0)) > 0.5 * spread  # and far from the mean
