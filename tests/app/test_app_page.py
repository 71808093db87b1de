"""The ledger page against a real chain: in-process (AppTest) and in a real browser.

Run with ``python -m pytest tests/app -q`` (see conftest.py for the chain they read).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fl_agent.chain.node import free_port
from harness import APP_MAIN, ChainUnderTest, rpc

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: ape's first import and connection take a few seconds; later runs are quick.
TIMEOUT = 60


def table(at: AppTest, alt: str) -> pd.DataFrame:
    """The dataframe named ``alt`` (its accessible name on the page)."""
    names = [df.proto.alt for df in at.dataframe]
    assert alt in names, f"no table {alt!r} on the page; tables: {names}"
    return at.dataframe[names.index(alt)].value


def page_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.error])


# --------------------------------------------------------------------------------------------
# In-process: streamlit.testing AppTest
# --------------------------------------------------------------------------------------------


def test_ledger_page_shows_the_chain(app_env: dict, test_chain: ChainUnderTest) -> None:
    story = test_chain.story
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run()

    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "FairFL ledger"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tasks"] == "2"
    assert metrics["Participants"] == "4"
    assert metrics["Models listed"] == "1"
    assert int(metrics["Block height"].replace(",", "")) > 30
    assert test_chain.url in page_text(at)

    contracts = table(at, "Contract addresses")
    assert list(contracts["contract"]) == ["FairToken", "ParticipantRegistry", "TaskLedger",
                                           "ModelMarketplace"]

    tasks = table(at, "Tasks").set_index("task_id")
    done, running = tasks.loc[story.completed_task], tasks.loc[story.open_task]
    assert (done["status"], done["round"], done["mode"], done["metric"]) == (
        "completed", "2/2", "dp", "accuracy")
    assert done["participants"] == 3
    assert done["global_model_cid"] == story.final_model_cid
    assert (running["status"], running["round"], running["mode"], running["metric"]) == (
        "open", "1/3", "plain", "f1_macro")

    # The task selector defaults to the first task: its two finalized rounds and members.
    rounds = table(at, f"Rounds of task {story.completed_task}")
    assert list(rounds["round"]) == [1, 2]
    assert list(rounds["status"]) == ["finalized", "finalized"]
    assert list(rounds["submissions"]) == [3, 3]
    assert rounds["finalized_block"].notna().all()
    members = table(at, f"Participants of task {story.completed_task}").set_index("participant")
    assert list(members.index) == list(story.trainers)
    assert list(members["accepted_rounds"]) == [2, 2, 1]
    assert list(members["rejected_rounds"]) == [0, 0, 1]
    assert list(members["earned_flt"]) == pytest.approx(list(story.earned_flt))
    assert sum(story.earned_flt) == pytest.approx(done["flt_rewarded"])

    people = table(at, "Participants").set_index("participant")
    addresses = [*story.trainers, story.banned]
    assert list(people.index) == addresses
    assert list(people["reputation_pct"]) == pytest.approx(list(story.reputation_pct))
    assert list(people["blacklisted"]) == [False, False, False, True]
    assert list(people["rejected"]) == [0, 0, 1, 0]
    assert list(people["flt_balance"]) == pytest.approx(list(story.flt_balance))
    assert len(at.get("vega_lite_chart")) == 1  # the reputation bar chart

    models = table(at, "Models for sale").set_index("model_id")
    model = models.loc[story.model_id]
    assert model["task_id"] == story.completed_task
    assert model["price_flt"] == pytest.approx(250.0)
    assert (model["sales"], model["active"], model["payee_count"]) == (1, True, 3)
    assert model["revenue_flt"] == pytest.approx(250.0)
    assert list(model["payees"]) == [f"{a[:6]}…{a[-4:]} · {s:g}%"
                                     for a, s in zip(story.trainers, story.shares_pct,
                                                     strict=True)]


def test_task_selector_shows_the_open_task(app_env: dict, test_chain: ChainUnderTest) -> None:
    story = test_chain.story
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run()
    at.selectbox[0].select(story.open_task).run()

    assert not at.exception, at.exception
    rounds = table(at, f"Rounds of task {story.open_task}")
    assert list(rounds["status"]) == ["open"]
    assert list(rounds["submissions"]) == [1]
    assert rounds["finalized_block"].isna().all()
    members = table(at, f"Participants of task {story.open_task}")
    assert list(members["participant"]) == list(story.trainers[:2])
    assert list(members["last_submitted_round"]) == [1, 0]


def test_unreachable_chain_says_what_to_run(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("FAIRFL_NETWORK", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FAIRFL_DEPLOYMENTS", str(tmp_path))
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run()

    assert not at.exception, at.exception
    assert "Cannot reach the chain" in at.error[0].value
    assert "Start the chain with `make chain` and deploy with `make deploy`" in at.info[0].value
    assert not at.dataframe


def test_missing_deployment_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             test_chain: ChainUnderTest) -> None:
    monkeypatch.setenv("FAIRFL_NETWORK", test_chain.url)
    monkeypatch.setenv("FAIRFL_DEPLOYMENTS", str(tmp_path / "empty"))
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run()

    assert not at.exception, at.exception
    assert "No FairFL deployment" in at.error[0].value
    assert "make deploy" in at.info[0].value
    assert not at.dataframe


def test_contracts_gone_under_a_running_app(app_env: dict, test_chain: ChainUnderTest) -> None:
    """The chain was reset while the app ran (its client is cached): once the cached reads
    expire the page says to deploy again, and it recovers when the contracts are back."""
    from fl_agent.chain.deployment import load_deployment

    assert not AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run().error
    addresses = load_deployment(test_chain.url, test_chain.deployments).contracts.values()
    snapshot = rpc(test_chain.url, "evm_snapshot")
    try:
        for address in addresses:
            rpc(test_chain.url, "anvil_setCode", address, "0x")
        st.cache_data.clear()  # what the 5 s TTL (or "Refresh now") does
        at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run()

        assert not at.exception, at.exception
        assert "not on this chain" in at.error[0].value
        assert "make deploy" in at.info[0].value
        assert not at.dataframe
    finally:
        rpc(test_chain.url, "evm_revert", snapshot)
        st.cache_data.clear()
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT).run()
    assert not at.error
    assert table(at, "Tasks").shape[0] == 2


# --------------------------------------------------------------------------------------------
# A real browser: Debian's Chromium through playwright
# --------------------------------------------------------------------------------------------


def test_ledger_page_in_a_browser(streamlit_server: str, test_chain: ChainUnderTest,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    if not CHROMIUM.exists():
        message = "no /usr/bin/chromium; install it with `apt-get install -y chromium`"
        if os.environ.get("FAIRFL_WITH_BROWSER") == "1":  # `make test` installs it: must run
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    story = test_chain.story
    shot = tmp_path_factory.mktemp("screenshots") / "ledger.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1600})
            page.goto(streamlit_server, wait_until="domcontentloaded")

            # st.dataframe draws on a canvas; its cells are also in an accessible table
            # inside the region named after the dataframe's `alt`.
            tasks = page.get_by_role("region", name="Tasks", exact=True)
            expect(tasks).to_contain_text("accuracy", timeout=45_000)
            expect(tasks).to_contain_text(story.final_model_cid)
            expect(page.get_by_role("region", name="Participants", exact=True)).to_contain_text(
                story.trainers[0])
            models = page.get_by_role("region", name="Models for sale", exact=True)
            expect(models).to_contain_text("250")
            expect(page.get_by_role("heading", name="FairFL ledger")).to_be_visible()
            expect(page.get_by_label("Reputation by participant", exact=True)).to_be_visible()
            expect(page.get_by_text("Cannot reach the chain")).to_have_count(0)

            # New blocks show up after "Refresh now" (reads are otherwise cached for 5 s).
            height = page.get_by_test_id("stMetricValue").first
            expect(height).to_have_text(f"{int(rpc(test_chain.url, 'eth_blockNumber'), 16):,}")
            rpc(test_chain.url, "anvil_mine", "0x3")
            page.get_by_role("button", name="Refresh now").click()
            expect(height).to_have_text(f"{int(rpc(test_chain.url, 'eth_blockNumber'), 16):,}")
            expect(tasks).to_contain_text("accuracy")
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)  # run finished
            page.wait_for_timeout(300)  # let the chart finish drawing
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
