"""Storage faults: damaged files, full or read-only disks, IPFS nodes that stop answering or
return other bytes. Each must be detected, retried where that can help, and reported with
what to do; none may return wrong data or lose stored content.

Kubo faults are scripted with ``httpx.MockTransport``: the real client code runs against a
node whose answers the test chooses. Sleeps are recorded, never slept.
"""

from __future__ import annotations

import errno
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fl_agent.storage.cid import CHUNK_SIZE, PARALLEL_CHUNKS, compute_cid
from fl_agent.storage.store import (
    CidMismatchError,
    ContentNotFoundError,
    KuboStore,
    LocalStore,
    NodeUnavailableError,
    StorageError,
)

WEIGHTS = random.Random(3).randbytes(CHUNK_SIZE + 100)  # two leaves and a root
WEIGHTS_CID = compute_cid(WEIGHTS)
# Large content is written while its CID is computed, by another code path.
LARGE = random.Random(4).randbytes(PARALLEL_CHUNKS * CHUNK_SIZE + 5)
SIZES = {"small": b"weights that do not fit", "large": LARGE}
NODE = "http://ipfs.test:5001"


@pytest.fixture
def local(tmp_path):
    return LocalStore(tmp_path / "store")


def leftovers(store: LocalStore) -> list[Path]:
    return list(store.directory.rglob(".tmp-*"))


# --- LocalStore: files damaged on disk ------------------------------------------------------


def flip_one_bit(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01
    return bytes(damaged)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "one bit flipped": flip_one_bit,
    "truncated": lambda data: data[: len(data) // 2],
    "emptied": lambda data: b"",
    "extended": lambda data: data + b"\0",
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_file_is_refused_and_the_error_says_what_to_do(local, damage):
    cid = local.add(WEIGHTS)
    path = local._path(cid)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CidMismatchError) as caught:
        local.get(cid)
    message = str(caught.value)
    assert str(path) in message and cid in message
    assert "changed or truncated on disk" in message
    assert "Add the original content again" in message and "another IPFS node" in message


def test_adding_the_content_again_repairs_a_damaged_file(local):
    cid = local.add(WEIGHTS)
    local._path(cid).write_bytes(flip_one_bit(WEIGHTS))
    assert local.add(WEIGHTS) == cid
    assert local.get(cid) == WEIGHTS
    assert not leftovers(local)


def test_a_missing_file_is_reported_as_not_found(local):
    cid = local.add(WEIGHTS)
    local._path(cid).unlink()
    assert not local.has(cid)
    with pytest.raises(ContentNotFoundError, match="fetch it from an IPFS node"):
        local.get(cid)


def test_an_unreadable_file_is_reported_with_its_path(local, monkeypatch):
    cid = local.add(WEIGHTS)
    path = local._path(cid)
    real_open = Path.open

    def open_with_a_bad_sector(self, *args, **kwargs):
        if self == path:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_with_a_bad_sector)
    with pytest.raises(StorageError, match="cannot read .*Input/output error") as caught:
        local.get(cid)
    assert str(path) in str(caught.value)


# --- LocalStore: full or read-only disk -----------------------------------------------------
# We cannot fill the real disk in a test, so the OS error is raised by a patched step of the
# write; every step that can fail is covered. A real ENOSPC comes from /dev/full below.


def fail_with(code: int) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


WRITE_STEPS = {
    "mkdir": (Path, "mkdir"),
    "mkstemp": (tempfile, "mkstemp"),
    "fsync": (os, "fsync"),
    "replace": (os, "replace"),
}
ADVICE = {
    errno.ENOSPC: "is full (or over quota): free space there",
    errno.EDQUOT: "is full (or over quota): free space there",
    errno.EROFS: "is read-only for this process: make it writable",
    errno.EACCES: "is read-only for this process: make it writable",
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("code", ADVICE, ids=[errno.errorcode[c] for c in ADVICE])
@pytest.mark.parametrize("step", WRITE_STEPS, ids=WRITE_STEPS)
def test_a_failed_write_says_why_and_leaves_nothing_behind(local, monkeypatch, step, code,
                                                           size):
    kept = local.add(b"stored before the fault")
    new = SIZES[size]
    new_cid = compute_cid(new)
    owner, name = WRITE_STEPS[step]
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, fail_with(code))
        with pytest.raises(StorageError) as caught:
            local.add(new)
    message = str(caught.value)
    assert caught.value.errno == code
    assert f"cannot store {new_cid}" in message and str(local.directory) in message
    assert ADVICE[code] in message and "Nothing partial was left" in message
    assert not local._path(new_cid).exists() and not local.has(new_cid)
    assert not leftovers(local)
    assert local.get(kept) == b"stored before the fault"
    assert local.get(local.add(new)) == new  # once the fault is gone, the store works


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs the Linux /dev/full device")
def test_a_real_full_disk_error_leaves_nothing_behind(local, monkeypatch):
    """The kernel's own ENOSPC: the temporary file's writes go to /dev/full."""
    kept = local.add(WEIGHTS)
    real_mkstemp = tempfile.mkstemp

    def mkstemp_on_a_full_device(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_on_a_full_device)
    with pytest.raises(StorageError, match="No space left on device.*is full") as caught:
        local.add(b"new weights")
    assert caught.value.errno == errno.ENOSPC
    assert not local.has(compute_cid(b"new weights"))
    assert not leftovers(local)
    assert local.get(kept) == WEIGHTS


def test_a_large_add_interrupted_while_hashing_leaves_nothing_behind(local, monkeypatch):
    """Large content is written while another thread hashes it: an error (or Ctrl-C) from
    the hashing must not leave the temporary file in the store."""
    import fl_agent.storage.local as local_module

    def interrupted(data: bytes) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(local_module, "compute_cid", interrupted)
    with pytest.raises(KeyboardInterrupt):
        local.add(LARGE)
    assert not leftovers(local)
    assert not [p for p in local.directory.rglob("*") if p.is_file()]


@pytest.mark.parametrize("data", [WEIGHTS, LARGE], ids=["small", "large"])
def test_a_full_disk_does_not_stop_adding_content_already_stored(local, monkeypatch, data):
    cid = local.add(data)
    monkeypatch.setattr(tempfile, "mkstemp", fail_with(errno.ENOSPC))
    assert local.add(data) == cid
    assert local.get(cid) == data


def test_a_store_directory_that_cannot_be_created_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(Path, "mkdir", fail_with(errno.EROFS))
    with pytest.raises(StorageError, match="cannot create the store directory .*read-only"):
        LocalStore(tmp_path / "new")


# --- KuboStore: a node that does not answer, or answers with an error -----------------------

Answer = Callable[[httpx.Request], httpx.Response]


class ScriptedNode:
    """Kubo's RPC API answering from a script: one answer per request, the last one repeated.
    Records the paths asked for and the sleeps between attempts."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        self.paths: list[str] = []
        self.bodies: list[bytes] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.bodies.append(request.read())
        return self.answers[min(len(self.paths), len(self.answers)) - 1](request)

    def store(self, **options: object) -> KuboStore:
        return KuboStore(
            NODE, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **options
        )


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def connect_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("timed out", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def status(code: int, body: bytes = b"") -> Answer:
    return lambda request: httpx.Response(code, content=body)


def kubo_error(message: str) -> Answer:
    body = {"Message": message, "Code": 0, "Type": "error"}
    return lambda request: httpx.Response(500, json=body)


def version(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"Version": "0.32.1"})


def content(data: bytes) -> Answer:
    return lambda request: httpx.Response(200, content=data)


class CutShort(httpx.SyncByteStream):
    """A response body that breaks off after ``head``, as when the node dies mid-transfer."""

    def __init__(self, head: bytes) -> None:
        self.head = head

    def __iter__(self):
        yield self.head
        raise httpx.ReadError("connection reset by peer")


NO_ANSWER = {
    "connection refused": refused,
    "connect timeout": connect_timeout,
    "read timeout": read_timeout,
    "connection dropped": dropped,
    "500 without Kubo's error body": status(500, b"Internal Server Error"),
    "502 from a proxy": status(502, b"<html>Bad Gateway</html>"),
    "503": status(503),
    "504": status(504),
}


def test_a_node_that_stops_answering_is_retried_with_backoff_until_it_answers():
    node = ScriptedNode(refused, read_timeout, status(503), version)
    assert node.store().version() == "0.32.1"
    assert node.paths == ["/api/v0/version"] * 4
    assert node.sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("failure", NO_ANSWER.values(), ids=NO_ANSWER.keys())
def test_a_node_that_never_answers_is_reported_after_four_attempts(failure):
    node = ScriptedNode(failure)
    with pytest.raises(NodeUnavailableError) as caught:
        node.store().get(WEIGHTS_CID)
    message = str(caught.value)
    assert f"the IPFS node at {NODE} did not answer /cat after 4 attempts" in message
    assert "Is Kubo running (`ipfs daemon`)" in message
    assert isinstance(caught.value, StorageError) and isinstance(caught.value, ConnectionError)
    assert node.paths == ["/api/v0/cat"] * 4
    assert node.sleeps == [0.5, 1.0, 2.0]


def test_attempts_and_backoff_are_configurable():
    node = ScriptedNode(refused)
    with pytest.raises(NodeUnavailableError, match="after 2 attempts"):
        node.store(attempts=2, backoff=0.25).has(WEIGHTS_CID)
    assert len(node.paths) == 2 and node.sleeps == [0.25]
    with pytest.raises(ValueError, match="attempts"):
        KuboStore(NODE, attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        KuboStore(NODE, backoff=-1)


@pytest.mark.parametrize("code", [400, 403, 404, 405])
def test_client_errors_are_not_retried(code):
    node = ScriptedNode(status(code, b"404 page not found" if code == 404 else b"refused"))
    with pytest.raises(StorageError, match=f"answered /cat with HTTP {code}") as caught:
        node.store().get(WEIGHTS_CID)
    assert not isinstance(caught.value, (NodeUnavailableError, ContentNotFoundError))
    assert "Kubo's RPC API" in str(caught.value)
    assert len(node.paths) == 1 and node.sleeps == []


def test_errors_kubo_reports_are_not_retried():
    """Kubo answers every failed command with a 500 and its JSON error body: the node did
    answer, and asking again would get the same answer."""
    missing = ScriptedNode(kubo_error("block was not found locally (offline)"))
    assert not missing.store().has(WEIGHTS_CID)
    assert len(missing.paths) == 1 and missing.sleeps == []

    refusing = ScriptedNode(kubo_error("pin: context canceled"))
    with pytest.raises(StorageError, match="refused /pin/add: pin: context canceled"):
        refusing.store().pin_add(WEIGHTS_CID)
    assert len(refusing.paths) == 1 and refusing.sleeps == []


def test_an_add_is_retried_with_the_whole_upload():
    node = ScriptedNode(dropped, lambda request: httpx.Response(200, json={"Hash": WEIGHTS_CID}))
    assert node.store().add(WEIGHTS) == WEIGHTS_CID
    assert node.paths == ["/api/v0/add"] * 2
    assert all(WEIGHTS in body for body in node.bodies)
    assert node.sleeps == [0.5]


def test_an_answer_that_is_not_kubo_json_is_reported():
    node = ScriptedNode(content(b"<html>IPFS gateway</html>"))
    with pytest.raises(StorageError, match="not Kubo's JSON.*port 5001"):
        node.store().version()


# --- KuboStore: content that does not match its CID -----------------------------------------


def test_a_transfer_cut_short_is_retried_and_never_returned():
    node = ScriptedNode(
        lambda request: httpx.Response(200, stream=CutShort(WEIGHTS[:1000])), content(WEIGHTS)
    )
    assert node.store().get(WEIGHTS_CID) == WEIGHTS
    assert node.paths == ["/api/v0/cat"] * 2
    assert node.sleeps == [0.5]


def test_content_corrupted_once_is_fetched_again():
    node = ScriptedNode(content(flip_one_bit(WEIGHTS)), content(WEIGHTS))
    assert node.store().get(WEIGHTS_CID) == WEIGHTS
    assert node.paths == ["/api/v0/cat"] * 2
    assert node.sleeps == []


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_content_corrupted_twice_is_refused_naming_the_cid_and_the_node(damage):
    node = ScriptedNode(content(damage(WEIGHTS)))
    with pytest.raises(CidMismatchError) as caught:
        node.store().get(WEIGHTS_CID)
    message = str(caught.value)
    assert f"the IPFS node at {NODE} returned content for {WEIGHTS_CID}" in message
    assert f"hashes to {compute_cid(damage(WEIGHTS))}, twice" in message
    assert "`ipfs repo verify`" in message and "another node" in message
    assert node.paths == ["/api/v0/cat"] * 2
