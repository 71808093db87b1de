"""``fl-agent``: the command line of FairFL.

fl-agent chain up        start the shared local chain (anvil with saved state)
fl-agent chain status    is it running, at which block, with which deployment
fl-agent chain down      stop it (its state is kept)
fl-agent chain reset     stop it and forget its state
fl-agent status          tasks, rounds, participants and listings read from the chain
fl-agent storage add F   store a file, print its CID (same as `ipfs add --cid-version 1`)
fl-agent storage get C   fetch and verify content by CID
fl-agent task create     publish a model spec + dataset spec and create a task on chain
fl-agent train           be a participant: join a task, train every round, submit updates
fl-agent aggregate       be a task's aggregator: open rounds, aggregate robustly, pay
fl-agent keyholder       hold a homomorphic task's secret key: decrypt scalars and aggregates
fl-agent simulate        run the whole system (chain, store, N agents, attacks) and report
fl-agent bench           the target setting for every attack; a Markdown table of results
fl-agent market ...      sell, buy, download models; the seller's key agent; withdraw revenue
fl-agent watermark verify  does a model carry your ownership watermark (and your commitment)
fl-agent evidence check  is a round's evidence the chain's record; run its rule again

One module per command group (``chain``, ``storage``, ``tasks``, ``simulate``, ``market``, ...);
what they share (options, connecting, accounts, the store) is in :mod:`fl_agent.cli.common`.
"""

from __future__ import annotations

import click

from fl_agent.cli import (
    chain,
    evidence,
    governance,
    keyholder,
    market,
    simulate,
    storage,
    tasks,
    watermark,
)
from fl_agent.cli.chain import print_status
from fl_agent.cli.common import FairFLGroup, console, fmt_flt, resolve_account

__all__ = ["console", "fmt_flt", "main", "print_status", "resolve_account"]


@click.group(cls=FairFLGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fairfl")
def main() -> None:
    """FairFL: fair, verifiable federated learning on an Ethereum ledger.

    Participants train locally and publish only weights; every upload and aggregation is
    recorded on chain, contributions are rewarded in FLT, and cheaters are blacklisted.
    Settings come from FAIRFL_* environment variables (see fl_agent/settings.py).
    """


main.add_command(chain.chain)
main.add_command(chain.status)
main.add_command(storage.storage)
main.add_command(tasks.task)
main.add_command(tasks.train)
main.add_command(tasks.aggregate)
main.add_command(keyholder.keyholder)
main.add_command(simulate.simulate)
main.add_command(simulate.bench)
main.add_command(market.market)
main.add_command(governance.appeal)
main.add_command(evidence.evidence)
main.add_command(watermark.watermark)
for command in (governance.close_round, governance.replace_aggregator, governance.cancel):
    tasks.task.add_command(command)
