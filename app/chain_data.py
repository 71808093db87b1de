"""What the app reads from the chain and the store.

One place for the connection and the caching, so that pages only describe what they show:

* :func:`client` connects ape once per process (``st.cache_resource``) and builds the
  :class:`~fl_agent.chain.client.FairFL` client for the deployment record on disk; a new
  deployment record gives a new client (:mod:`chain_connection`, re-exported here).
* History comes from the :class:`~fl_agent.chain.index.EventIndex` of the deployment
  (``FAIRFL_HOME/index``), synced incrementally on each render: :func:`views` returns the
  folded tasks, listings and participants (:mod:`fl_agent.chain.history`), recomputed only
  when new events arrived. Pages never query the node's logs themselves.
* What depends only on the chain state (the folded views, the pages' tables in
  :mod:`page_tables`) is computed once per state and shared by every session
  (``st.cache_resource`` keyed on the state: no copy per session and render). Shared
  objects are **read-only**: the views' mappings are read-only proxies; nothing in the app
  may modify a view or a table it was given (take a copy first).
* Documents (listing metadata, round evidence) come from the content store, cached by CID
  (content never changes under a CID). Live state that events do not carry (balances) is
  read with short-lived caches (:func:`chain_read`, ``ttl=5``); what cannot change for a
  deployment (the payment token's symbol and decimals, the delivery window) is read once.
* The server serves every session from one process; :func:`freeze_heap` keeps Streamlit's
  garbage collection after each script run from walking the whole (mostly static) heap.
* When the chain does not answer, there is no deployment record, or the contracts are not
  on the chain (it was reset), the readers raise :class:`ChainUnavailable`, whose ``hint``
  says what to run; the entry point shows it for every page. Other errors are bugs and
  propagate as they are.

No Streamlit widgets here (Streamlit's rule for cached functions).
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

import streamlit as st

import chain_connection as conn
from chain_connection import (  # noqa: F401 - re-exported for the pages
    DEPLOY_HINT,
    START_HINT,
    ChainSource,
    ChainUnavailable,
    _project,
    client,
    rpc_url,
)
from fl_agent.agents.evidence import RoundEvidence
from fl_agent.chain import history
from fl_agent.chain.deployment import Deployment
from fl_agent.chain.index import EventIndex, JsonRpc, ape_decoder
from fl_agent.errors import ChainError, FairFLError
from fl_agent.learning.task_doc import TaskDocument
from fl_agent.market.listing import ListingMetadata
from fl_agent.privacy.plan import PrivacyPlan
from fl_agent.settings import get_settings
from fl_agent.storage.store import ContentStore, open_store

#: Seconds a chain read stays cached; pages see new blocks at most this late.
TTL_SECONDS = 5
P = ParamSpec("P")
R = TypeVar("R")


def chain_read(func: Callable[P, R]) -> Callable[P, R]:
    """Caches a chain read for :data:`TTL_SECONDS`. When a read fails, checks whether the
    chain is down or the contracts are gone and raises :class:`ChainUnavailable` saying so
    (not cached: the next rerun retries); any other error is a bug and propagates."""

    @functools.wraps(func)
    def read(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ChainUnavailable:
            raise
        except Exception:
            source = next((a for a in args if isinstance(a, ChainSource)), None)
            if source is not None:
                conn.diagnose(source)
            raise

    return st.cache_data(ttl=TTL_SECONDS, show_spinner=False)(read)


def clear_cache() -> None:
    """Forget every cached read and what was computed from them (views, tables) and sync
    the event index on the next one (the connection stays)."""
    st.cache_data.clear()
    _MISSING.clear()
    _last_sync.clear()
    for forget in _per_state_caches:
        forget()


#: ``clear`` of every cache keyed on the chain state (see :func:`per_state_cache`).
_per_state_caches: list[Callable[[], None]] = []


def per_state_cache(cached: Any) -> Any:
    """Registers a ``st.cache_resource`` function keyed on the chain state, so that "Refresh
    now" forgets it too (a document missing when it was built may be in the store now)."""
    _per_state_caches.append(cached.clear)
    return cached


_frozen = threading.Lock()
_heap_frozen = False


def freeze_heap() -> None:
    """Once per process, once the app is connected: collect, then move every live object to
    the garbage collector's permanent generation (``gc.freeze``).

    Streamlit runs a full ``gc.collect()`` after every script run, holding the interpreter
    lock, and the heap of ape, web3, pandas and the contracts' ABIs is over 400,000 objects
    that live as long as the process: that walk alone cost about 0.3 CPU seconds per render,
    more than the page. Frozen objects are still freed by reference counting; only a cycle
    among them would never be collected, and they are the process's modules and caches.
    """
    global _heap_frozen
    if _heap_frozen:
        return
    with _frozen:
        if not _heap_frozen:
            gc.collect()
            gc.freeze()
            _heap_frozen = True


# ---------------------------------------------------------------------------------------------
# The event index and the content store
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _index(network: str, deployment_json: str) -> EventIndex:
    """One event index per deployment, kept in FAIRFL_HOME/index across app restarts."""
    deployment = Deployment.model_validate_json(deployment_json)
    settings = get_settings()
    ledger = deployment.contracts.get("TaskLedger", "unknown").lower()
    path = settings.home / "index" / f"{deployment.chain_id}-{ledger}.sqlite"
    return EventIndex(path, deployment, JsonRpc(rpc_url()), ape_decoder(_project()),
                      confirmations=settings.confirmations)


def index(source: ChainSource) -> EventIndex:
    """The event index of ``source``'s deployment, synced with the chain (at most once per
    :data:`SYNC_SECONDS`, so that one render's several reads share one sync)."""
    fairfl = client(source)
    idx = _index(source.network, fairfl.deployment.model_dump_json())
    now = time.monotonic()
    if now - _last_sync.get(idx.path, -1e9) >= SYNC_SECONDS:
        try:
            idx.sync()
        except ChainError as err:
            conn.diagnose(source)
            raise ChainUnavailable(f"Cannot read the chain's events ({source.network}).",
                                   conn.one_line(err)) from err
        _last_sync[idx.path] = now
    return idx


SYNC_SECONDS = 1.0
_last_sync: dict[Path, float] = {}


@st.cache_resource(show_spinner=False)
def store() -> ContentStore:
    """The content store named by the settings (Kubo, or the embedded store)."""
    settings = get_settings()
    return open_store(settings.ipfs, settings.store_dir, settings.max_content_bytes)


@dataclass(frozen=True)
class Views:
    """Everything the events say, folded (see :mod:`fl_agent.chain.history`), at the chain
    state ``state``. Shared by every session: read-only (the mappings are read-only proxies;
    the views in them must not be modified either)."""

    block: int
    tasks: Mapping[int, history.TaskView]
    listings: Mapping[int, history.ListingView]
    participants: Mapping[str, history.ParticipantView]
    #: The index file, cursor block and hash, and event count: what the views were folded
    #: from, the key of everything computed from them.
    state: tuple[str, int, str, int] = ("", 0, "", 0)


@per_state_cache
@st.cache_resource(show_spinner=False, max_entries=4)
def _fold(_idx: EventIndex, key: tuple[str, int, str, int]) -> Views:
    """The views at one cursor (``key``: index file, cursor block and hash, event count):
    recomputed only when new events arrived or the chain under them changed, once for every
    session (``cache_resource``: the same object, not a copy per session and render)."""
    events = _idx.events()
    tasks = history.tasks(e for e in events if e.contract == "TaskLedger"
                          or e.name == "UpdateRejected")
    return Views(
        block=key[1],
        tasks=MappingProxyType(tasks),
        listings=MappingProxyType(
            history.listings(e for e in events if e.contract == "ModelMarketplace")),
        participants=MappingProxyType(history.participants(
            (e for e in events if e.contract == "ParticipantRegistry"), tasks)),
        state=key,
    )


def views(source: ChainSource) -> Views:
    """The folded history of ``source``, up to date with the chain."""
    idx = index(source)
    return _fold(idx, (str(idx.path), idx.cursor or 0, idx.cursor_hash or "", idx.count()))


@st.cache_data(show_spinner=False, max_entries=512)
def _stored(cid: str) -> bytes:
    return store().get(cid)  # a FairFLError is not cached: the next ask tries again


#: Documents the store did not have, and when it was asked: asked again after a minute, so a
#: document that arrives late (a claim, over IPFS) shows up, and a missing one named on a page
#: does not cost a store round trip on every render.
_MISSING: dict[str, float] = {}
MISSING_RETRY_S = 60.0


def document(cid: str) -> bytes | None:
    """A document from the store (immutable, so cached without expiry); None when the
    store does not have it or it does not match its CID."""
    asked = _MISSING.get(cid)
    if asked is not None and time.monotonic() - asked < MISSING_RETRY_S:
        return None
    try:
        raw = _stored(cid)
    except FairFLError:
        _MISSING[cid] = time.monotonic()
        return None
    _MISSING.pop(cid, None)
    return raw


def task_plan(spec_cid: str) -> PrivacyPlan | None:
    """The privacy plan of the task document at ``spec_cid`` (None: none, or unreadable)."""
    raw = document(spec_cid)
    try:
        return None if raw is None else TaskDocument.from_json(raw).privacy
    except FairFLError:
        return None


def listing_metadata(cid: str) -> ListingMetadata | None:
    raw = document(cid)
    try:
        return None if raw is None else ListingMetadata.from_json(raw)
    except FairFLError:
        return None


def round_evidence(cid: str | None) -> RoundEvidence | None:
    raw = document(cid) if cid else None
    try:
        return None if raw is None else RoundEvidence.from_json(raw)
    except FairFLError:
        return None


@chain_read
def chain_info(source: ChainSource) -> ChainInfo:
    fairfl = client(source)
    deployment = fairfl.deployment
    # Calls to an address without code return zeros, not errors: after a chain reset the
    # page would show an empty ledger. Every page reads this first, so check here.
    block = conn.check_deployment(source.network, deployment)
    fixed = _fixed(source.network, deployment.model_dump_json())
    return ChainInfo(
        network=source.network,
        rpc_url=conn.node(source.network).url,
        chain_id=deployment.chain_id,  # check_deployment compared it with the node's
        block=block,
        deployment_file=str(source.deployment_file),
        deployed_at_block=deployment.block,
        deployer=deployment.deployer,
        contracts=dict(deployment.contracts),
        **fixed,
    )


@st.cache_resource(show_spinner=False)
def _fixed(network: str, deployment_json: str) -> dict[str, Any]:
    """What cannot change for a deployment (the marketplace's payment token and delivery
    window are immutable), read once: through ape, these calls cost a tenth of a CPU
    second. Called only after :func:`chain_connection.check_deployment` passed."""
    fairfl = conn.deployment_client(network, deployment_json)
    token = fairfl.payment_token.contract
    return {"payment_token": str(token.address),
            "payment_symbol": str(token.symbol()), "payment_decimals": int(token.decimals()),
            "delivery_window": fairfl.marketplace.delivery_window()}


@dataclass(frozen=True)
class ChainInfo:
    network: str
    rpc_url: str
    chain_id: int
    block: int
    deployment_file: str
    deployed_at_block: int
    deployer: str
    contracts: dict[str, str]
    payment_token: str
    payment_symbol: str
    payment_decimals: int
    delivery_window: int

    def pays_in_flt(self) -> bool:
        """Whether the marketplace takes FLT (the only token the dev faucet can mint)."""
        return self.payment_token.lower() == self.contracts.get("FairToken", "").lower()

    @property
    def local(self) -> bool:
        """A development chain (anvil's chain id), where dev accounts and the faucet exist."""
        return self.chain_id == LOCAL_CHAIN_ID

    def amount(self, base_units: int) -> float:
        return base_units / 10**self.payment_decimals


LOCAL_CHAIN_ID = 31337


@chain_read
def balance(source: ChainSource, account: str) -> int:
    """``account``'s balance of the payment token, in base units (``balanceOf`` in plain
    JSON-RPC: through ape, building the token's contract object costs more than the page)."""
    token = chain_info(source).payment_token
    call = {"to": token, "data": "0x70a08231" + account.lower().removeprefix("0x").rjust(64, "0")}
    return int(conn.node(source.network).call("eth_call", call, "latest"), 16)


def gas_used(source: ChainSource, txs: tuple[str, ...]) -> dict[str, int]:
    """Gas used by each transaction (receipts never change, so they are cached for good)."""
    return _receipts_gas(index(source).rpc, txs)


@st.cache_data(show_spinner=False, max_entries=64)
def _receipts_gas(_rpc: JsonRpc, txs: tuple[str, ...]) -> dict[str, int]:
    from concurrent.futures import ThreadPoolExecutor

    def one(tx: str) -> tuple[str, int]:
        receipt = _rpc.call("eth_getTransactionReceipt", tx)
        return tx, int(receipt["gasUsed"], 16) if receipt else 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, txs))


def browser_rpc_url(info: ChainInfo) -> str:
    """The RPC URL users' browsers use (FAIRFL_PUBLIC_RPC_URL, else the app's own node)."""
    return conn.current_settings().public_rpc_url or info.rpc_url


def app_domain() -> str:
    """The host the user's browser sees the app at (Sign-In with Ethereum's ``domain``)."""
    host = st.context.headers.get("host") if st.context.headers else None
    return host or "localhost:8501"


def app_uri() -> str:
    return f"http://{app_domain()}"


@st.cache_data(show_spinner=False, ttl=60)
def dev_accounts() -> list[str]:
    """The local node's unlocked accounts (anvil's test accounts)."""
    from eth_utils import to_checksum_address

    return [to_checksum_address(a) for a in JsonRpc(rpc_url()).call("eth_accounts")]


def dev_faucet(account: str, amount: int = 1_000 * 10**18) -> str | None:
    """Local chain only: the deployer (an unlocked dev account and FLT's admin) mints FLT to
    ``account`` and tops up its ETH for gas. Returns why it could not, or None. Never
    offered on another chain."""
    source = ChainSource.from_settings()
    fairfl = client(source)
    rpc = JsonRpc(rpc_url())
    if int(rpc.call("eth_chainId"), 16) != LOCAL_CHAIN_ID:
        return "The dev faucet exists only on the local chain."
    token, deployer = fairfl.token.contract, fairfl.deployment.deployer
    minter = token.MINTER_ROLE()
    calls = []
    if not token.hasRole(minter, deployer):
        calls.append(token.grantRole.encode_input(minter, deployer))
    calls.append(token.mint.encode_input(account, amount))
    for calldata in calls:
        try:
            tx = rpc.call("eth_sendTransaction", {"from": deployer, "to": str(token.address),
                                                  "data": "0x" + bytes(calldata).hex()})
        except ChainError as err:
            return f"The deployer {deployer} cannot mint on this node ({err})."
        while (receipt := rpc.call("eth_getTransactionReceipt", tx)) is None:
            time.sleep(0.1)
        if receipt["status"] != "0x1":
            return (f"The deployer {deployer} is no longer FLT's admin (governance was handed "
                    "over), so the dev faucet cannot mint; transfer FLT instead.")
    if int(rpc.call("eth_getBalance", account, "latest"), 16) < 10**18:
        rpc.call("anvil_setBalance", account, hex(100 * 10**18))
    clear_cache()
    return None


@st.cache_data(show_spinner=False, ttl=300)
def supports_permit(source: ChainSource) -> bool:
    """Whether the payment token takes EIP-2612 permits (one-transaction purchases)."""
    from fl_agent.market.payment import permit_domain

    return permit_domain(client(source).payment_token.contract) is not None


def listing_matches_training(source: ChainSource, model_id: int) -> bool:
    """Whether a listing sells the model its task's last round produced (its plaintext hash
    is the round's ``modelHash``)."""
    now = views(source)
    listing = now.listings[model_id]
    task = now.tasks.get(listing.task_id)
    return bool(task and task.rounds and task.rounds[-1].model_hash == listing.plaintext_hash)
