"""Listing a finished task's model for sale: encrypt, store, list, keep the key.

The model's plaintext never goes to IPFS: it is encrypted with a fresh content key
(:mod:`fl_agent.market.sealing`), the ciphertext and a public metadata document are stored,
and ``listTaskModel`` records their CIDs with the plaintext's hash; the contract splits the
revenue among the task's contributors by what they earned. The content key stays with the
seller, in ``keys_dir``, to be sealed to each buyer's key on ``deliverKey``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fl_agent.chain.client import FairFL
from fl_agent.chain.records import TxReceipt
from fl_agent.market.sealing import encrypt_content, new_content_key, plaintext_hash
from fl_agent.storage.store import ContentStore

#: Prices are whole multiples of the marketplace's PRICE_UNIT (10_000 wei).
PRICE_UNIT = 10_000


@dataclass(frozen=True)
class ListedModel:
    model_id: int
    encrypted_cid: str
    metadata_cid: str
    key_file: Path
    receipt: TxReceipt


def list_task_model(fairfl: FairFL, store: ContentStore, task_id: int, model: bytes,
                    metadata: dict[str, Any], price: int, *, seller: Any,
                    keys_dir: Path) -> ListedModel:
    """Encrypts ``model`` (safetensors bytes), stores it and lists it for ``price`` wei."""
    key = new_content_key()
    encrypted_cid = store.add(encrypt_content(model, key))
    metadata_cid = store.add(json.dumps({"format": "fairfl-listing/1", "task": task_id,
                                         **metadata}, sort_keys=True).encode())
    price -= price % PRICE_UNIT
    model_id, receipt = fairfl.marketplace.list_task_model(
        task_id, encrypted_cid, metadata_cid, plaintext_hash(model), price, sender=seller)
    keys_dir.mkdir(parents=True, exist_ok=True)
    key_file = keys_dir / f"model-{model_id}-{fairfl.marketplace.address.lower()}.key"
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    return ListedModel(model_id, encrypted_cid, metadata_cid, key_file, receipt)
