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

from fl_agent.cores import worker_threads
from fl_agent.errors import ConfigError

FloatArray = NDArray[np.float64]
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
    #: round's evidence; FairFL's is described in :func:`fl_agent.agents.audit.replay_screens`.
    figures: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def free_riders(self) -> tuple[int, ...]:
        """Indices flagged as free riders (they re-submitted the global model)."""
        return tuple(i for i in self.rejected if self.reasons.get(i) == Reason.FREE_RIDER)


@dataclass(frozen=True)
class Round:
    """A validated round (see :func:`prepare_round`); ``valid`` indexes the usable updates."""

    global_params: FloatArray  # (d,)
    updates: FloatArray  # (n, d); rows of invalid updates may hold non-finite values. The
    # round's own copy: FairFL turns it into the deltas in place (see FairFL._run)
    num_samples: FloatArray  # (n,)
    valid: NDArray[np.intp]
    reasons: Mapping[int, Reason]
    dtype: np.dtype
    #: :meth:`delta_gram`'s matrix once made, and whether ``updates`` still holds the
    #: updates; shared by the rounds :meth:`with_num_samples` makes from this one.
    _state: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.updates.shape[0])

    def delta_gram(self) -> FloatArray:
        """The Gram matrix of the usable updates' deltas (:func:`delta_gram`, rows in
        ``valid`` order), made once per round: the copy groups of
        :func:`fl_agent.aggregation.rounds.decide_round` and FairFL's similarities both read
        it (one pass over the updates instead of two)."""
        if "gram" not in self._state:
            if self._state.get("consumed"):
                raise RuntimeError("the round's updates were turned into deltas in place; "
                                   "make the Gram matrix before (a bug in the caller)")
            self._state["gram"] = delta_gram(self.global_params, self.updates, self.valid)
        gram: FloatArray = self._state["gram"]
        return gram

    def consume_updates(self) -> FloatArray:
        """``updates`` turned into the deltas ``updates - global_params`` in place (no
        second ``n x d`` copy) for a strategy that needs nothing else from them; the round's
        updates are gone afterwards (:meth:`delta_gram` is kept if it was made)."""
        self._state["consumed"] = True
        return np.subtract(self.updates, self.global_params, out=self.updates)

    def with_num_samples(self, num_samples: ArrayLike) -> Round:
        """The same round with other positive sample counts for its usable updates (the
        weights a caller computed from the reported ones; the updates, which are usable and
        the Gram matrix are shared, not copied)."""
        counts = _as_num_samples(num_samples, self.n)
        if self.valid.size and not (counts[self.valid] > 0).all():
            raise ConfigError("every usable update needs a positive weight")
        return dataclasses.replace(self, num_samples=counts)

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


def _as_updates(updates: UpdatesLike, d: int) -> FloatArray:
    if isinstance(updates, np.ndarray):
        if updates.ndim != 2:
            raise ConfigError(f"updates must have shape (n, {d}), got {updates.shape}")
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


def prepare_round(global_params: ArrayLike, updates: UpdatesLike,
                  num_samples: ArrayLike) -> Round:
    """Check a round and find its usable updates (see the module docstring for the rules)."""
    g, dtype = _as_global(global_params)
    u = _as_updates(updates, g.size)
    counts = _as_num_samples(num_samples, u.shape[0])
    reasons: dict[int, Reason] = {}
    finite = [bool(np.isfinite(row).all()) for row in u]  # no n x d temporary of flags
    for i in range(u.shape[0]):
        if not finite[i]:
            reasons[i] = Reason.NON_FINITE
        elif counts[i] == 0:
            reasons[i] = Reason.NO_SAMPLES
    valid = np.array([i for i in range(u.shape[0]) if i not in reasons], dtype=np.intp)
    return Round(g, u, counts, valid, MappingProxyType(reasons), dtype)


# ---------------------------------------------------------------------------- vector helpers


_BLOCK_VALUES = 1 << 22  # values per block of the blockwise helpers (32 MB of float64)
_CHUNK = 1 << 13  # columns per block of the Gram matrix (bounded memory; 1 << 16 was
# twice as slow at 200 x 1M, its 100 MB blocks falling out of the caches)


def delta_gram(global_params: ArrayLike, updates: UpdatesLike,
               rows: ArrayLike) -> FloatArray:
    """The Gram matrix of the deltas ``updates[rows] - global_params``, built in column
    blocks (memory ``n x n`` plus one block, never another ``n x d`` copy); NaN or Inf where
    an update is not finite."""
    g = np.asarray(global_params, dtype=np.float64)
    u = np.asarray(updates, dtype=np.float64)
    chosen = np.asarray(rows, dtype=np.intp)
    every = chosen.size == u.shape[0] and np.array_equal(chosen, np.arange(chosen.size))
    gram = np.zeros((chosen.size, chosen.size))
    buffer = np.empty((chosen.size, min(_CHUNK, u.shape[1])))  # one block, reused
    with np.errstate(invalid="ignore", over="ignore"):  # a NaN or Inf update: not usable
        for start in range(0, u.shape[1], _CHUNK):
            stop = min(start + _CHUNK, u.shape[1])
            block = buffer[:, :stop - start]
            np.subtract(u[:, start:stop] if every else u[chosen, start:stop], g[start:stop],
                        out=block)
            gram += block @ block.T
    return gram


def gram_cosines(gram: FloatArray, rows: ArrayLike | None = None) -> FloatArray:
    """The pairwise cosine similarities of the vectors whose Gram matrix is ``gram`` (of
    those at ``rows``, default all), from the matrix alone: scikit-learn's
    ``cosine_similarity`` of the vectors up to rounding, without its normalised ``n x d``
    copy of them (2.9 s of FairFL's round at 200 clients x 1M parameters). Clipped to
    ``[-1, 1]``, 1 on the diagonal; 0 against a vector of zero length."""
    sub = gram if rows is None else gram[np.ix_(rows, rows)]
    squared = np.diag(sub)
    lengths = np.sqrt(np.where(squared > 0, squared, 1.0))
    cosines = np.clip(sub / np.outer(lengths, lengths), -1.0, 1.0)
    np.fill_diagonal(cosines, np.where(squared > 0, 1.0, 0.0))
    return cosines


def row_norms(vectors: FloatArray) -> FloatArray:
    """``np.linalg.norm(vectors, axis=1)``, bit for bit, a few rows at a time: on the whole
    matrix numpy squares it into a temporary of the same size, whose first touch cost 5 s
    at 200 x 1M against 0.2 s in blocks."""
    rows = max(1, _BLOCK_VALUES // max(1, vectors.shape[1])) if vectors.ndim == 2 else 0
    if vectors.ndim != 2 or vectors.shape[0] <= rows:
        return np.linalg.norm(vectors, axis=1)
    return np.concatenate([np.linalg.norm(vectors[i:i + rows], axis=1)
                           for i in range(0, vectors.shape[0], rows)])


def cosine_to(vectors: FloatArray, direction: FloatArray, norms: FloatArray | None = None,
              direction_norm: float | None = None, *,
              which: Sequence[int] | NDArray[np.intp] | None = None) -> FloatArray:
    """Cosine similarity of each row with ``direction``; 0 where either has zero length.
    ``norms`` and ``direction_norm``, if given, are the rows' :func:`row_norms` and the
    direction's norm (for callers that already have them). ``which``: only these rows,
    read one at a time instead of copied out (``norms`` then holds theirs)."""
    if direction_norm is None:
        direction_norm = float(np.linalg.norm(direction))
    if which is None:
        lengths = row_norms(vectors) if norms is None else norms
        dots = vectors @ direction
    else:
        picked = [int(i) for i in which]
        lengths = np.array([np.linalg.norm(vectors[i]) for i in picked], dtype=np.float64) \
            if norms is None else norms
        dots = np.array([vectors[i] @ direction for i in picked], dtype=np.float64)
    scales = lengths * direction_norm
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(scales > 0, dots / np.where(scales > 0, scales, 1.0), 0.0)
    return np.clip(out, -1.0, 1.0)


def clip_norms(deltas: FloatArray, bound: float, norms: FloatArray | None = None) -> FloatArray:
    """Scale every row longer than ``bound`` down to length ``bound`` (direction kept).
    ``norms``, if given, are the rows' :func:`row_norms`."""
    return deltas * clip_factors(row_norms(deltas) if norms is None else norms, bound)[:, None]


def clip_factors(norms: FloatArray, bound: float) -> FloatArray:
    """The factor :func:`clip_norms` scales each row by: ``bound / norm`` for rows longer
    than ``bound``, else 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms > bound, bound / np.where(norms > 0, norms, 1.0), 1.0)


def add_weighted_rows(base: FloatArray | None, rows: FloatArray, weights: FloatArray,
                      members: Sequence[int]) -> FloatArray:
    """``base`` (None: nothing) plus ``weights[m] * rows[m]`` for each listed member, added
    in order as numpy's sum over the first axis adds rows of two or more columns (one column
    it sums pairwise), without copying the matrix; a new array (``base`` is not changed)."""
    first = members[0]
    out = rows[first] * weights[first] if base is None else base + rows[first] * weights[first]
    for m in members[1:]:
        out += rows[m] * weights[m]
    return out


def weighted_mean(rows: FloatArray, weights: FloatArray, factors: FloatArray | None = None,
                  which: NDArray[np.intp] | None = None) -> FloatArray:
    """``np.average(rows[which] * factors[:, None], axis=0, weights=weights)``, bit for bit,
    without its ``n x d`` temporaries (4 of FairFL's 17 s at 200 clients x 1M parameters): the
    rows are added one by one, as numpy's sum over the first axis adds them. ``which``
    (default: every row) picks the rows without copying them; ``weights`` and ``factors``
    hold one number per picked row."""
    picked = range(rows.shape[0]) if which is None else [int(i) for i in which]
    if weights.shape != (len(picked),):
        raise ValueError(f"{weights.shape} weights for {len(picked)} rows")
    if rows.shape[1] == 1:  # numpy sums one column pairwise, not row by row
        chosen = rows[list(picked)] if factors is None else \
            rows[list(picked)] * factors[:, None]
        return np.average(chosen, axis=0, weights=weights)
    scale = np.broadcast_to(weights, (1, weights.size)).swapaxes(-1, 0).sum(axis=0)
    if not scale.all():
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")  # as numpy says
    out = np.zeros(rows.shape[1])
    for k, i in enumerate(picked):
        row = rows[i] if factors is None else rows[i] * factors[k]
        out += row * weights[k]
    return out / scale


def column_median(rows: FloatArray, block: int = 4096, *,
                  which: NDArray[np.intp] | None = None,
                  factors: FloatArray | None = None) -> FloatArray:
    """``np.median(rows, axis=0)``, bit for bit, a block of columns at a time, on the
    machine's cores: numpy's median along the first axis of a wide matrix took 9 s at
    200 x 1M, 4 s in blocks and 1.8 s in blocks on 2 cores. ``which`` picks rows and
    ``factors`` scales each picked row (``np.median(rows[which] * factors[:, None], axis=0)``
    bit for bit) without a copy of the matrix."""
    if which is not None or factors is not None:
        picked = np.arange(rows.shape[0]) if which is None else np.asarray(which, np.intp)
        scale = np.ones(picked.size) if factors is None else np.asarray(factors)
        if scale.shape != (picked.size,):
            raise ValueError(f"{scale.shape} factors for {picked.size} rows")
        if picked.size == 0 or rows.shape[1] <= block:
            return np.median(rows[picked] * scale[:, None], axis=0)
    else:
        if rows.shape[0] == 0 or rows.shape[1] <= block:
            return np.median(rows, axis=0)
        picked, scale = None, None

    def median(start: int) -> FloatArray:
        if picked is None:
            part = np.ascontiguousarray(rows[:, start:start + block].T)
        else:  # the picked rows, scaled, laid out column by column in one pass
            chosen = rows[picked, start:start + block]
            part = np.multiply(chosen.T, scale, out=np.empty(chosen.shape[::-1]))
        return np.median(part, axis=1, overwrite_input=True)  # part is this block's own

    starts = range(0, rows.shape[1], block)
    threads = worker_threads()
    size = rows.size if picked is None else picked.size * rows.shape[1]
    if size < _BLOCK_VALUES or threads < 2:
        return np.concatenate([median(j) for j in starts])
    from concurrent.futures import ThreadPoolExecutor  # numpy's partition frees the GIL

    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate(list(pool.map(median, starts)))


def median_norm_clip(deltas: FloatArray) -> tuple[FloatArray, float]:
    """Clip every delta to the median delta norm (FLAME's adaptive clipping bound)."""
    bound = float(np.median(row_norms(deltas)))
    return clip_norms(deltas, bound), bound


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
        """:meth:`aggregate` of a round already checked by :func:`prepare_round`. The
        strategy may consume ``rnd.updates`` (:meth:`Round.consume_updates`)."""
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
