"""Per-example validation scores for FairFL's gate: each checked against a value worked out
by hand or by a different route (brute-force leave-one-out, scikit-learn on hard labels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fl_agent.errors import ConfigError
from fl_agent.learning import ModelSpec, init_params, validation_scores
from fl_agent.learning.gate_scores import example_scores, soft_macro_f1

P = np.array([[0.7, 0.2, 0.1],
              [0.1, 0.6, 0.3],
              [0.5, 0.25, 0.25],
              [0.2, 0.2, 0.6]])
Y = np.array([0, 1, 1, 2])


def test_loss_and_expected_accuracy_by_hand():
    np.testing.assert_allclose(example_scores(P, Y, "accuracy"), [0.7, 0.6, 0.25, 0.6])
    np.testing.assert_allclose(example_scores(P, Y, "loss"),
                               [math.log(0.7), math.log(0.6), math.log(0.25), math.log(0.6)])


def test_soft_macro_f1_by_hand():
    # class 0: TP 0.7, predicted 1.5, actual 1 -> 1.4 / 2.5
    # class 1: TP 0.85, predicted 1.25, actual 2 -> 1.7 / 3.25
    # class 2: TP 0.6, predicted 1.25, actual 1 -> 1.2 / 2.25
    expected = (1.4 / 2.5 + 1.7 / 3.25 + 1.2 / 2.25) / 3
    assert soft_macro_f1(P, Y) == pytest.approx(expected)


def test_soft_macro_f1_on_hard_predictions_is_macro_f1():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 60)
    predicted = rng.integers(0, 4, 60)
    assert soft_macro_f1(np.eye(4)[predicted], y) == pytest.approx(
        f1_score(y, predicted, average="macro", zero_division=0))


def test_f1_pseudo_values_are_the_jackknife_of_brute_force_leave_one_out():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(3), size=12)
    y = rng.integers(0, 3, 12)
    full = soft_macro_f1(p, y)
    loo = [soft_macro_f1(np.delete(p, i, axis=0), np.delete(y, i)) for i in range(12)]
    np.testing.assert_allclose(example_scores(p, y, "f1_macro"),
                               12 * full - 11 * np.array(loo))


@pytest.mark.parametrize("bad", [
    (P, Y, "precision"),  # unknown kind
    (P[0], Y[:1], "loss"),  # not a matrix
    (P, Y[:3], "loss"),  # wrong number of labels
    (P, np.array([0, 1, 3, 2]), "loss"),  # a label out of range
])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(ConfigError):
        example_scores(*bad)


def test_validation_scores_of_a_model_average_to_its_loss():
    spec = ModelSpec(name="mlp", input_shape=(4,), num_classes=3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    vector = init_params(spec, 1)
    from fl_agent.learning import validation_loss

    scores = validation_scores(spec, vector, X, y)
    assert scores.shape == (30,) and scores.dtype == np.float64
    assert -scores.mean() == pytest.approx(validation_loss(spec, vector, X, y), rel=1e-6)
    accuracy = validation_scores(spec, vector, X, y, "accuracy")
    assert np.all((accuracy > 0) & (accuracy < 1))
    np.testing.assert_allclose(np.log(accuracy), scores, atol=1e-5)
