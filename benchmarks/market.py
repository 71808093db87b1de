"""Key delivery under load and purchase gas, measured on a private anvil (``make bench-market``).

A small task is trained and its model listed (the simulation's agents). Then two phases, each
with buyers of its own (fresh accounts, funded with ETH and FLT beforehand):

* **agent down**: N buyers buy while the seller's key agent is stopped (each with a permit, as
  the app does by default; one more pays with approve + buy). The agent is then started as its
  own process (``fl-agent market serve --once``) and serves the backlog in batches
  (``deliverKeys``, :data:`~fl_agent.market.key_agent.BATCH` keys each).
* **live**: the agent runs (``fl-agent market serve``, polling every 2 s as under ``make app``)
  while M more buyers arrive at a steady rate (10 a second by default), until the last one is
  served.

Afterwards every purchase is checked on chain: ``purchase(model, buyer).status`` is DELIVERED
and there is exactly one ``KeyDelivered`` per buyer. The script reports each phase's delivery
latency in blocks and in seconds (p50/p90/p99/max; seconds come from a clock that notes when
each block appeared, polling the node every 10 ms), and the gas per purchase and per delivered
key. Every purchase is mined in a block of its own (anvil's automine), so a latency in blocks
also counts the purchases that came in between.

The first purchase and the approve one go through :func:`fl_agent.market.buyer.buy_model`
(what ``fl-agent market buy`` runs). The others sign the same buyer-key message, permit and
``buyWithPermit`` transaction with eth-account beforehand (in two processes) and are sent raw,
which keeps 2,000 purchases within minutes on two cores; the buyer's checks before buying
(listing, balance, trained model) are the buyer's side and not what is measured here.

Writes ``reports/bench/market.json`` (the keys of the agent-down phase at the top, as before;
``agent_down``, ``live``, ``gas`` and ``accounting`` beside them) and ``market.png`` (latency
distributions, and the live phase over time), and prints a Markdown table (``docs/load.md``
and ``docs/marketplace.md`` quote it). Exits with 1 if a purchase was not delivered.

    python -m benchmarks.market --purchases 1000            # 1,000 while down, 1,000 live
    python -m benchmarks.market --purchases 50 --live 0     # the backlog alone
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx

from benchmarks import machine, percentiles, publish, stop_process

FLT = 10**18
PRICE = 20 * FLT
FIRST_BUYER = 100  # dev account index of the buyers that go through buy_model
#: ``buyWithPermit`` uses about 141k gas (158k for a model's first sale).
GAS_LIMIT = 400_000
MAX_FEE, PRIORITY_FEE = 10 * 10**9, 10**9
#: JSON-RPC calls per HTTP request when setting up and reading back.
RPC_BATCH = 200


# -- talking to anvil ---------------------------------------------------------------------------
class Rpc:
    """Plain JSON-RPC to the node, with batches (thousands of setup calls and reads)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=60.0)

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(calls), RPC_BATCH):
            body = [{"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                    for i, (method, params) in enumerate(calls[start:start + RPC_BATCH])]
            replies = sorted(self.http.post(self.url, json=body).json(), key=lambda r: r["id"])
            for reply in replies:
                if "error" in reply:
                    method = body[reply["id"]]["method"]
                    raise RuntimeError(f"{method}: {reply['error']}")
            results += [reply["result"] for reply in replies]
        return results

    def height(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def receipts(self, tx_hashes: list[str], timeout: float = 60.0) -> list[dict[str, Any]]:
        """The receipts of ``tx_hashes``, each checked to have succeeded."""
        deadline = time.monotonic() + timeout
        while None in (found := self.batch([("eth_getTransactionReceipt", [h])
                                            for h in tx_hashes])):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{found.count(None)} transactions not mined")
            time.sleep(0.05)
        failed = [r["transactionHash"] for r in found if r["status"] != "0x1"]
        if failed:
            raise RuntimeError(f"{len(failed)} transactions reverted, e.g. {failed[0]}")
        return found


class BlockClock(threading.Thread):
    """When each block appeared (``time.monotonic()``), from the node's height polled every
    ``interval`` seconds. Blocks mined between two polls get the later poll's time: at most
    one interval (and a round trip) late, for purchases and deliveries alike."""

    def __init__(self, url: str, interval: float = 0.01) -> None:
        super().__init__(name="block-clock", daemon=True)
        self.url, self.interval = url, interval
        self.seen: dict[int, float] = {}
        self._stopped = threading.Event()

    def run(self) -> None:
        last: int | None = None
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        with httpx.Client(timeout=10.0) as http:
            while not self._stopped.is_set():
                height = int(http.post(self.url, json=body).json()["result"], 16)
                now = time.monotonic()
                for block in range(height if last is None else last + 1, height + 1):
                    self.seen[block] = now
                last = height
                self._stopped.wait(self.interval)

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)


# -- buyers -------------------------------------------------------------------------------------
def _buyer_key_bytes(index: int) -> bytes:
    from eth_utils import keccak

    return keccak(b"fairfl benchmark buyer " + index.to_bytes(4, "big"))


def buyer_address(index: int) -> str:
    from eth_account import Account

    return str(Account.from_key(_buyer_key_bytes(index)).address)


def sign_purchases(indices: list[int], order: dict[str, Any]) -> list[tuple[str, str]]:
    """``(address, raw transaction)`` of each buyer's ``buyWithPermit``: the buyer key derived
    from its signature of the buyer-key message, the permit signed for its first nonce, and
    the transaction signed for its first nonce (what the app has the wallet do). Runs in a
    worker process: plain eth-account, no chain."""
    from eth_abi import encode
    from eth_account import Account
    from eth_account.messages import encode_defunct, encode_typed_data
    from eth_utils import function_signature_to_4byte_selector

    from fl_agent.crypto.wallet_keys import buyer_key_message, key_from_signature, public_bytes
    from fl_agent.market.payment import permit_typed_data, split_signature

    method = order["method"]  # buyWithPermit(uint256,uint256,bytes32,uint256,uint8,bytes32,bytes32)
    selector = function_signature_to_4byte_selector(method)
    types = method[method.index("(") + 1:-1].split(",")
    message = buyer_key_message(order["chain_id"], order["market"], order["model_id"])
    signed = []
    for index in indices:
        account = Account.from_key(_buyer_key_bytes(index))
        key = public_bytes(key_from_signature(account.sign_message(
            encode_defunct(text=message)).signature, message))
        typed = permit_typed_data(order["domain"], account.address, order["market"],
                                  order["price"], 0, order["deadline"])
        v, r, s = split_signature(account.sign_message(
            encode_typed_data(full_message=typed)).signature)
        data = selector + encode(types, [order["model_id"], order["price"], key,
                                         order["deadline"], v, r, s])
        tx = account.sign_transaction({
            "type": 2, "chainId": order["chain_id"], "nonce": 0, "to": order["market"],
            "value": 0, "data": data, "gas": GAS_LIMIT, "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": PRIORITY_FEE})
        signed.append((str(account.address), "0x" + tx.raw_transaction.hex()))
    return signed


def sign_all(indices: list[int], order: dict[str, Any], workers: int = 2
             ) -> list[tuple[str, str]]:
    if len(indices) < 50:
        return sign_purchases(indices, order)
    chunks = [indices[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(sign_purchases, chunks, [order] * len(chunks)))
    by_index = {i: pair for chunk, part in zip(chunks, parts, strict=True)
                for i, pair in zip(chunk, part, strict=True)}
    return [by_index[i] for i in indices]


def fund(rpc: Rpc, token: Any, minter: str, buyers: list[str]) -> None:
    """100 ETH and 100 FLT to each buyer: ``anvil_setBalance``, and the mints sent from the
    unlocked minter with automine off and packed into full blocks (setup, not measured)."""
    rpc.batch([("anvil_setBalance", [b, hex(100 * 10**18)]) for b in buyers])
    nonce = int(rpc.call("eth_getTransactionCount", minter, "pending"), 16)
    to = str(token.address)
    rpc.call("evm_setAutomine", False)
    try:
        hashes = rpc.batch([("eth_sendTransaction", [{
            "from": minter, "to": to, "nonce": hex(nonce + i), "gas": hex(200_000),
            "data": "0x" + bytes(token.mint.encode_input(b, 100 * FLT)).hex()}])
            for i, b in enumerate(buyers)])
        while int(rpc.call("txpool_status")["pending"], 16):
            rpc.call("evm_mine")
    finally:
        rpc.call("evm_setAutomine", True)
    rpc.receipts(hashes)


# -- the run ------------------------------------------------------------------------------------
def run(purchases: int, live: int, rate: float, poll_interval: float, workdir: Path
        ) -> dict[str, Any]:
    from ape import chain, networks
    from eth_utils import keccak

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import LocalChain, dev_account, free_port
    from fl_agent.market.buyer import buy_model
    from fl_agent.market.payment import PERMIT_LIFETIME_SECONDS, permit_domain
    from fl_agent.simulation.runner import SimulationConfig, run_simulation
    from fl_agent.storage.store import LocalStore

    wall: dict[str, float] = {}
    began = time.monotonic()
    node = LocalChain(workdir / "chain", "127.0.0.1", free_port())
    node.reset()
    node.start(accounts=10)
    clock = BlockClock(node.url)
    agent: subprocess.Popen | None = None
    env = {**os.environ, "FAIRFL_NETWORK": node.url, "FAIRFL_HOME": str(workdir),
           "FAIRFL_DEPLOYMENTS": str(workdir / "deployments"), "PYTHONUNBUFFERED": "1"}
    try:
        config = SimulationConfig.build(clients=4, malicious=0.0, attack="none", rounds=2,
                                        steps=5, scoring="loo", seed=1, list_price=PRICE)
        report = run_simulation(config, workdir=workdir / "sim", network=node.url,
                                deployments=workdir / "deployments", keys_dir=workdir / "keys",
                                store=LocalStore(workdir / "store"))
        model_id = report["listing"]["model_id"]
        rpc = Rpc(node.url)
        with networks.parse_network_choice(node.url):
            fairfl = FairFL(load_deployment(node.url, workdir / "deployments"))
            owner = dev_account(0)
            token, market = fairfl.token, fairfl.marketplace
            token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
            wall["setup"] = time.monotonic() - began

            # Buyers: one permit and one approve through buy_model, the rest signed here.
            started = time.monotonic()
            via_ape = [dev_account(FIRST_BUYER), dev_account(FIRST_BUYER + 1)]
            domain = permit_domain(fairfl.payment_token.contract)
            if domain is None:
                raise RuntimeError("the payment token takes no permits")
            order = {"method": market.contract.buyWithPermit.abis[0].selector,
                     "chain_id": int(chain.chain_id), "market": str(market.address),
                     "model_id": model_id, "price": PRICE, "domain": domain,
                     "deadline": int(time.time()) + PERMIT_LIFETIME_SECONDS}
            signed = sign_all(list(range(purchases - 1 + live)), order)
            down_orders, live_orders = signed[:purchases - 1], signed[purchases - 1:]
            wall["signing"] = time.monotonic() - started
            started = time.monotonic()
            fund(rpc, token.contract, owner.address,
                 [str(a.address) for a in via_ape] + [a for a, _ in signed])
            wall["funding"] = time.monotonic() - started

            # Phase 1: purchases while the key agent is down.
            clock.start()
            started = time.monotonic()
            bought: dict[str, dict[str, Any]] = {}
            first = buy_model(fairfl, via_ape[0], model_id, permit=True)
            bought[str(via_ape[0].address)] = {"via": "permit", "gas": first.gas_used,
                                               "block": first.receipts[-1].block}
            hashes = [rpc.call("eth_sendRawTransaction", raw) for _, raw in down_orders]
            for (address, _), receipt in zip(down_orders, rpc.receipts(hashes), strict=True):
                bought[address] = {"via": "permit", "gas": int(receipt["gasUsed"], 16),
                                   "block": int(receipt["blockNumber"], 16)}
            last = buy_model(fairfl, via_ape[1], model_id, permit=False)
            bought[str(via_ape[1].address)] = {"via": last.via, "gas": last.gas_used,
                                               "block": last.receipts[-1].block}
            start_block = rpc.height()
            wall["down_purchases"] = time.monotonic() - started

        # The agent serves the backlog and exits.
        agent_started = time.monotonic()
        subprocess.run([sys.executable, "-m", "fl_agent.cli", "market", "serve",
                        "--account", "TEST::0", "--once"], env=env, check=True,
                       capture_output=True)
        agent_seconds = time.monotonic() - agent_started
        wall["down_agent"] = agent_seconds

        # Phase 2: the agent runs while buyers keep arriving.
        live_bought: dict[str, dict[str, Any]] = {}
        live_sending = 0.0
        live_wait = 0.0
        agent_failure = None
        if live:
            log = workdir / "key-agent.log"
            with log.open("wb") as out:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "fl_agent.cli", "market", "serve", "--account",
                     "TEST::0", "--poll-interval", str(poll_interval)],
                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
            started = time.monotonic()
            _wait_for(lambda: b"key agent for" in log.read_bytes(), 120, agent, log)
            wall["live_agent_start"] = time.monotonic() - started
            live_first_block = rpc.height() + 1
            started = time.monotonic()
            hashes = []
            for i, (_, raw) in enumerate(live_orders):
                pause = started + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                hashes.append(rpc.call("eth_sendRawTransaction", raw))
            live_sending = time.monotonic() - started
            for (address, _), receipt in zip(live_orders, rpc.receipts(hashes), strict=True):
                live_bought[address] = {"via": "permit", "gas": int(receipt["gasUsed"], 16),
                                        "block": int(receipt["blockNumber"], 16)}
            topic = "0x" + keccak(text=market.contract.KeyDelivered.abi.selector).hex()
            model_topic = "0x" + model_id.to_bytes(32, "big").hex()
            waited = time.monotonic()
            deadline = waited + max(60.0, 20 * poll_interval)
            while time.monotonic() < deadline and agent.poll() is None:
                served = rpc.call("eth_getLogs", {"address": str(market.address),
                                                  "fromBlock": hex(live_first_block),
                                                  "topics": [topic, model_topic]})
                if len(served) >= len(live_orders):
                    break
                time.sleep(0.2)
            live_wait = time.monotonic() - waited
            if agent.poll() is not None:
                agent_failure = log.read_text(errors="replace")[-3000:]
            stop_process(agent)
            agent = None
        wall["live"] = live_sending + live_wait
        clock.stop()

        # Reading back: every KeyDelivered, the delivery transactions, every purchase status.
        topic = "0x" + keccak(text=market.contract.KeyDelivered.abi.selector).hex()
        logs = rpc.call("eth_getLogs", {"address": str(market.address),
                                        "fromBlock": hex(fairfl.deployment.block),
                                        "topics": [topic, "0x" + model_id.to_bytes(32, "big")
                                                   .hex()]})
        delivered_events = [("0x" + entry["topics"][2][-40:], int(entry["blockNumber"], 16),
                             entry["transactionHash"]) for entry in logs]
        txs = sorted({tx for _, _, tx in delivered_events})
        tx_gas = {r["transactionHash"]: int(r["gasUsed"], 16) for r in rpc.receipts(txs)}
        everyone = {**bought, **live_bought}
        status_call = market.contract.purchase.abis[0].selector
        statuses = _statuses(rpc, str(market.address), status_call, model_id, list(everyone))
    finally:
        if agent is not None:
            stop_process(agent)
        if clock.is_alive():
            clock.stop()
        node.stop()
    wall["total"] = time.monotonic() - began
    return summarise(purchases=bought, live=live_bought, events=delivered_events, tx_gas=tx_gas,
                     statuses=statuses, clock=clock.seen, start_block=start_block,
                     agent_started=agent_started, agent_seconds=agent_seconds,
                     settings={"purchases": purchases, "live": live, "rate_per_s": rate,
                               "poll_interval_s": poll_interval},
                     live_sending=live_sending, agent_failure=agent_failure, wall=wall)


def _statuses(rpc: Rpc, market: str, signature: str, model_id: int, buyers: list[str]
              ) -> dict[str, int]:
    """``purchase(model, buyer).status`` of each buyer: the first word of the returned
    struct (all its fields are static, so it is encoded in place)."""
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    selector = function_signature_to_4byte_selector(signature)
    raw = rpc.batch([("eth_call", [{"to": market, "data": "0x" + (selector + encode(
        ["uint256", "address"], [model_id, b])).hex()}, "latest"]) for b in buyers])
    return {b.lower(): int(r[2:66], 16) for b, r in zip(buyers, raw, strict=True)}


def summarise(*, purchases: dict[str, dict[str, Any]], live: dict[str, dict[str, Any]],
              events: list[tuple[str, int, str]], tx_gas: dict[str, int],
              statuses: dict[str, int], clock: dict[int, float], start_block: int,
              agent_started: float, agent_seconds: float, settings: dict[str, Any],
              live_sending: float, agent_failure: str | None, wall: dict[str, float]
              ) -> dict[str, Any]:
    from fl_agent.chain.records import PurchaseStatus

    per_buyer = Counter(buyer for buyer, _, _ in events)
    delivered_at = {buyer: block for buyer, block, _ in events}
    keys_in_tx = Counter(tx for _, _, tx in events)
    down_buyers = {b.lower(): v for b, v in purchases.items()}
    live_buyers = {b.lower(): v for b, v in live.items()}

    def phase_txs(buyers: dict[str, Any]) -> list[str]:
        return sorted({tx for b, _, tx in events if b in buyers})

    def gas_per_key(txs: list[str]) -> int:
        keys = sum(keys_in_tx[tx] for tx in txs)
        return round(sum(tx_gas[tx] for tx in txs) / max(1, keys))

    served_down = [b for b in down_buyers if b in delivered_at]
    served_live = [b for b in live_buyers if b in delivered_at]
    down_txs, live_txs = phase_txs(down_buyers), phase_txs(live_buyers)
    from_purchase = [delivered_at[b] - down_buyers[b]["block"] for b in served_down]
    from_start = [delivered_at[b] - start_block for b in served_down]
    permit_gas = [v["gas"] for v in [*purchases.values(), *live.values()] if v["via"] == "permit"]
    down_permit_gas = [v["gas"] for v in purchases.values() if v["via"] == "permit"]
    approve_gas = [v["gas"] for v in purchases.values() if v["via"] == "approve"]
    not_delivered = sorted(b for b, s in statuses.items() if s != PurchaseStatus.DELIVERED)
    duplicates = sorted(b for b, n in per_buyer.items() if n > 1)
    stray = sorted(set(per_buyer) - set(statuses))
    live_start = min((clock[v["block"]] for v in live.values()), default=0.0)
    live_span = max((clock[v["block"]] for v in live.values()), default=0.0) - live_start
    delivery_gas = sum(tx_gas[tx] for tx in down_txs)
    return {
        # The agent-down phase, with the keys and meaning of the earlier 50-purchase report.
        "purchases": len(down_buyers), "delivered": len(served_down),
        "missing": sorted(set(down_buyers) - set(served_down)),
        "delivery_transactions": len(down_txs), "delivery_gas_total": delivery_gas,
        "delivery_gas_per_buyer": round(delivery_gas / max(1, len(served_down))),
        "latency_blocks_from_purchase": _spread(from_purchase),
        "latency_blocks_from_agent_start": _spread(from_start),
        "agent_process_seconds": round(agent_seconds, 1),
        "gas_permit_and_buy": _spread(down_permit_gas),
        "gas_approve_and_buy": _spread(approve_gas),
        # Since the load benchmark.
        "settings": settings,
        "agent_down": {
            "purchases": len(down_buyers), "delivered": len(served_down),
            "delivery_transactions": len(down_txs),
            "keys_per_transaction": percentiles([keys_in_tx[tx] for tx in down_txs], 1),
            "latency_blocks_from_agent_start": percentiles(from_start, 1),
            "latency_s_from_agent_start": percentiles(
                [clock[delivered_at[b]] - agent_started for b in served_down]),
            "latency_blocks_from_purchase": percentiles(from_purchase, 1),
            "latency_s_from_purchase": percentiles(
                [clock[delivered_at[b]] - clock[down_buyers[b]["block"]] for b in served_down]),
            "samples_s_from_agent_start": sorted(
                round(clock[delivered_at[b]] - agent_started, 3) for b in served_down),
            "gas_per_delivered_key": gas_per_key(down_txs),
            "agent_process_seconds": round(agent_seconds, 1),
        },
        "live": {
            "purchases": len(live_buyers), "delivered": len(served_live),
            "rate_asked_per_s": settings["rate_per_s"],
            "rate_sent_per_s": round((len(live) - 1) / live_sending, 2) if live_sending
            else None,
            "rate_mined_per_s": round((len(live) - 1) / live_span, 2) if live_span else None,
            "poll_interval_s": settings["poll_interval_s"],
            "delivery_transactions": len(live_txs),
            "keys_per_transaction": percentiles([keys_in_tx[tx] for tx in live_txs], 1),
            "latency_blocks": percentiles(
                [delivered_at[b] - live_buyers[b]["block"] for b in served_live], 1),
            "latency_s": percentiles(
                [clock[delivered_at[b]] - clock[live_buyers[b]["block"]] for b in served_live]),
            "gas_per_delivered_key": gas_per_key(live_txs) if live_txs else None,
            "agent_failure": agent_failure,
            "timeline": [[round(clock[v["block"]] - live_start, 3),
                          round(clock[delivered_at[b]] - clock[v["block"]], 3)]
                         for b, v in live_buyers.items() if b in delivered_at],
        },
        "gas": {
            "permit_and_buy": percentiles(permit_gas, 0),
            "approve_and_buy": approve_gas[0] if approve_gas else None,
            "per_delivered_key": gas_per_key(sorted(keys_in_tx)),
            "delivery_total": sum(tx_gas.values()),
        },
        "accounting": {
            "buyers": len(statuses), "delivered_on_chain": len(statuses) - len(not_delivered),
            "not_delivered": not_delivered, "key_delivered_events": len(events),
            "buyers_served_twice": duplicates, "events_for_unknown_buyers": stray,
            "complete": not not_delivered and not duplicates and not stray
                        and len(events) == len(statuses),
        },
        "wall_s": {k: round(v, 1) for k, v in wall.items()},
    }


def _spread(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            "max": ordered[-1]}


def _wait_for(check: Any, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the key agent did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _pct(d: dict[str, float], unit: str = "", digits: int = 0) -> str:
    """p50 / p90 / p99 / max; whole numbers (blocks) as they are, others to ``digits``."""
    if not d:
        return "–"
    return " / ".join((f"{d[k]:,.0f}" if digits == 0 and float(d[k]).is_integer()
                       else f"{d[k]:,.{max(digits, 1)}f}") + unit
                      for k in ("p50", "p90", "p99", "max"))


def markdown(result: dict[str, Any]) -> str:
    down, live, acc = result["agent_down"], result["live"], result["accounting"]
    lines = [
        "| measure | agent down, then `serve --once` | live (`serve` running) |",
        "| --- | --- | --- |",
        f"| purchases / keys delivered | {down['purchases']:,} / {down['delivered']:,} | "
        f"{live['purchases']:,} / {live['delivered']:,} |",
        f"| delivery transactions (`deliverKeys`) | {down['delivery_transactions']} | "
        f"{live['delivery_transactions']} |",
        f"| keys per transaction, p50 / max | {_pct_two(down['keys_per_transaction'])} | "
        f"{_pct_two(live['keys_per_transaction'])} |",
        f"| gas per delivered key | {down['gas_per_delivered_key']:,} | "
        f"{live['gas_per_delivered_key'] or 0:,} |",
        f"| latency from the agent's start, blocks, p50 / p90 / p99 / max | "
        f"{_pct(down['latency_blocks_from_agent_start'])} | – |",
        f"| latency from the agent's start, s | "
        f"{_pct(down['latency_s_from_agent_start'], ' s', 1)} | – |",
        f"| latency from the purchase, blocks | {_pct(down['latency_blocks_from_purchase'])} | "
        f"{_pct(live['latency_blocks'])} |",
        f"| latency from the purchase, s | {_pct(down['latency_s_from_purchase'], ' s', 1)} | "
        f"{_pct(live['latency_s'], ' s', 2)} |",
        f"| key agent process | start to exit {down['agent_process_seconds']} s | polls every "
        f"{live['poll_interval_s']} s; buyers sent at {live['rate_sent_per_s']}/s "
        f"(asked {live['rate_asked_per_s']}/s) |",
        f"| gas, permit + buy (one transaction), p50 / max | "
        f"{_pct_two(result['gas']['permit_and_buy'])} (all {acc['buyers'] - 1:,} permit "
        "purchases) | |",
        f"| gas, approve + buy (two transactions) | {result['gas']['approve_and_buy'] or 0:,} | |",
        "",
        f"Accounting: {acc['delivered_on_chain']:,} of {acc['buyers']:,} purchases DELIVERED on "
        f"chain, {acc['key_delivered_events']:,} `KeyDelivered` events, "
        f"{len(acc['buyers_served_twice'])} buyers served twice: "
        + ("every purchase delivered." if acc["complete"] else "**INCOMPLETE**."),
        f"Wall time {result['wall_s']['total']:,.0f} s (setup {result['wall_s']['setup']:,.0f} s,"
        f" signing {result['wall_s']['signing']:,.0f} s, funding "
        f"{result['wall_s']['funding']:,.0f} s, live phase {result['wall_s']['live']:,.0f} s).",
    ]
    return "\n".join(lines)


def _pct_two(d: dict[str, float]) -> str:
    return f"{d['p50']:,.0f} / {d['max']:,.0f}" if d else "–"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (cdf, timeline) = plt.subplots(1, 2, figsize=(12, 4.5))
    live = result["live"]
    points = np.array(live["timeline"]) if live["timeline"] else np.zeros((0, 2))
    if len(points):
        latency = np.sort(points[:, 1])
        cdf.plot(latency, np.arange(1, len(latency) + 1) / len(latency),
                 label=f"live: from the purchase ({len(latency):,})")
    down = result["agent_down"]
    if down["samples_s_from_agent_start"]:
        backlog = down["samples_s_from_agent_start"]
        cdf.step(backlog, np.arange(1, len(backlog) + 1) / len(backlog), where="post",
                 label=f"agent down: from its process start ({len(backlog):,})")
    cdf.set(xlabel="seconds to the key", ylabel="share of purchases delivered",
            title="Key delivery latency")
    cdf.legend(fontsize=8)
    cdf.grid(alpha=0.3)
    if len(points):
        timeline.scatter(points[:, 0], points[:, 1], s=4)
        timeline.set(xlabel="purchase mined, s since the first live purchase",
                     ylabel="seconds to the key",
                     title=f"Live: {live['rate_sent_per_s']} purchases/s, agent polls every "
                           f"{live['poll_interval_s']} s")
        timeline.grid(alpha=0.3)
    else:
        timeline.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=50,
                        help="permit purchases while the key agent is down (one approve "
                        "purchase is added)")
    parser.add_argument("--live", type=int, default=None,
                        help="purchases while the agent runs (default: as many as --purchases)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="live purchases per second")
    parser.add_argument("--poll-interval", type=float, default=2.0,
                        help="the running agent's pause between looks at the chain")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/market.json"))
    args = parser.parse_args(argv)
    live = args.purchases if args.live is None else args.live
    if args.purchases < 1:
        parser.error("--purchases must be >= 1")
    if live < 0 or args.rate <= 0 or args.poll_interval <= 0:
        parser.error("--live must be >= 0, --rate and --poll-interval > 0")
    about = machine()
    with tempfile.TemporaryDirectory(prefix="fairfl-bench-market-") as tmp:
        result = run(args.purchases, live, args.rate, args.poll_interval, Path(tmp))
    result["machine"] = {**about, "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    publish(result, args.json, markdown(result))
    plot(result, args.json.with_suffix(".png"))
    print(f"plot: {args.json.with_suffix('.png')}")
    if not result["accounting"]["complete"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
