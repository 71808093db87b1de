"""Models for sale: every listing with its task, score, price and sales; search, filter and
sort; and what each contributor earned across models."""

from __future__ import annotations

import streamlit as st

import page_tables as tables
import ui

Col = st.column_config
source, info, views = ui.page("Models for sale")
models = tables.models(views, info)

cols = st.columns(4)
cols[0].metric("Models listed", len(models))
cols[1].metric("Sales", int(models["sales"].sum()) if len(models) else 0)
cols[2].metric(f"Revenue ({info.payment_symbol})",
               f"{models['revenue'].sum():,.2f}" if len(models) else "0")
cols[3].metric("Tasks trained", len(views.tasks))

if models.empty:
    st.info("No model is listed yet. A task's creator lists its final model with "
            "`fl-agent market list --task N --price P` (`make demo` lists one).",
            icon=":material/info:")
    st.stop()

search, datasets, sort, only_for_sale = st.columns([3, 2, 2, 1.4], vertical_alignment="bottom")
query = search.text_input("Search", placeholder="title, dataset, architecture or task id")
chosen = datasets.multiselect("Dataset", sorted(d for d in models["dataset"].unique() if d))
order = sort.selectbox("Sort by", ["newest", "best score", "most sales", "lowest price"])
for_sale = only_for_sale.toggle("For sale only", value=True)

shown = models
if query:
    text = (shown["title"] + " " + shown["dataset"] + " " + shown["architecture"] + " task "
            + shown["task_id"].astype(str)).str.lower()
    shown = shown[text.str.contains(query.lower(), regex=False)]
if chosen:
    shown = shown[shown["dataset"].isin(chosen)]
if for_sale:
    shown = shown[shown["status"] == "for sale"]
by = {"newest": ("listed_block", False), "best score": ("score", False),
      "most sales": ("sales", False), "lowest price": ("price", True)}[order]
shown = shown.sort_values(by[0], ascending=by[1], na_position="last")

st.dataframe(
    shown,
    hide_index=True,
    alt="Models for sale",
    placeholder="–",
    column_order=["link", "title", "dataset", "architecture", "metric", "score", "price",
                  "sales", "pending", "contributors", "rounds", "task_id", "status"],
    column_config={
        "link": Col.LinkColumn("Model", display_text=r"model\?model=(\d+)",
                               help="Open the model's page: lineage, payees, buy"),
        "title": Col.TextColumn("Title", width="medium"),
        "dataset": Col.TextColumn("Dataset"),
        "architecture": Col.TextColumn("Architecture"),
        "metric": Col.TextColumn("Metric"),
        "score": Col.NumberColumn("Score", format="%.4f",
                                  help="the task metric on the aggregator's validation split"),
        "price": Col.NumberColumn(f"Price ({info.payment_symbol})", format="%.2f"),
        "sales": Col.NumberColumn("Sales", help="purchases whose key was delivered"),
        "pending": Col.NumberColumn("Pending", help="paid, key not delivered yet (escrow)"),
        "contributors": Col.NumberColumn("Contributors", help="who share the revenue"),
        "rounds": Col.NumberColumn("Rounds"),
        "task_id": Col.NumberColumn("Task", format="%d"),
        "status": Col.TextColumn("Status"),
    },
)
st.caption(f"{len(shown)} of {len(models)} models. The price waits in escrow until the "
           "seller's key agent delivers the buyer's key; revenue goes to the task's "
           "contributors in proportion to the rewards they earned.")

left, right = st.columns(2)
with left:
    st.subheader("Sales per model")
    ui.sales_chart(models)
with right:
    st.subheader("Contributors' earnings across models")
    earnings = tables.earnings(views, info)
    st.dataframe(
        earnings, hide_index=True, alt="Contributors' earnings",
        column_config={
            "contributor": Col.TextColumn("Contributor"),
            "models": Col.NumberColumn("Models"),
            "earned": Col.NumberColumn(f"Earned ({info.payment_symbol})", format="%.4f"),
            "withdrawn": Col.NumberColumn("Withdrawn", format="%.4f"),
            "withdrawable": Col.NumberColumn("Withdrawable", format="%.4f"),
        },
    )
