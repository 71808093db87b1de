"""One scripted story through the FairFL contracts on the shared local chain.

    ape run story --network ethereum:local:node      (what `make story` runs)

Three honest participants and one cheater register and join a task; the aggregator opens a
round; everyone uploads; the aggregator rewards the honest updates and rejects the cheater,
with a reason code and an evidence document; the task's model is listed; one buyer pays into
escrow and gets the content key sealed to its key, another gets no key and takes a refund
once the delivery window has passed; the contributors withdraw the revenue. The weights are
real safetensors files and every CID is the one ``ipfs add --cid-version 1`` gives for them.
"""

from __future__ import annotations

import json

import click
import numpy as np
from ape.cli import ConnectedProviderCommand
from safetensors.numpy import save

from fl_agent.chain import FairFL, load_deployment
from fl_agent.chain.records import PurchaseStatus, RejectReason, RoundResult, TaskSpec, TrainingMode
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
#: anvil mines a block in a time that grows with the chain's length: beyond this many blocks
#: the story does not wait for the delivery window to pass.
MAX_BLOCKS_TO_MINE = 1_000


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


def let_blocks_pass(blocks: int) -> None:
    """Mines ``blocks`` on a development chain: ape's test provider, or anvil reached by URL
    (whose generic provider does not implement ``mine``)."""
    from ape import chain

    try:
        chain.mine(blocks)
    except Exception:  # noqa: BLE001 - ape raises several types when a provider cannot mine
        chain.provider.make_request("anvil_mine", [blocks])


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
    late_buyer = resolve_account("TEST::7")
    people = {
        **{p.address: f"trainer-{i}" for i, p in enumerate(honest)},
        cheater.address: "cheater",
        buyer.address: "buyer",
        late_buyer.address: "buyer-2",
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
    scores = (400_000, 350_000, 250_000)  # parts per million of the round's budget
    verdicts = [
        {"participant": p.address, "accepted": True, "reason": None, "share_ppm": score}
        for p, score in zip(honest, scores, strict=True)
    ]
    if cheating:
        verdicts.append(
            {"participant": cheater.address, "accepted": False, "reason": "norm_outlier"}
        )
    result = RoundResult(
        new_model_cid=compute_cid(new_model),
        model_hash=plaintext_hash(new_model),
        contributors=tuple(p.address for p in honest),
        scores_ppm=scores,
        rejected=(cheater.address,) if cheating else (),
        reasons=(RejectReason.NORM_OUTLIER,) if cheating else (),
        evidence_cid=doc({"task": task_id, "round": round_number, "verdicts": verdicts}),
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
    market, money = fairfl.marketplace, fairfl.payment_token
    if money.address != fairfl.token.address:
        raise click.ClickException(
            f"the marketplace takes payment in {money.address}, not FLT: the story can only "
            "fund its buyers with FLT; deploy without --payment-token"
        )
    content_key = new_content_key()
    sealed_model = encrypt_content(new_model, content_key)
    model_id, r = market.list_task_model(
        task_id,
        compute_cid(sealed_model),
        doc({"task": task_id, "metric": "accuracy"}),
        plaintext_hash(new_model),
        50 * FLT,
        sender=owner,
    )
    listing = market.listing(model_id)
    step(f"model {model_id} of task {task_id} listed for {fmt_flt(listing.price)}", r)
    # What a buyer checks before paying: the listing commits to the model the last round made.
    [finalized] = fairfl.ledger.events("RoundFinalized", taskId=task_id)  # a one-round task
    last_round = RoundResult.from_chain(finalized.result)
    matches = last_round.model_hash == listing.plaintext_hash
    console.print(f"  plaintext hash matches the last round's model hash: {matches}")
    assert matches
    shares = []
    for p in honest:
        earned, total = fairfl.ledger.reward_share(task_id, p)
        shares.append(f"{people[p.address]} {100 * earned / total:.0f}%")
    console.print(f"  revenue goes to the contributors, by what they earned: {', '.join(shares)}")
    window = market.delivery_window()

    for b in (buyer, late_buyer):
        money.transfer(b, 60 * FLT, sender=honest[0])
        console.print(f"  trainer-0 sold 60 FLT to {people[b.address]}")
        step(
            f"{people[b.address]} approved the marketplace",
            money.approve(market.address, listing.price, sender=b),
        )

    buyer_private, buyer_public = new_buyer_key()
    step(
        f"buyer paid {fmt_flt(listing.price)} into escrow for model {model_id} "
        f"(key due within {window} blocks)",
        market.buy(model_id, listing.price, buyer_public, sender=buyer),
    )
    console.print(f"  escrowed: {fmt_flt(market.listing(model_id).escrowed)}")
    sealed_to = market.purchase(model_id, buyer).buyer_key  # the key the purchase names now
    r = market.deliver_key(
        model_id, buyer, sealed_to, seal_key(content_key, sealed_to), sender=owner
    )
    step("seller delivered the content key sealed to the buyer's key; escrow → revenue", r)
    delivered = market.contract.KeyDelivered.range(r.block, r.block + 1, search_topics={
        "modelId": model_id, "buyer": buyer.address})
    key = open_sealed_key(bytes(list(delivered)[-1].sealedKey), buyer_private)
    ok = plaintext_hash(decrypt_content(sealed_model, key)) == listing.plaintext_hash
    console.print(f"  buyer decrypted the model; plaintext hash matches the listing: {ok}")

    _, late_public = new_buyer_key()
    step(
        f"buyer-2 paid {fmt_flt(listing.price)} into escrow",
        market.buy(model_id, listing.price, late_public, sender=late_buyer),
    )
    deadline = market.purchase(model_id, late_buyer).deadline_block
    console.print(f"  the seller never answers; the window closes after block {deadline}")
    if window > MAX_BLOCKS_TO_MINE:
        console.print(
            f"  [yellow]a {window}-block window takes too long to mine here; buyer-2 can take "
            f"its refund after block {deadline} (`make story` deploys with a short window)[/]"
        )
    else:
        # One block past the deadline: gas is estimated on the latest block, not the next one.
        let_blocks_pass(deadline + 1 - chain.blocks.height)
        before = money.balance_of(late_buyer)
        r = market.refund(model_id, sender=late_buyer)
        back = money.balance_of(late_buyer) - before
        status = market.purchase(model_id, late_buyer).status
        step(f"buyer-2 took back {fmt_flt(back)} ({status.name.lower()})", r)
        assert status is PurchaseStatus.REFUNDED

    for p in honest:
        amount = market.withdrawable(model_id, p)
        step(
            f"{people[p.address]} withdrew {fmt_flt(amount)}",
            market.withdraw(model_id, sender=p),
        )
    final = market.listing(model_id)
    console.print(
        f"  model {model_id}: {final.sales} sale, revenue {fmt_flt(final.revenue)}, "
        f"escrowed {fmt_flt(final.escrowed)}"
    )

    console.rule("[bold]State of the ledger")
    print_status(fairfl)
