"""A real IPFS node through Kubo's documented RPC API, over ``httpx``.

Endpoints: ``/api/v0/add?cid-version=1``, ``/api/v0/cat``, ``/api/v0/pin/add``,
``/api/v0/block/stat``, ``/api/v0/version``. The ``ipfshttpclient`` package cannot be used:
its last release refuses every Kubo from 0.8 on. The transport is injectable, so tests can
script the node with ``httpx.MockTransport``.

Faults, and what each one does:

* The node does not answer — a refused connection, a timeout, a dropped connection, or a 5xx
  without Kubo's error body (a proxy in front of a node that is down, or a crash) — is
  retried with exponential backoff: 4 attempts by default, 0.5 s, 1 s and 2 s apart. Then
  :class:`NodeUnavailableError` says which node did not answer and what to check. Every call
  is safe to repeat: content is addressed by its hash, so adding it twice stores it once.
* The node answers with an error — HTTP 4xx, or Kubo's JSON error body (Kubo reports every
  failed command, "not found" included, as a 500 with ``{"Message", "Type": "error"}``) —
  is not retried: asking again would get the same answer.
* The node returns bytes that do not hash to the CID asked for: fetched once more, since
  a transfer can be corrupted on the way; if the second copy is wrong too,
  :class:`CidMismatchError` names the CID and the node.

The retry loop is written by hand: ``httpx.HTTPTransport(retries=n)`` only retries failed
connects, at once and without backoff, and would be bypassed by an injected transport; no
retry library is among our dependencies, and the loop is a dozen lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, NoReturn

import httpx

from fl_agent.errors import StorageError
from fl_agent.storage.base import (
    DEFAULT_MAX_BYTES,
    CidMismatchError,
    ContentNotFoundError,
    ContentTooLargeError,
    NodeUnavailableError,
    check_cid,
)
from fl_agent.storage.cid import compute_cid

#: Failures after which the node may well answer a new attempt.
_NO_ANSWER = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
#: The largest answer read from the node other than content (JSON records, error pages).
_SMALL_ANSWER = 1024 * 1024


class _NoAnswer(Exception):
    """One attempt got no answer from the node; the next attempt may."""


class KuboStore:
    """A Kubo (go-ipfs) node reached through its RPC API."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:5001",
        *,
        timeout: float = 60.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        pin: bool = True,
        attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Kubo RPC URL must start with http:// or https://, got {url!r}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        if backoff < 0:
            raise ValueError(f"backoff must not be negative, got {backoff}")
        self.url = url.rstrip("/")
        self.max_bytes = max_bytes
        self.pin = pin
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=f"{self.url}/api/v0", timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def version(self) -> str:
        return str(self._json("/version")["Version"])

    def add(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise ContentTooLargeError(
                f"{len(data):,} bytes exceed the limit of {self.max_bytes:,}"
            )
        answer = self._json(
            "/add",
            params={"cid-version": "1", "pin": str(self.pin).lower()},
            files={"file": ("blob", data, "application/octet-stream")},
        )
        cid = str(answer["Hash"])
        expected = compute_cid(data)
        if cid != expected:
            raise CidMismatchError(
                f"the IPFS node at {self.url} stored the content as {cid}, expected "
                f"{expected}; is it configured with non-default chunking?"
            )
        return cid

    def get(self, cid: str) -> bytes:
        check_cid(cid)
        for _ in range(2):  # one refetch: a transfer can be corrupted on the way
            data = self._call("/cat", self.max_bytes, params={"arg": cid})
            actual = compute_cid(data)
            if actual == cid:
                return data
        raise CidMismatchError(
            f"the IPFS node at {self.url} returned content for {cid} that hashes to "
            f"{actual}, twice; refusing it. The node's copy is likely damaged: run "
            f"`ipfs repo verify` there, or fetch {cid} from another node."
        )

    def has(self, cid: str) -> bool:
        check_cid(cid)
        try:
            self._call("/block/stat", _SMALL_ANSWER, params={"arg": cid, "offline": "true"})
            return True
        except ContentNotFoundError:
            return False

    def pin_add(self, cid: str) -> None:
        self._call("/pin/add", _SMALL_ANSWER, params={"arg": check_cid(cid)})

    def close(self) -> None:
        self._client.close()

    def _json(self, path: str, **request: Any) -> dict[str, Any]:
        body = self._call(path, _SMALL_ANSWER, **request)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise StorageError(
                f"{self.url} answered {path} with something that is not Kubo's JSON: "
                f"{body[:200]!r}. Is that address Kubo's RPC API (port 5001 by default)?"
            )
        return answer

    def _call(self, path: str, limit: int, **request: Any) -> bytes:
        """The body of a successful ``path`` call, retried while the node does not answer."""
        failure = _NoAnswer("no attempt made")
        for attempt in range(self.attempts):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return self._call_once(path, limit, request)
            except _NoAnswer as err:
                failure = err
        raise NodeUnavailableError(
            f"the IPFS node at {self.url} did not answer {path} after {self.attempts} "
            f"attempts (last: {failure}). Is Kubo running (`ipfs daemon`), is its RPC API "
            "on that address, and can this machine reach it?"
        ) from failure.__cause__ or failure

    def _call_once(self, path: str, limit: int, request: dict[str, Any]) -> bytes:
        try:
            with self._client.stream("POST", path, **request) as response:
                if response.status_code == 200:
                    return self._read(response, limit, request.get("params", {}).get("arg", path))
                status, body = response.status_code, self._read(response, _SMALL_ANSWER, path)
        except _NO_ANSWER as err:
            raise _NoAnswer(f"{type(err).__name__}: {err}") from err
        except httpx.HTTPError as err:  # an invalid URL or request: trying again cannot help
            raise StorageError(f"cannot talk to the IPFS node at {self.url}: {err}") from err
        self._refuse(path, status, body, request.get("params", {}).get("arg"))

    def _read(self, response: httpx.Response, limit: int, what: str) -> bytes:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > limit:
                raise ContentTooLargeError(
                    f"{what} from {self.url} is larger than the limit of {limit:,} bytes"
                )
        return bytes(data)

    def _refuse(self, path: str, status: int, body: bytes, arg: str | None) -> NoReturn:
        """Raises what a non-200 answer means: retry (no answer) or a reported error."""
        message = _kubo_error(body)
        if message is None and status >= 500:
            raise _NoAnswer(f"HTTP {status}")
        if message is not None:
            if "not found" in message.lower() or "no link named" in message.lower():
                raise ContentNotFoundError(f"{arg or path}: {message}")
            raise StorageError(f"the IPFS node at {self.url} refused {path}: {message}")
        text = body.decode(errors="replace").strip()[:200]
        raise StorageError(
            f"the IPFS node at {self.url} answered {path} with HTTP {status}: {text}. Is "
            "that address Kubo's RPC API (port 5001 by default, not the gateway)?"
        )


def _kubo_error(body: bytes) -> str | None:
    """The message of Kubo's error body ``{"Message", "Code", "Type": "error"}``, if it is one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("Type") == "error" and "Message" in answer:
        return str(answer["Message"])
    return None
