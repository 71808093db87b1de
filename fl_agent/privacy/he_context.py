"""The task's CKKS context, and the participant's side of homomorphic aggregation:
encrypting an update's delta and checking an update document before any arithmetic.

:class:`CKKSParameters` are what a key holder creates a context with (why these, in
:mod:`fl_agent.privacy.he`); :class:`PublicContext` is the published context, loaded once,
refusing one that holds a secret key; :func:`encrypt_update` and :func:`decode_update` write
and read the update document of :mod:`fl_agent.privacy.he_format`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi
from numpy.typing import ArrayLike, NDArray

from fl_agent.errors import ConfigError
from fl_agent.learning.models import finite_vector
from fl_agent.privacy.he_format import (
    CIPHERTEXT_OVERHEAD,
    MAX_HEADER_BYTES,
    UPDATE_FORMAT,
    HEError,
    pack,
    proto_ciphertexts,
    unpack,
    vector_proto,
)

#: How far below the wrap period ``W = 2**(headroom bits)`` of a decrypted squared norm an
#: honest one stays: at most ``W / 2**WRAP_MARGIN_BITS`` (``PublicContext.max_squared_norm``,
#: 2^20 at the default parameters: a norm of 1024). A squared norm that wrapped around the
#: modulus and decrypts to no more than that is at least ``2**WRAP_MARGIN_BITS`` times too
#: short, which the key holder's random projections expose (:mod:`fl_agent.privacy.he`).
WRAP_MARGIN_BITS = 20
#: Bits of room a context must leave above a product's scale (``2 * scale_bits``): the
#: wrap margin, and 10 bits for the updates' norms (up to 2^5 at the least).
MIN_HEADROOM_BITS = WRAP_MARGIN_BITS + 10
#: The smallest scale a context may have (a coarser one lets CKKS error reach the rule).
MIN_SCALE_BITS = 30

FloatArray = NDArray[np.float64]


def context_fingerprint(public_context: bytes) -> str:
    """SHA-256 (hex) of the public context bytes: what every document names."""
    return hashlib.sha256(public_context).hexdigest()


@dataclass(frozen=True)
class CKKSParameters:
    """The CKKS parameters a key holder creates a task's context with (see module docstring)."""

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 60, 60)
    scale_bits: int = 40

    def __post_init__(self) -> None:
        degree, bits = self.poly_modulus_degree, self.coeff_mod_bit_sizes
        if not (isinstance(degree, int) and degree >= 1024 and degree & (degree - 1) == 0):
            raise ConfigError(f"poly_modulus_degree must be a power of two >= 1024, got "
                              f"{degree!r}")
        if len(bits) < 2 or not all(isinstance(b, int) and 20 <= b <= 60 for b in bits):
            raise ConfigError("coeff_mod_bit_sizes must be two or more prime sizes of 20 to 60 "
                              f"bits (the last is the key-switching prime), got {bits!r}")
        limit = sealapi.CoeffModulus.MaxBitCount(degree, sealapi.SEC_LEVEL_TYPE.TC128)
        if sum(bits) > limit:
            raise ConfigError(f"coeff_mod_bit_sizes add up to {sum(bits)} bits; degree {degree} "
                              f"allows {limit} at 128-bit security")
        if not (isinstance(self.scale_bits, int) and MIN_SCALE_BITS <= self.scale_bits <= 60):
            raise ConfigError(f"scale_bits must be {MIN_SCALE_BITS} to 60, got "
                              f"{self.scale_bits!r}")
        headroom = sum(bits[:-1]) - 2 * self.scale_bits
        if headroom < MIN_HEADROOM_BITS:
            raise ConfigError(f"the data primes ({sum(bits[:-1])} bits) leave {headroom} bits "
                              f"above a product's scale 2^{2 * self.scale_bits}; at least "
                              f"{MIN_HEADROOM_BITS} are needed")


def _load_context(data: bytes, what: str) -> ts.Context:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise HEError(f"{what} must be bytes, got {type(data).__name__}")
    try:
        context = ts.context_from(bytes(data))
        scale = context.global_scale
    except (ValueError, RuntimeError) as err:
        raise HEError(f"{what} is not a TenSEAL context with a global scale: {err}") from err
    parms = context.seal_context().data.first_context_data().parms()
    if parms.scheme().name != "CKKS":
        raise HEError(f"{what} is a {parms.scheme().name} context, expected CKKS")
    if not (math.isfinite(scale) and scale > 1):
        raise HEError(f"{what} has an unusable global scale {scale!r}")
    return context


class PublicContext:
    """A task's public CKKS context, loaded once: participants encrypt under it and the
    aggregator computes with it. It never holds a secret key (one that does is refused: a
    published secret key lets anyone decrypt every update)."""

    def __init__(self, data: bytes) -> None:
        self._context = _load_context(data, "the public context")
        if self._context.is_private() or self._context.has_secret_key():
            raise HEError("the public context holds a secret key; publish only "
                          "KeyHolder.public_context")
        if not self._context.has_public_key():
            raise HEError("the public context has no public key to encrypt with")
        self.data = bytes(data)
        self.fingerprint = context_fingerprint(self.data)
        self._seal = self._context.seal_context().data
        parms = self._seal.first_context_data().parms()
        self.poly_modulus_degree = int(parms.poly_modulus_degree())
        self.slots = self.poly_modulus_degree // 2
        self.scale = float(self._context.global_scale)
        self.data_moduli = len(parms.coeff_modulus())
        modulus = math.prod(m.value() for m in parms.coeff_modulus())
        #: The period a decrypted product (a squared norm, an inner product) wraps around
        #: with: the data primes' product over the product's scale, ``scale^2``.
        self.wrap_period = modulus / self.scale ** 2
        # What CKKSParameters requires of a context it makes, required of any context read
        # (one the task's creator did not make: its key holder's). A prime is a little under
        # its nominal bits, so the headroom may fall short of them by less than one bit.
        if self.scale < 2.0 ** MIN_SCALE_BITS or self.wrap_period < 2.0 ** (MIN_HEADROOM_BITS
                                                                            - 1):
            raise HEError(
                f"the context's scale 2^{math.log2(self.scale):.1f} and headroom "
                f"2^{math.log2(self.wrap_period):.1f} above a product's scale are below the "
                f"2^{MIN_SCALE_BITS} and 2^{MIN_HEADROOM_BITS} the robust rule needs; make it "
                "with fl-agent keyholder --new-context (CKKSParameters' defaults)")
        #: Largest squared norm of an encrypted delta (see WRAP_MARGIN_BITS): the key holder
        #: marks a longer one implausible, and encrypt_update shortens a delta to a quarter
        #: of it (half the norm), clear of any CKKS error.
        self.max_squared_norm = self.wrap_period / 2.0 ** WRAP_MARGIN_BITS
        #: Longest serialized ciphertext (two polynomials of 8-byte words per data prime).
        self.max_ciphertext_bytes = (2 * self.data_moduli * self.poly_modulus_degree * 8
                                     + CIPHERTEXT_OVERHEAD)
        self._top = self._seal.first_parms_id()
        self._evaluator: Any = None
        self._encoder: Any = None

    @property
    def tenseal_context(self) -> ts.Context:
        """TenSEAL's context (public: ``is_private()`` is false, decryption raises)."""
        return self._context

    def chunks(self, length: int) -> int:
        """How many ciphertexts hold ``length`` values."""
        return -(-length // self.slots)

    def max_update_bytes(self, length: int) -> int:
        """The size limit of an update document for ``length`` values."""
        return 4 + MAX_HEADER_BYTES + self.chunks(length) * (4 + self.max_ciphertext_bytes)

    # ----------------------------------------------------------------- arithmetic (aggregator)

    def _arithmetic(self) -> tuple[Any, Any]:
        if not (self._context.has_relin_keys() and self._context.has_galois_keys()):
            raise HEError("the public context has no relinearization and Galois keys: the "
                          "aggregator cannot compute norms and sums with it")
        if self._evaluator is None:
            missing = missing_galois_keys(self._context.data.galois_keys(),
                                          self.poly_modulus_degree)
            if missing:
                raise HEError(f"the public context has no Galois key for {', '.join(missing)}: "
                              "the aggregator cannot compute norms and sums with it; make the "
                              "context with KeyHolder.create (fl-agent task create --mode he)")
            self._evaluator = sealapi.Evaluator(self._seal)
            self._encoder = sealapi.CKKSEncoder(self._seal)
        return self._evaluator, self._encoder

    def _encode(self, values: Sequence[float] | float) -> Any:
        plaintext = sealapi.Plaintext()
        self._arithmetic()[1].encode(values, self._top, self.scale, plaintext)
        return plaintext

    def _sum_slots(self, ciphertext: Any) -> Any:
        """Every slot set to the sum of all slots (log2(slots) rotations, as TenSEAL's sum)."""
        evaluator = self._arithmetic()[0]
        galois = self._context.data.galois_keys()
        rotated = sealapi.Ciphertext()
        step = self.slots // 2
        while step >= 1:
            evaluator.rotate_vector(ciphertext, step, galois, rotated)
            evaluator.add_inplace(ciphertext, rotated)
            step //= 2
        return ciphertext

    def _load_ciphertext(self, frame: bytes, size: int, scale: float, what: str) -> Any:
        try:
            vector = ts.ckks_vector_from(self._context, vector_proto([size], [frame], self.scale))
        except (ValueError, RuntimeError, TypeError) as err:
            raise HEError(f"{what} is not a ciphertext of this task's context: {err}") from err
        return _checked_ciphertext(vector.ciphertext()[0], self._top, scale, what)


def missing_galois_keys(keys: Any, poly_modulus_degree: int) -> list[str]:
    """What the aggregator's arithmetic needs of the Galois ``keys`` (a SEAL ``GaloisKeys``)
    and they lack: the rotations of the sum over the slots (left by slots/2, ..., 2, 1) and
    the complex conjugation of the squared norms. SEAL's Galois element of a left rotation by
    ``step`` is ``3**step mod 2N``, of the conjugation ``2N - 1`` (``GaloisTool``)."""
    m = 2 * poly_modulus_degree
    needed = {f"the rotation by {step}": pow(3, step, m)
              for step in (2 ** k for k in range(int(math.log2(poly_modulus_degree)) - 2, -1, -1))}
    needed["complex conjugation"] = m - 1
    return [name for name, element in needed.items() if not keys.has_key(element)]


def _checked_ciphertext(ciphertext: Any, top: Any, scale: float, what: str) -> Any:
    if ciphertext.size() != 2 or not ciphertext.is_ntt_form():
        raise HEError(f"{what} has {ciphertext.size()} polynomials (or is not in NTT form); "
                      "expected 2")
    if ciphertext.parms_id() != top:
        raise HEError(f"{what} is not at the context's top level")
    if ciphertext.scale != scale:
        raise HEError(f"{what} has scale {ciphertext.scale!r}, expected "
                      f"2^{math.log2(scale):g}")
    return ciphertext


def _as_context(context: PublicContext | bytes) -> PublicContext:
    return context if isinstance(context, PublicContext) else PublicContext(context)


def _check_fingerprint(header: dict[str, Any], fingerprint: str, what: str) -> None:
    if header["context"] != fingerprint:
        raise HEError(f"{what} was made under context {header['context'][:16]}..., not this "
                      f"task's context {fingerprint[:16]}...: refusing it before any "
                      "arithmetic (TenSEAL would compute garbage from it)")


# ------------------------------------------------------------------------------- participant


def encrypt_update(public_context: PublicContext | bytes, delta: ArrayLike) -> bytes:
    """The update document of ``delta`` (local model minus global model, length ``d``):
    ``ceil(d / slots)`` fresh ciphertexts under ``public_context``, the last one padded with
    zeros (padding a participant fills otherwise only lengthens its own norm, so lowers its
    own weight, and lands outside the aggregate's ``d`` values). A delta longer than half
    ``sqrt(PublicContext.max_squared_norm)`` (512 at the default parameters) is shortened to
    that length first: FLTrust rescales every accepted update to ``|g0|`` and weighs it by its
    direction alone, so the round comes out the same, and the key holder marks anything
    longer than the cap implausible (see WRAP_MARGIN_BITS). Encryption is randomized, so the
    same delta gives different bytes each time. Raises :class:`HEError` for NaN or infinite
    values."""
    context = _as_context(public_context)
    vector = finite_vector(delta, "delta", HEError)
    peak = float(np.max(np.abs(vector), initial=0.0))
    if peak > 0:  # the norm without overflow, for a delta of huge values
        norm = peak * float(np.linalg.norm(vector / peak))
        longest = math.sqrt(context.max_squared_norm) / 2
        if norm > longest:
            vector = (vector / peak) * (longest / (norm / peak))
    # Zero-padded to whole ciphertexts: TenSEAL would repeat a short chunk to fill the slots.
    padded = np.zeros(context.chunks(vector.size) * context.slots)
    padded[:vector.size] = vector
    frames = []
    for chunk in padded.reshape(-1, context.slots):
        _, ciphertexts, _ = proto_ciphertexts(ts.ckks_vector(context.tenseal_context,
                                                             chunk.tolist()).serialize())
        frames.append(ciphertexts[0])
    return pack({"chunks": len(frames), "context": context.fingerprint, "format": UPDATE_FORMAT,
                 "length": int(vector.size), "slots": context.slots}, frames)


@dataclass(frozen=True)
class EncryptedUpdate:
    """A checked update document: ``length`` values in SEAL ciphertexts, one per chunk."""

    fingerprint: str
    length: int
    ciphertexts: tuple[Any, ...]


def decode_update(public_context: PublicContext | bytes, data: bytes,
                  length: int) -> EncryptedUpdate:
    """Check an update document for a model of ``length`` parameters and load its
    ciphertexts. Refuses, with an :class:`HEError` naming the problem: more bytes than
    ``length`` values can take, a bad header, another context's fingerprint (before any
    ciphertext is parsed), another length or chunk count, a truncated or extra frame, and a
    ciphertext that does not parse under the task's context or is not fresh."""
    context = _as_context(public_context)
    if not (isinstance(length, int) and length >= 1):
        raise ConfigError(f"length must be a positive number of parameters, got {length!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise HEError(f"an update document must be bytes, got {type(data).__name__}")
    limit = context.max_update_bytes(length)
    if len(data) > limit:
        raise HEError(f"update is {len(data):,} bytes, more than the {limit:,} that "
                      f"{length:,} values take under this context")
    header, frames = unpack(data, UPDATE_FORMAT, {"chunks": int, "context": str, "length": int,
                                                  "slots": int}, context.max_ciphertext_bytes)
    _check_fingerprint(header, context.fingerprint, "the update")
    if header["length"] != length or header["slots"] != context.slots:
        raise HEError(f"update holds {header['length']} values in chunks of "
                      f"{header['slots']}; the task's model has {length} parameters and the "
                      f"context {context.slots} slots")
    expected = context.chunks(length)
    if header["chunks"] != expected or len(frames) != expected:
        raise HEError(f"update must have {expected} ciphertexts for {length} values; header "
                      f"says {header['chunks']}, document holds {len(frames)}")
    ciphertexts = tuple(context._load_ciphertext(frame, context.slots, context.scale,
                                                 f"update chunk {j}")
                        for j, frame in enumerate(frames))
    return EncryptedUpdate(context.fingerprint, length, ciphertexts)


def _updates(context: PublicContext, updates: Iterable[bytes | EncryptedUpdate],
             length: int) -> Iterable[EncryptedUpdate]:
    for index, update in enumerate(updates):
        if isinstance(update, EncryptedUpdate):
            if update.fingerprint != context.fingerprint or update.length != length:
                raise HEError(f"update {index} was decoded for another context or length")
            yield update
        else:
            yield decode_update(context, update, length)
