"""Thin strategy classes over the plain rules, and :func:`get_strategy`.

Every strategy checks its configuration when built (``ConfigError`` on a bad value) and
takes rounds through :meth:`Strategy.aggregate` (input rules in
:mod:`fl_agent.aggregation.base`). Unless a strategy says otherwise, ``scores`` holds the
cosine similarity of each accepted update's delta to the aggregate's delta, and 0 for
rejected updates. Strategies that do not select (fedavg, median, trimmed_mean) accept every
update that passes the input checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from fl_agent.aggregation import rules
from fl_agent.aggregation.base import (
    AggregationResult,
    Evaluate,
    FloatArray,
    Reason,
    Round,
    Strategy,
    clip_norms,
    row_norms,
    similarity_scores,
)
from fl_agent.aggregation.fairfl import FairFL
from fl_agent.errors import ConfigError


def _all_valid(rnd: Round, new: FloatArray) -> AggregationResult:
    return rnd.result(new, rnd.valid, similarity_scores(rnd.global_params, rnd.updates, new,
                                                        rnd.valid))


@dataclass(frozen=True)
class _CombineAllValid(Strategy):
    """A strategy that combines every valid update with one rule and rejects nothing else."""

    def _rule(self, updates: FloatArray, num_samples: FloatArray) -> FloatArray:
        raise NotImplementedError

    def combine(self, global_params: FloatArray, updates: FloatArray,
                num_samples: FloatArray) -> FloatArray:
        if updates.shape[0] == 0:
            return global_params.copy()
        return self._rule(updates, num_samples)

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        v = rnd.valid
        return _all_valid(rnd, self.combine(rnd.global_params, rnd.updates[v],
                                            rnd.num_samples[v]))


@dataclass(frozen=True)
class FedAvg(_CombineAllValid):
    """Sample-weighted mean of every valid update."""

    name: ClassVar[str] = "fedavg"

    def _rule(self, updates: FloatArray, num_samples: FloatArray) -> FloatArray:
        return rules.fedavg(updates, num_samples)

    def mean_clip_ratio(self) -> float | None:
        return math.inf


@dataclass(frozen=True)
class Median(_CombineAllValid):
    """Coordinate-wise median of every valid update (sample counts are not used)."""

    name: ClassVar[str] = "median"

    def _rule(self, updates: FloatArray, num_samples: FloatArray) -> FloatArray:
        return rules.coordinate_median(updates)


@dataclass(frozen=True)
class TrimmedMean(_CombineAllValid):
    """Coordinate-wise mean without the ``floor(beta * n)`` largest and smallest values."""

    beta: float = 0.1
    name: ClassVar[str] = "trimmed_mean"

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, int | float) and 0.0 <= self.beta < 0.5):
            raise ConfigError(f"beta (fraction trimmed at each end) must be in [0, 0.5), "
                              f"got {self.beta!r}")

    def _rule(self, updates: FloatArray, num_samples: FloatArray) -> FloatArray:
        return rules.trimmed_mean(updates, self.beta)


def _check_optional_count(name: str, value: int | None, minimum: int) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value < minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum} or None, got {value!r}")


@dataclass(frozen=True)
class MultiKrum(Strategy):
    """Multi-Krum: select the ``num_selected`` updates with the lowest Krum scores and take
    their sample-weighted mean. ``num_byzantine`` (f) defaults to the most Krum tolerates,
    ``(n - 3) // 2``; ``num_selected`` defaults to ``n - f``."""

    num_byzantine: int | None = None
    num_selected: int | None = None
    name: ClassVar[str] = "multikrum"

    def __post_init__(self) -> None:
        _check_optional_count("num_byzantine", self.num_byzantine, 0)
        _check_optional_count("num_selected", self.num_selected, 1)

    def _f(self, n: int) -> int:
        return max((n - 3) // 2, 0) if self.num_byzantine is None else self.num_byzantine

    def _m(self, n: int) -> int:
        return max(n - self._f(n), 1) if self.num_selected is None else self.num_selected

    def combine(self, global_params: FloatArray, updates: FloatArray,
                num_samples: FloatArray) -> FloatArray:
        """The mean of the selected updates (the rule applied after selection)."""
        if updates.shape[0] == 0:
            return global_params.copy()
        return rules.fedavg(updates, num_samples)

    def mean_clip_ratio(self) -> float | None:
        return math.inf

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        v = rnd.valid
        n = int(v.size)
        chosen = v[rules.multikrum_select(rnd.updates[v], self._f(n), self._m(n))]
        new = self.combine(rnd.global_params, rnd.updates[chosen], rnd.num_samples[chosen])
        reasons = {int(i): Reason.NOT_SELECTED for i in v if i not in set(chosen.tolist())}
        return rnd.result(new, chosen, similarity_scores(rnd.global_params, rnd.updates, new,
                                                         chosen), reasons)


@dataclass(frozen=True)
class Krum(MultiKrum):
    """Krum: the single update with the lowest Krum score becomes the new model."""

    name: ClassVar[str] = "krum"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_selected not in (None, 1):
            raise ConfigError("krum selects exactly one update; use multikrum for "
                              f"num_selected={self.num_selected}")

    def _m(self, n: int) -> int:
        return 1


ServerUpdate = ArrayLike | Callable[[np.ndarray], ArrayLike]


@dataclass(frozen=True)
class FLTrust(Strategy):
    """FLTrust (Cao et al. 2021). ``server_update`` is the full parameter vector the server
    trained from the current global model on its small root data set, or a callable mapping
    the global model to it (called once per global model; cached). ``scores`` are the trust
    scores ``ReLU(cos(delta_i, delta_server))``; updates with trust 0 are rejected."""

    server_update: ServerUpdate | None = None
    name: ClassVar[str] = "fltrust"
    _cache: dict[str, FloatArray] = field(default_factory=dict, init=False, repr=False,
                                         compare=False)

    def __post_init__(self) -> None:
        if self.server_update is None:
            raise ConfigError("fltrust needs server_update: the server's model trained on its "
                              "root data (a vector) or a callable global_params -> vector")
        if not callable(self.server_update):
            vector = np.asarray(self.server_update, dtype=np.float64)
            if vector.ndim != 1 or not np.all(np.isfinite(vector)):
                raise ConfigError("server_update must be a finite 1-D parameter vector")

    def server_params(self, global_params: FloatArray) -> FloatArray:
        if callable(self.server_update):
            key = hashlib.sha256(np.ascontiguousarray(global_params).tobytes()).hexdigest()
            if key not in self._cache:
                self._cache.clear()
                self._cache[key] = np.asarray(
                    self.server_update(global_params.astype(np.float32)), dtype=np.float64)
            server = self._cache[key]
        else:
            server = np.asarray(self.server_update, dtype=np.float64)
        if server.shape != global_params.shape or not np.all(np.isfinite(server)):
            raise ConfigError(f"server_update must be a finite vector of shape "
                              f"{global_params.shape}, got shape {server.shape}")
        return server

    def combine(self, global_params: FloatArray, updates: FloatArray,
                num_samples: FloatArray) -> FloatArray:
        if updates.shape[0] == 0:
            return global_params.copy()
        return rules.fltrust(global_params, updates, self.server_params(global_params))[0]

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        v = rnd.valid
        new, trust = rules.fltrust(rnd.global_params, rnd.updates[v],
                                   self.server_params(rnd.global_params))
        accepted = v[trust > 0]
        reasons = {int(i): Reason.ZERO_TRUST for i in v[trust <= 0]}
        scores = {int(i): float(t) for i, t in zip(v, trust, strict=True) if t > 0}
        return rnd.result(new, accepted, scores, reasons)


@dataclass(frozen=True)
class Flame(Strategy):
    """FLAME (Nguyen et al. 2022): HDBSCAN majority cluster on the cosine distances of the
    deltas, median-norm clipping, optional adaptive Gaussian noise of standard deviation
    ``noise_lambda * clip_bound`` (0 = off; FLAME's paper uses 0.001 for image tasks).
    ``seed`` makes the noise reproducible (each round draws from a fresh generator seeded with
    it). ``combine`` clips and averages without noise."""

    min_cluster_size: int | None = None
    noise_lambda: float = 0.0
    seed: int | None = None
    name: ClassVar[str] = "flame"

    def __post_init__(self) -> None:
        _check_optional_count("min_cluster_size", self.min_cluster_size, 2)
        if not (isinstance(self.noise_lambda, int | float) and math.isfinite(self.noise_lambda)
                and self.noise_lambda >= 0):
            raise ConfigError(f"noise_lambda must be >= 0, got {self.noise_lambda!r}")

    def combine(self, global_params: FloatArray, updates: FloatArray,
                num_samples: FloatArray) -> FloatArray:
        if updates.shape[0] == 0:
            return global_params.copy()
        deltas = updates - global_params
        bound = float(np.median(row_norms(deltas)))
        return global_params + clip_norms(deltas, bound).mean(axis=0)

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        v = rnd.valid
        new, admitted = rules.flame(rnd.global_params, rnd.updates[v],
                                    min_cluster_size=self.min_cluster_size,
                                    noise_lambda=self.noise_lambda,
                                    rng=np.random.default_rng(self.seed))
        accepted = v[admitted]
        reasons = {int(i): Reason.OUTLIER_CLUSTER for i in v[~admitted]}
        return rnd.result(new, accepted, similarity_scores(rnd.global_params, rnd.updates, new,
                                                           accepted), reasons)


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (FairFL, FedAvg, Median, TrimmedMean, Krum, MultiKrum, FLTrust,
                              Flame)
}


def get_strategy(name: str, **config: Any) -> Strategy:
    """Build the strategy called ``name`` with its options, e.g.
    ``get_strategy("trimmed_mean", beta=0.2)``."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(f"unknown aggregation strategy {name!r}; choose one of "
                          f"{', '.join(STRATEGIES)}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # every strategy is one
    options = [f.name for f in fields if f.init]
    unknown = sorted(set(config) - set(options))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {name!r}; it takes "
                          f"{', '.join(options) or 'no options'}")
    return cls(**config)
