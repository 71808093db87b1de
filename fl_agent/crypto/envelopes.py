"""A task's models are readable by its members only; updates only by the aggregator.

Weights in IPFS are public, so who may read them is decided by cryptography:

* **Task models.** The aggregator keeps a random AES-256 *task key* per key epoch and
  encrypts every global model it produces under the current one::

      b"FFLM" || version(1) || epoch(u32 BE) || nonce(12) || AES-256-GCM(task_key, model,
                                                    aad = header(9) || task_id(u64 BE))

  The task's initial model (random weights, nothing learned from anyone's data) stays
  plain, so :func:`model_epoch` returns None for it.
* **Updates** are sealed to the aggregator's X25519 key with a fresh content key::

      b"FFLU" || version(1) || sealed_content_key(92) || nonce(12) || AES-256-GCM(content_key,
          update, aad = header(5) || task_id(u64 BE) || round(u64 BE) || participant(20))

  The authenticated data names the sender and the round, so nobody can resubmit another's
  sealed update (or an old one of its own) as a fresh one: it fails to open.
* **The keyring** (:class:`Keyring`, a JSON document in IPFS named by each round's
  workload) seals the epoch's task key to every member in good standing, to the task's
  creator (who lists the model) and to the aggregator itself, and carries the earlier
  epochs' keys encrypted under the current one, so that a member can read every earlier
  model. When a member is blacklisted the aggregator starts a new epoch without it.

Written by hand because it is FairFL's own protocol; every primitive is ``cryptography``'s
(through :mod:`fl_agent.crypto.sealing`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fl_agent.crypto.sealing import (
    KEY_BYTES,
    SEALED_KEY_BYTES,
    SealingError,
    decrypt_content,
    encrypt_content,
    new_content_key,
    open_sealed_key,
    seal_key,
)
from fl_agent.documents import parse_json

MODEL_MAGIC = b"FFLM"
UPDATE_MAGIC = b"FFLU"
VERSION = 1
KEYRING_FORMAT = "fairfl-keyring/1"
_MODEL_HEADER = struct.Struct(">4sBI")  # magic, version, epoch
_UPDATE_HEADER = struct.Struct(">4sB")  # magic, version
_HISTORY_AAD = b"FFLK"


class NotAReaderError(SealingError):
    """This member was not given the task key a model is encrypted under (it was not among
    the readers of the round, see :func:`fl_agent.agents.access.readers`)."""


def _address_bytes(address: str) -> bytes:
    text = address[2:] if address.lower().startswith("0x") else address
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise SealingError(f"{address!r} is not a 20-byte address")
    return raw


# ---------------------------------------------------------------------------------------------
# Task models
# ---------------------------------------------------------------------------------------------


def encrypt_model(model: bytes, task_key: bytes, epoch: int, task_id: int) -> bytes:
    """``model`` (safetensors bytes) encrypted under the task key of ``epoch``."""
    header = _MODEL_HEADER.pack(MODEL_MAGIC, VERSION, epoch)
    return header + encrypt_content(model, task_key, header + struct.pack(">Q", task_id))


def model_epoch(blob: bytes) -> int | None:
    """The key epoch a task model is encrypted under, or None for a plain model."""
    if not blob.startswith(MODEL_MAGIC):
        return None
    if len(blob) < _MODEL_HEADER.size:
        raise SealingError("truncated task-model header")
    _, version, epoch = _MODEL_HEADER.unpack_from(blob)
    if version != VERSION:
        raise SealingError(f"task-model envelope version {version} is not supported")
    return int(epoch)


def decrypt_model(blob: bytes, keys: dict[int, bytes], task_id: int) -> bytes:
    """The plaintext of a task model; ``keys`` maps epochs to task keys. A plain model is
    returned as it is."""
    epoch = model_epoch(blob)
    if epoch is None:
        return blob
    if epoch not in keys:
        raise NotAReaderError(f"the model is encrypted under key epoch {epoch} of task "
                           f"{task_id}, which this member was not given")
    header = blob[:_MODEL_HEADER.size]
    return decrypt_content(blob[_MODEL_HEADER.size:], keys[epoch],
                           header + struct.pack(">Q", task_id))


# ---------------------------------------------------------------------------------------------
# Updates
# ---------------------------------------------------------------------------------------------


def _update_aad(task_id: int, round_number: int, participant: str) -> bytes:
    return (_UPDATE_HEADER.pack(UPDATE_MAGIC, VERSION) + struct.pack(">QQ", task_id, round_number)
            + _address_bytes(participant))


def seal_update(update: bytes, aggregator_public: bytes, task_id: int, round_number: int,
                participant: str) -> bytes:
    """``update`` (safetensors bytes) readable only by the aggregator, bound to its sender
    and round."""
    content_key = new_content_key()
    return (_UPDATE_HEADER.pack(UPDATE_MAGIC, VERSION) + seal_key(content_key, aggregator_public)
            + encrypt_content(update, content_key,
                              _update_aad(task_id, round_number, participant)))


def open_update(blob: bytes, aggregator_private: X25519PrivateKey, task_id: int,
                round_number: int, participant: str) -> bytes:
    """The plaintext of a sealed update; :class:`SealingError` when it is not sealed to this
    aggregator, was made for another sender or round, or was tampered with."""
    if not blob.startswith(UPDATE_MAGIC):
        raise SealingError("the update is not sealed to the aggregator (plain weights are "
                           "refused: updates stay private to the aggregator)")
    start = _UPDATE_HEADER.size
    if len(blob) < start + SEALED_KEY_BYTES:
        raise SealingError("truncated sealed update")
    _, version = _UPDATE_HEADER.unpack_from(blob)
    if version != VERSION:
        raise SealingError(f"sealed-update version {version} is not supported")
    content_key = open_sealed_key(blob[start:start + SEALED_KEY_BYTES], aggregator_private)
    try:
        return decrypt_content(blob[start + SEALED_KEY_BYTES:], content_key,
                               _update_aad(task_id, round_number, participant))
    except SealingError:
        raise SealingError(f"the update does not open as {participant}'s update for task "
                           f"{task_id} round {round_number} (copied from another sender or "
                           "round, or tampered with)") from None


# ---------------------------------------------------------------------------------------------
# The keyring
# ---------------------------------------------------------------------------------------------


def _history_aad(task_id: int, old_epoch: int, epoch: int) -> bytes:
    return _HISTORY_AAD + struct.pack(">QII", task_id, old_epoch, epoch)


@dataclass(frozen=True)
class Keyring:
    """Who holds the task key of one epoch. ``recipients`` maps lower-case addresses to the
    key sealed to them; ``history`` maps earlier epochs to their keys encrypted under this
    epoch's key."""

    task_id: int
    epoch: int
    aggregator_key: bytes
    recipients: dict[str, bytes] = field(default_factory=dict)
    history: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def seal(cls, task_id: int, epoch: int, keys: dict[int, bytes],
             members: dict[str, bytes], aggregator_public: bytes) -> Keyring:
        """The keyring of ``epoch`` for ``members`` (address -> X25519 public key), with
        every earlier epoch of ``keys`` (epoch -> task key) in its history."""
        if epoch not in keys:
            raise SealingError(f"no task key for epoch {epoch}")
        current = keys[epoch]
        recipients = {address.lower(): seal_key(current, public)
                      for address, public in sorted(members.items())}
        history = {old: encrypt_content(key, current, _history_aad(task_id, old, epoch))
                   for old, key in sorted(keys.items()) if old != epoch}
        return cls(task_id, epoch, aggregator_public, recipients, history)

    def holders(self) -> frozenset[str]:
        return frozenset(self.recipients)

    def open(self, address: str, private: X25519PrivateKey) -> dict[int, bytes]:
        """Every task key (epoch -> key) that ``address`` can read with ``private``."""
        sealed = self.recipients.get(address.lower())
        if sealed is None:
            raise NotAReaderError(f"{address} holds no key of task {self.task_id} epoch "
                               f"{self.epoch} (not a member in good standing when the round "
                               "opened, or no member key published)")
        current = open_sealed_key(sealed, private)
        if len(current) != KEY_BYTES:
            raise SealingError("the sealed task key has the wrong length")
        keys = {self.epoch: current}
        for old, boxed in self.history.items():
            keys[old] = decrypt_content(boxed, current, _history_aad(self.task_id, old,
                                                                     self.epoch))
        return keys

    def to_json(self) -> bytes:
        return json.dumps({
            "format": KEYRING_FORMAT, "task": self.task_id, "epoch": self.epoch,
            "aggregator_key": self.aggregator_key.hex(),
            "recipients": {a: s.hex() for a, s in sorted(self.recipients.items())},
            "history": {str(e): b.hex() for e, b in sorted(self.history.items())},
        }, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Keyring:
        try:
            doc: dict[str, Any] = parse_json(data)
            if doc.get("format") != KEYRING_FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {KEYRING_FORMAT!r}")
            ring = cls(int(doc["task"]), int(doc["epoch"]), bytes.fromhex(doc["aggregator_key"]),
                       {str(a).lower(): bytes.fromhex(s) for a, s in doc["recipients"].items()},
                       {int(e): bytes.fromhex(b) for e, b in doc["history"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise SealingError(f"not a FairFL keyring: {err}") from err
        if len(ring.aggregator_key) != KEY_BYTES or ring.epoch < 1 or \
                any(len(s) != SEALED_KEY_BYTES for s in ring.recipients.values()) or \
                any(not 1 <= e < ring.epoch for e in ring.history):
            raise SealingError("malformed keyring: key sizes or epochs out of range")
        return ring

