"""An in-process HTTP server that answers like Kubo's RPC API, for testing KuboStore.

It follows the documented responses (https://docs.ipfs.tech/reference/kubo/rpc/): POST only,
``add`` returns ``{"Name", "Hash", "Size"}``, ``cat`` returns the bytes, errors are HTTP 500
with ``{"Message", "Code", "Type": "error"}``. Content is kept in a LocalStore, so the CIDs are
those of ``ipfs add --cid-version 1``. ``corrupt`` makes ``cat`` return other bytes, to test
verification.
"""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from fl_agent.storage.store import ContentNotFoundError, LocalStore


class FakeKubo:
    def __init__(self, directory: Path) -> None:
        self.store = LocalStore(directory)
        self.pins: set[str] = set()
        self.corrupt: set[str] = set()
        self.requests: list[str] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeKubo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        kubo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, payload: dict) -> None:
                self._reply(200, json.dumps(payload).encode(), "application/json")

            def _error(self, message: str) -> None:
                body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
                self._reply(500, body, "application/json")

            def do_GET(self) -> None:  # Kubo refuses GET on the RPC API
                self._reply(405, b"405 - Method Not Allowed", "text/plain")

            def do_POST(self) -> None:
                url = urlparse(self.path)
                args = parse_qs(url.query)
                kubo.requests.append(url.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    if url.path == "/api/v0/version":
                        self._json(
                            {
                                "Version": "0.32.1",
                                "Commit": "",
                                "Repo": "16",
                                "System": "amd64/linux",
                                "Golang": "go1.23",
                            }
                        )
                    elif url.path == "/api/v0/add":
                        if args.get("cid-version") != ["1"]:
                            raise ValueError("this fake only implements cid-version=1")
                        message = BytesParser(policy=HTTP).parsebytes(
                            b"Content-Type: "
                            + self.headers["Content-Type"].encode()
                            + b"\r\n\r\n"
                            + body
                        )
                        part = next(iter(message.iter_parts()))
                        data = part.get_payload(decode=True) or b""
                        cid = kubo.store.add(data)
                        if args.get("pin", ["true"]) == ["true"]:
                            kubo.pins.add(cid)
                        self._json(
                            {
                                "Name": part.get_filename() or cid,
                                "Hash": cid,
                                "Size": str(len(data)),
                            }
                        )
                    elif url.path == "/api/v0/cat":
                        cid = args["arg"][0]
                        data = kubo.store.get(cid)
                        if cid in kubo.corrupt:
                            data = data[::-1] + b"!"
                        self._reply(200, data, "text/plain")
                    elif url.path == "/api/v0/pin/add":
                        cid = args["arg"][0]
                        kubo.store.get(cid)
                        kubo.pins.add(cid)
                        self._json({"Pins": [cid]})
                    elif url.path == "/api/v0/block/stat":
                        cid = args["arg"][0]
                        if not kubo.store.has(cid):
                            raise ContentNotFoundError("block was not found locally (offline)")
                        self._json({"Key": cid, "Size": 0})
                    else:
                        self._reply(404, b"404 page not found", "text/plain")
                except ContentNotFoundError:
                    self._error("block was not found locally (offline): ipld: could not find node")
                except (ValueError, KeyError, StopIteration) as err:
                    self._error(str(err))

        return Handler
