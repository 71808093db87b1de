"""Content stores: where weights and documents live, addressed by their IPFS CID.

Two backends behind one protocol, :class:`ContentStore`:

* :class:`LocalStore` — the embedded default, a directory. Content is written once under its
  CID (atomically, so several agents on one machine can share the directory) and every read
  recomputes the CID of what it read: a mismatch raises :class:`CidMismatchError`, never
  returns silent data.
* :class:`KuboStore` — a real IPFS node through Kubo's documented RPC API
  (``/api/v0/add?cid-version=1``, ``/api/v0/cat``, ``/api/v0/pin/add``, ``/api/v0/version``),
  over ``httpx`` with an injectable transport. The ``ipfshttpclient`` package cannot be used:
  its last release refuses every Kubo from 0.8 on. Reads are verified the same way.

Both compute CIDs with :mod:`fl_agent.storage.cid`, identical to ``ipfs add --cid-version 1``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx

from fl_agent.errors import StorageError
from fl_agent.storage.cid import cid_from_str, compute_cid

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


def _check_cid(cid: str) -> str:
    try:
        cid_from_str(cid)
    except ValueError as err:
        raise InvalidCidError(str(err)) from err
    return cid


def _verified(cid: str, data: bytes, where: str) -> bytes:
    actual = compute_cid(data)
    if actual != cid:
        raise CidMismatchError(f"content for {cid} from {where} hashes to {actual}; refusing it")
    return data


class LocalStore:
    """A directory of content named by CID, shared safely between local processes."""

    def __init__(self, directory: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.directory)!r})"

    def _path(self, cid: str) -> Path:
        # Two-character fan-out, as Kubo's flatfs does, keeps directories small.
        return self.directory / cid[-3:-1] / cid

    def add(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise ContentTooLargeError(
                f"{len(data):,} bytes exceed the store limit of {self.max_bytes:,}"
            )
        cid = compute_cid(data)
        path = self._path(cid)
        if path.exists():
            return cid
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)  # atomic: readers see all of it or nothing
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return cid

    def get(self, cid: str) -> bytes:
        path = self._path(_check_cid(cid))
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ContentNotFoundError(f"{cid} is not in {self.directory}") from None
        if size > self.max_bytes:
            raise ContentTooLargeError(
                f"{cid} holds {size:,} bytes, over the limit of {self.max_bytes:,}"
            )
        return _verified(cid, path.read_bytes(), str(self.directory))

    def has(self, cid: str) -> bool:
        return self._path(_check_cid(cid)).exists()


class KuboStore:
    """A Kubo (go-ipfs) node reached through its RPC API."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:5001",
        *,
        timeout: float = 60.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        pin: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Kubo RPC URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.max_bytes = max_bytes
        self.pin = pin
        self._client = httpx.Client(
            base_url=f"{self.url}/api/v0", timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def _post(self, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._client.post(path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as err:
            raise StorageError(
                f"cannot reach the IPFS node at {self.url}: {err}. Is Kubo "
                "running (`ipfs daemon`) and is its RPC API on that address?"
            ) from err
        if response.status_code != 200:
            try:
                message = response.json().get("Message", response.text)
            except ValueError:
                message = response.text
            if "not found" in message.lower() or "no link named" in message.lower():
                raise ContentNotFoundError(message)
            raise StorageError(
                f"IPFS node at {self.url} answered {response.status_code}: {message}"
            )
        return response

    def version(self) -> str:
        return str(self._post("/version").json()["Version"])

    def add(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise ContentTooLargeError(
                f"{len(data):,} bytes exceed the limit of {self.max_bytes:,}"
            )
        response = self._post(
            "/add",
            params={"cid-version": "1", "pin": str(self.pin).lower()},
            files={"file": ("blob", data, "application/octet-stream")},
        )
        cid = str(response.json()["Hash"])
        expected = compute_cid(data)
        if cid != expected:
            raise CidMismatchError(
                f"the IPFS node stored the content as {cid}, expected "
                f"{expected}; is it configured with non-default chunking?"
            )
        return cid

    def get(self, cid: str) -> bytes:
        _check_cid(cid)
        data = bytearray()
        try:
            with self._client.stream("POST", "/cat", params={"arg": cid}) as response:
                if response.status_code != 200:
                    response.read()
                    message = response.text
                    if "not found" in message.lower():
                        raise ContentNotFoundError(f"{cid}: {message}")
                    raise StorageError(f"IPFS node answered {response.status_code}: {message}")
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise ContentTooLargeError(f"{cid} is larger than {self.max_bytes:,} bytes")
        except httpx.HTTPError as err:
            raise StorageError(f"cannot reach the IPFS node at {self.url}: {err}") from err
        return _verified(cid, bytes(data), self.url)

    def has(self, cid: str) -> bool:
        _check_cid(cid)
        try:
            self._post("/block/stat", params={"arg": cid, "offline": "true"})
            return True
        except ContentNotFoundError:
            return False

    def pin_add(self, cid: str) -> None:
        self._post("/pin/add", params={"arg": _check_cid(cid)})

    def close(self) -> None:
        self._client.close()


def open_store(
    ipfs: str | None, local_dir: Path | str, max_bytes: int = DEFAULT_MAX_BYTES
) -> ContentStore:
    """A Kubo store when ``ipfs`` is an RPC URL, else the embedded store in ``local_dir``."""
    if ipfs:
        return KuboStore(ipfs, max_bytes=max_bytes)
    return LocalStore(local_dir, max_bytes=max_bytes)
