"""Encrypting models for sale and delivering their keys to buyers.

A listed model is encrypted once with a random 256-bit content key (AES-256-GCM). A buyer
publishes an X25519 public key when buying; the seller seals the content key to it with an
ephemeral X25519 key agreement, HKDF-SHA256 and AES-256-GCM, and publishes the sealed key on
chain (``deliverKey``). Only the buyer's private key opens it.

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

_NONCE = 12
_INFO = b"fairfl sealed content key v1"


class SealingError(FairFLError, ValueError):
    """Ciphertext or key material is malformed, or was not made for this key."""


def new_content_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt_content(plaintext: bytes, content_key: bytes) -> bytes:
    """``nonce || AES-256-GCM(plaintext)``."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(content_key).encrypt(nonce, plaintext, None)


def decrypt_content(ciphertext: bytes, content_key: bytes) -> bytes:
    try:
        return AESGCM(content_key).decrypt(ciphertext[:_NONCE], ciphertext[_NONCE:], None)
    except Exception as err:
        raise SealingError(
            "content does not decrypt with this key (wrong key or tampered)"
        ) from err


def plaintext_hash(plaintext: bytes) -> bytes:
    """The 32-byte commitment a listing publishes, so a buyer can check what it decrypted."""
    return hashlib.sha256(plaintext).digest()


def new_buyer_key() -> tuple[X25519PrivateKey, bytes]:
    """A buyer key pair; the 32 raw public-key bytes go into ``buy(..., buyerKey)``."""
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, public


def _derive(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=_INFO
    ).derive(shared)


def seal_key(content_key: bytes, buyer_public: bytes) -> bytes:
    """``ephemeral_public(32) || nonce(12) || AES-GCM(content_key)`` for ``buyer_public``."""
    if len(buyer_public) != 32:
        raise SealingError(f"buyer key must be 32 bytes of X25519, got {len(buyer_public)}")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(buyer_public))
    wrap_key = _derive(shared, ephemeral_public, buyer_public)
    return ephemeral_public + encrypt_content(content_key, wrap_key)


def open_sealed_key(sealed: bytes, buyer_private: X25519PrivateKey) -> bytes:
    if len(sealed) < 32 + _NONCE + 16:
        raise SealingError(f"sealed key too short ({len(sealed)} bytes)")
    ephemeral_public, box = sealed[:32], sealed[32:]
    buyer_public = buyer_private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    shared = buyer_private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    return decrypt_content(box, _derive(shared, ephemeral_public, buyer_public))
