"""Sessions without a browser for ``python -m benchmarks.app_load --client api``.

Streamlit (1.67 and later) serves ``POST /_stcore/agent/interact`` when the server runs with
``--server.enableAgentApi true``. Each agent session is an ordinary ``AppSession`` on the
server: a request reruns it on a page through the same ``rerun_script`` path that a
browser's click on a sidebar link takes, waits until the run has settled, and answers with a
JSON snapshot of the page (its elements, each table's data included). So the server does the
work of a browser session's render, plus encoding that snapshot, while the client costs next
to nothing: twenty sessions no longer need the 1.1 cores that twenty Chromium pages took on
the 2-core machine (docs/load.md), and the server is what is measured.

What differs from a browser session, and so from ``--client browser``:

* no JavaScript runs, so the wallet component never connects: each session turns on the
  sidebar's dev account as the browser sessions do, but cannot sign in, and My account shows
  its "connect your wallet" page, lighter than the signed-in one;
* fragments that rerun on a timer (the live chain check) do not tick between requests;
* a render is the request's round trip, from sending it to the snapshot received, instead of
  from the click to the page drawn;
* an error is an answer other than 200, a snapshot with ``status: error`` (the app raised),
  a page other than the one asked for, or no answer within the timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.app_load import PAGES, Render

#: Each page's ``url_path`` (Streamlit's, from the page file's name and ``st.Page``).
URL_PATHS = {"Models": "", "Model detail": "model", "Tasks": "tasks",
             "Participants": "participants", "My account": "account"}
INTERACT = "/_stcore/agent/interact"


@dataclass
class ApiSession:
    number: int
    client: httpx.AsyncClient
    url: str
    session_id: str = ""
    current: str | None = None
    renders: list[Render] = field(default_factory=list)

    @classmethod
    async def open(cls, client: httpx.AsyncClient, url: str, number: int,
                   timeout: float) -> ApiSession:
        """A new user: opens the app (its default page) and turns on the dev account."""
        session = cls(number, client, url)
        created = await session._interact({}, timeout)
        session.session_id = created["session_id"]
        await session._interact({"session_id": session.session_id,
                                  "widget_state": {"use_dev_account": True}}, timeout)
        session.current = created["page"]["title"]
        return session

    async def _interact(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        reply = await self.client.post(self.url + INTERACT, json=body, timeout=timeout)
        if reply.status_code != 200:
            raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    async def visit(self, phase: str, name: str, timeout: float) -> Render:
        """Asks for page ``name``; times the round trip."""
        started = time.perf_counter()
        try:
            snapshot = await self._interact({"session_id": self.session_id,
                                             "page": URL_PATHS[name]}, timeout)
            seconds = time.perf_counter() - started
            shown = snapshot["page"]["title"]
            problem = ("exception on the page" if snapshot["status"] == "error"
                       else None if shown == name else f"showed {shown!r}")
            render = Render(phase, self.number, name, round(seconds, 4), problem)
        except Exception as err:  # noqa: BLE001 - a timeout or a refusal is a result here
            render = Render(phase, self.number, name, None,
                            f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
        else:
            self.current = name
        self.renders.append(render)
        return render

    async def current_page(self) -> str | None:
        return self.current if self.current in PAGES else None
