"""Deploy the FairFL contracts and wire their roles.

    ape run deploy                                   # private anvil, thrown away afterwards
    ape run deploy --network ethereum:local:node     # the shared chain of `make chain`
    ape run deploy --network ethereum:sepolia:node --account my-deployer

Writes the addresses to deployments/<network>.json, which agents, scripts and the app read.
"""

from __future__ import annotations

import click
from ape import project
from ape.cli import ConnectedProviderCommand, account_option
from pydantic import ValidationError

from fl_agent.chain.deployment import BlacklistPolicy, deploy_contracts, save_deployment


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the FairFL contracts")
@account_option()
@click.option(
    "--governance",
    default=None,
    help="Address that receives every admin role (default: the deployer).",
)
@click.option(
    "--alpha-bps",
    default=2_000,
    show_default=True,
    help="Weight of the newest round in the reputation EWMA, in basis points.",
)
@click.option(
    "--max-rejections",
    default=3,
    show_default=True,
    help="Rejected updates within the window that blacklist a participant.",
)
@click.option(
    "--window-blocks",
    default=10_000,
    show_default=True,
    help="Length of the rejection window in blocks.",
)
@click.option(
    "--out", "out_dir", default="deployments", show_default=True, help="Folder for <network>.json."
)
def cli(network, account, governance, alpha_bps, max_rejections, window_blocks, out_dir):
    """Deploy FairToken, ParticipantRegistry, TaskLedger and ModelMarketplace."""
    try:
        policy = BlacklistPolicy(
            alpha_bps=alpha_bps, max_rejections=max_rejections, window_blocks=window_blocks
        )
    except ValidationError as err:
        problems = "; ".join(f"--{e['loc'][0].replace('_', '-')}: {e['msg']}" for e in err.errors())
        raise click.UsageError(f"invalid blacklist policy: {problems}") from None
    record, instances = deploy_contracts(account, project, governance=governance, policy=policy)
    path = save_deployment(record, out_dir)
    for name, contract in instances.items():
        click.echo(f"{name:<20} {contract.address}")
    click.secho(f"Deployed to {record.network} (chain {record.chain_id}); wrote {path}", fg="green")
