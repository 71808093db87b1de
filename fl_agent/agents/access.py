"""Wiring the task keys (:mod:`fl_agent.crypto.envelopes`) to the chain and the store.

* Every account's **member key** is an X25519 key derived from its signature over
  :func:`~fl_agent.crypto.wallet_keys.member_key_message` (the same in the browser and
  here), so an agent restarted anywhere holds the same key without a key file. A
  participant publishes the public half in its registry metadata document.
* The aggregator's :class:`TaskKeyHolder` keeps the task keys. Before each round it seals
  the current epoch's key to the round's readers (the keyring, stored in IPFS and named by
  the round's workload); whenever a holder is left out, a new epoch starts. Its keys are
  not kept on disk: after a restart it reopens its own entry of the last keyring.

Who reads (:func:`readers`): joining a task is open, so holding the key must be earned. A
member in good standing that published a member key and joined before the first round
opened gets it for its first :data:`TRIAL_ROUNDS` rounds (it needs the model to train its
first update), and after that only once it has had an update accepted. A member that
joins once training has begun is never given a key: whoever holds the key reads the
current global model, and a late joiner would get round ``N - 1``'s model, nearly the one
that is sold, for the price of a ``join``. Training is closed to newcomers once it
starts. The task's creator (who lists the model) and the aggregator always read. A new
model is encrypted for the readers of the round that made it, less the members whose
update that round rejected; the task's *final* model only for members with an accepted
update (and the creator and aggregator): a member that never contributed, or was rejected
in the last round (and maybe blacklisted by it), cannot read what is sold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fl_agent.crypto.envelopes import Keyring
from fl_agent.crypto.sealing import check_public_key, new_content_key, public_bytes
from fl_agent.crypto.wallet_keys import derive_key, member_key_message
from fl_agent.documents import parse_json
from fl_agent.errors import FairFLError, StorageError
from fl_agent.storage.store import ContentStore, NodeUnavailableError

PARTICIPANT_FORMAT = "fairfl-participant/2"
#: Rounds a member may hold the task key without an accepted update.
TRIAL_ROUNDS = 2


@dataclass(frozen=True)
class Member:
    """What the chain says about one member in good standing, for :func:`readers`."""

    address: str
    public: bytes | None  # its published member key
    accepted_rounds: int  # rounds whose update was accepted
    rounds_held: int  # rounds that opened since it joined (each one a chance to contribute)
    late: bool = False  # joined after the task's first round opened


def readers(members: list[Member], *, excluded: frozenset[str] = frozenset(),
            contributors_only: bool = False) -> dict[str, bytes]:
    """Address -> public key of the members who may read the next model (see the module
    docstring). ``excluded``: lower-case addresses left out whatever their record."""
    chosen = {}
    for m in members:
        if m.public is None or m.address.lower() in excluded:
            continue
        trial = m.accepted_rounds == 0 and m.rounds_held < TRIAL_ROUNDS and not m.late
        if m.accepted_rounds > 0 or (trial and not contributors_only):
            chosen[m.address.lower()] = m.public
    return chosen


def newest_readable_round(round_number: int, address: str,
                          keyring_of: Callable[[int], str | None],
                          holders_of: Callable[[str], frozenset[str]]) -> int | None:
    """The newest round, counting down from ``round_number``, whose global model ``address``
    was given the key to: one without a keyring (its model is not encrypted) or whose
    keyring (``keyring_of(round)``, a CID; ``holders_of(cid)``, the lower-case addresses it
    names) names it; None if there is none. A member left out of a round's keyring trains on
    that round's model, and the aggregator measures its update from the same one: both find
    it on the chain and in the store, so a member that missed a round it was named in, or
    restarted, trains on what the aggregator expects."""
    address = address.lower()
    for number in range(round_number, 0, -1):
        cid = keyring_of(number)
        if cid is None or address in holders_of(cid):
            return number
    return None


def holders_of(get: Callable[[str], bytes], cid: str,
               cache: dict[str, frozenset[str]]) -> frozenset[str]:
    """The lower-case addresses the keyring ``cid`` names (``get`` reads the store), read
    once into ``cache``: a keyring's content is fixed by its CID."""
    if cid not in cache:
        cache[cid] = Keyring.from_json(get(cid)).holders()
    return cache[cid]


def member_key(fairfl: Any, account: Any) -> X25519PrivateKey:
    """``account``'s member key on this deployment (it signs the member-key message)."""
    from ape import chain

    return derive_key(account, member_key_message(int(chain.chain_id), fairfl.ledger.address))


def participant_metadata(public: bytes) -> bytes:
    """The registry metadata document that publishes a member key."""
    return json.dumps({"format": PARTICIPANT_FORMAT, "agent": "fl-agent",
                       "x25519": public.hex()}, sort_keys=True, separators=(",", ":")).encode()


class KeyOutOfReach(Exception):  # noqa: N818 - a verdict for this round, not a failure
    """A member's metadata document that the store cannot get while it serves a document it
    is known to hold: that member is keyless for now, and asked again next time."""


def published_key(store: ContentStore, metadata_cid: str, probe_cid: str) -> bytes | None:
    """The member key a registry metadata document publishes, or None (no key, or a document
    that is missing, refused or malformed: that member cannot be given the task key).

    When the store does not answer for the document, it is asked for ``probe_cid``, a
    document it must hold (the task's): if that fails too, the store is down, not the
    member's doing, and the error goes up for the caller to try again later; if it answers,
    the member's document alone is out of reach (:class:`KeyOutOfReach`), and the caller
    treats the member as keyless this time without remembering it. So neither a store that
    is down nor one member who publishes a CID nobody provides can stop a task."""
    if not metadata_cid:
        return None
    try:
        raw = store.get(metadata_cid)
    except NodeUnavailableError:
        store.get(probe_cid)  # raises if the store itself is down
        raise KeyOutOfReach(metadata_cid) from None
    except StorageError:
        return None  # missing, refused, too large, damaged: the member's document
    try:
        doc = parse_json(raw)
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



def latest_keyring(fairfl: Any, store: ContentStore, task_id: int) -> str | None:
    """The CID of the task's newest keyring: the one named by the last round's workload, or
    the one its finalization started (named by the round's evidence), whichever came last.
    Every keyring carries the earlier epochs, so it opens every model its holders may read."""
    from fl_agent.agents.evidence import RoundEvidence
    from fl_agent.chain.records import RoundResult
    from fl_agent.learning.workload import Workload

    ledger = fairfl.ledger
    started = ledger.events("RoundStarted", taskId=task_id)
    finalized = ledger.events("RoundFinalized", taskId=task_id)
    candidates: list[tuple[int, str | None]] = []
    if started:
        log = started[-1]
        candidates.append((int(log.block_number),
                           Workload.from_json(store.get(str(log.workloadCid))).keyring))
    if finalized:
        log = finalized[-1]
        evidence = RoundResult.from_chain(log.result).evidence_cid
        candidates.append((int(log.block_number),
                           RoundEvidence.from_json(store.get(evidence)).keyring))
    candidates = [c for c in candidates if c[1]]
    return max(candidates)[1] if candidates else None
