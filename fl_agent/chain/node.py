"""A persistent local anvil: started once, shared by agents, scripts and the app.

anvil's ``--state`` loads the chain from a file at start and dumps it at exit (and every few
seconds with ``--state-interval``), so the chain survives restarts. The process runs
detached; its pid and log live beside the state file.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fl_agent.errors import ChainError, ConfigError

DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
#: Recent states anvil keeps (in memory); older ones are dropped, not written to disk.
KEPT_STATES = 256


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for a private anvil)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def dev_account(index: int) -> Any:
    """The ``index``-th account of the test mnemonic (funded by ``fl-agent chain up`` and by
    the simulation's private anvil)."""
    from ape import accounts

    manager = accounts.test_accounts
    if index < manager.number_of_accounts:
        return manager[index]
    return manager.containers["test"].generate_account(index=index)


@dataclass(frozen=True)
class LocalChain:
    """Where the local chain keeps its files and where it listens."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = 8545

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def pid_file(self) -> Path:
        return self.directory / "anvil.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "anvil.log"

    def block_number(self) -> int | None:
        """The chain's height, or None when nothing answers at :attr:`url`."""
        try:
            reply = httpx.post(
                self.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                timeout=2.0,
            )
            return int(reply.json()["result"], 16)
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(
        self, *, accounts: int = 30, block_time: int | None = None, timeout: float = 30.0
    ) -> int:
        """Starts anvil detached, loading the saved state if any. Returns its pid."""
        if (pid := self.pid()) is not None:
            return pid
        if self.block_number() is not None:
            raise ChainError(
                f"something else already answers at {self.url}; stop it or pick "
                "another port with --port / FAIRFL_RPC_PORT"
            )
        anvil = shutil.which("anvil")
        if anvil is None:
            raise ConfigError(
                "anvil not found on PATH; run `make setup` (it links the npm "
                "anvil into .venv/bin) and use the venv"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        cmd = [
            anvil,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--accounts",
            str(accounts),
            "--mnemonic",
            DEFAULT_MNEMONIC,
            "--state",
            str(self.state_file),
            "--state-interval",
            "2",
            "--hardfork",
            "prague",
            # Keep recent states in memory only: by default anvil spills every old state to
            # ~/.foundry/anvil/tmp (gigabytes for a long simulation) and nothing here reads
            # state at old blocks.
            "--prune-history",
            str(KEPT_STATES),
        ]
        if block_time:
            cmd += ["--block-time", str(block_time)]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ChainError(f"anvil exited with {proc.returncode}; see {self.log_file}")
            if self.block_number() is not None:
                return proc.pid
            time.sleep(0.2)
        proc.kill()
        raise ChainError(
            f"anvil did not answer at {self.url} within {timeout:.0f}s; see {self.log_file}"
        )

    def stop(self, timeout: float = 15.0) -> bool:
        """Stops anvil gracefully so that it dumps its state. False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _exited(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def reset(self) -> None:
        """Stops the chain and deletes its state: the next start is a fresh chain."""
        self.stop()
        self.state_file.unlink(missing_ok=True)


def _exited(pid: int) -> bool:
    """Whether process ``pid`` has exited. A child of this process (a chain it started) stays
    a zombie until it is reaped, and ``kill(pid, 0)`` succeeds on a zombie: reap it here."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:  # started by another process: its parent reaps it
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False

