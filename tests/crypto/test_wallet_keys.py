"""Wallet-derived X25519 keys (spec section 1): the message texts and the derivation."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from eth_account import Account
from eth_account.messages import encode_defunct

from fl_agent.crypto.wallet_keys import (
    buyer_key_message,
    derive_key,
    key_from_signature,
    member_key_message,
    public_bytes,
)

LEDGER = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
MARKETPLACE = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
#: Test account 0 ("test test ... junk") signing member_key_message(31337, LEDGER).
SIGNATURE = bytes.fromhex(
    "173f081b39e788792f4f520c9d37328423b4b2f2f3dca299b5b80e6fc0934d4c"
    "1f4140698515d1d0ae0ad88926468cd12e57ed21623305e3662969e92f3f133b1b")
#: What app/wallet/src/crypto.js (@noble's HKDF and X25519) derives from SIGNATURE under node.
PUBLIC_KEY = bytes.fromhex("fd2aa4f48e9465fbb774b59301172b054925a16ddb39531258a818f08e5c587c")


def _private_bytes(key) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def test_member_message_text():
    assert member_key_message(31337, LEDGER) == (
        "FairFL: read the models you train\n"
        "\n"
        "Signing this message creates the key that reads the models of the FairFL tasks you "
        "take part in on the ledger 0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512 on chain 31337. "
        "It sends no transaction and costs nothing.\n"
        "\n"
        "Sign it only in a FairFL app or agent: whoever holds this signature can read those "
        "models.\n"
        "\n"
        "Chain ID: 31337\n"
        "Ledger: 0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")


def test_buyer_message_text():
    text = buyer_key_message(1, MARKETPLACE, 7)
    assert text == (
        "FairFL: unlock a model you buy\n"
        "\n"
        "Signing this message creates the key that decrypts model 7 of the FairFL marketplace "
        "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0 on chain 1. It sends no transaction and "
        "costs nothing.\n"
        "\n"
        "Sign it only in a FairFL app: whoever holds this signature can read this model.\n"
        "\n"
        "Chain ID: 1\n"
        "Marketplace: 0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0\n"
        "Model: 7")
    assert not text.endswith("\n")
    assert buyer_key_message(1, MARKETPLACE.upper().replace("0X", "0x"), 7) == text


@pytest.mark.parametrize("call", [
    lambda: buyer_key_message(0, MARKETPLACE, 1),
    lambda: buyer_key_message(31337, MARKETPLACE, -1),
    lambda: buyer_key_message(31337, MARKETPLACE, True),
    lambda: buyer_key_message(31337, "0x1234", 1),
    lambda: member_key_message("31337", LEDGER),
    lambda: member_key_message(31337, "not an address"),
])
def test_bad_message_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_known_answer():
    message = member_key_message(31337, LEDGER)
    assert Account.recover_message(encode_defunct(text=message), signature=SIGNATURE) == (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")  # account 0 of "test test ... junk"
    key = key_from_signature(SIGNATURE, message)
    # HKDF-SHA256 (RFC 5869) spelled out with the standard library, as a second opinion.
    prk = hmac.new(b"fairfl/wallet-key/v1", SIGNATURE[:64], hashlib.sha256).digest()
    okm = hmac.new(prk, message.encode() + b"\x01", hashlib.sha256).digest()
    assert _private_bytes(key) == okm
    assert public_bytes(key) == PUBLIC_KEY


def test_v_is_ignored():
    message = member_key_message(31337, LEDGER)
    low_v = SIGNATURE[:64] + bytes([SIGNATURE[64] - 27])
    assert SIGNATURE[64] in (27, 28)
    assert public_bytes(key_from_signature(low_v, message)) == PUBLIC_KEY
    assert public_bytes(key_from_signature(bytearray(SIGNATURE), message)) == PUBLIC_KEY


def test_the_message_is_part_of_the_key():
    other = member_key_message(31338, LEDGER)
    assert public_bytes(key_from_signature(SIGNATURE, other)) != PUBLIC_KEY


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_bad_signature_length_raises(length):
    with pytest.raises(ValueError, match="65 bytes"):
        key_from_signature(b"\x01" * length, "message")


def test_signature_must_be_bytes():
    with pytest.raises(ValueError, match="bytes"):
        key_from_signature(SIGNATURE.hex(), "message")  # type: ignore[arg-type]


def test_ape_account_derives_the_same_key_twice():
    from ape import accounts

    buyer = accounts.test_accounts[7]
    message = buyer_key_message(31337, MARKETPLACE, 1)
    first, second = derive_key(buyer, message), derive_key(buyer, message)
    assert public_bytes(first) == public_bytes(second)
    assert _private_bytes(first) == _private_bytes(second)
    assert public_bytes(derive_key(accounts.test_accounts[6], message)) != public_bytes(first)


def test_ape_account_matches_the_signature_path():
    from ape import accounts

    message = member_key_message(31337, LEDGER)
    assert public_bytes(derive_key(accounts.test_accounts[0], message)) == PUBLIC_KEY


def test_sign_in_with_ethereum_messages_round_trip():
    """siwe parses what it prepares (abnf 2.9 broke that for siwe 4.4: constraints pin 2.7)."""
    from siwe import SiweMessage, generate_nonce

    message = SiweMessage(domain="localhost:8501", address="0xf39Fd6e51aad88F6F4ce6aB8827279"
                          "cffFb92266", uri="http://localhost:8501", version="1", chain_id=31337,
                          nonce=generate_nonce(), issued_at="2026-12-01T00:00:00Z",
                          statement="Sign in to the FairFL marketplace.")
    again = SiweMessage.from_message(message.prepare_message())
    assert (again.address, again.chain_id, again.nonce) == (message.address, 31337,
                                                           message.nonce)


def test_a_signature_whose_s_has_a_leading_zero_still_splits_into_v_r_s():
    """One ECDSA signature in 128 has r or s below 2**248; ape then hands out 31 bytes. The
    permit path once lost that byte (found by benchmarks/market.py)."""
    from eth_account.messages import encode_defunct

    from fl_agent.chain.node import dev_account
    from fl_agent.market.payment import split_signature

    account = dev_account(3)
    signature = account.sign_message(encode_defunct(text="m347"))  # s has a leading zero
    assert len(bytes(signature.s)) == 31
    v, r, s = split_signature(signature.encode_rsv())
    assert (len(r), len(s), v) == (32, 32, int(signature.v))
    assert int.from_bytes(s, "big") == int.from_bytes(bytes(signature.s), "big")


def test_the_high_s_twin_of_a_signature_derives_the_same_key():
    """(r, s) and (r, n - s) both sign the message (ECDSA malleability, EIP-2); a wallet that
    returns the high form must not lose the buyer its key."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from fl_agent.chain.node import dev_account
    from fl_agent.crypto.wallet_keys import SECP256K1_N, key_from_signature, public_bytes

    message = "FairFL: unlock a model you buy\n\ntest"
    signature = dev_account(2).sign_message(encode_defunct(text=message)).encode_rsv()
    s = int.from_bytes(signature[32:64], "big")
    assert s <= SECP256K1_N // 2  # eth-account signs low-s
    twin = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    # The twin is a valid signature of the same message by the same account...
    assert Account.recover_message(encode_defunct(text=message), signature=twin) == \
        dev_account(2).address
    # ...and derives the same key.
    assert public_bytes(key_from_signature(twin, message)) == \
        public_bytes(key_from_signature(signature, message))
