"""What the sessions share (app/chain_data.py, app/page_tables.py): the folded views and the
pages' tables are built once per chain state, every session and render gets the same
objects, and nothing a page does changes them."""

from __future__ import annotations

import gc
import sys

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from harness import APP_MAIN, REPO, ChainUnderTest

TIMEOUT = 90


def render_every_page(story, account: str) -> None:
    pages = [("app_pages/models.py", {}), ("app_pages/model.py", {"model": str(story.model_id)}),
             ("app_pages/tasks.py", {"task": str(story.completed_task)}),
             ("app_pages/participants.py", {}), ("app_pages/account.py", {})]
    for path, query in pages:
        at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
        at.switch_page(path)
        for key, value in query.items():
            at.query_params[key] = value
        at.session_state["wallet"] = {"status": {"available": True, "account": account,
                                                 "chain_id": 31337, "mode": "injected"}}
        at.session_state["signed_in_account"] = account
        at.run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]


def test_sessions_share_the_views_and_tables_and_pages_leave_them_as_built(
        app_env: dict, test_chain: ChainUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(REPO / "app"))
    import chain_data
    import page_tables
    import rows

    story = test_chain.story
    payee = max(story.earned, key=story.earned.get)
    source = chain_data.ChainSource.from_settings()
    for _ in range(3):  # until no event arrived while the pages rendered (a key delivered)
        before = chain_data.views(source).state
        render_every_page(story, payee)
        render_every_page(story, payee)  # a second session, or the same one again
        views = chain_data.views(source)
        if views.state == before:
            break
    assert views.state == before
    info = chain_data.chain_info(source)
    assert chain_data.views(source) is views  # shared, not a copy
    with pytest.raises(TypeError):
        views.tasks[10**6] = views.tasks[story.completed_task]  # type: ignore[index]
    assert gc.get_freeze_count() > 0  # chain_data.freeze_heap ran with the first page

    task = views.tasks[story.completed_task]
    gas = chain_data.gas_used(source, tuple(tx for r in task.rounds for tx in r.transactions))
    board = rows.leaderboard(views, info)
    wanted = {
        "models": ((), lambda: rows.models(views, info)),
        "earnings": ((), lambda: rows.earnings(views, info)),
        "payees": ((story.model_id,), lambda: rows.payees(
            views.listings[story.model_id], task, info)),
        "task_list": ((), lambda: rows.task_list(views, info)),
        "lineage": ((task.task_id, gas), lambda: rows.lineage(task, gas)),
        "members": ((task.task_id,), lambda: rows.members(task, views, info)),
        "rejections": ((task.task_id,), lambda: rows.rejections(task)),
        "leaderboard": ((), lambda: board),
        "reputation_history": ((list(board["participant"][:3]),),
                               lambda: rows.reputation_history(
                                   views, list(board["participant"][:3]))),
        "blacklist": ((), lambda: rows.blacklist(views)),
        "purchases": ((payee,), lambda: rows.purchases(views, payee, info)),
        "revenue": ((payee,), lambda: rows.revenue(views, payee, info)),
    }
    fresh = {name: build() for name, (_, build) in wanted.items()}

    def built_again(*args, **kwargs):
        raise AssertionError("a table the pages used was built again")

    with monkeypatch.context() as patch:
        for name in wanted:
            patch.setattr(rows, name, built_again)
        for name, (args, _) in wanted.items():
            shared = getattr(page_tables, name)(views, info, *args)
            assert getattr(page_tables, name)(views, info, *args) is shared
            pd.testing.assert_frame_equal(shared, fresh[name], obj=name)
