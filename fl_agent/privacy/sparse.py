"""Sparse updates: top-k sparsification with error feedback, magnitude pruning, and the
compact safetensors encoding they travel in (pure computation: no chain, no storage).

**The paper's "model pruning".** The paper names pruning as one of a task's training modes
(the ledger records it as ``TrainingMode.PRUNING``); the project takes no algorithm for it
from the paper. Two readings are implemented, chosen by :class:`Sparsifier`'s ``method``:

* ``"topk"`` (the default): prune the *update*. The participant sends only the ``k`` largest
  entries, by magnitude, of its delta ``local - global``; ``ratio`` is the fraction of the
  ``d`` entries dropped (0.9 sends 10 %). With *error feedback* (Seide et al. 2014; Stich et
  al. 2018, "Sparsified SGD with memory") what was dropped is not lost: the participant keeps
  it in a residual vector, :class:`ErrorFeedbackState`, and adds it to the next round's
  delta before choosing the ``k`` entries. At every round, what was sent so far plus the
  residual equals the sum of the true deltas (up to float64 rounding; the tests check it).
  The receiver adds the entries to the round's global model (``base="global"``).
* ``"magnitude"``: prune the *model*, the literal reading. The participant zeroes the
  ``ratio`` smallest-magnitude weights of its local model and sends the remaining weights
  themselves (``base="zero"``: the receiver puts them into a vector of zeros). There is no
  residual: a pruned weight is gone, and the next round starts from the global model.

Either way the receiver gets a full parameter vector back with :func:`densify`, so every
aggregation strategy (which takes full vectors) runs unchanged. The entries are chosen over
the whole vector (``scope="model"``, the textbook top-k) or in each tensor of the model
separately (``scope="tensor"``: every layer keeps the same fraction).

**Under FairFL's rule** (measured by ``python -m benchmarks.privacy_sparse``, written up in
docs/privacy-sparse.md): at ``ratio`` 0.5 and 0.9 top-k costs neither accuracy nor honest
updates. At 0.99 the textbook top-k sends so few entries of the input layer that its
change sits on a few input features, which is what FairFL's trigger screen looks for, and
late in training the updates share too few coordinates for the NOISE check; FairFL then
turns away about a sixth of the honest updates. ``scope="tensor"`` keeps a fair share of
entries in the input layer and removes most of the trigger screen's rejections, which is
why a FairFL task should use it; the fix for the NOISE check belongs in the aggregator
(the document says which). Sparse updates also weaken the trigger screen against a
backdoor, at 0.9 already: that is measured there, not fixed. Magnitude pruning costs
accuracy from 0.9 up and at 0.99 leaves a model the validation gate refuses every time.

What either method gives for privacy is not measured here: fewer coordinates say less
about the data, but no bound like differential privacy's follows from dropping them.

**The encoding** of a :class:`SparseDelta` (indices and values in a safetensors document,
strictly checked on the way in) and of the residual is in
:mod:`~fl_agent.privacy.sparse_format`; this module re-exports it.

The selection is numpy's sort. Written here is only the choice of entries, which no
library offers in this form."""


from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec, finite_vector, param_count, param_layout
from fl_agent.learning.weights import HEADER_ALLOWANCE
from fl_agent.privacy.sparse_format import (
    BASES,
    FORMAT,
    METADATA_KEY,
    STATE_FORMAT,
    Base,
    ErrorFeedbackState,
    SparseDelta,
    SparseError,
    decode_sparse,
    decode_state,
    encode_delta,
    encode_sparse,
    encode_state,
    max_sparse_bytes,
    max_state_bytes,
)

Method = Literal["topk", "magnitude"]
Scope = Literal["model", "tensor"]
METHODS: tuple[str, ...] = get_args(Method)
SCOPES: tuple[str, ...] = get_args(Scope)

# ------------------------------------------------------------------------- plain functions


def kept_count(length: int, ratio: float) -> int:
    """How many of ``length`` entries stay when the fraction ``ratio`` is dropped: the
    nearest integer to ``(1 - ratio) * length``, at least 1."""
    _check_ratio(ratio)
    return min(length, max(1, round((1.0 - float(ratio)) * length)))


def largest_entries(vector: ArrayLike, k: int) -> NDArray[np.uint32]:
    """The indices, ascending, of the ``k`` largest-magnitude non-zero entries of
    ``vector`` (fewer if it has fewer non-zero entries). Ties go to the lower index, so the
    choice is deterministic."""
    magnitude = np.abs(np.asarray(vector, dtype=np.float64))
    nonzero = np.flatnonzero(magnitude)
    if nonzero.size > k:
        # a stable sort of the negated magnitudes keeps equal ones in index order
        nonzero = np.sort(nonzero[np.argsort(-magnitude[nonzero], kind="stable")[:k]])
    return nonzero.astype(np.uint32)


def choose_entries(vector: ArrayLike, ratio: float, spec: ModelSpec | None = None
                   ) -> NDArray[np.uint32]:
    """The entries kept when the fraction ``ratio`` is dropped: the largest in magnitude
    over the whole vector, or, given ``spec``, in each of its tensors separately (each keeps
    :func:`kept_count` of its own size; :func:`~fl_agent.learning.models.param_layout`)."""
    values = np.asarray(vector, dtype=np.float64)
    if spec is None:
        return largest_entries(values, kept_count(values.size, ratio))
    if values.size != param_count(spec):
        raise ConfigError(f"a vector of length {values.size} is not a {spec.name} with "
                          f"{param_count(spec)} parameters")
    return np.concatenate([
        slot.offset + largest_entries(values[slot.offset:slot.offset + slot.size],
                                      kept_count(slot.size, ratio))
        for slot in param_layout(spec)]).astype(np.uint32)


def top_k(global_params: ArrayLike, local_params: ArrayLike, ratio: float,
          state: ErrorFeedbackState | None = None, spec: ModelSpec | None = None
          ) -> tuple[SparseDelta, ErrorFeedbackState]:
    """Top-k of the update ``local - global`` plus ``state``'s residual (none: zeros), over
    the whole vector or per tensor of ``spec`` (:func:`choose_entries`); returns what to
    send and the new residual: the corrected delta minus what was sent, computed in float64
    against the float32 values actually sent."""
    g, local = _pair(global_params, local_params)
    residual = np.zeros(g.size) if state is None else state.residual
    if residual.size != g.size:
        raise ConfigError(f"the residual has length {residual.size}, the model {g.size}")
    corrected = residual + (local - g)
    chosen = choose_entries(corrected, ratio, spec)
    values = corrected[chosen].astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise SparseError("a chosen entry overflows float32")
    remaining = corrected.copy()
    remaining[chosen] -= values.astype(np.float64)
    return (SparseDelta(chosen, values, g.size, "global"), ErrorFeedbackState(remaining))


def take_back(state: ErrorFeedbackState | None, delta: SparseDelta) -> ErrorFeedbackState:
    """The residual with an update the aggregator did not use added back into it.

    Error feedback keeps what a participant has not sent yet; once an update is sent, its
    entries leave the residual. If the aggregator then does not use that update (rejected,
    held back, or the round closed without a model), its entries reached nobody: taken back
    into the residual, they are sent again in a later round instead of being lost. After
    this, what the aggregator used plus the residual is again the sum of the participant's
    true deltas. ``delta`` must be a top-k delta (``base="global"``) of the residual's
    length; ``state`` None is an empty residual. The participant agent does not call it:
    rules R53 and R53b measured taking refused updates back (all of them, then only those
    refused as noise or held back) and adopted neither (docs/privacy-sparse.md); the
    benchmark's ``--take-back`` does. Written by hand: no library keeps this."""
    if delta.base != "global":
        raise ConfigError("only a top-k delta (base 'global') can be taken back into a "
                          "residual; magnitude pruning keeps none")
    residual = np.zeros(delta.length) if state is None else state.residual.copy()
    if residual.size != delta.length:
        raise ConfigError(f"the residual has length {residual.size}, the delta "
                          f"{delta.length}")
    residual[delta.indices] += delta.values.astype(np.float64)
    return ErrorFeedbackState(residual)


def magnitude_prune(local_params: ArrayLike, ratio: float, spec: ModelSpec | None = None
                    ) -> SparseDelta:
    """The local model with its ``ratio`` smallest-magnitude weights zeroed (over the whole
    model, or per tensor of ``spec``), as the sparse vector of the weights that remain
    (``base="zero"``)."""
    local = finite_vector(local_params, "local_params", SparseError)
    chosen = choose_entries(local, ratio, spec)
    return SparseDelta(chosen, local[chosen].astype(np.float32), local.size, "zero")


def max_kept(spec: ModelSpec, ratio: float) -> int:
    """The most entries an update of ``spec`` may hold in a task that drops the fraction
    ``ratio``: what per-tensor selection keeps (:func:`choose_entries`), summed."""
    return sum(kept_count(slot.size, ratio) for slot in param_layout(spec))


def decode_for_plan(data: bytes, spec: ModelSpec, ratio: float, method: Method
                    ) -> SparseDelta:
    """:func:`decode_sparse` for a task that prunes with ``ratio`` and ``method``: a document
    larger than :func:`max_kept` entries and the header allowance need is refused unparsed;
    one holding more entries in any tensor than the task keeps of it (:func:`kept_count` of
    the tensor's size: what a participant sends, so that nobody may pour its whole budget
    into one layer) or on the other method's base (top-k sends a delta on the global model,
    magnitude pruning the weights themselves) is refused too. Raises :class:`SparseError`."""
    limit = max_kept(spec, ratio)
    delta = decode_sparse(data, spec, max_bytes=8 * limit + HEADER_ALLOWANCE)
    for slot in param_layout(spec):
        sent = int(np.count_nonzero((delta.indices >= slot.offset)
                                    & (delta.indices < slot.offset + slot.size)))
        allowed = kept_count(slot.size, ratio)
        if sent > allowed:
            raise SparseError(f"the update sends {sent:,} entries of {slot.name} "
                              f"({slot.size:,}); this task drops {ratio:g} of each tensor, "
                              f"so at most {allowed:,} may be sent")
    base = "zero" if method == "magnitude" else "global"
    if delta.base != base:
        raise SparseError(f"the update's entries are on base {delta.base!r}; this task prunes "
                          f"by {method}, whose entries are on {base!r}")
    return delta


def densify(delta: SparseDelta, global_params: ArrayLike) -> NDArray[np.floating]:
    """The full parameter vector ``delta`` stands for, in ``global_params``' float dtype
    (float32 for integer input): the global model plus the entries for ``base="global"``,
    the entries on zeros for ``base="zero"``. This is what aggregation strategies take."""
    raw = np.asarray(global_params)
    g = finite_vector(raw, "global_params", SparseError)
    if g.size != delta.length:
        raise ConfigError(f"the sparse delta has length {delta.length}, the global model "
                          f"{g.size}")
    out = g.copy() if delta.base == "global" else np.zeros(g.size)
    out[delta.indices] += delta.values.astype(np.float64)
    dtype = raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.dtype(np.float32)
    return out.astype(dtype)


# ------------------------------------------------------------------------------ the wrapper


@dataclass(frozen=True)
class Sparsifier:
    """A participant's pruning setting.

    ``ratio``: the fraction of entries dropped, in ``[0, 1)``. ``method``: ``"topk"`` (of
    the update) or ``"magnitude"`` (of the model). ``scope``: choose the entries over the
    whole vector (``"model"``) or in each tensor of ``spec`` separately (``"tensor"``, each
    layer keeps the same fraction; needs ``spec``). ``error_feedback`` (top-k only): keep
    the residual, on by default.
    """

    ratio: float
    method: Method = "topk"
    scope: Scope = "model"
    spec: ModelSpec | None = None
    error_feedback: bool = True

    def __post_init__(self) -> None:
        _check_ratio(self.ratio)
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.scope == "tensor" and not isinstance(self.spec, ModelSpec):
            raise ConfigError("scope='tensor' chooses entries per tensor of the model: pass "
                              "its spec")
        if not isinstance(self.error_feedback, bool):
            raise ConfigError(f"error_feedback must be True or False, got "
                              f"{self.error_feedback!r}")

    @property
    def keeps_state(self) -> bool:
        """Whether :meth:`sparsify` carries a residual from round to round."""
        return self.method == "topk" and self.error_feedback

    def sparsify(self, global_params: ArrayLike, local_params: ArrayLike,
                 state: ErrorFeedbackState | None = None
                 ) -> tuple[SparseDelta, ErrorFeedbackState | None]:
        """What to send for ``local_params`` trained from ``global_params`` this round, and
        the state to keep for the next one (``None`` when :attr:`keeps_state` is false).
        ``state`` is the previous round's (``None`` in the first round)."""
        if state is not None and not self.keeps_state:
            raise ConfigError(f"{self.method} without error feedback keeps no residual; "
                              "pass state=None")
        layout = self.spec if self.scope == "tensor" else None
        if self.method == "magnitude":
            _pair(global_params, local_params)  # the same checks as top-k
            return magnitude_prune(local_params, self.ratio, layout), None
        delta, kept = top_k(global_params, local_params, self.ratio, state, layout)
        return delta, kept if self.error_feedback else None


def _check_ratio(ratio: float) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) \
            or not math.isfinite(ratio) or not 0.0 <= ratio < 1.0:
        raise ConfigError(f"ratio is the fraction of entries dropped, in [0, 1), got {ratio!r}")


def _pair(global_params: ArrayLike, local_params: ArrayLike
          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    g = finite_vector(global_params, "global_params", SparseError)
    local = finite_vector(local_params, "local_params", SparseError)
    if local.size != g.size:
        raise ConfigError(f"local_params has length {local.size}, global_params {g.size}")
    return g, local


__all__ = [
    "BASES",
    "FORMAT",
    "METADATA_KEY",
    "METHODS",
    "SCOPES",
    "STATE_FORMAT",
    "Base",
    "ErrorFeedbackState",
    "Method",
    "Scope",
    "SparseDelta",
    "SparseError",
    "Sparsifier",
    "decode_sparse",
    "decode_state",
    "densify",
    "encode_delta",
    "encode_sparse",
    "encode_state",
    "kept_count",
    "choose_entries",
    "decode_for_plan",
    "max_kept",
    "largest_entries",
    "magnitude_prune",
    "max_sparse_bytes",
    "max_state_bytes",
    "take_back",
    "top_k",
]
