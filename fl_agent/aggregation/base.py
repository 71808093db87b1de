"""What every aggregation strategy shares: the result type, input checks and vector helpers.

A round is ``global_params`` (the current global model, a flat vector of length ``d``), the
participants' ``updates`` (FULL parameter vectors, not deltas, shape ``(n, d)`` or a list of
``n`` vectors) and ``num_samples`` (how many local examples each update was trained on).

Input rules, the same for every strategy (:func:`prepare_round`):

* raise :class:`~fl_agent.errors.ConfigError` (a ``ValueError``) for a malformed round: no
  updates; a global model that is not a non-empty, finite, 1-D vector; an update whose length
  differs from the global model's (or a ragged list); a ``num_samples`` that is not one
  finite, non-negative number per update;
* reject (never aggregate) and let the round go on with the others: an update holding NaN or
  +-Inf (reason ``non_finite``) and an update that claims zero training samples (reason
  ``no_samples``; it cannot carry weight and is not a contribution).

If every update is rejected the global model is returned unchanged with nothing accepted.

Arithmetic is float64; the new global model has the float dtype of ``global_params``
(float32 for integer input).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fl_agent.aggregation.vectors import (  # re-exported: the strategies import them here
    BLOCK_VALUES,
    DeltaRows,
    FloatArray,
    add_weighted_rows,
    clip_factors,
    clip_norms,
    column_median,
    cosine_to,
    delta_gram,
    gram_cosines,
    median_norm_clip,
    row_norms,
    scaled_row,
    weighted_mean,
)
from fl_agent.errors import ConfigError

Evaluate = Callable[[NDArray[np.floating]], "float | NDArray[np.floating]"]
"""Maps a parameter vector to its scores on the aggregator's validation set, higher is
better: one value per validation example (whose mean is the score, or for a score that is
not a mean, such as macro-F1, its jackknife estimate), which FairFL's gate
needs to tell a difference from the noise of the examples
(:func:`fl_agent.learning.gate_scores.example_scores`); a strategy that only compares means
may also be given one number."""
UpdatesLike = NDArray[np.floating] | Sequence[ArrayLike]


class Reason(StrEnum):
    """Why an update was rejected (``AggregationResult.reasons``)."""

    NON_FINITE = "non_finite"  # NaN or +-Inf in the update
    NO_SAMPLES = "no_samples"  # trained on zero samples
    FREE_RIDER = "free_rider"  # (nearly) re-submitted the global model: zero delta
    NORM_OUTLIER = "norm_outlier"  # delta far longer than the others' (scaling attack)
    TRIGGER = "trigger"  # input-layer change piled on a few input features (backdoor, fairfl)
    NOISE = "noise"  # shares no direction with any other update beyond chance (fairfl)
    DISSIMILAR = "dissimilar"  # direction unlike the aggregate's (fairfl)
    VALIDATION = "validation"  # including it made the validation score worse (fairfl)
    OUTLIER_CLUSTER = "outlier_cluster"  # outside the majority cluster (flame)
    NOT_SELECTED = "not_selected"  # not among the Krum-selected updates
    ZERO_TRUST = "zero_trust"  # direction opposite / orthogonal to the server's (fltrust)
    #: Left out by the gate although its harm is within the full tolerance (fairfl's
    #: ``held_back``): not aggregated, not paid, and not counted towards a ban.
    HELD_BACK = "held_back"


@dataclass(frozen=True)
class AggregationResult:
    """The outcome of one aggregation round.

    ``accepted`` and ``rejected`` are disjoint, sorted and together cover every index of the
    round's ``updates``. ``scores[i]`` is the strategy's per-update score (see each strategy;
    usually the cosine similarity of the update's delta to the aggregate's delta) and is 0
    for every rejected update. ``reasons`` maps each rejected index to a :class:`Reason`.
    """

    params: NDArray[np.floating]
    accepted: tuple[int, ...]
    rejected: tuple[int, ...]
    scores: FloatArray
    reasons: Mapping[int, Reason] = field(default_factory=lambda: MappingProxyType({}))
    #: What the rule measured to decide (JSON values; indices are round indices), for the
    #: round's evidence; FairFL's is described in
    #: :func:`fl_agent.agents.screen_replay.replay_screens`.
    figures: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def free_riders(self) -> tuple[int, ...]:
        """Indices flagged as free riders (they re-submitted the global model)."""
        return tuple(i for i in self.rejected if self.reasons.get(i) == Reason.FREE_RIDER)


@dataclass(frozen=True)
class Round:
    """A validated round (see :func:`prepare_round`); ``valid`` indexes the usable updates."""

    global_params: FloatArray  # (d,)
    #: (n, d): the updates as given when they came as one float array (float32 updates are
    #: not copied), else a float64 array made from them; rows of invalid updates may hold
    #: non-finite values. Never written to: :attr:`updates` is the float64 copy.
    raw: NDArray[np.floating]
    num_samples: FloatArray  # (n,)
    valid: NDArray[np.intp]
    reasons: Mapping[int, Reason]
    dtype: np.dtype
    #: ``(n, c)`` or None: for each update, what its sender sent in its earlier rounds within
    #: the rule's window (their deltas summed), first ``c`` parameters only
    #: (:func:`earlier_window`); FairFL's trigger screen reads it (``FairFL.trigger_rounds``)
    #: and, whole, its NOISE check (``FairFL.noise_rounds``); the other rules ignore it.
    earlier: FloatArray | None = None
    #: ``(n, 2)`` or None: for each update, its sender's evidence from earlier rounds of a DP
    #: task (the sum of its noise-control z-scores and their count); FairFL's sequential
    #: test reads it (``FairFL.sequential``), the other rules ignore it.
    evidence: FloatArray | None = None
    #: What is made once per round on first use (:attr:`updates`, :meth:`delta_gram`);
    #: shared only by the rounds :meth:`with_num_samples` makes from this one (a
    #: ``dataclasses.replace`` starts afresh). Not locked: a round belongs to one decision,
    #: and two threads using one round could each make the same thing once.
    _state: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                   compare=False)

    @property
    def n(self) -> int:
        return int(self.raw.shape[0])

    @property
    def updates(self) -> FloatArray:
        """The updates as a float64 ``(n, d)`` array of the round's own, made on first use
        (the strategies other than FairFL read it; FairFL reads :meth:`deltas`)."""
        if "updates" not in self._state:
            self._state["updates"] = np.array(self.raw, dtype=np.float64, order="C")
        updates: FloatArray = self._state["updates"]
        return updates

    def deltas(self) -> DeltaRows:
        """The usable updates' deltas, made a row or a block at a time (:class:`DeltaRows`)."""
        return DeltaRows(self.raw, self.global_params, self.valid)

    def delta_gram(self) -> FloatArray:
        """The Gram matrix of the usable updates' deltas (:func:`delta_gram`, rows in
        ``valid`` order), made once per round: the copy groups of
        :func:`fl_agent.aggregation.rounds.decide_round` and FairFL's similarities both read
        it (one pass over the updates instead of two)."""
        if "gram" not in self._state:
            self._state["gram"] = delta_gram(self.global_params, self.raw, self.valid)
        gram: FloatArray = self._state["gram"]
        return gram

    def with_num_samples(self, num_samples: ArrayLike) -> Round:
        """The same round with other positive sample counts for its usable updates (the
        weights a caller computed from the reported ones; the updates, which are usable,
        their float64 copy and the Gram matrix are shared, not copied)."""
        counts = _as_num_samples(num_samples, self.n)
        if self.valid.size and not (counts[self.valid] > 0).all():
            raise ConfigError("every usable update needs a positive weight")
        weighted = dataclasses.replace(self, num_samples=counts)
        object.__setattr__(weighted, "_state", self._state)  # the same round: share what is made
        return weighted

    def result(self, new_params: ArrayLike, accepted: Sequence[int] | NDArray[np.intp],
               scores: Mapping[int, float] | None = None,
               reasons: Mapping[int, Reason] | None = None) -> AggregationResult:
        """Build the result: every index not in ``accepted`` is rejected, with the reason
        from ``reasons``, else from the input checks."""
        accepted_set = {int(i) for i in accepted}
        all_reasons = dict(self.reasons)
        all_reasons.update(reasons or {})
        rejected = tuple(i for i in range(self.n) if i not in accepted_set)
        missing = [i for i in rejected if i not in all_reasons]
        if missing:
            raise AssertionError(f"rejected updates {missing} have no reason")  # a bug here
        score_array = np.zeros(self.n)
        for i in accepted_set:
            score_array[i] = float((scores or {}).get(i, 0.0))
        return AggregationResult(
            params=np.asarray(new_params, dtype=np.float64).astype(self.dtype),
            accepted=tuple(sorted(accepted_set)),
            rejected=rejected,
            scores=score_array,
            reasons=MappingProxyType({i: all_reasons[i] for i in rejected}),
        )

    def unchanged(self) -> AggregationResult:
        """Nothing usable: keep the global model."""
        return self.result(self.global_params, ())


def _as_global(global_params: ArrayLike) -> tuple[FloatArray, np.dtype]:
    try:
        raw = np.asarray(global_params)
        g = raw.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"global_params must be a numeric vector: {err}") from err
    if g.ndim != 1 or g.size == 0:
        raise ConfigError(f"global_params must be a non-empty 1-D vector, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ConfigError("global_params holds NaN or Inf")
    dtype = raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.dtype(np.float32)
    return g, np.dtype(dtype)


_KEPT_AS_GIVEN = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _as_updates(updates: UpdatesLike, d: int) -> NDArray[np.floating]:
    """The updates as one ``(n, d)`` array: a float array of that shape as it is (not
    copied: at 200 x 1M a float64 copy is 1.6 GB, whose first touch cost 3-5 s on the
    benchmark machine), anything else converted to float64 row by row."""
    if isinstance(updates, np.ndarray):
        if updates.ndim != 2:
            raise ConfigError(f"updates must have shape (n, {d}), got {updates.shape}")
        if (type(updates) is np.ndarray and updates.dtype in _KEPT_AS_GIVEN
                and updates.shape[0] and updates.shape[1] == d):
            return updates  # not a subclass (a masked array, a matrix), not long double
        rows = [updates[i] for i in range(updates.shape[0])]
    else:
        rows = list(updates)
    if not rows:
        raise ConfigError("updates is empty: a round needs at least one update")
    out = np.empty((len(rows), d))
    for i, row in enumerate(rows):
        try:  # an array is converted as it is copied in, not into a temporary first
            vector = row if isinstance(row, np.ndarray) and row.dtype.kind in "fiub" \
                else np.asarray(row, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"update {i} is not a numeric vector: {err}") from err
        if vector.shape != (d,):
            raise ConfigError(f"update {i} has shape {vector.shape}; the global model has ({d},)")
        out[i] = vector
    return out


def _as_num_samples(num_samples: ArrayLike, n: int) -> FloatArray:
    try:
        counts = np.asarray(num_samples, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"num_samples must be numbers: {err}") from err
    if counts.shape != (n,):
        raise ConfigError(f"num_samples must hold one count per update ({n}), got shape "
                          f"{counts.shape}")
    if not np.all(np.isfinite(counts)):
        raise ConfigError("num_samples holds NaN or Inf")
    if np.any(counts < 0):
        bad = np.flatnonzero(counts < 0).tolist()
        raise ConfigError(f"num_samples must be >= 0; negative for updates {bad}")
    return counts


def earlier_window(strategy: Strategy, size: int) -> tuple[int, int] | None:
    """``(rounds, width)`` when ``strategy`` reads what each sender sent over its latest
    ``rounds`` rounds (FairFL's ``trigger_rounds`` above 1 with an input layer, or its
    ``noise_rounds`` above 1, where its chance test runs): its caller then keeps the first
    ``width`` values of every delta of ``size`` values (the input layer's, or all of them
    for the NOISE check) and gives their sums as :attr:`Round.earlier`. None for any other
    rule."""
    trigger = int(getattr(strategy, "trigger_rounds", 1))
    layer = getattr(strategy, "input_layer", None)
    noise = int(getattr(strategy, "noise_rounds", 1))
    if layer is None or float(getattr(strategy, "trigger_share", 1.0)) <= 0:
        trigger = 1
    if float(getattr(strategy, "chance_z", 4.0)) > 0.5 * np.sqrt(size):
        noise = 1  # the chance test does not run (a chance level above 0.5: DP, watermarks)
    if noise > 1:
        return max(noise, trigger), size
    if trigger > 1:
        return trigger, layer[0] + layer[1] * layer[2]
    return None


def prepare_round(global_params: ArrayLike, updates: UpdatesLike,
                  num_samples: ArrayLike, earlier: ArrayLike | None = None,
                  evidence: ArrayLike | None = None) -> Round:
    """Check a round and find its usable updates (see the module docstring for the rules);
    ``earlier`` is :attr:`Round.earlier` (one finite row per update, at most ``d`` wide)."""
    g, dtype = _as_global(global_params)
    u = _as_updates(updates, g.size)
    counts = _as_num_samples(num_samples, u.shape[0])
    before = None
    if earlier is not None:
        before = np.array(earlier, dtype=np.float64)
        if before.ndim != 2 or before.shape[0] != u.shape[0] or not 0 < before.shape[1] <= g.size:
            raise ConfigError(f"earlier must have one row per update ({u.shape[0]}) of at most "
                              f"{g.size} values, got shape {before.shape}")
        if not np.isfinite(before).all():
            raise ConfigError("earlier holds NaN or infinite values")
    prior = None
    if evidence is not None:
        prior = np.array(evidence, dtype=np.float64)
        if prior.shape != (u.shape[0], 2) or not np.isfinite(prior).all() \
                or (prior[:, 1] < 0).any():
            raise ConfigError(f"evidence must be one finite (sum, count >= 0) row per update "
                              f"({u.shape[0]}), got shape {prior.shape}")
    reasons: dict[int, Reason] = {}
    finite = [bool(np.isfinite(row).all()) for row in u]  # no n x d temporary of flags
    for i in range(u.shape[0]):
        if not finite[i]:
            reasons[i] = Reason.NON_FINITE
        elif counts[i] == 0:
            reasons[i] = Reason.NO_SAMPLES
    valid = np.array([i for i in range(u.shape[0]) if i not in reasons], dtype=np.intp)
    return Round(g, u, counts, valid, MappingProxyType(reasons), dtype, before, prior)


# ------------------------------------------------------------------------------ strategy base


class Strategy(ABC):
    """Configuration plus the round logic; the arithmetic lives in plain functions.

    Subclasses are frozen dataclasses whose ``__post_init__`` checks the configuration.
    """

    name: ClassVar[str] = ""

    def aggregate(self, global_params: ArrayLike, updates: UpdatesLike, num_samples: ArrayLike,
                  evaluate: Evaluate | None = None) -> AggregationResult:
        """Aggregate one round; see the module docstring for the input rules."""
        return self.aggregate_round(prepare_round(global_params, updates, num_samples),
                                    evaluate)

    def aggregate_round(self, rnd: Round, evaluate: Evaluate | None = None
                        ) -> AggregationResult:
        """:meth:`aggregate` of a round already checked by :func:`prepare_round` (the
        strategy reads the round, never writes to it)."""
        if rnd.valid.size == 0:
            return rnd.unchanged()
        return self._aggregate(rnd, evaluate)

    @abstractmethod
    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        """Aggregate a round that has at least one valid update."""

    @abstractmethod
    def combine(self, global_params: FloatArray, updates: FloatArray,
                num_samples: FloatArray) -> FloatArray:
        """The strategy's combination rule applied to a given (valid) subset of updates,
        without any screening; an empty subset gives ``global_params``. Contribution scoring
        uses it to value subsets of the accepted updates."""

    def combine_round(self, rnd: Round, rows: Sequence[int],
                      num_samples: FloatArray) -> FloatArray:
        """:meth:`combine` of the round's updates ``rows`` (round indices, usable ones):
        what :func:`fl_agent.aggregation.rounds.decide_round` recombines with the final
        weights. A strategy may read the rows without widening them all at once (FairFL
        does); a subclass that changes :meth:`combine` must change this too."""
        return self.combine(rnd.global_params, np.asarray(rnd.raw[list(rows)], np.float64),
                            num_samples)

    def mean_clip_ratio(self) -> float | None:
        """If :meth:`combine` is the ``num_samples``-weighted mean of the deltas, each first
        clipped to this ratio times the median delta norm of the updates combined
        (``math.inf``: none clipped), the ratio; else None. A subclass that changes
        :meth:`combine` must change this too. Contribution scoring then values a
        permutation's growing coalitions from a running sum instead of combining each from
        scratch (:mod:`fl_agent.aggregation.scoring`)."""
        return None


def similarity_scores(global_params: FloatArray, updates: FloatArray, new_params: FloatArray,
                      indices: Sequence[int] | NDArray[np.intp]) -> dict[int, float]:
    """Cosine similarity of each listed update's delta to the aggregate's delta."""
    idx = np.asarray(indices, dtype=np.intp)
    if idx.size == 0:
        return {}
    sims = cosine_to(updates[idx] - global_params, new_params - global_params)
    return {int(i): float(s) for i, s in zip(idx, sims, strict=True)}


__all__ = ["BLOCK_VALUES", "AggregationResult", "DeltaRows", "Evaluate", "FloatArray", "Reason",
           "Round", "Strategy", "UpdatesLike", "add_weighted_rows", "clip_factors", "clip_norms",
           "column_median", "cosine_to", "delta_gram", "earlier_window", "gram_cosines",
           "median_norm_clip", "prepare_round", "row_norms", "scaled_row", "similarity_scores",
           "weighted_mean"]
