"""X25519 keys derived from a wallet's signature, so that nobody has to keep a key file.

A buyer (or a task member) signs a fixed, human-readable message with EIP-191
``personal_sign``; ECDSA signatures of eth-account, ethers, viem and MetaMask are
deterministic (RFC 6979, low s), so the same account derives the same X25519 key pair on any
device, and the browser (``app/wallet/src/crypto.js``) derives the same pair as this module.
The derivation (section 1 of the marketplace protocol, issue 8)::

    ikm     = r || low_s(s)               (v is dropped: wallets encode it as 0/1 or 27/28;
                                           s is taken in its low form, EIP-2)
    private = HKDF-SHA256(ikm, salt=b"fairfl/wallet-key/v1", info=message as UTF-8, L=32)
    public  = X25519(private, basepoint)

HKDF and X25519 are ``cryptography``'s, signing is the ape account's and checksumming is
eth_utils'. Written here by hand are only the message texts and the composition above, which
no library offers because they are this protocol's own.

Whoever holds the signature holds the key: the messages say so, and the signature itself is
never stored or sent anywhere by this module.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

from fl_agent.crypto.sealing import public_bytes
from fl_agent.errors import ConfigError

__all__ = ["buyer_key_message", "derive_key", "key_from_signature", "member_key_message",
           "public_bytes"]

#: HKDF salt of the derivation; a new version of the scheme gets a new salt.
SALT = b"fairfl/wallet-key/v1"
SIGNATURE_BYTES = 65

_BUYER_KEY_MESSAGE = (
    "FairFL: unlock a model you buy\n"
    "\n"
    "Signing this message creates the key that decrypts model {model_id} of the FairFL "
    "marketplace {marketplace} on chain {chain_id}. It sends no transaction and costs nothing.\n"
    "\n"
    "Sign it only in a FairFL app: whoever holds this signature can read this model.\n"
    "\n"
    "Chain ID: {chain_id}\n"
    "Marketplace: {marketplace}\n"
    "Model: {model_id}"
)

_MEMBER_KEY_MESSAGE = (
    "FairFL: read the models you train\n"
    "\n"
    "Signing this message creates the key that reads the models of the FairFL tasks you take "
    "part in on the ledger {ledger} on chain {chain_id}. It sends no transaction and costs "
    "nothing.\n"
    "\n"
    "Sign it only in a FairFL app or agent: whoever holds this signature can read those models.\n"
    "\n"
    "Chain ID: {chain_id}\n"
    "Ledger: {ledger}"
)


def _whole_number(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _checksummed(name: str, address: str) -> str:
    try:
        return to_checksum_address(address)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a 20-byte hex address, got {address!r}") from err


def buyer_key_message(chain_id: int, marketplace: str, model_id: int) -> str:
    """The text a buyer signs to derive the key that decrypts ``model_id``."""
    return _BUYER_KEY_MESSAGE.format(
        chain_id=_whole_number("chain_id", chain_id, 1),
        marketplace=_checksummed("marketplace", marketplace),
        model_id=_whole_number("model_id", model_id, 0),
    )


def member_key_message(chain_id: int, ledger: str) -> str:
    """The text a task member (or creator) signs to derive its key for the ledger's tasks."""
    return _MEMBER_KEY_MESSAGE.format(
        chain_id=_whole_number("chain_id", chain_id, 1),
        ledger=_checksummed("ledger", ledger),
    )


def key_from_signature(signature: bytes, message: str) -> X25519PrivateKey:
    """The X25519 private key derived from a 65-byte ``r || s || v`` signature of ``message``.

    ``v`` is ignored, so a signature with ``v`` in {0, 1} gives the same key as the same
    signature with ``v`` in {27, 28}. Any other length raises :class:`ValueError`
    (a :class:`~fl_agent.errors.ConfigError`).
    """
    if not isinstance(signature, bytes | bytearray | memoryview):
        raise ConfigError(f"signature must be bytes, got {type(signature).__name__}")
    signature = bytes(signature)
    if len(signature) != SIGNATURE_BYTES:
        raise ConfigError(
            f"signature must be {SIGNATURE_BYTES} bytes (r || s || v of an EIP-191 "
            f"personal_sign), got {len(signature)}; a smart-contract wallet's signature "
            "cannot derive a key"
        )
    if not isinstance(message, str) or not message:
        raise ConfigError("message must be the non-empty text that was signed")
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT,
                info=message.encode("utf-8")).derive(low_s(signature[:64]))
    return X25519PrivateKey.from_private_bytes(seed)


#: The order of secp256k1's group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def low_s(r_s: bytes) -> bytes:
    """``r || s`` with ``s`` in the lower half of the group (EIP-2). ``(r, s)`` and
    ``(r, n - s)`` are both valid signatures of the same message: a wallet that hands out the
    high form must still derive the same key."""
    s = int.from_bytes(r_s[32:64], "big")
    if s > SECP256K1_N // 2:
        s = SECP256K1_N - s
    return r_s[:32] + s.to_bytes(32, "big")


def derive_key(account: Any, message: str) -> X25519PrivateKey:
    """Signs ``message`` with the ape ``account`` and derives its X25519 key from that.

    What an agent does with its own account; the browser does the same with the user's
    wallet and gets the same key.
    """
    signature = account.sign_message(encode_defunct(text=message))
    if signature is None:
        raise ConfigError(f"account {account} refused to sign the key message")
    return key_from_signature(signature.encode_rsv(), message)
