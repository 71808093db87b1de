"""The embedded store and the Kubo backend: same CIDs, verified reads, clear errors."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from kubo_server import FakeKubo

from fl_agent.storage.cid import CHUNK_SIZE, PARALLEL_CHUNKS, compute_cid
from fl_agent.storage.store import (
    CidMismatchError,
    ContentNotFoundError,
    ContentStore,
    ContentTooLargeError,
    InvalidCidError,
    KuboStore,
    LocalStore,
    NodeUnavailableError,
    open_store,
)

PAYLOADS = [b"", b"x", b"hello world", random.Random(1).randbytes(CHUNK_SIZE + 1),
            random.Random(2).randbytes(PARALLEL_CHUNKS * CHUNK_SIZE)]  # written while hashed


@pytest.fixture
def local(tmp_path):
    return LocalStore(tmp_path / "store")


@pytest.fixture
def kubo(tmp_path):
    with FakeKubo(tmp_path / "kubo") as node:
        yield node


@pytest.fixture(params=["local", "kubo"])
def store(request, local, kubo) -> ContentStore:
    return local if request.param == "local" else KuboStore(kubo.url)


@pytest.mark.parametrize("data", PAYLOADS, ids=["empty", "1B", "11B", "chunk+1", "8MiB"])
def test_add_returns_the_ipfs_cid_and_get_returns_the_bytes(store, data):
    cid = store.add(data)
    assert cid == compute_cid(data)
    assert store.has(cid)
    assert store.get(cid) == data


def test_both_backends_implement_the_protocol(local, kubo):
    assert isinstance(local, ContentStore)
    assert isinstance(KuboStore(kubo.url), ContentStore)


def test_unknown_cid_is_not_found(store):
    missing = compute_cid(b"never stored")
    assert not store.has(missing)
    with pytest.raises(ContentNotFoundError):
        store.get(missing)


@pytest.mark.parametrize("bad", ["", "not-a-cid", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"])
def test_malformed_cid_is_rejected_before_any_io(store, bad):
    with pytest.raises(InvalidCidError):
        store.get(bad)


def test_local_store_detects_tampered_content(local):
    cid = local.add(b"honest weights")
    local._path(cid).write_bytes(b"poisoned weights")
    with pytest.raises(CidMismatchError, match="refusing"):
        local.get(cid)


def test_kubo_store_detects_a_node_returning_other_bytes(kubo):
    client = KuboStore(kubo.url)
    cid = client.add(b"honest weights")
    kubo.corrupt.add(cid)
    with pytest.raises(CidMismatchError, match=f"node at {kubo.url} returned content for {cid}"):
        client.get(cid)
    assert kubo.requests.count("/api/v0/cat") == 2  # fetched once more before refusing


def test_oversized_content_is_refused(tmp_path, kubo):
    small = LocalStore(tmp_path / "small", max_bytes=10)
    with pytest.raises(ContentTooLargeError):
        small.add(b"x" * 11)
    cid = LocalStore(tmp_path / "small").add(b"x" * 11)  # same directory, default limit
    with pytest.raises(ContentTooLargeError):
        small.get(cid)
    with pytest.raises(ContentTooLargeError):
        KuboStore(kubo.url, max_bytes=10).add(b"x" * 11)
    big = KuboStore(kubo.url).add(b"y" * 11)
    with pytest.raises(ContentTooLargeError):
        KuboStore(kubo.url, max_bytes=10).get(big)


def test_kubo_add_pins_and_speaks_the_documented_endpoints(kubo):
    client = KuboStore(kubo.url)
    assert client.version() == "0.32.1"
    cid = client.add(b"pinned")
    assert cid in kubo.pins
    client.pin_add(cid)
    assert {"/api/v0/version", "/api/v0/add", "/api/v0/pin/add"} <= set(kubo.requests)


def test_unreachable_kubo_says_what_to_do():
    sleeps: list[float] = []
    client = KuboStore("http://127.0.0.1:9", sleep=sleeps.append)
    with pytest.raises(NodeUnavailableError, match="did not answer /add after 4 attempts.*"
                       "Is Kubo running"):
        client.add(b"x")
    assert sleeps == [0.5, 1.0, 2.0]


def test_kubo_transport_is_injectable():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v0/version"
        return httpx.Response(200, json={"Version": "0.99.0"})

    assert KuboStore(transport=httpx.MockTransport(handler)).version() == "0.99.0"


def test_several_writers_share_one_local_store(tmp_path):
    directory = tmp_path / "shared"
    blobs = [random.Random(i).randbytes(5000) for i in range(8)]
    blobs[0] = random.Random(8).randbytes(PARALLEL_CHUNKS * CHUNK_SIZE + 1)  # the large path

    def write(blob: bytes) -> str:
        return LocalStore(directory).add(blob)

    with ThreadPoolExecutor(max_workers=4) as pool:
        cids = list(pool.map(write, blobs * 3))
    reader = LocalStore(directory)
    assert [reader.get(c) for c in cids[:8]] == blobs
    assert not list(directory.rglob(".tmp-*"))


def test_open_store_picks_the_backend(tmp_path):
    assert isinstance(open_store(None, tmp_path), LocalStore)
    assert isinstance(open_store("http://127.0.0.1:5001", tmp_path), KuboStore)
    with pytest.raises(ValueError):
        open_store("ftp://x", tmp_path)
