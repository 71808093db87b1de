"""The seller's key agent: every paid purchase gets its key, without a person.

``fl-agent market serve --account SELLER`` runs :class:`KeyAgent`. It follows the
marketplace's ``ModelPurchased`` and ``BuyerKeyUpdated`` events of its seller with an
:class:`~fl_agent.chain.watcher.EventWatcher` whose cursor survives restarts, so purchases
made while it was down are served when it comes back. For each, it reads the purchase as it
stands now (a refunded or already served purchase is skipped; a replaced key is used), seals
the listing's content key to the buyer's X25519 key and delivers the keys of one model in
batches (``deliverKeys``): a burst of purchases costs one transaction per model, not one
per buyer.

A buyer key that is not a usable X25519 point is reported and skipped: retrying cannot
help, and the buyer can replace its key (``updateBuyerKey``, which wakes the agent again)
or take a refund after the deadline. A listing whose content key this machine does not hold
is reported on every poll and its purchases are served as soon as the key file is back (the
cursor waits before them). A chain error is not skipped either: the cursor stays, and the
next poll retries. A chain that was reset under the cursor is replayed from the deployment
(only purchases still pending are served).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fl_agent.chain.client import FairFL
from fl_agent.chain.records import PurchaseStatus, TxReceipt
from fl_agent.chain.watcher import EventWatcher
from fl_agent.crypto.sealing import SealingError, seal_key
from fl_agent.errors import ContractRevertError
from fl_agent.market.listing import key_file

#: Keys delivered per transaction at most (about 30k gas each).
BATCH = 50


#: Reverts that mean the purchase changed under the agent (refunded, or a new buyer key).
_STALE = ("ModelMarketplaceNotPending", "ModelMarketplaceBuyerKeyChanged")


@dataclass(frozen=True)
class Delivery:
    model_id: int
    buyers: tuple[str, ...]
    receipt: TxReceipt


@dataclass(frozen=True)
class Skip:
    model_id: int
    buyer: str
    reason: str


@dataclass
class KeyAgent:
    fairfl: FairFL
    account: Any
    keys_dir: Path
    state_dir: Path
    confirmations: int = 0
    batch: int = BATCH
    log: Callable[[str], None] = field(default=lambda message: None)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        self.address = str(self.account.address)
        market = self.fairfl.marketplace
        self.watcher = EventWatcher(
            market.contract, ("ModelPurchased", "BuyerKeyUpdated"),
            Path(self.state_dir) / f"key-agent-{market.address.lower()}-"
                                   f"{self.address.lower()}.json",
            start_block=self.fairfl.deployment.block, confirmations=self.confirmations,
            filters={"seller": self.address})
        self._content_keys: dict[int, bytes | None] = {}

    def content_key(self, model_id: int) -> bytes | None:
        if model_id not in self._content_keys:
            path = key_file(self.keys_dir, self.fairfl.marketplace.listing(model_id)
                            .encrypted_cid)
            self._content_keys[model_id] = path.read_bytes() if path.exists() else None
        return self._content_keys[model_id]

    def step(self) -> tuple[list[Delivery], list[Skip]]:
        """Serves every purchase event after the cursor; returns what was delivered and
        what was skipped (and why)."""
        logs = self.watcher.poll()
        # model -> buyer -> (the buyer key read from the purchase, the content key sealed to it)
        pending: OrderedDict[int, OrderedDict[str, tuple[bytes, bytes]]] = OrderedDict()
        skipped: list[Skip] = []
        hold: int | None = None  # the first log to see again (its content key is missing)
        for position, log in enumerate(logs):
            model_id, buyer = int(log.modelId), str(log.buyer)
            purchase = self.fairfl.marketplace.purchase(model_id, buyer)
            if purchase.status != PurchaseStatus.PENDING:
                continue  # refunded, or served already (a replay after a restart)
            key = self.content_key(model_id)
            if key is None:
                self._content_keys.pop(model_id, None)  # look on disk again next time
                hold = position if hold is None else hold
                skipped.append(Skip(model_id, buyer, f"no content key for model {model_id} "
                                    f"in {self.keys_dir} (listed from another machine?); "
                                    "retried on every poll until the key is there"))
                continue
            try:
                pending.setdefault(model_id, OrderedDict())[buyer] = (
                    purchase.buyer_key, seal_key(key, purchase.buyer_key))
            except SealingError as err:
                skipped.append(Skip(model_id, buyer, str(err)))
        deliveries: list[Delivery] = []
        for model_id, sealed in pending.items():
            buyers = list(sealed)
            for start in range(0, len(buyers), self.batch):
                chunk = buyers[start:start + self.batch]
                deliveries += self._deliver(model_id, {b: sealed[b] for b in chunk})
        for skip in skipped:
            self.log(f"[yellow]model {skip.model_id}: purchase of {skip.buyer} skipped:[/] "
                     f"{skip.reason}")
        acked = logs if hold is None else logs[:hold]
        if acked:
            self.watcher.ack(acked[-1])
        return deliveries, skipped

    def _deliver(self, model_id: int, sealed: dict[str, tuple[bytes, bytes]]
                 ) -> list[Delivery]:
        """One ``deliverKeys``. If a buyer was refunded or replaced its key between the read
        and the transaction (the contract refuses both, and nothing moves), the purchases are
        read again and the rest is delivered, sealed to the keys as they are now. If that
        batch is refused too (a buyer replacing its key before every batch), the keys go
        one ``deliverKey`` at a time, so that one buyer cannot hold up the others; a buyer
        refused then is served on its ``BuyerKeyUpdated`` event."""
        market = self.fairfl.marketplace
        for attempt in range(2):
            buyers = list(sealed)
            try:
                receipt = market.deliver_keys(model_id, buyers, [k for k, _ in sealed.values()],
                                              [s for _, s in sealed.values()],
                                              sender=self.account)
            except ContractRevertError as err:
                if err.error_name not in _STALE:
                    raise
                sealed = self._reread(model_id, buyers)
                if not sealed:
                    return []
                if attempt:
                    return self._deliver_one_by_one(model_id, sealed)
                continue
            self._logged(model_id, buyers, receipt)
            return [Delivery(model_id, tuple(buyers), receipt)]
        return []

    def _reread(self, model_id: int, buyers: list[str]) -> dict[str, tuple[bytes, bytes]]:
        """The buyers' purchases still pending, sealed to their keys as they are now."""
        market = self.fairfl.marketplace
        content_key = self.content_key(model_id)
        fresh = {}
        for buyer in buyers:
            purchase = market.purchase(model_id, buyer)
            if purchase.status == PurchaseStatus.PENDING and content_key is not None:
                try:
                    fresh[buyer] = (purchase.buyer_key, seal_key(content_key, purchase.buyer_key))
                except SealingError:
                    continue  # now malformed: reported on its BuyerKeyUpdated event
        return fresh

    def _deliver_one_by_one(self, model_id: int, sealed: dict[str, tuple[bytes, bytes]]
                            ) -> list[Delivery]:
        deliveries = []
        for buyer, (buyer_key, sealed_key) in sealed.items():
            try:
                receipt = self.fairfl.marketplace.deliver_key(model_id, buyer, buyer_key,
                                                              sealed_key, sender=self.account)
            except ContractRevertError as err:
                if err.error_name not in _STALE:
                    raise
                self.log(f"[yellow]model {model_id}: {buyer} changed its purchase again; "
                         "served on its next key update[/]")
                continue
            self._logged(model_id, [buyer], receipt)
            deliveries.append(Delivery(model_id, (buyer,), receipt))
        return deliveries

    def _logged(self, model_id: int, buyers: list[str], receipt: TxReceipt) -> None:
        self.log(f"model {model_id}: key delivered to {len(buyers)} buyer(s) in block "
                 f"{receipt.block} (gas {receipt.gas_used:,})")
