"""What the wallet flows tell the user: amounts, the custom errors a contract would revert
with, the wallet's error kinds, each turned into one sentence that says what happened and
what to do."""

from __future__ import annotations

from typing import Any

import streamlit as st

import chain_data as data
from fl_agent.chain.records import PurchaseStatus
from fl_agent.chain.reverts import Revert, decode_revert, error_table
from wallet import ERROR_HINTS, WalletError


@st.cache_resource(show_spinner=False)
def errors() -> dict[bytes, Any]:
    """The custom errors of the FairFL contracts, by selector."""
    return error_table(data._project())


def money(info: data.ChainInfo, amount: int | None) -> str:
    return f"{info.amount(int(amount or 0)):,.2f} {info.payment_symbol}"


def pending_text(purchase: Any, info: data.ChainInfo) -> str:
    if purchase.status == PurchaseStatus.PENDING:
        return (f"The seller has not delivered your key yet (due by block "
                f"{purchase.deadline_block}); the download opens as soon as it does.")
    return "You have not bought this model (or it was refunded)."


def hint(kind: str, info: data.ChainInfo) -> str:
    text = ERROR_HINTS.get(kind, ERROR_HINTS["rpc"])
    if kind == "no_wallet" and info.local:
        text += " Turn on “Use a dev account” in the sidebar."
    return text


def wallet_message(error: WalletError | None, stage: str, approved: bool,
                   info: data.ChainInfo) -> str:
    if error is None:
        return "The wallet gave no answer."
    if error.kind == "rejected":
        what = {"signin": "sign-in", "key": "key signature", "permit": "permit",
                "chain": "chain switch", "connect": "connection"}.get(stage, "request")
        return (f"You rejected the {what} in your wallet. Nothing was sent"
                + (" (the allowance you approved stays; the next purchase reuses it)"
                   if approved else "") + ". Click again to retry.")
    if error.kind == "reverted":
        revert = decode_revert(error.data, errors())
        if revert is not None:
            return revert_text(revert, info) + allowance_note(approved)
    return f"{hint(error.kind, info)} ({error.message})"


def allowance_note(approved: bool) -> str:
    return (" Your approve went through, so the marketplace may take up to the approved "
            "amount on your next purchase; nothing was paid." if approved else "")


def revert_text(revert: Revert, info: data.ChainInfo) -> str:
    a = revert.args
    texts = {
        "ModelMarketplacePriceAboveMax": lambda: (
            f"The price is now {money(info, a.get('price'))}, above the "
            f"{money(info, a.get('maxPrice'))} you agreed to. Nothing was paid: review the "
            "new price and buy again."),
        "ModelMarketplaceInsufficientBalance": lambda: (
            f"You hold {money(info, a.get('balance'))}; the price is "
            f"{money(info, a.get('price'))}. Nothing was paid."),
        "ModelMarketplaceInsufficientAllowance": lambda: (
            f"The marketplace may take only {money(info, a.get('allowance'))} of your "
            "tokens; approve the price first. Nothing was paid."),
        "ModelMarketplaceBlacklisted": lambda: "This account is blacklisted and cannot buy.",
        "ModelMarketplaceDelisted": lambda: "The model was delisted. Nothing was paid.",
        "ModelMarketplaceAlreadyPurchased": lambda: "You already bought this model.",
        "ModelMarketplaceRefundNotYet": lambda: (
            f"The seller has until block {a.get('deadlineBlock')} to deliver the key."),
        "ModelMarketplaceNothingToWithdraw": lambda: "Nothing to withdraw yet.",
        "EnforcedPause": lambda: "Trading is paused by governance; try again later.",
    }
    make = texts.get(revert.name)
    return make() if make else f"The contract refused the transaction ({revert.name})."
