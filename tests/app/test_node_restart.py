"""The chain node restarts under the seller's key agent and the app (issue: faults).

anvil is stopped (dumping its state file) while `fl-agent market serve` runs as its own
process and the app is open, and started again on the same port from that file. Purchases
made before the stop and after the restart must each get exactly one key (read from the
chain's `KeyDelivered` events, not from the agent); the app must say the chain is not
answering while it is down (no exception) and show the model again once it is back.
The agents' own ride through a restart is in tests/agents/test_faults.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fl_agent.chain.records import PurchaseStatus
from harness import APP_MAIN, REPO, stop, wait_until

FLT = 10**18
PRICE = 20 * FLT
TIMEOUT = 90


def models_page() -> AppTest:
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def delivered_to(fairfl, model_id: int) -> list[str]:
    """Every buyer a `KeyDelivered` event names, once per event."""
    market = fairfl.marketplace.contract
    logs = market.KeyDelivered.range(fairfl.deployment.block,
                                     market.chain_manager.blocks.height + 1,
                                     search_topics={"modelId": model_id})
    return [str(log.buyer).lower() for log in logs]


def test_the_key_agent_and_the_app_ride_out_a_restart_of_the_chain_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ape import chain, networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import LocalChain, dev_account, free_port
    from fl_agent.market.buyer import buy_model
    from fl_agent.simulation.runner import SimulationConfig, run_simulation
    from fl_agent.storage.store import LocalStore

    node = LocalChain(tmp_path / "chain", "127.0.0.1", free_port())
    node.start(accounts=16)
    home, deployments = tmp_path / "home", tmp_path / "deployments"
    env = {"FAIRFL_NETWORK": node.url, "FAIRFL_DEPLOYMENTS": str(deployments),
           "FAIRFL_HOME": str(home)}
    agent = None
    try:
        config = SimulationConfig.build(clients=3, malicious=0.0, attack="none", rounds=1,
                                        steps=5, scoring="loo", seed=5, list_price=PRICE)
        report = run_simulation(config, workdir=home / "sim", network=node.url,
                                deployments=deployments, keys_dir=home / "keys",
                                store=LocalStore(home / "store"))
        model_id = report["listing"]["model_id"]
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        st.cache_data.clear()
        st.cache_resource.clear()
        assert "Models for sale" in [df.proto.alt for df in models_page().dataframe]

        log = tmp_path / "key-agent.log"
        with log.open("wb") as out:
            agent = subprocess.Popen(
                [shutil.which("fl-agent") or "fl-agent", "market", "serve", "--account",
                 "TEST::0", "--poll-interval", "0.2"],
                cwd=REPO, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_until(lambda: b"key agent for" in log.read_bytes(), 60, "the key agent", agent)

        with networks.parse_network_choice(node.url):
            fairfl = FairFL(load_deployment(node.url, deployments))
            owner = dev_account(0)
            token = fairfl.token
            token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
            buyers = [dev_account(10 + i) for i in range(4)]
            for buyer in buyers:
                chain.provider.make_request("anvil_setBalance", [buyer.address, hex(10**20)])
                token.mint(buyer.address, 100 * FLT, sender=owner)

            def status(buyer) -> PurchaseStatus:
                return fairfl.marketplace.purchase(model_id, buyer.address).status

            for buyer in buyers[:2]:
                buy_model(fairfl, buyer, model_id)
            wait_until(lambda: all(status(b) == PurchaseStatus.DELIVERED for b in buyers[:2]),
                       60, "the first two keys", agent)

            node.stop()
            time.sleep(2)  # the agent finds nobody there and backs off
            assert agent.poll() is None, log.read_text()
            st.cache_data.clear()  # what the 5 s TTL does: the page reads the chain again
            down = models_page()
            assert "Cannot reach the chain" in down.error[0].value
            assert not down.dataframe

            node.start(accounts=16)
            for buyer in buyers[2:]:
                buy_model(fairfl, buyer, model_id)
            wait_until(lambda: all(status(b) == PurchaseStatus.DELIVERED for b in buyers),
                       120, "every key after the restart", agent)
            assert sorted(delivered_to(fairfl, model_id)) == sorted(
                b.address.lower() for b in buyers)  # each exactly once
            assert agent.poll() is None  # the same process served before and after

        st.cache_data.clear()
        back = models_page()
        assert not back.error, [e.value for e in back.error]
        assert "Models for sale" in [df.proto.alt for df in back.dataframe]
    finally:
        if agent is not None:
            stop(agent)
        node.stop()
        st.cache_data.clear()
        st.cache_resource.clear()
