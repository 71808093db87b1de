"""``fl-agent keyholder``: the key holder of a homomorphic task, as its own process."""

from __future__ import annotations

import click

from fl_agent.cli.common import (
    Finite,
    account_option,
    console,
    deployed,
    ipfs_option,
    network_option,
    open_store,
    resolve_account,
    serve,
)


@click.command()
@click.option("--task", "task_id", type=click.IntRange(1), required=True, help="Task id.")
@click.option("--poll-interval", type=Finite(min=0), default=2.0, show_default=True,
              help="Seconds between looks at the chain.")
@account_option
@network_option
@ipfs_option
def keyholder(task_id: int, poll_interval: float, account: str, network: str | None,
              ipfs: str | None) -> None:
    """Hold the secret key of a homomorphic task (--mode he) until the task ends.

    Answers the aggregator's decryption requests on chain (the KeyHolderDesk): each round,
    the inner products and squared norms FLTrust's rule needs, then the trust-weighted
    aggregate, never an individual update. The secret key is the one `fl-agent task create
    --mode he` left in FAIRFL_HOME/keys/ckks; results go to the store, their CIDs on chain.
    A restart resumes after the last answered request (cursor in FAIRFL_HOME/agents).
    """
    from fl_agent.agents.keyholder import KeyHolderAgent

    with deployed(network) as (settings, fairfl):
        signer = resolve_account(account, unattended=True)
        agent = KeyHolderAgent(fairfl, open_store(ipfs), signer, task_id, settings.keys_dir,
                               settings.agents_dir, confirmations=settings.confirmations,
                               log=console.print)
        console.print(f"[green]key holder {agent.address}[/] of task {task_id} (context "
                      f"{agent.holder.fingerprint[:16]}...); waiting for requests")
        serve(lambda: bool(agent.step()), lambda: agent.finished, poll_interval, console.print)
    console.print("task ended")
