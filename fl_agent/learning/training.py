"""Local training and evaluation of a spec's model from a flat parameter vector.

:func:`train_local` runs exactly ``steps`` mini-batch SGD steps (the aggregator assigns the
step count per participant to balance workload) with cross-entropy loss and returns the new
vector. Mini-batches come from a ``torch.Generator`` seeded with ``seed``: each pass over the
data is a fresh permutation cut into full batches of ``min(batch_size, n)`` (the remainder of
a pass is skipped), so the same inputs give the same output vector bit for bit on the same
torch build and thread count. ``torch.set_num_threads`` is left to the caller.

Privacy is not done here. It wraps this function: an update-level mechanism (clip and noise
``result.vector - global_vector``) needs nothing from it, and a step-level one passes
``gradient_hook``, called after every backward pass and before the optimizer step as
``gradient_hook(step, parameters)``; it may change each ``parameter.grad`` in place (clip,
add noise). Per-example gradients (Opacus-style DP-SGD) need a wrapper of the model itself
and are out of scope for the hook.

All of it is torch's (layers, loss, SGD); the loop is written here because it is a few lines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fl_agent.errors import ConfigError
from fl_agent.learning.gate_scores import example_scores
from fl_agent.learning.metrics import Metric, get_metric
from fl_agent.learning.models import (
    ModelSpec,
    apply_model,
    check_seed,
    check_vector,
    model_from_vector,
    param_count,
    params_to_vector,
)

GradientHook = Callable[[int, Sequence[nn.Parameter]], None]

#: Examples per forward pass in :func:`predict` and :func:`evaluate` (bounds memory only).
INFERENCE_BATCH = 4096


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What one local training run produced. ``loss`` is the mean mini-batch loss."""

    vector: np.ndarray
    num_samples: int
    steps: int
    train_millis: int
    loss: float


def as_model_input(spec: ModelSpec, X: np.ndarray) -> torch.Tensor:
    """``X`` as a float32 tensor of shape ``(n, *spec.input_shape)``.

    ``X`` may be flat, ``(n, num_features)``, or already ``(n, *input_shape)``; anything
    else, non-numeric or non-finite input raises :class:`ConfigError`.
    """
    array = np.asarray(X)
    if array.dtype.kind not in "fiu":
        raise ConfigError(f"X must be numeric, got {array.dtype}")
    if array.ndim < 2 or (array.shape[1:] != spec.input_shape
                          and array.shape[1:] != (spec.num_features,)):
        raise ConfigError(f"{spec.name} takes X of shape (n, {spec.num_features}) or "
                          f"(n, {', '.join(map(str, spec.input_shape))}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError("X contains NaN or infinite values")
    tensor = torch.tensor(array, dtype=torch.float32)  # a copy: Dataset arrays are read-only
    return tensor.reshape(array.shape[0], *spec.input_shape)


def _labels(spec: ModelSpec, y: np.ndarray, n: int) -> torch.Tensor:
    labels = np.asarray(y)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"y must be {n} integer labels, got {labels.dtype} {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ConfigError(f"labels must lie in 0..{spec.num_classes - 1}, "
                          f"got {labels.min()}..{labels.max()}")
    return torch.from_numpy(labels.astype(np.int64))


def _positive(name: str, value: float, integer: bool = False) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0 \
            or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive {'integer' if integer else 'number'}, "
                          f"got {value!r}")


def round_seed(client_seed: int, round_number: int) -> int:
    """The training seed of one client's round: distinct per client and round, in range for
    any client seed."""
    return (int(client_seed) * 100_003 + int(round_number)) % 2**32


def train_local(spec: ModelSpec, global_vector: np.ndarray, X: np.ndarray, y: np.ndarray,
                steps: int, *, seed: int, batch_size: int = 32, lr: float = 0.05,
                momentum: float = 0.0, weight_decay: float = 0.0,
                gradient_hook: GradientHook | None = None) -> TrainResult:
    """``steps`` SGD steps on ``(X, y)`` starting from ``global_vector``; see module docstring."""
    seed = check_seed(seed)
    _positive("steps", steps, integer=True)
    _positive("batch_size", batch_size, integer=True)
    _positive("lr", lr)
    for name, value in (("momentum", momentum), ("weight_decay", weight_decay)):
        if not (isinstance(value, int | float) and 0 <= value < math.inf):
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    inputs = as_model_input(spec, X)
    n = inputs.shape[0]
    if n == 0:
        raise ConfigError("cannot train on an empty dataset")
    labels = _labels(spec, y, n)
    model = model_from_vector(spec, check_vector(global_vector, param_count(spec)))
    model.train()
    parameters = list(model.parameters())
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    batch = min(batch_size, n)
    per_pass = n // batch

    started = time.perf_counter()
    total_loss = 0.0
    order = torch.randperm(n, generator=generator)
    for step in range(steps):
        position = step % per_pass
        if position == 0 and step > 0:
            order = torch.randperm(n, generator=generator)
        rows = order[position * batch:(position + 1) * batch]
        optimizer.zero_grad(set_to_none=False)
        loss = loss_fn(model(inputs[rows]), labels[rows])
        loss.backward()
        if gradient_hook is not None:
            gradient_hook(step, parameters)
        optimizer.step()
        total_loss += float(loss.detach())
    millis = round((time.perf_counter() - started) * 1000)

    return TrainResult(vector=params_to_vector(model), num_samples=n, steps=steps,
                       train_millis=millis, loss=total_loss / steps)


def _logits(spec: ModelSpec, vector: np.ndarray, X: np.ndarray) -> torch.Tensor:
    return apply_model(spec, vector, as_model_input(spec, X), INFERENCE_BATCH)


def predict_proba(spec: ModelSpec, vector: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Class probabilities, ``(n, num_classes)`` float32."""
    return torch.softmax(_logits(spec, vector, X), dim=1).numpy()


def predict(spec: ModelSpec, vector: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Predicted class indices, ``(n,)`` int64."""
    return _logits(spec, vector, X).argmax(dim=1).numpy().astype(np.int64)


def evaluate(spec: ModelSpec, vector: np.ndarray, X: np.ndarray, y: np.ndarray,
             metric: str | Metric = "accuracy") -> float:
    """``metric`` (a registered name or a :class:`Metric`) of the predictions on ``(X, y)``."""
    scorer = get_metric(metric) if isinstance(metric, str) else metric
    predictions = predict(spec, vector, X)
    _labels(spec, y, predictions.shape[0])
    if predictions.shape[0] == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    return scorer(np.asarray(y), predictions)


def validation_loss(spec: ModelSpec, vector: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the model on ``(X, y)``: a smooth score (lower is better) that,
    negated, makes a sharper validation gate than accuracy on a few hundred examples."""
    logits = _logits(spec, vector, X)
    labels = _labels(spec, y, logits.shape[0])
    if logits.shape[0] == 0:
        raise ConfigError("cannot evaluate on an empty dataset")
    return float(nn.functional.cross_entropy(logits, labels))


def validation_scores(spec: ModelSpec, vector: np.ndarray, X: np.ndarray, y: np.ndarray,
                      kind: str = "loss") -> np.ndarray:
    """One score per example of ``(X, y)`` (``float64``, higher is better), for FairFL's gate:
    ``kind`` is ``"loss"`` (minus the cross-entropy, from the log-softmax of the logits),
    ``"accuracy"`` (the predicted probability of the true class) or ``"f1_macro"`` (soft
    macro-F1 pseudo-values); see :mod:`fl_agent.learning.gate_scores`."""
    logits = _logits(spec, vector, X).double()  # float32 rounds confident p(true) to 1
    labels = _labels(spec, y, logits.shape[0])
    if kind == "loss" and logits.shape[0] >= 2:
        return -nn.functional.cross_entropy(logits, labels, reduction="none").numpy()
    return example_scores(torch.softmax(logits, dim=1).numpy(), labels.numpy(), kind)
