"""Wiring the task keys (:mod:`fl_agent.crypto.envelopes`) to the chain and the store.

* Every account's **member key** is an X25519 key derived from its signature over
  :func:`~fl_agent.crypto.wallet_keys.member_key_message` (the same in the browser and
  here), so an agent restarted anywhere holds the same key without a key file. A
  participant publishes the public half in its registry metadata document.
* The aggregator's :class:`TaskKeyHolder` keeps the task keys. Before each round it seals
  the current epoch's key to every member in good standing that published a key, to the
  task's creator and to itself (the keyring, stored in IPFS and named by the round's
  workload); a member that left good standing (blacklisted) starts a new epoch. Its keys
  are not kept on disk: after a restart it reopens its own entry of the last keyring.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fl_agent.crypto.envelopes import Keyring
from fl_agent.crypto.sealing import SealingError, check_public_key, new_content_key, public_bytes
from fl_agent.crypto.wallet_keys import derive_key, member_key_message
from fl_agent.errors import FairFLError
from fl_agent.storage.store import ContentStore

PARTICIPANT_FORMAT = "fairfl-participant/2"


def member_key(fairfl: Any, account: Any) -> X25519PrivateKey:
    """``account``'s member key on this deployment (it signs the member-key message)."""
    from ape import chain

    return derive_key(account, member_key_message(int(chain.chain_id), fairfl.ledger.address))


def participant_metadata(public: bytes) -> bytes:
    """The registry metadata document that publishes a member key."""
    return json.dumps({"format": PARTICIPANT_FORMAT, "agent": "fl-agent",
                       "x25519": public.hex()}, sort_keys=True, separators=(",", ":")).encode()


def published_key(store: ContentStore, metadata_cid: str) -> bytes | None:
    """The member key a registry metadata document publishes, or None (no key, unreadable
    or malformed document: that member cannot be given the task key)."""
    if not metadata_cid:
        return None
    try:
        doc = json.loads(store.get(metadata_cid))
        public = bytes.fromhex(str(doc["x25519"]))
        check_public_key(public)
        return public
    except (FairFLError, ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class TaskKeyHolder:
    """The aggregator's task keys for one task (see the module docstring)."""

    task_id: int
    address: str
    private: X25519PrivateKey
    store: ContentStore
    log: Callable[[str], None] = field(default=lambda message: None)
    keys: dict[int, bytes] = field(default_factory=dict)
    holders: dict[str, bytes] = field(default_factory=dict)
    keyring_cid: str | None = None

    @property
    def public(self) -> bytes:
        return public_bytes(self.private)

    @property
    def epoch(self) -> int:
        return max(self.keys, default=0)

    def recover(self, keyring_cid: str | None) -> None:
        """Reopens the keys from the last round's keyring (after a restart)."""
        if keyring_cid is None or self.keys:
            return
        ring = Keyring.from_json(self.store.get(keyring_cid))
        self.keys = ring.open(self.address, self.private)
        self.holders = {address: b"" for address in ring.holders()}
        self.keyring_cid = keyring_cid

    def keyring_for(self, members: dict[str, bytes]) -> tuple[str, int]:
        """The keyring CID and epoch for a round whose readers are ``members`` (address ->
        public key; the aggregator adds itself). A holder missing from ``members`` has left
        good standing, so a new epoch starts without it; new members are added to the
        current epoch."""
        readers = {a.lower(): k for a, k in members.items()}
        readers[self.address.lower()] = self.public
        dropped = set(self.holders) - set(readers)
        if not self.keys or dropped:
            self.keys[self.epoch + 1] = new_content_key()
            if dropped:
                self.log(f"task {self.task_id}: new key epoch {self.epoch} without "
                         f"{', '.join(sorted(dropped))}")
        elif self.keyring_cid is not None and all(
                self.holders.get(a) in (k, b"") for a, k in readers.items()) \
                and set(readers) == set(self.holders):
            return self.keyring_cid, self.epoch
        ring = Keyring.seal(self.task_id, self.epoch, self.keys, readers, self.public)
        self.keyring_cid = self.store.add(ring.to_json())
        self.holders = readers
        return self.keyring_cid, self.epoch

    def current_key(self) -> tuple[int, bytes]:
        if not self.keys:
            raise SealingError(f"task {self.task_id} has no task key yet")
        return self.epoch, self.keys[self.epoch]
