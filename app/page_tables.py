"""The pages' tables (:mod:`rows`), built once per chain state and shared by every session.

A table depends on the folded views (their ``state``: the index's cursor and event count),
on the chain info only through amounts (the payment token's decimals), and on what the page
picked (a task, a model, an account); :func:`_table` caches it on exactly that, with
``st.cache_resource``: every session and render gets the same DataFrame, not a copy, so
twenty sessions clicking through the pages build each table once per new block with events,
not once per render.

The frames are **read-only**. The pages filter, sort, index and drop columns, which all
make new frames; code that would modify one in place must take a ``.copy()`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

import chain_data as data
import rows

_BUILD: dict[str, Callable[..., pd.DataFrame]] = {
    "models": lambda v, i: rows.models(v, i),
    "earnings": lambda v, i: rows.earnings(v, i),
    "payees": lambda v, i, model: rows.payees(v.listings[model],
                                              v.tasks[v.listings[model].task_id], i),
    "watermarks": lambda v, i, model: rows.watermarks(v.listings[model],
                                                      v.tasks[v.listings[model].task_id]),
    "task_list": lambda v, i: rows.task_list(v, i),
    "lineage": lambda v, i, task, gas: rows.lineage(v.tasks[task], dict(gas)),
    "members": lambda v, i, task: rows.members(v.tasks[task], v, i),
    "rejections": lambda v, i, task: rows.rejections(v.tasks[task]),
    "submissions": lambda v, i, task: rows.submissions(v.tasks[task].rounds[-1]),
    "leaderboard": lambda v, i: rows.leaderboard(v, i),
    "reputation_history": lambda v, i, who: rows.reputation_history(v, list(who)),
    "blacklist": lambda v, i: rows.blacklist(v),
    "purchases": lambda v, i, account: rows.purchases(v, account, i),
    "revenue": lambda v, i, account: rows.revenue(v, account, i),
}


@data.per_state_cache
@st.cache_resource(show_spinner=False, max_entries=512)
def _table(kind: str, state: tuple[str, int, str, int], decimals: int, args: tuple[Any, ...],
           _views: data.Views, _info: data.ChainInfo) -> pd.DataFrame:
    """Table ``kind`` of :mod:`rows` for the views at ``state``; ``_views`` and ``_info`` are
    not hashed (the key says what they are)."""
    return _BUILD[kind](_views, _info, *args)


def _get(kind: str, views: data.Views, info: data.ChainInfo, *args: Any) -> pd.DataFrame:
    return _table(kind, views.state, info.payment_decimals, args, views, info)


def models(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    return _get("models", views, info)


def earnings(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    return _get("earnings", views, info)


def payees(views: data.Views, info: data.ChainInfo, model_id: int) -> pd.DataFrame:
    return _get("payees", views, info, model_id)


def watermarks(views: data.Views, info: data.ChainInfo, model_id: int) -> pd.DataFrame:
    return _get("watermarks", views, info, model_id)


def task_list(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    return _get("task_list", views, info)


def lineage(views: data.Views, info: data.ChainInfo, task_id: int,
            gas: dict[str, int] | None = None) -> pd.DataFrame:
    return _get("lineage", views, info, task_id, tuple(sorted((gas or {}).items())))


def members(views: data.Views, info: data.ChainInfo, task_id: int) -> pd.DataFrame:
    return _get("members", views, info, task_id)


def rejections(views: data.Views, info: data.ChainInfo, task_id: int) -> pd.DataFrame:
    return _get("rejections", views, info, task_id)


def submissions(views: data.Views, info: data.ChainInfo, task_id: int) -> pd.DataFrame:
    """The submissions of the task's last round."""
    return _get("submissions", views, info, task_id)


def leaderboard(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    return _get("leaderboard", views, info)


def reputation_history(views: data.Views, info: data.ChainInfo,
                       addresses: list[str]) -> pd.DataFrame:
    return _get("reputation_history", views, info, tuple(addresses))


def blacklist(views: data.Views, info: data.ChainInfo) -> pd.DataFrame:
    return _get("blacklist", views, info)


def purchases(views: data.Views, info: data.ChainInfo, account: str) -> pd.DataFrame:
    return _get("purchases", views, info, account.lower())


def revenue(views: data.Views, info: data.ChainInfo, account: str) -> pd.DataFrame:
    return _get("revenue", views, info, account.lower())
