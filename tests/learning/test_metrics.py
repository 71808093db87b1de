"""The metric registry: built-ins agree with scikit-learn; unknown names are clear errors."""

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


@pytest.mark.parametrize("name, expected, higher", [
    ("accuracy", skm.accuracy_score(Y_TRUE, Y_PRED), True),
    ("f1_macro", skm.f1_score(Y_TRUE, Y_PRED, average="macro"), True),
    ("mse", skm.mean_squared_error(Y_TRUE, Y_PRED), False),
    ("r2", skm.r2_score(Y_TRUE, Y_PRED), True),
])
def test_builtins_match_sklearn(name, expected, higher):
    metric = get_metric(name)
    value = metric(Y_TRUE, Y_PRED)
    assert isinstance(value, float) and value == pytest.approx(expected, rel=1e-12)
    assert metric.higher_is_better is higher


def test_accuracy_values_are_plausible():
    assert 0.7 < get_metric("accuracy")(Y_TRUE, Y_PRED) < 0.85
    assert get_metric("accuracy")(Y_TRUE, Y_TRUE) == 1.0


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
    assert get_metric("balanced_accuracy")(Y_TRUE, Y_PRED) == \
        pytest.approx(skm.balanced_accuracy_score(Y_TRUE, Y_PRED))


def test_classification_report_is_sklearns():
    report = classification_report(Y_TRUE, Y_PRED)
    assert report == skm.classification_report(Y_TRUE, Y_PRED, output_dict=True)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(Y_TRUE, Y_PRED))
    named = classification_report(Y_TRUE, Y_PRED, target_names=["a", "b", "c", "d"])
    assert named["c"] == report["2"]
