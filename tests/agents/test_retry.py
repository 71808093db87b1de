"""What an agent retries and how long it waits: :func:`fl_agent.retry.transient` and
:func:`~fl_agent.cli.common.serve`.

The errors are real: web3's HTTP provider and httpx talking to a real HTTP server on the
loopback that answers with the status under test, as a hosted RPC endpoint or a proxy in front
of Kubo would when overloaded (429), failing (500) or down behind its gateway (502-504).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from web3 import HTTPProvider, Web3

from fl_agent.chain.index import JsonRpc
from fl_agent.cli.common import MAX_BACKOFF, serve
from fl_agent.errors import ChainError
from fl_agent.retry import transient

#: JSON-RPC errors that hosted endpoints answer with HTTP 200 when they ration requests, as
#: their documentation and users' reports show them.
RATE_LIMITS = {
    "infura": {"code": -32005, "message": "project ID request rate exceeded",
               "data": {"see": "https://infura.io/dashboard", "backoff_seconds": 30.0}},
    "infura-daily": {"code": -32005, "message": "daily request count exceeded, request rate "
                     "limited"},
    "quicknode": {"code": -32007, "message": "request limit reached - reduce calls per second "
                  "or upgrade your account at quicknode.com"},
    "ankr": {"code": -32090, "message": "Too many requests, reason: call rate limit "
             "exhausted, retry in 10s"},
    "chainstack": {"code": -32005, "message": "RPS limit reached, upgrade your plan"},
    "alchemy": {"code": 429, "message": "Your app has exceeded its compute units per second "
                "capacity. If you have retries enabled, you can safely ignore this message."},
}
#: JSON-RPC errors that mean "no" whatever the wait: asking again gets the same answer.
REFUSALS = {
    "revert": {"code": 3, "message": "execution reverted"},
    "too-many-results": {"code": -32005, "message": "query returned more than 10000 results"},
    "nonce": {"code": -32000, "message": "nonce too low"},
    "separate-limit": {"code": -32000, "message": "exceeds the separate limit of the block"},
}


@pytest.fixture(scope="module")
def answering() -> Iterator[str]:
    """A server whose answer to ``POST /<status>`` is that HTTP status (``/200`` a node that
    answered and said no), and to ``POST /rpc/<name>`` HTTP 200 with the JSON-RPC error of
    that name in :data:`RATE_LIMITS` or :data:`REFUSALS`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/slow":  # a node that takes longer than the client waits
                time.sleep(2.0)
                self.path = "/200"
            if self.path.startswith("/rpc/"):
                name = self.path.removeprefix("/rpc/")
                error = {**RATE_LIMITS, **REFUSALS}[name]
                status, body = 200, json.dumps({"jsonrpc": "2.0", "id": 1,
                                                "error": error}).encode()
            else:
                status = int(self.path.strip("/"))
                body = (b'{"jsonrpc":"2.0","id":0,"error":{"code":3,"message":"execution '
                        b'reverted"}}' if status == 200 else b"busy")
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def rpc_error(url: str) -> BaseException:
    # web3's own retries (five, about 1.9 s in all) end in the same exception; skipped here
    provider = HTTPProvider(url, request_kwargs={"timeout": 5},
                            exception_retry_configuration=None)
    with pytest.raises(Exception) as raised:
        Web3(provider).eth.block_number  # noqa: B018
    return raised.value


def store_error(url: str) -> BaseException:
    with pytest.raises(httpx.HTTPStatusError) as raised:
        httpx.post(url, timeout=5).raise_for_status()
    return raised.value


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_an_overloaded_or_failing_endpoint_is_retried(answering, status):
    assert transient(rpc_error(f"{answering}/{status}"))
    assert transient(store_error(f"{answering}/{status}"))


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_refusal_is_not_retried(answering, status):
    assert not transient(rpc_error(f"{answering}/{status}"))
    assert not transient(store_error(f"{answering}/{status}"))


def test_a_node_that_answered_no_is_not_retried(answering):
    assert not transient(rpc_error(f"{answering}/200"))


def app_rpc_error(url: str) -> BaseException:
    """What the app's own JSON-RPC client (the event index's) raises for ``url``."""
    with pytest.raises(ChainError) as raised:
        JsonRpc(url, timeout=5).block_number()
    return raised.value


@pytest.mark.parametrize("endpoint", sorted(RATE_LIMITS))
def test_a_rate_limit_answered_as_a_json_rpc_error_is_retried(answering, endpoint):
    assert transient(rpc_error(f"{answering}/rpc/{endpoint}"))
    assert transient(app_rpc_error(f"{answering}/rpc/{endpoint}"))


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_json_rpc_refusal_is_not_retried(answering, refusal):
    assert not transient(rpc_error(f"{answering}/rpc/{refusal}"))
    assert not transient(app_rpc_error(f"{answering}/rpc/{refusal}"))


def test_a_refused_connection_and_a_timeout_are_retried(answering):
    from fl_agent.chain.node import free_port

    assert transient(rpc_error(f"http://127.0.0.1:{free_port()}"))  # nothing listens there
    with pytest.raises(httpx.TimeoutException) as slow:
        httpx.post(f"{answering}/slow", timeout=httpx.Timeout(5, read=0.2))
    assert transient(slow.value)
    late = Web3(HTTPProvider(f"{answering}/slow", request_kwargs={"timeout": 0.2}))
    with pytest.raises(Exception) as rpc_slow:
        late.eth.block_number  # noqa: B018
    assert transient(rpc_slow.value)


def test_the_wait_doubles_up_to_its_cap_and_starts_again_after_a_success(answering):
    outcomes = ["busy"] * 8 + ["ok", "busy", "ok"]
    waits: list[float] = []
    said: list[str] = []

    def step() -> bool:
        if outcomes.pop(0) == "busy":
            raise rpc_error(f"{answering}/503")
        return False

    serve(step, finished=lambda: not outcomes, poll_interval=2.0, log=said.append,
          sleep=waits.append)
    assert waits == [4, 8, 16, 32, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF, 2.0,
                     4.0, 2.0]
    assert len(said) == 9 and all("retrying" in line for line in said)


def test_any_other_error_stops_the_agent(answering):
    def step() -> bool:
        raise rpc_error(f"{answering}/404")

    with pytest.raises(Exception) as stopped:
        serve(step, finished=lambda: False, poll_interval=1.0, log=print, sleep=lambda s: None)
    assert not transient(stopped.value)
