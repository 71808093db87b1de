"""The chain side of ``benchmarks.gas_cost``: plain JSON-RPC to the private anvil, the accounts
and contracts every pass shares, and :class:`Pass`, which notes each transaction and sets the
ones it floors against their floor (:mod:`benchmarks.gas_floor`) while anvil still holds
their state."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection
from typing import Any

import httpx

from benchmarks.gas_floor import floor_of

#: Test-mnemonic accounts from here on are the passes' participants and buyers, never reused.
FIRST_ACCOUNT = 1_000
CREATOR, AGGREGATOR = 0, 1
FLT = 10**18
#: Scores and shares are in parts per million (TaskLedger.finalizeRound).
PPM = 1_000_000
REJECT_REASON = 5  # norm outlier
#: Functions sent once per participant and per round: only the first two of a pass are
#: traced and set against their floor (the others are alike).
BULK = {"register", "join", "submitUpdate", "claimRewards"}

# -- talking to anvil -------------------------------------------------------------------------
class Rpc:
    """Plain JSON-RPC to the private node: funding, mining, receipts, traces, raw transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=300.0)

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(calls), 200):
            body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                    for i, (m, p) in enumerate(calls[start:start + 200])]
            for reply in sorted(self.http.post(self.url, json=body).json(),
                                key=lambda r: r["id"]):
                if "error" in reply:
                    raise RuntimeError(f"{body[reply['id']]['method']}: {reply['error']}")
                results.append(reply["result"])
        return results

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]


def cid(*parts: Any) -> str:
    """A CIDv1 (raw, sha2-256) of the shape the agents publish: 59 characters."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return "b" + base64.b32encode(bytes([1, 0x55, 0x12, 0x20]) + digest).decode().lower() \
        .rstrip("=")


def key32(*parts: Any) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


# -- a pass -----------------------------------------------------------------------------------
class Setup:
    """The chain and contracts every pass shares."""

    def __init__(self, fairfl: Any, rpc: Rpc) -> None:
        from fl_agent.chain.node import dev_account

        self.fairfl, self.rpc = fairfl, rpc
        self.ledger, self.registry = fairfl.ledger, fairfl.registry
        self.market, self.token = fairfl.marketplace, fairfl.token
        self.creator, self.aggregator = dev_account(CREATOR), dev_account(AGGREGATOR)
        self.next_account = FIRST_ACCOUNT
        self.names = {a.lower(): n for n, a in {**fairfl.deployment.contracts,
                                                **fairfl.deployment.addons}.items()}

    def accounts(self, count: int) -> list[Any]:
        from fl_agent.chain.node import dev_account

        found = [dev_account(self.next_account + i) for i in range(count)]
        self.next_account += count
        self.rpc.batch([("anvil_setBalance", [str(a.address), hex(100 * 10**18)])
                        for a in found])
        return found


class Pass:
    """The transactions of one pass, each with what its floor needs. Of the functions in
    ``floored``, the first two of each bulk function and every other are traced and set
    against their floor at once (anvil keeps only recent states)."""

    def __init__(self, setup: Setup, label: str, participants: int,
                 floored: Collection[str]) -> None:
        self.setup, self.label, self.participants = setup, label, participants
        self.floored = frozenset(floored)
        self.txs: list[dict[str, Any]] = []
        self.floors: list[dict[str, Any]] = []
        self._seen: dict[str, int] = {}

    def note(self, function: str, receipt: Any, **ctx: Any) -> Any:
        self.txs.append({"function": function, "tx": receipt.tx_hash, "gas": receipt.gas_used,
                         **({"round": ctx["round"]} if "round" in ctx else {})})
        seen = self._seen[function] = self._seen.get(function, 0) + 1
        if function in self.floored and (function not in BULK or seen <= 2):
            self.floors.append({**self.analyse(function, receipt, ctx),
                                "participants": self.participants, "pass": self.label})
        return receipt

    def analyse(self, function: str, receipt: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        tx, full, diff = self.setup.rpc.batch([
            ("eth_getTransactionByHash", [receipt.tx_hash]),
            ("eth_getTransactionReceipt", [receipt.tx_hash]),
            ("debug_traceTransaction", [receipt.tx_hash, {"tracer": "prestateTracer",
                                                          "tracerConfig": {"diffMode": True}}])])
        data = bytes.fromhex(tx["input"].removeprefix("0x"))
        return floor_of(function, ctx, int(full["gasUsed"], 16), data, full["logs"], diff,
                        self.setup.names)
