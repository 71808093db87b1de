"""``fl-agent chain ...`` (the shared local anvil) and ``fl-agent status`` (what the contracts
hold)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from fl_agent.cli.common import console, deployed, fmt_flt, local_chain
from fl_agent.settings import get_settings


@click.group()
def chain() -> None:
    """Run the shared local chain (anvil) that agents, scripts and the app use together."""


@chain.command("up")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8545).")
@click.option(
    "--block-time",
    type=int,
    default=None,
    help="Mine a block every N seconds (default: a block per transaction).",
)
def chain_up(port: int | None, block_time: int | None) -> None:
    """Start anvil in the background, loading the saved chain state if there is one."""
    node = local_chain(get_settings(), port)
    resumed = node.state_file.exists()
    pid = node.start(block_time=block_time)
    height = node.block_number()
    what = "resumed saved state" if resumed else "new chain"
    console.print(
        f"[green]chain up[/] at {node.url} (pid {pid}, block {height}, {what}); "
        f"state in {node.state_file}"
    )


@chain.command("down")
def chain_down() -> None:
    """Stop the local chain; its state is saved and loaded again by `chain up`."""
    node = local_chain(get_settings())
    if node.stop():
        console.print(f"[green]chain stopped[/]; state kept in {node.state_file}")
    else:
        console.print("chain was not running")


@chain.command("reset")
@click.confirmation_option(prompt="Forget the whole local chain (accounts, contracts, history)?")
def chain_reset() -> None:
    """Stop the local chain and delete its saved state."""
    local_chain(get_settings()).reset()
    console.print("[green]local chain reset[/]")


@chain.command("status")
def chain_status() -> None:
    """Show whether the local chain runs, its height and the deployment it holds."""
    settings = get_settings()
    node = local_chain(settings)
    height = node.block_number()
    if height is None:
        console.print(f"[yellow]no chain[/] at {node.url}; start it with `fl-agent chain up`")
        sys.exit(1)
    console.print(f"[green]chain running[/] at {node.url}: block {height}, pid {node.pid()}")
    from fl_agent.chain.deployment import deployment_path

    path = deployment_path(settings.network, settings.deployments)
    if path.exists():
        console.print(f"deployment: {path}")
    else:
        console.print("no deployment yet: run `make deploy`")



@click.command()
@click.option("--network", default=None, help="ape network choice (default: FAIRFL_NETWORK).")
def status(network: str | None) -> None:
    """Print tasks, participants and listed models, read from the chain."""
    with deployed(network) as (_, fairfl):
        print_status(fairfl)


def print_status(fairfl: Any) -> None:
    """Rich tables of everything the contracts hold."""
    tasks = Table(title="Tasks")
    for col in (
        "id",
        "status",
        "round",
        "mode",
        "metric",
        "participants",
        "rewarded",
        "global model",
    ):
        tasks.add_column(col)
    for t in fairfl.ledger.tasks():
        tasks.add_row(
            str(t.task_id),
            t.status.name.lower(),
            f"{t.current_round}/{t.rounds}",
            t.training_mode.label(),
            t.metric,
            str(t.participant_count),
            fmt_flt(t.total_rewarded),
            t.global_model_cid,
        )
    console.print(tasks)

    people = Table(title="Participants")
    for col in ("address", "reputation", "accepted", "rejected", "blacklisted", "FLT"):
        people.add_column(col)
    for p in fairfl.registry.participants():
        people.add_row(
            p.address,
            f"{p.reputation_bps / 100:.2f}%",
            str(p.accepted_updates),
            str(p.rejected_updates),
            "yes" if p.blacklisted else "",
            fmt_flt(fairfl.token.balance_of(p.address)),
        )
    console.print(people)

    models = Table(title="Models for sale")
    for col in ("id", "task", "price", "sales", "revenue", "in escrow", "active", "payees",
                "encrypted CID"):
        models.add_column(col)
    for m in fairfl.marketplace.listings():
        models.add_row(
            str(m.model_id),
            str(m.task_id),
            fmt_flt(m.price),
            str(m.sales),
            fmt_flt(m.revenue),
            fmt_flt(m.escrowed),
            "yes" if m.active else "no",
            str(len(fairfl.ledger.contributions(m.task_id))),
            m.encrypted_cid,
        )
    console.print(models)

