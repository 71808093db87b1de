"""One model: what it is and where it came from (every round of its task, from the chain),
who is paid when it sells, and the buy button."""

from __future__ import annotations

import streamlit as st

import chain_data as data
import page_tables as tables
import ui
import wallet_panels as panels

Col = st.column_config
source = data.ChainSource.from_settings()
info = data.chain_info(source)
views = data.views(source)

if not views.listings:
    st.title("Model detail")
    st.info("No model is listed yet.", icon=":material/info:")
    st.stop()

st.title("Model detail")
ids = sorted(views.listings)
asked = st.query_params.get("model")
default = int(asked) if asked and asked.isdigit() and int(asked) in views.listings else ids[-1]
model_id = st.selectbox("Model", ids, index=ids.index(default), key="model_choice",
                        format_func=lambda i: f"Model {i} · task {views.listings[i].task_id}")
st.query_params["model"] = str(model_id)
listing = views.listings[model_id]
task = views.tasks[listing.task_id]
meta = data.listing_metadata(listing.metadata_cid)

st.header(ui.plain(meta.title) if meta else f"Model {model_id}", divider="gray")
ui.chain_header(info)
main, side = st.columns([2, 1], gap="large")

with side:
    with st.container(border=True):
        st.subheader("Buy")
        panels.buy_panel(source, info, listing, meta.title if meta else "")

with main:
    cols = st.columns(4)
    cols[0].metric(f"Price ({info.payment_symbol})", f"{info.amount(listing.price):,.2f}")
    cols[1].metric(meta.metric.capitalize() if meta else "Score",
                   f"{meta.accuracy:.4f}" if meta and meta.accuracy is not None else "–",
                   help="the task metric on the aggregator's validation split, last round")
    cols[2].metric("Sales", listing.sales)
    cols[3].metric("Contributors", len(task.earned))
    if not listing.active:
        st.warning("This model was delisted: it cannot be bought any more. Past buyers "
                   "keep their access.", icon=":material/block:")
    described = [("Task", f"{task.task_id} ({task.status}, {task.current_round}/"
                          f"{task.rounds_planned} rounds)"),
                 ("Seller", listing.seller),
                 ("Encrypted weights (CID)", listing.encrypted_cid),
                 ("Metadata (CID)", listing.metadata_cid),
                 ("Plaintext SHA-256", listing.plaintext_hash)]
    if meta is not None:
        described[1:1] = [("Dataset / architecture", f"{meta.dataset} / {meta.model.name}"),
                          ("License", meta.license)]
    st.dataframe([{"": k, "value": v} for k, v in described], hide_index=True,
                 alt="Model description",
                 column_config={"": Col.TextColumn(width="medium"),
                                "value": Col.TextColumn("", width="large")})

st.header("Lineage")
st.caption("Every round of the task, read from the ledger's events: the global model it "
           "started from, the model it produced, who was aggregated, who was rejected and "
           "why (the aggregator's evidence document), its transactions and their gas.")
gas = data.gas_used(source, tuple(tx for r in task.rounds for tx in r.transactions))
lineage = tables.lineage(views, info, task.task_id, gas)
if lineage["validation"].notna().any():
    ui.accuracy_chart(lineage.dropna(subset=["validation"]), task.metric)
st.dataframe(lineage, hide_index=True, alt=f"Lineage of model {model_id}", placeholder="–",
             column_config=ui.lineage_columns(task.metric))

st.header("Who is paid")
st.caption("The task's contributors share every sale in proportion to the rewards they "
           "earned in training (read from the ledger when they withdraw).")
st.dataframe(
    tables.payees(views, info, model_id), hide_index=True, alt=f"Payees of model {model_id}",
    column_config={
        "payee": Col.TextColumn("Payee"),
        "share_pct": Col.ProgressColumn("Share", format="%.2f%%", min_value=0, max_value=100),
        "earned_in_task": Col.NumberColumn("Earned in training", format="%.4f"),
        "revenue": Col.NumberColumn(f"Revenue ({info.payment_symbol})", format="%.4f"),
        "withdrawn": Col.NumberColumn("Withdrawn", format="%.4f"),
    },
)

st.header("Ownership watermarks")
marks = tables.watermarks(views, info, model_id)
if marks.empty:
    st.caption("No member has claimed that this model carries its ownership watermark "
               "(members of tasks trained with watermarks claim theirs with `fl-agent "
               "watermark claim` once the task is complete).")
else:
    st.caption("Members who claimed that this model carries their watermark, each revealing "
               "its key. Checked here: the key is the one the member committed on chain "
               "before round 1, of the task's kind, and the member had updates accepted. The "
               "bits are the claimant's word until you re-check them on the weights you "
               f"bought: `fl-agent market show {model_id} --model model.safetensors`.")
    st.dataframe(marks, hide_index=True, alt=f"Watermark claims on model {model_id}",
                 column_config={
                     "claimant": Col.TextColumn("Claimant"),
                     "check": Col.TextColumn("Check"),
                     "bits": Col.TextColumn("Bits matched (claimed)"),
                     "chance_without": Col.NumberColumn(
                         "Chance without the watermark", format="%.1e",
                         help="the chance that a model without this watermark matches as "
                              "many bits"),
                     "claim_cid": Col.TextColumn("Claim document (CID)"),
                 })
