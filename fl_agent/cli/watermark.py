"""``fl-agent watermark verify``: does a model carry your ownership watermark?

Reads the model (a weights file, for instance one bought and downloaded with ``fl-agent
market download``, or a CID of plaintext weights; without ``--model``, the task's current
model as its member ``--account`` reads it), the watermark key file the participant agent
kept (``watermark-key.json`` in its privacy folder under ``FAIRFL_HOME/agents``), and checks
the key against the commitment the account made on chain when it joined the task.
Verification itself is :func:`fl_agent.privacy.watermark.verify`.
"""

from __future__ import annotations

import re
from pathlib import Path

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


@click.group()
def watermark() -> None:
    """Ownership watermarks (tasks created with --watermark)."""


@watermark.command("verify")
@click.option("--task", "task_id", type=click.IntRange(1), required=True,
              help="The task the model was trained in (its spec and your commitment).")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False),
              required=True, help="Your watermark key file (watermark-key.json).")
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
    from fl_agent.agents.access import member_key
    from fl_agent.agents.participant import load_task_document, read_task_model_bytes
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
            plain = read_task_model_bytes(fairfl, store, task_id, address,
                                          member_key(fairfl, who), document)
            source = f"task {task_id}'s current model"
        elif Path(model).is_file():
            plain, source = Path(model).read_bytes(), model
        else:
            plain, source = store.get(model), model
        vector = decode_weights(plain, document.model)
        committed, block = fairfl.ledger.watermark_commitment(task_id, address)
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
