"""``fl-agent simulate`` (the whole system on one machine) and ``fl-agent bench`` (the
benchmark setting for every attack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fl_agent.cli.common import (
    FLT,
    console,
    fmt_flt,
    ipfs_option,
    open_store,
    privacy_options,
    quiet_ape,
)
from fl_agent.settings import get_settings
from fl_agent.simulation import BENCH_ATTACKS, DEFAULT_DEVICE_SPREAD
from fl_agent.simulation.attacks import ATTACKS


@click.command()
@click.option("--dataset", default="digits", show_default=True,
              help="digits, breast_cancer, wine, or a CSV/NPZ file.")
@click.option("--model", type=click.Choice(["mlp", "cnn", "logreg"]), default=None,
              help="Architecture (default: mlp for digits, logreg otherwise).")
@click.option("--clients", type=click.IntRange(2, 200), default=20, show_default=True)
@click.option("--malicious", type=click.FloatRange(0, 1, max_open=True), default=0.3,
              show_default=True, help="Share of clients that attack.")
@click.option("--attack", type=click.Choice(list(ATTACKS)), default="label_flip",
              show_default=True,
              help="What the malicious share does (fl_agent/simulation/attacks.py): alie, "
                   "ipm and minmax are adaptive attacks crafted by colluders, "
                   "noisy_free_rider hides free riding under noise, targeted_flip relabels "
                   "class 1 as 7.")
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
              show_default=True, help="Contribution scores for rewards (as `task create "
              "--scoring`): Shapley values, or the cheaper, coarser leave-one-out.")
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
@click.option("--device-spread", type=click.FloatRange(1, 100),
              default=DEFAULT_DEVICE_SPREAD, show_default=True,
              help="Simulated device speeds, spread over this ratio (4: the fastest client "
                   "is up to 4x as fast as the slowest); each client reports the time its "
                   "device would take, and workload balancing gives fast devices more "
                   "steps and slow ones fewer. 1 reports the wall clock instead (the same "
                   "for every client on one machine, so balancing does not act).")
@click.option("--attack-every", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Attackers attack in rounds 1, 1+K, 1+2K, ... and train honestly in "
                   "between (2: every other round, to stay under the blacklist threshold).")
@click.option("--attack-from", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Attackers train honestly before this round and attack from it on (with "
                   "--attack-every: in rounds F, F+K, F+2K, ...): a record of good rounds "
                   "first, as an attacker would build credit with a rule that weighs it.")
@click.option("--trigger-position", type=click.Choice(["corner", "centre"]),
              default="corner", show_default=True,
              help="backdoor: where the 2x2 trigger patch sits in the image.")
@click.option("--trigger-value", type=click.Choice(["in_range", "out_of_range"]),
              default="in_range", show_default=True,
              help="backdoor: the patch's value, the largest the data takes there, or twice "
                   "the largest it takes anywhere.")
@click.option("--poison-fraction", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_default=True, help="backdoor: share of an attacker's examples stamped.")
@click.option("--flip-scale", type=click.FloatRange(0, 1000, min_open=True), default=1.0,
              show_default=True,
              help="sign_flip: how many times its delta an attacker sends, reversed (1 flips "
                   "it; 10 also scales it, as in model replacement).")
@click.option("--rule-option", "rule_options", multiple=True, metavar="KEY=VALUE",
              help="One of the aggregation rule's options, as `fl-agent task create "
                   "--rule-option` writes it into the task document (repeatable; e.g. "
                   "sequential=false with --mode dp, the single-round noise test).")
@privacy_options
@ipfs_option
def simulate(dataset: str, model: str | None, clients: int, malicious: float, attack: str,
             partition: str, alpha: float, rounds: int, aggregator: str, steps: int,
             scoring: str, seed: int, json_path: str | None, out: str | None,
             network: str | None, list_price: float | None, device_spread: float,
             attack_every: int, attack_from: int, trigger_position: str, trigger_value: str,
             poison_fraction: float, flip_scale: float, mode: str, epsilon: float | None,
             delta: float,
             dp_level: str, dp_length_check: bool, prune_ratio: float | None,
             rule_options: tuple[str, ...],
             ipfs: str | None) -> None:
    """Run federated learning for real on one machine and report what happened.

    Deploys the contracts on a private anvil (or --network), then one aggregator and
    CLIENTS participants, each with its own account and data shard, train with PyTorch,
    upload to the content store and submit on chain; a MALICIOUS share of them attack.
    Writes report.json, accuracy.png and participants.png.

    \b
    Example:
      fl-agent simulate --dataset digits --clients 20 --malicious 0.3 \\
        --attack label_flip --alpha 0.5 --rounds 20 --aggregator fairfl --seed 1
      fl-agent simulate --mode dp+prune --epsilon 8 --prune-ratio 0.9 --watermark
    """


    from fl_agent.chain.records import TrainingMode
    from fl_agent.cli.tasks import rule_options_of
    from fl_agent.simulation.report import save_plots, write_report
    from fl_agent.simulation.runner import SimulationConfig, run_simulation

    try:
        modes = TrainingMode.parse(mode)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--mode") from None
    options = rule_options_of(aggregator, rule_options,
                              example_dp=TrainingMode.DP in modes and dp_level == "example",
                              watermark=TrainingMode.WATERMARK in modes,
                              prune=TrainingMode.PRUNING in modes)
    config = SimulationConfig.build(
        dataset=dataset, model=model, clients=clients, malicious=malicious, attack=attack,
        partition=partition, alpha=alpha, rounds=rounds, aggregator=aggregator, steps=steps,
        scoring=scoring, seed=seed, device_spread=device_spread, attack_every=attack_every,
        attack_from=attack_from,
        trigger_position=trigger_position, trigger_value=trigger_value,
        poison_fraction=poison_fraction, flip_scale=flip_scale, mode=mode, epsilon=epsilon,
        delta=delta,
        dp_level=dp_level, dp_length_check=dp_length_check, prune_ratio=prune_ratio,
        rule_options=options,
        list_price=None if list_price is None else int(list_price * FLT))
    rule = config.rule  # the banner and the default folder name the rule that runs
    folder = Path(out or f"reports/{attack}-{rule}-seed{seed}")
    settings = get_settings()
    store = open_store(ipfs) if (ipfs or network) else None
    quiet_ape()
    console.print(f"[bold]simulating[/] {config.clients} clients ({config.num_malicious} "
                  f"attacking with {attack}) x {rounds} rounds, {rule} on {dataset}"
                  + (" (mode he: FLTrust's rule on ciphertexts)"
                     if rule != aggregator else ""))
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
                                store=store, on_round=on_round,
                                keys_dir=settings.keys_dir if network else None)
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
    privacy = report.get("privacy")
    if privacy is not None:
        parts = [privacy["mode"]]
        if "epsilon_spent_max" in privacy:
            parts.append(f"ε spent ≤ {privacy['epsilon_spent_max']:.2f} per participant "
                         f"(δ = {privacy['delta']:g})")
        if "bytes_per_update_mean" in privacy:
            parts.append(f"{privacy['bytes_per_update_mean'] / 1024:.1f} KiB per update")
        if "watermarks" in privacy:
            parts.append(f"{privacy['watermarks_verified']}/{len(privacy['watermarks'])} "
                         "watermarks verified on the final model")
        table.add_row("privacy", ", ".join(parts))
    table.add_row("time", f"{report['seconds']:.0f} s")
    console.print(table)


@click.command()
@click.option("--attacks", default=",".join(BENCH_ATTACKS), show_default=True,
              help="Comma-separated attacks to run: any of --attack's names, or a variant "
                   "(backdoor-centre, backdoor-out-of-range, backdoor-centre-10%, "
                   "backdoor-centre-20%, label_flip-every-2, sign_flip-every-2, "
                   "alie-every-2).")
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


    from fl_agent.errors import ConfigError
    from fl_agent.simulation.bench import bench_markdown, bench_rows
    from fl_agent.simulation.config import attack_settings
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
    quiet_ape()
    columns = (TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        runs = progress.add_task("benchmark runs", total=len(plan))
        for seed, rule, attack, share in plan:
            progress.update(runs, description=f"seed {seed}: {rule} / {attack}")
            try:
                settings = attack_settings(attack)
            except ConfigError as err:
                raise click.BadParameter(str(err), param_hint="--attacks") from None
            config = SimulationConfig.build(aggregator=rule, malicious=share, seed=seed,
                                            rounds=rounds, clients=clients, **settings)
            name = f"{attack}-{rule}" if share else "clean-fedavg"
            folder = Path(out) / f"seed{seed}" / name
            report = run_simulation(config, workdir=folder)
            report["scenario"] = attack
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

