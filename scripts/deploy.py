"""Deploy the FairFL contracts and wire their roles.

    ape run deploy                                   # private anvil, thrown away afterwards
    ape run deploy --network ethereum:local:node     # the shared chain of `make chain`
    ape run deploy --network ethereum:sepolia:node --account my-deployer
    ape run deploy --payment-token 0xA0b8...eB48 --delivery-window 300   # paid in a stablecoin

Writes the addresses to deployments/<network>.json, which agents, scripts and the app read.
"""

from __future__ import annotations

import click
from ape import project
from ape.cli import ConnectedProviderCommand, account_option
from eth_utils import is_address
from pydantic import ValidationError

from fl_agent.chain.deployment import (
    DEFAULT_DELIVERY_WINDOW,
    MAX_DELIVERY_WINDOW,
    BlacklistPolicy,
    deploy_contracts,
    save_deployment,
)


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
    "--payment-token",
    default=None,
    metavar="ADDRESS",
    help="ERC-20 the marketplace takes payment in: any ERC-20, with or without EIP-2612 permit "
    "(e.g. a stablecoin), as long as transfers move exact amounts (no fee on transfer). "
    "Default: FLT, the FairToken deployed here.",
)
@click.option(
    "--delivery-window",
    default=DEFAULT_DELIVERY_WINDOW,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_DELIVERY_WINDOW),
    metavar="BLOCKS",
    help="Blocks a seller has to deliver the key after a purchase (about a day at 12 s blocks). "
    "Once they pass without a key, the buyer can take its money back with a refund.",
)
@click.option(
    "--out", "out_dir", default="deployments", show_default=True, help="Folder for <network>.json."
)
def cli(
    network,
    account,
    governance,
    alpha_bps,
    max_rejections,
    window_blocks,
    payment_token,
    delivery_window,
    out_dir,
):
    """Deploy FairToken, ParticipantRegistry, TaskLedger and ModelMarketplace."""
    try:
        policy = BlacklistPolicy(
            alpha_bps=alpha_bps, max_rejections=max_rejections, window_blocks=window_blocks
        )
    except ValidationError as err:
        problems = "; ".join(f"--{e['loc'][0].replace('_', '-')}: {e['msg']}" for e in err.errors())
        raise click.UsageError(f"invalid blacklist policy: {problems}") from None
    if payment_token is not None and not is_address(payment_token):
        raise click.BadParameter(
            f"{payment_token!r} is not an address", param_hint="--payment-token"
        )
    try:
        record, instances = deploy_contracts(
            account,
            project,
            governance=governance,
            policy=policy,
            payment_token=payment_token,
            delivery_window=delivery_window,
        )
    except ValueError as err:  # a payment token without code, checked before any transaction
        raise click.BadParameter(str(err), param_hint="--payment-token") from None
    path = save_deployment(record, out_dir)
    for name, contract in instances.items():
        click.echo(f"{name:<20} {contract.address}")
    click.echo(f"{'payment token':<20} {record.payment_token}")
    click.echo(f"{'delivery window':<20} {record.delivery_window} blocks")
    click.secho(f"Deployed to {record.network} (chain {record.chain_id}); wrote {path}", fg="green")
    if governance and str(governance).lower() != str(account.address).lower():
        click.echo(
            f"Governance {governance} holds every operational role. The admin role moves to it "
            "in two steps: in two days it calls acceptDefaultAdminTransfer() on each contract "
            "(fl_agent.chain.deployment.accept_admin); until then the deployer stays admin."
        )
