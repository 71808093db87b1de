"""``fl-agent``: the command line of FairFL.

fl-agent chain up        start the shared local chain (anvil with saved state)
fl-agent chain status    is it running, at which block, with which deployment
fl-agent chain down      stop it (its state is kept)
fl-agent chain reset     stop it and forget its state
fl-agent status          tasks, rounds, participants and listings read from the chain
fl-agent storage add F   store a file, print its CID (same as `ipfs add --cid-version 1`)
fl-agent storage get C   fetch and verify content by CID
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from fl_agent.chain.node import LocalChain
from fl_agent.errors import FairFLError
from fl_agent.settings import Settings, get_settings

# Wide enough for CIDs and addresses when the output goes to a log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
FLT = 10**18


def _local_chain(settings: Settings, port: int | None = None) -> LocalChain:
    return LocalChain(settings.chain_dir, settings.rpc_host, port or settings.rpc_port)


@contextmanager
def connected(network: str) -> Iterator[None]:
    """Connects ape to ``network`` for the duration of the block."""
    from ape import networks

    try:
        with networks.parse_network_choice(network):
            yield
    except FairFLError:
        raise
    except Exception as err:  # ape raises many types for an unreachable node
        if "connect" in str(err).lower() or "not found" in str(err).lower():
            raise FairFLError(
                f"cannot reach network {network!r}: {err}. For the local chain, "
                "run `fl-agent chain up` (or `make chain`) first."
            ) from err
        raise


def resolve_account(alias: str) -> Any:
    """``TEST::3`` is ape's 4th test account; anything else is an ape account alias."""
    from ape import accounts

    if alias.upper().startswith("TEST::"):
        return accounts.test_accounts[int(alias.split("::", 1)[1])]
    return accounts.load(alias)


def fmt_flt(amount: int) -> str:
    return f"{amount / FLT:,.4f} FLT"


class FairFLGroup(click.Group):
    """Turns FairFL errors into one readable line and exit code 1, instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FairFLError as err:
            console.print(f"[bold red]error:[/] {err}")
            sys.exit(1)


@click.group(cls=FairFLGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fairfl")
def main() -> None:
    """FairFL: fair, verifiable federated learning on an Ethereum ledger.

    Participants train locally and publish only weights; every upload and aggregation is
    recorded on chain, contributions are rewarded in FLT, and cheaters are blacklisted.
    Settings come from FAIRFL_* environment variables (see fl_agent/settings.py).
    """


@main.group()
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
    node = _local_chain(get_settings(), port)
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
    node = _local_chain(get_settings())
    if node.stop():
        console.print(f"[green]chain stopped[/]; state kept in {node.state_file}")
    else:
        console.print("chain was not running")


@chain.command("reset")
@click.confirmation_option(prompt="Forget the whole local chain (accounts, contracts, history)?")
def chain_reset() -> None:
    """Stop the local chain and delete its saved state."""
    _local_chain(get_settings()).reset()
    console.print("[green]local chain reset[/]")


@chain.command("status")
def chain_status() -> None:
    """Show whether the local chain runs, its height and the deployment it holds."""
    settings = get_settings()
    node = _local_chain(settings)
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


ipfs_option = click.option(
    "--ipfs",
    default=None,
    metavar="URL",
    help="Kubo RPC URL, e.g. http://127.0.0.1:5001 (default: FAIRFL_IPFS, else the embedded "
    "store in .fairfl/store).",
)


def _store(ipfs: str | None) -> Any:
    from fl_agent.storage.store import open_store

    settings = get_settings()
    try:
        return open_store(ipfs or settings.ipfs, settings.store_dir, settings.max_content_bytes)
    except ValueError as err:
        raise FairFLError(f"bad --ipfs value: {err}") from err


@main.group()
def storage() -> None:
    """Put files into IPFS and get them back, verified against their CID."""


@storage.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@ipfs_option
def storage_add(file: str, ipfs: str | None) -> None:
    """Store FILE and print its CID (identical to `ipfs add --cid-version 1 FILE`)."""
    from pathlib import Path

    click.echo(_store(ipfs).add(Path(file).read_bytes()))


@storage.command("get")
@click.argument("cid")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="Where to write the content.",
)
@ipfs_option
def storage_get(cid: str, output: str, ipfs: str | None) -> None:
    """Fetch CID, check that the bytes hash to it, and write them to --output."""
    from pathlib import Path

    data = _store(ipfs).get(cid)
    Path(output).write_bytes(data)
    console.print(f"[green]verified[/] {cid}: {len(data):,} bytes written to {output}")


@main.command()
@click.option("--network", default=None, help="ape network choice (default: FAIRFL_NETWORK).")
def status(network: str | None) -> None:
    """Print tasks, participants and listed models, read from the chain."""
    from fl_agent.chain import FairFL, load_deployment

    settings = get_settings()
    network = network or settings.network
    with connected(network):
        fairfl = FairFL(load_deployment(network, settings.deployments))
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
    for col in ("id", "task", "price", "sales", "revenue", "active", "payees", "encrypted CID"):
        models.add_column(col)
    for m in fairfl.marketplace.listings():
        models.add_row(
            str(m.model_id),
            str(m.task_id or "-"),
            fmt_flt(m.price),
            str(m.sales),
            fmt_flt(m.revenue),
            "yes" if m.active else "no",
            str(len(m.payees)),
            m.encrypted_cid,
        )
    console.print(models)


if __name__ == "__main__":
    main()
