"""FairFL app: ``streamlit run app/main.py`` (or ``make app``).

Reads the chain named by ``FAIRFL_NETWORK`` (default: the shared anvil of ``make chain``)
with the deployment record in ``FAIRFL_DEPLOYMENTS`` (default: ``deployments/``).
Pages live in ``app/pages``; add them to ``PAGES``.
"""

from __future__ import annotations

import streamlit as st

import chain_data as data
import ui

st.set_page_config(page_title="FairFL", page_icon=":material/hub:", layout="wide")

PAGES = {
    "Ledger": [
        st.Page("pages/ledger.py", title="Overview", icon=":material/account_tree:", default=True),
    ],
    # "Marketplace": [st.Page("pages/marketplace.py", ...)],  # with a wallet, next
}

page = st.navigation(PAGES)
source = data.ChainSource.from_settings()
ui.sidebar(source)

try:
    page.run()
except data.ChainUnavailable as err:
    ui.unavailable(err)
