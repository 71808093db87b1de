"""Small pieces shared by the pages: the sidebar, the chain header, the "no chain" notice."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import chain_data as data


def sidebar(source: data.ChainSource) -> None:
    """Which chain the app reads, and a button to read it again now."""
    with st.sidebar:
        st.caption("Chain")
        st.code(source.network, language=None)
        st.caption(f"Deployment record: `{source.deployment_file}`")
        st.button(
            "Refresh now", icon=":material/refresh:", width="stretch", on_click=data.clear_cache
        )
        st.caption(f"Chain reads are cached for {data.TTL_SECONDS} s.")


def unavailable(err: data.ChainUnavailable) -> None:
    """The friendly notice shown instead of a page when the chain cannot be read."""
    st.error(err.title, icon=":material/link_off:")
    st.info(err.hint, icon=":material/terminal:")
    if err.detail:
        with st.expander("Details"):
            st.code(err.detail, language=None, wrap_lines=True)
    st.button("Try again", icon=":material/refresh:", on_click=data.clear_cache)


def chain_header(info: data.ChainInfo) -> None:
    """Network, height and totals, with the contract addresses folded away."""
    where = f" · {info.rpc_url}" if info.rpc_url and info.rpc_url != info.network else ""
    st.caption(f"**{info.network}**{where} · chain id {info.chain_id}")
    cols = st.columns(5)
    cols[0].metric("Block height", f"{info.block:,}")
    cols[1].metric("Tasks", info.task_count)
    cols[2].metric("Participants", info.participant_count)
    cols[3].metric("Models listed", info.model_count)
    cols[4].metric("FLT supply", f"{info.flt_supply:,.2f}")
    with st.expander("Contracts"):
        st.dataframe(
            [{"contract": name, "address": address} for name, address in info.contracts.items()],
            hide_index=True,
            alt="Contract addresses",
        )
        st.caption(
            f"Deployed by `{info.deployer}` at block {info.deployed_at_block}; "
            f"record `{info.deployment_file}`."
        )


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
            y=alt.Y("label:N", title=None, sort=None),
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
        .properties(height=alt.Step(28))
    )
    st.altair_chart(chart, alt="Reputation by participant")
