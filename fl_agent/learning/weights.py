"""Model weights on the wire: safetensors bytes, checked strictly before use.

Weights come from other participants, so they are untrusted input. They travel as a
safetensors document (never pickle: ``torch.load`` can run code) holding one float32 tensor
per parameter of the spec's model, named as in :func:`~fl_agent.learning.models.param_layout`,
and one metadata entry, ``fairfl``, whose value is canonical JSON (sorted keys, no spaces)::

    {"format": "fairfl-weights/1", "model": "mlp", "spec": {...the ModelSpec...},
     "spec_sha256": "<SHA-256 of the spec's canonical JSON>"}

One entry, because safetensors writes its metadata map in no fixed order: with several
entries the same weights could encode to different bytes, hence different CIDs. With one,
:func:`encode_weights` is deterministic — equal weights give equal bytes.

:func:`decode_weights` accepts a document only if it parses, is not larger than allowed, was
made for exactly the expected spec, has exactly the expected tensors with the expected shapes
and dtype, and holds only finite values. Anything else raises :class:`WeightsError`.

Parsing and serialisation are safetensors'. The metadata header is read here (8-byte length,
then JSON, as the safetensors format defines) because the library offers metadata only for
files, and only after safetensors has validated the whole document.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np
import safetensors
import torch
from safetensors.numpy import save

from fl_agent.documents import parse_json
from fl_agent.errors import ConfigError, FairFLError
from fl_agent.learning.models import ModelSpec, param_count, param_layout

FORMAT = "fairfl-weights/1"
METADATA_KEY = "fairfl"

#: Room allowed for the safetensors header above the tensor bytes when no limit is given.
HEADER_ALLOWANCE = 64 * 1024


class WeightsError(FairFLError, ValueError):
    """The bytes are not valid weights for the expected model spec."""


def max_weights_bytes(spec: ModelSpec) -> int:
    """The default size limit for weights of ``spec``: float32 tensors plus header room."""
    return 4 * param_count(spec) + HEADER_ALLOWANCE


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _metadata(spec: ModelSpec) -> dict[str, str]:
    return {METADATA_KEY: _canonical({"format": FORMAT, "model": spec.name,
                                      "spec": json.loads(spec.to_json()),
                                      "spec_sha256": spec.sha256()})}


def _tensors_from_vector(spec: ModelSpec, vector: np.ndarray) -> dict[str, np.ndarray]:
    array = np.asarray(vector)
    expected = param_count(spec)
    if array.ndim != 1 or array.shape[0] != expected:
        raise WeightsError(f"weight vector for {spec.name} must have shape ({expected},), "
                           f"got {array.shape}")
    return {slot.name: array[slot.offset:slot.offset + slot.size].reshape(slot.shape)
            for slot in param_layout(spec)}


def _tensors_from_state_dict(spec: ModelSpec,
                             state: Mapping[str, np.ndarray | torch.Tensor]
                             ) -> dict[str, np.ndarray]:
    _check_names(spec, set(state))
    tensors = {}
    for slot in param_layout(spec):
        value = state[slot.name]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.shape != slot.shape:
            raise WeightsError(f"tensor {slot.name!r} must have shape {slot.shape}, "
                               f"got {array.shape}")
        tensors[slot.name] = array
    return tensors


def encode_weights(spec: ModelSpec,
                   weights: np.ndarray | Mapping[str, np.ndarray | torch.Tensor]) -> bytes:
    """Safetensors bytes for ``weights`` of ``spec``: a flat vector or a ``state_dict``.

    Floating-point values are stored as float32; anything else, a wrong size or name, or a
    NaN or infinite value raises :class:`WeightsError`.
    """
    if isinstance(weights, Mapping):
        tensors = _tensors_from_state_dict(spec, weights)
    else:
        tensors = _tensors_from_vector(spec, weights)
    out = {}
    for name, array in tensors.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise WeightsError(f"tensor {name!r} must be floating point, got {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise WeightsError(f"tensor {name!r} contains NaN or infinite values")
        out[name] = np.ascontiguousarray(array, dtype=np.float32)
    return save(out, metadata=_metadata(spec))


def _check_names(spec: ModelSpec, names: set[str]) -> None:
    expected = {slot.name for slot in param_layout(spec)}
    missing, extra = sorted(expected - names), sorted(names - expected)
    if missing:
        raise WeightsError(f"weights for {spec.name} are missing tensors {missing}")
    if extra:
        raise WeightsError(f"weights for {spec.name} have unexpected tensors {extra}")


def _read_metadata(data: bytes) -> dict[str, object]:
    """The ``fairfl`` metadata entry of a document safetensors has already validated."""
    (header_length,) = struct.unpack("<Q", data[:8])
    header = parse_json(data[8:8 + header_length])
    text = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if text is None:
        raise WeightsError(f"not FairFL weights: no {METADATA_KEY!r} metadata entry")
    try:
        metadata = parse_json(text)
    except ValueError as err:
        raise WeightsError(f"not FairFL weights: {METADATA_KEY!r} metadata is not JSON") from err
    if not isinstance(metadata, dict):
        raise WeightsError(f"not FairFL weights: {METADATA_KEY!r} metadata is not an object")
    return metadata


def _check_metadata(metadata: Mapping[str, object], spec: ModelSpec) -> None:
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"not FairFL weights: format is {metadata.get('format')!r}, "
                           f"expected {FORMAT!r}")
    stored_spec = _canonical(metadata.get("spec"))
    stored_hash = metadata.get("spec_sha256")
    if stored_hash != spec.sha256() or stored_spec != spec.to_json():
        raise WeightsError(f"weights were made for spec {stored_spec} (sha256 {stored_hash}), "
                           f"expected {spec.to_json()}")


def decode_weights(data: bytes, spec: ModelSpec, max_bytes: int | None = None) -> np.ndarray:
    """The flat float32 parameter vector in ``data``, checked against ``spec``.

    ``max_bytes`` defaults to :func:`max_weights_bytes` of ``spec``; larger input is refused
    before it is parsed. Raises :class:`WeightsError` on any problem (see module docstring).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WeightsError(f"weights must be bytes, got {type(data).__name__}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 1):
        raise ConfigError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
    data = bytes(data)
    limit = max_weights_bytes(spec) if max_bytes is None else max_bytes
    if len(data) > limit:
        raise WeightsError(f"weights are {len(data):,} bytes, more than the limit of "
                           f"{limit:,} bytes for {spec.name}")
    try:
        tensors = safetensors.deserialize(data)
    except Exception as err:  # the library raises SafetensorError, and others on odd input
        raise WeightsError(f"not a safetensors document: {err}") from err
    _check_metadata(_read_metadata(data), spec)
    by_name = dict(tensors)
    _check_names(spec, set(by_name))
    vector = np.empty(param_count(spec), dtype=np.float32)
    for slot in param_layout(spec):
        tensor = by_name[slot.name]
        if tensor["dtype"] != "F32":
            raise WeightsError(f"tensor {slot.name!r} must be F32, got {tensor['dtype']}")
        if tuple(tensor["shape"]) != slot.shape:
            raise WeightsError(f"tensor {slot.name!r} must have shape {slot.shape}, "
                               f"got {tuple(tensor['shape'])}")
        values = np.frombuffer(tensor["data"], dtype="<f4")
        if not np.all(np.isfinite(values)):
            raise WeightsError(f"tensor {slot.name!r} contains NaN or infinite values")
        vector[slot.offset:slot.offset + slot.size] = values
    return vector
