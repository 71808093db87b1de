"""Ownership watermarks in the weights of a federated model, after FedIPR (Li et al., "FedIPR:
Ownership verification for federated deep neural network models"), as pure computation.

Each participant draws a secret :class:`WatermarkKey` (32 random bytes and a bit count), posts
its :func:`commitment` on chain when it joins a task, and trains with :func:`embed_hook` as the
``gradient_hook`` of :func:`~fl_agent.learning.training.train_local`. Later, on any copy of
the model, :func:`verify` reveals whether the key's signature is in the weights, and how
unlikely that is by chance.

Everything derives from the key, deterministically:

* **where** -- the *carrier*, one weight tensor of the model spec (:func:`carrier`): the
  layer the key names, or by default the largest weight tensor with two or more dimensions
  (first on ties): ``fc1.weight`` of the digits MLP (64 x 64), the only weight of a
  ``logreg``, the output layer of the digits CNN. The largest tensor because twenty
  participants share it: more weights carry more bits for the same change to each weight
  (on the MLP's 640-weight output layer at most 1 key in 20 verified; docs/privacy-watermark.md).
* **the signature** ``b in {-1, +1}^bits``: the bits of ``HKDF-SHA256(key, info="signature")``.
* **the projection** ``E`` (``bits x m``, ``m`` the carrier's size): standard normal entries
  divided by ``sqrt(m)`` (rows of length ~1), from a numpy ``Generator`` (PCG64) seeded with
  ``HKDF-SHA256(key, info="projection|<carrier name>|<m>")``. numpy does not promise the same
  ``Generator`` stream across versions, so a key verifies with the numpy the project pins.

Embedding adds ``strength * sum_i max(0, margin - b_i (E w)_i)`` to the training loss of the
carrier's weights ``w`` (the hinge of FedIPR's sign loss); :func:`embed_hook` adds its
gradient, ``-strength * sum_{i: b_i (E w)_i < margin} b_i E_i``, to the carrier's ``grad``
after each backward pass. Bit ``i`` is read as ``sign((E w)_i)``.

What it costs and where it stops (measured by ``benchmarks.privacy_watermark``,
docs/privacy-watermark.md): FedAvg averages each participant's mark by its share of the
weight, so a participant with a small share (a few per cent of the data, out of twenty)
may not get its mark into the global model; and a push strong enough to make it makes the
update look like noise to FairFL's rule (a direction no other update shares), which then
rejects it. The defaults sit where FairFL rejected about as few honest updates as without
watermarks on the tuning seeds. The mark is tied to weight positions: permuting hidden units
(the same function) erases it, and whoever learns the key can train it away.

Verification counts the bits that match. For a model that never saw the key, the signs of
``E w`` are independent fair coins (``E`` is Gaussian and independent of ``w``), so the
chance that such a model matches at least as many bits is the binomial tail
``P[X >= matched | bits, 1/2]`` (scipy's ``binom.sf``). The verdict is *verified* iff the
match rate is at least :data:`MATCH_RATE_MIN` (0.9) **and** that tail is below
:data:`ALPHA` (1e-6). The tail needs enough bits: 16 bits can never verify
(``2**-16 > 1e-6``), 32 bits need 30 matches.

The commitment (``keccak256(abi.encode(DOMAIN, account, taskId, key, bits, layer))``) binds
the key to one account and one task; the secret stays hidden until the owner reveals it to
an arbiter. Recorded before the model exists, it also stops a claimant from trying many keys
on a finished model until one happens to match: the tail is the chance for *one* key fixed
in advance.

Key files are small JSON documents (``{"version": 1, "key": "<64 hex>", "bits": 32}`` and,
optionally, ``"layer"``), never pickles; a malformed one raises :class:`ConfigError`.

HKDF is ``cryptography``'s, keccak and ABI encoding are eth_utils' and eth_abi's, the tail is
scipy's and the hinge's gradient is computed with torch. Written here by hand are only the
derivation and the hinge, which no library offers in this form.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_abi import encode as abi_encode
from eth_utils import is_address, keccak, to_checksum_address
from scipy.stats import binom
from torch import nn

from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec, ParamSlot, check_vector, param_count, param_layout
from fl_agent.learning.training import GradientHook

__all__ = ["ALPHA", "DEFAULT_BITS", "DEFAULT_MARGIN", "DEFAULT_STRENGTH", "DOMAIN",
           "KEY_BYTES", "MATCH_RATE_MIN", "VERSION", "Watermark", "WatermarkKey",
           "WatermarkResult", "carrier", "commitment", "derive", "embed_hook",
           "false_match_probability", "read_bits", "verify"]

#: Version of the scheme (key file, derivation, commitment); a new one changes the salts.
VERSION = 1
KEY_BYTES = 32
#: HKDF salt of the derivation.
SALT = b"fairfl/watermark/v1"
#: First word of the commitment's encoding, so it can never equal another protocol's hash.
DOMAIN = keccak(text="FairFL.watermark.v1")
#: Signature bits per participant, chosen on the tuning seeds 1-3 of
#: ``benchmarks.privacy_watermark`` (docs/privacy-watermark.md): 20 participants share the
#: carrier, and at 64 bits each one's mark is longer, so FairFL took more honest updates for
#: noise (FPR 9-19 % against 0-1 % at 32 bits, same margin and strength), for no more keys
#: verified. 32 bits verify from 30 matches (the tail at 29 is 1.3e-6); 16 never reach ALPHA.
DEFAULT_BITS = 32
#: The hinge's margin gamma on ``b_i (E w)_i`` (E's rows have length ~1, so it is a distance
#: in weight space; a weight of the digits MLP's fc1 is ~0.07) and its weight lambda in the
#: loss. lambda = 2 with the task's lr of 0.05 moves a bit 0.1 a step: it reaches the margin
#: in a step or two. A margin of 0.2, or lambda = 4, verified more keys but FairFL rejected
#: honest updates often enough to blacklist some; see docs/privacy-watermark.md.
DEFAULT_MARGIN = 0.1
DEFAULT_STRENGTH = 2.0
#: The verdict's thresholds: at least this share of bits matched...
MATCH_RATE_MIN = 0.9
#: ...and a chance below this that a model without the watermark matches as many.
ALPHA = 1e-6
#: Bounds on the bit count. Below 20 bits even a full match cannot reach ALPHA (2**-20 is
#: just below 1e-6); 8 is allowed to measure capacity with.
MIN_BITS, MAX_BITS = 8, 4096


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
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
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


def carrier(spec: ModelSpec, layer: str | None = None) -> tuple[int, ParamSlot]:
    """The parameter that carries the mark (its index in ``model.parameters()`` and its slot
    in the flat vector): the one named ``layer``, or the largest weight tensor with two or more
    dimensions, the first on ties."""
    layout = param_layout(spec)
    if layer is not None:
        for index, slot in enumerate(layout):
            if slot.name == layer:
                return index, slot
        raise ConfigError(f"{spec.name} has no parameter {layer!r}; it has "
                          f"{', '.join(s.name for s in layout)}")
    weights = [(index, slot) for index, slot in enumerate(layout) if len(slot.shape) >= 2]
    return max(weights, key=lambda pair: (pair[1].size, -pair[0]))


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=SALT, info=info).derive(secret)


@dataclass(frozen=True, eq=False)
class Watermark:
    """What a key means for one spec: the carrier and the secret ``projection`` (``bits x
    slot.size``, float32) and ``signature`` (``bits`` values in {-1, +1}, int8)."""

    index: int
    slot: ParamSlot
    projection: np.ndarray
    signature: np.ndarray

    def project(self, vector: np.ndarray) -> np.ndarray:
        """``E w`` for the carrier's weights ``w`` in the flat ``vector`` (float64)."""
        weights = np.asarray(vector, dtype=np.float64)[self.slot.offset:
                                                         self.slot.offset + self.slot.size]
        return self.projection.astype(np.float64) @ weights


def derive(spec: ModelSpec, key: WatermarkKey) -> Watermark:
    """The carrier, projection and signature ``key`` stands for in ``spec`` (deterministic)."""
    index, slot = carrier(spec, key.layer)
    raw = _hkdf(key.secret, b"signature", math.ceil(key.bits / 8))
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:key.bits]
    signature = np.where(bits == 1, 1, -1).astype(np.int8)
    seed = _hkdf(key.secret, f"projection|{slot.name}|{slot.size}".encode(), 32)
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    projection = (rng.standard_normal((key.bits, slot.size)) / math.sqrt(slot.size))
    return Watermark(index, slot, projection.astype(np.float32), signature)


def embed_hook(spec: ModelSpec, key: WatermarkKey, strength: float = DEFAULT_STRENGTH,
               margin: float = DEFAULT_MARGIN) -> GradientHook:
    """A ``gradient_hook`` for :func:`~fl_agent.learning.training.train_local` that adds the
    gradient of ``strength * sum_i max(0, margin - b_i (E w)_i)`` to the carrier's grad."""
    for name, value in (("strength", strength), ("margin", margin)):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 < value < math.inf:
            raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    mark = derive(spec, key)
    projection = torch.from_numpy(mark.projection)
    signed = torch.from_numpy(mark.signature.astype(np.float32))
    shape = mark.slot.shape

    def hook(step: int, parameters: Sequence[nn.Parameter]) -> None:
        weight = parameters[mark.index]
        if tuple(weight.shape) != shape:
            raise ConfigError(f"the watermark's carrier {mark.slot.name} has shape {shape}, "
                              f"the model's parameter {mark.index} {tuple(weight.shape)}")
        with torch.no_grad():
            margins = signed * (projection @ weight.detach().reshape(-1))
            pushing = signed * (margins < margin)
            push = (pushing @ projection).reshape(shape)
            if weight.grad is None:  # a model that left this weight out of its loss
                weight.grad = torch.zeros_like(weight)
            weight.grad.add_(push, alpha=-float(strength))

    return hook


def read_bits(spec: ModelSpec, vector: np.ndarray, key: WatermarkKey) -> np.ndarray:
    """The signs of ``E w`` in ``vector`` (int8; 0 where the projection is exactly 0)."""
    vector = check_vector(vector, param_count(spec))
    return np.sign(derive(spec, key).project(vector)).astype(np.int8)


def false_match_probability(matched: int, bits: int) -> float:
    """``P[X >= matched]`` for ``X ~ Binomial(bits, 1/2)``: the chance that a model without
    the watermark matches at least ``matched`` of ``bits`` signature bits."""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits < 1:
        raise ConfigError(f"bits must be a positive integer, got {bits!r}")
    if not isinstance(matched, int | np.integer) or not 0 <= matched <= bits:
        raise ConfigError(f"matched must be an integer in [0, {bits}], got {matched!r}")
    return float(binom.sf(int(matched) - 1, int(bits), 0.5))


@dataclass(frozen=True)
class WatermarkResult:
    """The outcome of :func:`verify`: ``matched`` of ``bits`` signature bits, their share,
    the chance ``p_value`` that a model without this watermark matches as many, and the
    verdict (``match_rate >= MATCH_RATE_MIN`` and ``p_value < ALPHA``)."""

    bits: int
    matched: int
    match_rate: float
    p_value: float
    verified: bool


def verify(spec: ModelSpec, vector: np.ndarray, key: WatermarkKey, *,
           alpha: float = ALPHA, min_match_rate: float = MATCH_RATE_MIN) -> WatermarkResult:
    """Whether ``key``'s signature is in the model ``vector`` (see the module docstring)."""
    if not 0 < alpha < 1 or not 0 < min_match_rate <= 1:
        raise ConfigError(f"alpha must lie in (0, 1) and min_match_rate in (0, 1], got "
                          f"{alpha!r}, {min_match_rate!r}")
    mark = derive(spec, key)
    read = np.sign(mark.project(check_vector(vector, param_count(spec))))
    matched = int(np.sum(read == mark.signature))
    p_value = false_match_probability(matched, key.bits)
    rate = matched / key.bits
    return WatermarkResult(key.bits, matched, rate, p_value,
                           bool(rate >= min_match_rate and p_value < alpha))
