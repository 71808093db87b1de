"""``fl-agent market ...``: the marketplace for people and scripts without a browser.

    fl-agent market ls                          models for sale
    fl-agent market show 1                      one model: metadata, payees, purchases
    fl-agent market list --task 1 --price 50 --account TEST::0      sell a task's model
    fl-agent market serve --account TEST::0     the seller's key agent
    fl-agent market buy 1 --account TEST::9     buy (permit, or approve + buy)
    fl-agent market download 1 --account TEST::9 -o model.safetensors
    fl-agent market rekey 1 --account TEST::9   a pending purchase takes the key derived now
    fl-agent market refund 1 --account TEST::9  money back if the key never came
    fl-agent market withdraw --account TEST::4  a contributor takes its revenue
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from fl_agent.cli.common import (
    MAX_BACKOFF,
    Finite,
    account_option,
    console,
    deployed,
    ipfs_option,
    network_option,
    open_store,
    resolve_account,
)
from fl_agent.errors import FairFLError

model_argument = click.argument("model_id", metavar="MODEL", type=click.IntRange(1))


class Money:
    """Amounts of the marketplace's payment token, in whole tokens for people."""

    def __init__(self, fairfl: Any) -> None:
        token = fairfl.payment_token.contract
        self.symbol = str(token.symbol())
        self.decimals = int(token.decimals())

    def show(self, amount: int) -> str:
        value = Decimal(amount) / (Decimal(10) ** self.decimals)
        return f"{value:,.4f} {self.symbol}"

    def parse(self, text: str, option: str) -> int:
        try:
            value = Decimal(text) * (Decimal(10) ** self.decimals)
        except InvalidOperation:
            raise click.BadParameter(f"{text!r} is not a number", param_hint=option) from None
        if value <= 0 or value != value.to_integral_value():
            raise click.BadParameter(f"{text} {self.symbol} is not a positive amount in "
                                     f"units of 10^-{self.decimals}", param_hint=option)
        return int(value)


def _metadata(store: Any, listing: Any) -> Any:
    from fl_agent.market.listing import ListingMetadata

    try:
        return ListingMetadata.from_json(store.get(listing.metadata_cid))
    except FairFLError:
        return None


@click.group()
def market() -> None:
    """Sell, buy and download trained models; contributors withdraw their revenue.

    Models are sold encrypted: a buyer's key is derived from its account's signature, the
    seller's key agent (`market serve`) seals the content key to it, and only the buyer can
    decrypt. Payments wait in escrow until the key is delivered; a buyer whose key never
    comes takes a refund after the delivery deadline.
    """


@market.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include delisted models.")
@network_option
@ipfs_option
def market_ls(show_all: bool, network: str | None, ipfs: str | None) -> None:
    """List the models for sale with their task, accuracy, price and sales."""
    store = open_store(ipfs)
    with deployed(network) as (_, fairfl):
        money = Money(fairfl)
        table = Table(title="Models for sale")
        for col in ("model", "task", "title", "metric", "score", "price", "sales",
                    "pending", "contributors", "status"):
            table.add_column(col)
        for listing in fairfl.marketplace.listings():
            if not (listing.active or show_all):
                continue
            meta = _metadata(store, listing)
            table.add_row(
                str(listing.model_id), str(listing.task_id),
                meta.title if meta else "(metadata unreadable)",
                meta.metric if meta else "",
                f"{meta.accuracy:.4f}" if meta and meta.accuracy is not None else "",
                money.show(listing.price), str(listing.sales),
                money.show(listing.escrowed), str(meta.contributors if meta else ""),
                "for sale" if listing.active else "delisted")
        console.print(table)


@market.command("show")
@model_argument
@click.option("--model", "model_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="The model's plaintext weights (from `market download`), to "
              "re-check every watermark claim's bits yourself.")
@network_option
@ipfs_option
def market_show(model_id: int, model_file: str | None, network: str | None,
                ipfs: str | None) -> None:
    """Everything about one model: its description, payees and their shares, and the
    contributors who claimed that it carries their ownership watermark."""
    store = open_store(ipfs)
    with deployed(network) as (_, fairfl):
        money = Money(fairfl)
        listing = fairfl.marketplace.listing(model_id)
        meta = _metadata(store, listing)
        info = Table(title=f"Model {model_id}", show_header=False)
        rows = [("task", str(listing.task_id)), ("seller", listing.seller),
                ("status", "for sale" if listing.active else "delisted"),
                ("price", money.show(listing.price)), ("sales", str(listing.sales)),
                ("revenue", money.show(listing.revenue)),
                ("in escrow", money.show(listing.escrowed)),
                ("encrypted weights", listing.encrypted_cid),
                ("metadata", listing.metadata_cid),
                ("plaintext sha256", listing.plaintext_hash.hex())]
        if meta is not None:
            rows[1:1] = [("title", meta.title), ("dataset / model",
                                                 f"{meta.dataset} / {meta.model.name}"),
                         (meta.metric, f"{meta.accuracy:.4f}" if meta.accuracy is not None
                          else "unknown"), ("rounds", str(meta.rounds)),
                         ("license", meta.license)]
        for key, value in rows:
            info.add_row(key, value)
        console.print(info)
        earned = fairfl.ledger.contributions(listing.task_id)
        total = sum(earned.values())
        payees = Table(title="Payees (the task's contributors, by what they earned)")
        for col in ("payee", "share", "withdrawable", "withdrawn"):
            payees.add_column(col)
        for address, amount in sorted(earned.items(), key=lambda kv: -kv[1]):
            payees.add_row(address, f"{amount / total:.4%}" if total else "",
                           money.show(fairfl.marketplace.withdrawable(model_id, address)),
                           money.show(fairfl.marketplace.withdrawn(model_id, address)))
        console.print(payees)
        _show_watermarks(fairfl, store, listing, meta, model_file)


def _show_watermarks(fairfl: Any, store: Any, listing: Any, meta: Any,
                     model_file: str | None) -> None:
    """The model's watermark claims (:mod:`fl_agent.privacy.claims`), re-checked on
    ``model_file`` when given."""
    import hashlib

    from fl_agent.privacy.claims import check_claims

    spec = vector = None
    if model_file is not None:
        plain = Path(model_file).read_bytes()
        if hashlib.sha256(plain).digest() != listing.plaintext_hash:
            raise FairFLError(f"{model_file} is not this model's plaintext (its SHA-256 "
                              "differs from the listing's): download it with `fl-agent "
                              "market download`")
        if meta is None:
            raise FairFLError("the listing's metadata is unreadable, so the model's "
                              "architecture is unknown and the bits cannot be re-checked")
        from fl_agent.learning.weights import decode_weights

        spec, vector = meta.model, decode_weights(plain, meta.model)

    def fetch(cid: str) -> bytes | None:
        try:
            return store.get(cid)
        except FairFLError:
            return None

    claims = fairfl.ledger.watermark_claims(listing.task_id)
    if not claims:
        console.print("Ownership watermarks: no member has claimed one.")
        return
    from fl_agent.agents.participant import load_task_document
    from fl_agent.privacy.claims import task_facts

    try:
        plan = load_task_document(store, fairfl.ledger.task(listing.task_id).spec_cid).privacy
    except FairFLError:
        plan = None  # every claim is then refused: the task's kind of key is unknown
    task = task_facts(listing.task_id, plan, fairfl.ledger.contributions(listing.task_id))
    checks = check_claims(claims, fetch, task=task, model_sha256=listing.plaintext_hash,
                          spec=spec, vector=vector)
    table = Table(title="Ownership watermarks (members who claimed the model carries theirs)")
    table.add_column("claimant", no_wrap=True, min_width=42)
    for col in ("verdict", "bits", "chance without it"):
        table.add_column(col)
    table.add_column("claim document or what is wrong", overflow="fold")
    verdicts = {"verified": "[green]verified[/] on the weights given",
                "claimed": "claimed: key matches its commitment, bits not re-checked",
                "rejected": "[red]rejected[/]"}
    for check in checks:
        measured = check.rechecked
        matched, bits = ((measured.matched, measured.bits) if measured else
                         (check.reported_matched, check.reported_bits))
        chance = (measured.p_value if measured else check.reported_p_value)
        table.add_row(check.account, verdicts[check.verdict],
                      f"{matched}/{bits}" if bits else "",
                      f"{chance:.2g}" if chance is not None else "",
                      escape("; ".join(check.problems) or check.claim_cid))
    console.print(table)
    if model_file is None:
        console.print("The bits are each claimant's word: give --model with the downloaded "
                      "weights to re-check them.")


@market.command("list")
@click.option("--task", "task_id", type=click.IntRange(1), required=True,
              help="The completed task whose final model to sell.")
@click.option("--price", required=True, help="Price in whole payment tokens (e.g. 50).")
@click.option("--title", default=None, help="Short description (default: dataset and model).")
@click.option("--license", "license_text", default=None,
              help="License the buyer gets (default: the buyer's own use, no redistribution).")
@account_option
@network_option
@ipfs_option
def market_list(task_id: int, price: str, title: str | None, license_text: str | None,
                account: str, network: str | None, ipfs: str | None) -> None:
    """Sell a completed task's final model (you must be the task's creator).

    The model is decrypted with your member key, encrypted again under a fresh content key
    and stored; the listing records the ciphertext, a metadata document and the plaintext's
    hash. Revenue goes to the task's contributors in proportion to what they earned. Keep
    `fl-agent market serve` running so that buyers get their keys.
    """
    from fl_agent.market.listing import DEFAULT_LICENSE, list_task_model

    store = open_store(ipfs)
    with deployed(network) as (settings, fairfl):
        amount = Money(fairfl).parse(price, "--price")
        listed = list_task_model(fairfl, store, task_id, amount,
                                 seller=resolve_account(account), keys_dir=settings.keys_dir,
                                 title=title, license_text=license_text or DEFAULT_LICENSE)
    console.print(f"[green]model {listed.model_id} listed[/] (tx {listed.receipt.tx_hash}, "
                  f"gas {listed.receipt.gas_used:,})\n  encrypted {listed.encrypted_cid}\n"
                  f"  metadata  {listed.metadata_cid}\n  key       {listed.key_file}")


@market.command("serve")
@click.option("--once", is_flag=True, help="Serve what is pending, then exit.")
@click.option("--poll-interval", type=Finite(min=0), default=2.0, show_default=True,
              help="Seconds between looks at the chain.")
@account_option
@network_option
def market_serve(once: bool, poll_interval: float, account: str, network: str | None) -> None:
    """Be the seller's key agent: deliver the key of every paid purchase.

    Follows the purchases of your models (cursor in FAIRFL_HOME/agents: purchases made while
    it was stopped are served when it starts), seals each model's content key (from
    FAIRFL_HOME/keys) to the buyer's key and delivers the keys in batches. When the chain
    does not answer it retries with a growing pause (up to a minute), acknowledging nothing
    it did not serve. Stop with Ctrl-C.
    """
    from fl_agent.market.key_agent import KeyAgent

    with deployed(network) as (settings, fairfl):
        agent = KeyAgent(fairfl, resolve_account(account, unattended=True), settings.keys_dir,
                         settings.agents_dir, confirmations=settings.confirmations,
                         log=console.print)
        console.print(f"[green]key agent for {agent.address}[/] on marketplace "
                      f"{fairfl.marketplace.address}")
        delay = poll_interval
        while True:
            if once:
                agent.step()
                break
            try:
                agent.step()
                delay = poll_interval
            except Exception as err:  # noqa: BLE001 - a node hiccup must not stop the service
                delay = min(MAX_BACKOFF, max(delay, poll_interval) * 2)
                console.print(f"[yellow]{type(err).__name__}: {err}; nothing was acknowledged, "
                              f"retrying in {delay:.0f} s[/]")
            time.sleep(delay)


@market.command("buy")
@model_argument
@click.option("--max-price", default=None,
              help="Refuse to pay more than this many whole tokens (default: the price now).")
@click.option("--permit/--approve", "use_permit", default=None,
              help="Pay with an EIP-2612 permit (one transaction) or an approve first "
              "(default: permit when the token supports it).")
@account_option
@network_option
def market_buy(model_id: int, max_price: str | None, use_permit: bool | None, account: str,
               network: str | None) -> None:
    """Buy a model: the price waits in escrow until the seller delivers your key.

    Your key is derived from your account's signature over a fixed message, so the same
    account can download the model here or in the app's browser wallet.
    """
    from fl_agent.market.buyer import buy_model

    with deployed(network) as (_, fairfl):
        money = Money(fairfl)
        limit = None if max_price is None else money.parse(max_price, "--max-price")
        bought = buy_model(fairfl, resolve_account(account), model_id, limit,
                           permit=use_permit)
        deadline = fairfl.marketplace.purchase(model_id, resolve_account(account).address)
    console.print(f"[green]bought model {model_id}[/] for {money.show(bought.price)} "
                  f"({bought.via}, {len(bought.receipts)} transaction(s), gas "
                  f"{bought.gas_used:,}); the key is due by block {deadline.deadline_block}. "
                  f"Then: fl-agent market download {model_id} --account {account} -o FILE")


@market.command("download")
@model_argument
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Where to write the decrypted weights (safetensors).")
@click.option("--wait", type=Finite(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the seller's key agent if the key is not there yet.")
@account_option
@network_option
@ipfs_option
def market_download(model_id: int, output: str, wait: float, account: str,
                    network: str | None, ipfs: str | None) -> None:
    """Download a model you bought, decrypt it and check it before writing it.

    Checks the ciphertext against its CID, the plaintext against the listing's SHA-256 and
    the weights against the listing's model spec.
    """
    from fl_agent.market.buyer import KeyPendingError, download_model

    store = open_store(ipfs)
    with deployed(network) as (_, fairfl):
        buyer = resolve_account(account)
        deadline = time.monotonic() + wait
        while True:
            try:
                plain = download_model(fairfl, store, buyer, model_id)
                break
            except KeyPendingError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
    Path(output).write_bytes(plain)
    console.print(f"[green]verified[/] model {model_id}: {len(plain):,} bytes written to "
                  f"{output}")


@market.command("rekey")
@model_argument
@account_option
@network_option
def market_rekey(model_id: int, account: str, network: str | None) -> None:
    """Replace the key of a purchase that is still waiting for delivery.

    For a buyer whose wallet now derives another key (another device, a wallet whose
    signatures are not deterministic), or whose key the seller's agent reported unusable.
    The delivery deadline restarts; the key agent serves the new key.
    """
    from fl_agent.market.buyer import rekey

    with deployed(network) as (_, fairfl):
        receipt = rekey(fairfl, resolve_account(account), model_id)
    console.print(f"[green]key replaced[/] for model {model_id} (tx {receipt.tx_hash})")


@market.command("refund")
@model_argument
@account_option
@network_option
def market_refund(model_id: int, account: str, network: str | None) -> None:
    """Take your money back for a purchase whose key was not delivered in time."""
    with deployed(network) as (_, fairfl):
        receipt = fairfl.marketplace.refund(model_id, sender=resolve_account(account))
    console.print(f"[green]refunded[/] model {model_id} (tx {receipt.tx_hash})")


@market.command("withdraw")
@click.argument("model_ids", metavar="[MODEL]...", type=click.IntRange(1), nargs=-1)
@account_option
@network_option
def market_withdraw(model_ids: tuple[int, ...], account: str, network: str | None) -> None:
    """Take your share of the revenue of the given models (default: every model that owes
    you something)."""
    with deployed(network) as (_, fairfl):
        money = Money(fairfl)
        payee = resolve_account(account)
        market_ = fairfl.marketplace
        ids = model_ids or tuple(range(1, market_.model_count() + 1))
        owed = [(m, market_.withdrawable(m, payee.address)) for m in ids]
        owed = [(m, amount) for m, amount in owed if amount > 0]
        if not owed:
            raise FairFLError(f"{payee.address} has no revenue to withdraw"
                              + (f" from model(s) {', '.join(map(str, model_ids))}"
                                 if model_ids else ""))
        for model_id, amount in owed:
            receipt = market_.withdraw(model_id, sender=payee)
            console.print(f"[green]withdrew[/] {money.show(amount)} from model {model_id} "
                          f"(tx {receipt.tx_hash})")
