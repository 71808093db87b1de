"""Attacks a malicious simulated participant can run (pure functions, seeded).

Two kinds, as in the robust-aggregation literature:

* **data poisoning** changes what the attacker trains on, then it trains honestly:
  ``label_flip`` (label ``c`` becomes ``C - 1 - c``) and ``backdoor`` (a trigger patch is
  stamped on a fraction of the examples, whose label becomes the target class; the attack
  success rate is how often the final model sends triggered test inputs to the target);
* **model poisoning** changes the update the attacker uploads: ``sign_flip`` (the opposite
  of its honest delta), ``scaling`` (its delta boosted ``scale`` times), ``gaussian`` (a
  random direction of the honest delta's length) and ``free_rider`` (it re-submits the
  global model without training);
* **disguised free riding**: ``noisy_free_rider`` uploads the global model plus Gaussian
  noise as long as the global model's last step (it never trains, but its update is not
  zero and has a plausible length);
* **a targeted label flip**: ``targeted_flip`` relabels one class as another (``source``
  into ``target``) and trains honestly on the rest;
* **adaptive, colluding attacks** that craft one update from the honest updates of all the
  attackers (each trains honestly first, as the literature's threat model allows: the
  attackers know their own benign updates, not the honest clients'), and all submit it:
  ``alie``, "A Little Is Enough" (Baruch, Baruch and Goldberg, NeurIPS 2019): the
  coordinate-wise mean of the colluders' deltas minus ``z`` standard deviations, with
  ``z`` the largest deviation that still leaves the crafted update inside the honest
  majority (:func:`alie_z`); ``ipm``, inner product manipulation (Xie, Koyejo and Gupta,
  "Fall of Empires", UAI 2020): ``-epsilon`` times the mean of the colluders' deltas, a
  small step against the honest direction (``epsilon = 0.5``); ``minmax``, the min-max
  attack (Shejwalkar and Houmansadr, "Manipulating the Byzantine", NDSS 2021, in its
  partial-knowledge form): the mean of the colluders' deltas pushed against their
  coordinate-wise standard deviation by the largest ``gamma`` that keeps it no farther
  from any colluder's delta than the two farthest colluders' deltas are from each other,
  so that distance- and similarity-based screens see it inside the benign spread
  (:func:`minmax_gamma`).

Written by hand: they are the standard definitions and a few lines each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from fl_agent.errors import ConfigError

AttackName = Literal["none", "label_flip", "sign_flip", "scaling", "gaussian", "backdoor",
                     "free_rider", "noisy_free_rider", "targeted_flip", "alie", "ipm",
                     "minmax"]
ATTACKS: tuple[str, ...] = ("none", "label_flip", "sign_flip", "scaling", "gaussian",
                            "backdoor", "free_rider", "noisy_free_rider", "targeted_flip",
                            "alie", "ipm", "minmax")
DATA_ATTACKS = frozenset({"label_flip", "backdoor", "targeted_flip"})
MODEL_ATTACKS = frozenset({"sign_flip", "scaling", "gaussian", "free_rider",
                           "noisy_free_rider"})
#: Attacks whose update is crafted from all the attackers' honest updates together.
COLLUDING_ATTACKS = frozenset({"alie", "ipm", "minmax"})


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

    @classmethod
    def centre(cls, feature_shape: tuple[int, ...], size: int = 2,
               value: float = 3.0) -> Trigger:
        """A ``size`` x ``size`` patch in the middle of an image-like input (rows and columns
        ``(h - size) // 2`` on); the ``size**2`` middle features otherwise."""
        shape = tuple(int(d) for d in feature_shape)
        if len(shape) >= 2 and min(shape[-2:]) >= size:
            height, width = shape[-2:]
            top, left = (height - size) // 2, (width - size) // 2
            grid = np.arange(int(np.prod(shape))).reshape(shape)
            patch = grid[..., top:top + size, left:left + size]
            return cls(tuple(int(i) for i in np.sort(patch.ravel())), value)
        total = int(np.prod(shape))
        start = max(0, (total - size * size) // 2)
        return cls(tuple(range(start, min(total, start + size * size))), value)


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
    source: int = 1  # targeted_flip: this class is relabelled as ``flip_target``
    flip_target: int = 7
    epsilon: float = 0.5  # ipm

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
        """False for the free riders, who upload without training."""
        return self.name not in ("free_rider", "noisy_free_rider")


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
    elif attack.name == "targeted_flip":
        if not (0 <= attack.source < num_classes and 0 <= attack.flip_target < num_classes):
            raise ConfigError(f"targeted_flip needs classes in 0..{num_classes - 1}, got "
                              f"{attack.source} -> {attack.flip_target}")
        y_out[y_out == attack.source] = attack.flip_target
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


def noisy_free_ride(global_params: NDArray[np.floating], previous: NDArray[np.floating] | None,
                    *, rng: np.random.Generator) -> NDArray[np.float32]:
    """The global model plus Gaussian noise as long as its last step (``global -
    previous``), or 1e-3 of its norm in the first round."""
    base = np.asarray(global_params, dtype=np.float64)
    step = float(np.linalg.norm(base - previous)) if previous is not None else 0.0
    length = step or 1e-3 * float(np.linalg.norm(base))
    noise = rng.standard_normal(base.shape)
    return (base + noise / np.linalg.norm(noise) * length).astype(np.float32)


def alie_z(num_clients: int, num_malicious: int) -> float:
    """ALIE's ``z_max`` (Baruch et al. 2019): with ``s = floor(n / 2 + 1) - m`` honest
    clients the attackers need on their side, the largest ``z`` with
    ``Phi(z) <= (n - s) / n``."""
    from scipy.stats import norm

    s = math.floor(num_clients / 2 + 1) - num_malicious
    return float(norm.ppf((num_clients - s) / num_clients))


def minmax_gamma(deltas: NDArray[np.floating], perturbation: NDArray[np.floating], *,
                 steps: int = 40) -> float:
    """The min-max attack's scale (Shejwalkar and Houmansadr 2021): the largest ``gamma``
    (bisection from 0 to an upper bound found by doubling) with
    ``max_i ||mean + gamma * p - delta_i|| <= max_ij ||delta_i - delta_j||``."""
    d = np.asarray(deltas, dtype=np.float64)
    p = np.asarray(perturbation, dtype=np.float64)
    mean = d.mean(axis=0)
    spread = max((float(np.linalg.norm(a - b)) for a in d for b in d), default=0.0)

    def fits(gamma: float) -> bool:
        return float(np.linalg.norm(mean + gamma * p - d, axis=1).max()) <= spread

    if not np.any(p) or not fits(0.0):
        return 0.0
    high = 1.0
    while fits(high) and high < 1e6:
        high *= 2.0
    low = 0.0
    for _ in range(steps):
        middle = (low + high) / 2.0
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def collude(attack: Attack, global_params: NDArray[np.floating],
            colluders: NDArray[np.floating], *, num_clients: int) -> NDArray[np.float32]:
    """The one update every colluder submits, from their honest trained vectors (one per
    row of ``colluders``)."""
    base = np.asarray(global_params, dtype=np.float64)
    deltas = np.asarray(colluders, dtype=np.float64) - base
    mean = deltas.mean(axis=0)
    if attack.name == "alie":
        crafted = mean - alie_z(num_clients, len(deltas)) * deltas.std(axis=0)
    elif attack.name == "ipm":
        crafted = -attack.epsilon * mean
    elif attack.name == "minmax":
        std = deltas.std(axis=0)
        perturbation = -std / (np.linalg.norm(std) or 1.0)
        crafted = mean + minmax_gamma(deltas, perturbation) * perturbation
    else:
        raise ConfigError(f"{attack.name!r} is not a colluding attack")
    return (base + crafted).astype(np.float32)


def attack_success_rate(predictions_on_triggered: NDArray[np.integer],
                        y_true: NDArray[np.integer], target: int) -> float:
    """Share of triggered test inputs whose true class is not ``target`` that the model puts
    in ``target`` (0 when there are none)."""
    labels = np.asarray(y_true)
    mask = labels != target
    if not mask.any():
        return 0.0
    return float(np.mean(np.asarray(predictions_on_triggered)[mask] == target))
