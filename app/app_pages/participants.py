"""Participants: the reputation leaderboard with its history, and the blacklist with its
evidence."""

from __future__ import annotations

import streamlit as st

import page_tables as tables
import ui

Col = st.column_config
source, info, views = ui.page("Participants")
if not views.participants:
    st.info("No participant has registered yet.", icon=":material/info:")
    st.stop()

board = tables.leaderboard(views, info)
cols = st.columns(3)
cols[0].metric("Registered", len(board))
cols[1].metric("In good standing", int((~board["blacklisted"]).sum()))
cols[2].metric("Blacklisted", int(board["blacklisted"].sum()))

st.header("Reputation leaderboard")
st.caption("Reputation is an average of each round's outcome (the contribution relative to "
           "an equal share; 0 when rejected), kept on chain by the registry.")
st.dataframe(
    board, hide_index=True, alt="Participants",
    column_order=["participant", "reputation_pct", "accepted", "rejected", "earned",
                  "blacklisted"],
    column_config={
        "participant": Col.TextColumn("Participant"),
        "reputation_pct": Col.ProgressColumn("Reputation", format="%.2f%%", min_value=0,
                                             max_value=100),
        "accepted": Col.NumberColumn("Accepted updates"),
        "rejected": Col.NumberColumn("Rejected updates"),
        "earned": Col.NumberColumn("Earned (FLT)", format="%.2f"),
        "blacklisted": Col.CheckboxColumn("Blacklisted"),
    },
)
left, right = st.columns(2)
with left:
    ui.reputation_chart(board)
with right:
    picked = st.multiselect("History of", list(board["participant"]),
                            default=list(board["participant"][:3]), format_func=ui.short)
    if picked:
        ui.history_chart(tables.reputation_history(views, info, picked))

st.header("Blacklist")
listed = tables.blacklist(views, info)
if listed.empty:
    st.info("Nobody has been blacklisted.", icon=":material/verified_user:")
else:
    st.caption("Automatic blacklisting follows repeated rejections within the registry's "
               "window; each rejection's reason is in its round's evidence document. "
               "Governance blacklists with an evidence CID.")
    st.dataframe(listed, hide_index=True, alt="Blacklist",
                 column_config={"block": Col.NumberColumn("Block", format="%d"),
                                "evidence": Col.TextColumn("Evidence", width="large")})
