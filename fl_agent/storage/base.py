"""What every content store shares: the :class:`ContentStore` protocol, its errors, the size
limit and the CID check done before any I/O."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fl_agent.errors import StorageError
from fl_agent.storage.cid import cid_from_str

#: Refuse content larger than this unless told otherwise (weights of the models FairFL
#: trains are well under a megabyte; 256 MiB leaves room for real networks).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class ContentNotFoundError(StorageError, FileNotFoundError):
    """No content under this CID."""


class CidMismatchError(StorageError):
    """The bytes read do not hash to the CID they were asked for."""


class ContentTooLargeError(StorageError):
    """The content exceeds the store's size limit."""


class InvalidCidError(StorageError, ValueError):
    """The string is not a CIDv1 this store can verify."""


class NodeUnavailableError(StorageError, ConnectionError):
    """The IPFS node did not answer, even after retrying.

    A :class:`ConnectionError` too, so callers that wait and try again later when a node is
    down (``fl-agent``'s service loop does) recognise it."""


@runtime_checkable
class ContentStore(Protocol):
    """What agents need from IPFS."""

    def add(self, data: bytes) -> str:
        """Stores ``data`` and returns its CID."""
        ...

    def get(self, cid: str) -> bytes:
        """Returns the bytes under ``cid``, verified against it."""
        ...

    def has(self, cid: str) -> bool: ...


def check_cid(cid: str) -> str:
    """``cid`` itself, or :class:`InvalidCidError` when it is not a CIDv1 we can verify."""
    try:
        cid_from_str(cid)
    except ValueError as err:
        raise InvalidCidError(str(err)) from err
    return cid
