"""The browser's crypto (app/wallet's bundle, run under node) against Python's.

Same bytes both ways: the key derived from a wallet signature (spec 1), a content key sealed
by ``seal_key`` and content encrypted by ``encrypt_content`` (spec 2), and the safetensors
check against a listing's ``tensors`` (spec 3) on what ``encode_weights`` produces.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from fl_agent.crypto.sealing import (
    encrypt_content,
    new_buyer_key,
    new_content_key,
    seal_key,
)
from fl_agent.crypto.wallet_keys import (
    SECP256K1_N,
    buyer_key_message,
    key_from_signature,
    member_key_message,
    public_bytes,
)
from fl_agent.learning.models import ModelSpec, init_params, param_layout
from fl_agent.learning.weights import encode_weights

MARKETPLACE = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
LEDGER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(32,))
CNN = ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10, hidden=(4,))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tensors_of(spec: ModelSpec) -> list[dict[str, Any]]:
    """A listing's ``tensors`` for weights of ``spec`` (spec 3)."""
    return [{"name": s.name, "dtype": "F32", "shape": list(s.shape)} for s in param_layout(spec)]


def weights_of(spec: ModelSpec, seed: int = 0) -> bytes:
    return encode_weights(spec, init_params(spec, seed=seed))


@pytest.fixture(scope="module")
def signer():
    from ape import accounts

    return accounts.test_accounts[7]


def _signature(account, message: str) -> bytes:
    from eth_account.messages import encode_defunct

    return account.sign_message(encode_defunct(text=message)).encode_rsv()


def test_js_derives_the_same_key(run_js):
    from ape import accounts

    cases, expected = [], []
    for index in range(4):
        for message in (buyer_key_message(31337, MARKETPLACE, index),
                        member_key_message(1, LEDGER)):
            signature = _signature(accounts.test_accounts[index], message)
            low_v = signature[:64] + bytes([signature[64] - 27])
            high_s = signature[:32] + (SECP256K1_N - int.from_bytes(signature[32:64], "big")
                                       ).to_bytes(32, "big") + bytes([55 - signature[64]])
            for sig in (signature, low_v, high_s):
                cases.append({"op": "derive", "signature": sig.hex(), "message": message})
                expected.append(public_bytes(key_from_signature(signature, message)).hex())
    assert [r["publicKey"] for r in run_js(cases)] == expected


def test_js_refuses_a_signature_that_is_not_65_bytes(run_js):
    [result] = run_js([{"op": "derive", "signature": "ab" * 64, "message": "m"}])
    assert result["error"]["kind"] == "rpc"
    assert "65" in result["error"]["message"]


def test_js_opens_what_python_sealed(run_js, signer):
    message = buyer_key_message(31337, MARKETPLACE, 3)
    signature = _signature(signer, message)
    buyer_public = public_bytes(key_from_signature(signature, message))
    content_key = new_content_key()
    weights = weights_of(MLP)
    ciphertext = encrypt_content(weights, content_key)
    sealed = seal_key(content_key, buyer_public)
    common = {"signature": signature.hex(), "message": message, "sealedKey": sealed.hex()}

    opened, decrypted, model = run_js([
        {"op": "open_sealed_key", **common},
        {"op": "decrypt_content", "ciphertext": _b64(ciphertext), "contentKey": content_key.hex()},
        {"op": "open_model", **common, "ciphertext": _b64(ciphertext),
         "plaintextSha256": hashlib.sha256(weights).hexdigest(), "tensors": tensors_of(MLP)},
    ])
    assert opened == {"contentKey": content_key.hex()}
    assert base64.b64decode(decrypted["plaintext"]) == weights
    assert base64.b64decode(model["plaintext"]) == weights
    assert model["sha256"] == hashlib.sha256(weights).hexdigest()


def test_js_refuses_tampered_or_foreign_material(run_js, signer):
    message = buyer_key_message(31337, MARKETPLACE, 4)
    signature = _signature(signer, message)
    buyer_public = public_bytes(key_from_signature(signature, message))
    content_key = new_content_key()
    weights = weights_of(MLP, seed=1)
    ciphertext = encrypt_content(weights, content_key)
    tampered = bytearray(ciphertext)
    tampered[40] ^= 0x01
    sealed = seal_key(content_key, buyer_public)
    bad_seal = bytearray(sealed)
    bad_seal[50] ^= 0x80
    _, someone_else = new_buyer_key()
    listing = {"plaintextSha256": hashlib.sha256(weights).hexdigest(), "tensors": tensors_of(MLP)}

    def model_case(sealed_key: bytes, data: bytes, **override: Any) -> dict[str, Any]:
        return {"op": "open_model", "signature": signature.hex(), "message": message,
                "sealedKey": sealed_key.hex(), "ciphertext": _b64(data), **listing, **override}

    results = run_js([
        model_case(sealed, bytes(tampered)),
        model_case(seal_key(content_key, someone_else), ciphertext),
        model_case(bytes(bad_seal), ciphertext),
        model_case(sealed, ciphertext, message=buyer_key_message(31337, MARKETPLACE, 5)),
        model_case(sealed, ciphertext, plaintextSha256="00" * 32),
        {"op": "decrypt_content", "ciphertext": _b64(ciphertext),
         "contentKey": new_content_key().hex()},
    ])
    kinds = [r.get("error", {}).get("kind") for r in results]
    assert kinds == ["wrong_key", "wrong_key", "wrong_key", "wrong_key", "hash_mismatch",
                     "wrong_key"]
    assert all("plaintext" not in r for r in results)


def _check(run_js, files: list[tuple[bytes, list[dict[str, Any]]]]) -> list[str | None]:
    results = run_js([{"op": "check_weights", "bytes": _b64(data), "tensors": tensors}
                      for data, tensors in files])
    return [r.get("error", {}).get("kind") if "error" in r else None for r in results]


def test_safetensors_check_accepts_encoded_weights(run_js):
    assert _check(run_js, [(weights_of(MLP), tensors_of(MLP)),
                           (weights_of(CNN), tensors_of(CNN))]) == [None, None]


def test_safetensors_check_rejects_what_the_listing_does_not_describe(run_js):
    good = weights_of(MLP)
    vectors = {s.name: np.zeros(s.shape, dtype=np.float32) for s in param_layout(MLP)}
    first = param_layout(MLP)[0].name
    wrong_shape = dict(vectors, **{first: np.zeros((16, 128), dtype=np.float32)})
    extra = dict(vectors, extra=np.zeros((2,), dtype=np.float32))
    wrong_dtype = dict(vectors, **{first: vectors[first].astype(np.float64)})
    missing = {k: v for k, v in vectors.items() if k != first}
    listed_shape = [dict(t) for t in tensors_of(MLP)]
    listed_shape[0]["shape"] = list(reversed(listed_shape[0]["shape"]))

    kinds = _check(run_js, [
        (save(wrong_shape), tensors_of(MLP)),
        (save(extra), tensors_of(MLP)),
        (save(wrong_dtype), tensors_of(MLP)),
        (save(missing), tensors_of(MLP)),
        (good[:-4], tensors_of(MLP)),            # truncated: the last tensor is short
        (good[:100], tensors_of(MLP)),           # truncated inside the header
        (good + b"\x00" * 4, tensors_of(MLP)),   # trailing bytes: offsets do not tile
        (good, listed_shape),                    # the listing says another shape
        (good, tensors_of(CNN)),                 # another model's listing
        (b"not safetensors", tensors_of(MLP)),
    ])
    assert kinds == ["bad_weights"] * 10
