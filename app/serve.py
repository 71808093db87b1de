"""Several app servers behind one address: ``python app/serve.py --workers 2``, or
``FAIRFL_APP_WORKERS=2 make app``.

One Streamlit server runs the script of every session in threads of one Python process, so
sessions that render at the same time share one interpreter lock: with twenty users clicking,
about six renders are in flight at once and each takes about six times as long
(``docs/load.md``). This starts ``--workers`` servers (``streamlit run app/main.py``) on free
loopback ports and nginx in front of them at ``--address``:``--port``.

nginx keeps each user on one server, because a Streamlit session lives in the memory of the
process that serves it (its state, its websocket, the files it offers for download). The first
answer to a browser sets a cookie, ``fairfl_route``, to a random value (nginx's
``$request_id``), and nginx picks the server by a hash of that cookie, so every later request of
the same browser (the page, the websocket, static files, downloads) goes to the same server. A
browser that refuses cookies still works; its requests are spread at random, so it may lose its
session on a reload, as it would after a server restart.

Each server keeps its own caches (the chain's views, the pages' tables), so memory and the
chain reads behind a refresh grow with the number of servers.

When a server dies, the launcher starts it again on the same port (:func:`restart_dead`).
Meanwhile nginx passes its users' requests to another server (``proxy_next_upstream``, on by
default for a refused connection), where the page reconnects and starts a new session, as
after a reload. A server that dies ``CRASH_LIMIT`` times within ``CRASH_WINDOW`` seconds is
not started again: then, as when nginx dies, the launcher stops everything and says why.

Hand-written, as no library does it: the nginx configuration and the supervision of the
processes (start, wait until each answers, restart a server that dies, stop all of them
when nginx dies or on Ctrl-C). Needs nginx on PATH (Debian: ``apt-get install
nginx-light``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fl_agent.chain.node import free_port

APP_MAIN = Path(__file__).resolve().parent / "main.py"
REPO = APP_MAIN.parents[1]
COOKIE = "fairfl_route"
STARTUP_SECONDS = 90.0
#: nginx's temporary folders, all kept in the launcher's own folder (never /var/lib/nginx).
TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")
#: A server that dies this many times within CRASH_WINDOW seconds is not started again.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


@dataclass
class AppServers:
    """What :func:`app_servers` started (``servers`` is kept current by
    :func:`restart_dead`)."""

    url: str  #: the address users open (nginx)
    upstreams: list[str]  #: each server's own address, on the loopback
    servers: list[subprocess.Popen]  #: each server's process, in the order of ``upstreams``
    nginx: subprocess.Popen
    folder: Path  #: the logs
    env: dict[str, str] | None = None
    streamlit_args: Sequence[str] = ()
    #: When each server died, for the crash-loop limit.
    deaths: dict[int, list[float]] = field(default_factory=dict)

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [*self.servers, self.nginx]


class CrashLoop(RuntimeError):
    """An app server that keeps dying as soon as it is started again."""


def restart_dead(started: AppServers, now: float | None = None) -> list[tuple[int, int]]:
    """Starts every server that has died again, on its own port, appending to its log;
    returns ``(index, exit code)`` of each. Raises :class:`CrashLoop` for a server that died
    :data:`CRASH_LIMIT` times within :data:`CRASH_WINDOW` seconds. Does not wait for the
    new process to answer: nginx sends its users elsewhere until it does."""
    now = time.monotonic() if now is None else now
    restarted = []
    for k, proc in enumerate(started.servers):
        if proc.poll() is None:
            continue
        recent = [t for t in started.deaths.get(k, []) if now - t < CRASH_WINDOW] + [now]
        started.deaths[k] = recent
        log = started.folder / f"streamlit-{k}.log"
        if len(recent) >= CRASH_LIMIT:
            raise CrashLoop(f"app server {k} died {len(recent)} times within "
                            f"{CRASH_WINDOW:.0f} s (last exit {proc.returncode}); not starting "
                            f"it again. Its log: {log}")
        port = int(started.upstreams[k].rsplit(":", 1)[1])
        started.servers[k] = start_streamlit(port, log, started.env, started.streamlit_args,
                                             append=True)
        restarted.append((k, proc.returncode))
    return restarted


def nginx_config(upstreams: Sequence[int], address: str, port: int, directory: Path,
                 token: str = "") -> str:
    """nginx's configuration: listen at ``address``:``port``, proxy to the servers on the
    loopback ``upstreams`` ports, one server per browser by the hash of its route cookie.
    Every answer carries ``X-FairFL-Serve: token``, by which the launcher knows that what
    answers on the port is its own nginx."""
    host = f"[{address}]" if ":" in address else address  # an IPv6 address in brackets
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    temp = {name: directory / name for name in TEMP_DIRS}
    return f"""\
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {temp["body"]};
  proxy_temp_path {temp["proxy"]};
  fastcgi_temp_path {temp["fastcgi"]};
  uwsgi_temp_path {temp["uwsgi"]};
  scgi_temp_path {temp["scgi"]};
  client_max_body_size 200m;  # Streamlit's own upload limit
  map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
  map $cookie_{COOKIE} $fairfl_route {{ "" $request_id; default $cookie_{COOKIE}; }}
  map $cookie_{COOKIE} $fairfl_set_route {{
    "" "{COOKIE}=$request_id; Path=/; HttpOnly; SameSite=Lax";
    default "";  # the browser has its route: no Set-Cookie
  }}
  upstream fairfl_app {{
    hash $fairfl_route;
{servers}
  }}
  server {{
    listen {host}:{port};
    location / {{
      proxy_pass http://fairfl_app;
      proxy_http_version 1.1;
      proxy_next_upstream error timeout;  # a dead server's users go to another (restart_dead)
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1d;
      proxy_buffering off;
      proxy_request_buffering off;  # stream request bodies: nginx's workers may not write here
      add_header Set-Cookie $fairfl_set_route always;
      add_header X-FairFL-Serve "{token}" always;
    }}
  }}
}}
"""


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, what: str,
                 token: str | None = None) -> None:
    """Returns once ``url``/_stcore/health answers ``ok`` (with ``X-FairFL-Serve: token``
    if given) while ``proc`` runs; raises if ``proc`` dies first or :data:`STARTUP_SECONDS`
    pass, with the end of its log."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if proc.poll() is None:
            try:
                reply = httpx.get(f"{url}/_stcore/health", timeout=1.0)
                if reply.text == "ok" and (token is None
                                           or reply.headers.get("x-fairfl-serve") == token):
                    return
            except httpx.HTTPError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start (log {log}):\n{tail}")
        time.sleep(0.2)


def start_streamlit(port: int, log: Path, env: dict[str, str] | None = None,
                    streamlit_args: Sequence[str] = (), *,
                    append: bool = False) -> subprocess.Popen:
    """``streamlit run app/main.py`` on the loopback ``port``, in a session of its own,
    writing to ``log`` (after what it holds, if ``append``)."""
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP_MAIN), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", *streamlit_args],
            cwd=REPO, env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def worker_ports(workers: int, listen: int | None,
                 pick: Callable[[], int] = free_port) -> list[int]:
    """``workers`` distinct loopback ports for the app servers, however the OS hands them
    out, none of them nginx's ``listen`` port: that one is not bound until nginx starts, so
    the OS may hand it out again, and a server started on it would keep nginx from binding."""
    ports: list[int] = []
    while len(ports) < workers:
        if (candidate := pick()) not in ports and candidate != listen:
            ports.append(candidate)
    return ports


@contextmanager
def app_servers(workers: int, *, address: str = "127.0.0.1", port: int | None = None,
                streamlit_args: Sequence[str] = (), env: dict[str, str] | None = None,
                directory: Path | None = None) -> Iterator[AppServers]:
    """``workers`` app servers behind nginx at ``address``:``port`` (a free port if None);
    stops all of them on exit. Logs go to ``directory`` (a temporary folder if None)."""
    if workers < 2:
        raise ValueError(f"app_servers runs 2 or more servers behind nginx, not {workers}; "
                         "for one, run `streamlit run app/main.py`")
    taken = [a for a in streamlit_args if a.split("=")[0] in ("--server.port", "--server.address")]
    if taken:
        raise ValueError(f"{taken[0]} is set for each server here; give nginx's address and "
                         "port instead (--address, --port)")
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        raise RuntimeError("nginx not found: install it (Debian: apt-get install nginx-light) "
                           "or run one server (FAIRFL_APP_WORKERS=1)")
    with tempfile.TemporaryDirectory(prefix="fairfl-app-") as scratch:
        folder = Path(directory or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        procs: list[subprocess.Popen] = []
        started: AppServers | None = None
        try:
            ports = worker_ports(workers, port)
            for k, p in enumerate(ports):
                procs.append(start_streamlit(p, folder / f"streamlit-{k}.log", env,
                                             streamlit_args))
            for k, (p, proc) in enumerate(zip(ports, procs, strict=True)):
                wait_healthy(f"http://127.0.0.1:{p}", proc, folder / f"streamlit-{k}.log",
                             f"app server {k}")
            listen = port or free_port()
            token = secrets.token_hex(8)
            conf = folder / "nginx.conf"
            conf.write_text(nginx_config(ports, address, listen, folder, token))
            for name in TEMP_DIRS:
                (folder / name).mkdir(exist_ok=True)
            log = folder / "error.log"
            with (folder / "nginx.out").open("wb") as out:
                procs.append(subprocess.Popen(
                    [nginx, "-p", str(folder), "-c", str(conf), "-e", str(log)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))
            host = ("127.0.0.1" if address in ("0.0.0.0", "::")
                    else f"[{address}]" if ":" in address else address)
            url = f"http://{host}:{listen}"
            wait_healthy(url, procs[-1], log, "nginx", token)
            if dead := [p for p in procs if p.poll() is not None]:
                raise RuntimeError(f"a server stopped while nginx started (exit "
                                   f"{dead[0].returncode}); logs in {folder}")
            started = AppServers(url, [f"http://127.0.0.1:{p}" for p in ports], procs[:-1],
                                 procs[-1], folder, env, tuple(streamlit_args))
            yield started
        finally:
            _stop([*procs, *(started.servers if started is not None else [])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run several FairFL app servers behind nginx, one per user by a cookie "
                    "(see the module's docstring). Arguments after -- go to each "
                    "`streamlit run`.")
    parser.add_argument("--workers", type=int, default=2,
                        help="app servers, each its own process (default 2: one per core of "
                             "a 2-core machine)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="where nginx listens (default 127.0.0.1; 0.0.0.0 for every "
                             "interface)")
    parser.add_argument("--port", type=int, default=8501, help="nginx's port (default 8501)")
    parser.add_argument("--logs", type=Path, default=REPO / ".fairfl" / "app",
                        help="folder for the servers' and nginx's logs (default .fairfl/app)")
    args, extra = parser.parse_known_args(argv)

    def stop_on(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through app_servers, which stops the rest

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on)
    extra = [a for a in extra if a != "--"]
    if args.workers < 2:
        parser.error("--workers must be 2 or more; for one server run `make app`")
    try:
        with app_servers(args.workers, address=args.address, port=args.port,
                         streamlit_args=extra, directory=args.logs) as started:
            print(f"FairFL app: {started.url} ({args.workers} servers behind nginx; logs in "
                  f"{args.logs}). Ctrl-C stops them.", flush=True)
            while started.nginx.poll() is None:
                for k, code in restart_dead(started):
                    print(f"app server {k} stopped (exit {code}); started again on "
                          f"{started.upstreams[k]}. Its users reconnect to another server "
                          f"meanwhile, in a new session. Its log is in {args.logs}.",
                          file=sys.stderr, flush=True)
                time.sleep(1)
            print(f"nginx stopped (exit {started.nginx.returncode}); stopping the servers. "
                  f"Its log is in {args.logs}.", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
