"""Named evaluation metrics, so a task can name its metric in the spec and on chain.

A :class:`MetricRegistry` maps names to :class:`Metric` records (a function of
``(y_true, y_pred)`` and whether higher is better). The module-level :data:`METRICS`
registry holds the built-ins — ``accuracy``, ``f1_macro``, ``mse`` and ``r2`` — and is what
:func:`register_metric` and :func:`get_metric` use; tests and embedders can build their own.

Every built-in but ``accuracy`` is scikit-learn's function. Accuracy, the share of
predictions equal to the labels, is written here: scikit-learn's ``accuracy_score`` checks
its input types for about a millisecond a call, which was most of the time spent scoring a
round's coalitions (thousands of evaluations on a few hundred examples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fl_agent.errors import ConfigError

MetricFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Metric:
    """A named score of predictions against true values."""

    name: str
    fn: MetricFn
    higher_is_better: bool

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(self.fn(np.asarray(y_true), np.asarray(y_pred)))

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than score ``b``."""
        return a > b if self.higher_is_better else a < b


class MetricRegistry:
    """Metrics by name. Names are unique; re-registering one needs ``replace=True``."""

    def __init__(self, metrics: tuple[Metric, ...] = ()) -> None:
        self._metrics: dict[str, Metric] = {}
        for metric in metrics:
            self.register(metric.name, metric.fn, metric.higher_is_better)

    def register(self, name: str, fn: MetricFn, higher_is_better: bool, *,
                 replace: bool = False) -> Metric:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a metric needs a non-empty name, got {name!r}")
        if not callable(fn):
            raise ConfigError(f"metric {name!r} must be callable, got {type(fn).__name__}")
        if not isinstance(higher_is_better, bool):
            raise ConfigError(f"higher_is_better must be True or False, got {higher_is_better!r}")
        if name in self._metrics and not replace:
            raise ConfigError(f"metric {name!r} is already registered (pass replace=True)")
        metric = Metric(name=name, fn=fn, higher_is_better=higher_is_better)
        self._metrics[name] = metric
        return metric

    def get(self, name: str) -> Metric:
        try:
            return self._metrics[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown metric {name!r}; known metrics: "
                              f"{', '.join(self.names())}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._metrics))

    def __contains__(self, name: object) -> bool:
        return name in self._metrics


def _sklearn(name: str, **options: Any) -> MetricFn:
    """scikit-learn's ``metrics.<name>``, imported on first use (a participant that never
    evaluates saves the import)."""

    def metric(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn import metrics

        return float(getattr(metrics, name)(y_true, y_pred, **options))

    metric.__name__ = name
    return metric


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The share of ``y_pred`` equal to ``y_true`` (two 1-D label arrays of one length)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ConfigError(f"accuracy needs two non-empty 1-D label arrays of one length, "
                          f"got shapes {y_true.shape} and {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric("accuracy", accuracy, higher_is_better=True),
    Metric("f1_macro", _sklearn("f1_score", average="macro", zero_division=0),
           higher_is_better=True),
    Metric("mse", _sklearn("mean_squared_error"), higher_is_better=False),
    Metric("r2", _sklearn("r2_score"), higher_is_better=True),
)

#: The registry :func:`register_metric` and :func:`get_metric` use.
METRICS = MetricRegistry(BUILTIN_METRICS)


def register_metric(name: str, fn: MetricFn, higher_is_better: bool, *,
                    replace: bool = False) -> Metric:
    """Adds ``fn(y_true, y_pred) -> float`` to :data:`METRICS` under ``name``."""
    return METRICS.register(name, fn, higher_is_better, replace=replace)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; :class:`ConfigError` listing the known names if none."""
    return METRICS.get(name)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray,
                          target_names: list[str] | None = None) -> dict[str, Any]:
    """scikit-learn's per-class precision, recall, F1 and support, as a dict."""
    from sklearn.metrics import classification_report as report_of

    labels = None if target_names is None else list(range(len(target_names)))
    report: dict[str, Any] = report_of(
        y_true, y_pred, labels=labels, target_names=target_names, output_dict=True,
        zero_division=0)
    return report
