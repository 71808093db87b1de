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
@click.option("--task", "task_id", type=click.IntRange(1), default=None,
              help="Task id (needed unless --new-context).")
@click.option("--new-context", is_flag=True,
              help="Make the CKKS key pair of a task not created yet, then exit: the secret "
              "key stays in FAIRFL_HOME/keys/ckks on this machine, the public context goes to "
              "the store, and its CID is printed for the task's creator (`fl-agent task "
              "create --mode he --key-holder YOU --he-context CID`).")
@click.option("--poll-interval", type=Finite(min=0), default=2.0, show_default=True,
              help="Seconds between looks at the chain.")
@account_option
@network_option
@ipfs_option
def keyholder(task_id: int | None, new_context: bool, poll_interval: float, account: str,
              network: str | None, ipfs: str | None) -> None:
    """Hold the secret key of a homomorphic task (--mode he) until the task ends.

    Answers the aggregator's decryption requests on chain (the KeyHolderDesk): each round,
    the inner products and squared norms FLTrust's rule needs, then the trust-weighted
    aggregate, never an individual update. The secret key is the one this machine made:
    with `--new-context` before the task exists (so that its creator never sees it), or
    `fl-agent task create --mode he` when the creator holds the key itself; it is in
    FAIRFL_HOME/keys/ckks. Results go to the store, their CIDs on chain. A restart resumes
    after the last answered request (cursor in FAIRFL_HOME/agents).
    """
    if new_context:
        if task_id is not None:
            raise click.UsageError("--new-context makes the keys of a task not created yet: "
                                   "give it without --task")
        _new_context(account, ipfs)
        return
    if task_id is None:
        raise click.UsageError("give --task N to serve a task, or --new-context to make the "
                               "keys of a task first")
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


def _new_context(account: str, ipfs: str | None) -> None:
    """``--new-context``: a key pair made here, for a task its creator has yet to create."""
    from fl_agent.agents.keyholder import attest, create_context
    from fl_agent.settings import get_settings

    settings = get_settings()
    holder = resolve_account(account)
    console.print("creating a CKKS key pair...")
    plan = create_context(open_store(ipfs), settings.keys_dir, str(holder.address))
    attestation = attest(holder, plan.fingerprint)
    console.print(f"[green]public context {plan.context_cid}[/] (fingerprint "
                  f"{plan.fingerprint[:16]}...); the secret key is in "
                  f"{settings.keys_dir / 'ckks'} and nowhere else.\n"
                  f"The task's creator runs:\n  fl-agent task create --mode he --key-holder "
                  f"{holder.address} --he-context {plan.context_cid} --he-attestation "
                  f"{attestation} ...\n"
                  f"Then you run, on this machine:\n  fl-agent keyholder --task N --account "
                  f"{account}", soft_wrap=True)
