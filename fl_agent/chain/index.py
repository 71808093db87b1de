"""A local index of every FairFL event, kept up to date incrementally.

Pages and reports that show history (tasks, rounds, purchases, reputations) read it from
here instead of querying the node's logs per task on every render. :meth:`EventIndex.sync`
asks the node only for the blocks after the index's cursor, with one ``eth_getLogs`` per
chunk over the four contracts at once, decodes the logs with the contracts' ABIs (ape's
decoder) and stores them in SQLite together with the new cursor, in one transaction: a
crash never leaves events without their cursor or the reverse, and a restarted process
carries on from the file.

The cursor also remembers the hash of its block. When the node's block at that height has
another hash (a reorganisation deeper than the confirmations, or a local chain that was
reset and rebuilt), the index starts again from the deployment block rather than mixing two
histories. Only blocks ``confirmations`` deep are indexed.

Several processes may share one file (the app run as several servers, ``app/serve.py``):
opening it and syncing take a lock file beside it (``<file>.lock``, :mod:`filelock`), so
one process at a time checks the file's identity, resets it or moves its cursor, and the
next finds the cursor where the last left it. Reads take no lock: the file is in SQLite's
WAL mode, where a reader sees the last committed state while a writer writes.

Written by hand: ape's event queries are per event and per call, and keep no state between
processes; :class:`~fl_agent.chain.watcher.EventWatcher` serves agents that act on each
event once, while this keeps the whole history queryable.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from filelock import FileLock

from fl_agent.chain.deployment import CONTRACTS, Deployment
from fl_agent.errors import ChainError

#: Blocks per ``eth_getLogs`` call (public RPC providers cap ranges at a few thousand); a
#: node that refuses a range (too many results) gets half of it, down to one block.
CHUNK_BLOCKS = 2_000
#: The contracts whose events the views need (the token's transfers are not history here).
INDEXED = ("ParticipantRegistry", "TaskLedger", "ModelMarketplace")
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx TEXT NOT NULL,
    contract TEXT NOT NULL,
    name TEXT NOT NULL,
    task INTEGER,
    model INTEGER,
    account TEXT,
    args TEXT NOT NULL,
    PRIMARY KEY (block, log_index)
);
CREATE INDEX IF NOT EXISTS events_by_name ON events (name, task, model);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, name);
"""

#: Event arguments that name the participant, buyer or payee a row is about.
_ACCOUNT_ARGS = ("participant", "account", "buyer", "payee")


@dataclass(frozen=True)
class Event:
    """One decoded log: where it is, which event, and its arguments as plain JSON values
    (addresses checksummed, bytes as 0x-hex, structs as dicts)."""

    block: int
    log_index: int
    tx: str
    contract: str
    name: str
    args: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


def plain(value: Any) -> Any:
    """An ape-decoded event value as JSON: structs become dicts, bytes become hex."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


class RpcError(ChainError):
    """The node answered a JSON-RPC call with an error; ``data`` holds revert data, if any."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


#: How hosted endpoints word "too many requests" when they answer with HTTP 200 and a
#: JSON-RPC error: Infura ("project ID request rate exceeded", "daily request count exceeded,
#: request rate limited", code -32005, which it also uses for "query returned more than 10000
#: results"), QuickNode ("request limit reached", -32007), Ankr and public nodes ("Too many
#: requests", -32090), Chainstack ("RPS limit"), and "throttled" in general. Alchemy puts
#: HTTP's 429 in the code itself.
RATE_LIMIT_WORDS = re.compile(
    r"\brate[-_ ]?limit|rate exceeded|too many requests|request limit|\brps limit|\bthrottl",
    re.IGNORECASE)


def rate_limited(code: object, message: str) -> bool:
    """Whether a JSON-RPC error means "not now" (the endpoint rations requests) rather than
    "no": a caller should wait and ask again, not change its request."""
    return code == 429 or bool(RATE_LIMIT_WORDS.search(message))


class JsonRpc:
    """The few JSON-RPC calls the app needs, over ``httpx`` (thread-safe, no ape)."""

    def __init__(self, url: str, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        try:
            reply = self._client.post(self.url, json={"jsonrpc": "2.0", "id": self._id,
                                                      "method": method,
                                                      "params": list(params)})
            reply.raise_for_status()
            body = reply.json()
        except (httpx.HTTPError, ValueError) as err:
            raise ChainError(f"the node at {self.url} did not answer {method}: {err}") from err
        if "error" in body:
            error = body["error"] if isinstance(body["error"], dict) else {}
            raise RpcError(f"the node at {self.url} refused {method}: "
                           f"{error.get('message', body['error'])}", error.get("code"),
                           error.get("data"))
        return body["result"]

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def block_hash(self, number: int) -> str | None:
        block = self.call("eth_getBlockByNumber", hex(number), False)
        return None if block is None else str(block["hash"])

    def logs(self, addresses: Sequence[str], first: int, last: int) -> list[dict[str, Any]]:
        return list(self.call("eth_getLogs", {"address": list(addresses),
                                              "fromBlock": hex(first), "toBlock": hex(last)}))


Decoder = Callable[[str, list[dict[str, Any]]], Iterable[Any]]


def ape_decoder(project: Any) -> Decoder:
    """Decodes a contract's raw logs with its ABI from ``project`` (ape's decoder)."""
    from ape import networks

    events = {name: list(getattr(project, name).contract_type.events) for name in CONTRACTS}

    def decode(contract: str, logs: list[dict[str, Any]]) -> Iterable[Any]:
        return networks.ethereum.decode_logs(logs, *events[contract])

    return decode


def event_of(decoded: Any, contract: str) -> Event:
    """An ape-decoded log of ``contract`` as an :class:`Event`."""
    tx = decoded.transaction_hash
    return Event(int(decoded.block_number), int(decoded.log_index),
                 "0x" + bytes(tx).hex() if isinstance(tx, bytes) else str(tx), contract,
                 str(decoded.event_name),
                 {k: plain(v) for k, v in decoded.event_arguments.items()})


class EventIndex:
    """The events of one deployment in a SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str, deployment: Deployment, rpc: JsonRpc,
                 decoder: Decoder, *, confirmations: int = 0) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations must be >= 0, got {confirmations}")
        self.path = Path(path)
        self.deployment = deployment
        self.rpc = rpc
        self.decoder = decoder
        self.confirmations = confirmations
        self._names = {deployment.contracts[n].lower(): n for n in INDEXED
                       if n in deployment.contracts}
        self._lock = threading.RLock()  # this process's threads
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = FileLock(self.path.with_name(self.path.name + ".lock"))  # processes
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60.0)
        identity = json.dumps({"schema": SCHEMA_VERSION, "chain": deployment.chain_id,
                               "contracts": deployment.contracts}, sort_keys=True)
        with self._lock, self._writer:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            if self._meta("identity") != identity:
                self._reset()
                with self._db:
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)",
                                     (identity,))

    # -- state --------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def cursor(self) -> int | None:
        """The last indexed block, or None before the first sync."""
        value = self._meta("cursor_block")
        return None if value is None else int(value)

    def _reset(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM events")
            self._db.execute("DELETE FROM meta WHERE key IN ('cursor_block', 'cursor_hash')")

    # -- sync ---------------------------------------------------------------------------
    @property
    def cursor_hash(self) -> str | None:
        return self._meta("cursor_hash")

    def sync(self) -> int:
        """Indexes every confirmed block after the cursor; returns the number of new
        events. Safe to call from several threads and processes."""
        with self._lock, self._writer:
            head = self.rpc.block_number() - self.confirmations
            cursor = self.cursor
            if cursor is not None and self.rpc.block_hash(cursor) != self._meta("cursor_hash"):
                self._reset()  # the chain under the cursor changed: rebuild
                cursor = None
            first = self.deployment.block if cursor is None else cursor + 1
            added, chunk = 0, CHUNK_BLOCKS
            while first <= head:
                last = min(head, first + chunk - 1)
                # The hash of the chunk's last block is read before and after its logs: if
                # it moved, a reorganisation happened in between and the chunk is read again.
                before = self.rpc.block_hash(last)
                try:
                    logs = self.rpc.logs(list(self._names), first, last)
                except RpcError as err:
                    if chunk == 1 or rate_limited(err.code, str(err)):
                        raise  # a smaller range would not help
                    chunk = max(1, chunk // 2)
                    continue
                if self.rpc.block_hash(last) != before:
                    continue
                rows = list(self._decode(logs))
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows)
                    self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                         [("cursor_block", str(last)),
                                          ("cursor_hash", str(before))])
                added += len(rows)
                first = last + 1
            return added

    def _decode(self, logs: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        by_contract: dict[str, list[dict[str, Any]]] = {}
        for log in logs:
            name = self._names.get(str(log["address"]).lower())
            if name is not None:
                by_contract.setdefault(name, []).append(log)
        for contract, raw in by_contract.items():
            for decoded in self.decoder(contract, raw):
                event = event_of(decoded, contract)
                args = event.args
                account = next((args[k] for k in _ACCOUNT_ARGS if k in args), None)
                yield (event.block, event.log_index, event.tx, contract, event.name,
                       args.get("taskId"), args.get("modelId"),
                       None if account is None else str(account).lower(), json.dumps(args))

    # -- queries ------------------------------------------------------------------------
    def events(self, *names: str, task: int | None = None, model: int | None = None,
               account: str | None = None, since_block: int | None = None) -> list[Event]:
        """Indexed events in chain order, narrowed by name, task, model, account or block."""
        where, params = [], []
        if names:
            where.append(f"name IN ({', '.join('?' * len(names))})")
            params.extend(names)
        for column, value in (("task", task), ("model", model)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if account is not None:
            where.append("account = ?")
            params.append(account.lower())
        if since_block is not None:
            where.append("block >= ?")
            params.append(since_block)
        sql = "SELECT block, log_index, tx, contract, name, args FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY block, log_index", params).fetchall()
        return [Event(b, i, tx, c, n, json.loads(a)) for b, i, tx, c, n, a in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
