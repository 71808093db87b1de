"""What the buyer and the payees do through their own wallet: buy, download, refund,
withdraw, sign in. Each is a small state machine driven across Streamlit runs.

The wallet component (:mod:`wallet`) runs one request at a time and answers in a later run.
:func:`drive` is called on every run, right after the component is mounted: it takes the
answer to the pending request, then does every step that needs no wallet (reading the chain,
checking what would revert, waiting for a receipt) until the flow needs the wallet again or
ends. Python builds every message, typed-data document and calldata and reads the results
from the chain; the browser only signs and sends. Every step is listed with its state, so
the buyer sees where it is, and a flow that fails says why and what to do, with nothing
half-done: money moves in one transaction (``buy``/``buyWithPermit``), and an allowance
left by an approve whose purchase did not follow is reported.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

with warnings.catch_warnings():  # abnf warns while siwe builds its EIP-4361 grammar
    warnings.simplefilter("ignore")
    from siwe import SiweMessage

import chain_data as data
import flow_messages as msg
from fl_agent.chain.index import RpcError
from fl_agent.chain.records import PurchaseStatus
from fl_agent.chain.reverts import Revert, decode_revert
from fl_agent.crypto.wallet_keys import buyer_key_message
from fl_agent.market.payment import (
    PERMIT_LIFETIME_SECONDS,
    permit_domain,
    permit_typed_data,
    split_signature,
)
from wallet import ChainParams, DevMode, WalletRequest, WalletState, wallet

FLOW = "wallet_flow"
PERMIT, APPROVE = "permit (one transaction)", "approve"
SIGNED_IN = "signed_in_account"
DEV_ACCOUNT = "dev_account"
#: Seconds one run waits for a receipt before showing the page and trying again.
RECEIPT_WAIT = 2.0


@dataclass
class Step:
    label: str
    state: str = "running"  # running, complete, error
    detail: str = ""


@dataclass
class Flow:
    """One thing the user asked for, and how far it got."""

    kind: str  # buy, download, refund, withdraw, signin
    model_id: int | None = None
    max_price: int | None = None
    stage: str = "connect"
    request: WalletRequest | None = None
    steps: list[Step] = field(default_factory=list)
    account: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    done: bool = False

    @property
    def finished(self) -> bool:
        return self.done or self.error is not None

    def begin(self, label: str) -> Step:
        step = Step(label)
        self.steps.append(step)
        return step

    def complete(self, detail: str = "") -> None:
        if self.steps and self.steps[-1].state == "running":
            self.steps[-1].state, self.steps[-1].detail = "complete", detail

    def fail(self, message: str) -> None:
        if self.steps and self.steps[-1].state == "running":
            self.steps[-1].state = "error"
        self.error, self.request = message, None


TITLES = {"buy": "Buying model {m}", "download": "Downloading model {m}",
          "rekey": "Replacing your key for model {m}",
          "refund": "Refund of model {m}", "withdraw": "Withdrawing revenue of model {m}",
          "signin": "Signing in"}


# ---------------------------------------------------------------------------------------------
# Mounting the wallet and starting flows
# ---------------------------------------------------------------------------------------------


def chain_params(info: data.ChainInfo) -> ChainParams:
    name = "FairFL local chain" if info.local else f"chain {info.chain_id}"
    return ChainParams(info.chain_id, name, data.browser_rpc_url(info))


def mount(source: data.ChainSource, info: data.ChainInfo) -> WalletState:
    """Mounts the wallet component with the pending request and advances the flow."""
    dev_account = st.session_state.get(DEV_ACCOUNT) if info.local else None
    flow: Flow | None = st.session_state.get(FLOW)
    state = wallet(flow.request if flow else None, key="wallet", chain=chain_params(info),
                   dev=DevMode(dev_account) if dev_account else None)
    st.session_state["wallet_status"] = state.status
    if flow is not None and not flow.finished:
        drive(flow, state, source, info)
    return state


def start(kind: str, model_id: int | None = None, max_price: int | None = None,
          pay_with_key: str | None = None) -> None:
    """Starts a flow (a button's callback); the next run hands it to the wallet.
    ``pay_with_key`` names the widget that chose how to pay: its value is read here, when
    the button is pressed, not when the button was drawn (the choice may have changed in
    between); "approve" pays with an allowance even if the token takes permits."""
    flow = Flow(kind, model_id, max_price)
    if pay_with_key is not None and st.session_state.get(pay_with_key) == APPROVE:
        flow.values["approve_only"] = True
    st.session_state[FLOW] = flow


def current(kind: str | None = None, model_id: int | None = None) -> Flow | None:
    flow: Flow | None = st.session_state.get(FLOW)
    if flow is None or (kind and flow.kind != kind) or \
            (model_id is not None and flow.model_id != model_id):
        return None
    return flow


def dismiss() -> None:
    st.session_state.pop(FLOW, None)


def signed_in() -> str | None:
    """The account this session signed in as (Sign-In with Ethereum), if any."""
    return st.session_state.get(SIGNED_IN)


# ---------------------------------------------------------------------------------------------
# Driving
# ---------------------------------------------------------------------------------------------


def drive(flow: Flow, state: WalletState, source: data.ChainSource,
          info: data.ChainInfo) -> None:
    if flow.request is not None:
        response = state.response_to(flow.request)
        if response is None:
            return  # the wallet is still asking the user
        flow.request = None
        if not response.ok:
            flow.fail(msg.wallet_message(response.error, flow.stage,
                                          bool(flow.values.get("approved")), info))
            return
        _take(flow, response.result or {}, source, info)
    while not flow.finished and flow.request is None:
        if not _advance(flow, state, source, info):
            return  # waiting for the chain; the panel polls
    if flow.request is not None:
        st.rerun()  # hand the new request to the component


def _take(flow: Flow, result: dict[str, Any], source: data.ChainSource,
          info: data.ChainInfo) -> None:
    """Records the wallet's answer to the request of ``flow.stage``."""
    stage = flow.stage
    if stage == "connect":
        flow.account = str(result["account"])
        flow.complete(flow.account)
        flow.stage = "chain"
    elif stage == "chain":
        flow.complete(f"chain {result['chainId']}")
        flow.stage = "signin"
    elif stage == "signin":
        message = SiweMessage.from_message(flow.values.pop("siwe"))
        try:
            message.verify(str(result["signature"]), nonce=message.nonce,
                           domain=message.domain)
        except Exception as err:  # noqa: BLE001 - siwe raises one type per failed check
            flow.fail(f"The sign-in signature does not verify ({type(err).__name__}).")
            return
        st.session_state[SIGNED_IN] = message.address
        flow.complete(message.address)
        flow.stage = "check" if flow.kind != "signin" else "end"
    elif stage == "key":
        flow.values["buyer_key"] = str(result["publicKey"])
        flow.complete("X25519 key derived from your signature")
        flow.stage = "send_rekey" if flow.kind == "rekey" else "pay"
    elif stage == "permit":
        flow.values["permit"] = str(result["signature"])
        flow.complete("permit signed")
        flow.stage = "send_buy"
    elif stage in ("send_approve", "send_buy", "send_refund", "send_withdraw", "send_rekey"):
        flow.values["tx"] = str(result["hash"])
        flow.complete(f"transaction {result['hash']}")
        flow.values["after_receipt"] = {"send_approve": "send_buy"}.get(stage, "end")
        flow.stage = "receipt"
    elif stage == "decrypt":
        flow.complete(f"{result['filename']}: {int(result['bytes']):,} bytes, "
                      f"sha256 {str(result['sha256'])[:16]}…, checked against the listing")
        flow.stage = "end"


def _advance(flow: Flow, state: WalletState, source: data.ChainSource,
             info: data.ChainInfo) -> bool:
    """Does the next step; False when it must wait for the chain (try again later)."""
    status = state.status
    stage = flow.stage
    if stage == "connect":
        if not status.available:
            flow.begin("Connect your wallet")
            flow.fail(msg.hint("no_wallet", info))
        elif status.connected:
            flow.account = status.account
            flow.begin("Wallet connected")
            flow.complete(str(status.account))
            flow.stage = "chain"
        else:
            flow.begin("Connect your wallet")
            flow.request = WalletRequest.connect()
    elif stage == "chain":
        if status.chain_id == info.chain_id:
            flow.stage = "signin"
        else:
            flow.begin(f"Switch the wallet to chain {info.chain_id}")
            flow.request = WalletRequest.ensure_chain()
    elif stage == "signin":
        if flow.kind != "signin" and signed_in() and \
                str(signed_in()).lower() == str(flow.account).lower():
            flow.stage = "check"
        else:
            flow.begin("Sign in with Ethereum")
            text = siwe_message(flow.account or "", info)
            flow.values["siwe"] = text
            flow.request = WalletRequest.sign_message(text)
    elif stage == "check":
        _check(flow, source, info)
    elif stage == "key":
        flow.begin("Derive your model key (a free signature)")
        flow.request = WalletRequest.derive_key(_key_message(flow, source, info))
    elif stage == "pay":
        _pay(flow, source, info)
    elif stage == "send_approve":
        market = data.client(source).marketplace
        token = data.client(source).payment_token.contract
        flow.begin(f"Allow the marketplace to take {msg.money(info, flow.max_price)} "
                   f"(approve)")
        flow.request = _tx(flow, token.address, token.approve.encode_input(
            market.address, flow.max_price))
    elif stage == "send_buy":
        _send_buy(flow, source, info)
    elif stage == "receipt":
        return _receipt(flow, source, info)
    elif stage == "decrypt":
        _decrypt(flow, source, info)
    elif stage == "send_refund":
        market = data.client(source).marketplace.contract
        flow.begin("Send the refund transaction")
        flow.request = _tx(flow, market.address, market.refund.encode_input(flow.model_id))
    elif stage == "send_withdraw":
        market = data.client(source).marketplace.contract
        flow.begin("Send the withdrawal")
        flow.request = _tx(flow, market.address, market.withdraw.encode_input(flow.model_id))
    elif stage == "send_rekey":
        market = data.client(source).marketplace.contract
        key = bytes.fromhex(flow.values["buyer_key"].removeprefix("0x"))
        flow.begin("Replace the purchase's key (updateBuyerKey)")
        flow.request = _tx(flow, market.address, market.updateBuyerKey.encode_input(
            flow.model_id, key))
    elif stage == "end":
        flow.done = True
        data.clear_cache()
    return True


def _tx(flow: Flow, to: Any, calldata: Any) -> WalletRequest:
    return WalletRequest.send_transaction(str(flow.account), str(to), bytes(calldata))


def _key_message(flow: Flow, source: data.ChainSource, info: data.ChainInfo) -> str:
    return buyer_key_message(info.chain_id, data.client(source).marketplace.address,
                             int(flow.model_id or 0))


# ---------------------------------------------------------------------------------------------
# The steps that read the chain
# ---------------------------------------------------------------------------------------------


def _check(flow: Flow, source: data.ChainSource, info: data.ChainInfo) -> None:
    """What the contract would refuse, said before anything is signed or sent."""
    fairfl = data.client(source)
    market, account = fairfl.marketplace, str(flow.account)
    model_id = int(flow.model_id or 0)
    flow.begin("Check with the chain")
    listing = market.listing(model_id)
    purchase = market.purchase(model_id, account)
    if flow.kind == "buy":
        if fairfl.registry.is_blacklisted(account):
            return flow.fail(f"{account} is blacklisted: the marketplace refuses its purchases.")
        if not listing.active:
            return flow.fail("This model was delisted while you were looking: it can no "
                             "longer be bought. Nothing was paid.")
        if purchase.status in (PurchaseStatus.PENDING, PurchaseStatus.DELIVERED):
            return flow.fail("You already bought this model; see its status below.")
        if not data.listing_matches_training(source, listing.model_id):
            return flow.fail("This listing does not sell the model its task trained (its hash "
                             "is not the last round's): nothing was paid.")
        if listing.price > int(flow.max_price or 0):
            return flow.fail(
                f"The price changed to {msg.money(info, listing.price)} after the page showed "
                f"{msg.money(info, flow.max_price)}. Nothing was paid: review the new price "
                "and click Buy again.")
        balance = fairfl.payment_token.balance_of(account)
        if balance < listing.price:
            return flow.fail(
                f"You hold {msg.money(info, balance)}; the price is "
                f"{msg.money(info, listing.price)}. Nothing was paid."
                + (" Use the dev faucet (local chain) to get tokens." if info.local else ""))
        flow.complete(f"price {msg.money(info, listing.price)}, balance {msg.money(info, balance)}")
        flow.stage = "key"
    elif flow.kind == "download":
        if purchase.status != PurchaseStatus.DELIVERED:
            return flow.fail(msg.pending_text(purchase, info))
        flow.complete("key delivered")
        flow.stage = "decrypt"
    elif flow.kind == "rekey":
        if purchase.status != PurchaseStatus.PENDING:
            return flow.fail("Only a purchase whose key was not delivered yet can change its "
                             "key.")
        flow.complete("key not delivered yet")
        flow.stage = "key"
    elif flow.kind == "refund":
        if purchase.status != PurchaseStatus.PENDING:
            return flow.fail("Only a purchase whose key was not delivered can be refunded.")
        height = data.index(source).rpc.block_number()
        if height <= purchase.deadline_block:
            return flow.fail(f"The seller has until block {purchase.deadline_block} to deliver "
                             f"the key (now {height}); the refund opens after that.")
        flow.complete(f"deadline {purchase.deadline_block} passed")
        flow.stage = "send_refund"
    elif flow.kind == "withdraw":
        amount = market.withdrawable(model_id, account)
        if fairfl.registry.is_blacklisted(account):
            return flow.fail("A blacklisted account cannot withdraw; its share waits until "
                             "governance lifts the blacklisting.")
        if amount == 0:
            return flow.fail("Nothing to withdraw from this model yet.")
        flow.complete(f"{msg.money(info, amount)} to withdraw")
        flow.stage = "send_withdraw"


def _pay(flow: Flow, source: data.ChainSource, info: data.ChainInfo) -> None:
    fairfl = data.client(source)
    token, market = fairfl.payment_token, fairfl.marketplace
    domain = None if flow.values.get("approve_only") else permit_domain(token.contract)
    if domain is not None:
        deadline = int(time.time()) + PERMIT_LIFETIME_SECONDS
        nonce = int(token.contract.nonces(flow.account))
        flow.values["deadline"] = deadline
        flow.begin(f"Sign a permit for {msg.money(info, flow.max_price)} (EIP-2612, free)")
        flow.stage = "permit"
        flow.request = WalletRequest.sign_typed_data(permit_typed_data(
            domain, str(flow.account), market.address, int(flow.max_price or 0), nonce,
            deadline))
    elif token.allowance(flow.account, market.address) < int(flow.max_price or 0):
        flow.stage = "send_approve"
    else:
        flow.stage = "send_buy"


def _send_buy(flow: Flow, source: data.ChainSource, info: data.ChainInfo) -> None:
    market = data.client(source).marketplace.contract
    key = bytes.fromhex(flow.values["buyer_key"].removeprefix("0x"))
    if "permit" in flow.values:
        v, r, s = split_signature(bytes.fromhex(flow.values["permit"].removeprefix("0x")))
        calldata = market.buyWithPermit.encode_input(
            flow.model_id, flow.max_price, key, flow.values["deadline"], v, r, s)
    else:
        calldata = market.buy.encode_input(flow.model_id, flow.max_price, key)
    revert = _dry_run(source, str(flow.account), str(market.address), bytes(calldata))
    if revert is not None:
        flow.begin("Check the purchase")
        return flow.fail(msg.revert_text(revert, info)
                         + msg.allowance_note(bool(flow.values.get("approved"))))
    flow.begin(f"Pay {msg.money(info, flow.max_price)} into escrow (buy)")
    flow.stage = "send_buy"
    flow.request = _tx(flow, market.address, calldata)


def _receipt(flow: Flow, source: data.ChainSource, info: data.ChainInfo) -> bool:
    tx = flow.values["tx"]
    if not flow.steps or not flow.steps[-1].label.startswith("Wait"):
        flow.begin("Wait for the transaction to be mined")
    deadline = time.monotonic() + RECEIPT_WAIT
    receipt = None
    while receipt is None:
        receipt = data.index(source).rpc.call("eth_getTransactionReceipt", tx)
        if receipt is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
    if int(receipt["status"], 16) != 1:
        flow.fail(f"Transaction {tx} was mined but reverted: nothing was done."
                  + msg.allowance_note(bool(flow.values.get("approved"))))
        return True
    gas = int(receipt["gasUsed"], 16)
    flow.values.setdefault("gas", []).append(gas)
    flow.complete(f"block {int(receipt['blockNumber'], 16)}, gas {gas:,}")
    flow.values["approved"] = flow.values.get("after_receipt") == "send_buy"
    flow.stage = flow.values.pop("after_receipt", "end")
    return True


def _decrypt(flow: Flow, source: data.ChainSource, info: data.ChainInfo) -> None:
    views = data.views(source)
    listing = views.listings[int(flow.model_id or 0)]
    purchase = listing.purchase_of(str(flow.account))
    meta = data.listing_metadata(listing.metadata_cid)
    ciphertext = data.document(listing.encrypted_cid)
    if purchase is None or purchase.sealed_key is None:
        return flow.fail("The key delivery is not indexed yet; try again in a moment.")
    if meta is None or ciphertext is None:
        return flow.fail("The model's files are not in the content store this app reads "
                         f"({listing.encrypted_cid}); check FAIRFL_IPFS.")
    flow.begin("Decrypt and check the model in your browser")
    flow.request = WalletRequest.decrypt_download(
        _key_message(flow, source, info), purchase.sealed_key, ciphertext,
        listing.plaintext_hash, [t.model_dump(mode="json") for t in meta.tensors],
        f"fairfl-model-{listing.model_id}.safetensors", buyer_key=purchase.buyer_key)


def _dry_run(source: data.ChainSource, sender: str, to: str, calldata: bytes) -> Revert | None:
    """The custom error the transaction would revert with now, or None."""
    try:
        data.index(source).rpc.call("eth_call", {"from": sender, "to": to,
                                                 "data": "0x" + calldata.hex()}, "latest")
        return None
    except RpcError as err:
        return decode_revert(err.data, msg.errors()) or Revert("unknown", {"message": str(err)})


def siwe_message(account: str, info: data.ChainInfo) -> str:
    """An EIP-4361 sign-in message for this app and chain, with a fresh nonce."""
    from siwe import generate_nonce

    now = time.gmtime()
    return SiweMessage(
        domain=data.app_domain(), address=account, uri=data.app_uri(), version="1",
        chain_id=info.chain_id, nonce=generate_nonce(),
        issued_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        statement="Sign in to the FairFL marketplace. This signature costs nothing.",
    ).prepare_message()
