"""Key delivery and purchase gas, measured on a private anvil (``make bench-market``).

A small task is trained and its model listed (the simulation's agents), then N buyers buy
while the seller's key agent is stopped (each with a permit, as the app does by default;
one more pays with approve + buy). The key agent is then started as its own process
(``fl-agent market serve --once``) and the script reads from the chain when each buyer's
``KeyDelivered`` came: the delivery latency in blocks, from the purchase and from the
agent's start, and the gas of every step. Writes ``reports/bench/market.json`` and prints a
Markdown table (``docs/marketplace.md`` quotes it).

    python -m benchmarks.market --purchases 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import publish

FLT = 10**18
PRICE = 20 * FLT
FIRST_BUYER = 100  # dev account index of the first buyer


def run(purchases: int, workdir: Path) -> dict[str, Any]:
    from ape import chain, networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import LocalChain, dev_account, free_port
    from fl_agent.market.buyer import buy_model
    from fl_agent.simulation.runner import SimulationConfig, run_simulation
    from fl_agent.storage.store import LocalStore

    node = LocalChain(workdir / "chain", "127.0.0.1", free_port())
    node.reset()
    node.start(accounts=10)
    try:
        config = SimulationConfig.build(clients=4, malicious=0.0, attack="none", rounds=2,
                                        steps=5, scoring="loo", seed=1, list_price=PRICE)
        report = run_simulation(config, workdir=workdir / "sim", network=node.url,
                                deployments=workdir / "deployments", keys_dir=workdir / "keys",
                                store=LocalStore(workdir / "store"))
        model_id = report["listing"]["model_id"]
        with networks.parse_network_choice(node.url):
            fairfl = FairFL(load_deployment(node.url, workdir / "deployments"))
            owner = dev_account(0)
            token = fairfl.token
            token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
            bought: dict[str, dict[str, Any]] = {}
            for i in range(purchases + 1):
                buyer = dev_account(FIRST_BUYER + i)
                chain.provider.make_request("anvil_setBalance", [buyer.address, hex(10**20)])
                token.mint(buyer.address, 100 * FLT, sender=owner)
                done = buy_model(fairfl, buyer, model_id, permit=i < purchases)
                bought[buyer.address] = {"via": done.via, "gas": done.gas_used,
                                         "block": done.receipts[-1].block}
            start_block = int(chain.blocks.height)
        env = {**os.environ, "FAIRFL_NETWORK": node.url, "FAIRFL_HOME": str(workdir),
               "FAIRFL_DEPLOYMENTS": str(workdir / "deployments")}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fl_agent.cli", "market", "serve",
                        "--account", "TEST::0", "--once"], env=env, check=True,
                       capture_output=True)
        agent_seconds = time.perf_counter() - started
        with networks.parse_network_choice(node.url):
            fairfl = FairFL(load_deployment(node.url, workdir / "deployments"))
            logs = fairfl.marketplace.events("KeyDelivered", modelId=model_id)
            delivered = {str(log.buyer): int(log.block_number) for log in logs}
            txs = {str(log.transaction_hash) for log in logs}
            delivery_gas = sum(int(chain.provider.web3.eth.get_transaction_receipt(tx)["gasUsed"])
                               for tx in txs)
    finally:
        node.stop()
    missing = [b for b in bought if b not in delivered]
    from_purchase = [delivered[b] - bought[b]["block"] for b in bought if b in delivered]
    from_start = [delivered[b] - start_block for b in bought if b in delivered]
    permit_gas = [v["gas"] for v in bought.values() if v["via"] == "permit"]
    approve_gas = [v["gas"] for v in bought.values() if v["via"] == "approve"]
    return {
        "purchases": len(bought), "delivered": len(delivered), "missing": missing,
        "delivery_transactions": len(txs), "delivery_gas_total": delivery_gas,
        "delivery_gas_per_buyer": round(delivery_gas / max(1, len(delivered))),
        "latency_blocks_from_purchase": _spread(from_purchase),
        "latency_blocks_from_agent_start": _spread(from_start),
        "agent_process_seconds": round(agent_seconds, 1),
        "gas_permit_and_buy": _spread(permit_gas),
        "gas_approve_and_buy": _spread(approve_gas),
    }


def _spread(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            "max": ordered[-1]}


def markdown(result: dict[str, Any]) -> str:
    lat, start = result["latency_blocks_from_purchase"], result["latency_blocks_from_agent_start"]
    return "\n".join([
        "| measure | value |", "| --- | --- |",
        f"| purchases made while the key agent was stopped | {result['purchases']} |",
        f"| keys delivered after it started | {result['delivered']} "
        f"(missing: {len(result['missing'])}) |",
        f"| delivery transactions | {result['delivery_transactions']} "
        f"(`deliverKeys`, {result['delivery_gas_per_buyer']:,} gas per buyer) |",
        f"| latency from the agent's start, blocks | min {start['min']}, median "
        f"{start['median']}, max {start['max']} |",
        f"| latency from the purchase, blocks | min {lat['min']}, median {lat['median']}, "
        f"p95 {lat['p95']}, max {lat['max']} |",
        f"| key agent process, start to exit | {result['agent_process_seconds']} s |",
        f"| gas, permit + buy (one transaction) | {result['gas_permit_and_buy']['median']:,.0f} "
        "(median) |",
        f"| gas, approve + buy (two transactions) | "
        f"{result['gas_approve_and_buy']['median']:,.0f} |",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases", type=int, default=50)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/market.json"))
    args = parser.parse_args(argv)
    if args.purchases < 1:
        parser.error("--purchases must be >= 1")
    with tempfile.TemporaryDirectory(prefix="fairfl-bench-market-") as tmp:
        result = run(args.purchases, Path(tmp))
    publish(result, args.json, markdown(result))


if __name__ == "__main__":
    main()
