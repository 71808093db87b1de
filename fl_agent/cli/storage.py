"""``fl-agent storage add|get``: content addressed exactly as ``ipfs add --cid-version 1``."""

from __future__ import annotations

from pathlib import Path

import click

from fl_agent.cli.common import console, ipfs_option, open_store


@click.group()
def storage() -> None:
    """Put files into IPFS and get them back, verified against their CID."""


@storage.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@ipfs_option
def storage_add(file: str, ipfs: str | None) -> None:
    """Store FILE and print its CID (identical to `ipfs add --cid-version 1 FILE`)."""
    click.echo(open_store(ipfs).add(Path(file).read_bytes()))


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
    data = open_store(ipfs).get(cid)
    Path(output).write_bytes(data)
    console.print(f"[green]verified[/] {cid}: {len(data):,} bytes written to {output}")

