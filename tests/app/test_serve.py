"""`app/serve.py`: several app servers behind nginx, each user kept on one server.

The servers, nginx and the browser are real; the check of where sessions live reads each
server's own ``/_stcore/metrics`` (Streamlit's count of its active sessions), not the
launcher's view.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
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


def need_nginx() -> None:
    """The browser's rule (conftest.py): `make test` installs nginx, so there it must be;
    elsewhere its absence skips."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        message = "no nginx; install it with `apt-get install -y nginx-light`"
        if os.environ.get("FAIRFL_WITH_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def servers(serve: Any, test_chain: ChainUnderTest, tmp_path_factory: pytest.TempPathFactory):
    need_nginx()
    with serve.app_servers(2, env=test_chain.env, directory=tmp_path_factory.mktemp("serve"),
                           streamlit_args=("--server.fileWatcherType", "none",
                                           "--server.enableAgentApi", "true")) as started:
        yield started


def active_sessions(upstream: str) -> int:
    metrics = httpx.get(f"{upstream}/_stcore/metrics", timeout=10).text
    return int(re.search(r"^active_sessions (\d+)", metrics, re.M).group(1))


def test_each_user_stays_on_one_server_and_both_servers_get_users(servers):
    before = [active_sessions(u) for u in servers.upstreams]
    # Half the users arrive with no route and get a random one; the other half bring routes
    # 0-3, which nginx's hash sends two to each server, so that both servers surely get users.
    clients = [httpx.Client(base_url=servers.url, timeout=60,
                            cookies={} if k % 2 else {"fairfl_route": str(k // 2)})
               for k in range(SESSIONS)]
    try:
        for client in clients:
            given = client.cookies.get("fairfl_route")
            opened = client.post("/_stcore/agent/interact", json={})
            assert opened.status_code == 200, opened.text[:300]
            # A route is set once, then kept.
            assert ("set-cookie" in opened.headers) == (given is None)
            assert client.cookies.get("fairfl_route") == given or given is None
            assert client.cookies.get("fairfl_route")
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
        # Let the first run finish before the click (as test_market_browser.settle does): on
        # busy cores the Tasks page once never came after the click, perhaps because the
        # click landed while the first run was still going (not reproduced since).
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
        # A click reruns the script over the websocket, which nginx must carry. Under a
        # fresh clone's full `make test` the first click was lost twice (the page stayed on
        # the models; not reproduced when the test runs alone, cause not found): the test
        # clicks once more if the page has not changed after 30 s, so that a lost click no
        # longer fails it, while a proxy that does not carry the websocket still does.
        tasks = page.get_by_role("heading", name="Tasks", exact=True)
        page.get_by_role("link", name="Tasks").click()
        try:
            expect(tasks).to_be_visible(timeout=30_000)
        except AssertionError:
            print("the first click on Tasks was lost; clicking again")
            page.get_by_role("link", name="Tasks").click()
            expect(tasks).to_be_visible(timeout=60_000)
        assert any(c["name"] == "fairfl_route" for c in context.cookies())
    finally:
        context.close()


def test_what_cannot_work_is_refused_with_what_to_do(serve):
    with pytest.raises(ValueError, match="streamlit run"), serve.app_servers(1):
        pass
    with pytest.raises(ValueError, match="--port"), serve.app_servers(
            2, streamlit_args=("--server.port", "9000")):
        pass



def test_no_app_server_is_given_nginxs_port(serve):
    """The port nginx will listen on is not bound while the servers start, so the OS may
    hand it out again: a server on it kept nginx from binding (a fresh clone's run of the
    test below, 2026-12-07). The picker here hands it out first and again in between."""
    handed = iter([5000, 6001, 5000, 6001, 6002, 6003])
    assert serve.worker_ports(3, 5000, lambda: next(handed)) == [6001, 6002, 6003]
    handed = iter([5000, 6001])
    assert serve.worker_ports(2, None, lambda: next(handed)) == [5000, 6001]


def test_a_terminated_launcher_stops_every_server_and_nginx(test_chain, tmp_path):
    """SIGTERM (a closed terminal's SIGHUP too) must not leave servers running: they are in
    sessions of their own, so only the launcher can stop them."""
    need_nginx()
    from fl_agent.chain.node import free_port

    port = free_port()
    logs = tmp_path / "logs"
    children: list[int] = []
    proc = subprocess.Popen(
        [sys.executable, str(APP_MAIN.parent / "serve.py"), "--workers", "2", "--port",
         str(port), "--logs", str(logs), "--", "--server.fileWatcherType", "none"],
        env={**os.environ, **test_chain.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        assert "FairFL app: http://127.0.0.1:" in proc.stdout.readline()
        children += [int(line.split()[1]) for line in subprocess.run(
            ["ps", "-o", "ppid=,pid=", "-e"], capture_output=True, text=True).stdout.splitlines()
            if int(line.split()[0]) == proc.pid]
        assert len(children) == 3, children  # two servers and nginx's master
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        for pid in children:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        for pid in [proc.pid, *children]:  # each in a session of its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_a_server_that_dies_is_started_again_and_its_users_are_served_meanwhile(
        serve, test_chain, tmp_path):
    need_nginx()
    with serve.app_servers(2, env=test_chain.env, directory=tmp_path,
                           streamlit_args=("--server.fileWatcherType", "none")) as started:
        victim = started.servers[0]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        # Routes 0-7 hash to both servers (see the test above); nginx passes those of the
        # dead one to the other.
        for route in range(8):
            reply = httpx.get(f"{started.url}/_stcore/health", timeout=10,
                              cookies={"fairfl_route": str(route)})
            assert (reply.status_code, reply.text) == (200, "ok"), route
        assert serve.restart_dead(started) == [(0, -signal.SIGKILL)]
        assert started.servers[0] is not victim
        serve.wait_healthy(started.upstreams[0], started.servers[0],
                           tmp_path / "streamlit-0.log", "app server 0")
        assert serve.restart_dead(started) == []
        # A server that keeps dying is given up on, with its log named.
        clock = 1e6
        with pytest.raises(serve.CrashLoop, match="streamlit-1.log"):
            for _ in range(serve.CRASH_LIMIT):
                proc = started.servers[1]
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                clock += 1.0
                serve.restart_dead(started, now=clock)
        assert started.nginx.poll() is None
    assert all(p.poll() is not None for p in started.processes)  # every restart stopped too
