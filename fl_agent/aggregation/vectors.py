"""The vector helpers of the aggregation rules: norms, cosines, clipping, weighted sums,
medians and Gram matrices of many long vectors, a block of rows or columns at a time.

At 200 updates of 1M parameters one float64 copy of the updates is 1.6 GB, and on the
benchmark machine fresh memory costs about 3 s per GB at first touch, so these helpers make
no ``n x d`` temporaries: each gives numpy's whole-matrix result (bit for bit where its
docstring says so, ``tests/aggregation/test_vector_helpers.py``) a block at a time.
:class:`DeltaRows` goes one step further and never makes the float64 deltas at all: FairFL
reads them a row or a block at a time from the round's float32 updates. Hand-written: numpy
has no blockwise forms of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fl_agent.cores import worker_threads

FloatArray = NDArray[np.float64]

BLOCK_VALUES = 1 << 22  # values per block of the blockwise helpers (32 MB of float64)
_CHUNK = 1 << 13  # columns per block of the Gram matrix (bounded memory; blocks of 1 << 16
# columns, 100 MB at 200 rows, took about twice as long at 200 x 1M, timed once by hand)


def delta_gram(global_params: ArrayLike, updates: ArrayLike,
               rows: ArrayLike) -> FloatArray:
    """The Gram matrix of the deltas ``updates[rows] - global_params``, built in column
    blocks (memory ``n x n`` plus one block, never another ``n x d`` copy; float32 updates
    are widened a block at a time, exactly); NaN or Inf where an update is not finite."""
    g = np.asarray(global_params, dtype=np.float64)
    u = np.asarray(updates)
    if u.dtype.kind != "f":
        u = u.astype(np.float64)
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


class DeltaRows:
    """The deltas ``updates[rows] - global_params`` in float64, made a row or a block of
    rows at a time from the round's updates and never all at once. Their values are those
    of a float64 copy, bit for bit (widening float32 is exact), so the helpers below that
    read rows or blocks (:func:`row_norms`, :func:`weighted_mean`, :func:`column_median`,
    :func:`add_weighted_rows`) give what they give on the copy; ``@`` goes a block of rows
    at a time and may differ from the copy's product in the last bit.

    What FairFL and the helpers read: ``shape``, ``ndim``, ``len``; ``deltas[i]`` (one
    delta); ``deltas[i:j]``, ``deltas[indices]`` and ``deltas[indices, columns]`` (a block,
    ``indices`` positions or a mask); ``deltas @ vector`` (a block of rows at a time); and
    ``numpy.asarray(deltas)``, which makes the whole copy (correct, only slow)."""

    ndim = 2

    def __init__(self, updates: NDArray[np.floating], global_params: FloatArray,
                 rows: ArrayLike) -> None:
        self._updates, self._global = updates, global_params
        self._rows = np.asarray(rows, dtype=np.intp)
        self._every = self._rows.size == updates.shape[0] and np.array_equal(
            self._rows, np.arange(self._rows.size))
        self.shape = (int(self._rows.size), int(updates.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> FloatArray:
        if isinstance(key, int | np.integer):
            return self._widened(self._updates[self._rows[key]], self._global)
        if isinstance(key, slice):
            block = self._updates[key] if self._every else self._updates[self._rows[key]]
            return self._widened(block, self._global)
        if isinstance(key, tuple) and len(key) == 2:
            which, columns = key
            if not isinstance(columns, slice):
                raise TypeError("DeltaRows takes a slice of columns")
            return self._widened(self._updates[self._rows[which], columns],
                                 self._global[columns])
        picked = np.asarray(key)
        if picked.dtype != bool:
            picked = picked.astype(np.intp)  # [] is an empty selection, not floats
        return self._widened(self._updates[self._rows[picked]], self._global)

    @staticmethod
    def _widened(values: NDArray[np.floating], global_params: FloatArray) -> FloatArray:
        """``values - global_params`` in float64: widened first, then subtracted in place
        (half the time of numpy's mixed-type subtraction)."""
        out = values.astype(np.float64)  # a copy even when already float64
        out -= global_params
        return out

    def __matmul__(self, vector: FloatArray) -> FloatArray:
        step = max(1, BLOCK_VALUES // max(1, self.shape[1]))
        if not len(self):
            return np.zeros(0)
        return np.concatenate([self[i:i + step] @ vector for i in range(0, len(self), step)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> FloatArray:
        whole = self[0:len(self)]
        return whole if dtype is None else whole.astype(dtype)


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
    rows = max(1, BLOCK_VALUES // max(1, vectors.shape[1])) if vectors.ndim == 2 else 0
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
    out = scaled_row(rows, first, weights[first])
    if base is not None:
        out = base + out
    for m in members[1:]:
        out += scaled_row(rows, m, weights[m])
    return out


def scaled_row(rows: FloatArray | DeltaRows, i: int, factor: float) -> FloatArray:
    """``rows[i] * factor``, a new array: for :class:`DeltaRows`, whose row is made afresh,
    scaled in place (one pass fewer, the same values)."""
    if isinstance(rows, DeltaRows):
        row = rows[i]
        row *= factor
        return row
    return rows[i] * factor


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
        if factors is None:
            out += scaled_row(rows, i, weights[k])
        else:
            row = scaled_row(rows, i, factors[k])  # a new array either way: scaled in place
            row *= weights[k]
            out += row
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
            part = np.array(rows[:, start:start + block].T, order="C")  # always a copy
        else:  # the picked rows, scaled, laid out column by column in one pass
            chosen = rows[picked, start:start + block]
            part = np.multiply(chosen.T, scale, out=np.empty(chosen.shape[::-1]))
        return np.median(part, axis=1, overwrite_input=True)  # part is this block's copy

    starts = range(0, rows.shape[1], block)
    threads = worker_threads()
    size = rows.size if picked is None else picked.size * rows.shape[1]
    if size < BLOCK_VALUES or threads < 2:
        return np.concatenate([median(j) for j in starts])
    from concurrent.futures import ThreadPoolExecutor  # numpy's partition frees the GIL

    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate(list(pool.map(median, starts)))


def median_norm_clip(deltas: FloatArray) -> tuple[FloatArray, float]:
    """Clip every delta to the median delta norm (FLAME's adaptive clipping bound)."""
    bound = float(np.median(row_norms(deltas)))
    return clip_norms(deltas, bound), bound


