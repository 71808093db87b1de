"""``fl-agent watermark verify`` and ``claim``: does a model carry your ownership watermark,
and telling everyone that it does.

``verify`` reads the model (a weights file, for instance one bought and downloaded with ``fl-agent
market download``, or a CID of plaintext weights; without ``--model``, the task's current
model as its member ``--account`` reads it), the watermark key file the participant agent
kept (``watermark-key.json`` in its privacy folder under ``FAIRFL_HOME/agents``), and checks
the key against the commitment the account made on chain when it joined the task.
Verification itself is :func:`fl_agent.privacy.watermark.verify`.

``claim`` does the same on a completed task's final model and, if it verifies, reveals the key
in a claim document and records it on chain (:mod:`fl_agent.privacy.claims`), so that the
marketplace lists the member among the model's watermarked contributors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from fl_agent.cli.common import (
    account_option,
    console,
    deployed,
    ipfs_option,
    network_option,
    open_store,
    resolve_account,
)
from fl_agent.errors import FairFLError

task_option = click.option("--task", "task_id", type=click.IntRange(1), required=True,
                           help="The task the model was trained in (its spec and your "
                           "commitment).")
key_option = click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False),
                          required=True, help="Your watermark key file (watermark-key.json "
                          "in your agent's privacy folder under FAIRFL_HOME/agents).")


def _task_model(fairfl: Any, store: Any, task_id: int, who: Any, document: Any) -> bytes:
    """The task's current model as member ``who`` reads it (plaintext safetensors)."""
    from fl_agent.agents.access import member_key
    from fl_agent.agents.participant import read_task_model_bytes

    return read_task_model_bytes(fairfl, store, task_id, str(who.address),
                                 member_key(fairfl, who), document)


@click.group()
def watermark() -> None:
    """Ownership watermarks (tasks created with --watermark)."""


@watermark.command("verify")
@task_option
@key_option
@click.option("--model", "model", default=None, metavar="FILE|CID",
              help="The model's plaintext weights: a file or a CID (default: the task's "
              "current model, read with your member key).")
@account_option
@network_option
@ipfs_option
def watermark_verify(task_id: int, key_file: str, model: str | None, account: str,
                     network: str | None, ipfs: str | None) -> None:
    """Report how many of your watermark's bits the model carries, how likely a model
    without your watermark would match as many (binomial tail), whether your key is the one
    you committed on chain, and a verdict. Exits with 1 unless both hold."""
    from fl_agent.agents.participant import load_task_document
    from fl_agent.learning.weights import decode_weights
    from fl_agent.privacy.watermark import WatermarkKey, commitment, verify

    key = WatermarkKey.load(Path(key_file))
    store = open_store(ipfs)
    with deployed(network) as (_, fairfl):
        who = resolve_account(account) if not re.fullmatch(r"0x[0-9a-fA-F]{40}", account) \
            else None
        address = account if who is None else str(who.address)
        task = fairfl.ledger.task(task_id)
        document = load_task_document(store, task.spec_cid)
        if model is None:
            if who is None:
                raise FairFLError("reading the task's model needs your account (alias), not "
                                  "only an address; or give --model")
            plain = _task_model(fairfl, store, task_id, who, document)
            source = f"task {task_id}'s current model"
        elif Path(model).is_file():
            plain, source = Path(model).read_bytes(), model
        else:
            plain, source = store.get(model), model
        vector = decode_weights(plain, document.model)
        record = fairfl.ledger.watermark_commitment(task_id, address)
    committed, block = record.commitment, record.block
    result = verify(document.model, vector, key)
    matches = committed == commitment(key, address, task_id)
    console.print(f"model: {source}\nbits matched: {result.matched} of {result.bits} "
                  f"({result.match_rate:.1%})\nchance a model without this watermark matches "
                  f"as many: {result.p_value:.3g}")
    if committed == bytes(32):
        console.print(f"commitment: [red]none[/] — {address} committed no watermark key to "
                      f"task {task_id}")
    elif matches:
        console.print(f"commitment: [green]matches[/] the one {address} made in block {block}")
    else:
        console.print(f"commitment: [red]does not match[/] what {address} committed in block "
                      f"{block}: this is not the key it committed")
    if result.verified and matches:
        console.print("[bold green]verified[/]: the model carries this watermark")
        return
    console.print("[bold red]not verified[/]")
    raise SystemExit(1)


@watermark.command("claim")
@task_option
@key_option
@click.option("--yes", is_flag=True, help="Reveal the key without asking first.")
@account_option
@network_option
@ipfs_option
def watermark_claim(task_id: int, key_file: str, yes: bool, account: str, network: str | None,
                    ipfs: str | None) -> None:
    """Claim that a completed task's final model carries your watermark, so that the
    marketplace lists you among its watermarked contributors.

    Verifies the model first (as `verify` does) and claims nothing unless it verifies and
    your key is the one you committed. The claim reveals your key: anyone who can read the
    model (its members and buyers) can then re-check the bits, and also try to train the
    mark away. One claim per member and task, recorded with `claimWatermark`."""
    from fl_agent.agents.participant import load_task_document
    from fl_agent.chain.records import TaskStatus
    from fl_agent.learning.weights import decode_weights
    from fl_agent.privacy.claims import make_claim
    from fl_agent.privacy.watermark import WatermarkKey, commitment, verify

    key = WatermarkKey.load(Path(key_file))
    store = open_store(ipfs)
    with deployed(network) as (_, fairfl):
        who = resolve_account(account)
        address = str(who.address)
        task = fairfl.ledger.task(task_id)
        if task.status != TaskStatus.COMPLETED:
            raise FairFLError(f"task {task_id} is {task.status.name.lower()}: a watermark can "
                              "be claimed once the task is complete")
        record = fairfl.ledger.watermark_commitment(task_id, address)
        if not record.exists:
            raise FairFLError(f"{address} committed no watermark key to task {task_id}: "
                              "there is nothing to claim")
        if record.claimed:
            raise FairFLError(f"{address} already claimed its watermark in task {task_id}")
        if address.lower() not in {a.lower() for a, amount in
                                   fairfl.ledger.contributions(task_id).items() if amount}:
            raise FairFLError(f"{address} had no update accepted in task {task_id}: readers "
                              "would reject its claim")
        if record.commitment != commitment(key, address, task_id):
            raise FairFLError(f"{key_file} is not the key {address} committed to task "
                              f"{task_id} in block {record.block}: use the key file its "
                              "participant agent kept")
        document = load_task_document(store, task.spec_cid)
        plain = _task_model(fairfl, store, task_id, who, document)
        result = verify(document.model, decode_weights(plain, document.model), key)
        console.print(f"task {task_id}'s final model carries {result.matched} of "
                      f"{result.bits} bits of your watermark (chance without it: "
                      f"{result.p_value:.3g})")
        if not result.verified:
            console.print("[bold red]not verified[/]: nothing claimed, your key stays secret")
            raise SystemExit(1)
        if not yes:
            click.confirm("Claiming reveals your key to everyone; whoever holds the model "
                          "can then try to remove the mark. Claim?", abort=True)
        cid = store.add(make_claim(key, address, task_id, plain, result).to_json())
        receipt = fairfl.ledger.claim_watermark(task_id, cid, sender=who)
    console.print(f"[bold green]claimed[/]: claim document {cid}, transaction "
                  f"{receipt.tx_hash}")
