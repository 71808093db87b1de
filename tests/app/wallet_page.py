"""A page with only the wallet component, for test_wallet_component.py (`streamlit run`).

The test types a request (``WalletRequest.to_json()``) into the text box; the page hands it to
the wallet on every run, as an app does with its pending request, and shows the status and the
answer to that request as JSON. ``?dev=<address>`` uses that dev account instead of a browser
wallet. The chain is ``FAIRFL_WALLET_RPC`` (the test's anvil), chain id 31337.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))  # as app/main.py sees it
from wallet import ChainParams, DevMode, WalletRequest, wallet  # noqa: E402

CHAIN = ChainParams(chain_id=31337, chain_name="FairFL local",
                    rpc_url=os.environ["FAIRFL_WALLET_RPC"], currency="ETH")

st.title("Wallet test page")
dev_account = st.query_params.get("dev")
text = st.text_input("Request (JSON)", key="request_json")
request = None
if text:
    raw = json.loads(text)
    request = WalletRequest(raw["id"], raw["action"], raw.get("params") or {})

if st.checkbox("Hide the wallet"):
    # Not mounted for a run: Streamlit forgets the component's state, and mounts it anew once
    # it is shown again, still with the same (answered) request.
    status, response = "hidden", "hidden"
else:
    state = wallet(request, key="wallet", chain=CHAIN,
                   dev=DevMode(dev_account) if dev_account else None)
    answer = state.response_to(request)
    status = json.dumps(asdict(state.status))
    response = json.dumps(asdict(answer)) if answer else "waiting"

with st.container(key="wallet_status"):
    st.code(status, language=None, wrap_lines=True)
with st.container(key="wallet_response"):
    st.code(response, language=None, wrap_lines=True)
st.button("Rerun")  # a click reruns the script: the answered request must not run again
