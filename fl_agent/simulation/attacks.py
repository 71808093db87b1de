"""Attacks a malicious simulated participant can run (pure functions, seeded).

Two kinds, as in the robust-aggregation literature:

* **data poisoning** changes what the attacker trains on, then it trains honestly:
  ``label_flip`` (label ``c`` becomes ``C - 1 - c``) and ``backdoor`` (a trigger patch is
  stamped on a fraction of the examples, whose label becomes the target class; the attack
  success rate is how often the final model sends triggered test inputs to the target);
* **model poisoning** changes the update the attacker uploads: ``sign_flip`` (the opposite
  of its honest delta), ``scaling`` (its delta boosted ``scale`` times), ``gaussian`` (a
  random direction of the honest delta's length) and ``free_rider`` (it re-submits the
  global model without training).

Written by hand: they are the standard definitions and a few lines each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from fl_agent.errors import ConfigError

AttackName = Literal["none", "label_flip", "sign_flip", "scaling", "gaussian", "backdoor",
                     "free_rider"]
ATTACKS: tuple[str, ...] = ("none", "label_flip", "sign_flip", "scaling", "gaussian",
                            "backdoor", "free_rider")
DATA_ATTACKS = frozenset({"label_flip", "backdoor"})
MODEL_ATTACKS = frozenset({"sign_flip", "scaling", "gaussian", "free_rider"})


@dataclass(frozen=True)
class Trigger:
    """A backdoor trigger: ``features`` (flat indices) are set to ``value``."""

    features: tuple[int, ...]
    value: float

    @classmethod
    def corner(cls, feature_shape: tuple[int, ...], size: int = 2,
               value: float = 3.0) -> Trigger:
        """A ``size`` x ``size`` patch in the bottom-right corner of an image-like input
        (the last two axes of ``feature_shape``); the last ``size**2`` features otherwise."""
        shape = tuple(int(d) for d in feature_shape)
        if len(shape) >= 2 and min(shape[-2:]) >= size:
            height, width = shape[-2:]
            grid = np.arange(int(np.prod(shape))).reshape(shape)
            patch = grid[..., height - size:, width - size:]
            return cls(tuple(int(i) for i in np.sort(patch.ravel())), value)
        total = int(np.prod(shape))
        return cls(tuple(range(max(0, total - size * size), total)), value)


@dataclass(frozen=True)
class Attack:
    """One attack and its strength. ``scale``: boost of ``scaling`` and ``sign_flip``;
    ``poison_fraction``: share of an attacker's examples that ``backdoor`` stamps;
    ``target``: the backdoor's target class."""

    name: str = "none"
    scale: float = 10.0
    flip_scale: float = 1.0
    poison_fraction: float = 0.5
    target: int = 0

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise ConfigError(f"unknown attack {self.name!r}; use one of {', '.join(ATTACKS)}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"scale must be a positive number, got {self.scale!r}")
        if not (np.isfinite(self.flip_scale) and self.flip_scale > 0):
            raise ConfigError(f"flip_scale must be a positive number, got {self.flip_scale!r}")
        if not 0.0 < self.poison_fraction <= 1.0:
            raise ConfigError(f"poison_fraction must be in (0, 1], got {self.poison_fraction!r}")

    @property
    def trains(self) -> bool:
        """False for the free rider, who uploads without training."""
        return self.name != "free_rider"


def apply_trigger(X: NDArray[np.floating], trigger: Trigger) -> NDArray[np.float32]:
    """A copy of flat inputs ``X`` with the trigger stamped on every row."""
    stamped = np.array(X, dtype=np.float32, copy=True)
    stamped[:, list(trigger.features)] = trigger.value
    return stamped


def poison_data(attack: Attack, X: NDArray[np.floating], y: NDArray[np.integer],
                num_classes: int, *, trigger: Trigger | None = None,
                rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The training data an attacker really trains on (unchanged for model attacks)."""
    X_out = np.array(X, dtype=np.float32, copy=True)
    y_out = np.array(y, dtype=np.int64, copy=True)
    if attack.name == "label_flip":
        y_out = (num_classes - 1 - y_out).astype(np.int64)
    elif attack.name == "backdoor":
        if trigger is None:
            raise ConfigError("the backdoor attack needs a trigger")
        if not 0 <= attack.target < num_classes:
            raise ConfigError(f"backdoor target {attack.target} is not a class "
                              f"(0..{num_classes - 1})")
        count = max(1, round(attack.poison_fraction * len(y_out)))
        rows = rng.choice(len(y_out), size=min(count, len(y_out)), replace=False)
        X_out[rows] = apply_trigger(X_out[rows], trigger)
        y_out[rows] = attack.target
    return X_out, y_out


def poison_update(attack: Attack, global_params: NDArray[np.floating],
                  trained: NDArray[np.floating], *,
                  rng: np.random.Generator) -> NDArray[np.float32]:
    """The parameter vector an attacker uploads, given what honest training produced."""
    base = np.asarray(global_params, dtype=np.float64)
    delta = np.asarray(trained, dtype=np.float64) - base
    if attack.name == "sign_flip":
        out = base - attack.flip_scale * delta
    elif attack.name == "scaling":
        out = base + attack.scale * delta
    elif attack.name == "gaussian":
        noise = rng.standard_normal(base.shape)
        norm = float(np.linalg.norm(delta)) or 1e-3
        out = base + noise / np.linalg.norm(noise) * norm
    elif attack.name == "free_rider":
        out = base
    else:
        out = np.asarray(trained, dtype=np.float64)
    return out.astype(np.float32)


def attack_success_rate(predictions_on_triggered: NDArray[np.integer],
                        y_true: NDArray[np.integer], target: int) -> float:
    """Share of triggered test inputs whose true class is not ``target`` that the model puts
    in ``target`` (0 when there are none)."""
    labels = np.asarray(y_true)
    mask = labels != target
    if not mask.any():
        return 0.0
    return float(np.mean(np.asarray(predictions_on_triggered)[mask] == target))
