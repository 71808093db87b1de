"""Faults on the real local stack: agents killed with SIGKILL at the worst moments and
restarted, the chain node restarted under running agents, and their RPC endpoint rationing
requests.

Agents die through failpoints (:mod:`fl_agent.faults`): the process kills itself with SIGKILL
at a named place, exactly as a crash there would leave things. Each test then restarts it and
checks the chain: nothing lost, nothing done twice, the same result as a run without the fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fl_agent.chain.records import RoundResult, RoundStatus, TaskStatus

AGGREGATOR_POINTS = ["aggregator:fetched", "aggregator:model-uploaded",
                     "aggregator:before-finalize"]


def cli(world, anvil_url: str, *args: str, failpoint: str | None = None) -> subprocess.Popen:
    """``fl-agent ARGS`` as its own process on ``world``'s deployment and store."""
    env = {**os.environ, **world.cli_env(anvil_url)}
    env.pop("FAIRFL_FAILPOINT", None)
    if failpoint:
        env["FAIRFL_FAILPOINT"] = failpoint
    return subprocess.Popen([sys.executable, "-m", "fl_agent.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def aggregate(world, anvil_url: str, task_id: int, failpoint: str | None = None):
    return cli(world, anvil_url, "aggregate", "--task", str(task_id), "--validation", "digits",
               "--account", "TEST::1", "--poll-interval", "0.2", failpoint=failpoint)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def finished(proc: subprocess.Popen, timeout: float = 180.0) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


def finalized(world, task_id: int) -> list[RoundResult]:
    logs = world.fairfl.ledger.contract.RoundFinalized.range(
        world.fairfl.deployment.block, world.fairfl.ledger.contract.chain_manager.blocks.height + 1,
        search_topics={"taskId": task_id})
    return [RoundResult.from_chain(log.result) for log in logs]


def verdict(result: RoundResult) -> tuple:
    """What must not change when the aggregator crashed and ran again: the model's plaintext
    hash, who was paid how much, who was rejected and why (CIDs differ: fresh encryption)."""
    return (result.model_hash, [c.lower() for c in result.contributors], result.scores_ppm,
            [r.lower() for r in result.rejected], result.reasons)


def one_round_with(world, anvil_url: str, failpoint: str | None) -> tuple[RoundResult, str]:
    """A one-round task: two in-process participants, the aggregator as a process that dies
    at ``failpoint`` (if any) and is restarted. Returns the round's result and the logs."""
    task_id = world.create_task(rounds=1, window=200)
    people = [world.participant(task_id, i) for i in range(2)]
    proc = aggregate(world, anvil_url, task_id, failpoint)
    wait_for(lambda: world.fairfl.ledger.task(task_id).current_round == 1, "round 1 to open")
    for person in people:
        assert len(person.step()[0]) == 1
    code, log = finished(proc)
    if failpoint:
        assert code == -signal.SIGKILL, log
        rnd = world.fairfl.ledger.round(task_id, 1)
        assert (rnd.status, rnd.submissions) == (RoundStatus.OPEN, 2)  # nothing half-done
        code, again = finished(aggregate(world, anvil_url, task_id))
        log += again
    assert code == 0, log
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    [result] = finalized(world, task_id)  # finalized exactly once
    return result, log


def three_rounds_through(world, url: str, fault: Callable[[list[subprocess.Popen]], None]
                         ) -> list[tuple[int, str]]:
    """A 3-round task with two ``train`` processes and the aggregator, all on ``url``; once
    round 2 opens, ``fault(procs)`` strikes (and must leave the agents running). Every agent
    must then finish the task with exit 0, and every round get both updates exactly once and
    be finalized once. Returns each agent's exit code and log."""
    task_id = world.create_task(rounds=3, window=400)
    procs = [cli(world, url, "train", "--task", str(task_id), "--data", "digits",
                 "--shard", f"{i}/2", "--account", f"TEST::{2 + i}", "--poll-interval", "0.2")
             for i in range(2)]
    procs.append(aggregate(world, url, task_id))
    try:
        wait_for(lambda: world.fairfl.ledger.task(task_id).current_round >= 2
                 or any(p.poll() is not None for p in procs), "round 2 to open")
        assert all(p.poll() is None for p in procs), [finished(p) for p in procs]
        fault(procs)
        stopped = [finished(p)[1] for p in procs if p.poll() is not None]
        assert not stopped, f"an agent stopped at the fault: {stopped}"
        logs = [finished(p, timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for code, log in logs:
        assert code == 0, log
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    results = finalized(world, task_id)
    assert len(results) == 3
    for number in (1, 2, 3):
        assert world.fairfl.ledger.round(task_id, number).submissions == 2
    for result in results:
        assert len(result.contributors) + len(result.rejected) == 2
    return logs


def test_an_aggregator_killed_at_any_point_finalizes_the_round_once_with_the_same_result(
        world, anvil_url):
    reference, _ = one_round_with(world, anvil_url, None)
    assert len(reference.contributors) == 2
    for point in AGGREGATOR_POINTS:
        result, log = one_round_with(world, anvil_url, point)
        assert verdict(result) == verdict(reference), (point, log)


@pytest.mark.parametrize("point", ["participant:uploaded", "participant:submitted"])
def test_a_participant_killed_mid_round_submits_exactly_once_after_a_restart(
        world, anvil_url, point):
    task_id = world.create_task(rounds=1, window=200)
    steady = world.participant(task_id, 0)
    train = ("train", "--task", str(task_id), "--data", "digits", "--shard", "1/2",
             "--account", "TEST::3", "--poll-interval", "0.2")
    crashing = cli(world, anvil_url, *train, failpoint=point)
    wait_for(lambda: world.fairfl.ledger.task(task_id).participant_count == 2, "the join")
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()  # opens round 1
    steady.step()

    code, log = finished(crashing)

    assert code == -signal.SIGKILL, log
    submitted = 2 if point == "participant:submitted" else 1
    assert world.fairfl.ledger.round(task_id, 1).submissions == submitted
    restarted = cli(world, anvil_url, *train)
    wait_for(lambda: world.fairfl.ledger.round(task_id, 1).submissions == 2,
             "the restarted participant's update")
    outcome = aggregator.step()  # every member submitted: finalize
    assert len(outcome.verdicts) == 2 and all(v.accepted for v in outcome.verdicts)
    code, log = finished(restarted)
    assert code == 0, log
    assert log.count("submitted") == (0 if point == "participant:submitted" else 1), log
    assert world.fairfl.ledger.membership(task_id, world.accounts[3].address) \
        .last_submitted_round == 1


def test_agents_ride_out_a_restart_of_the_chain_node(tmp_path: Path, world_builder):
    """The node stops (dumping its state) while the agents run, and comes back on the same
    port: every round gets both updates exactly once and is finalized once."""
    from ape import networks

    from fl_agent.chain.node import LocalChain, free_port

    node = LocalChain(tmp_path / "chain", "127.0.0.1", free_port())
    node.start(accounts=16)
    try:
        with networks.parse_network_choice(node.url):
            world = world_builder(tmp_path)

            def restart(procs: list[subprocess.Popen]) -> None:
                node.stop()
                time.sleep(3)  # the agents find nobody there and back off
                assert all(p.poll() is None for p in procs), "an agent died with the node"
                node.start(accounts=16)

            logs = three_rounds_through(world, node.url, restart)
            assert any("did not answer" in log for _, log in logs)
    finally:
        node.stop()


def test_a_transaction_stuck_behind_a_fee_rise_is_replaced_and_the_agent_goes_on(
        world, monkeypatch):
    """Fees rise 1,000-fold right after the agent priced its transaction: it is never mined.
    After the acceptance timeout the agent sends it again with the same nonce and a fee that
    the new base fee allows, and carries on."""
    import threading
    import traceback

    from ape import chain

    rpc = chain.provider.make_request
    network = chain.provider.network
    # ape's setting `transaction_acceptance_timeout`, shortened for the test
    monkeypatch.setattr(type(network), "transaction_acceptance_timeout", property(lambda _: 3))
    signer = world.accounts[5]
    nonce = chain.provider.get_nonce(signer.address)
    base = int(chain.provider.base_fee)
    done: dict[str, object] = {}

    def register() -> None:
        try:
            done["receipt"] = world.fairfl.registry.register(
                "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", sender=signer)
        except Exception:  # noqa: BLE001 - reported by the assertion below
            done["error"] = traceback.format_exc()

    rpc("evm_setAutomine", [False])
    try:
        sender = threading.Thread(target=register)
        sender.start()
        wait_for(lambda: rpc("txpool_content", [])["pending"], "the transaction to be sent")
        pending = {a.lower(): txs for a, txs in rpc("txpool_content", [])["pending"].items()}
        [stuck] = pending[signer.address.lower()].values()
        rpc("anvil_setNextBlockBaseFeePerGas", [hex(int(stuck["maxFeePerGas"], 16) * 1000)])
        rpc("evm_setIntervalMining", [1])
        sender.join(timeout=120)
        assert not sender.is_alive() and "error" not in done, done.get("error")
    finally:
        rpc("evm_setIntervalMining", [0])
        rpc("evm_setAutomine", [True])
        rpc("anvil_setNextBlockBaseFeePerGas", [hex(base)])

    receipt = done["receipt"]
    mined = chain.provider.web3.eth.get_transaction(receipt.tx_hash)
    assert mined["hash"].hex().removeprefix("0x") != stuck["hash"].removeprefix("0x")
    assert int(mined["nonce"]) == nonce  # a replacement, not a second transaction
    assert int(mined["maxFeePerGas"]) > int(stuck["maxFeePerGas"], 16)
    assert world.fairfl.registry.participant(signer.address).registered
    assert chain.provider.get_nonce(signer.address) == nonce + 1


@contextmanager
def rationing_endpoint(upstream: str) -> Iterator[tuple[str, dict]]:
    """A JSON-RPC endpoint in front of ``upstream`` that passes every request on, except
    while ``state["limited"]``: then it answers each with HTTP 200 and the rate-limit error of
    a hosted endpoint (Infura's words and code), and counts them in ``state["refused"]``."""
    import httpx

    state = {"limited": False, "refused": 0}
    client = httpx.Client(timeout=60)
    limit = {"code": -32005, "message": "project ID request rate exceeded"}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            if state["limited"]:
                state["refused"] += 1
                request = json.loads(raw)
                calls = request if isinstance(request, list) else [request]
                answers = [{"jsonrpc": "2.0", "id": c.get("id"), "error": limit} for c in calls]
                body = json.dumps(answers if isinstance(request, list) else answers[0]).encode()
            else:
                body = client.post(upstream, content=raw,
                                   headers={"content-type": "application/json"}).content
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        client.close()


def test_agents_wait_out_an_endpoint_that_rations_requests(world, anvil_url):
    """Mid-task, the agents' endpoint refuses every call as rate-limited for a few seconds,
    with HTTP 200 as hosted endpoints do. They back off rather than stop, and every round
    still gets both updates exactly once and is finalized once."""
    from fl_agent.chain.deployment import save_deployment

    with rationing_endpoint(anvil_url) as (url, state):
        save_deployment(world.fairfl.deployment.model_copy(update={"network": url}),
                        world.tmp / "deployments")  # the same contracts, reached through it

        def ration(procs: list[subprocess.Popen]) -> None:
            state["limited"] = True
            time.sleep(3)
            wait_for(lambda: state["refused"] >= 10, "the agents to be refused", timeout=60)
            state["limited"] = False

        logs = three_rounds_through(world, url, ration)
    assert any("did not answer" in log for _, log in logs)  # and waited, as none stopped


def test_a_transaction_never_mined_after_every_replacement_is_waited_out_not_fatal(
        world, monkeypatch):
    """Nothing is mined at all (a congested or stalled network): after its replacements the
    agent gets an error its service loop waits out and retries, not one that stops it."""
    import threading

    from ape import chain

    from fl_agent.chain import transactions
    from fl_agent.retry import transient

    rpc = chain.provider.make_request
    network = chain.provider.network
    monkeypatch.setattr(type(network), "transaction_acceptance_timeout", property(lambda _: 2))
    monkeypatch.setattr(transactions, "REPLACEMENTS", 2)
    signer = world.accounts[6]
    done: dict[str, BaseException] = {}

    def register() -> None:
        try:
            world.fairfl.registry.register(
                "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", sender=signer)
        except BaseException as err:  # noqa: BLE001 - checked below
            done["error"] = err

    rpc("evm_setAutomine", [False])
    try:
        sender = threading.Thread(target=register)
        sender.start()
        sender.join(timeout=120)
        assert not sender.is_alive()
    finally:
        rpc("evm_setAutomine", [True])
        rpc("anvil_mine", [1])  # the last copy is mined now; the others were replaced
    stuck = done.get("error")
    assert isinstance(stuck, transactions.StuckTransactionError), stuck
    assert transient(stuck) and "waits and tries again" in str(stuck)
    assert world.fairfl.registry.participant(signer.address).registered


def test_a_transaction_an_earlier_process_left_pending_does_not_block_the_next(world):
    """An agent died with a transaction unmined (nothing is mined: a stalled network) that
    pays ten times what the node now asks for. It holds the account's nonce, so the restarted
    agent's first transaction is refused as an underpriced replacement; the agent outbids it
    at that nonce instead of stopping, and is mined once blocks come again."""
    import threading

    from ape import chain
    from web3.exceptions import TransactionNotFound

    rpc = chain.provider.make_request
    signer = world.accounts[7]
    web3 = chain.provider.web3
    nonce = web3.eth.get_transaction_count(signer.address)
    tip = 10 * int(chain.provider.priority_fee)
    fee = 10 * (2 * int(chain.provider.base_fee)) + tip
    rpc("evm_setAutomine", [False])
    blocks_again = threading.Timer(3.0, rpc, ("evm_setIntervalMining", [1]))
    try:
        left = web3.eth.send_transaction({  # the dead process's transaction
            "from": signer.address, "to": signer.address, "value": 0, "nonce": nonce,
            "gas": 21_000, "maxFeePerGas": fee, "maxPriorityFeePerGas": tip})
        blocks_again.start()
        world.fairfl.registry.register(
            "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", sender=signer)
    finally:
        blocks_again.join()
        rpc("evm_setIntervalMining", [0])
        rpc("evm_setAutomine", [True])
    assert world.fairfl.registry.participant(signer.address).registered
    assert chain.provider.get_nonce(signer.address) == nonce + 1  # it took the nonce over
    with pytest.raises(TransactionNotFound):  # and the dead process's one can never be mined
        web3.eth.get_transaction_receipt(left)
