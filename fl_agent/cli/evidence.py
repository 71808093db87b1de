"""``fl-agent evidence check``: is a round's evidence the record the chain acted on, and
does the rule, run again, decide the same (see :mod:`fl_agent.agents.audit`)."""

from __future__ import annotations

import sys

import click

from fl_agent.cli.common import (
    console,
    deployed,
    ipfs_option,
    network_option,
    open_store,
    resolve_account,
)
from fl_agent.errors import FairFLError


@click.group()
def evidence() -> None:
    """Read and check the evidence of a round (why each update was accepted or rejected)."""


@evidence.command("check")
@click.option("--task", "task_id", type=click.IntRange(1), required=True, help="Task id.")
@click.option("--round", "round_number", type=click.IntRange(1), required=True,
              help="A finalized or closed round of the task.")
@click.option("--validation", default=None, metavar="DATA",
              help="Also run the round again: the aggregator's validation data, as given to "
              "`fl-agent aggregate` (a CSV/NPZ file, or a built-in dataset name). Needs the "
              "aggregator's --account, which opens the updates sealed to it.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the built-in dataset's split (as given to `fl-agent aggregate`).")
@click.option("--account", default=None, metavar="ALIAS",
              help="The aggregator that opened the round (with --validation).")
@network_option
@ipfs_option
def check(task_id: int, round_number: int, validation: str | None, seed: int,
          account: str | None, network: str | None, ipfs: str | None) -> None:
    """Check a round's evidence against the chain, and optionally run the round again.

    Without --validation anyone can run it: the evidence named on chain must list the
    round's submissions, contributors, shares, rejections, reason codes and new model
    exactly as the chain recorded them, and repeat the validation commitment the round
    opened with; in a task with a privacy plan, every accepted update's public receipt must
    pass the aggregator's checks (its ε within the budget, and so on); FairFL's screens are
    decided again from the figures the evidence records (norms, trigger excess,
    similarities, clusters; under the sequential test, each sender's sum of earlier
    z-scores against the earlier rounds' evidence). With --validation and the
    aggregator's --account, the round is decided again from its updates (nothing is
    stored or sent) and every verdict, share, score and figure, and the new model's hash,
    must come out the same, on validation data that matches the commitment. Exits with
    status 1 when anything differs. Limits (homomorphic rounds, participant-level DP,
    another machine's rounding): fl_agent/agents/audit.py.
    """
    import numpy as np
    from rich.table import Table

    from fl_agent.agents.audit import (
        changed_commitments,
        check_against_chain,
        compare_rerun,
        replay_screens,
        rerun_round,
        round_of,
        unjudged,
    )
    from fl_agent.agents.evidence import RoundEvidence, rule_parameters
    from fl_agent.agents.participant import load_task_document
    from fl_agent.agents.privacy_audit import dp_fedavg_problems, receipt_problems
    from fl_agent.agents.sequential import earlier_evidence, prior_problems, readable
    from fl_agent.agents.task_rule import task_strategy
    from fl_agent.chain.history import tasks
    from fl_agent.learning.models import param_count
    from fl_agent.learning.workload import Workload

    if (validation is None) != (account is None):
        raise click.UsageError("--validation and --account go together: the rerun opens the "
                               "updates with the aggregator's key and decides on its data")
    store = open_store(ipfs)
    with deployed(network) as (settings, fairfl):
        views = tasks(fairfl.task_events(task_id))
        view = round_of(views, task_id, round_number)
        if not view.evidence_cid:
            raise FairFLError(f"round {round_number} of task {task_id} has no evidence on "
                              "chain: it is still open, or was closed without a verdict "
                              "(no update submitted, or none rejected)")
        record = RoundEvidence.from_json(store.get(view.evidence_cid))
        workloads = [Workload.from_json(store.get(r.workload_cid))
                     for r in views[task_id].rounds[:round_number]]
        problems = check_against_chain(record, view, views[task_id].min_participants,
                                       workloads[-1])
        document = load_task_document(store, views[task_id].spec_cid)
        problems += receipt_problems(record, view, document.privacy, store.get,
                                     views[task_id].rounds[:round_number - 1],
                                     document.training.steps)
        problems += dp_fedavg_problems(record, views[task_id], document.privacy)
        left_out: list[str] = []  # earlier evidence the sequential test's sums leave out
        if record.rule_figures.get("sequential"):  # its sums: the earlier rounds' z-scores
            problems += prior_problems(record, earlier_evidence(
                views[task_id].rounds, round_number,
                lambda cid: readable(store.get, cid, left_out.append)))
        rule = rule_parameters(task_strategy(document, np.zeros((0, 1)), np.zeros(0)))
        replayed, checked = replay_screens(record, rule, param_count(document.model))
        problems += replayed
        notes = left_out + changed_commitments(workloads)
        notes += [f"{s.participant} submitted {s.update_cid} after the aggregator read the "
                  "round: not judged, neither paid nor rejected" for s in unjudged(record, view)]
        rerun = None
        if validation is not None:
            from fl_agent.agents import AggregatorAgent
            from fl_agent.cli.tasks import shard_data

            X, y = shard_data(validation, None, "iid", 0.5, seed, "validation")
            agent = AggregatorAgent(fairfl, store, resolve_account(account), task_id, X, y,
                                    settings.agents_dir)
            rerun = rerun_round(agent, record)
            problems += compare_rerun(record, rerun)

    table = Table(title=f"task {task_id} round {round_number}: evidence {view.evidence_cid}")
    for column in ("participant", "samples", "verdict", "share"):
        table.add_column(column, justify="right" if column in ("samples", "share") else "left")
    for v in record.verdicts:
        table.add_row(v.participant, str(v.samples),
                      "accepted" if v.accepted else f"rejected: {v.reason}",
                      f"{v.share_ppm / 10_000:.2f} %")
    console.print(table)
    name = record.rule.get("name", record.strategy)
    console.print(f"rule {name}; new model {record.new_model or '(none: closed short)'}; "
                  f"validation commitment {record.validation_sha256 or '(none)'}")
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    if problems:
        for problem in problems:
            console.print(f"[red]✗[/] {problem}")
        console.print(f"[red]{len(problems)} difference(s)[/]")
        sys.exit(1)
    console.print("[green]✓ the evidence is the chain's record of the round[/]")
    if checked:
        console.print(f"[green]✓ the rule's {checked} verdicts follow from the figures the "
                      "evidence records, under the task's rule (what the figures are worth, "
                      "only a rerun shows)[/]")
    elif name == "fairfl":
        console.print(f"[yellow]note:[/] this evidence ({record.format}) records none of "
                      "the rule's figures, so its verdicts cannot be decided again without "
                      "a rerun")
    else:
        console.print(f"[yellow]note:[/] the task's rule ({name}) records no "
                      "figures to decide its verdicts again from; only a rerun checks them")
    if rerun is not None:
        console.print("[green]✓ run again on the validation data committed to, the rule "
                      "decides the same[/]")
