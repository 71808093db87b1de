"""Fixtures for the app tests: a private anvil where agents trained and sold a model (the
story of :mod:`market_story`), the app as a real `streamlit run` server, and the seller's
key agent as its own process.

These are plain pytest tests (``python -m pytest tests/app``), not ``ape test`` ones. ape's
pytest plugin would start its own anvil and snapshot/revert "the" active chain around every
test, which is the chain the app under test is connected to; so when only app tests are
collected its runner is switched off here (the same as ``-p no:ape_test``). In a mixed
session with the contract tests, which need that runner, the app tests skip themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fl_agent.chain.node import KEPT_STATES, free_port
from harness import (
    APP_MAIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    ChainUnderTest,
    rpc_answers,
    stop,
    wait_until,
)
from market_story import populate

HERE = Path(__file__).resolve().parent
WALLET_PAGE = HERE / "wallet_page.py"
WALLET_BUILD = REPO / "app" / "wallet" / "build.mjs"
WALLET_BUNDLE = REPO / "app" / "wallet" / "dist" / "wallet.js"
APE_RUNNER = "ape-test"  # registered by ape's pytest11 plugin `ape_test`


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    if not mine:
        return
    runner = config.pluginmanager.get_plugin(APE_RUNNER)
    if runner is None:
        return
    if len(mine) == len(items):
        config.pluginmanager.unregister(runner)
        return
    skip = pytest.mark.skip(reason="app tests run in their own session: "
                                   "python -m pytest tests/app (ape's test runner is active)")
    for item in mine:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def test_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainUnderTest]:
    """anvil on a free port (12 funded accounts) with the market story written on it."""
    anvil = shutil.which("anvil")
    if anvil is None:
        pytest.fail("anvil not on PATH; use the venv (`make setup` links it into .venv/bin)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [anvil, "--host", "127.0.0.1", "--port", str(port), "--hardfork", "prague", "--silent",
         "--accounts", "12", "--prune-history", str(KEPT_STATES)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: rpc_answers(url), 30, f"anvil at {url}", proc)
        home = tmp_path_factory.mktemp("fairfl-home")
        folder = home / "deployments"
        story = populate(url, home, folder)
        yield ChainUnderTest(url, folder, story)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def key_agent(test_chain: ChainUnderTest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[subprocess.Popen]:
    """`fl-agent market serve --account TEST::0`: the seller's key agent, its own process."""
    log = tmp_path_factory.mktemp("key-agent") / "key-agent.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [shutil.which("fl-agent") or "fl-agent", "market", "serve", "--account", "TEST::0",
             "--poll-interval", "0.5"],
            cwd=REPO, env={**os.environ, **test_chain.env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        wait_until(lambda: b"key agent for" in log.read_bytes(), 60,
                   f"the key agent (log: {log})", proc)
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def app_env(test_chain: ChainUnderTest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Points the in-process app (AppTest) at the test chain."""
    for key, value in test_chain.env.items():
        monkeypatch.setenv(key, value)
    return test_chain.env


def _run_streamlit(script: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`streamlit run script` on a free port with ``env`` added; yields its URL."""
    port = free_port()
    cmd = [shutil.which("streamlit") or "streamlit", "run", str(script),
           "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/_stcore/health", timeout=1.0).text == "ok"
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 30, f"streamlit at {url} (log: {log})", proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def streamlit_server(test_chain: ChainUnderTest, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[str]:
    """`streamlit run app/main.py` against the test chain; yields the app's URL."""
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    yield from _run_streamlit(APP_MAIN, test_chain.env, log)


@pytest.fixture(scope="session")
def wallet_bundle() -> Path:
    """app/wallet/dist/wallet.js, built now if a source is newer (what `make setup` does)."""
    subprocess.run(["node", str(WALLET_BUILD), "--if-stale"], cwd=REPO, check=True)
    return WALLET_BUNDLE


@pytest.fixture(scope="session")
def wallet_server(test_chain: ChainUnderTest, wallet_bundle: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run tests/app/wallet_page.py` (the wallet alone) against the test chain."""
    log = tmp_path_factory.mktemp("streamlit-wallet") / "streamlit.log"
    yield from _run_streamlit(WALLET_PAGE, {"FAIRFL_WALLET_RPC": test_chain.url}, log)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium through Playwright. `make test` installs it, so there it must run."""
    if not CHROMIUM.exists():
        message = "no /usr/bin/chromium; install it with `apt-get install -y chromium`"
        if os.environ.get("FAIRFL_WITH_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
