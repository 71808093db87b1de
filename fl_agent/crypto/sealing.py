"""Encrypting content and sealing its key to a recipient's X25519 public key.

A listed model is encrypted once with a random 256-bit content key (AES-256-GCM). A buyer
publishes an X25519 public key when buying; the seller seals the content key to it with an
ephemeral X25519 key agreement, HKDF-SHA256 and AES-256-GCM, and publishes the sealed key on
chain (``deliverKey``). Only the buyer's private key opens it. The task's own keys
(:mod:`fl_agent.crypto.envelopes`) are handed to members the same way.

Formats (``docs/marketplace.md`` has them byte by byte; the browser implements the same):

* content: ``nonce(12) || AES-256-GCM(key, nonce, plaintext, aad)``;
* sealed key: ``ephemeral_public(32) || nonce(12) || AES-256-GCM(wrap_key, content_key)``
  with ``wrap_key = HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral_public ||
  recipient_public, info = "fairfl sealed content key v1")``: 92 bytes for a 32-byte key.

All primitives come from ``cryptography``; only their composition (an ECIES-style sealed box,
which that library does not offer as one call) is written here.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fl_agent.errors import FairFLError

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
#: Length of a sealed 32-byte content key.
SEALED_KEY_BYTES = KEY_BYTES + NONCE_BYTES + KEY_BYTES + TAG_BYTES
_INFO = b"fairfl sealed content key v1"


class SealingError(FairFLError, ValueError):
    """Ciphertext or key material is malformed, or was not made for this key."""


def new_content_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt_content(plaintext: bytes, content_key: bytes, aad: bytes | None = None) -> bytes:
    """``nonce || AES-256-GCM(plaintext)``; ``aad`` is authenticated, not stored."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(content_key).encrypt(nonce, plaintext, aad)


def decrypt_content(ciphertext: bytes, content_key: bytes, aad: bytes | None = None) -> bytes:
    if len(ciphertext) < NONCE_BYTES + TAG_BYTES:
        raise SealingError(f"ciphertext too short ({len(ciphertext)} bytes)")
    try:
        return AESGCM(content_key).decrypt(ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:],
                                           aad)
    except Exception as err:
        raise SealingError(
            "content does not decrypt with this key (wrong key or tampered)"
        ) from err


def plaintext_hash(plaintext: bytes) -> bytes:
    """The 32-byte commitment a listing publishes, so a buyer can check what it decrypted."""
    return hashlib.sha256(plaintext).digest()


def public_bytes(private: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``private``'s public key."""
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def new_buyer_key() -> tuple[X25519PrivateKey, bytes]:
    """A random key pair; the 32 raw public-key bytes go into ``buy(..., buyerKey)``. (The
    app and ``fl-agent market`` derive theirs from the wallet instead, see wallet_keys.)"""
    private = X25519PrivateKey.generate()
    return private, public_bytes(private)


def check_public_key(public: bytes) -> None:
    """Raises :class:`SealingError` unless ``public`` is a usable X25519 public key (32
    bytes, not a small-order point that would make every shared secret zero)."""
    if len(public) != KEY_BYTES:
        raise SealingError(f"an X25519 public key is 32 bytes, got {len(public)}")
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as err:
        raise SealingError(f"0x{public.hex()} is not a usable X25519 public key (a "
                           "small-order point)") from err


def _derive(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=_INFO
    ).derive(shared)


def seal_key(content_key: bytes, recipient_public: bytes) -> bytes:
    """``ephemeral_public(32) || nonce(12) || AES-GCM(content_key)`` for ``recipient_public``."""
    check_public_key(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = public_bytes(ephemeral)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    wrap_key = _derive(shared, ephemeral_public, recipient_public)
    return ephemeral_public + encrypt_content(content_key, wrap_key)


def open_sealed_key(sealed: bytes, private: X25519PrivateKey) -> bytes:
    """The content key sealed to ``private``'s public key; :class:`SealingError` if it was
    sealed to another key, tampered with or malformed."""
    if len(sealed) < KEY_BYTES + NONCE_BYTES + TAG_BYTES:
        raise SealingError(f"sealed key too short ({len(sealed)} bytes)")
    ephemeral_public, box = sealed[:KEY_BYTES], sealed[KEY_BYTES:]
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError as err:
        raise SealingError("sealed key carries an unusable ephemeral key") from err
    return decrypt_content(box, _derive(shared, ephemeral_public, public_bytes(private)))
