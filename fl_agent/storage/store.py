"""Content stores: where weights and documents live, addressed by their IPFS CID.

Two backends behind one protocol, :class:`ContentStore` (in :mod:`~fl_agent.storage.base`):

* :class:`LocalStore` (:mod:`~fl_agent.storage.local`) — the embedded default, a directory.
  Content is written once under its CID, atomically and flushed to disk, so several agents
  on one machine can share the directory and a full or read-only disk leaves nothing
  partial behind. Every read recomputes the CID of what it read: a mismatch raises
  :class:`CidMismatchError`, never returns silent data.
* :class:`KuboStore` (:mod:`~fl_agent.storage.kubo`) — a real IPFS node through Kubo's
  documented RPC API over ``httpx``, with an injectable transport. A node that does not
  answer is retried with backoff, then reported as :class:`NodeUnavailableError`; content
  that does not match its CID is fetched once more, then refused.

Both compute CIDs with :mod:`fl_agent.storage.cid`, identical to ``ipfs add --cid-version 1``.
This module is the one to import from.
"""

from __future__ import annotations

from pathlib import Path

from fl_agent.errors import StorageError
from fl_agent.storage.base import (
    DEFAULT_MAX_BYTES,
    CidMismatchError,
    ContentNotFoundError,
    ContentStore,
    ContentTooLargeError,
    InvalidCidError,
    NodeUnavailableError,
)
from fl_agent.storage.kubo import KuboStore
from fl_agent.storage.local import LocalStore

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CidMismatchError",
    "ContentNotFoundError",
    "ContentStore",
    "ContentTooLargeError",
    "InvalidCidError",
    "KuboStore",
    "LocalStore",
    "NodeUnavailableError",
    "StorageError",
    "open_store",
]


def open_store(
    ipfs: str | None, local_dir: Path | str, max_bytes: int = DEFAULT_MAX_BYTES
) -> ContentStore:
    """A Kubo store when ``ipfs`` is an RPC URL, else the embedded store in ``local_dir``."""
    if ipfs:
        return KuboStore(ipfs, max_bytes=max_bytes)
    return LocalStore(local_dir, max_bytes=max_bytes)
