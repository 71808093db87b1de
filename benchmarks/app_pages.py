"""How fast the app's pages render, on the demo's chain and on a large one (``make bench-app``).

Two chains, each on its own private anvil:

* **demo**: what ``make demo`` produces (the default simulation: 20 participants, 20 rounds,
  the model listed), plus one purchase whose key the seller's agent delivered;
* **large**: 100 tasks of 3 rounds with 5 of 20 participants each (a rejection per round,
  each round's evidence document in the store), every completed task's model listed, some
  bought, and empty blocks mined up to 10,000 blocks. It is written straight through
  JSON-RPC from anvil's unlocked accounts, because training 100 tasks would only slow the
  benchmark down: the pages read events and documents, not weights.

For each chain the script times, in-process with Streamlit's AppTest (the server's side of
a render: the script run that produces the page): building the event index from nothing
(once per deployment, kept on disk afterwards), then each page's first render with empty
caches and its median over 5 more renders. Writes ``reports/bench/app_pages.json`` and a
Markdown table.

    python -m benchmarks.app_pages              # both chains
    python -m benchmarks.app_pages --tasks 5 --blocks 600   # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import publish
from fl_agent.chain.node import LocalChain, free_port

APP_MAIN = Path(__file__).resolve().parents[1] / "app" / "main.py"
FLT = 10**18
PAGES = {
    "Models": ("app_pages/models.py", {}),
    "Model detail": ("app_pages/model.py", {"model": "1"}),
    "Tasks": ("app_pages/tasks.py", {"task": "1"}),
    "Participants": ("app_pages/participants.py", {}),
    "My account": ("app_pages/account.py", {}),
}


# -- building the chains ------------------------------------------------------------------------
def demo_chain(url: str, home: Path) -> None:
    from ape import networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import dev_account
    from fl_agent.market.buyer import buy_model
    from fl_agent.market.key_agent import KeyAgent
    from fl_agent.simulation.runner import SimulationConfig, run_simulation
    from fl_agent.storage.store import LocalStore

    config = SimulationConfig.build(list_price=50 * FLT)
    report = run_simulation(config, workdir=home / "sim", network=url,
                            deployments=home / "deployments", keys_dir=home / "keys",
                            store=LocalStore(home / "store"))
    with networks.parse_network_choice(url):
        fairfl = FairFL(load_deployment(url, home / "deployments"))
        owner, buyer = dev_account(0), dev_account(ACCOUNT_INDEX)
        token = fairfl.token
        token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
        token.mint(buyer.address, 100 * FLT, sender=owner)
        buy_model(fairfl, buyer, report["listing"]["model_id"])
        KeyAgent(fairfl, owner, home / "keys", home / "agents").step()


class Writer:
    """Sends transactions from anvil's unlocked accounts without ape's overhead, checking
    each receipt (anvil mines a reverting transaction instead of refusing it)."""

    def __init__(self, url: str, project: Any) -> None:
        from fl_agent.chain.index import JsonRpc
        from fl_agent.chain.reverts import error_table

        self.rpc = JsonRpc(url)
        self.errors = error_table(project)

    def send(self, sender: str, contract: Any, method: str, *args: Any) -> str:
        from fl_agent.chain.index import RpcError
        from fl_agent.chain.reverts import decode_revert

        tx = {"from": sender, "to": str(contract.address),
              "data": "0x" + bytes(getattr(contract, method).encode_input(*args)).hex()}
        try:
            self.rpc.call("eth_call", tx, "latest")
        except RpcError as err:
            raise RuntimeError(f"{method}{args!r} would revert: "
                               f"{decode_revert(err.data, self.errors) or err}") from err
        tx_hash = self.rpc.call("eth_sendTransaction", {**tx, "gas": hex(8_000_000)})
        while (receipt := self.rpc.call("eth_getTransactionReceipt", tx_hash)) is None:
            time.sleep(0.005)
        if receipt["status"] != "0x1":
            raise RuntimeError(f"{method}{args!r} reverted in {tx_hash}")
        return tx_hash


def large_chain(url: str, home: Path, tasks: int, blocks: int) -> None:
    from ape import networks

    from fl_agent.agents.evidence import RoundEvidence, VerdictRecord
    from fl_agent.chain.client import load_project
    from fl_agent.chain.deployment import deploy_contracts, save_deployment
    from fl_agent.chain.node import dev_account
    from fl_agent.learning.models import ModelSpec, param_layout
    from fl_agent.market.listing import ListingMetadata, TensorLayout
    from fl_agent.storage.cid import compute_cid
    from fl_agent.storage.store import LocalStore

    store = LocalStore(home / "store")
    spec = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(64,))
    tensors = tuple(TensorLayout(name=t.name, dtype="F32", shape=tuple(t.shape))
                    for t in param_layout(spec))
    with networks.parse_network_choice(url):
        people = [dev_account(i).address for i in range(30)]
        owner, aggregator, members, attackers = people[0], people[1], people[2:22], people[22:]
        record, c = deploy_contracts(dev_account(0), load_project())
        save_deployment(record, home / "deployments")
        token, registry, ledger, market = (c["FairToken"], c["ParticipantRegistry"],
                                           c["TaskLedger"], c["ModelMarketplace"])
        w = Writer(url, load_project())
        w.send(owner, token, "grantRole", token.MINTER_ROLE(), owner)
        for who in members + attackers:
            w.send(who, registry, "register", compute_cid(who.encode()))
        for who in members:
            w.send(owner, token, "mint", who, 1_000 * FLT)
            w.send(who, token, "approve", market.address, 2**255)
        for t in range(1, tasks + 1):
            model = compute_cid(f"model {t}".encode())
            w.send(owner, ledger, "createTask", {
                "modelCid": model, "specCid": compute_cid(b"spec"), "metric": "accuracy",
                "aggregator": aggregator, "rounds": 3, "minParticipants": 3,
                "submissionWindow": 1_000, "trainingMode": 0, "rewardPerRound": 100 * FLT})
            # Four honest members, and in one task of 12 an attacker, rejected every round
            # (and so blacklisted after its third rejection), else a fifth honest member.
            crew = [members[(t + k) % len(members)] for k in range(4)]
            attacker = attackers[t // 12] if t % 12 == 0 and t // 12 < len(attackers) else None
            crew.append(attacker or members[(t + 4) % len(members)])
            for who in crew:
                w.send(who, ledger, "join", t)
            current = model
            for r in range(1, 4):
                w.send(aggregator, ledger, "startRound", t, current,
                       compute_cid(f"workload {t} {r}".encode()))
                updates = [compute_cid(f"update {t} {r} {who}".encode()) for who in crew]
                for who, update in zip(crew, updates, strict=True):
                    w.send(who, ledger, "submitUpdate", t, r, update, 100, 50, "")
                new = compute_cid(f"model {t} {r}".encode())
                accepted = crew if attacker is None else crew[:4]
                rejected = [] if attacker is None else [attacker]
                share = 1_000_000 // len(accepted)
                evidence = store.add(RoundEvidence(
                    task=t, round=r, global_model=current, new_model=new, strategy="FairFL",
                    metric="accuracy", validation=0.5 + 0.1 * r,
                    verdicts=tuple(VerdictRecord(participant=who, update=u, samples=100,
                                                 training_millis=50, accepted=who in accepted,
                                                 reason=None if who in accepted else "validation",
                                                 code=0 if who in accepted else 9,
                                                 share_ppm=share if who in accepted else 0)
                                   for who, u in zip(crew, updates, strict=True))).to_json())
                w.send(aggregator, ledger, "finalizeRound", t, r,
                       (new, hashlib.sha256(new.encode()).digest(), accepted,
                        [share] * len(accepted), rejected, [9] * len(rejected), evidence, 40))
                current = new
            listing = store.add(ListingMetadata(
                task=t, title=f"synthetic model {t}", dataset="digits", model=spec,
                tensors=tensors, metric="accuracy", accuracy=0.8, rounds=3, contributors=4,
                license="benchmark", plaintext_sha256=hashlib.sha256(current.encode()).hexdigest(),
                ciphertext_bytes=100).to_json())
            w.send(owner, market, "listTaskModel", t, compute_cid(f"sealed {t}".encode()),
                   listing, hashlib.sha256(current.encode()).digest(), 10 * FLT)
            if t % 3 == 0:
                w.send(members[t % len(members)], market, "buy", t, 10 * FLT, b"\x07" * 32)
        from fl_agent.chain.index import JsonRpc

        # In steps, with a patient client: anvil mines a long run slowly, and on a busy
        # machine 500 blocks took longer than the default 20 s timeout.
        miner = JsonRpc(url, timeout=180.0)
        height = miner.block_number()
        while height < blocks:
            step = min(200, blocks - height)
            miner.call("anvil_mine", hex(step))
            height += step


# -- timing the pages ---------------------------------------------------------------------------
#: The account "My account" is rendered for: a contributor (signed in, as after
#: Sign-In with Ethereum), so the page shows its purchases and revenue, not the sign-in prompt.
ACCOUNT_INDEX = 2


def render(path: str, query: dict[str, str]) -> float:
    from streamlit.testing.v1 import AppTest

    from fl_agent.chain.node import dev_account

    at = AppTest.from_file(str(APP_MAIN), default_timeout=600)
    at.switch_page(path)
    for key, value in query.items():
        at.query_params[key] = value
    account = dev_account(ACCOUNT_INDEX).address
    at.session_state["wallet"] = {"status": {"available": True, "account": account,
                                             "chain_id": 31337, "mode": "dev"}}
    at.session_state["signed_in_account"] = account
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception or at.error:
        raise RuntimeError(f"{path} failed: {at.exception or [e.value for e in at.error]}")
    if not any(len(df.value) for df in at.dataframe):
        raise RuntimeError(f"{path} rendered no data: the chain was not built as intended")
    return seconds


def time_pages(url: str, home: Path, repeats: int = 5) -> dict[str, Any]:
    import streamlit as st
    from streamlit.logger import set_log_level

    set_log_level("error")  # AppTest's "missing ScriptRunContext" chatter

    os.environ.update({"FAIRFL_NETWORK": url, "FAIRFL_HOME": str(home),
                       "FAIRFL_DEPLOYMENTS": str(home / "deployments")})
    st.cache_data.clear()
    st.cache_resource.clear()
    started = time.perf_counter()
    render(*PAGES["Models"])  # connects and builds the index from the first block
    first_visit = time.perf_counter() - started
    from fl_agent.chain.index import JsonRpc

    result: dict[str, Any] = {"blocks": JsonRpc(url).block_number(),
                              "first_render_with_index_build_s": round(first_visit, 2),
                              "pages": {}}
    import sys

    sys.path.insert(0, str(APP_MAIN.parent))
    import chain_data  # the module the app runs with (AppTest runs in this process)

    for name, (path, query) in PAGES.items():
        chain_data.clear_cache()  # documents, folded views and tables: cold
        cold = render(path, query)
        warm = [render(path, query) for _ in range(repeats)]
        result["pages"][name] = {"cold_s": round(cold, 3),
                                 "warm_median_s": round(statistics.median(warm), 3),
                                 "warm_max_s": round(max(warm), 3)}
    return result


def markdown(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    head = "| page | " + " | ".join(f"{n}: first render / median (max)" for n in names) + " |"
    lines = [head, "| --- |" + " --- |" * len(names)]
    for page in PAGES:
        cells = [f"{r['pages'][page]['cold_s']:.2f} s / {r['pages'][page]['warm_median_s']:.2f}"
                 f" s ({r['pages'][page]['warm_max_s']:.2f} s)" for r in results.values()]
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    lines.append("| index built from nothing, with the first page | " + " | ".join(
        f"{r['first_render_with_index_build_s']:.1f} s ({r['blocks']:,} blocks)"
        for r in results.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100, help="tasks on the large chain")
    parser.add_argument("--blocks", type=int, default=10_000, help="blocks of the large chain")
    parser.add_argument("--skip-demo", action="store_true", help="only the large chain")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/app_pages.json"))
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    plans = [] if args.skip_demo else [("demo chain", demo_chain)]
    plans.append((f"{args.tasks} tasks", lambda u, h: large_chain(u, h, args.tasks,
                                                                   args.blocks)))
    for name, build in plans:
        with tempfile.TemporaryDirectory(prefix="fairfl-bench-app-") as tmp:
            home = Path(tmp)
            node = LocalChain(home / "chain", "127.0.0.1", free_port())
            node.start(accounts=30)
            try:
                build(node.url, home)
                results[name] = time_pages(node.url, home)
            finally:
                node.stop()
    publish(results, args.json, markdown(results))


if __name__ == "__main__":
    main()
