"""`app/serve.py`: several app servers behind nginx, each user kept on one server.

The servers, nginx and the browser are real; the check of where sessions live reads each
server's own ``/_stcore/metrics`` (Streamlit's count of its active sessions), not the
launcher's view.
"""

from __future__ import annotations

import re
import shutil
import sys
from typing import Any

import httpx
import pytest

from harness import APP_MAIN, ChainUnderTest

SESSIONS = 8
PAGES = {"": "Models", "tasks": "Tasks", "participants": "Participants", "model": "Model detail"}


@pytest.fixture(scope="module")
def serve() -> Any:
    sys.path.insert(0, str(APP_MAIN.parent))  # the app's modules are top-level there
    import serve

    return serve


@pytest.fixture(scope="module")
def servers(serve: Any, test_chain: ChainUnderTest, tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("nginx") is None and not shutil.which("/usr/sbin/nginx"):
        pytest.fail("nginx not found; `make test` installs it (apt-get install nginx-light)")
    with serve.app_servers(2, env=test_chain.env, directory=tmp_path_factory.mktemp("serve"),
                           streamlit_args=("--server.fileWatcherType", "none",
                                           "--server.enableAgentApi", "true")) as started:
        yield started


def active_sessions(upstream: str) -> int:
    metrics = httpx.get(f"{upstream}/_stcore/metrics", timeout=10).text
    return int(re.search(r"^active_sessions (\d+)", metrics, re.M).group(1))


def test_each_user_stays_on_one_server_and_both_servers_get_users(servers):
    before = [active_sessions(u) for u in servers.upstreams]
    clients = [httpx.Client(base_url=servers.url, timeout=60) for _ in range(SESSIONS)]
    try:
        for client in clients:
            opened = client.post("/_stcore/agent/interact", json={})
            assert opened.status_code == 200, opened.text[:300]
            assert "fairfl_route" in client.cookies
            session = opened.json()["session_id"]
            # Every later request must reach the server that holds the session: on the other
            # one Streamlit answers "unknown session".
            for path, title in PAGES.items():
                shown = client.post("/_stcore/agent/interact",
                                    json={"session_id": session, "page": path})
                assert shown.status_code == 200, shown.text[:300]
                assert shown.json()["page"]["title"] == title
                assert shown.json()["status"] != "error"
        after = [active_sessions(u) for u in servers.upstreams]
    finally:
        for client in clients:
            client.close()
    added = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(added) == SESSIONS, added
    assert all(n >= 1 for n in added), f"one server got every session: {added}"


def test_a_browser_works_through_the_proxy(servers, browser):
    from playwright.sync_api import expect

    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(servers.url, wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Models for sale", exact=True)).to_be_visible(
            timeout=60_000)
        # A click reruns the script over the websocket, which nginx must carry.
        page.get_by_role("link", name="Tasks").click()
        expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible(
            timeout=60_000)
        assert any(c["name"] == "fairfl_route" for c in context.cookies())
    finally:
        context.close()


def test_what_cannot_work_is_refused_with_what_to_do(serve):
    with pytest.raises(ValueError, match="streamlit run"), serve.app_servers(1):
        pass
    with pytest.raises(ValueError, match="--port"), serve.app_servers(
            2, streamlit_args=("--server.port", "9000")):
        pass

