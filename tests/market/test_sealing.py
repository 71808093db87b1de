"""Sealed content keys: only the buyer's key opens them, and tampering is detected."""

from __future__ import annotations

import pytest

from fl_agent.market.sealing import (
    SealingError,
    decrypt_content,
    encrypt_content,
    new_buyer_key,
    new_content_key,
    open_sealed_key,
    plaintext_hash,
    seal_key,
)


def test_buyer_recovers_the_model():
    model = b"weights" * 1000
    key = new_content_key()
    sealed_model = encrypt_content(model, key)
    private, public = new_buyer_key()
    recovered = decrypt_content(sealed_model, open_sealed_key(seal_key(key, public), private))
    assert recovered == model
    assert plaintext_hash(recovered) == plaintext_hash(model)
    assert len(public) == 32


def test_another_buyer_cannot_open_the_key():
    key = new_content_key()
    _, public = new_buyer_key()
    other_private, _ = new_buyer_key()
    with pytest.raises(SealingError):
        open_sealed_key(seal_key(key, public), other_private)


def test_tampered_content_is_detected():
    key = new_content_key()
    sealed = bytearray(encrypt_content(b"model", key))
    sealed[-1] ^= 1
    with pytest.raises(SealingError):
        decrypt_content(bytes(sealed), key)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_buyer_key_must_be_32_bytes(length):
    with pytest.raises(SealingError):
        seal_key(new_content_key(), b"\x01" * length)


def test_short_sealed_key_is_rejected():
    private, _ = new_buyer_key()
    with pytest.raises(SealingError):
        open_sealed_key(b"\x00" * 10, private)
