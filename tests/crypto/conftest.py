"""Fixtures of the crypto tests: the wallet component's bundle, run under node."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
WALLET_BUILD = REPO / "app" / "wallet" / "build.mjs"
WALLET_BUNDLE = REPO / "app" / "wallet" / "dist" / "wallet.js"
RUNNER = Path(__file__).resolve().parent / "wallet_crypto.mjs"

RunJs = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def wallet_bundle() -> Path:
    """app/wallet/dist/wallet.js, built now if a source is newer (what `make setup` does)."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH (the project's toolchain needs it: `make setup`)")
    subprocess.run(["node", str(WALLET_BUILD), "--if-stale"], cwd=REPO, check=True)
    return WALLET_BUNDLE


@pytest.fixture(scope="session")
def run_js(wallet_bundle: Path) -> RunJs:
    """Runs cases through the bundle's protocol functions under node (wallet_crypto.mjs)."""

    def run(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = subprocess.run(["node", str(RUNNER), str(wallet_bundle)], cwd=REPO,
                              input=json.dumps({"cases": cases}), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["results"]

    return run
