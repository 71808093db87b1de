"""Sealed content keys: only the buyer's key opens them, and tampering is detected."""

from __future__ import annotations

import pytest

from fl_agent.crypto.sealing import (
    SEALED_KEY_BYTES,
    SealingError,
    check_public_key,
    decrypt_content,
    encrypt_content,
    new_buyer_key,
    new_content_key,
    open_sealed_key,
    plaintext_hash,
    public_bytes,
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


def test_a_sealed_content_key_is_92_bytes():
    _, public = new_buyer_key()
    assert len(seal_key(new_content_key(), public)) == SEALED_KEY_BYTES == 92


# Small-order points of Curve25519 (RFC 7748 section 6.1 rejects their all-zero secrets):
# zero, one, and the order-8 point (little-endian u = 325606250916557431795983626356110631294
# 008115727848805560023387167927233504).
SMALL_ORDER = [bytes(32), (1).to_bytes(32, "little"),
               bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_a_small_order_buyer_key_is_refused_with_a_clear_error(point):
    with pytest.raises(SealingError, match="not a usable X25519 public key"):
        check_public_key(point)
    with pytest.raises(SealingError):
        seal_key(new_content_key(), point)


def test_authenticated_data_binds_the_ciphertext_to_its_context():
    key = new_content_key()
    boxed = encrypt_content(b"update", key, aad=b"task 1 round 2")
    assert decrypt_content(boxed, key, aad=b"task 1 round 2") == b"update"
    with pytest.raises(SealingError):
        decrypt_content(boxed, key, aad=b"task 1 round 3")
    with pytest.raises(SealingError):
        decrypt_content(boxed, key)


def test_public_bytes_is_the_raw_public_key():
    private, public = new_buyer_key()
    assert public_bytes(private) == public
