"""``fl-agent task create``, ``fl-agent train`` and ``fl-agent aggregate``: the task creator,
a participant and the aggregator, each its own process with its own account."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import click

from fl_agent.cli.common import (
    FLT,
    Finite,
    account_option,
    console,
    deployed,
    ipfs_option,
    network_option,
    open_store,
    privacy_options,
    resolve_account,
    serve,
)
from fl_agent.errors import FairFLError

#: The contract stores rounds, participants and the window as uint32.
UINT32_MAX = 2**32 - 1


def shard_data(data: str, shard: str | None, partition_scheme: str, alpha: float, seed: int,
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


@click.group()
def task() -> None:
    """Create tasks and keep them moving (close a round, replace an aggregator, cancel)."""


@task.command("create")
@click.option("--model", "model_name", type=click.Choice(["mlp", "cnn", "logreg"]),
              default="mlp", show_default=True, help="Named architecture to train.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, breast_cancer, wine, or a CSV/NPZ file: fixes the input shape, "
              "the classes and the standardisation participants apply.")
@click.option("--rounds", type=click.IntRange(1, UINT32_MAX), default=10, show_default=True)
@click.option("--min-participants", type=click.IntRange(1, UINT32_MAX), default=3,
              show_default=True,
              help="The quorum: members needed to open a round, and accepted updates needed "
              "to finalize one (no model is the average of fewer; a round that falls short "
              "is closed with its rejections on record and tried again).")
@click.option("--window", type=click.IntRange(1, UINT32_MAX), default=100, show_default=True,
              help="Blocks a round stays open for submissions.")
@click.option("--reward", type=Finite(min=0), default=100.0, show_default=True,
              help="FLT paid per round, shared by contribution.")
@click.option("--steps", type=click.IntRange(1), default=20, show_default=True,
              help="Base local SGD steps per round (balanced per participant).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=Finite(min=0, min_open=True), default=0.05, show_default=True)
@click.option("--strategy", default=None,
              help="Aggregation rule: fairfl, fedavg, median, trimmed_mean, krum, multikrum, "
              "fltrust, flame.  [default: fairfl; fltrust, the only one, with --mode he]")
@click.option("--scoring", type=click.Choice(["shapley", "loo"]), default="shapley",
              show_default=True,
              help="How contributions are valued for rewards: Shapley values (about 40 model "
              "evaluations per accepted update a round; exact up to 8 players) or "
              "leave-one-out (one per update: coarser, since interchangeable updates can all "
              "score 0, and about 40 times cheaper; at 200 participants of a 1M-parameter "
              "model Shapley took 58-77 s a round to score, leave-one-out about 1 s, "
              "docs/sweep.md).")
@click.option("--rule-option", "rule_options", multiple=True, metavar="KEY=VALUE",
              help="One of the aggregation rule's numeric or true/false options, written "
              "into the task document (repeatable; VALUE is JSON: true, 2, 0.5). FairFL "
              "clips updates to clip_ratio (default 2) times the median length; in a task "
              "with example-level dp it also tests each update against noise of its own "
              "size (noise_control, default true) and judges each sender on those tests "
              "summed over its rounds (sequential, default true since 2026-12-05: honest DP "
              "updates turned away at most 1.5 % of the time, where sequential=false, the "
              "single-round test, reached 8.5 % at epsilon 1 and banned honest members; "
              "the cost at epsilon 2: 2 points of honest accuracy and 1.7-7.8 under attack, "
              "most against attackers who attack every other round, and fewer attackers "
              "banned); with it, step 1 rejects no update "
              "for its length, mostly its sender's noise in a dp task (max_norm_ratio=3 "
              "keeps the screen, max_norm_ratio=null drops it in any task). What these, "
              "noise_control=false and clip_ratio=1 cost in dp tasks is measured in "
              "docs/privacy-dp.md. In every new FairFL task, unless set off, exact copies "
              "count once in the round's direction (copies_once, default true since "
              "2026-12-06, docs/held-out.md: fewer honest clients banned under ALIE and "
              "min-max, whose colluders submit one update; colluders who add even 1 % of "
              "noise of their own are not copies and are not stopped by it). In every new "
              "FairFL task without the dp noise control, unless set off, an update the gate "
              "turns away only because the similarity scaling took its slack, and whose cost "
              "is within the full tolerance, is held back (held_back, default true since "
              "2026-12-06, docs/held-out.md): not aggregated and not paid, but not counted "
              "towards a ban either; such a sender may try again without penalty.")
@click.option("--metric", default="accuracy", show_default=True,
              help="Task metric for scoring (accuracy, f1_macro, ...).")
@click.option("--aggregator", "aggregator_alias", required=True, metavar="ALIAS",
              help="Account (alias or address) that will aggregate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initial weights' seed.")
@click.option("--key-holder", "key_holder_alias", default=None, metavar="ALIAS",
              help="he: the account (alias or address) that decrypts the round's scalars and "
              "aggregate; it runs `fl-agent keyholder` on this machine, where the secret key "
              "is kept.  [default: you]")
@click.option("--he-context", "he_context_cid", default=None, metavar="CID",
              help="he: the public CKKS context the key holder made with `fl-agent keyholder "
              "--new-context` on its own machine, so that you never hold its secret key. "
              "Without it the keys are made here and the secret key stays on this machine.")
@click.option("--he-attestation", "he_attestation", default=None, metavar="SIGNATURE",
              help="he, with --he-context: the key holder's signature that it made that key "
              "pair (`fl-agent keyholder --new-context` prints it); recorded in the task "
              "document, where every participant checks it against --key-holder.")
@privacy_options
@account_option
@network_option
@ipfs_option
def task_create(model_name: str, dataset: str, rounds: int, min_participants: int,
                window: int, reward: float, steps: int, batch_size: int, lr: float,
                strategy: str | None, scoring: str, rule_options: tuple[str, ...],
                metric: str, aggregator_alias: str,
                seed: int, key_holder_alias: str | None, he_context_cid: str | None,
                he_attestation: str | None, mode: str, epsilon: float | None,
                delta: float, dp_level: str, dp_length_check: bool,
                prune_ratio: float | None, account: str,
                network: str | None, ipfs: str | None) -> None:
    """Store the initial model and the task document, then create the task on chain.

    The task document (model spec, data spec with the standardisation every participant
    applies, training plan, aggregation rule, and your member key so that you can read and
    list the task's encrypted models) goes to IPFS; its CID is recorded on chain.

    With --mode he, the task's CKKS keys are made here unless --he-context names the public
    context a key holder made on its own machine (`fl-agent keyholder --new-context`): the
    secret key stays in FAIRFL_HOME/keys/ckks of whoever made it (never in the store), the
    public context goes to the store and the task document. Run `fl-agent keyholder --task
    N` as the key holder, where its key is, for the rounds to finish.
    """
    from fl_agent.agents.access import member_key
    from fl_agent.aggregation import STRATEGIES
    from fl_agent.chain.records import TaskSpec, TrainingMode
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.learning.data import BUILTIN_DATASETS, load_dataset
    from fl_agent.learning.metrics import get_metric
    from fl_agent.learning.models import ModelSpec, init_params
    from fl_agent.learning.task_doc import (
        AccessPlan,
        AggregationPlan,
        DataSpec,
        TaskDocument,
    )
    from fl_agent.learning.weights import encode_weights
    from fl_agent.privacy.plan import build_plan

    try:
        training_mode = TrainingMode.parse(mode)
    except ValueError as err:
        raise FairFLError(str(err)) from err
    he = TrainingMode.HOMOMORPHIC in training_mode
    strategy = strategy or ("fltrust" if he else "fairfl")
    if strategy not in STRATEGIES:  # fails early on an unknown rule
        raise FairFLError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if he and strategy != "fltrust":
        raise FairFLError(f"--mode he aggregates ciphertexts, where only FLTrust's rule runs; "
                          f"drop --strategy {strategy} (or give fltrust)")
    if strategy == "krum" and min_participants > 1:
        raise FairFLError(f"krum takes one update a round, so no round could reach a quorum "
                          f"of {min_participants} accepted updates; give --min-participants 1, "
                          "or use multikrum")
    options = rule_options_of(strategy, rule_options, example_dp=TrainingMode.DP in training_mode
                              and dp_level == "example",
                              watermark=TrainingMode.WATERMARK in training_mode,
                              prune=TrainingMode.PRUNING in training_mode)
    if (key_holder_alias is not None or he_context_cid is not None) and not he:
        raise FairFLError("--key-holder and --he-context are for --mode he only")
    if he_context_cid is not None and key_holder_alias is None:
        raise FairFLError("--he-context names a context another account made: give that "
                          "account with --key-holder (it holds the secret key and answers "
                          "the task's decryptions)")
    if (he_context_cid is None) != (he_attestation is None):
        raise FairFLError("--he-context and --he-attestation go together: `fl-agent keyholder "
                          "--new-context` prints both, the signature being the key holder's "
                          "word that it made the key pair")
    get_metric(metric)
    data = load_dataset(dataset)
    spec = ModelSpec.for_features(model_name, data.feature_shape, data.num_classes)
    def plan(he_plan: Any = None) -> Any:
        return build_plan(training_mode, epsilon=epsilon, delta=delta, dp_level=dp_level,
                          prune_ratio=prune_ratio, he=he_plan,
                          dp_length_check=dp_length_check)

    privacy = None if he else plan()  # he: once the key holder's context exists, below
    document = TaskDocument.build(
        model=spec, data=DataSpec.describe(data),
        training={"steps": steps, "batch_size": batch_size, "lr": lr},  # checked by build
        aggregation=AggregationPlan(strategy=strategy, scoring=scoring, options=options),
        privacy=privacy)
    if TrainingMode.DP in training_mode and dataset in BUILTIN_DATASETS:
        console.print(f"[yellow]warning:[/] the task's standardisation (each feature's mean and "
                      f"scale) is computed from the whole built-in dataset {dataset!r}, whose "
                      "training split the participants train on: a statistic of their data "
                      "that the task's DP guarantee does not cover. Fine for trying dp out; "
                      "for a real dp task give --dataset a CSV or NPZ file of your own data "
                      "(docs/privacy-dp.md, rule R61).")
    store = open_store(ipfs)  # only once the arguments are known to be good
    with deployed(network) as (settings, fairfl):
        creator = resolve_account(account)
        aggregator_address = _address(aggregator_alias)
        key_holder = None
        if he:
            from fl_agent.agents.keyholder import create_context

            key_holder = _address(key_holder_alias) if key_holder_alias else creator.address
            if he_context_cid is not None:
                he_plan = public_context_plan(store, he_context_cid, str(key_holder),
                                              he_attestation)
            else:
                console.print("creating the task's CKKS keys...")
                he_plan = create_context(store, settings.keys_dir, str(key_holder))
            document = document.model_copy(update={"privacy": plan(he_plan)})
        document = document.model_copy(update={"access": AccessPlan(
            creator_key=public_bytes(member_key(fairfl, creator)).hex())})
        model_cid = store.add(encode_weights(spec, init_params(spec, seed)))
        spec_cid = store.add(document.to_json())
        task_id, receipt = fairfl.ledger.create_task(TaskSpec(
            model_cid=model_cid, spec_cid=spec_cid, metric=metric,
            aggregator=str(aggregator_address), rounds=rounds,
            min_participants=min_participants, submission_window=window,
            training_mode=training_mode, reward_per_round=int(reward * FLT)), sender=creator)
        if key_holder is not None and str(key_holder).lower() != creator.address.lower():
            fairfl.desk.set_key_holder(task_id, key_holder, sender=creator)
    console.print(f"[green]task {task_id} created[/] (tx {receipt.tx_hash}, gas "
                  f"{receipt.gas_used:,})\n  model    {model_cid}\n  document {spec_cid}")
    if key_holder is not None:
        where = ("on the machine where it ran `fl-agent keyholder --new-context`"
                 if he_context_cid is not None else
                 f"on this machine (its secret key is in {settings.keys_dir / 'ckks'})")
        console.print(f"  key holder {key_holder}: run `fl-agent keyholder --task {task_id} "
                      f"--account <its alias>` {where}")


def public_context_plan(store: Any, cid: str, key_holder: str,
                        attestation: str | None = None) -> Any:
    """The task document's he plan for a public context already in the store (its key
    holder's), checked as every participant will read it (a context holding a secret key, or
    too coarse for the robust rule, is refused, and so is an attestation the key holder did
    not sign)."""
    from pydantic import ValidationError

    from fl_agent.privacy.he_context import PublicContext
    from fl_agent.privacy.plan import HEPlan

    try:
        context = PublicContext(store.get(cid))
    except FairFLError as err:
        raise FairFLError(f"--he-context {cid}: {err}") from err
    try:
        return HEPlan(context_cid=cid, fingerprint=context.fingerprint, key_holder=key_holder,
                      attestation=attestation)
    except ValidationError as err:
        problem = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise FairFLError(f"--he-attestation: {problem}") from err


def rule_options_of(strategy: str, pairs: tuple[str, ...], *, example_dp: bool = False,
                    watermark: bool = False, prune: bool = False) -> dict[str, Any]:
    """``--rule-option KEY=VALUE`` pairs as the task document's rule options. Only the rule's
    numeric and true/false options can be set this way (not those the aggregator derives:
    FLTrust's server update, FairFL's input layer, nor, in a task with example-level DP or
    watermarks, FairFL's NOISE check level ``chance_z``, which it switches off); each VALUE
    is read as JSON, must be finite and of the option's type, and the rule is then built
    with them, so that what the task records is what its aggregator will run (in a task that
    prunes, ``prune``, with the trigger screen's window the aggregator sets)."""
    import dataclasses

    from fl_agent.aggregation import STRATEGIES, get_strategy

    if not pairs:
        return {}
    derived = {"chance_z"} if example_dp or watermark else set()
    settable = {f.name: f.default for f in dataclasses.fields(STRATEGIES[strategy])
                if f.init and isinstance(f.default, (bool, int, float))
                and f.name not in derived}
    nullable = {"max_norm_ratio"} & set(settable)  # null: no length outliers (FairFL)

    def not_finite(text: str) -> Any:
        raise FairFLError(f"--rule-option: {text} is not a finite number")

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FairFLError(f"--rule-option takes KEY=VALUE, got {pair!r}")
        if key in options:
            raise FairFLError(f"--rule-option {key} is given twice")
        if key in derived:
            raise FairFLError(f"--rule-option {key}: a task with example-level DP or "
                              "watermarks switches FairFL's NOISE check off, so its level "
                              "cannot be set")
        if key not in settable:
            raise FairFLError(f"--rule-option: {strategy} takes no option {key!r} from the "
                              f"command line; it takes {', '.join(settable) or 'none'}")
        try:
            value = json.loads(text, parse_constant=not_finite)
        except json.JSONDecodeError:
            raise FairFLError(f"--rule-option {key}: {text!r} is not a JSON value (true, "
                              "false, or a number)") from None
        default = settable[key]
        if value is None and key in nullable:
            options[key] = None
            continue
        kind = ("true or false" if isinstance(default, bool) else
                "a whole number" if isinstance(default, int) else "a number")
        if isinstance(default, bool) != isinstance(value, bool) \
                or not isinstance(value, int if isinstance(default, int) else (int, float)) \
                or not math.isfinite(value):
            raise FairFLError(f"--rule-option {key} takes {kind}, got {text!r}")
        options[key] = value
    if options.get("sequential") and not (example_dp and options.get("noise_control", True)):
        raise FairFLError("--rule-option sequential: the sequential test judges DP-SGD updates "
                          "against noise of their size over the rounds; it needs a task with "
                          "example-level DP (--mode dp) and its noise control (leave "
                          "noise_control unset)")
    if prune and strategy == "fairfl":
        from fl_agent.agents.task_rule import PRUNE_TRIGGER_ROUNDS

        trigger = options.get("trigger_rounds", PRUNE_TRIGGER_ROUNDS)
        noise = options.get("noise_rounds", 1)
        if noise > 1 and trigger > 1 and noise != trigger:
            raise FairFLError(f"--rule-option noise_rounds={noise}: a task that prunes screens "
                              f"for triggers over {trigger} rounds, and both screens read one "
                              f"window of a sender's rounds; give noise_rounds={trigger}, or "
                              f"trigger_rounds={noise} too")
    try:  # (FLTrust, which needs the aggregator's server update, has no option to set)
        get_strategy(strategy, **options)
    except (FairFLError, TypeError, ValueError) as err:
        raise FairFLError(f"--rule-option: {err}") from err
    return options


def _address(alias: str) -> str:
    """An address given as such, or the address of an ape account alias."""
    if re.fullmatch(r"0x[0-9a-fA-F]{40}", alias):
        return alias
    return str(resolve_account(alias).address)


@click.command()
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
@click.option("--poll-interval", type=Finite(min=0), default=2.0, show_default=True,
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

    from fl_agent.agents import ParticipantAgent
    X, y = shard_data(data, shard, partition_scheme, alpha, seed, "train")
    with deployed(network) as (settings, fairfl):
        signer = resolve_account(account, unattended=True)
        agent = ParticipantAgent(fairfl, open_store(ipfs), signer, task_id, X, y,
                                 settings.agents_dir, seed=seed,
                                 confirmations=settings.confirmations, log=console.print)
        for receipt in agent.join():
            console.print(f"joined (tx {receipt.tx_hash})")
        console.print(f"[green]participant {agent.address}[/] on task {task_id} with "
                      f"{len(y)} examples; waiting for rounds")
        serve(agent.step, lambda: agent.finished, poll_interval, console.print)
    console.print("blacklisted: stopping" if agent.blacklisted else "task completed")


@click.command()
@click.option("--task", "task_id", type=click.IntRange(1), required=True, help="Task id.")
@click.option("--validation", required=True,
              help="The aggregator's validation data: a CSV/NPZ file, or a built-in dataset "
              "name (its validation split).")
@click.option("--quorum", type=click.IntRange(1), default=None,
              help="Submissions that close a round early (default: every active participant).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the built-in dataset's split.")
@click.option("--poll-interval", type=Finite(min=0), default=2.0, show_default=True,
              help="Seconds between looks at the chain. Enough for 12 s blocks; on a "
              "chain with 2 s blocks, 0.5 kept every round at three blocks on an "
              "otherwise idle machine, where 2 let some take a block more "
              "(docs/sweep.md, §5).")
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

    from fl_agent.agents import AggregatorAgent, RoundOutcome
    from fl_agent.chain.records import TxReceipt

    X, y = shard_data(validation, None, "iid", 0.5, seed, "validation")
    with deployed(network) as (settings, fairfl):
        signer = resolve_account(account, unattended=True)
        agent = AggregatorAgent(fairfl, open_store(ipfs), signer, task_id, X, y,
                                settings.agents_dir, quorum=quorum, log=console.print)
        closed = 0  # rounds closed without a model since the last finalized one

        def step() -> bool:
            nonlocal closed
            outcome = agent.step()
            if isinstance(outcome, RoundOutcome):
                closed = 0
                console.print(f"  validation {agent.metric.name}: {outcome.validation:.4f}")
            elif isinstance(outcome, TxReceipt):  # a round closed without a model
                closed += 1
                if closed % agent.rounds == 0:
                    console.print(
                        f"[yellow]{closed} rounds in a row were closed without a model (fewer "
                        "accepted updates than the task's quorum; the lines above say why "
                        "each was rejected). If that goes on the task cannot finish: its "
                        f"creator can cancel it (`fl-agent task cancel --task {task_id}`), "
                        "which keeps what it credited claimable.[/]")
            return outcome is not None

        serve(step, lambda: agent.finished, poll_interval, console.print)
    console.print("[green]task completed[/]")

