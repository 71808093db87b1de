"""Small pieces shared by the pages: the sidebar, the chain header, formatting, charts and
the "no chain" notice."""

from __future__ import annotations

import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import chain_data as data

Col = st.column_config


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """``text`` shown as it is where Streamlit renders Markdown: a seller's title cannot
    add links, images or formatting next to the Buy button."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))


def short(address: str) -> str:
    """``0xf39Fd6e5…92266`` → ``0xf39F…2266``, for labels."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def sidebar(source: data.ChainSource) -> None:
    """Which chain the app reads, and a button to read it again now."""
    with st.sidebar:
        st.caption("Chain")
        st.code(source.network, language=None)
        st.caption(f"Deployment record: `{source.deployment_file}`")
        st.button(
            "Refresh now", icon=":material/refresh:", width="stretch", on_click=data.clear_cache
        )
        st.caption(f"History is indexed as blocks arrive; balances are cached for "
                   f"{data.TTL_SECONDS} s.")


def unavailable(err: data.ChainUnavailable) -> None:
    """The friendly notice shown instead of a page when the chain cannot be read."""
    st.error(err.title, icon=":material/link_off:")
    st.info(err.hint, icon=":material/terminal:")
    if err.detail:
        with st.expander("Details"):
            st.code(err.detail, language=None, wrap_lines=True)
    st.button("Try again", icon=":material/refresh:", on_click=data.clear_cache)


def chain_header(info: data.ChainInfo) -> None:
    """Network, height and contracts, in one line with the addresses folded away."""
    where = f" · {info.rpc_url}" if info.rpc_url and info.rpc_url != info.network else ""
    st.caption(f"**{info.network}**{where} · chain id {info.chain_id} · block "
               f"{info.block:,} · payments in {info.payment_symbol}")
    with st.expander("Contracts"):
        rows = [{"contract": name, "address": address}
                for name, address in info.contracts.items()]
        rows.append({"contract": f"payment token ({info.payment_symbol})",
                     "address": info.payment_token})
        st.dataframe(rows, hide_index=True, alt="Contract addresses")
        st.caption(
            f"Deployed by `{info.deployer}` at block {info.deployed_at_block}; "
            f"record `{info.deployment_file}`. A buyer's key is due within "
            f"{info.delivery_window:,} blocks of the purchase, else the buyer is refunded."
        )


def page(title: str) -> tuple[data.ChainSource, data.ChainInfo, data.Views]:
    """A page's start: its title, the chain it reads (in one line) and the indexed history."""
    source = data.ChainSource.from_settings()
    st.title(title)
    info = data.chain_info(source)
    chain_header(info)
    return source, info, data.views(source)


def lineage_columns(metric: str) -> dict[str, object]:
    """Column names of a task's rounds (:func:`rows.lineage`), for the model and task pages."""
    return {
        "round": Col.NumberColumn("Round", format="%d"),
        "status": Col.TextColumn("Status"),
        "global_model_cid": Col.TextColumn("Started from (CID)"),
        "new_model_cid": Col.TextColumn("Produced (CID)"),
        "submissions": Col.NumberColumn("Updates"),
        "contributors": Col.ListColumn("Aggregated", width="medium",
                                       help="the senders whose updates made the new model"),
        "rejected": Col.ListColumn("Rejected (reason)", width="medium"),
        "validation": Col.NumberColumn(f"Validation {metric}", format="%.4f"),
        "transactions": Col.ListColumn("Transactions", width="medium",
                                       help="startRound, every submitUpdate, finalizeRound"),
        "gas": Col.NumberColumn("Gas", format="%d"),
        "start_block": Col.NumberColumn("Start block", format="%d"),
        "finalized_block": Col.NumberColumn("Finalized block", format="%d"),
        "evidence_cid": Col.TextColumn("Evidence (CID)"),
    }


def money(info: data.ChainInfo, base_units: int) -> str:
    return f"{info.amount(base_units):,.2f} {info.payment_symbol}"


STANDING_COLORS = {"in good standing": "#4e79a7", "blacklisted": "#c53948"}

# The charts are Vega-Lite specs written out: what Altair writes for the same chart, field for
# field (tests/app/test_charts.py compares them with Altair's and with st.bar_chart's). Building
# an Altair chart validates every channel against the JSON schema and converting it validates
# the whole chart again: tens of CPU milliseconds per chart and render, under the interpreter
# lock that every session shares; a dict costs nothing.


def _chart(frame: pd.DataFrame, spec: dict[str, Any], alt_text: str) -> None:
    """Draws ``spec`` over ``frame`` (passed as a named dataset, as st.altair_chart does)."""
    st.vega_lite_chart(spec={"data": {"name": "table"}, **spec, "$schema": alt.SCHEMA_URL,
                             "datasets": {"table": frame}}, alt=alt_text)


def _q(field: str, **more: Any) -> dict[str, Any]:
    """A quantitative channel (keys in Altair's order: sorted)."""
    return dict(sorted({"field": field, **more, "type": "quantitative"}.items()))


def _n(field: str, **more: Any) -> dict[str, Any]:
    """A nominal channel."""
    return dict(sorted({"field": field, **more, "type": "nominal"}.items()))


def reputation_chart(people: pd.DataFrame) -> None:
    """Horizontal bars of reputation on a 0-100 % scale, blacklisted participants in red."""
    _chart(people, {
        "mark": {"type": "bar"},
        "encoding": {
            "color": _n("standing", legend={"orient": "top"},
                        scale={"domain": list(STANDING_COLORS),
                               "range": list(STANDING_COLORS.values())}, title=None),
            "tooltip": [_n("participant", title="Participant"),
                        _q("reputation_pct", format=".2f", title="Reputation (%)")],
            "x": _q("reputation_pct", axis={"values": list(range(0, 101, 10))},
                    scale={"domain": [0, 100]}, title="Reputation (%)"),
            "y": _n("label", sort="-x", title=None),
        },
        "height": {"step": 22},
    }, "Reputation by participant")


def history_chart(steps: pd.DataFrame) -> None:
    """Reputation over blocks, one line per participant."""
    _chart(steps, {
        "mark": {"type": "line", "interpolate": "step-after", "point": True},
        "encoding": {
            "color": _n("label", title="Participant"),
            "tooltip": [_n("label"), _q("task"), _q("round"), _q("reputation_pct"),
                        _q("block")],
            "x": _q("block", title="Block"),
            "y": _q("reputation_pct", scale={"domain": [0, 100]}, title="Reputation (%)"),
        },
        "height": 320,
    }, "Reputation history")


def accuracy_chart(rounds: pd.DataFrame, metric: str) -> None:
    """The task metric on the aggregator's validation split, per round."""
    _chart(rounds, {
        "mark": {"type": "line", "point": True},
        "encoding": {
            "tooltip": [_q("round"), _q("validation", format=".4f")],
            "x": _q("round", axis={"format": "d", "tickMinStep": 1}, title="Round"),
            "y": _q("validation", scale={"zero": False}, title=f"Validation {metric}"),
        },
        "height": 260,
    }, f"Validation {metric} per round")


def sales_chart(models: pd.DataFrame) -> None:
    """Sales per model: the chart ``st.bar_chart(models.set_index("model_id")[["sales"]],
    x_label="Model", y_label="Sales", height=240)`` draws."""
    st.vega_lite_chart(spec={
        "data": {"name": "table"},
        "mark": {"type": "bar"},
        "encoding": {
            "tooltip": [_q("model_id"), _q("sales")],
            "x": {"axis": {"grid": False, "tickMinStep": 1}, "field": "model_id", "scale": {},
                  "title": "Model", "type": "ordinal"},
            "y": _q("sales", axis={"grid": True, "tickMinStep": 1}, scale={}, title="Sales"),
        },
        "height": 240,
        "params": [{"name": "param_1", "select": {"type": "interval", "encodings": ["x", "y"]},
                    "bind": "scales"}],
        "width": 0,
        "$schema": alt.SCHEMA_URL,
        "datasets": {"table": models[["model_id", "sales"]].reset_index(drop=True)},
    }, height=240)
