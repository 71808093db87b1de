"""Per-example validation scores for FairFL's gate, in three units that give the same verdicts.

FairFL's validation gate (:mod:`fl_agent.aggregation.fairfl`, step 5) compares models that
differ by one participant's share of a step. It asks whether, on the aggregator's validation
examples, one model is worse than another *by more than the noise of those examples*, so it
needs one value per example (the score is their mean) and measures its slack in standard
errors of the paired difference, not in the units of the score. Any of these works:

* ``"loss"``: minus each example's cross-entropy;
* ``"accuracy"``: each example's predicted probability of its true class, the *expected*
  accuracy of the model (the accuracy of a classifier that draws its answer from its own
  predicted distribution). Hard accuracy moves in steps of ``1 / n_val``: on the digits
  validation split (270 examples) one participant's share of a late step changes no
  prediction at all in most rounds, so no gate can read it;
* ``"f1_macro"``: macro-F1 of the soft confusion matrix (each example counts its predicted
  probabilities, not its arg-max), as jackknife pseudo-values ``n F - (n - 1) F_(-i)``: macro-F1
  is not a mean over examples, and the pseudo-values are the standard way to make one that
  has the same mean (up to the jackknife's bias correction) and the right standard error.

Hand-written here: the soft macro-F1 and its leave-one-out values (a few numpy lines; no
library computes them vectorised); the probabilities are the model's (torch).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from fl_agent.errors import ConfigError

GateScore = Literal["loss", "accuracy", "f1_macro"]
GATE_SCORES: tuple[str, ...] = get_args(GateScore)

_FLOOR = 1e-12  # log(0) guard: a probability the float32 softmax rounded to zero


def example_scores(probabilities: NDArray[np.floating], labels: NDArray[np.integer],
                   kind: str = "loss") -> NDArray[np.float64]:
    """One value per example, higher is better, whose mean is the ``kind`` score of the
    model that gave ``probabilities`` (``n x classes``, rows summing to 1) on ``labels``."""
    if kind not in GATE_SCORES:
        raise ConfigError(f"unknown gate score {kind!r}; choose one of {', '.join(GATE_SCORES)}")
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],) or p.shape[0] < 2:
        raise ConfigError(f"need an (n, classes) probability matrix and n labels with n >= 2, "
                          f"got {p.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ConfigError(f"labels must be in [0, {p.shape[1]}), got {y.min()}..{y.max()}")
    true = p[np.arange(y.size), y]
    if kind == "loss":
        return np.log(np.maximum(true, _FLOOR))
    if kind == "accuracy":
        return true
    return _soft_f1_pseudo_values(p, y)


def soft_macro_f1(probabilities: NDArray[np.floating], labels: NDArray[np.integer]) -> float:
    """Macro-F1 of the soft confusion matrix; classes absent from ``labels`` and never
    predicted count 0, as scikit-learn's ``zero_division=0`` does."""
    p = np.asarray(probabilities, dtype=np.float64)
    onehot = np.eye(p.shape[1])[np.asarray(labels)]
    return float(_f1((onehot * p).sum(axis=0), p.sum(axis=0), onehot.sum(axis=0)).mean())


def _f1(true_positive: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``2 TP / (predicted + actual)`` per class (elementwise); 0 where both are 0."""
    total = predicted + actual
    return np.divide(2 * true_positive, total, out=np.zeros(np.broadcast(true_positive,
                     total).shape), where=total > 0)


def _soft_f1_pseudo_values(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = y.size
    onehot = np.eye(p.shape[1])[y]
    tp = (onehot * p).sum(axis=0)  # soft true positives per class
    predicted, actual = p.sum(axis=0), onehot.sum(axis=0)
    full = _f1(tp, predicted, actual).mean()
    # leave example i out: subtract its row from every per-class sum
    loo = _f1(tp - onehot * p, predicted - p, actual - onehot).mean(axis=1)
    return n * full - (n - 1) * loo


__all__ = ["GATE_SCORES", "GateScore", "example_scores", "soft_macro_f1"]
