"""One scripted story through the FairFL contracts on the shared local chain.

    ape run story --network ethereum:local:node      (what `make story` runs)

Three honest participants and one cheater register and join a task; the aggregator opens a
round; everyone uploads; the aggregator rewards the honest updates and rejects the cheater;
the task's model is listed, bought with a sealed key, and its revenue withdrawn by the
contributors. The weights are real safetensors files and every CID is the one
``ipfs add --cid-version 1`` gives for them.
"""

from __future__ import annotations

import json

import click
import numpy as np
from ape.cli import ConnectedProviderCommand
from safetensors.numpy import save

from fl_agent.chain import FairFL, load_deployment
from fl_agent.chain.records import RoundResult, TaskSpec, TrainingMode
from fl_agent.cli import console, fmt_flt, print_status, resolve_account
from fl_agent.crypto.sealing import (
    decrypt_content,
    encrypt_content,
    new_buyer_key,
    new_content_key,
    open_sealed_key,
    plaintext_hash,
    seal_key,
)
from fl_agent.storage.cid import compute_cid

FLT = 10**18


def weights(seed: int) -> bytes:
    """A small real model (a 64→10 linear layer) as safetensors bytes."""
    rng = np.random.default_rng(seed)
    return save(
        {
            "linear.weight": rng.normal(size=(10, 64)).astype(np.float32),
            "linear.bias": np.zeros(10, dtype=np.float32),
        }
    )


def doc(payload: dict) -> str:
    return compute_cid(json.dumps(payload, sort_keys=True).encode())


def step(title: str, receipt) -> None:
    console.print(
        f"[bold cyan]✓[/] {title}  [dim](block {receipt.block}, gas {receipt.gas_used:,},"
        f" tx {receipt.tx_hash[:14]}…)[/]"
    )


@click.command(cls=ConnectedProviderCommand, short_help="Run the scripted FairFL story")
@click.option(
    "--deployments",
    default="deployments",
    show_default=True,
    help="Folder holding <network>.json from `ape run deploy`.",
)
def cli(deployments):
    """Register, create a task, submit, finalize, reward, list, buy and withdraw."""
    from ape import chain

    fairfl = FairFL(load_deployment(chain.provider.network_choice, deployments))
    owner, aggregator = resolve_account("TEST::0"), resolve_account("TEST::1")
    honest = [resolve_account(f"TEST::{i}") for i in (2, 3, 4)]
    cheater, buyer = resolve_account("TEST::5"), resolve_account("TEST::6")
    people = {
        **{p.address: f"trainer-{i}" for i, p in enumerate(honest)},
        cheater.address: "cheater",
        buyer.address: "buyer",
    }

    console.rule("[bold]1. Registration")
    # The story can be replayed on the same chain: known participants keep their identity,
    # and a cheater caught three times within the window is blacklisted and stays out.
    for p in [*honest, cheater]:
        known = fairfl.registry.participant(p)
        if known.blacklisted:
            console.print(f"[red]✗[/] {people[p.address]} {p.address} is blacklisted and sits out")
        elif known.registered:
            console.print(
                f"  {people[p.address]} {p.address} is already registered "
                f"(reputation {known.reputation_bps / 100:.2f}%)"
            )
        else:
            r = fairfl.registry.register(
                doc({"device": "cpu", "dataset": "digits", "owner": p.address}), sender=p
            )
            step(f"{people[p.address]} registered as {p.address}", r)
    cheating = not fairfl.registry.is_blacklisted(cheater)
    workers = [*honest, cheater] if cheating else honest

    console.rule("[bold]2. A task")
    spec = TaskSpec(
        model_cid=compute_cid(weights(0)),
        spec_cid=doc(
            {"model": "linear-64-10", "dataset": "sklearn:digits", "input": [64], "output": [10]}
        ),
        metric="accuracy",
        aggregator=aggregator.address,
        rounds=1,
        min_participants=3,
        submission_window=50,
        training_mode=TrainingMode.DP,
        reward_per_round=1_000 * FLT,
    )
    task_id, r = fairfl.ledger.create_task(spec, sender=owner)
    step(
        f"task {task_id} created: {spec.rounds} round, {fmt_flt(spec.reward_per_round)} per "
        f"round, mode {spec.training_mode.label()}",
        r,
    )
    for p in workers:
        step(f"{people[p.address]} joined task {task_id}", fairfl.ledger.join(task_id, sender=p))

    console.rule("[bold]3. Round 1: uploads")
    round_number, r = fairfl.ledger.start_round(
        task_id, doc({"steps": {p.address: 50 for p in honest}}), sender=aggregator
    )
    step(f"aggregator opened round {round_number} on {spec.model_cid}", r)
    for i, p in enumerate(workers):
        update = weights(100 + i)
        r = fairfl.ledger.submit_update(
            task_id, round_number, compute_cid(update), 300 + 40 * i, 1_500 + 200 * i, sender=p
        )
        step(f"{people[p.address]} uploaded {compute_cid(update)[:24]}… ({len(update):,} bytes)", r)

    console.rule("[bold]4. Aggregation, rewards, reputation")
    new_model = weights(1)
    result = RoundResult(
        new_model_cid=compute_cid(new_model),
        contributors=tuple(p.address for p in honest),
        scores_bps=(4_000, 3_500, 2_500),
        rejected=(cheater.address,) if cheating else (),
        aggregation_millis=820,
    )
    r = fairfl.ledger.finalize_round(task_id, round_number, result, sender=aggregator)
    step(
        f"round {round_number} finalized: 3 updates aggregated"
        + (", the cheater's rejected" if cheating else ""),
        r,
    )
    for p in honest:
        amount = fairfl.ledger.claimable(task_id, p)
        step(
            f"{people[p.address]} claimed {fmt_flt(amount)} of rewards (minted now)",
            fairfl.ledger.claim_rewards(task_id, sender=p),
        )
    for p in [*honest, cheater]:
        info = fairfl.registry.participant(p)
        console.print(
            f"  {people[p.address]:<10} earned {fmt_flt(fairfl.token.balance_of(p)):>16}"
            f"   reputation {info.reputation_bps / 100:6.2f}%"
        )

    console.rule("[bold]5. Marketplace")
    content_key = new_content_key()
    sealed_model = encrypt_content(new_model, content_key)
    model_id, r = fairfl.marketplace.list_task_model(
        task_id,
        compute_cid(sealed_model),
        doc({"task": task_id, "metric": "accuracy"}),
        plaintext_hash(new_model),
        50 * FLT,
        sender=owner,
    )
    listing = fairfl.marketplace.listing(model_id)
    shares = ", ".join(
        f"{people[a]} {s / 100:.0f}%"
        for a, s in zip(listing.payees, listing.shares_bps, strict=True)
    )
    step(f"model {model_id} listed for {fmt_flt(listing.price)}; revenue shares: {shares}", r)

    fairfl.token.contract.transfer(buyer, 60 * FLT, sender=honest[0])
    console.print("  trainer-0 sold 60 FLT to the buyer")
    buyer_private, buyer_public = new_buyer_key()
    step(
        "buyer approved the marketplace",
        fairfl.token.approve(fairfl.marketplace.address, listing.price, sender=buyer),
    )
    step(
        f"buyer bought model {model_id}",
        fairfl.marketplace.buy(model_id, listing.price, buyer_public, sender=buyer),
    )
    step(
        "seller delivered the content key sealed to the buyer's key",
        fairfl.marketplace.deliver_key(
            model_id, buyer, seal_key(content_key, buyer_public), sender=owner
        ),
    )
    delivered = fairfl.marketplace.contract.KeyDelivered.range(r.block, r.block + 5)
    key = open_sealed_key(bytes(list(delivered)[-1].encryptedKey), buyer_private)
    ok = plaintext_hash(decrypt_content(sealed_model, key)) == listing.plaintext_hash
    console.print(f"  buyer decrypted the model; plaintext hash matches the listing: {ok}")

    for p in honest:
        amount = fairfl.marketplace.withdrawable(model_id, p)
        step(
            f"{people[p.address]} withdrew {fmt_flt(amount)}",
            fairfl.marketplace.withdraw(model_id, sender=p),
        )

    console.rule("[bold]State of the ledger")
    print_status(fairfl)
