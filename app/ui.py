"""Small pieces shared by the pages: the sidebar, the chain header, formatting, charts and
the "no chain" notice."""

from __future__ import annotations

import re

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


def reputation_chart(people: pd.DataFrame) -> None:
    """Horizontal bars of reputation on a 0-100 % scale, blacklisted participants in red."""
    chart = (
        alt.Chart(people)
        .mark_bar()
        .encode(
            x=alt.X(
                "reputation_pct:Q",
                title="Reputation (%)",
                scale=alt.Scale(domain=[0, 100]),
                axis=alt.Axis(values=list(range(0, 101, 10))),
            ),
            y=alt.Y("label:N", title=None, sort="-x"),
            color=alt.Color(
                "standing:N",
                title=None,
                legend=alt.Legend(orient="top"),
                scale=alt.Scale(domain=list(STANDING_COLORS), range=list(STANDING_COLORS.values())),
            ),
            tooltip=[
                alt.Tooltip("participant:N", title="Participant"),
                alt.Tooltip("reputation_pct:Q", title="Reputation (%)", format=".2f"),
            ],
        )
        .properties(height=alt.Step(22))
    )
    st.altair_chart(chart, alt="Reputation by participant")


def history_chart(steps: pd.DataFrame) -> None:
    """Reputation over blocks, one line per participant."""
    chart = (
        alt.Chart(steps)
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X("block:Q", title="Block"),
            y=alt.Y("reputation_pct:Q", title="Reputation (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("label:N", title="Participant"),
            tooltip=["label:N", "task:Q", "round:Q", "reputation_pct:Q", "block:Q"],
        )
        .properties(height=320)
    )
    st.altair_chart(chart, alt="Reputation history")


def accuracy_chart(rounds: pd.DataFrame, metric: str) -> None:
    """The task metric on the aggregator's validation split, per round."""
    chart = (
        alt.Chart(rounds)
        .mark_line(point=True)
        .encode(
            x=alt.X("round:Q", title="Round", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("validation:Q", title=f"Validation {metric}", scale=alt.Scale(zero=False)),
            tooltip=["round:Q", alt.Tooltip("validation:Q", format=".4f")],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, alt=f"Validation {metric} per round")
