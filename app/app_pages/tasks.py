"""Tasks: every task, and the live rounds of one (refreshing as blocks come), with its
participants and the updates the aggregator rejected."""

from __future__ import annotations

import streamlit as st

import chain_data as data
import page_tables as tables
import ui

Col = st.column_config
source, info, views = ui.page("Tasks")
if not views.tasks:
    st.info("No task on the ledger yet: `fl-agent task create` creates one, `make demo` runs "
            "one.", icon=":material/info:")
    st.stop()

st.dataframe(
    tables.task_list(views, info), hide_index=True, alt="Tasks",
    column_config={
        "task_id": Col.NumberColumn("Task", format="%d"),
        "status": Col.TextColumn("Status"),
        "round": Col.TextColumn("Round", help="current round / rounds"),
        "mode": Col.TextColumn("Training mode"),
        "metric": Col.TextColumn("Metric"),
        "participants": Col.NumberColumn("Participants"),
        "rewarded": Col.NumberColumn("Rewarded (FLT)", format="%.2f",
                                     help="credited to contributors; minted when they claim"),
        "created_block": Col.NumberColumn("Created at block", format="%d"),
        "global_model_cid": Col.TextColumn("Global model CID (encrypted)", width="large"),
    },
)

ids = sorted(views.tasks)
asked = st.query_params.get("task")
default = int(asked) if asked and asked.isdigit() and int(asked) in views.tasks else ids[-1]
task_id = st.selectbox("Task", ids, index=ids.index(default), key="task_choice",
                       format_func=lambda i: f"Task {i} · {views.tasks[i].metric} · "
                                             f"{views.tasks[i].status}")
st.query_params["task"] = str(task_id)


@st.fragment(run_every=2)
def live_task() -> None:
    """Re-reads the task every 2 s, so rounds and submissions appear as blocks come."""
    now = data.views(source)
    task = now.tasks[task_id]
    cols = st.columns(4)
    cols[0].metric("Round", f"{task.current_round} / {task.rounds_planned}")
    cols[1].metric("Status", task.status)
    cols[2].metric("Participants", len(task.participants))
    cols[3].metric("Block", f"{now.block:,}")
    st.caption(f"Aggregator `{task.aggregator}` · created by `{task.creator}` · window "
               f"{task.submission_window} blocks · quorum {task.min_participants}")
    if task.rounds and not task.rounds[-1].finalized:
        rnd = task.rounds[-1]
        left = max(0, rnd.deadline_block - now.block)
        st.info(f"Round {rnd.round} is open: {len(rnd.submissions)} of "
                f"{len(task.participants)} participants submitted; submissions close at "
                f"block {rnd.deadline_block} ({left} blocks from now).",
                icon=":material/hourglass_top:")
        st.dataframe(tables.submissions(now, info, task_id), hide_index=True,
                     alt=f"Submissions of round {rnd.round}",
                     column_config={
                         "participant": Col.TextColumn("Participant"),
                         "update_cid": Col.TextColumn("Update (CID, sealed to the aggregator)"),
                         "samples": Col.NumberColumn(
                             "Samples (reported)",
                             help="what the participant says it trained on; unchecked, so it "
                                  "weighs nothing in the aggregate or the pay"),
                         "training_ms": Col.NumberColumn("Training (ms)"),
                         "block": Col.NumberColumn("Block", format="%d")})
    rounds_tab, members_tab, rejected_tab = st.tabs(
        [f"Rounds ({task.current_round})", f"Participants ({len(task.participants)})",
         f"Rejections ({sum(len(r.rejected) for r in task.rounds)})"])
    with rounds_tab:
        lineage = tables.lineage(now, info, task_id)
        if lineage["validation"].notna().any():
            ui.accuracy_chart(lineage.dropna(subset=["validation"]), task.metric)
        st.dataframe(lineage.drop(columns=["gas"]), hide_index=True,
                     alt=f"Rounds of task {task_id}", placeholder="–",
                     column_config=ui.lineage_columns(task.metric))
    with members_tab:
        st.dataframe(
            tables.members(now, info, task_id), hide_index=True,
            alt=f"Participants of task {task_id}",
            column_config={
                "participant": Col.TextColumn("Participant"),
                "submitted": Col.NumberColumn("Updates sent"),
                "accepted_rounds": Col.NumberColumn("Accepted"),
                "rejected_rounds": Col.NumberColumn("Rejected"),
                "earned": Col.NumberColumn("Earned (FLT)", format="%.4f"),
                "blacklisted": Col.CheckboxColumn("Blacklisted"),
            },
        )
    with rejected_tab:
        rejected = tables.rejections(now, info, task_id)
        if rejected.empty:
            st.info("The aggregator has rejected no update of this task.")
        else:
            st.dataframe(rejected, hide_index=True, alt=f"Rejections in task {task_id}",
                         column_config={"round": Col.NumberColumn("Round", format="%d"),
                                        "participant": Col.TextColumn("Participant"),
                                        "reason": Col.TextColumn("Reason"),
                                        "evidence_cid": Col.TextColumn("Evidence (CID)"),
                                        "block": Col.NumberColumn("Block", format="%d")})


live_task()
