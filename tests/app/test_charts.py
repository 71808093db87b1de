"""The app's charts (app/ui.py) are Vega-Lite specs written out, not Altair charts built on
every render (see ui.py). These tests draw each one next to the chart it replaces (the Altair
chart through ``st.altair_chart``, the sales chart through ``st.bar_chart``) and check that
the browser gets the same chart: the same spec, the same data, the same options."""

from __future__ import annotations

import json

import pyarrow as pa
from streamlit.testing.v1 import AppTest


def charts_side_by_side() -> None:
    import sys

    import altair as alt
    import pandas as pd
    import streamlit as st

    from harness import REPO

    sys.path.insert(0, str(REPO / "app"))
    import ui

    rounds = pd.DataFrame({"round": [1, 2, 3], "validation": [0.61, 0.7, 0.83],
                           "contributors": [["0xa…1"], ["0xb…2", "0xc…3"], []]})
    st.altair_chart(alt.Chart(rounds).mark_line(point=True).encode(
        x=alt.X("round:Q", title="Round", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("validation:Q", title="Validation accuracy", scale=alt.Scale(zero=False)),
        tooltip=["round:Q", alt.Tooltip("validation:Q", format=".4f")],
    ).properties(height=260), alt="Validation accuracy per round")
    ui.accuracy_chart(rounds, "accuracy")

    people = pd.DataFrame({"participant": ["0xAbC0000000000000000000000000000000000001",
                                           "0xdef0000000000000000000000000000000000002"],
                           "label": ["0xAbC0…0001", "0xdef0…0002"],
                           "reputation_pct": [71.25, 0.0], "earned": [3.5, 0.0],
                           "standing": ["in good standing", "blacklisted"]})
    colors = ui.STANDING_COLORS
    st.altair_chart(alt.Chart(people).mark_bar().encode(
        x=alt.X("reputation_pct:Q", title="Reputation (%)", scale=alt.Scale(domain=[0, 100]),
                axis=alt.Axis(values=list(range(0, 101, 10)))),
        y=alt.Y("label:N", title=None, sort="-x"),
        color=alt.Color("standing:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=list(colors), range=list(colors.values()))),
        tooltip=[alt.Tooltip("participant:N", title="Participant"),
                 alt.Tooltip("reputation_pct:Q", title="Reputation (%)", format=".2f")],
    ).properties(height=alt.Step(22)), alt="Reputation by participant")
    ui.reputation_chart(people)

    steps = pd.DataFrame({"label": ["0xAbC0…0001", "0xAbC0…0001", "0xdef0…0002"],
                          "block": [10, 55, 12], "task": [None, 1, None],
                          "round": [None, 2, None], "reputation_pct": [50.0, 71.25, 50.0]})
    st.altair_chart(alt.Chart(steps).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("block:Q", title="Block"),
        y=alt.Y("reputation_pct:Q", title="Reputation (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("label:N", title="Participant"),
        tooltip=["label:N", "task:Q", "round:Q", "reputation_pct:Q", "block:Q"],
    ).properties(height=320), alt="Reputation history")
    ui.history_chart(steps)

    models = pd.DataFrame({"model_id": [3, 7, 9], "title": ["a", "b", "c"],
                           "sales": [2, 0, 5], "price": [1.5, 2.0, 3.0]})
    st.bar_chart(models.set_index("model_id")[["sales"]], x_label="Model", y_label="Sales",
                 height=240)
    ui.sales_chart(models)


def comparable(chart) -> dict:
    """What the browser gets for a chart, with dataset and parameter names (content hashes,
    "table", Altair's counter) replaced by their order, and the datasets as Arrow tables."""
    proto = chart.proto
    names = {d.name: f"dataset {i}" for i, d in enumerate(proto.datasets)}
    spec = json.loads(proto.spec)
    data = spec.get("data", {})
    if data.get("name") in names:
        spec["data"] = {"name": names[data["name"]]}
    for i, param in enumerate(spec.get("params", [])):  # Altair numbers them per process
        param["name"] = f"param {i}"
    return {"spec": spec, "alt": proto.alt, "theme": proto.theme,
            "use_container_width": proto.use_container_width,
            "data": proto.data.data,
            "datasets": [(names[d.name], pa.ipc.open_stream(d.data.data).read_all())
                         for d in proto.datasets]}


def test_the_charts_are_the_ones_altair_and_st_bar_chart_draw():
    at = AppTest.from_function(charts_side_by_side, default_timeout=90).run()
    assert not at.exception, at.exception
    charts = at.get("vega_lite_chart")
    assert len(charts) == 8
    for before, after in zip(charts[::2], charts[1::2], strict=True):
        old, new = comparable(before), comparable(after)
        assert new["spec"] == old["spec"]
        assert [n for n, _ in new["datasets"]] == [n for n, _ in old["datasets"]]
        for (_, table_new), (_, table_old) in zip(new["datasets"], old["datasets"],
                                                  strict=True):
            assert table_new.equals(table_old), (table_new, table_old)
        assert (new["alt"], new["theme"], new["use_container_width"], new["data"]) == (
            old["alt"], old["theme"], old["use_container_width"], old["data"])
