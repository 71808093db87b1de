"""Helpers of the app tests: waiting for servers, stopping what a fixture started."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from market_story import Story

REPO = Path(__file__).resolve().parents[2]
APP_MAIN = REPO / "app" / "main.py"
CHROMIUM = Path("/usr/bin/chromium")
#: Debian's Chromium on a closed network (TOOLCHAIN.md); Playwright never downloads one.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: The test EIP-1193 wallet that browser tests inject before the page's scripts.
PROVIDER_JS = Path(__file__).resolve().parent / "wallet_provider.js"
SCREENS = REPO / "reports" / "screens"


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")


def stop(proc: subprocess.Popen) -> None:
    """Stops a process started by a fixture (and only it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass(frozen=True)
class ChainUnderTest:
    url: str
    deployments: Path
    story: Story

    @property
    def env(self) -> dict[str, str]:
        """Environment that points the app (and the key agent) at this chain, its store,
        the seller's keys and an event index of its own."""
        return {"FAIRFL_NETWORK": self.url, "FAIRFL_DEPLOYMENTS": str(self.deployments),
                "FAIRFL_HOME": str(self.story.home)}


def rpc(url: str, method: str, *params: object) -> object:
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                  "params": list(params)}, timeout=5.0)
    reply.raise_for_status()
    body = reply.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def rpc_answers(url: str) -> bool:
    try:
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                              "params": []}, timeout=1.0).raise_for_status()
        return True
    except httpx.HTTPError:
        return False
