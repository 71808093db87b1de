"""An agent signs with an ape keyfile account (encrypted at rest), unattended, and its key
never appears in the clear: not in its output, not in the files it writes, not in the
keyfile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from eth_account import Account

from fl_agent.chain.deployment import save_deployment

KEY = "0x" + "5eed" * 16  # a fresh key, funded on the test chain only
PASSPHRASE = "correct horse battery staple"


def _every_byte_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def _leaks(blob: bytes) -> bool:
    """Whether the key (hex, either case, with or without 0x) or the passphrase is in ``blob``."""
    raw = KEY.removeprefix("0x")
    return any(s.encode() in blob for s in (raw, raw.upper(), PASSPHRASE))


def test_an_agent_signs_with_an_encrypted_keyfile_and_never_writes_its_key(
        world, anvil_url, tmp_path):
    from ape import chain

    address = Account.from_key(KEY).address
    chain.provider.make_request("anvil_setBalance", [address, hex(10**20)])
    ape_home = tmp_path / "ape"
    env = {**os.environ, "APE_DATA_FOLDER": str(ape_home)}
    made = subprocess.run(
        [sys.executable, "-c", "from ape_accounts import import_account_from_private_key as i;"
         f"i('agent', {PASSPHRASE!r}, {KEY!r})"],
        env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    [keyfile] = (ape_home / "accounts").glob("agent.json")
    assert not _leaks(keyfile.read_bytes())  # encrypted at rest
    task_id = world.create_task(rounds=1, window=200)
    deployments = tmp_path / "deployments"
    save_deployment(world.fairfl.deployment, deployments)
    env.update(FAIRFL_HOME=str(tmp_path), FAIRFL_DEPLOYMENTS=str(deployments),
               FAIRFL_NETWORK=anvil_url, COLUMNS="200")
    train = [sys.executable, "-m", "fl_agent.cli", "train", "--task", str(task_id),
             "--data", "digits", "--shard", "0/2", "--account", "agent",
             "--poll-interval", "0.2"]

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
    assert not _leaks(out.encode() + locked.stdout.encode() + locked.stderr.encode())
    assert not _leaks(_every_byte_under(tmp_path))  # store, cursors, keys, ape's folder
