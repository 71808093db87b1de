"""X25519 keys derived from a wallet's signature (provisional; the wallet branch replaces it).

See docs/marketplace.md: ``HKDF-SHA256(r || s, salt="fairfl/wallet-key/v1", info=message)``.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import to_checksum_address

from fl_agent.crypto.sealing import public_bytes

SALT = b"fairfl/wallet-key/v1"


def buyer_key_message(chain_id: int, marketplace: str, model_id: int) -> str:
    marketplace = to_checksum_address(marketplace)
    return (
        "FairFL: unlock a model you buy\n\n"
        f"Signing this message creates the key that decrypts model {model_id} of the FairFL "
        f"marketplace {marketplace} on chain {chain_id}. It sends no transaction and costs "
        "nothing.\n\n"
        "Sign it only in a FairFL app: whoever holds this signature can read this model.\n\n"
        f"Chain ID: {chain_id}\nMarketplace: {marketplace}\nModel: {model_id}")


def member_key_message(chain_id: int, ledger: str) -> str:
    ledger = to_checksum_address(ledger)
    return (
        "FairFL: read the models you train\n\n"
        "Signing this message creates the key that reads the models of the FairFL tasks you "
        f"take part in on the ledger {ledger} on chain {chain_id}. It sends no transaction "
        "and costs nothing.\n\n"
        "Sign it only in a FairFL app or agent: whoever holds this signature can read those "
        "models.\n\n"
        f"Chain ID: {chain_id}\nLedger: {ledger}")


def key_from_signature(signature: bytes, message: str) -> X25519PrivateKey:
    if len(signature) != 65:
        raise ValueError(f"an EIP-191 signature is 65 bytes, got {len(signature)}")
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT,
                info=message.encode()).derive(signature[:64])
    return X25519PrivateKey.from_private_bytes(seed)


def derive_key(account: Any, message: str) -> X25519PrivateKey:
    from eth_account.messages import encode_defunct

    sig = account.sign_message(encode_defunct(text=message))
    return key_from_signature(bytes(sig.r) + bytes(sig.s) + bytes([int(sig.v)]), message)


__all__ = ["buyer_key_message", "derive_key", "key_from_signature", "member_key_message",
           "public_bytes"]
