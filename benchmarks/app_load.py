"""The app under concurrent sessions, in a real browser (``make bench-app-load``).

Builds the large chain of :mod:`benchmarks.app_pages` (100 tasks, 10,000 blocks; ``--demo``
for the demo's chain instead) on a private anvil, starts the real server (``streamlit run
app/main.py``) and drives it with Playwright and Debian's Chromium: one browser, one context
(a separate user, with its own Streamlit session) per session. Each session opens the app,
turns on the dev account of the sidebar (anvil's account 9; on the large chain a member of
many tasks, with purchases and revenue) and signs in with Ethereum, then walks the five
pages through the sidebar (Models, Model detail, Tasks, Participants, My account) again and
again, pausing ``--think`` seconds after each page, until the phase's time is up and it has
seen every page at least once. Session k starts at page k mod 5, and the sessions' first
clicks are spread over a think time and a second, so the pages and the clicks are mixed.

Two phases on the same server: one session alone (``--single-seconds``), then ``--sessions``
together (``--seconds``), all signed in before the clock starts. A page's render time is
from the click on its link to the end of the script run that click started, as the browser
sees it (the ``data-test-script-state`` of Streamlit's root element, noted by an observer in
the page), with the page's title on screen. An error is a render that shows an exception or
an error notice, does not finish within ``--timeout``, or a session that loses its
connection. CPU (in cores, from the processes' CPU time) and RSS are sampled every second
for the server, anvil, and the browser with Playwright's driver: all on the same machine.
``--workers N`` (N >= 2) runs N servers behind nginx instead, as ``app/serve.py`` does for
``FAIRFL_APP_WORKERS=N make app``; their CPU and RSS are added up, nginx's CPU is shown apart,
and the JSON records how many sessions each server held at the end.

Target (``docs/load.md``): no errors, and the p90 of all renders under the full load
within :data:`TARGET_RATIO` times the p90 with one session (each page's ratio is shown too;
with one session a page is seen only a dozen times, so its own p90 is a rough figure).
Writes ``reports/bench/app_load.json`` and ``app_load.png``, prints a Markdown table, and
exits with 1 if a render failed (the target is reported, not enforced).

``--client api`` drives the same two phases without a browser, through Streamlit's agent API
(:mod:`benchmarks.app_api_sessions` says how, and what differs): the clients then cost next to
nothing and the server is what is measured. It writes ``app_load_api.json`` and ``.png``.

    python -m benchmarks.app_load                      # 1 session for 90 s, 20 for 120 s
    python -m benchmarks.app_load --client api         # the same, no browser
    python -m benchmarks.app_load --tasks 5 --blocks 600 --sessions 3 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import machine, percentiles, publish
from benchmarks import stop_process as stop
from benchmarks.app_pages import APP_MAIN, demo_chain, large_chain
from fl_agent.chain.node import LocalChain, free_port

REPO = APP_MAIN.parents[1]
CHROMIUM = Path("/usr/bin/chromium")
#: As in tests/app/harness.py: Debian's Chromium on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: The sidebar's link to each page, and the title the page shows.
PAGES = {"Models": "Models for sale", "Model detail": "Model detail", "Tasks": "Tasks",
         "Participants": "Participants", "My account": "My account"}
#: Under the full load, the p90 of all renders within this many times the p90 with one session.
TARGET_RATIO = 4.0
#: Who drives the sessions (``--client``).
CLIENTS = {"browser": "Chromium through Playwright, click to page drawn",
           "api": "Streamlit's agent API, request to snapshot (no browser)"}

#: Runs in every page before Streamlit's scripts. ``arm(title)`` before a click; the click
#: notes its time (``performance.now()``, ms) and the first DOM change after it at which no
#: script runs and ``title`` is among the page's headings notes the render's end. Checked on
#: every DOM change, not by watching the script state go "running" then "notRunning": when a
#: run is quick and the page busy, React may commit both in one go and the attribute never
#: shows "running".
OBSERVER = """
(() => {
  const w = window.__fairfl = {armed: null, lastChange: performance.now()};
  const idle = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.getAttribute("data-test-script-state") === "notRunning";
  };
  const check = () => {
    const a = w.armed;
    if (a === null || a.click === null || a.done !== null || !idle()) return;
    for (const h of document.querySelectorAll("h1")) {
      if (h.textContent.trim().startsWith(a.title)) { a.done = performance.now(); return; }
    }
  };
  let last;
  new MutationObserver(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app ? app.getAttribute("data-test-script-state") : null;
    if (state !== last) { last = state; w.lastChange = performance.now(); }
    check();
  }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true,
                        attributeFilter: ["data-test-script-state"]});
  document.addEventListener("click", () => {
    if (w.armed !== null && w.armed.click === null) { w.armed.click = performance.now(); }
  }, true);
  w.arm = (title) => { w.armed = {title, click: null, done: null}; };
})();
"""
#: The render's time once it has ended, else false (asked every 50 ms); a page reloaded under
#: the click has no armed render and fails.
FINISHED = """
() => {
  const a = window.__fairfl.armed;
  if (a === null) throw new Error("the page was reloaded");
  return a.done !== null && {ms: a.done - a.click};
}
"""
#: What the page shows, for an error message.
STATE = """
() => ({script: document.querySelector('[data-testid="stApp"]')
          ?.getAttribute("data-test-script-state"),
        titles: [...document.querySelectorAll("h1")].map(h => h.textContent.trim()),
        armed: window.__fairfl.armed})
"""
#: Connected, and no script run for half a second.
IDLE = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app !== null && app.getAttribute("data-test-script-state") === "notRunning"
    && app.getAttribute("data-test-connection-state") === "CONNECTED"
    && performance.now() - window.__fairfl.lastChange > 500;
}
"""


# -- the server and what it uses ----------------------------------------------------------------
def app_serve() -> Any:
    """``app/serve.py`` (several servers behind nginx) as a module: the app's folder is not a
    package, its modules are top-level as Streamlit runs them."""
    if (module := sys.modules.get("fairfl_app_serve")) is None:
        spec = importlib.util.spec_from_file_location("fairfl_app_serve",
                                                      APP_MAIN.parent / "serve.py")
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def start_server(env: dict[str, str], log: Path,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """``streamlit run app/main.py`` on a free port, as the app tests start it."""
    port = free_port()
    proc = app_serve().start_streamlit(port, log, env, ("--server.fileWatcherType", "none",
                                                        *extra))
    url = f"http://127.0.0.1:{port}"
    try:
        app_serve().wait_healthy(url, proc, log, "streamlit")
    except RuntimeError:
        stop(proc)
        raise
    return proc, url


def _parent(proc: Any) -> int | None:
    try:
        return proc.ppid()
    except Exception:  # noqa: BLE001 - a process that ended has no parent to report
        return None


def active_sessions(url: str) -> int | None:
    """The sessions the server at ``url`` holds, by its own ``/_stcore/metrics``."""
    try:
        metrics = httpx.get(f"{url}/_stcore/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    found = re.search(r"^active_sessions (\d+)", metrics, re.M)
    return int(found.group(1)) if found else None


class Usage(threading.Thread):
    """CPU seconds of the server, anvil, the browser (Chromium and Playwright's driver: every
    other process this script started), this script, and everything else on the machine (the
    machine's busy time less all of those: on a shared machine, what competed with the run),
    and the server's RSS, every second."""

    def __init__(self, servers: list[int], anvil: int | None, proxy: int | None = None) -> None:
        super().__init__(name="usage", daemon=True)
        import psutil

        self.servers = [psutil.Process(pid) for pid in servers]
        self.anvil, self.proxy = anvil, proxy
        self.cpu = {"server": 0.0, "proxy": 0.0, "anvil": 0.0, "browser": 0.0,
                    "benchmark": 0.0, "others": 0.0}
        self.rss: list[tuple[float, float]] = []  # (time, the servers' RSS MB together)
        self.marks: dict[str, tuple[float, dict[str, float]]] = {}
        self.load: dict[str, float] = {}  # the 1-minute load average at each mark
        self._last: dict[int, float] = {}
        self._primed = False
        self._busy: float | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def _group(self, proc: Any) -> str:
        if any(proc.pid == server.pid for server in self.servers):
            return "server"
        if self.proxy is not None and self.proxy in (proc.pid, _parent(proc)):
            return "proxy"  # nginx's master or one of its workers
        if proc.pid == self.anvil:
            return "anvil"
        return "browser"

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        with self._lock:
            mine = 0.0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                total = times.user + times.system
                # A process first seen after the first sample was started since: all its
                # CPU time counts.
                before = self._last.get(proc.pid, 0.0 if self._primed else total)
                self.cpu["benchmark" if proc.pid == me.pid else self._group(proc)] += \
                    total - before
                mine += total - before
                self._last[proc.pid] = total
            machine = psutil.cpu_times()
            busy = (machine.user + machine.system + getattr(machine, "nice", 0.0)
                    + getattr(machine, "irq", 0.0) + getattr(machine, "softirq", 0.0))
            if self._busy is not None:
                self.cpu["others"] += max(0.0, busy - self._busy - mine)
            self._busy = busy
            self._primed = True
            try:
                self.rss.append((time.monotonic(), sum(server.memory_info().rss
                                                       for server in self.servers) / 2**20))
            except psutil.Error:
                pass

    def run(self) -> None:
        while not self._stopped.wait(1.0):
            self.sample()

    def mark(self, name: str) -> None:
        self.sample()
        with self._lock:
            self.marks[name] = (time.monotonic(), dict(self.cpu))
            self.load[name] = round(os.getloadavg()[0], 2)

    def between(self, start: str, end: str) -> dict[str, Any]:
        (t0, c0), (t1, c1) = self.marks[start], self.marks[end]
        rss = [mb for t, mb in self.rss if t0 <= t <= t1]
        return {"seconds": round(t1 - t0, 1),
                "cores": {g: round((c1[g] - c0[g]) / (t1 - t0), 2) for g in c0},
                "load_average_1min": {"start": self.load[start], "end": self.load[end]},
                "server_rss_mb": {"start": round(rss[0]) if rss else None,
                                  "max": round(max(rss)) if rss else None,
                                  "end": round(rss[-1]) if rss else None}}

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)


# -- sessions -----------------------------------------------------------------------------------
@dataclass
class Render:
    phase: str
    session: int
    page: str
    seconds: float | None
    error: str | None = None


@dataclass
class Session:
    number: int
    context: Any
    page: Any
    renders: list[Render] = field(default_factory=list)

    @classmethod
    async def open(cls, browser: Any, url: str, number: int, timeout: float,
                   evidence: Path) -> Session:
        """A new user: opens the app, turns on the dev account and signs in. If that fails,
        a screenshot goes to ``evidence`` and the error says what the page showed."""
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        await page.add_init_script(script=OBSERVER)
        session = cls(number, context, page)
        try:
            await session.sign_in(url, timeout)
        except Exception as err:
            evidence.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(evidence), full_page=True)
            shown = " | ".join((await page.get_by_test_id("stMain").inner_text()).split("\n"))
            raise RuntimeError(f"session {number} could not sign in ({err}); the page showed: "
                               f"{shown[:1500]}; screenshot {evidence}") from err
        session.renders.clear()
        return session

    async def sign_in(self, url: str, timeout: float) -> None:
        page = self.page
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        await page.get_by_role("heading", name=PAGES["Models"]).first.wait_for(
            timeout=timeout * 1000)
        await self.settle(timeout)
        await page.get_by_text("Use a dev account", exact=True).click(timeout=timeout * 1000)
        await page.get_by_text(re.compile("DEV ACCOUNT")).first.wait_for(timeout=timeout * 1000)
        await self.settle(timeout)
        render = await self.visit("setup", "My account", timeout)
        if render.error:
            raise RuntimeError(f"My account did not render: {render.error}")
        await page.get_by_role("button", name=re.compile(
            r"^(Connect and sign in|Sign in with Ethereum)$")).click(timeout=timeout * 1000)
        await page.get_by_role("heading", name="Purchases").first.wait_for(
            timeout=timeout * 1000)
        await self.settle(timeout)

    async def settle(self, timeout: float) -> None:
        """Waits until the app is connected and no script ran for half a second."""
        await self.page.wait_for_function(IDLE, polling=100, timeout=timeout * 1000)

    async def visit(self, phase: str, name: str, timeout: float) -> Render:
        """Clicks the sidebar's link to page ``name``; times the render it starts."""
        page = self.page
        try:
            await page.evaluate("title => window.__fairfl.arm(title)", PAGES[name])
            # The link's text is its icon's name (a font ligature) followed by the title.
            await page.get_by_test_id("stSidebarNavLink").filter(
                has_text=re.compile(f"{re.escape(name)}$")).click(timeout=timeout * 1000)
            done = await page.wait_for_function(FINISHED, polling=50, timeout=timeout * 1000)
            seconds = (await done.json_value())["ms"] / 1000
            problem = await self.problem()
            render = Render(phase, self.number, name, round(seconds, 4), problem)
        except Exception as err:  # noqa: BLE001 - a timeout or a closed page is a result here
            try:
                shown = await page.evaluate(STATE)
            except Exception:  # noqa: BLE001 - the page is gone
                shown = None
            render = Render(phase, self.number, name, None,
                            f"{type(err).__name__}: {str(err).splitlines()[0][:200]} "
                            f"(page: {shown})")
        self.renders.append(render)
        return render

    async def problem(self) -> str | None:
        """What is wrong with the page as it stands, or None."""
        page = self.page
        state = await page.get_attribute('[data-testid="stApp"]', "data-test-connection-state")
        if state != "CONNECTED":
            return f"connection {state}"
        if await page.get_by_test_id("stException").count():
            return "exception: " + (await page.get_by_test_id("stException").first
                                    .inner_text())[:300]
        if await page.get_by_test_id("stAlertContentError").count():
            return "error notice: " + (await page.get_by_test_id("stAlertContentError").first
                                       .inner_text())[:300]
        return None

    async def current_page(self) -> str | None:
        titles = await self.page.locator("h1").all_inner_texts()
        return next((name for name, title in PAGES.items()
                     if any(t.strip().startswith(title) for t in titles)), None)


async def drive(url: str, sessions: int, single_seconds: float, seconds: float, think: float,
                timeout: float, usage: Usage, evidence: Path) -> dict[str, Any]:
    """The two phases in Chromium; screenshots of a session that could not sign in go to
    ``evidence``."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            return await phases(
                lambda n: Session.open(browser, url, n, timeout, evidence / f"session-{n}.png"),
                sessions, single_seconds, seconds, think, timeout, usage)
        finally:
            await browser.close()


async def drive_api(url: str, sessions: int, single_seconds: float, seconds: float,
                    think: float, timeout: float, usage: Usage) -> dict[str, Any]:
    """The two phases through Streamlit's agent API (:mod:`benchmarks.app_api_sessions`)."""
    from benchmarks.app_api_sessions import ApiSession

    async with contextlib.AsyncExitStack() as clients:
        async def open_session(n: int) -> ApiSession:
            # A client (and so a cookie jar) per session, as each is a user of its own: behind
            # several servers (--workers) nginx keeps each on its server by a cookie.
            client = await clients.enter_async_context(httpx.AsyncClient())
            return await ApiSession.open(client, url, n, timeout)

        return await phases(open_session, sessions, single_seconds, seconds, think, timeout,
                            usage)


async def walk(session: Any, phase: str, until: float, think: float, timeout: float,
               delay: float = 0.0) -> None:
    """After ``delay`` seconds, ``session`` (a browser :class:`Session` or an
    :class:`~benchmarks.app_api_sessions.ApiSession`) visits the pages in turn from page
    ``number`` mod 5 until ``until`` (monotonic time) has passed and every page was seen."""
    await asyncio.sleep(delay)
    names = list(PAGES)
    step = session.number % len(names)
    seen: set[str] = set()
    current = await session.current_page()
    while time.monotonic() < until or len(seen) < len(names):
        name = names[step % len(names)]
        step += 1
        if name == current:  # a click on the page that is open does not render it
            continue
        render = await session.visit(phase, name, timeout)
        seen.add(name)
        current = name
        if render.error and render.error.startswith(("connection", "TargetClosed")):
            return
        await asyncio.sleep(think)


async def phases(open_session: Any, sessions: int, single_seconds: float, seconds: float,
                 think: float, timeout: float, usage: Usage) -> dict[str, Any]:
    """One session alone, then ``sessions`` together; ``open_session(n)`` makes session n."""
    started = time.monotonic()
    first = await open_session(0)
    setup = {"first_session_s": round(time.monotonic() - started, 1)}
    usage.mark("single")
    await walk(first, "1 session", time.monotonic() + single_seconds, think, timeout)
    usage.mark("single end")
    started = time.monotonic()
    others: list[Any] = []
    for k in range(1, sessions, 4):  # four at a time: signing in is not measured
        others += await asyncio.gather(*(open_session(n)
                                         for n in range(k, min(k + 4, sessions))))
    setup["other_sessions_s"] = round(time.monotonic() - started, 1)
    everyone = [first, *others]
    phase = f"{sessions} sessions"
    usage.mark("load")
    until = time.monotonic() + seconds
    # Staggered over one think time and a second, not all 20 clicks at once.
    await asyncio.gather(*(walk(s, phase, until, think, timeout,
                                delay=k * (think + 1) / len(everyone))
                           for k, s in enumerate(everyone)))
    usage.mark("load end")
    return {"setup": setup, "renders": [r for s in everyone for r in s.renders]}


# -- the run ------------------------------------------------------------------------------------
def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    node = LocalChain(home / "chain", "127.0.0.1", free_port())
    node.start(accounts=30)
    try:
        started = time.monotonic()
        if args.demo:
            demo_chain(node.url, home)
        else:
            large_chain(node.url, home, args.tasks, args.blocks)
        built = time.monotonic() - started
        env = {"FAIRFL_NETWORK": node.url, "FAIRFL_HOME": str(home),
               "FAIRFL_DEPLOYMENTS": str(home / "deployments")}
        api = args.client == "api"
        with app_under_test(args.workers, env, home,
                            ("--server.enableAgentApi", "true") if api else ()) as started:
            url, procs, proxy, upstreams = started
            usage = Usage([p.pid for p in procs], node.pid(), proxy and proxy.pid)
            usage.start()
            try:
                if api:
                    driven = asyncio.run(drive_api(url, args.sessions, args.single_seconds,
                                                   args.seconds, args.think, args.timeout,
                                                   usage))
                else:
                    driven = asyncio.run(drive(url, args.sessions, args.single_seconds,
                                               args.seconds, args.think, args.timeout, usage,
                                               args.json.parent / "app_load-failures"))
            finally:
                usage.stop()
            alive = all(p.poll() is None for p in [*procs, *([proxy] if proxy else [])])
            split = [active_sessions(u) for u in upstreams]
        blocks = int(httpx.post(node.url, json={"jsonrpc": "2.0", "id": 1,
                                                "method": "eth_blockNumber",
                                                "params": []}).json()["result"], 16)
    finally:
        node.stop()
    return summarise(args, driven, usage, {"chain_build_s": round(built, 1), "blocks": blocks,
                                           "server_survived": alive,
                                           "sessions_per_server": split})


@contextlib.contextmanager
def app_under_test(workers: int, env: dict[str, str], home: Path, extra: tuple[str, ...]
                   ) -> Iterator[tuple[str, list[subprocess.Popen], subprocess.Popen | None,
                                       list[str]]]:
    """(URL, the servers' processes, nginx's or None, each server's own URL): one `streamlit
    run`, or ``workers`` of them behind nginx as ``app/serve.py`` runs them."""
    if workers == 1:
        server, url = start_server(env, home / "streamlit.log", extra)
        try:
            yield url, [server], None, [url]
        finally:
            stop(server)
        return
    with app_serve().app_servers(workers, env=env, directory=home / "servers",
                                 streamlit_args=("--server.fileWatcherType", "none", *extra)
                                 ) as started:
        yield started.url, started.servers, started.nginx, started.upstreams


def summarise(args: argparse.Namespace, driven: dict[str, Any], usage: Usage,
              extra: dict[str, Any]) -> dict[str, Any]:
    phases = {"1 session": ("single", "single end"),
              f"{args.sessions} sessions": ("load", "load end")}
    result: dict[str, Any] = {
        "settings": {"client": args.client,
                     "chain": "demo" if args.demo else f"{args.tasks} tasks",
                     "sessions": args.sessions, "workers": args.workers,
                     "single_seconds": args.single_seconds,
                     "seconds": args.seconds, "think_s": args.think, "timeout_s": args.timeout,
                     "dev_account": 9},
        **extra, "setup_s": driven["setup"], "phases": {},
    }
    renders: list[Render] = driven["renders"]
    for phase, (start, end) in phases.items():
        mine = [r for r in renders if r.phase == phase]
        ok = [r for r in mine if r.error is None]
        used = usage.between(start, end)
        result["phases"][phase] = {
            "renders": len(mine), "errors": len(mine) - len(ok),
            "error_samples": sorted({f"{r.page}: {r.error}" for r in mine if r.error})[:10],
            "renders_per_s": round(len(ok) / used["seconds"], 2),
            "server_cpu_s_per_render": round(used["cores"]["server"] * used["seconds"]
                                             / max(1, len(ok)), 3),
            "all_pages_s": percentiles([r.seconds for r in ok]),
            "pages_s": {page: percentiles([r.seconds for r in ok if r.page == page])
                        for page in PAGES},
            "usage": used,
            "samples": {page: [r.seconds for r in ok if r.page == page] for page in PAGES},
        }
    single, loaded = (result["phases"][p] for p in phases)
    ratios = {page: (round(loaded["pages_s"][page]["p90"] / single["pages_s"][page]["p90"], 2)
                     if loaded["pages_s"][page] and single["pages_s"][page] else None)
              for page in PAGES}
    errors = single["errors"] + loaded["errors"]
    overall = (round(loaded["all_pages_s"]["p90"] / single["all_pages_s"]["p90"], 2)
               if loaded["all_pages_s"] and single["all_pages_s"] else None)
    result["target"] = {
        "rule": f"no errors, and the p90 of every render with {args.sessions} sessions within "
                f"{TARGET_RATIO:g}x the p90 with one session",
        "ratio_limit": TARGET_RATIO, "p90_ratio_all_pages": overall, "p90_ratio": ratios,
        "errors": errors,
        "met": errors == 0 and overall is not None and overall <= TARGET_RATIO,
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    names = list(result["phases"])
    single, loaded = (result["phases"][n] for n in names)
    lines = [f"| page | {names[0]}: p50 / p90 / p99 / max | {names[1]}: p50 / p90 / p99 / max "
             "| p90 ratio |", "| --- | --- | --- | --- |"]

    def cell(d: dict[str, float]) -> str:
        if not d:
            return "–"
        return " / ".join(f"{d[k]:.2f}" for k in ("p50", "p90", "p99", "max")) + f" s ({d['n']})"

    for page in PAGES:
        ratio = result["target"]["p90_ratio"][page]
        lines.append(f"| {page} | {cell(single['pages_s'][page])} | "
                     f"{cell(loaded['pages_s'][page])} | "
                     f"{'–' if ratio is None else f'{ratio:.1f}×'} |")
    overall = result["target"]["p90_ratio_all_pages"]
    lines.append(f"| **every page** | {cell(single['all_pages_s'])} | "
                 f"{cell(loaded['all_pages_s'])} | "
                 f"{'–' if overall is None else f'**{overall:.1f}×**'} |")
    workers = result["settings"].get("workers", 1)
    usage = [("server CPU, cores" + (f" ({workers} servers together)" if workers > 1 else ""),
              lambda u: f"{u['cores']['server']:.2f}"),
             *([("nginx CPU, cores", lambda u: f"{u['cores']['proxy']:.2f}")]
               if workers > 1 else []),
             ("browser CPU (Chromium + driver), cores",
              lambda u: f"{u['cores']['browser']:.2f}"),
             ("anvil CPU, cores", lambda u: f"{u['cores']['anvil']:.2f}"),
             ("this script, cores", lambda u: f"{u['cores']['benchmark']:.2f}"),
             ("other processes on the machine, cores",
              lambda u: f"{u['cores']['others']:.2f}"),
             ("load average (1 min), machine: start → end",
              lambda u: f"{u['load_average_1min']['start']} → {u['load_average_1min']['end']}"),
             ("server RSS, MB: start → max" + (" (servers together)" if workers > 1 else ""),
              lambda u: f"{u['server_rss_mb']['start']} → {u['server_rss_mb']['max']}")]
    for label, show in usage:
        lines.append(f"| {label} | {show(single['usage'])} | {show(loaded['usage'])} | |")
    lines.append(f"| server CPU per render | {single['server_cpu_s_per_render']:.2f} s | "
                 f"{loaded['server_cpu_s_per_render']:.2f} s | |")
    lines.append(f"| renders (errors), renders per second | {single['renders']} "
                 f"({single['errors']}), {single['renders_per_s']}/s | {loaded['renders']} "
                 f"({loaded['errors']}), {loaded['renders_per_s']}/s | |")
    target = result["target"]
    s = result["settings"]
    lines += ["", f"Target: {target['rule']}: **{'met' if target['met'] else 'not met'}**.",
              f"Client: {CLIENTS[s['client']]}.",
              f"Chain: {s['chain']} ({result['blocks']:,} blocks); think time {s['think_s']} s "
              f"between pages; {s['single_seconds']:g} s alone, then {s['seconds']:g} s with "
              f"{s['sessions']} sessions."]
    if workers > 1:
        lines.append(f"Servers: {workers} `streamlit run` processes behind nginx, one per "
                     "session by a cookie (app/serve.py); sessions each held at the end: "
                     f"{result.get('sessions_per_server')}.")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["phases"])
    fig, ax = plt.subplots(figsize=(11, 4.5))
    positions, data, labels = [], [], []
    for i, page in enumerate(PAGES):
        for j, phase in enumerate(names):
            samples = result["phases"][phase]["samples"][page]
            if samples:
                positions.append(i * 3 + j)
                data.append(samples)
                labels.append(f"{page}\n{phase}")
    parts = ax.boxplot(data, positions=positions, whis=(10, 90), showfliers=True,
                       flierprops={"ms": 2}, patch_artist=True, widths=0.8)
    for box, label in zip(parts["boxes"], labels, strict=True):
        box.set_facecolor("#9ecae1" if label.endswith(names[0]) else "#fdae6b")
    single = result["phases"][names[0]]["all_pages_s"]
    if single:
        ax.axhline(TARGET_RATIO * single["p90"], color="grey", ls="--", lw=1,
                   label=f"target: {TARGET_RATIO:g}x the p90 of one session")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xticks(positions, labels, fontsize=7)
    ax.set(yscale="log", ylabel="seconds, click to rendered",
           title=f"Page render time ({CLIENTS[result['settings']['client']]}): one session "
                 f"vs. {result['settings']['sessions']} (whiskers p10-p90)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="how long the sessions walk together")
    parser.add_argument("--single-seconds", type=float, default=90.0,
                        help="how long one session walks alone first")
    parser.add_argument("--think", type=float, default=1.0,
                        help="pause after each page, seconds")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="a render not finished after this many seconds is an error")
    parser.add_argument("--tasks", type=int, default=100, help="tasks on the large chain")
    parser.add_argument("--blocks", type=int, default=10_000, help="blocks of the large chain")
    parser.add_argument("--demo", action="store_true", help="the demo's chain instead")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="browser",
                        help="browser: Chromium pages through Playwright (client and server "
                        "share the machine); api: Streamlit's agent API, no browser "
                        "(benchmarks/app_api_sessions.py says what differs)")
    parser.add_argument("--workers", type=int, default=1,
                        help="app servers: 1 (default) is `streamlit run` alone; 2 or more run "
                        "behind nginx, one per session by a cookie (app/serve.py)")
    parser.add_argument("--json", type=Path, default=None,
                        help="default: reports/bench/app_load.json, app_load_api.json for "
                        "--client api, with _N_servers before .json for --workers N")
    args = parser.parse_args(argv)
    if args.json is None:
        name = "app_load" if args.client == "browser" else "app_load_api"
        if args.workers > 1:
            name += f"_{args.workers}_servers"
        args.json = Path(f"reports/bench/{name}.json")
    if args.sessions < 2 or args.seconds <= 0 or args.single_seconds <= 0 or args.think < 0:
        parser.error("--sessions must be >= 2, --seconds and --single-seconds > 0")
    if args.workers < 1:
        parser.error("--workers must be 1 or more")
    if args.client == "browser" and not CHROMIUM.exists():
        parser.error(f"no {CHROMIUM}; install it with `apt-get install -y chromium`")
    about = machine()
    with tempfile.TemporaryDirectory(prefix="fairfl-bench-app-load-") as tmp:
        result = run(args, Path(tmp))
    result["machine"] = {**about, "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    publish(result, args.json, markdown(result))
    plot(result, args.json.with_suffix(".png"))
    print(f"plot: {args.json.with_suffix('.png')}")
    if result["target"]["errors"] or not result["server_survived"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
