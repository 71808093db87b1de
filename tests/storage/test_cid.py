"""CIDs must be exactly those of `ipfs add --cid-version 1`; the official JS UnixFS importer
(npm ipfs-unixfs-importer, run by toolchain/cid-oracle.mjs) is the oracle."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fl_agent.storage.cid as cid_module
from fl_agent.storage.cid import (
    CHUNK_SIZE,
    MAX_LINKS,
    build_dag,
    chunks,
    cid_from_str,
    cid_to_str,
    compute_cid,
)

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "toolchain" / "cid-oracle.mjs"


def oracle(paths: list[Path]) -> list[str]:
    out = subprocess.run(
        ["node", str(ORACLE), *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return out.stdout.split()


SIZES = {
    "empty": 0,
    "one byte": 1,
    "one chunk": CHUNK_SIZE,
    "one chunk + 1": CHUNK_SIZE + 1,
    "two-level DAG": CHUNK_SIZE * (MAX_LINKS + 6) + 77,  # more leaves than one node can link
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    rng = random.Random(7)
    folder = tmp_path_factory.mktemp("cid")
    files = {}
    for name, size in SIZES.items():
        path = folder / name.replace(" ", "_")
        path.write_bytes(rng.randbytes(size))
        files[name] = path
    return files


@pytest.fixture(scope="module")
def expected(samples) -> list[str]:
    """The JS importer's CIDs of the samples, in their order."""
    return oracle(list(samples.values()))


def test_hello_world_matches_the_documented_cid():
    assert (
        compute_cid(b"hello world") == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    )


@pytest.mark.parametrize("threads", [1, 3], ids=["one thread", "leaves on 3 threads"])
def test_every_boundary_size_matches_the_js_importer(samples, expected, monkeypatch, threads):
    monkeypatch.setattr(cid_module, "worker_threads", lambda: threads)
    names = list(samples)
    got = [compute_cid(samples[n].read_bytes()) for n in names]
    assert dict(zip(names, got, strict=True)) == dict(zip(names, expected, strict=True))


def test_two_level_dag_has_two_levels(samples):
    data = samples["two-level DAG"].read_bytes()
    root, blocks = build_dag(chunks(data))
    leaves = -(-len(data) // CHUNK_SIZE)
    intermediate = -(-leaves // MAX_LINKS)
    assert intermediate == 2
    assert len(blocks) == leaves + intermediate + 1
    assert root.file_size == len(data)
    assert compute_cid(data).startswith("bafybei")  # dag-pb root
    assert compute_cid(data[:CHUNK_SIZE]).startswith("bafkrei")  # raw leaf


@settings(max_examples=25, derandomize=True, deadline=None)
@given(st.binary(max_size=4096))
def test_cid_strings_round_trip(data):
    cid = compute_cid(data)
    assert cid_to_str(cid_from_str(cid)) == cid


@pytest.mark.parametrize(
    "bad",
    ["", "Qmfoo", "bafkrei", "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA", "b" + "a" * 58],
)
def test_malformed_cids_are_rejected(bad):
    with pytest.raises(ValueError):
        cid_from_str(bad)
