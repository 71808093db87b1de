"""The metric registry: built-ins give the values worked out by hand; unknown names are clear
errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from fl_agent.errors import ConfigError
from fl_agent.learning import metrics
from fl_agent.learning.metrics import (
    BUILTIN_METRICS,
    MetricRegistry,
    classification_report,
    get_metric,
    register_metric,
)

rng = np.random.default_rng(0)
Y_TRUE = rng.integers(0, 4, size=200)
Y_PRED = np.where(rng.random(200) < 0.7, Y_TRUE, rng.integers(0, 4, size=200))


# A case small enough to work out by hand: 4 of 6 right; per class (precision, recall,
# F1) = (1/2, 1/2, 1/2), (2/3, 1, 4/5), (1, 1/2, 2/3); errors 0,-1,0,0,0,2.
HAND_TRUE = np.array([0, 0, 1, 1, 2, 2])
HAND_PRED = np.array([0, 1, 1, 1, 2, 0])


@pytest.mark.parametrize("name, expected, higher", [
    ("accuracy", 4 / 6, True),
    ("f1_macro", (1 / 2 + 4 / 5 + 2 / 3) / 3, True),
    ("mse", 5 / 6, False),
    ("r2", 1 - 5 / 4, True),  # residual sum 5, total sum of squares 4 around the mean 1
])
def test_builtins_give_the_hand_worked_values(name, expected, higher):
    metric = get_metric(name)
    value = metric(HAND_TRUE, HAND_PRED)
    assert isinstance(value, float) and value == pytest.approx(expected, rel=1e-12)
    assert metric.higher_is_better is higher


def test_accuracy_values_are_plausible():
    assert 0.7 < get_metric("accuracy")(Y_TRUE, Y_PRED) < 0.85
    assert get_metric("accuracy")(Y_TRUE, Y_TRUE) == 1.0


@pytest.mark.parametrize("n", [1, 7, 200, 1_000])
def test_the_hand_written_accuracy_is_scikit_learns_to_the_last_bit(n):
    local = np.random.default_rng(n)
    y_true = local.integers(0, 10, size=n)
    y_pred = np.where(local.random(n) < 0.6, y_true, local.integers(0, 10, size=n))
    assert get_metric("accuracy")(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)


@pytest.mark.parametrize("y_true, y_pred", [
    (np.array([0, 1]), np.array([0, 1, 1])),  # lengths differ
    (np.zeros((2, 2)), np.zeros((2, 2))),      # not 1-D
    (np.array([]), np.array([])),              # empty
])
def test_accuracy_refuses_labels_it_cannot_compare(y_true, y_pred):
    with pytest.raises(ConfigError, match="accuracy needs two non-empty 1-D label arrays"):
        get_metric("accuracy")(y_true, y_pred)


def test_better_follows_the_direction():
    assert get_metric("accuracy").better(0.9, 0.8)
    assert not get_metric("accuracy").better(0.8, 0.9)
    assert get_metric("mse").better(0.1, 0.2)
    assert not get_metric("mse").better(0.2, 0.2)


def test_unknown_metric_lists_the_known_names():
    with pytest.raises(ConfigError, match="unknown metric 'auc'; known metrics: accuracy, "
                                          "f1_macro, mse, r2"):
        get_metric("auc")


def test_own_registry():
    registry = MetricRegistry(BUILTIN_METRICS)
    metric = registry.register("errors", lambda t, p: float(np.sum(t != p)),
                               higher_is_better=False)
    assert registry.get("errors") is metric
    assert metric(Y_TRUE, Y_PRED) == float(np.sum(Y_TRUE != Y_PRED))
    assert "errors" in registry and "errors" not in metrics.METRICS
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("errors", len, higher_is_better=False)
    replaced = registry.register("errors", lambda t, p: 0.0, higher_is_better=False,
                                 replace=True)
    assert registry.get("errors") is replaced


@pytest.mark.parametrize("name, fn, higher", [
    ("", len, True), ("x", "not callable", True), ("x", len, 1),
])
def test_registration_is_validated(name, fn, higher):
    with pytest.raises(ConfigError):
        MetricRegistry().register(name, fn, higher)


def test_register_metric_uses_the_module_registry(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", MetricRegistry(BUILTIN_METRICS))
    register_metric("balanced_accuracy", skm.balanced_accuracy_score, higher_is_better=True)
    # Mean recall over the classes: (1/2 + 1 + 1/2) / 3.
    assert get_metric("balanced_accuracy")(HAND_TRUE, HAND_PRED) == pytest.approx(2 / 3)


def test_classification_report_has_the_per_class_figures():
    report = classification_report(HAND_TRUE, HAND_PRED)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["1"]["precision"] == pytest.approx(2 / 3)
    assert report["1"]["recall"] == pytest.approx(1.0)
    assert report["2"]["f1-score"] == pytest.approx(2 / 3)
    assert report["macro avg"]["f1-score"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    named = classification_report(HAND_TRUE, HAND_PRED, target_names=["a", "b", "c"])
    assert named["c"] == report["2"]
