"""The wire format of sparse updates (:mod:`fl_agent.privacy.sparse`): the records a
participant sends and keeps, and their safetensors documents.

**The encoding.** A :class:`SparseDelta` travels as a safetensors document (never pickle)
with exactly two 1-D tensors, ``indices`` (uint32, strictly increasing, each ``< d``) and
``values`` (float32, finite), of the same length ``k <= d``, and one metadata entry,
``fairfl``, whose value is canonical JSON (sorted keys, no spaces)::

    {"base": "global", "format": "fairfl-sparse-delta/1", "k": 481, "length": 4810,
     "model": "mlp", "spec": {...the ModelSpec...}, "spec_sha256": "<SHA-256 of the spec>"}

One entry, as in :mod:`fl_agent.learning.weights`, so that :func:`encode_sparse` is
deterministic: equal input, equal bytes. The size is ``8 + header + 8 k`` bytes (4 per index,
4 per value), against ``8 + header + 4 d`` for dense weights: at ``ratio=0.9`` a fifth of
the tensor bytes, plus a header of a few hundred bytes (its spec JSON). Below ``ratio=0.5``
the sparse form is *larger* than the dense one.

:func:`decode_sparse` accepts a document only if it is within the size limit, parses as
safetensors, carries exactly the expected metadata (canonical, for exactly the expected
spec, ``length == d``, ``k`` equal to the tensors' length), and has exactly the two tensors
with the right dtypes, 1-D, equal lengths, indices in range and strictly increasing (so
none repeats), values finite. The residual a participant keeps is stored the same way
(:func:`encode_state`, format ``fairfl-sparse-residual/1``: one float64 tensor
``residual`` of length ``d``) and read back as strictly (:func:`decode_state`).

Errors::

    FairFLError
    ├── ConfigError(FairFLError, ValueError)         a bad ratio, method, vector shape
    └── WeightsError(FairFLError, ValueError)         (fl_agent.learning.weights)
        └── SparseError(WeightsError)                 bytes or entries that are not a
                                                      valid sparse delta or residual

A :class:`SparseError` is a :class:`WeightsError`, so code that turns bad weights into a
rejected update handles bad sparse deltas the same way.

Parsing and serialisation are safetensors'. Written here are only the checks, which no
library offers in this form.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import safetensors
from numpy.typing import ArrayLike, NDArray
from safetensors.numpy import save

from fl_agent.documents import parse_json
from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec, param_count
from fl_agent.learning.weights import HEADER_ALLOWANCE, WeightsError

FORMAT = "fairfl-sparse-delta/1"
STATE_FORMAT = "fairfl-sparse-residual/1"
METADATA_KEY = "fairfl"

Base = Literal["global", "zero"]
BASES: tuple[str, ...] = get_args(Base)

_METADATA_FIELDS = frozenset({"base", "format", "k", "length", "model", "spec", "spec_sha256"})
_STATE_FIELDS = frozenset({"format", "model", "spec", "spec_sha256"})


class SparseError(WeightsError):
    """The bytes or entries are not a valid sparse delta (or residual) for the model spec."""


# ----------------------------------------------------------------------------- the records


@dataclass(frozen=True, eq=False)
class SparseDelta:
    """``k`` entries of a length-``length`` vector: what a participant sends.

    ``base="global"``: a delta, to be added to the round's global model (top-k);
    ``base="zero"``: the vector itself, zero elsewhere (a magnitude-pruned model).
    Construction checks every invariant of the encoding and raises :class:`SparseError`.
    """

    indices: NDArray[np.uint32] = field(repr=False)
    values: NDArray[np.float32] = field(repr=False)
    length: int
    base: Base = "global"

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int | np.integer) \
                or self.length < 1:
            raise SparseError(f"length must be a positive integer, got {self.length!r}")
        if self.base not in BASES:
            raise SparseError(f"base must be one of {BASES}, got {self.base!r}")
        indices, values = _checked_entries(self.indices, self.values, int(self.length))
        object.__setattr__(self, "length", int(self.length))
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseDelta):
            return NotImplemented
        return (self.length, self.base) == (other.length, other.base) \
            and np.array_equal(self.indices, other.indices) \
            and np.array_equal(self.values, other.values)

    __hash__ = None  # type: ignore[assignment]  # equal by value, so not hashable

    @property
    def k(self) -> int:
        """How many entries are sent."""
        return int(self.indices.size)

    def to_dense(self) -> NDArray[np.float32]:
        """The full vector the entries stand for, zero elsewhere (not yet added to a base)."""
        dense = np.zeros(self.length, dtype=np.float32)
        dense[self.indices] = self.values
        return dense


@dataclass(frozen=True, eq=False)
class ErrorFeedbackState:
    """What a participant keeps between rounds for top-k with error feedback: the residual,
    everything it dropped so far and has not sent yet (float64, length ``d``)."""

    residual: NDArray[np.float64] = field(repr=False)

    def __post_init__(self) -> None:
        residual = np.asarray(self.residual)
        if residual.ndim != 1 or residual.size == 0:
            raise SparseError(f"residual must be a non-empty 1-D vector, got shape "
                              f"{residual.shape}")
        if not np.issubdtype(residual.dtype, np.floating):
            raise SparseError(f"residual must be floating point, got {residual.dtype}")
        if not np.all(np.isfinite(residual)):
            raise SparseError("residual contains NaN or infinite values")
        object.__setattr__(self, "residual", _readonly(residual.astype(np.float64)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ErrorFeedbackState):
            return NotImplemented
        return np.array_equal(self.residual, other.residual)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def zeros(cls, length: int) -> ErrorFeedbackState:
        """The state before the first round: nothing dropped yet."""
        return cls(np.zeros(length))

    @property
    def length(self) -> int:
        return int(self.residual.size)


# ------------------------------------------------------------------------------ the wire


def max_sparse_bytes(spec: ModelSpec) -> int:
    """The default size limit for a sparse delta of ``spec``: all ``d`` entries (8 bytes
    each) plus header room. A document that large is pointless (dense weights are half of
    it) but valid."""
    return 8 * param_count(spec) + HEADER_ALLOWANCE


def max_state_bytes(spec: ModelSpec) -> int:
    """The default size limit for a residual of ``spec``: ``d`` float64 plus header room."""
    return 8 * param_count(spec) + HEADER_ALLOWANCE


def encode_sparse(spec: ModelSpec, indices: ArrayLike, values: ArrayLike,
                  base: Base = "global") -> bytes:
    """Safetensors bytes for the entries (see the module docstring); deterministic.

    ``indices`` are integers, strictly increasing, below ``d``; ``values`` are finite in
    float32. Anything else raises :class:`SparseError`."""
    if base not in BASES:
        raise SparseError(f"base must be one of {BASES}, got {base!r}")
    length = param_count(spec)
    index_array, value_array = _checked_entries(indices, values, length)
    metadata = {**_spec_fields(spec), "base": base, "format": FORMAT,
                "k": int(index_array.size), "length": length}
    return save({"indices": index_array, "values": value_array},
                metadata={METADATA_KEY: _canonical(metadata)})


def encode_delta(spec: ModelSpec, delta: SparseDelta) -> bytes:
    """:func:`encode_sparse` of a :class:`SparseDelta` made for ``spec``."""
    if delta.length != param_count(spec):
        raise SparseError(f"the sparse delta has length {delta.length}; {spec.name} has "
                          f"{param_count(spec)} parameters")
    return encode_sparse(spec, delta.indices, delta.values, delta.base)


def decode_sparse(data: bytes, spec: ModelSpec, max_bytes: int | None = None) -> SparseDelta:
    """The :class:`SparseDelta` in ``data``, checked against ``spec`` (module docstring).

    ``max_bytes`` defaults to :func:`max_sparse_bytes`; larger input is refused before it is
    parsed. Raises :class:`SparseError` on any problem, :class:`ConfigError` on a bad
    ``max_bytes``."""
    length = param_count(spec)
    tensors, metadata = _parse(data, spec, max_bytes, max_sparse_bytes(spec), "sparse delta")
    _check_metadata(metadata, spec, FORMAT, _METADATA_FIELDS)
    base = metadata["base"]
    if base not in BASES:
        raise SparseError(f"metadata base is {base!r}, expected one of {BASES}")
    if metadata["length"] != length or isinstance(metadata["length"], bool):
        raise SparseError(f"metadata length is {metadata['length']!r}; {spec.name} has "
                          f"{length} parameters")
    k = metadata["k"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise SparseError(f"metadata k must be a non-negative integer, got {k!r}")
    if k > length:
        raise SparseError(f"metadata k = {k} exceeds the {length} parameters of {spec.name}")
    _check_names(tensors, {"indices", "values"})
    indices = _tensor(tensors, "indices", "U32", "<u4")
    values = _tensor(tensors, "values", "F32", "<f4")
    if indices.size != values.size:
        raise SparseError(f"indices and values differ in length: {indices.size} and "
                          f"{values.size}")
    if indices.size != k:
        raise SparseError(f"metadata says k = {k}, the tensors hold {indices.size} entries")
    return SparseDelta(indices, values, length, base)


def encode_state(spec: ModelSpec, state: ErrorFeedbackState) -> bytes:
    """Safetensors bytes for a participant's residual (float64, exact); deterministic."""
    if state.length != param_count(spec):
        raise SparseError(f"the residual has length {state.length}; {spec.name} has "
                          f"{param_count(spec)} parameters")
    metadata = {**_spec_fields(spec), "format": STATE_FORMAT}
    return save({"residual": np.ascontiguousarray(state.residual, dtype="<f8")},
                metadata={METADATA_KEY: _canonical(metadata)})


def decode_state(data: bytes, spec: ModelSpec, max_bytes: int | None = None
                 ) -> ErrorFeedbackState:
    """The residual in ``data``, checked as strictly as :func:`decode_sparse`."""
    tensors, metadata = _parse(data, spec, max_bytes, max_state_bytes(spec), "residual")
    _check_metadata(metadata, spec, STATE_FORMAT, _STATE_FIELDS)
    _check_names(tensors, {"residual"})
    residual = _tensor(tensors, "residual", "F64", "<f8")
    if residual.size != param_count(spec):
        raise SparseError(f"residual has {residual.size} entries; {spec.name} has "
                          f"{param_count(spec)} parameters")
    return ErrorFeedbackState(residual)


# ------------------------------------------------------------------------------- helpers


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def _checked_entries(indices: ArrayLike, values: ArrayLike, length: int
                     ) -> tuple[NDArray[np.uint32], NDArray[np.float32]]:
    """The invariants of a sparse delta, shared by construction, encoding and decoding."""
    index_array, value_array = np.asarray(indices), np.asarray(values)
    if index_array.ndim != 1 or value_array.ndim != 1:
        raise SparseError(f"indices and values must be 1-D, got shapes {index_array.shape} "
                          f"and {value_array.shape}")
    if index_array.size != value_array.size:
        raise SparseError(f"indices and values differ in length: {index_array.size} and "
                          f"{value_array.size}")
    if index_array.size > length:
        raise SparseError(f"{index_array.size} entries for a vector of length {length}")
    if index_array.size and not np.issubdtype(index_array.dtype, np.integer):
        raise SparseError(f"indices must be integers, got {index_array.dtype}")
    if value_array.size and not np.issubdtype(value_array.dtype, np.floating):
        raise SparseError(f"values must be floating point, got {value_array.dtype}")
    wide = index_array.astype(np.int64)  # uint32 and int64 cover every index < 2**32
    if wide.size and (wide.min() < 0 or wide.max() >= length):
        bad = int(wide[(wide < 0) | (wide >= length)][0])
        raise SparseError(f"index {bad} is out of range for a vector of length {length}")
    steps = np.diff(wide)
    if np.any(steps == 0):
        position = int(np.flatnonzero(steps == 0)[0]) + 1
        raise SparseError(f"index {int(wide[position])} repeats at position {position}: "
                          "indices must be strictly increasing")
    if np.any(steps < 0):
        position = int(np.flatnonzero(steps < 0)[0]) + 1
        raise SparseError(f"indices are not sorted: {int(wide[position - 1])} comes before "
                          f"{int(wide[position])} at position {position}")
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = value_array.astype(np.float32)
    if not np.all(np.isfinite(narrow)):
        position = int(np.flatnonzero(~np.isfinite(narrow))[0])
        raise SparseError(f"value at position {position} is {value_array[position]!r} in "
                          "float32: values must be finite")
    return (_readonly(np.ascontiguousarray(wide, dtype="<u4")),
            _readonly(np.ascontiguousarray(narrow, dtype="<f4")))


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _spec_fields(spec: ModelSpec) -> dict[str, object]:
    return {"model": spec.name, "spec": json.loads(spec.to_json()),
            "spec_sha256": spec.sha256()}


def _parse(data: bytes, spec: ModelSpec, max_bytes: int | None, default_limit: int,
           what: str) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """Size limit, safetensors parsing and the ``fairfl`` metadata entry of ``data``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SparseError(f"a {what} must be bytes, got {type(data).__name__}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)
                                  or max_bytes < 1):
        raise ConfigError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    data = bytes(data)
    limit = default_limit if max_bytes is None else max_bytes
    if len(data) > limit:
        raise SparseError(f"the {what} is {len(data):,} bytes, more than the limit of "
                          f"{limit:,} bytes for {spec.name}")
    try:
        tensors = dict(safetensors.deserialize(data))
    except Exception as err:  # the library raises SafetensorError, and others on odd input
        raise _unparsable(data, what, err) from err
    (header_length,) = struct.unpack("<Q", data[:8])
    header = parse_json(data[8:8 + header_length])
    entries = header.get("__metadata__") or {}
    if set(entries) != {METADATA_KEY}:
        raise SparseError(f"not a FairFL {what}: the metadata must hold exactly one entry, "
                          f"{METADATA_KEY!r}; found {sorted(entries)}")
    text = entries[METADATA_KEY]
    try:
        metadata = parse_json(text)
    except ValueError as err:
        raise SparseError(f"not a FairFL {what}: {METADATA_KEY!r} metadata is not JSON") \
            from err
    if not isinstance(metadata, dict):
        raise SparseError(f"not a FairFL {what}: {METADATA_KEY!r} metadata is not an object")
    if _canonical(metadata) != text:
        raise SparseError(f"the {METADATA_KEY!r} metadata is not canonical JSON (sorted keys, "
                          "no spaces), so equal content could give different bytes")
    return tensors, metadata


def _unparsable(data: bytes, what: str, err: Exception) -> SparseError:
    """The clearest reason safetensors refused ``data``."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return SparseError(f"refused: the {what} is a pickle (protocol {data[1]}); FairFL "
                           "never unpickles (it can run code), send safetensors")
    if data[:4] == b"PK\x03\x04":
        return SparseError(f"refused: the {what} is a zip archive (torch.save's format?); "
                           "FairFL reads only safetensors")
    if len(data) < 8:
        return SparseError(f"truncated: {len(data)} bytes, fewer than the 8 of the "
                           "safetensors header length")
    (header_length,) = struct.unpack("<Q", data[:8])
    if 8 + header_length > len(data):
        return SparseError(f"truncated: the header claims {header_length:,} bytes, only "
                           f"{len(data) - 8:,} follow")
    try:
        header = parse_json(data[8:8 + header_length])
        end = max((int(v["data_offsets"][1]) for k, v in header.items()
                   if k != "__metadata__"), default=0)
    except Exception:  # not JSON, or not safetensors' layout: say what the library said
        end = 0
    if 8 + header_length + end > len(data):
        return SparseError(f"truncated: the tensors need {end:,} bytes after the header, "
                           f"only {len(data) - 8 - header_length:,} follow")
    return SparseError(f"not a safetensors document: {err}")


def _check_metadata(metadata: Mapping[str, object], spec: ModelSpec, expected_format: str,
                    fields: frozenset[str]) -> None:
    if metadata.get("format") != expected_format:
        raise SparseError(f"not a FairFL {expected_format}: format is "
                          f"{metadata.get('format')!r}")
    if set(metadata) != fields:
        missing, extra = sorted(fields - set(metadata)), sorted(set(metadata) - fields)
        raise SparseError(f"metadata fields differ from {expected_format}'s: missing "
                          f"{missing}, unexpected {extra}")
    stored_spec = _canonical(metadata["spec"])
    stored_hash = metadata["spec_sha256"]
    if stored_hash != spec.sha256() or stored_spec != spec.to_json() \
            or metadata["model"] != spec.name:
        raise SparseError(f"made for spec {stored_spec} (sha256 {stored_hash}), expected "
                          f"{spec.to_json()}")


def _check_names(tensors: Mapping[str, object], expected: set[str]) -> None:
    names = set(tensors)
    missing, extra = sorted(expected - names), sorted(names - expected)
    if missing or extra:
        raise SparseError(f"tensors must be exactly {sorted(expected)}: missing {missing}, "
                          f"unexpected {extra}")


def _tensor(tensors: Mapping[str, Mapping[str, object]], name: str, dtype: str,
            numpy_dtype: str) -> np.ndarray:
    tensor = tensors[name]
    if tensor["dtype"] != dtype:
        raise SparseError(f"tensor {name!r} must be {dtype}, got {tensor['dtype']}")
    shape = tuple(tensor["shape"])  # type: ignore[call-overload]
    if len(shape) != 1:
        raise SparseError(f"tensor {name!r} must be 1-D, got shape {shape}")
    return np.frombuffer(tensor["data"], dtype=numpy_dtype)  # type: ignore[call-overload]


__all__ = [
    "BASES",
    "FORMAT",
    "METADATA_KEY",
    "STATE_FORMAT",
    "Base",
    "ErrorFeedbackState",
    "SparseDelta",
    "SparseError",
    "decode_sparse",
    "decode_state",
    "encode_delta",
    "encode_sparse",
    "encode_state",
    "max_sparse_bytes",
    "max_state_bytes",
]
