"""The wallet parts of the pages: a flow's steps, the buy panel with the purchase's state,
and the local chain's dev accounts and faucet."""

from __future__ import annotations

import time

import streamlit as st

import chain_data as data
import flow_messages as msg
import ui
from fl_agent.chain import history
from wallet_flows import (
    APPROVE,
    DEV_ACCOUNT,
    FLOW,
    PERMIT,
    TITLES,
    Flow,
    current,
    dismiss,
    start,
)

# ---------------------------------------------------------------------------------------------
# Showing a flow
# ---------------------------------------------------------------------------------------------


def panel(flow: Flow, model_title: str = "") -> None:
    """The flow's steps with their state; polls while it waits for a block."""
    title = TITLES[flow.kind].format(m=flow.model_id) + (f" · {ui.plain(model_title)}"
                                                         if model_title else "")
    state = "error" if flow.error else "complete" if flow.done else "running"
    with st.status(title, state=state, expanded=True):
        for step in flow.steps:
            icon = {"complete": ":material/check_circle:", "error": ":material/error:",
                    "running": ":material/pending:"}[step.state]
            st.markdown(f"{icon} {step.label}" + (f" — `{step.detail}`" if step.detail else ""))
        if flow.error:
            st.error(flow.error)
        elif flow.done and flow.kind == "buy":
            gas = flow.values.get("gas", [])
            how = "permit + buy" if "permit" in flow.values else \
                "approve + buy" if len(gas) > 1 else "buy"
            st.success(f"Paid into escrow ({how}, gas {sum(gas):,}). The seller's key agent "
                       "delivers your key; the download opens then.")
        elif flow.request is not None:
            st.caption("Waiting for your wallet…")
    if flow.finished:
        st.button("Close", key=f"close-{flow.kind}", on_click=dismiss)
        return
    if "tx" in flow.values:
        st.button("Stop following", key=f"stop-{flow.kind}", on_click=dismiss,
                  help="The transaction was sent and stays sent; its outcome shows on the "
                  "model's page and in My account once it is mined.")
    else:
        st.button("Cancel", key=f"cancel-{flow.kind}", on_click=dismiss,
                  help="Nothing has been sent; a request still open in your wallet can be "
                  "rejected there.")
    if flow.stage == "receipt":
        _poll()


def _poll() -> None:
    """Reruns the whole app about every second while a transaction waits to be mined."""
    st.session_state["_rendered_at"] = time.monotonic()
    _tick()


@st.fragment(run_every=1.0)
def _tick() -> None:
    flow: Flow | None = st.session_state.get(FLOW)
    waited = time.monotonic() - st.session_state.get("_rendered_at", time.monotonic())
    if flow is not None and flow.stage == "receipt" and not flow.finished and waited > 0.5:
        st.rerun(scope="app")


# ---------------------------------------------------------------------------------------------
# Panels the pages show
# ---------------------------------------------------------------------------------------------


def account() -> str | None:
    """The connected wallet account (None before the user connects)."""
    status = st.session_state.get("wallet_status")
    return None if status is None else status.account


def buy_panel(source: data.ChainSource, info: data.ChainInfo, listing: history.ListingView,
              title: str) -> None:
    """Price, the buyer's purchase state and the button for the next thing to do."""
    flow = current(model_id=listing.model_id)
    if flow is not None:
        panel(flow, title)
        if not flow.finished:
            return
    me = account()
    mine = listing.purchase_of(me) if me else None
    if mine is None or mine.status == history.REFUNDED:
        if not listing.active:
            st.info("Delisted: no longer for sale.", icon=":material/block:")
            return
        if not data.listing_matches_training(source, listing.model_id):
            st.error("This listing's hash is not the one the task's last round committed to: "
                     "it does not sell the trained model. Buying is disabled.",
                     icon=":material/gpp_bad:")
            return
        st.markdown(f"**{msg.money(info, listing.price)}** · paid into escrow, released to the "
                    "contributors when your key is delivered, refundable if it is not.")
        pay_with = f"pay-{listing.model_id}"
        if data.supports_permit(source):
            st.radio("Pay with", [PERMIT, APPROVE], horizontal=True, key=pay_with,
                     help="A permit is a free signature plus one transaction; approve + buy "
                     "is two transactions, for wallets that cannot sign typed data.")
        st.button(f"Buy for {msg.money(info, listing.price)}", type="primary",
                  icon=":material/shopping_cart:", key=f"buy-{listing.model_id}",
                  on_click=start, args=("buy", listing.model_id, listing.price, pay_with),
                  width="stretch")
        if me is None:
            st.caption("Buying connects your wallet (or a dev account on the local chain), "
                       "signs you in and derives your model key from a free signature.")
        return
    _purchase_status(source, info, listing.model_id, me)


def _purchase_status(source: data.ChainSource, info: data.ChainInfo, model_id: int,
                     buyer: str) -> None:
    """Pending (key not delivered yet), delivered (download) or refundable."""
    views = data.views(source)
    mine = views.listings[model_id].purchase_of(buyer)
    if mine is None:
        return
    if mine.status == history.DELIVERED:
        st.success(f"Bought; your key was delivered at block {mine.delivered_block}.",
                   icon=":material/key:")
        st.button("Download and decrypt", type="primary", icon=":material/download:",
                  key=f"download-{model_id}", on_click=start, args=("download", model_id),
                  width="stretch")
        st.caption("The model is decrypted in your browser with the key your wallet "
                   "derives; the server never sees it.")
    elif mine.status == history.PENDING:
        if views.block > mine.deadline_block:
            st.warning(f"The key was due by block {mine.deadline_block} and has not come: "
                       "take your money back.", icon=":material/timer_off:")
            st.button("Refund", key=f"refund-{model_id}", on_click=start,
                      args=("refund", model_id), width="stretch")
        else:
            st.info(f"Key pending: paid at block {mine.purchased_block}; the seller's key "
                    f"agent delivers it by block {mine.deadline_block} (now {views.block}), "
                    "else you can take a refund.", icon=":material/hourglass_top:")
            st.button("Replace my key", key=f"rekey-{model_id}", on_click=start,
                      args=("rekey", model_id),
                      help="If you bought from another device or wallet, or the seller's agent "
                      "could not use your key: your wallet derives the key again and the "
                      "purchase takes it (the deadline restarts).")
            _await_delivery(source, model_id, buyer)


@st.fragment(run_every=2.0)
def _await_delivery(source: data.ChainSource, model_id: int, buyer: str) -> None:
    """Watches the purchase every 2 s; reruns the page when the key arrives (the download
    button belongs to the page, not to this fragment, so that its flow runs in full)."""
    mine = data.views(source).listings[model_id].purchase_of(buyer)
    if mine is not None and mine.status != history.PENDING:
        st.rerun(scope="app")


def sidebar_wallet(info: data.ChainInfo) -> None:
    """Dev accounts and the faucet, on the local chain only."""
    if not info.local:
        return
    st.caption("Local chain")
    dev = st.toggle("Use a dev account", key="use_dev_account",
                    help="No wallet needed: act as one of the local node's unlocked test "
                    "accounts. Local chain only.")
    picked = None
    if dev:
        choices = data.dev_accounts()
        picked = st.selectbox("Dev account", choices, index=min(9, len(choices) - 1),
                              format_func=lambda a: f"{choices.index(a)}: {a[:8]}…{a[-4:]}")
    if st.session_state.get(DEV_ACCOUNT) != picked:
        # The wallet was mounted earlier in this run with the previous choice: run again, or
        # it keeps showing the old wallet ("No wallet found") until the next click.
        st.session_state[DEV_ACCOUNT] = picked
        st.rerun()
    me = account()
    if me is not None and info.pays_in_flt():
        st.button(f"Dev faucet: 1,000 FLT to {me[:6]}…", key="faucet", width="stretch",
                  on_click=_faucet, args=(me,))
        if problem := st.session_state.pop("faucet_problem", None):
            st.error(problem)


def _faucet(account: str) -> None:
    st.session_state["faucet_problem"] = data.dev_faucet(account)
