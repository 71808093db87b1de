"""Every page of the app against the story's real chain, in-process (streamlit AppTest).

The expected values come from the chain through the typed client (contract storage, not the
events the pages read) or from the story, never from the app's own readers. The wallet's JS
does not run in AppTest: these tests cover what the pages show; test_market_browser.py
covers buying in Chromium.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fl_agent.chain.node import free_port
from fl_agent.chain.records import RoundResult
from harness import APP_MAIN, ChainUnderTest, rpc

#: ape's first import and connection take a few seconds; later runs are quick.
TIMEOUT = 90


def table(at: AppTest, alt: str) -> pd.DataFrame:
    """The dataframe named ``alt`` (its accessible name on the page)."""
    names = [df.proto.alt for df in at.dataframe]
    assert alt in names, f"no table {alt!r} on the page; tables: {names}"
    return at.dataframe[names.index(alt)].value


def text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.caption, *at.info, *at.error,
                                            *at.warning, *at.success, *at.title])


def open_page(path: str, *, account: str | None = None, signed_in: bool = False,
              **query: str) -> AppTest:
    """Runs the app on ``path``; ``account`` is what the wallet component reports (its JS
    does not run in AppTest), ``signed_in`` as after Sign-In with Ethereum."""
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
    at.switch_page(path)
    for key, value in query.items():
        at.query_params[key] = value
    if account is not None:
        at.session_state["wallet"] = {"status": {"available": True, "account": account,
                                                 "chain_id": 31337, "mode": "injected"}}
    if signed_in:
        at.session_state["signed_in_account"] = account
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture(scope="module")
def chain_state(test_chain: ChainUnderTest):
    """What the contracts store, read through the typed client (the tests' oracle)."""
    from ape import networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment

    with networks.parse_network_choice(test_chain.url):
        fairfl = FairFL(load_deployment(test_chain.url, test_chain.deployments))
        story = test_chain.story
        listing = fairfl.marketplace.listing(story.model_id)
        return {
            "listing": listing,
            "task": fairfl.ledger.task(story.completed_task),
            "open_task": fairfl.ledger.task(story.open_task),
            "rounds": fairfl.ledger.rounds(story.completed_task),
            "people": {p.address: p for p in fairfl.registry.participants()},
            "finalized": [fairfl.ledger.events("RoundFinalized", taskId=story.completed_task,
                                               round=r)[-1]
                          for r in range(1, fairfl.ledger.task(story.completed_task).rounds + 1)],
        }


def test_models_page_lists_the_model_with_its_figures(app_env, test_chain, chain_state):
    story, listing = test_chain.story, chain_state["listing"]
    at = open_page("app_pages/models.py")
    assert at.title[0].value == "Models for sale"
    models = table(at, "Models for sale").set_index("model_id")
    row = models.loc[story.model_id]
    assert row["price"] == pytest.approx(listing.price / 10**18) == pytest.approx(50.0)
    assert (row["sales"], row["task_id"], row["status"]) == (listing.sales, story.completed_task,
                                                             "for sale")
    assert row["dataset"] == "digits" and row["architecture"] == "mlp"
    assert row["contributors"] == len(story.earned)
    assert row["score"] == pytest.approx(story.validation) and 0 < row["score"] <= 1.0
    assert row["link"] == f"model?model={story.model_id}"
    earnings = table(at, "Contributors' earnings")
    assert set(earnings["contributor"]) == set(story.earned)


def test_models_page_search_and_filters(app_env, test_chain):
    at = open_page("app_pages/models.py")
    at.text_input[0].input("cifar").run()
    assert table(at, "Models for sale").empty
    at.text_input[0].input("digits").run()
    assert len(table(at, "Models for sale")) == 1
    at.selectbox[0].select("lowest price").run()
    assert not at.exception


def test_model_page_shows_lineage_payees_and_the_buy_button(app_env, test_chain, chain_state):
    story, state = test_chain.story, chain_state
    at = open_page("app_pages/model.py", model=str(story.model_id))
    lineage = table(at, f"Lineage of model {story.model_id}").set_index("round")
    assert list(lineage.index) == [r.round for r in state["rounds"]]
    assert list(lineage["status"]) == ["finalized"] * len(state["rounds"])
    for event in state["finalized"]:
        row = lineage.loc[int(event.round)]
        result = RoundResult.from_chain(event.result)
        assert row["new_model_cid"] == result.new_model_cid
        assert list(row["contributors"]) == [f"{c[:6]}…{c[-4:]}" for c in result.contributors]
        assert row["evidence_cid"] == result.evidence_cid
        assert len(row["rejected"]) == len(result.rejected)
        assert row["gas"] > 21_000 * len(row["transactions"]) > 0
    # The attacker was rejected, with the reason from the round's evidence.
    assert any(r.startswith(f"{story.attacker[:6]}…") for r in lineage.loc[1, "rejected"])
    assert lineage["validation"].between(0, 1).all()
    assert at.get("vega_lite_chart"), "the accuracy-per-round chart"

    payees = table(at, f"Payees of model {story.model_id}").set_index("payee")
    total = sum(story.earned.values())
    for address, earned in story.earned.items():
        assert payees.loc[address, "share_pct"] == pytest.approx(100 * earned / total)
    assert story.attacker not in payees.index
    buttons = [b.label for b in at.button]
    assert "Buy for 50.00 FLT" in buttons
    assert story.encrypted_cid in text(at) or story.encrypted_cid in table(
        at, "Model description")["value"].tolist()


def test_tasks_page_shows_the_open_round_live(app_env, test_chain, chain_state):
    story = test_chain.story
    at = open_page("app_pages/tasks.py", task=str(story.open_task))
    tasks = table(at, "Tasks").set_index("task_id")
    assert tasks.loc[story.completed_task, "status"] == "completed"
    assert tasks.loc[story.open_task, "round"] == "1/3"
    assert "Round 1 is open: 1 of 2 participants submitted" in text(at)
    submissions = table(at, "Submissions of round 1")
    assert list(submissions["participant"]) == [story.open_members[0]]
    members = table(at, f"Participants of task {story.open_task}")
    assert list(members["participant"]) == list(story.open_members)
    assert list(members["submitted"]) == [1, 0]


def test_tasks_page_lists_the_rejections_of_a_task(app_env, test_chain, chain_state):
    story = test_chain.story
    at = open_page("app_pages/tasks.py", task=str(story.completed_task))
    rejected = table(at, f"Rejections in task {story.completed_task}")
    expected = [(int(e.round), a) for e in chain_state["finalized"]
                for a in RoundResult.from_chain(e.result).rejected]
    assert list(zip(rejected["round"], rejected["participant"], strict=True)) == expected
    assert set(rejected["reason"]) <= {"validation", "dissimilar", "noise", "free_rider",
                                       "norm_outlier", "trigger"}


def test_participants_page_leaderboard_history_and_blacklist(app_env, test_chain, chain_state):
    story, people = test_chain.story, chain_state["people"]
    at = open_page("app_pages/participants.py")
    board = table(at, "Participants").set_index("participant")
    assert set(board.index) == set(people)
    for address, p in people.items():
        assert board.loc[address, "reputation_pct"] == pytest.approx(p.reputation_bps / 100)
        assert bool(board.loc[address, "blacklisted"]) == p.blacklisted
    listed = table(at, "Blacklist").set_index("participant")
    assert story.banned in listed.index
    assert "governance evidence" in listed.loc[story.banned, "evidence"]
    assert people[story.banned].blacklisted
    labels = {c.proto.alt for c in at.get("vega_lite_chart")} if hasattr(
        at.get("vega_lite_chart")[0], "proto") else set()
    assert len(at.get("vega_lite_chart")) >= 2 or labels


def test_account_page_asks_to_connect_without_a_wallet(app_env, test_chain):
    at = open_page("app_pages/account.py")
    assert "Connect your wallet" in text(at)
    assert "Connect and sign in" in [b.label for b in at.button]


def test_account_page_shows_purchases_and_revenue_only_after_sign_in(app_env, test_chain):
    story = test_chain.story
    payee = max(story.earned, key=story.earned.get)
    connected = open_page("app_pages/account.py", account=payee)
    assert "Sign in with Ethereum" in [b.label for b in connected.button]
    assert "My revenue" not in [df.proto.alt for df in connected.dataframe]

    at = open_page("app_pages/account.py", account=payee, signed_in=True)
    revenue = table(at, "My revenue").set_index("model_id")
    total = sum(story.earned.values())
    assert revenue.loc[story.model_id, "share_pct"] == pytest.approx(
        100 * story.earned[payee] / total)
    assert revenue.loc[story.model_id, "task_id"] == story.completed_task


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
    assert len(table(at, "Models for sale")) == 1


def test_the_dev_faucet_mints_on_the_local_chain_only(app_env, test_chain, chain_state):
    import sys

    from harness import REPO

    sys.path.insert(0, str(REPO / "app"))
    import chain_data

    from fl_agent.chain.node import dev_account

    someone = dev_account(250).address
    before = int(rpc(test_chain.url, "eth_call", {
        "to": _contracts(test_chain)["FairToken"],
        "data": "0x70a08231" + "00" * 12 + someone[2:].lower()}, "latest"), 16)
    assert chain_data.dev_faucet(someone) is None
    after = int(rpc(test_chain.url, "eth_call", {
        "to": _contracts(test_chain)["FairToken"],
        "data": "0x70a08231" + "00" * 12 + someone[2:].lower()}, "latest"), 16)
    assert after - before == 1_000 * 10**18
    assert int(rpc(test_chain.url, "eth_getBalance", someone, "latest"), 16) >= 10**18


def _contracts(test_chain: ChainUnderTest) -> dict[str, str]:
    from fl_agent.chain.deployment import load_deployment

    return load_deployment(test_chain.url, test_chain.deployments).contracts


@pytest.mark.parametrize("title", [
    "[Claim your refund](http://e.vil/phish) ![x](http://e.vil/t.png)",
    "**urgent** <img src=x> `code` # not a heading",
    "plain title v1.2 (digits, 3 rounds)",
])
def test_a_sellers_title_is_shown_as_text_not_markdown(title):
    import sys

    from markdown_it import MarkdownIt

    from harness import REPO

    sys.path.insert(0, str(REPO / "app"))
    import ui

    html = MarkdownIt("commonmark").render(ui.plain(title))
    assert "<a " not in html and "<img" not in html and "<strong>" not in html
    assert "<code>" not in html and "<h1>" not in html
    text = html.removeprefix("<p>").removesuffix("</p>\n")
    import html as html_module

    assert html_module.unescape(text) == title
