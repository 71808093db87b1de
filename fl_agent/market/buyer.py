"""The buyer's side without a browser: buy with an ape account, then download and verify.

The buyer's X25519 key is derived from its signature over the fixed buyer-key message
(:func:`fl_agent.crypto.wallet_keys.buyer_key_message`), exactly as the app derives it in
the browser, so a model bought in one can be downloaded with the other. Download checks
everything a buyer must not take on trust: the ciphertext against its CID (the store), the
sealed key against the buyer's key, the plaintext against the listing's SHA-256, and the
weights against the model spec of the listing's metadata.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fl_agent.chain.client import FairFL
from fl_agent.chain.records import Listing, PurchaseStatus, RoundResult, TxReceipt
from fl_agent.crypto.sealing import decrypt_content, open_sealed_key, plaintext_hash, public_bytes
from fl_agent.crypto.wallet_keys import buyer_key_message, derive_key
from fl_agent.errors import ChainError, ConfigError, FairFLError
from fl_agent.learning.weights import decode_weights
from fl_agent.market.listing import ListingMetadata
from fl_agent.market.payment import (
    PERMIT_LIFETIME_SECONDS,
    permit_domain,
    permit_typed_data,
    split_signature,
)
from fl_agent.storage.store import ContentStore


class KeyPendingError(FairFLError, RuntimeError):
    """The purchase is paid but the seller has not delivered the key yet."""


def buyer_key(fairfl: FairFL, account: Any, model_id: int) -> X25519PrivateKey:
    """``account``'s key for model ``model_id`` (it signs the buyer-key message)."""
    from ape import chain

    return derive_key(account, buyer_key_message(int(chain.chain_id),
                                                 fairfl.marketplace.address, model_id))


@dataclass(frozen=True)
class Bought:
    model_id: int
    price: int
    via: str  # "permit" or "approve"
    receipts: tuple[TxReceipt, ...]

    @property
    def gas_used(self) -> int:
        return sum(r.gas_used for r in self.receipts)


def buy_model(fairfl: FairFL, account: Any, model_id: int, max_price: int | None = None, *,
              permit: bool | None = None) -> Bought:
    """Buys ``model_id`` at its current price (refused above ``max_price``): with a permit
    when the token supports one (``permit`` None or True), else approve + buy."""
    from eth_account.messages import encode_typed_data

    listing = fairfl.marketplace.listing(model_id)
    check_can_buy(fairfl, listing, str(account.address), max_price)
    limit = listing.price if max_price is None else max_price
    key = public_bytes(buyer_key(fairfl, account, model_id))
    token = fairfl.payment_token
    market = fairfl.marketplace.address
    domain = permit_domain(token.contract) if permit is not False else None
    if permit and domain is None:
        raise ConfigError("the payment token does not support EIP-2612 permits; buy with an "
                          "allowance instead (--approve)")
    if domain is not None:
        deadline = int(time.time()) + PERMIT_LIFETIME_SECONDS
        nonce = int(token.contract.nonces(account.address))
        typed = permit_typed_data(domain, str(account.address), market, limit, nonce, deadline)
        signature = account.sign_message(encode_typed_data(full_message=typed))
        # encode_rsv pads r and s to 32 bytes (one signature in 128 has a leading zero)
        v, r, s = split_signature(signature.encode_rsv())
        receipt = fairfl.marketplace.buy_with_permit(model_id, limit, key, deadline, v, r, s,
                                                     sender=account)
        return Bought(model_id, listing.price, "permit", (receipt,))
    receipts = []
    if token.allowance(account.address, market) < listing.price:
        receipts.append(token.approve(market, limit, sender=account))
    receipts.append(fairfl.marketplace.buy(model_id, limit, key, sender=account))
    return Bought(model_id, listing.price, "approve", tuple(receipts))


def check_can_buy(fairfl: FairFL, listing: Listing, buyer: str, max_price: int | None) -> None:
    """Raises a :class:`ConfigError` saying what to do when the purchase would revert."""
    token = fairfl.payment_token
    if not listing.active:
        raise ConfigError(f"model {listing.model_id} is no longer for sale (delisted)")
    if fairfl.registry.is_blacklisted(buyer):
        raise ConfigError(f"{buyer} is blacklisted and cannot buy")
    if max_price is not None and listing.price > max_price:
        raise ConfigError(f"model {listing.model_id} costs {listing.price} base units, above "
                          f"your limit of {max_price}; raise --max-price to buy at that price")
    status = fairfl.marketplace.purchase(listing.model_id, buyer).status
    if status in (PurchaseStatus.PENDING, PurchaseStatus.DELIVERED):
        raise ConfigError(f"{buyer} already bought model {listing.model_id} "
                          f"({status.name.lower()}); download it with `fl-agent market "
                          f"download {listing.model_id}`")
    trained = trained_model_hash(fairfl, listing.task_id)
    if trained != listing.plaintext_hash:
        raise ConfigError(f"model {listing.model_id} is not the model task {listing.task_id} "
                          f"trained: the listing commits to 0x{listing.plaintext_hash.hex()}, "
                          f"the task's last round produced 0x{(trained or b'').hex()}; refusing "
                          "to buy it")
    balance = token.balance_of(buyer)
    if balance < listing.price:
        raise ConfigError(f"{buyer} holds {balance} base units of the payment token, the "
                          f"price is {listing.price}; get more tokens first")


def rekey(fairfl: FairFL, account: Any, model_id: int) -> TxReceipt:
    """Replaces the key of a pending purchase by the one ``account`` derives now (a new
    device whose wallet signs differently, or a key the seller's agent could not use); the
    delivery deadline restarts."""
    purchase = fairfl.marketplace.purchase(model_id, account.address)
    if purchase.status != PurchaseStatus.PENDING:
        raise ConfigError(f"only a purchase whose key was not delivered yet can change its "
                          f"key; {account.address}'s purchase of model {model_id} is "
                          f"{purchase.status.name.lower()}")
    return fairfl.marketplace.update_buyer_key(
        model_id, public_bytes(buyer_key(fairfl, account, model_id)), sender=account)


def trained_model_hash(fairfl: FairFL, task_id: int) -> bytes | None:
    """The SHA-256 of the task's final model as its aggregator committed to it on chain (the
    last round's ``modelHash``), or None before any round was finalized."""
    finalized = fairfl.ledger.events("RoundFinalized", taskId=task_id)
    return RoundResult.from_chain(finalized[-1].result).model_hash if finalized else None


def sealed_key_for(fairfl: FairFL, model_id: int, buyer: str) -> bytes:
    """The content key the seller sealed to ``buyer``, from the last ``KeyDelivered`` event;
    :class:`KeyPendingError` (with what to do) while it is not delivered."""
    purchase = fairfl.marketplace.purchase(model_id, buyer)
    if purchase.status == PurchaseStatus.NONE:
        raise ConfigError(f"{buyer} has not bought model {model_id}; buy it first with "
                          f"`fl-agent market buy {model_id}`")
    if purchase.status == PurchaseStatus.REFUNDED:
        raise ConfigError(f"{buyer}'s purchase of model {model_id} was refunded; buy it again "
                          "to download it")
    if purchase.status == PurchaseStatus.PENDING:
        raise KeyPendingError(
            f"the seller has not delivered the key of model {model_id} yet (bought at block "
            f"{purchase.purchased_block}); wait for its key agent, or take a refund with "
            f"`fl-agent market refund {model_id}` after block {purchase.deadline_block}")
    logs = fairfl.marketplace.events("KeyDelivered", modelId=model_id, buyer=buyer)
    if not logs:
        raise ChainError(f"model {model_id} is marked delivered to {buyer} but the node has "
                         "no KeyDelivered event: its event history is incomplete")
    return bytes(logs[-1].sealedKey)


def download_model(fairfl: FairFL, store: ContentStore, account: Any, model_id: int) -> bytes:
    """The plaintext weights of a bought model, verified (see the module docstring)."""
    listing = fairfl.marketplace.listing(model_id)
    sealed = sealed_key_for(fairfl, model_id, str(account.address))
    private = buyer_key(fairfl, account, model_id)
    bought_with = fairfl.marketplace.purchase(model_id, account.address).buyer_key
    if public_bytes(private) != bought_with:
        raise ConfigError(
            f"{account.address} now derives the key 0x{public_bytes(private).hex()} for model "
            f"{model_id}, but bought it with 0x{bought_with.hex()}: the account signs the key "
            "message differently than it did (a wallet whose signatures are not "
            "deterministic), so the delivered key cannot be opened with it")
    content_key = open_sealed_key(sealed, private)
    plain = decrypt_content(store.get(listing.encrypted_cid), content_key)
    if plaintext_hash(plain) != listing.plaintext_hash:
        raise ChainError(f"model {model_id} decrypted to bytes whose SHA-256 is not the one "
                         "the listing commits to; the seller delivered the wrong content")
    metadata = ListingMetadata.from_json(store.get(listing.metadata_cid))
    decode_weights(plain, metadata.model)
    return plain
