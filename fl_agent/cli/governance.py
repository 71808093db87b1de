"""Keeping tasks moving and punishments accountable: close a round, replace an aggregator,
cancel a task, appeal a blacklisting and decide an appeal.

Each command is one contract call (see ``ITaskLedger`` and ``IParticipantRegistry``); the
contracts decide who may do what, and a refusal is printed with the contract's reason.
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

task_option = click.option("--task", "task_id", type=click.IntRange(1), required=True,
                           help="Task id.")


def _address(alias_or_address: str) -> str:
    if re.fullmatch(r"0x[0-9a-fA-F]{40}", alias_or_address):
        return alias_or_address
    return str(resolve_account(alias_or_address).address)


@click.command("close-round")
@task_option
@click.option("--round", "round_number", type=click.IntRange(1), default=None,
              help="The open round (default: the task's current round).")
@account_option
@network_option
def close_round(task_id: int, round_number: int | None, account: str,
                network: str | None) -> None:
    """Close an open round without a model or rewards.

    The task's aggregator may once the submission window has passed (for instance when
    fewer members than the quorum submitted); anyone may one more window later, when the
    aggregator left the round open. The next round then starts on the same model.
    """
    with deployed(network) as (_, fairfl):
        number = round_number or fairfl.ledger.task(task_id).current_round
        receipt = fairfl.ledger.close_round(task_id, number, sender=resolve_account(account))
    console.print(f"[green]round {number} of task {task_id} closed[/] (tx {receipt.tx_hash})")


@click.command("replace-aggregator")
@task_option
@click.option("--aggregator", "new", required=True, metavar="ALIAS|ADDRESS",
              help="The new aggregator.")
@click.option("--propose", is_flag=True,
              help="As the task's creator: propose it, to install a day later.")
@account_option
@network_option
def replace_aggregator(task_id: int, new: str, propose: bool, account: str,
                       network: str | None) -> None:
    """Give a task a new aggregator, also for its open round.

    Governance replaces it at once. The task's creator first proposes it (--propose), then
    installs it with the same command without --propose once a day has passed; governance
    can overrule meanwhile.
    """
    with deployed(network) as (_, fairfl):
        signer, address = resolve_account(account), _address(new)
        if propose:
            receipt = fairfl.ledger.propose_aggregator(task_id, address, sender=signer)
            console.print(f"[green]proposed {address} as the aggregator of task {task_id}[/] "
                          f"(tx {receipt.tx_hash}); install it in a day with the same "
                          "command without --propose")
            return
        receipt = fairfl.ledger.replace_aggregator(task_id, address, sender=signer)
    console.print(f"[green]{address} is now the aggregator of task {task_id}[/] "
                  f"(tx {receipt.tx_hash})")


@click.command("cancel")
@task_option
@account_option
@network_option
def cancel(task_id: int, account: str, network: str | None) -> None:
    """Cancel an open task (its creator or governance); what it credited stays claimable."""
    with deployed(network) as (_, fairfl):
        receipt = fairfl.ledger.cancel_task(task_id, sender=resolve_account(account))
    console.print(f"[green]task {task_id} cancelled[/] (tx {receipt.tx_hash}); its members can "
                  "still claim what they earned")


@click.group()
def appeal() -> None:
    """Appeal a blacklisting, and decide appeals (governance)."""


@appeal.command("file")
@click.option("--statement", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Your statement (any file: text, JSON, a re-run of the "
              "round's evidence); it is stored and its CID recorded on chain.")
@account_option
@network_option
@ipfs_option
def file_appeal(statement: Path, account: str, network: str | None, ipfs: str | None) -> None:
    """Appeal your current blacklisting, once. The rejection that caused it names its round
    and evidence (``fl-agent status``); governance grants or denies the appeal."""
    cid = open_store(ipfs).add(statement.read_bytes())
    with deployed(network) as (_, fairfl):
        receipt = fairfl.registry.file_appeal(cid, sender=resolve_account(account))
    console.print(f"[green]appeal filed[/] with statement {cid} (tx {receipt.tx_hash})")


@appeal.command("resolve")
@click.argument("participant", metavar="ALIAS|ADDRESS")
@click.option("--grant/--deny", required=True, help="Grant lifts the blacklisting.")
@click.option("--decision", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The reasons for the decision; stored, its CID on chain.")
@account_option
@network_option
@ipfs_option
def resolve(participant: str, grant: bool, decision: Path, account: str, network: str | None,
            ipfs: str | None) -> None:
    """Decide a pending appeal (governance)."""
    cid = open_store(ipfs).add(decision.read_bytes())
    with deployed(network) as (_, fairfl):
        address = _address(participant)
        receipt = fairfl.registry.resolve_appeal(address, grant, cid,
                                                 sender=resolve_account(account))
    verdict = "granted: the blacklisting is lifted" if grant else "denied"
    console.print(f"[green]appeal of {address} {verdict}[/] (tx {receipt.tx_hash})")
