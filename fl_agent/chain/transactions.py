"""Sending a contract transaction so that an agent is never stuck behind it: a revert
becomes :class:`~fl_agent.errors.ContractRevertError` with the custom error's name, a
transaction not mined in time is replaced at the same nonce with higher fees, and a nonce
held by a pending transaction an earlier process left behind is taken over
(:func:`transact`). The contract wrappers of :mod:`fl_agent.chain.client` send through it.

Written by hand: ape sends and waits, but neither replaces a transaction nor outbids one that
holds the nonce.
"""

from __future__ import annotations

from typing import Any

from fl_agent.chain.records import TxReceipt
from fl_agent.errors import ChainError, ContractRevertError

#: How many times a transaction that is not mined in time is sent again with a higher fee.
REPLACEMENTS = 5

#: How the node says that our nonce is held by a pending transaction that pays more (one an
#: earlier process of this agent left behind, or a copy of ours): geth, anvil, Nethermind.
UNDERPRICED = ("replacement transaction underpriced", "replacement fee too low",
               "already known")
#: How many times the fees are doubled against such a transaction (each refusal is at once).
OUTBIDS = 16


def transact(method: Any, *args: Any, sender: Any, **kwargs: Any) -> TxReceipt:
    """Sends ``method(*args)`` from ``sender`` and waits for its receipt.

    A revert becomes :class:`ContractRevertError` with the custom error's name. A transaction
    that is not mined within the network's acceptance timeout (``transaction_acceptance_timeout``
    in ape's config; fees rose after it was priced) is replaced: sent again with the same nonce
    and fees raised by at least the 12.5 % nodes require, up to :data:`REPLACEMENTS` times, so
    that the agent is never stuck behind it. A transaction refused because a pending one
    holds its nonce and pays more (:data:`UNDERPRICED`: an earlier process of the agent died
    with it unmined) takes that nonce over the same way, with fees doubled until the node
    accepts it: the agent's work is read from the chain again, so whatever the pending one
    did is redone if it is still needed."""
    from ape.exceptions import ContractLogicError, TransactionNotFoundError

    sent: list[str] = []
    try:
        try:
            receipt = method(*args, sender=sender, **kwargs)
        except TransactionNotFoundError as err:
            receipt = _replace(method, args, sender, kwargs, _hash_of(err), sent)
        except ContractLogicError:
            raise
        except Exception as err:
            if not _underpriced(err):
                raise
            receipt = _replace(method, args, sender, kwargs, None, sent)
    except ContractLogicError as err:
        name = type(err).__name__
        if name in ("ContractLogicError", "VirtualMachineError"):
            name = None
        said = f"transaction reverted with {name}: {err}" if name else \
            f"transaction reverted: {err}"
        raise ContractRevertError(said, name) from err
    return TxReceipt(
        tx_hash=str(receipt.txn_hash),
        block=int(receipt.block_number),
        gas_used=int(receipt.gas_used),
        return_value=receipt.return_value,
    )


def _hash_of(err: Exception) -> str:
    import re

    found = re.search(r"0x[0-9a-fA-F]{64}", str(err))
    if found is None:
        raise ChainError(f"a transaction was not mined in time and ape did not say which: {err}")
    return found.group(0)


def _underpriced(err: BaseException) -> bool:
    said = str(err).lower()
    return any(words in said for words in UNDERPRICED)


def _replace(method: Any, args: tuple, sender: Any, kwargs: dict, stuck: str | None,
             sent: list[str]) -> Any:
    """Sends the call again with ``stuck``'s nonce (None: the account's next nonce, which a
    pending transaction holds) and higher fees until one is mined."""
    from ape import chain
    from ape.exceptions import TransactionNotFoundError

    provider = chain.provider
    original = None
    if stuck is not None:
        sent.append(stuck)
        try:
            original = provider.web3.eth.get_transaction(stuck)
        except Exception:  # noqa: BLE001 - the node dropped it from its pool: price it afresh
            original = None
    if original is None:
        nonce = int(provider.get_nonce(sender.address))
        fee = tip = 0
    else:
        nonce = int(original["nonce"])
        fee = int(original.get("maxFeePerGas", original.get("gasPrice", 0)))
        tip = int(original.get("maxPriorityFeePerGas", 0))
    attempts, outbids = 0, 0
    while attempts < REPLACEMENTS:
        mined = _mined(provider, sent)
        if mined is not None:
            return mined
        base = int(provider.base_fee)
        tip = max(tip + tip // 8 + 1, int(provider.priority_fee))
        fee = max(fee + fee // 8 + 1, 2 * base + tip)
        try:
            return method(*args, sender=sender, nonce=nonce, max_fee=fee, max_priority_fee=tip,
                          **kwargs)
        except TransactionNotFoundError as err:
            sent.append(_hash_of(err))
            attempts += 1
        except Exception as err:
            if _underpriced(err) and outbids < OUTBIDS:
                outbids += 1
                fee, tip = 2 * fee, 2 * tip  # the pending one pays more: outbid it
                continue
            if stuck is None and "nonce too low" in str(err).lower():
                attempts += 1  # the pending one was mined meanwhile: the next nonce is ours
                nonce = int(provider.get_nonce(sender.address))
                continue
            if "nonce" not in str(err).lower():
                raise
            mined = _mined(provider, sent)  # an earlier one was mined meanwhile
            if mined is not None:
                return mined
            raise
    mined = _mined(provider, sent)
    if mined is not None:
        return mined
    raise StuckTransactionError(
        f"transaction with nonce {nonce} from {sender.address} was not mined after "
        f"{REPLACEMENTS} replacements up to {fee:,} wei per gas; the network may be "
        "congested: an agent waits and tries again")


class StuckTransactionError(ChainError, TimeoutError):
    """A transaction still not mined after :data:`REPLACEMENTS` replacements. A
    ``TimeoutError``, so an agent's service loop waits and tries its step again (the step
    reads the chain first: if one of the copies was mined meanwhile, it is not sent again)
    rather than stopping."""


def _mined(provider: Any, hashes: list[str]) -> Any | None:
    """The ape receipt of whichever of ``hashes`` was mined, if any."""
    for tx_hash in hashes:
        try:
            found = provider.web3.eth.get_transaction_receipt(tx_hash)
        except Exception:  # noqa: BLE001 - web3 raises TransactionNotFound for a pending one
            continue
        if found is not None:
            return provider.get_receipt(tx_hash)
    return None
