"""My account: the connected wallet's balance, its purchases with their downloads, and its
revenue per model with the withdraw button."""

from __future__ import annotations

import streamlit as st

import chain_data as data
import page_tables as tables
import ui
import wallet_flows as flows
import wallet_panels as panels

Col = st.column_config
source, info, views = ui.page("My account")
me = panels.account()
flow = flows.current()
if flow is not None and flow.kind in ("signin", "download", "refund", "withdraw", "rekey"):
    panels.panel(flow)

if me is None:
    st.info("Connect your wallet to see your purchases and revenue"
            + (", or turn on a dev account in the sidebar (local chain)." if info.local
               else "."), icon=":material/account_balance_wallet:")
    st.button("Connect and sign in", type="primary", on_click=flows.start, args=("signin",))
    st.stop()

signed = flows.signed_in()
cols = st.columns(3)
cols[0].metric("Account", ui.short(me), help=me)
cols[1].metric(f"{info.payment_symbol} balance", f"{info.amount(data.balance(source, me)):,.4f}")
cols[2].metric("Signed in", "yes" if signed and signed.lower() == me.lower() else "no",
               help="Sign-In with Ethereum (EIP-4361) for this session")
if not (signed and signed.lower() == me.lower()):
    st.info("Sign in with Ethereum (a free signature, EIP-4361) to show this account's "
            "purchases and revenue: the app shows them only to whoever proves it holds the "
            "account.", icon=":material/login:")
    st.button("Sign in with Ethereum", type="primary", on_click=flows.start, args=("signin",))
    st.stop()


st.header("Purchases")
bought = tables.purchases(views, info, me)
if bought.empty:
    st.info("You have not bought a model yet: see **Models**.", icon=":material/storefront:")
else:
    st.dataframe(bought, hide_index=True, alt="My purchases", placeholder="–",
                 column_config={
                     "model_id": Col.NumberColumn("Model", format="%d"),
                     "price": Col.NumberColumn(f"Paid ({info.payment_symbol})", format="%.2f"),
                     "status": Col.TextColumn("Status", help="pending: paid, key not "
                                              "delivered yet; delivered: ready to download"),
                     "purchased_block": Col.NumberColumn("Bought at block", format="%d"),
                     "deadline_block": Col.NumberColumn("Key due by block", format="%d"),
                     "delivered_block": Col.NumberColumn("Key delivered at", format="%d")})
    for row in bought.itertuples():
        label = f"Model {row.model_id}"
        if row.status == "delivered":
            st.button(f"Download model {row.model_id}", icon=":material/download:",
                      key=f"acct-download-{row.model_id}", on_click=flows.start,
                      args=("download", int(row.model_id)))
        elif row.status == "pending" and views.block > row.deadline_block:
            st.button(f"Refund model {row.model_id} (key overdue)", key=f"acct-refund-"
                      f"{row.model_id}", on_click=flows.start, args=("refund", int(row.model_id)))
        elif row.status == "pending":
            st.caption(f"{label}: key pending (due by block {row.deadline_block}).")

st.header("Revenue")
earned = tables.revenue(views, info, me)
if earned.empty:
    st.info("You have no revenue: payees are the contributors of a sold model's task.",
            icon=":material/payments:")
else:
    st.dataframe(earned.drop(columns=["withdrawable_units"]), hide_index=True,
                 alt="My revenue",
                 column_config={
                     "model_id": Col.NumberColumn("Model", format="%d"),
                     "task_id": Col.NumberColumn("Task", format="%d"),
                     "share_pct": Col.NumberColumn("Share", format="%.2f%%"),
                     "sales": Col.NumberColumn("Sales"),
                     "revenue": Col.NumberColumn(f"Earned ({info.payment_symbol})",
                                                 format="%.4f"),
                     "withdrawn": Col.NumberColumn("Withdrawn", format="%.4f"),
                     "withdrawable": Col.NumberColumn("Withdrawable", format="%.4f")})
    for row in earned.itertuples():
        if row.withdrawable_units > 0:
            st.button(f"Withdraw {row.withdrawable:,.4f} {info.payment_symbol} from model "
                      f"{row.model_id}", key=f"withdraw-{row.model_id}", on_click=flows.start,
                      args=("withdraw", int(row.model_id)))
