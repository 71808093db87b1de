"""FairFL app: ``streamlit run app/main.py`` (or ``make app``).

Reads the chain named by ``FAIRFL_NETWORK`` (default: the shared anvil of ``make chain``)
with the deployment record in ``FAIRFL_DEPLOYMENTS`` (default: ``deployments/``), and the
content store of ``FAIRFL_IPFS`` (default: the embedded store). Pages live in
``app/app_pages`` (not ``pages/``, which Streamlit would also serve on its own, bypassing
this entry point); add them to ``PAGES``.
"""

from __future__ import annotations

import streamlit as st

import chain_data as data
import ui
import wallet_flows as flows
import wallet_panels as panels
from fl_agent.errors import ChainError

st.set_page_config(page_title="FairFL", page_icon=":material/hub:", layout="wide")

PAGES = {
    "Marketplace": [
        st.Page("app_pages/models.py", title="Models", icon=":material/storefront:",
                default=True),
        st.Page("app_pages/model.py", title="Model detail", icon=":material/model_training:",
                url_path="model"),
    ],
    "Training": [
        st.Page("app_pages/tasks.py", title="Tasks", icon=":material/account_tree:",
                url_path="tasks"),
        st.Page("app_pages/participants.py", title="Participants", icon=":material/groups:",
                url_path="participants"),
    ],
    "You": [
        st.Page("app_pages/account.py", title="My account",
                icon=":material/account_balance_wallet:", url_path="account"),
    ],
}

page = st.navigation(PAGES)
source = data.ChainSource.from_settings()
ui.sidebar(source)

try:
    info = data.chain_info(source)
    data.freeze_heap()  # once per process, connected: see its docstring
    with st.sidebar:
        st.caption("Wallet")
        # Mounted on every run, before the page, so that a purchase or download in progress
        # gets its wallet's answers whichever page is open.
        flows.mount(source, info)
        panels.sidebar_wallet(info)
    page.run()
except data.ChainUnavailable as err:
    ui.unavailable(err)
except ChainError as err:  # the node stopped answering mid-run (a receipt, a dry run...)
    ui.unavailable(data.ChainUnavailable("The chain stopped answering.", str(err)))
