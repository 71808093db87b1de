"""Wire formats of homomorphic aggregation: framed documents and ciphertext bytes.

Every document that passes between the roles of :mod:`fl_agent.privacy.he` is::

    header length (uint32, big-endian) || header: canonical JSON (sorted keys, no spaces)
    || for each ciphertext: its length (uint32, big-endian) || the ciphertext

and nothing else: no trailing bytes, never pickle. The headers, with every key required and
no other allowed, are

* update (a participant's delta): ``{"chunks": k, "context": "<sha256>",
  "format": "fairfl-ckks-update/2", "length": d, "slots": s}``, then ``k = ceil(d / s)``
  ciphertexts, chunk ``j`` holding values ``j*s`` to ``min(d, (j+1)*s) - 1``;
* scalars (aggregator to key holder): ``{"context": ..., "format": "fairfl-ckks-scalars/2",
  "projections": 4, "updates": n}``, then ``6n`` ciphertexts: the inner product of update 0
  with the reference direction, its squared norm, its four random projections, the same for
  update 1, and so on. Each holds its value in every slot (a sum over all slots by
  rotations). Version 1 had no projections;
* aggregate (aggregator to key holder): ``{"chunks": k, "context": ..., "format":
  "fairfl-ckks-aggregate/1", "length": d, "slots": s}``, then ``k`` ciphertexts.

``context`` is the SHA-256 (hex) of the task's public context bytes: a document is checked
against it before any of its ciphertexts is parsed.

Each ciphertext is in SEAL's own serialization (magic ``0xA15E``, zstd-compressed), the
bytes TenSEAL keeps inside its vector format. Two adapters are written here because neither
library offers them: TenSEAL builds a vector only from its protobuf ``CKKSVectorProto``
(``sizes = 1``, ``ciphertexts = 2``, ``scale = 3``), so :func:`vector_proto` and
:func:`proto_ciphertexts` write and read those three fields; and SEAL's Python binding saves a
ciphertext only to a file path, so :func:`ciphertext_bytes` goes through a private temporary
directory.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fl_agent.documents import parse_json
from fl_agent.errors import FairFLError

UPDATE_FORMAT = "fairfl-ckks-update/2"  # 2: deltas shortened to the cap
SCALARS_FORMAT = "fairfl-ckks-scalars/2"
AGGREGATE_FORMAT = "fairfl-ckks-aggregate/1"
#: Longest header accepted; a real one is about 150 bytes.
MAX_HEADER_BYTES = 1024
#: SEAL's ciphertext header and zstd's framing, above the raw polynomial words.
CIPHERTEXT_OVERHEAD = 4096
_LENGTH = struct.Struct(">I")


class HEError(FairFLError, ValueError):
    """A CKKS context or document is malformed, too large, or not made for this task."""


def canonical_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def pack(header: Mapping[str, Any], frames: Iterable[bytes]) -> bytes:
    """A document: the canonical ``header`` and the length-prefixed ``frames``."""
    head = canonical_json(header)
    if len(head) > MAX_HEADER_BYTES:
        raise HEError(f"header is {len(head)} bytes, more than {MAX_HEADER_BYTES}")
    parts = [_LENGTH.pack(len(head)), head]
    for frame in frames:
        parts += [_LENGTH.pack(len(frame)), frame]
    return b"".join(parts)


def unpack(data: bytes, expected_format: str, fields: Mapping[str, type],
           max_frame_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """The header and frames of a ``expected_format`` document, checked strictly: the header
    is canonical JSON with exactly ``fields`` (name to ``int`` or ``str``; ints >= 0) plus
    ``format``; no frame is longer than ``max_frame_bytes``; nothing is truncated or left
    over. The caller checks the values and the number of frames."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise HEError(f"a {expected_format} document must be bytes, got {type(data).__name__}")
    view = memoryview(data)
    if len(view) < _LENGTH.size:
        raise HEError(f"not a {expected_format} document: {len(view)} bytes is too short")
    (head_length,) = _LENGTH.unpack_from(view, 0)
    if head_length > MAX_HEADER_BYTES or _LENGTH.size + head_length > len(view):
        raise HEError(f"not a {expected_format} document: header length {head_length} is "
                      f"out of range (document of {len(view)} bytes, header limit "
                      f"{MAX_HEADER_BYTES})")
    raw = bytes(view[_LENGTH.size:_LENGTH.size + head_length])
    header = _parse_header(raw, expected_format, fields)
    frames, position = [], _LENGTH.size + head_length
    while position < len(view):
        if position + _LENGTH.size > len(view):
            raise HEError(f"{expected_format} document is truncated: "
                          f"{len(view) - position} stray bytes after ciphertext {len(frames)}")
        (length,) = _LENGTH.unpack_from(view, position)
        position += _LENGTH.size
        if length > max_frame_bytes:
            raise HEError(f"ciphertext {len(frames)} of the {expected_format} document is "
                          f"{length:,} bytes, more than the {max_frame_bytes:,} a ciphertext of "
                          f"this context can take")
        if position + length > len(view):
            raise HEError(f"{expected_format} document is truncated: ciphertext {len(frames)} "
                          f"claims {length:,} bytes, {len(view) - position:,} are left")
        frames.append(bytes(view[position:position + length]))
        position += length
    return header, frames


def _parse_header(raw: bytes, expected_format: str,
                  fields: Mapping[str, type]) -> dict[str, Any]:
    try:
        header = parse_json(raw)
    except ValueError as err:
        raise HEError(f"not a {expected_format} document: the header is not JSON") from err
    if not isinstance(header, dict) or canonical_json(header) != raw:
        raise HEError(f"not a {expected_format} document: the header is not a canonical "
                      "JSON object")
    if header.get("format") != expected_format:
        raise HEError(f"not a {expected_format} document: format is "
                      f"{header.get('format')!r}")
    expected = {"format", *fields}
    if set(header) != expected:
        raise HEError(f"{expected_format} header must have exactly the keys "
                      f"{sorted(expected)}, got {sorted(header)}")
    for name, kind in fields.items():
        value = header[name]
        if kind is int and not (isinstance(value, int) and not isinstance(value, bool)
                                and value >= 0):
            raise HEError(f"{expected_format} header: {name} must be an integer >= 0, "
                          f"got {value!r}")
        if kind is str and not isinstance(value, str):
            raise HEError(f"{expected_format} header: {name} must be a string, got {value!r}")
    return header


# ------------------------------------------------------------------ TenSEAL's vector protobuf


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise HEError("not a TenSEAL vector: bad varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def vector_proto(sizes: Sequence[int], ciphertexts: Sequence[bytes], scale: float) -> bytes:
    """TenSEAL's serialized ``CKKSVector`` of ``ciphertexts`` (SEAL bytes) holding ``sizes``
    values each, made at ``scale`` (the scale TenSEAL encodes new operands at)."""
    packed = b"".join(_varint(size) for size in sizes)
    out = [b"\x0a", _varint(len(packed)), packed]
    for ciphertext in ciphertexts:
        out += [b"\x12", _varint(len(ciphertext)), ciphertext]
    out += [b"\x19", struct.pack("<d", scale)]
    return b"".join(out)


def proto_ciphertexts(data: bytes) -> tuple[list[int], list[bytes], float]:
    """``(sizes, ciphertexts, scale)`` of a serialized TenSEAL ``CKKSVector``."""
    sizes: list[int] = []
    ciphertexts: list[bytes] = []
    scale = 0.0
    position = 0
    while position < len(data):
        tag, position = _read_varint(data, position)
        if tag == 0x0A:  # sizes, packed
            length, position = _read_varint(data, position)
            end = position + length
            while position < end:
                size, position = _read_varint(data, position)
                sizes.append(size)
        elif tag == 0x08:  # sizes, one unpacked value
            size, position = _read_varint(data, position)
            sizes.append(size)
        elif tag == 0x12:
            length, position = _read_varint(data, position)
            ciphertexts.append(bytes(data[position:position + length]))
            position += length
        elif tag == 0x19:
            (scale,) = struct.unpack_from("<d", data, position)
            position += 8
        else:
            raise HEError(f"not a TenSEAL vector: unexpected field tag {tag}")
    if position != len(data):
        raise HEError("not a TenSEAL vector: truncated")
    return sizes, ciphertexts, scale


def ciphertext_bytes(ciphertexts: Sequence[Any]) -> list[bytes]:
    """SEAL's serialization of each ciphertext (through files: the binding's only way)."""
    with tempfile.TemporaryDirectory(prefix="fairfl-ckks-") as directory:
        out = []
        for index, ciphertext in enumerate(ciphertexts):
            path = Path(directory) / f"{index}.seal"
            ciphertext.save(str(path))
            out.append(path.read_bytes())
        return out
