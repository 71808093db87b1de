"""The ModelMarketplace's typed wrapper: listing a task's model, buying it (with an approval
or a permit), delivering and updating buyer keys, refunds and withdrawals.
"""

from __future__ import annotations

from typing import Any

from fl_agent.chain.contract import ContractWrapper
from fl_agent.chain.records import Listing, Purchase, TxReceipt
from fl_agent.chain.transactions import transact
from fl_agent.errors import ChainError, ConfigError


class Marketplace(ContractWrapper):
    """Listing task models, escrowed purchases, key delivery, refunds and revenue sharing."""

    contract_name = "ModelMarketplace"

    def list_task_model(
        self,
        task_id: int,
        encrypted_cid: str,
        metadata_cid: str,
        plaintext_hash: bytes,
        price: int,
        *,
        sender: Any,
    ) -> tuple[int, TxReceipt]:
        receipt = transact(
            self.contract.listTaskModel,
            task_id,
            encrypted_cid,
            metadata_cid,
            plaintext_hash,
            price,
            sender=sender,
        )
        return int(receipt.return_value or self.model_count()), receipt

    def buy(self, model_id: int, max_price: int, buyer_key: bytes, *, sender: Any) -> TxReceipt:
        """Pays the price (at most ``max_price``) into escrow from the sender's allowance and
        asks for the content key sealed to ``buyer_key`` (32 bytes, X25519)."""
        return transact(
            self.contract.buy, model_id, max_price, _key32(buyer_key), sender=sender
        )

    def buy_with_permit(
        self,
        model_id: int,
        max_price: int,
        buyer_key: bytes,
        deadline: int,
        v: int,
        r: bytes,
        s: bytes,
        *,
        sender: Any,
    ) -> TxReceipt:
        """``buy`` after an EIP-2612 permit of ``max_price`` signed by the sender."""
        return transact(
            self.contract.buyWithPermit,
            model_id,
            max_price,
            _key32(buyer_key),
            deadline,
            v,
            r,
            s,
            sender=sender,
        )

    def update_buyer_key(self, model_id: int, new_key: bytes, *, sender: Any) -> TxReceipt:
        """Replaces the key of the sender's pending purchase; the deadline restarts.

        Sent with a quarter more gas than estimated: a node estimates at the latest block,
        where the restarted deadline may equal the stored one (a free write), while the
        transaction runs in the next block and pays for the write (anvil: 34,507 estimated,
        37,307 used, right after the purchase)."""
        method = self.contract.updateBuyerKey
        key = _key32(new_key)
        gas = int(method.estimate_gas_cost(model_id, key, sender=sender) * 5 // 4)
        return transact(method, model_id, key, sender=sender, gas=gas)

    def deliver_key(
        self, model_id: int, buyer: Any, buyer_key: bytes, sealed_key: bytes, *, sender: Any
    ) -> TxReceipt:
        """Publishes the content key sealed to ``buyer_key`` (92 bytes, see
        :func:`fl_agent.crypto.sealing.seal_key`). ``buyer_key`` is the key read from the
        purchase: if the buyer has replaced it since, the contract reverts with
        ``ModelMarketplaceBuyerKeyChanged`` and the escrow stays; seal to the new key."""
        return transact(
            self.contract.deliverKey,
            model_id,
            buyer,
            _key32(buyer_key),
            bytes(sealed_key),
            sender=sender,
        )

    def deliver_keys(
        self,
        model_id: int,
        buyers: list[Any],
        buyer_keys: list[bytes],
        sealed_keys: list[bytes],
        *,
        sender: Any,
    ) -> TxReceipt:
        """Delivers to several pending buyers at once, each key sealed to the buyer key given
        for it; reverts as a whole if one buyer is not pending or changed its key."""
        if not len(buyers) == len(buyer_keys) == len(sealed_keys):
            raise ConfigError(
                f"{len(buyers)} buyers, {len(buyer_keys)} buyer keys and "
                f"{len(sealed_keys)} sealed keys: give one of each per buyer"
            )
        return transact(
            self.contract.deliverKeys,
            model_id,
            list(buyers),
            [_key32(k) for k in buyer_keys],
            [bytes(k) for k in sealed_keys],
            sender=sender,
        )

    def refund(self, model_id: int, *, sender: Any) -> TxReceipt:
        """Takes back the price of the sender's pending purchase once its deadline has passed."""
        return transact(self.contract.refund, model_id, sender=sender)

    def withdraw(self, model_id: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.withdraw, model_id, sender=sender)

    def withdrawable(self, model_id: int, payee: Any) -> int:
        return int(self.contract.withdrawable(model_id, payee))

    def withdrawn(self, model_id: int, payee: Any) -> int:
        return int(self.contract.withdrawn(model_id, payee))

    def set_price(self, model_id: int, price: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.setPrice, model_id, price, sender=sender)

    def delist(self, model_id: int, *, sender: Any) -> TxReceipt:
        return transact(self.contract.delist, model_id, sender=sender)

    def purchase(self, model_id: int, buyer: Any) -> Purchase:
        address = str(getattr(buyer, "address", buyer))
        return Purchase.from_chain(model_id, address, self.contract.purchase(model_id, address))

    def has_access(self, model_id: int, buyer: Any) -> bool:
        return bool(self.contract.hasAccess(model_id, buyer))

    def model_of_task(self, task_id: int) -> int:
        """The model listed for ``task_id``, or 0 if none is."""
        return int(self.contract.modelOfTask(task_id))

    def payment_token(self) -> str:
        return str(self.contract.paymentToken())

    def delivery_window(self) -> int:
        """Blocks the seller has to deliver a key before the buyer may take a refund."""
        return int(self.contract.deliveryWindow())

    def model_count(self) -> int:
        return int(self.contract.modelCount())

    def listing(self, model_id: int) -> Listing:
        raw = self.contract.listing(model_id)
        if str(raw.seller) == "0x" + "0" * 40:
            raise ChainError(f"model {model_id} does not exist (there are {self.model_count()})")
        return Listing.from_chain(model_id, raw)

    def listings(self) -> list[Listing]:
        return [self.listing(i) for i in range(1, self.model_count() + 1)]


def _key32(key: bytes) -> bytes:
    """A buyer key as the contract's ``bytes32``; anything but 32 bytes is a caller's bug."""
    key = bytes(key)
    if len(key) != 32:
        raise ConfigError(f"a buyer key is a 32-byte X25519 public key, got {len(key)} bytes")
    return key


__all__ = ["Marketplace"]
