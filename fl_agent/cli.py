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
fl-agent simulate        run the whole system (chain, store, N agents, attacks) and report
fl-agent bench           the target setting for every attack; a Markdown table of results
"""

from __future__ import annotations

import re
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


@contextmanager
def deployed(network: str | None) -> Iterator[tuple[Settings, Any]]:
    """Connects to ``network`` (default: FAIRFL_NETWORK) and yields the settings and the
    FairFL deployment recorded for it."""
    from fl_agent.chain import FairFL, load_deployment

    settings = get_settings()
    network = network or settings.network
    _quiet_ape()
    with connected(network):
        yield settings, FairFL(load_deployment(network, settings.deployments))


def resolve_account(alias: str) -> Any:
    """``TEST::3`` is ape's 4th test account; anything else is an ape account alias."""
    from ape import accounts

    if alias.upper().startswith("TEST::"):
        from fl_agent.chain.node import dev_account

        try:
            return dev_account(int(alias.split("::", 1)[1]))
        except ValueError:
            raise FairFLError(f"bad test account {alias!r}: use TEST::<number>") from None
    try:
        return accounts.load(alias)
    except Exception as err:  # noqa: BLE001 - ape raises IndexError and its own types
        raise FairFLError(
            f"no ape account named {alias!r} ({err}); `ape accounts list` shows them and "
            "`ape accounts import NAME` adds one; on a local chain use TEST::<number>"
        ) from err


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


network_option = click.option(
    "--network", default=None, help="ape network choice (default: FAIRFL_NETWORK, the shared "
    "local chain of `fl-agent chain up`).")
account_option = click.option(
    "--account", required=True, metavar="ALIAS",
    help="ape account alias that signs (TEST::n for the n-th local test account).")


def _quiet_ape() -> None:
    from ape.logging import logger

    logger.set_level("WARNING")


def _shard(data: str, shard: str | None, partition_scheme: str, alpha: float, seed: int,
           part: str) -> tuple[Any, Any]:
    """Features and labels from ``data``: a built-in dataset's ``part`` split (train or
    validation), optionally one client's shard ``i/n`` of it; or a whole CSV/NPZ file."""
    from fl_agent.learning.data import BUILTIN_DATASETS, load_dataset, partition, split_dataset

    dataset = load_dataset(data)
    if data in BUILTIN_DATASETS:
        splits = split_dataset(dataset, seed=seed, standardize=False)
        dataset = getattr(splits, part)
    if shard:
        try:
            index, count = (int(v) for v in shard.split("/"))
            if not 0 <= index < count:
                raise ValueError
        except ValueError:
            raise FairFLError(f"--shard must be i/n with 0 <= i < n, got {shard!r}") from None
        rows = partition(dataset.y, count, partition_scheme, alpha=alpha, seed=seed)[index]
        dataset = dataset.subset(rows)
    return dataset.X, dataset.y


@main.group()
def task() -> None:
    """Create federated learning tasks."""


@task.command("create")
@click.option("--model", "model_name", type=click.Choice(["mlp", "cnn", "logreg"]),
              default="mlp", show_default=True, help="Named architecture to train.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, breast_cancer, wine, or a CSV/NPZ file: fixes the input shape, "
              "the classes and the standardisation participants apply.")
@click.option("--rounds", type=click.IntRange(1), default=10, show_default=True)
@click.option("--min-participants", type=click.IntRange(1), default=3, show_default=True)
@click.option("--window", type=click.IntRange(1), default=100, show_default=True,
              help="Blocks a round stays open for submissions.")
@click.option("--reward", type=float, default=100.0, show_default=True,
              help="FLT paid per round, shared by contribution.")
@click.option("--steps", type=click.IntRange(1), default=20, show_default=True,
              help="Base local SGD steps per round (balanced per participant).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True)
@click.option("--strategy", default="fairfl", show_default=True,
              help="Aggregation rule: fairfl, fedavg, median, trimmed_mean, krum, multikrum, "
              "fltrust, flame.")
@click.option("--scoring", type=click.Choice(["shapley", "loo"]), default="shapley",
              show_default=True, help="How contributions are valued for rewards.")
@click.option("--metric", default="accuracy", show_default=True,
              help="Task metric for scoring (accuracy, f1_macro, ...).")
@click.option("--mode", default="plain", show_default=True,
              help="Training mode recorded on chain: plain, or dp/pruning/homomorphic joined "
              "by '+'.")
@click.option("--aggregator", "aggregator_alias", required=True, metavar="ALIAS",
              help="Account (alias or address) that will aggregate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initial weights' seed.")
@account_option
@network_option
@ipfs_option
def task_create(model_name: str, dataset: str, rounds: int, min_participants: int,
                window: int, reward: float, steps: int, batch_size: int, lr: float,
                strategy: str, scoring: str, metric: str, mode: str, aggregator_alias: str,
                seed: int, account: str, network: str | None, ipfs: str | None) -> None:
    """Store the initial model and the task document, then create the task on chain.

    The task document (model spec, data spec with the standardisation every participant
    applies, training plan, aggregation rule) goes to IPFS; its CID is recorded on chain.
    """
    from fl_agent.aggregation import get_strategy
    from fl_agent.chain.records import TaskSpec, TrainingMode
    from fl_agent.learning.data import load_dataset
    from fl_agent.learning.metrics import get_metric
    from fl_agent.learning.models import ModelSpec, init_params
    from fl_agent.learning.task_doc import AggregationPlan, DataSpec, TaskDocument, TrainingPlan
    from fl_agent.learning.weights import encode_weights

    try:
        training_mode = TrainingMode.parse(mode)
    except ValueError as err:
        raise FairFLError(str(err)) from err
    get_strategy(strategy)  # fails early on an unknown rule
    get_metric(metric)
    data = load_dataset(dataset)
    spec = ModelSpec.for_features(model_name, data.feature_shape, data.num_classes)
    document = TaskDocument.build(
        model=spec, data=DataSpec.describe(data),
        training=TrainingPlan(steps=steps, batch_size=batch_size, lr=lr),
        aggregation=AggregationPlan(strategy=strategy, scoring=scoring))
    store = _store(ipfs)
    with deployed(network) as (_, fairfl):
        creator = resolve_account(account)
        if re.fullmatch(r"0x[0-9a-fA-F]{40}", aggregator_alias):
            aggregator_address = aggregator_alias
        else:
            aggregator_address = resolve_account(aggregator_alias).address
        model_cid = store.add(encode_weights(spec, init_params(spec, seed)))
        spec_cid = store.add(document.to_json())
        task_id, receipt = fairfl.ledger.create_task(TaskSpec(
            model_cid=model_cid, spec_cid=spec_cid, metric=metric,
            aggregator=str(aggregator_address), rounds=rounds,
            min_participants=min_participants, submission_window=window,
            training_mode=training_mode, reward_per_round=int(reward * FLT)), sender=creator)
    console.print(f"[green]task {task_id} created[/] (tx {receipt.tx_hash}, gas "
                  f"{receipt.gas_used:,})\n  model    {model_cid}\n  document {spec_cid}")


@main.command()
@click.option("--task", "task_id", type=click.IntRange(1), required=True, help="Task id.")
@click.option("--data", required=True,
              help="Your training data: a CSV/NPZ file, or a built-in dataset name "
              "(its training split) for trying things out.")
@click.option("--shard", default=None, metavar="I/N",
              help="Use only client I of N of the data (simulating one of N sites).")
@click.option("--partition", "partition_scheme", type=click.Choice(["iid", "dirichlet",
              "shards"]), default="iid", show_default=True, help="How --shard splits.")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Dirichlet concentration for --partition dirichlet.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--poll-interval", type=float, default=2.0, show_default=True,
              help="Seconds between looks at the chain.")
@account_option
@network_option
@ipfs_option
def train(task_id: int, data: str, shard: str | None, partition_scheme: str, alpha: float,
          seed: int, poll_interval: float, account: str, network: str | None,
          ipfs: str | None) -> None:
    """Take part in a task: join it, then train and submit on every round until it ends.

    Each round's global model and workload come from IPFS; the update is uploaded as
    safetensors and submitted with its sample count and training time. Stop with Ctrl-C;
    a restart resumes after the last handled event (cursor in FAIRFL_HOME/agents).
    """
    import time

    from fl_agent.agents import ParticipantAgent
    X, y = _shard(data, shard, partition_scheme, alpha, seed, "train")
    with deployed(network) as (settings, fairfl):
        agent = ParticipantAgent(fairfl, _store(ipfs), resolve_account(account), task_id, X, y,
                                 settings.home / "agents", seed=seed,
                                 confirmations=settings.confirmations, log=console.print)
        for receipt in agent.join():
            console.print(f"joined (tx {receipt.tx_hash})")
        console.print(f"[green]participant {agent.address}[/] on task {task_id} with "
                      f"{len(y)} examples; waiting for rounds")
        while not agent.finished:
            agent.step()
            if not agent.finished:
                time.sleep(poll_interval)
    console.print("blacklisted: stopping" if agent.blacklisted else "task completed")


@main.command()
@click.option("--task", "task_id", type=click.IntRange(1), required=True, help="Task id.")
@click.option("--validation", required=True,
              help="The aggregator's validation data: a CSV/NPZ file, or a built-in dataset "
              "name (its validation split).")
@click.option("--quorum", type=click.IntRange(1), default=None,
              help="Submissions that close a round early (default: every active participant).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the built-in dataset's split.")
@click.option("--poll-interval", type=float, default=2.0, show_default=True)
@account_option
@network_option
@ipfs_option
def aggregate(task_id: int, validation: str, quorum: int | None, seed: int,
              poll_interval: float, account: str, network: str | None,
              ipfs: str | None) -> None:
    """Run a task as its aggregator until its last round is finalized.

    Opens each round with a workload assignment balanced by measured throughput; when the
    quorum has submitted or the window has closed, fetches and checks every update,
    aggregates with the task's rule, scores contributions and finalizes on chain.
    """
    import time

    from fl_agent.agents import AggregatorAgent, RoundOutcome
    X, y = _shard(validation, None, "iid", 0.5, seed, "validation")
    with deployed(network) as (settings, fairfl):
        agent = AggregatorAgent(fairfl, _store(ipfs), resolve_account(account), task_id, X, y,
                                settings.home / "agents", quorum=quorum, log=console.print)
        while not agent.finished:
            outcome = agent.step()
            if isinstance(outcome, RoundOutcome):
                console.print(f"  validation {agent.metric.name}: {outcome.validation:.4f}")
            elif outcome is None:
                time.sleep(poll_interval)
    console.print("[green]task completed[/]")


@main.command()
@click.option("--dataset", default="digits", show_default=True,
              help="digits, breast_cancer, wine, or a CSV/NPZ file.")
@click.option("--model", type=click.Choice(["mlp", "cnn", "logreg"]), default=None,
              help="Architecture (default: mlp for digits, logreg otherwise).")
@click.option("--clients", type=click.IntRange(2, 200), default=20, show_default=True)
@click.option("--malicious", type=click.FloatRange(0, 1, max_open=True), default=0.3,
              show_default=True, help="Share of clients that attack.")
@click.option("--attack", type=click.Choice(["none", "label_flip", "sign_flip", "scaling",
              "gaussian", "backdoor", "free_rider"]), default="label_flip", show_default=True)
@click.option("--partition", type=click.Choice(["iid", "dirichlet", "shards"]),
              default="dirichlet", show_default=True)
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Dirichlet concentration: small is more skewed.")
@click.option("--rounds", type=click.IntRange(1), default=20, show_default=True)
@click.option("--aggregator", default="fairfl", show_default=True,
              help="fairfl, fedavg, median, trimmed_mean, krum, multikrum, fltrust, flame.")
@click.option("--steps", type=click.IntRange(1), default=20, show_default=True,
              help="Base local SGD steps per round.")
@click.option("--scoring", type=click.Choice(["shapley", "loo"]), default="shapley",
              show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report here (default: OUT/report.json).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the report, plots and the private chain (default: "
              "reports/<attack>-<aggregator>-seed<seed>).")
@click.option("--network", default=None,
              help="Run on this ape network instead of a private anvil (e.g. "
              "ethereum:local:node, the shared chain; its accounts TEST::0.. sign).")
@click.option("--list-price", type=float, default=None,
              help="List the final model on the marketplace for this many FLT.")
@ipfs_option
def simulate(dataset: str, model: str | None, clients: int, malicious: float, attack: str,
             partition: str, alpha: float, rounds: int, aggregator: str, steps: int,
             scoring: str, seed: int, json_path: str | None, out: str | None,
             network: str | None, list_price: float | None, ipfs: str | None) -> None:
    """Run federated learning for real on one machine and report what happened.

    Deploys the contracts on a private anvil (or --network), then one aggregator and
    CLIENTS participants, each with its own account and data shard, train with PyTorch,
    upload to the content store and submit on chain; a MALICIOUS share of them attack.
    Writes report.json, accuracy.png and participants.png.

    \b
    Example:
      fl-agent simulate --dataset digits --clients 20 --malicious 0.3 \\
        --attack label_flip --alpha 0.5 --rounds 20 --aggregator fairfl --seed 1
    """
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fl_agent.simulation.report import save_plots, write_report
    from fl_agent.simulation.runner import SimulationConfig, run_simulation

    config = SimulationConfig.build(
        dataset=dataset, model=model, clients=clients, malicious=malicious, attack=attack,
        partition=partition, alpha=alpha, rounds=rounds, aggregator=aggregator, steps=steps,
        scoring=scoring, seed=seed,
        list_price=None if list_price is None else int(list_price * FLT))
    folder = Path(out or f"reports/{attack}-{aggregator}-seed{seed}")
    settings = get_settings()
    store = _store(ipfs) if (ipfs or network) else None
    _quiet_ape()
    console.print(f"[bold]simulating[/] {config.clients} clients ({config.num_malicious} "
                  f"attacking with {attack}) x {rounds} rounds, {aggregator} on {dataset}")
    columns = (TextColumn("[bold]round"), MofNCompleteColumn(), BarColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("rounds", total=rounds, status="deploying…")

        def on_round(row: dict[str, Any]) -> None:
            progress.update(bar, advance=1, status=(
                f"accuracy {row['accuracy']:.3f}  accepted {len(row['accepted'])}  "
                f"rejected {len(row['rejected'])}"))

        report = run_simulation(config, workdir=folder, network=network,
                                deployments=settings.deployments if network else None,
                                store=store, on_round=on_round)
    report_path = write_report(report, Path(json_path) if json_path else folder / "report.json")
    plots = save_plots(report, folder)
    print_simulation_summary(report)
    console.print(f"report: {report_path}\nplots:  {', '.join(str(p) for p in plots)}")


def print_simulation_summary(report: dict[str, Any]) -> None:
    """The figures a reader looks for first."""
    final, detection, chain_info = report["final"], report["detection"], report["chain"]
    table = Table(title="Simulation summary", show_header=False)
    table.add_row("final accuracy / macro F1",
                  f"{final['accuracy']:.4f} / {final['f1_macro']:.4f}")
    if "backdoor_asr" in final:
        table.add_row("backdoor attack success rate", f"{final['backdoor_asr']:.4f}")
    table.add_row("detection TPR / FPR", f"{detection['tpr']:.3f} / {detection['fpr']:.3f}  "
                  f"({detection['malicious_flagged']}/{detection['malicious_submissions']} "
                  f"malicious, {detection['benign_flagged']}/{detection['benign_submissions']}"
                  " benign updates flagged)")
    table.add_row("rewards to attackers", f"{report['reward_share_malicious']:.2%}")
    bad = set(report["malicious"])
    wrongly = [a for a in report["blacklisted"] if a not in bad]
    table.add_row("blacklisted", f"{len(report['blacklisted'])} "
                  f"({len(wrongly)} benign)")
    table.add_row("chain", f"{chain_info['transactions']} transactions, "
                  f"{chain_info['gas_total']:,} gas, blocks {chain_info['first_block']}-"
                  f"{chain_info['last_block']}")
    if "listing" in report:
        listing = report["listing"]
        table.add_row("marketplace", f"model {listing['model_id']} listed for "
                      f"{fmt_flt(listing['price'])}, {listing['payees']} payees")
    table.add_row("time", f"{report['seconds']:.0f} s")
    console.print(table)


@main.command()
@click.option("--attacks", default="none,label_flip,sign_flip,scaling,gaussian,backdoor,"
              "free_rider", show_default=True, help="Comma-separated attacks to run.")
@click.option("--aggregators", default="fairfl", show_default=True,
              help="Comma-separated rules to compare (clean FedAvg always runs).")
@click.option("--seeds", default="1", show_default=True,
              help="Comma-separated seeds; each runs clean FedAvg and every attack.")
@click.option("--rounds", type=click.IntRange(1), default=20, show_default=True)
@click.option("--clients", type=click.IntRange(2, 200), default=20, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="reports/bench",
              show_default=True, help="Folder for every run's report and plots.")
@click.option("--markdown", type=click.Path(dir_okay=False), default="docs/benchmarks.md",
              show_default=True, help="Where to write the results table.")
def bench(attacks: str, aggregators: str, seeds: str, rounds: int, clients: int, out: str,
          markdown: str) -> None:
    """Run the benchmark setting (digits, Dirichlet 0.5, 30% malicious) per attack.

    Each run is a full simulation on its own private anvil. The table compares every rule
    with clean FedAvg (no attackers) and checks the targets: accuracy >= 0.97 x clean
    FedAvg, detection TPR >= 0.95 and FPR <= 0.05, no benign participant blacklisted,
    attackers paid <= 5%, and at most 1 point lost to FedAvg without attack.
    """
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fl_agent.simulation.bench import bench_markdown, bench_rows
    from fl_agent.simulation.report import save_plots, write_report
    from fl_agent.simulation.runner import SimulationConfig, run_simulation

    try:
        seed_list = list(dict.fromkeys(int(s) for s in seeds.split(",")))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {seeds!r}",
                                 param_hint="--seeds") from None
    plan = []
    for seed in seed_list:
        plan.append((seed, "fedavg", "none", 0.0))
        plan += [(seed, rule, attack, 0.3) for rule in aggregators.split(",")
                 for attack in attacks.split(",")]
    reports = []
    _quiet_ape()
    columns = (TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        runs = progress.add_task("benchmark runs", total=len(plan))
        for seed, rule, attack, share in plan:
            progress.update(runs, description=f"seed {seed}: {rule} / {attack}")
            config = SimulationConfig.build(aggregator=rule, attack=attack, malicious=share,
                                            seed=seed, rounds=rounds, clients=clients)
            name = f"{attack}-{rule}" if share else "clean-fedavg"
            folder = Path(out) / f"seed{seed}" / name
            report = run_simulation(config, workdir=folder)
            write_report(report, folder / "report.json")
            save_plots(report, folder)
            reports.append(report)
            progress.advance(runs)
    rows = bench_rows(reports)
    text = bench_markdown(rows)
    Path(markdown).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown).write_text(text)
    console.print(text)
    console.print(f"written to {markdown}")


if __name__ == "__main__":
    main()
