"""Every agent that signs unattended (the participant, the aggregator and the seller's key
agent) signs with an ape keyfile account (encrypted at rest), and its key never appears in
the clear: not in its output, not in the files it writes, not in the keyfile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from eth_account import Account

from fl_agent.chain.deployment import save_deployment

PASSPHRASE = "correct horse battery staple"
FLT = 10**18


def _every_byte_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def _leaks(blob: bytes, key: str) -> bool:
    """Whether ``key`` (hex, either case, with or without 0x) or the passphrase is in
    ``blob``."""
    raw = key.removeprefix("0x").lower()
    return any(s.encode() in blob for s in (raw, raw.upper(), PASSPHRASE))


def keyfile_env(world, anvil_url: str, tmp_path: Path, key: str) -> dict[str, str]:
    """An ape data folder under ``tmp_path`` whose account ``agent`` is ``key``, encrypted
    with :data:`PASSPHRASE`, and the environment an agent process needs to sign with it on
    ``world``'s deployment (the passphrase not yet given)."""
    ape_home = tmp_path / "ape"
    env = {**os.environ, "APE_DATA_FOLDER": str(ape_home)}
    made = subprocess.run(
        [sys.executable, "-c", "from ape_accounts import import_account_from_private_key as i;"
         f"i('agent', {PASSPHRASE!r}, {key!r})"],
        env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    [keyfile] = (ape_home / "accounts").glob("agent.json")
    assert not _leaks(keyfile.read_bytes(), key)  # encrypted at rest
    deployments = tmp_path / "deployments"
    save_deployment(world.fairfl.deployment, deployments)
    env.update(FAIRFL_HOME=str(tmp_path), FAIRFL_DEPLOYMENTS=str(deployments),
               FAIRFL_NETWORK=anvil_url, COLUMNS="200")
    env.pop("APE_ACCOUNTS_agent_PASSPHRASE", None)
    return env


def fl_agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "fl_agent.cli", *args, "--account", "agent"]


def test_a_participant_signs_with_an_encrypted_keyfile_and_never_writes_its_key(
        world, anvil_url, tmp_path):
    from ape import chain

    key = "0x" + "5eed" * 16  # a fresh key, funded on the test chain only
    address = Account.from_key(key).address
    chain.provider.make_request("anvil_setBalance", [address, hex(10**20)])
    env = keyfile_env(world, anvil_url, tmp_path, key)
    task_id = world.create_task(rounds=1, window=200)
    train = fl_agent("train", "--task", str(task_id), "--data", "digits", "--shard", "0/2",
                     "--poll-interval", "0.2")

    locked = subprocess.run(train, env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert locked.returncode != 0
    assert "APE_ACCOUNTS_agent_PASSPHRASE" in locked.stdout + locked.stderr

    env["APE_ACCOUNTS_agent_PASSPHRASE"] = PASSPHRASE
    agent = subprocess.Popen(train, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not world.fairfl.ledger.membership(task_id, address).joined:
            assert agent.poll() is None, agent.communicate()[0]
            assert time.monotonic() < deadline, "the agent never joined"
            time.sleep(0.2)
    finally:
        agent.kill()
        out, _ = agent.communicate()
    assert world.fairfl.registry.participant(address).registered  # it signed twice
    said = out.encode() + locked.stdout.encode() + locked.stderr.encode()
    assert not _leaks(said, key)
    assert not _leaks(_every_byte_under(tmp_path), key)  # store, cursors, keys, ape's folder


def test_the_aggregator_signs_with_an_encrypted_keyfile_and_never_writes_its_key(
        world, anvil_url, tmp_path):
    from fl_agent.chain.records import TaskStatus

    key = world.aggregator.private_key  # the task's aggregator, now kept in a keyfile
    env = keyfile_env(world, anvil_url, tmp_path, key)
    env["APE_ACCOUNTS_agent_PASSPHRASE"] = PASSPHRASE
    task_id = world.create_task(rounds=1, window=200)
    people = [world.participant(task_id, i) for i in range(2)]
    agent = subprocess.Popen(
        fl_agent("aggregate", "--task", str(task_id), "--validation", "digits",
                 "--poll-interval", "0.2"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while world.fairfl.ledger.task(task_id).current_round < 1:  # it opened the round
            assert agent.poll() is None, agent.communicate()[0]
            assert time.monotonic() < deadline, "the aggregator never opened the round"
            time.sleep(0.2)
        for person in people:
            person.step()
        out, _ = agent.communicate(timeout=180)  # it finalizes the last round and stops
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, out
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    assert not _leaks(out.encode(), key)
    assert not _leaks(_every_byte_under(tmp_path), key)


def test_the_key_agent_signs_with_an_encrypted_keyfile_and_never_writes_its_key(
        world, anvil_url, tmp_path):
    """The seller lists a model; a buyer pays; ``market serve --once`` delivers the key."""
    from ape import chain

    from fl_agent.agents.access import member_key
    from fl_agent.chain.node import dev_account
    from fl_agent.chain.records import PurchaseStatus
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.learning.task_doc import AccessPlan
    from fl_agent.market.buyer import buy_model
    from fl_agent.market.listing import list_task_model

    seller = world.accounts[0]
    world.document = world.document.model_copy(update={"access": AccessPlan(
        creator_key=public_bytes(member_key(world.fairfl, seller)).hex())})
    task_id = world.create_task(rounds=1)
    people = [world.participant(task_id, i) for i in range(2)]
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    for person in people:
        person.step()
    aggregator.step()
    listed = list_task_model(world.fairfl, world.store, task_id, 30 * FLT, seller=seller,
                             keys_dir=tmp_path / "keys")  # FAIRFL_HOME/keys, as `market list`
    token = world.fairfl.token
    token.contract.grantRole(token.contract.MINTER_ROLE(), seller, sender=seller)
    buyer = dev_account(310)
    chain.provider.make_request("anvil_setBalance", [buyer.address, hex(10**20)])
    token.mint(buyer.address, 100 * FLT, sender=seller)
    buy_model(world.fairfl, buyer, listed.model_id)

    key = seller.private_key
    env = keyfile_env(world, anvil_url, tmp_path, key)
    env["APE_ACCOUNTS_agent_PASSPHRASE"] = PASSPHRASE
    served = subprocess.run(fl_agent("market", "serve", "--once"), env=env,
                            capture_output=True, text=True, timeout=180,
                            stdin=subprocess.DEVNULL)
    assert served.returncode == 0, served.stdout + served.stderr
    purchase = world.fairfl.marketplace.purchase(listed.model_id, buyer.address)
    assert purchase.status == PurchaseStatus.DELIVERED
    assert not _leaks(served.stdout.encode() + served.stderr.encode(), key)
    assert not _leaks(_every_byte_under(tmp_path), key)


def test_a_private_key_passed_as_the_account_is_refused_without_being_echoed(tmp_path):
    """Someone pastes a key where an account name goes: the agent refuses and says what to
    do, and the key is not in what it prints."""
    key = "0x" + "5eed" * 16
    env = {**os.environ, "APE_DATA_FOLDER": str(tmp_path / "ape"), "FAIRFL_HOME": str(tmp_path),
           "COLUMNS": "200"}
    raw = key.removeprefix("0x")
    for given in (key, raw.upper(), "0X" + raw, f"{raw[:32]} {raw[32:]}"):
        said = subprocess.run(
            [sys.executable, "-m", "fl_agent.cli", "market", "withdraw", "--account", given],
            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert said.returncode != 0
        assert "ape accounts import" in said.stdout + said.stderr
        assert not _leaks((said.stdout + said.stderr).encode(), key)
