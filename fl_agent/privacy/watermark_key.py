"""A participant's watermark key, its on-chain commitment and the verdict rule: the part of
:mod:`fl_agent.privacy.watermark` that needs neither torch nor the model, so that the app and
``fl-agent market show`` can check claims (:mod:`fl_agent.privacy.claims`) without loading
them. Everything here is re-exported by :mod:`fl_agent.privacy.watermark`, whose docstring
describes the scheme.

keccak and ABI encoding are eth_utils' and eth_abi's, the binomial tail scipy's.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from eth_abi import encode as abi_encode
from eth_utils import is_address, keccak, to_checksum_address

from fl_agent.documents import parse_json
from fl_agent.errors import ConfigError

#: Version of the scheme (key file, derivation, commitment); a new one changes the salts.
VERSION = 1
KEY_BYTES = 32
#: First word of the commitment's encoding, so it can never equal another protocol's hash.
DOMAIN = keccak(text="FairFL.watermark.v1")
#: Signature bits per participant, chosen on the tuning seeds of
#: ``benchmarks.privacy_watermark`` and ``benchmarks.held_out`` (docs/privacy-watermark.md).
#: 32 bits verify from 30 matches (93.75 %: the tail at 29 is 1.3e-6), 40 from 36 (90 %,
#: MATCH_RATE_MIN binds: the tail at 36 is 9.3e-8); 16 never reach ALPHA. 40 since
#: 2026-12-05 (32 before): on the tuning seeds it verified 57 keys of 60 against 55, with
#: FPR 0, an accuracy cost of at most 0.84 points (32 bits: 0.56) and a mean TPR under
#: attack of 0.958 (0.960). 64 bits cost more accuracy (1.1 points on an evaluation seed)
#: and, with the NOISE check of the time, were taken for noise far more often.
DEFAULT_BITS = 40
#: The verdict's thresholds: at least this share of bits matched...
MATCH_RATE_MIN = 0.9
#: ...and a chance below this that a model without the watermark matches as many.
ALPHA = 1e-6
#: Bounds on the bit count. Below 20 bits even a full match cannot reach ALPHA (2**-20 is
#: just below 1e-6); 8 is allowed to measure capacity with.
MIN_BITS, MAX_BITS = 8, 4096
#: A key file is about 110 bytes (more with a layer name); anything far longer is not one.
MAX_KEY_DOCUMENT = 4096


@dataclass(frozen=True)
class WatermarkKey:
    """A participant's secret: ``secret`` (32 bytes), the signature length ``bits`` and,
    optionally, the carrier ``layer`` (a parameter name of the spec; None: :func:`carrier`'s
    default). Keep it private until verification: whoever holds it can also remove the mark."""

    secret: bytes
    bits: int = DEFAULT_BITS
    layer: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != KEY_BYTES:
            raise ConfigError(f"a watermark key is {KEY_BYTES} bytes, got "
                              f"{type(self.secret).__name__} of length "
                              f"{len(self.secret) if hasattr(self.secret, '__len__') else '?'}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) \
                or not MIN_BITS <= self.bits <= MAX_BITS:
            raise ConfigError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], "
                              f"got {self.bits!r}")
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            raise ConfigError(f"layer must be a parameter name or None, got {self.layer!r}")

    def __repr__(self) -> str:  # never print the secret by accident
        return f"WatermarkKey(bits={self.bits}, layer={self.layer!r}, secret=<hidden>)"

    @classmethod
    def generate(cls, bits: int = DEFAULT_BITS, layer: str | None = None) -> WatermarkKey:
        """A fresh key from the operating system's randomness."""
        return cls(secrets.token_bytes(KEY_BYTES), bits, layer)

    def to_json(self) -> str:
        document: dict[str, Any] = {"version": VERSION, "key": self.secret.hex(),
                                    "bits": self.bits}
        if self.layer is not None:
            document["layer"] = self.layer
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> WatermarkKey:
        """Parses a key document; :class:`ConfigError` says what is wrong with a bad one."""
        if len(text) > MAX_KEY_DOCUMENT:
            # Also bounds the nesting that json's C parser would recurse into: a claim
            # document reveals a key anyone wrote, and deep enough nesting overflows the
            # C stack when a library has raised the recursion limit.
            raise ConfigError(f"a watermark key file is at most {MAX_KEY_DOCUMENT} bytes, got "
                              f"{len(text)}")
        try:
            document = parse_json(text)
        except ValueError as err:  # not JSON, not UTF-8, or nested past the parser's limit
            raise ConfigError(f"a watermark key file is JSON: {err}") from err
        if not isinstance(document, dict):
            raise ConfigError("a watermark key file is a JSON object with version, key, bits")
        unknown = set(document) - {"version", "key", "bits", "layer"}
        missing = {"version", "key", "bits"} - set(document)
        if unknown or missing:
            raise ConfigError("watermark key file: "
                              + "; ".join([f"missing {', '.join(sorted(missing))}"] * bool(missing)
                                          + [f"unknown {', '.join(sorted(unknown))}"]
                                          * bool(unknown)))
        if document["version"] != VERSION or isinstance(document["version"], bool):
            raise ConfigError(f"watermark key file version {document['version']!r} is not "
                              f"supported (this is version {VERSION})")
        hex_key = document["key"]
        if not isinstance(hex_key, str) or len(hex_key) != 2 * KEY_BYTES:
            raise ConfigError(f"watermark key must be {2 * KEY_BYTES} hex digits")
        try:
            secret = bytes.fromhex(hex_key)
        except ValueError as err:
            raise ConfigError(f"watermark key is not hex: {err}") from err
        return cls(secret, document["bits"], document.get("layer"))

    def save(self, path: Path) -> None:
        """Writes the key file, readable by its owner only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: Path) -> WatermarkKey:
        try:
            return cls.from_json(Path(path).read_bytes())
        except OSError as err:
            raise ConfigError(f"cannot read watermark key file {path}: {err}") from err


def commitment(key: WatermarkKey, account: str, task_id: int) -> bytes:
    """``keccak256(abi.encode(DOMAIN, account, task_id, secret, bits, layer))``: 32 bytes to
    record on chain at join. It binds the key to this account and task (another participant's
    commitment to the same key differs) and hides the secret (32 random bytes) until it is
    revealed; a contract can recompute it with the same ``abi.encode``."""
    if not isinstance(account, str) or not is_address(account):
        raise ConfigError(f"account must be a 20-byte hex address, got {account!r}")
    if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id < 2**256:
        raise ConfigError(f"task_id must be an integer in [0, 2**256), got {task_id!r}")
    encoded = abi_encode(["bytes32", "address", "uint256", "bytes32", "uint256", "string"],
                         [DOMAIN, to_checksum_address(account), task_id, key.secret, key.bits,
                          key.layer or ""])
    return keccak(encoded)


def false_match_probability(matched: int, bits: int) -> float:
    """``P[X >= matched]`` for ``X ~ Binomial(bits, 1/2)``: the chance that a model without
    the watermark matches at least ``matched`` of ``bits`` signature bits."""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits < 1:
        raise ConfigError(f"bits must be a positive integer, got {bits!r}")
    if not isinstance(matched, int | np.integer) or not 0 <= matched <= bits:
        raise ConfigError(f"matched must be an integer in [0, {bits}], got {matched!r}")
    from scipy.stats import binom  # loaded on first use: the app rarely needs it

    return float(binom.sf(int(matched) - 1, int(bits), 0.5))


@dataclass(frozen=True)
class WatermarkResult:
    """The outcome of :func:`fl_agent.privacy.watermark.verify`: ``matched`` of ``bits``
    signature bits, their share, the chance ``p_value`` that a model without this watermark
    matches as many, and the verdict (:func:`passes`)."""

    bits: int
    matched: int
    match_rate: float
    p_value: float
    verified: bool


def passes(matched: int, bits: int, *, alpha: float = ALPHA,
           min_match_rate: float = MATCH_RATE_MIN) -> bool:
    """The verdict on ``matched`` of ``bits``: a match rate of at least ``min_match_rate``
    and a binomial tail below ``alpha``."""
    return bool(matched / bits >= min_match_rate
                and false_match_probability(matched, bits) < alpha)
