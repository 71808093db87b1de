"""Listing a finished task's model for sale: decrypt as the creator, re-encrypt, list.

The task's final model is encrypted under the task key (members only). The creator, who
lists it, reads it with its member key (:func:`fl_agent.agents.participant.read_task_model`),
encrypts it again under a fresh content key (:mod:`fl_agent.crypto.sealing`), stores the
ciphertext and a public metadata document (:class:`ListingMetadata`: task, model spec and
tensor layout, metric and validation accuracy, rounds, contributors, license) and calls
``listTaskModel`` with their CIDs and the plaintext's SHA-256. The contract shares the
revenue among the task's contributors by what they earned. The content key stays with the
seller (``keys_dir/<encrypted CID>.key``, mode 600) for its key agent to seal to each buyer.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fl_agent.agents.access import member_key
from fl_agent.agents.evidence import RoundEvidence
from fl_agent.agents.participant import load_task_document, read_task_model_bytes
from fl_agent.chain.client import FairFL
from fl_agent.chain.records import RoundResult, TaskStatus, TxReceipt
from fl_agent.crypto.sealing import encrypt_content, new_content_key, plaintext_hash
from fl_agent.documents import Document, parse_json
from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec
from fl_agent.storage.store import ContentStore

FORMAT = "fairfl-listing/2"
DEFAULT_LICENSE = ("For the buyer's own use; no redistribution of the weights. The "
                   "contributors keep their rights (see the task's ledger record).")


class TensorLayout(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: str
    shape: tuple[int, ...]


class ListingMetadata(Document):
    """The public description of a listed model (``metadataCid``)."""

    KIND = "FairFL listing document"

    format: str = Field(FORMAT, pattern=r"^fairfl-listing/2$")
    task: int
    title: str
    dataset: str
    model: ModelSpec
    tensors: tuple[TensorLayout, ...]
    metric: str
    #: The task metric on the aggregator's validation split, after the last round.
    accuracy: float | None
    rounds: int
    contributors: int
    license: str
    plaintext_sha256: str
    ciphertext_bytes: int



def tensor_layout(safetensors: bytes) -> tuple[TensorLayout, ...]:
    """The tensors a safetensors file declares, in header order (names, dtypes, shapes)."""
    (length,) = struct.unpack_from("<Q", safetensors)
    header = parse_json(safetensors[8:8 + length])
    return tuple(TensorLayout(name=name, dtype=entry["dtype"], shape=tuple(entry["shape"]))
                 for name, entry in header.items() if name != "__metadata__")


@dataclass(frozen=True)
class ListedModel:
    model_id: int
    encrypted_cid: str
    metadata_cid: str
    key_file: Path
    metadata: ListingMetadata
    receipt: TxReceipt


def key_file(keys_dir: Path, encrypted_cid: str) -> Path:
    """Where the seller keeps the content key of the listing whose ciphertext is
    ``encrypted_cid``."""
    return Path(keys_dir) / f"{encrypted_cid}.key"


def last_validation(fairfl: FairFL, store: ContentStore, task_id: int) -> float | None:
    """The task metric of the final model on the aggregator's validation split, from the
    last round's evidence document (None if it cannot be read)."""
    finalized = fairfl.ledger.events("RoundFinalized", taskId=task_id)
    if not finalized:
        return None
    cid = RoundResult.from_chain(finalized[-1].result).evidence_cid
    try:
        return RoundEvidence.from_json(store.get(cid)).validation
    except Exception:  # noqa: BLE001 - a figure for the description, not a reason to fail
        return None


def list_task_model(fairfl: FairFL, store: ContentStore, task_id: int, price: int, *,
                    seller: Any, keys_dir: Path, title: str | None = None,
                    license_text: str = DEFAULT_LICENSE) -> ListedModel:
    """Lists task ``task_id``'s final model for ``price`` base units of the payment token."""
    task = fairfl.ledger.task(task_id)
    if task.status != TaskStatus.COMPLETED:
        raise ConfigError(f"task {task_id} is at round {task.current_round} of {task.rounds}; "
                          "a model can be listed once its task has completed")
    document = load_task_document(store, task.spec_cid)
    model = read_task_model_bytes(fairfl, store, task_id, str(seller.address),
                                  member_key(fairfl, seller), document)
    key = new_content_key()
    ciphertext = encrypt_content(model, key)
    encrypted_cid = store.add(ciphertext)
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = key_file(keys_dir, encrypted_cid)
    # Created readable by the seller only from the first byte (no window with the umask's mode).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    spec = document.model
    metadata = ListingMetadata(
        task=task_id, title=title or f"{document.data.name} {spec.name}, {task.rounds} rounds",
        dataset=document.data.name, model=spec, tensors=tensor_layout(model),
        metric=task.metric, accuracy=last_validation(fairfl, store, task_id),
        rounds=task.rounds, contributors=len(fairfl.ledger.contributions(task_id)),
        license=license_text, plaintext_sha256=plaintext_hash(model).hex(),
        ciphertext_bytes=len(ciphertext))
    metadata_cid = store.add(metadata.to_json())
    model_id, receipt = fairfl.marketplace.list_task_model(
        task_id, encrypted_cid, metadata_cid, plaintext_hash(model), price, sender=seller)
    return ListedModel(model_id, encrypted_cid, metadata_cid, path, metadata, receipt)
