"""Watching contract events with a cursor that survives restarts.

An agent processes each event once: the watcher returns the logs after its cursor, in chain
order (block, then log index), and the agent acknowledges each log once handled; the
cursor, a small JSON file, then moves past it. After a restart, a new watcher on the same
file resumes after the last acknowledged log, so nothing is processed twice and nothing is
missed. On real networks, logs are only returned once ``confirmations`` blocks sit on top
of them, so a shallow reorganisation cannot make an agent act on a vanished event.

Written by hand because ape's ``poll_logs`` keeps no cursor across processes and gives up
after ~10 s without a new block on an auto-mining chain (see TOOLCHAIN.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fl_agent.chain.logs import block_hash, contract_logs, height
from fl_agent.errors import ChainError, FairFLError


@dataclass(frozen=True, order=True)
class Cursor:
    """The position of the last acknowledged log, and the hash of its block (to notice a
    chain that was reset or reorganised under the cursor)."""

    block: int
    log_index: int
    block_hash: str = field(default="", compare=False)


class CursorFile:
    """A cursor persisted atomically as JSON."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> Cursor | None:
        try:
            data = json.loads(self.path.read_text())
            return Cursor(int(data["block"]), int(data["log_index"]),
                          str(data.get("block_hash", "")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:
            raise ChainError(f"cursor file {self.path} is corrupt ({err}); delete it to "
                             "replay events from the start block") from err

    def save(self, cursor: Cursor) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".cursor-")
        with os.fdopen(fd, "w") as handle:
            json.dump({"block": cursor.block, "log_index": cursor.log_index,
                       "block_hash": cursor.block_hash}, handle)
        os.replace(tmp, self.path)


def _position(log: Any) -> Cursor:
    return Cursor(int(log.block_number), int(log.log_index), _hex(getattr(log, "block_hash", "")))


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value or "").lower()


class EventWatcher:
    """New logs of some events of one contract, after a persisted cursor.

    ``filters`` narrows on indexed arguments (``{"taskId": 3}``), for every event watched.
    """

    def __init__(self, contract: Any, events: Iterable[str], cursor_path: Path | str, *,
                 start_block: int = 0, confirmations: int = 0,
                 filters: dict[str, Any] | None = None,
                 height: Callable[[], int] | None = None,
                 block_hash: Callable[[int], str | None] | None = None) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        self.contract = contract
        self.events = tuple(events)
        unknown = [e for e in self.events if not hasattr(contract, e)]
        if unknown:
            raise ValueError(f"the contract has no event(s) {unknown}")
        self.cursor_file = CursorFile(cursor_path)
        self.start_block = start_block
        self.confirmations = confirmations
        self.filters = filters or None
        self._height = height or _chain_height
        self._block_hash = block_hash or _chain_block_hash
        self.cursor = self.cursor_file.load()
        #: Set when the chain under the cursor changed and the watcher started over.
        self.rewound = False

    def poll(self) -> list[Any]:
        """Confirmed logs after the cursor, oldest first (nothing is acknowledged yet). If the
        cursor's block is gone or has another hash (the chain was reset and rebuilt, or
        reorganised deeper than the confirmations), the watcher starts over from
        ``start_block``: handlers must be idempotent, as the agents are (they check the
        chain's state before acting)."""
        if self.cursor is not None and self.cursor.block_hash and \
                self._block_hash(self.cursor.block) != self.cursor.block_hash:
            self.cursor, self.rewound = None, True
        last = self._height() - self.confirmations
        first = self.cursor.block if self.cursor else self.start_block
        if last < first:
            return []
        logs = []
        for name in self.events:
            logs.extend(contract_logs(self.contract, name, first, last, self.filters))
        logs.sort(key=_position)
        return [log for log in logs if self.cursor is None or _position(log) > self.cursor]

    def ack(self, log: Any) -> None:
        """Marks ``log`` handled: the cursor moves past it, on disk too."""
        position = _position(log)
        if self.cursor is not None and position <= self.cursor:
            raise ChainError(f"log at {position} acknowledged out of order (cursor at "
                             f"{self.cursor})")
        self.cursor = position
        self.cursor_file.save(position)

    def run(self, handler: Callable[[Any], None], *, poll_interval: float = 1.0,
            until: Callable[[], bool] = lambda: False,
            on_rejected: Callable[[Any, FairFLError], None] | None = None) -> None:
        """Feeds every new log to ``handler`` until ``until()`` is true.

        A :class:`FairFLError` from the handler means the event's input was bad (a wrong CID,
        malformed weights): it is reported to ``on_rejected`` and acknowledged, so one bad
        participant cannot stall everyone else. Any other exception propagates with the
        cursor left before the log, so the log is handled again after a restart.
        """
        while not until():
            for log in self.poll():
                try:
                    handler(log)
                except FairFLError as err:
                    if on_rejected is not None:
                        on_rejected(log, err)
                self.ack(log)
                if until():
                    return
            time.sleep(poll_interval)


def _chain_height() -> int:
    return height()


def _chain_block_hash(number: int) -> str | None:
    # None only when the chain has no such block: a node that does not answer is an error
    # (before, it looked like a rewound chain, and the watcher started over).
    return block_hash(number)
