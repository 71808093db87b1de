"""Where a simulation's gas goes, by contract function, and which revision moved it.

For each git revision named, this takes a clean snapshot of the repository (``git archive``),
compiles its contracts, starts a fresh anvil, runs ``fl-agent simulate`` of that snapshot on
it, then reads every transaction of the run back from the node and sums the gas used by
contract function (or "deploy"). The table must add up to the run's total gas and
transaction count in the simulation's own report: a check that the blocks read back are the
run's, not of the attribution (both sum the same receipts). Consecutive revisions are then
set side by side, function by function.

It is how the chain benchmark's gas change between 2026-12-02 and 2026-12-05 was attributed
(``docs/benchmarks.md``)::

    python -m benchmarks.gas_by_function fd5e300 c22305e 8c147d8 86a22f0 cae849b 3013fa5 \\
        1f5675e df9a641 b9cd12f d52351b --json docs/data/gas_by_function_2026-12-05.json

Two passes over those commits agreed to within 12 gas per commit
(``docs/data/gas_by_function_repeats_2026-12-05.txt``); one non-zero byte of calldata more
or fewer (16 gas against 4), from a recorded time in milliseconds, is our guess, not traced.

Each revision takes about a minute (compile and a 20-client, 20-round run on 2 cores).
Hand-written: no library maps a run's transactions back to ABI functions and totals them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_utils import function_signature_to_4byte_selector

from benchmarks.gas_chain import Rpc
from fl_agent.chain.node import LocalChain, free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = "deploy"


def _canonical(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param["components"]) + ")" + kind[5:]
    return kind


def selectors(build: Mapping[str, Any]) -> dict[str, str]:
    """``0x``-selector -> function name, for every function of every contract type of an ape
    build manifest (``.build/__local__.json``)."""
    names: dict[str, str] = {}
    for kind in build["contractTypes"].values():
        for item in kind.get("abi", []):
            if item.get("type") != "function":
                continue
            signature = f"{item['name']}({','.join(_canonical(i) for i in item['inputs'])})"
            names["0x" + function_signature_to_4byte_selector(signature).hex()] = item["name"]
    return names


def gas_by_function(rpc: Rpc, first_block: int, last_block: int, names: Mapping[str, str],
                    contracts: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """``{"Contract.function": {"calls": n, "gas": g}}`` over every transaction mined in the
    blocks ``first_block..last_block``: the contract named by its address in ``contracts``,
    the function by its selector in ``names`` (what neither names is kept as hex), and
    "deploy" for contract creations."""
    blocks = rpc.batch([("eth_getBlockByNumber", [hex(b), True])
                        for b in range(first_block, last_block + 1)])
    txs = [tx for block in blocks for tx in block["transactions"]]
    receipts = rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for tx in txs])
    by_address = {address.lower(): name for address, name in contracts.items()}
    table: dict[str, dict[str, int]] = {}
    for tx, receipt in zip(txs, receipts, strict=True):
        if tx["to"] is None:
            name = DEPLOY
        else:
            selector = tx["input"][:10]
            name = (f"{by_address.get(tx['to'].lower(), tx['to'])}."
                    f"{names.get(selector, selector)}")
        row = table.setdefault(name, {"calls": 0, "gas": 0})
        row["calls"] += 1
        row["gas"] += int(receipt["gasUsed"], 16)
    return dict(sorted(table.items(), key=lambda kv: -kv[1]["gas"]))


def snapshot(revision: str, folder: Path) -> Path:
    """A clean copy of ``revision`` in ``folder``, sharing this checkout's node_modules."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "node_modules").symlink_to(ROOT / "node_modules")
    return folder


def _use_port(folder: Path, port: int) -> None:
    """Point the snapshot's ``ethereum:local:node`` network at ``port``."""
    config = folder / "ape-config.yaml"
    text = config.read_text()
    if "uri: http://127.0.0.1:8545" not in text:
        raise SystemExit(f"{config} does not name the node at 127.0.0.1:8545; cannot move it")
    config.write_text(text.replace("uri: http://127.0.0.1:8545", f"uri: http://127.0.0.1:{port}"))


def measure(revision: str, folder: Path, simulate_args: Sequence[str],
            accounts: int = 30) -> dict[str, Any]:
    """Compile and simulate ``revision`` in ``folder`` on a fresh anvil; its gas by function,
    checked against the run's own report."""
    env = {**os.environ, "PYTHONPATH": str(folder)}
    started = time.perf_counter()
    subprocess.run(["ape", "compile"], cwd=folder, env=env, check=True, capture_output=True)
    node = LocalChain(folder / ".chain", "127.0.0.1", free_port())
    _use_port(folder, node.port)
    node.start(accounts=accounts)
    try:
        rpc = Rpc(node.url)
        report_path = folder / "report.json"
        run = subprocess.run([sys.executable, "-m", "fl_agent.cli", "simulate", *simulate_args,
                              "--network", "ethereum:local:node", "--json", str(report_path),
                              "--out", str(folder / "out")],
                             cwd=folder, env=env, capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(f"simulate failed at {revision}:\n{run.stderr[-2000:]}")
        chain = json.loads(report_path.read_text())["chain"]
        build = json.loads((folder / ".build" / "__local__.json").read_text())
        table = gas_by_function(rpc, chain["first_block"], chain["last_block"], selectors(build),
                                {address: name for name, address in chain["contracts"].items()})
    finally:
        node.stop()
    total = sum(r["gas"] for r in table.values())
    calls = sum(r["calls"] for r in table.values())
    if (total, calls) != (chain["gas_total"], chain["transactions"]):
        raise SystemExit(f"{revision}: the transactions read back ({calls}, {total:,} gas) do "
                         f"not add up to the run's report ({chain['transactions']}, "
                         f"{chain['gas_total']:,} gas)")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", revision],
                            check=True, capture_output=True, text=True).stdout.strip()
    return {"revision": revision, "commit": commit, "gas_total": total, "transactions": calls,
            "by_function": table, "seconds": round(time.perf_counter() - started, 1)}


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per function, the change in calls and gas from ``before`` to ``after`` (largest
    change first; functions that did not move are left out)."""
    rows = []
    for name in set(before["by_function"]) | set(after["by_function"]):
        old = before["by_function"].get(name, {"calls": 0, "gas": 0})
        new = after["by_function"].get(name, {"calls": 0, "gas": 0})
        if old != new:
            rows.append({"function": name, "calls": new["calls"] - old["calls"],
                         "gas": new["gas"] - old["gas"],
                         "per_call_before": old["gas"] // old["calls"] if old["calls"] else None,
                         "per_call_after": new["gas"] // new["calls"] if new["calls"] else None})
    return sorted(rows, key=lambda r: -abs(r["gas"]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gas_by_function",
        description="Gas of one simulation by contract function, at each git revision named, "
                    "and what changed between consecutive ones.")
    parser.add_argument("revisions", nargs="+", help="git revisions, oldest first")
    parser.add_argument("--attack", default="sign_flip")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("reports/bench/gas_by_function.json"))
    parser.add_argument("--keep", action="store_true", help="keep the snapshots (printed)")
    args = parser.parse_args(argv)
    simulate_args = ["--attack", args.attack, "--seed", str(args.seed), "--clients",
                     str(args.clients), "--rounds", str(args.rounds)]
    work = Path(tempfile.mkdtemp(prefix="gas-by-function-"))
    runs = []
    try:
        for k, revision in enumerate(args.revisions):
            print(f"[{k + 1}/{len(args.revisions)}] {revision}: compiling and simulating ...",
                  flush=True)
            runs.append(measure(revision, snapshot(revision, work / f"{k}"), simulate_args))
            print(f"    {runs[-1]['gas_total']:,} gas in {runs[-1]['transactions']} "
                  f"transactions ({runs[-1]['seconds']} s)", flush=True)
    finally:
        if args.keep:
            print(f"snapshots kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    steps = [{"from": a["commit"], "to": b["commit"], "gas": b["gas_total"] - a["gas_total"],
              "functions": differences(a, b)} for a, b in itertools.pairwise(runs)]
    result = {"command": " ".join(["python -m benchmarks.gas_by_function", *(argv or
                                                                          sys.argv[1:])]),
              "simulate": simulate_args, "runs": runs, "steps": steps}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for step in steps:
        print(f"\n{step['from']} -> {step['to']}: {step['gas']:+,} gas")
        for row in step["functions"]:
            per = (f"{row['per_call_before']:,} -> {row['per_call_after']:,} a call"
                   if row["per_call_before"] and row["per_call_after"] else "")
            print(f"  {row['function']:40s} {row['calls']:+4d} calls {row['gas']:+12,} gas  {per}")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
