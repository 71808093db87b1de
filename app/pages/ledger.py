"""Ledger overview: tasks, rounds, participants and models for sale, read from the chain."""

from __future__ import annotations

import streamlit as st

import chain_data as data
import ui

Col = st.column_config
source = data.ChainSource.from_settings()

st.title("FairFL ledger")
info = data.chain_info(source)
ui.chain_header(info)

# --- Tasks -----------------------------------------------------------------------------------
st.header("Tasks")
tasks = data.tasks(source)
if not tasks:
    st.info("No tasks on the ledger yet.")
else:
    st.dataframe(
        data.frame(tasks),
        hide_index=True,
        alt="Tasks",
        column_order=[
            "task_id",
            "status",
            "round",
            "mode",
            "metric",
            "participants",
            "flt_rewarded",
            "global_model_cid",
        ],
        column_config={
            "task_id": Col.NumberColumn("Task", format="%d"),
            "status": Col.TextColumn("Status"),
            "round": Col.TextColumn("Round", help="current round / rounds"),
            "mode": Col.TextColumn("Training mode"),
            "metric": Col.TextColumn("Metric"),
            "participants": Col.NumberColumn("Participants"),
            "flt_rewarded": Col.NumberColumn(
                "FLT rewarded",
                format="%.2f",
                help="credited to contributors; minted when they claim",
            ),
            "global_model_cid": Col.TextColumn("Global model CID", width="large"),
        },
    )

    by_id = {t.task_id: t for t in tasks}
    task_id = st.selectbox(
        "Task details",
        options=list(by_id),
        format_func=lambda i: f"Task {i} · {by_id[i].metric} · {by_id[i].mode} · {by_id[i].status}",
    )
    task = by_id[task_id]
    st.caption(f"Aggregator `{task.aggregator}` · created by `{task.creator}`")
    rounds = data.task_rounds(source, task_id)
    members = data.task_members(source, task_id)
    rounds_tab, members_tab = st.tabs([f"Rounds ({len(rounds)})", f"Participants ({len(members)})"])
    with rounds_tab:
        if not rounds:
            st.info("No round started yet.")
        else:
            st.dataframe(
                data.frame(rounds),
                hide_index=True,
                width="content",
                alt=f"Rounds of task {task_id}",
                placeholder="–",
                column_config={
                    "round": Col.NumberColumn("Round", format="%d"),
                    "status": Col.TextColumn("Status"),
                    "start_block": Col.NumberColumn("Start block", format="%d"),
                    "deadline_block": Col.NumberColumn("Deadline block", format="%d"),
                    "finalized_block": Col.NumberColumn("Finalized block", format="%d"),
                    "submissions": Col.NumberColumn("Submissions"),
                },
            )
    with members_tab:
        if not members:
            st.info("Nobody joined this task yet.")
        else:
            st.dataframe(
                data.frame(members),
                hide_index=True,
                width="content",
                alt=f"Participants of task {task_id}",
                column_config={
                    "participant": Col.TextColumn("Participant"),
                    "joined": Col.CheckboxColumn("Joined"),
                    "last_submitted_round": Col.NumberColumn("Last upload (round)"),
                    "accepted_rounds": Col.NumberColumn("Accepted rounds"),
                    "rejected_rounds": Col.NumberColumn("Rejected rounds"),
                    "earned_flt": Col.NumberColumn("Earned FLT", format="%.2f"),
                },
            )

# --- Participants ----------------------------------------------------------------------------
st.header("Participants")
people = data.participants(source)
if not people:
    st.info("No participant has registered yet.")
else:
    st.dataframe(
        data.frame(people),
        hide_index=True,
        alt="Participants",
        column_order=[
            "participant",
            "reputation_pct",
            "accepted",
            "rejected",
            "blacklisted",
            "flt_balance",
        ],
        column_config={
            "participant": Col.TextColumn("Participant"),
            "reputation_pct": Col.ProgressColumn(
                "Reputation", format="%.2f%%", min_value=0, max_value=100
            ),
            "accepted": Col.NumberColumn("Accepted updates"),
            "rejected": Col.NumberColumn("Rejected updates"),
            "blacklisted": Col.CheckboxColumn("Blacklisted"),
            "flt_balance": Col.NumberColumn("FLT balance", format="%.2f"),
        },
    )
    ui.reputation_chart(data.frame(people))

# --- Models for sale -------------------------------------------------------------------------
st.header("Models for sale")
models = data.listings(source)
if not models:
    st.info("No model is listed yet.")
else:
    st.dataframe(
        data.frame(models),
        hide_index=True,
        alt="Models for sale",
        placeholder="–",
        column_order=[
            "model_id",
            "task_id",
            "price_flt",
            "sales",
            "revenue_flt",
            "active",
            "payee_count",
            "payees",
            "encrypted_cid",
        ],
        column_config={
            "model_id": Col.NumberColumn("Model", format="%d"),
            "task_id": Col.NumberColumn("Task", format="%d"),
            "price_flt": Col.NumberColumn("Price (FLT)", format="%.2f"),
            "sales": Col.NumberColumn("Sales"),
            "revenue_flt": Col.NumberColumn("Revenue (FLT)", format="%.2f"),
            "active": Col.CheckboxColumn("Active"),
            "payee_count": Col.NumberColumn("Payees"),
            "payees": Col.ListColumn("Revenue shares", width="large"),
            "encrypted_cid": Col.TextColumn("Encrypted model CID"),
        },
    )
