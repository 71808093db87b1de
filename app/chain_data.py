"""What the app reads from the chain and the store.

One place for the connection and the caching, so that pages only describe what they show:

* :func:`client` connects ape once per process (``st.cache_resource``) and builds the
  :class:`~fl_agent.chain.client.FairFL` client for the deployment record on disk; a new
  deployment record gives a new client.
* History comes from the :class:`~fl_agent.chain.index.EventIndex` of the deployment
  (``FAIRFL_HOME/index``), synced incrementally on each render: :func:`views` returns the
  folded tasks, listings and participants (:mod:`fl_agent.chain.history`), recomputed only
  when new events arrived. Pages never query the node's logs themselves.
* Documents (listing metadata, round evidence) come from the content store, cached by CID
  (content never changes under a CID). Live state that events do not carry (balances) is
  read with short-lived caches (:func:`chain_read`, ``ttl=5``).
* When the chain does not answer, there is no deployment record, or the contracts are not
  on the chain (it was reset), the readers raise :class:`ChainUnavailable`, whose ``hint``
  says what to run; the entry point shows it for every page. Other errors are bugs and
  propagate as they are.

No Streamlit widgets here (Streamlit's rule for cached functions).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import streamlit as st

from fl_agent.agents.evidence import RoundEvidence
from fl_agent.chain import history
from fl_agent.chain.client import PROJECT_ROOT, FairFL, load_project
from fl_agent.chain.deployment import CONTRACTS, Deployment, deployment_path, load_deployment
from fl_agent.chain.index import EventIndex, JsonRpc, ape_decoder
from fl_agent.errors import ChainError, DeploymentNotFoundError, FairFLError
from fl_agent.market.listing import ListingMetadata
from fl_agent.settings import get_settings
from fl_agent.storage.store import ContentStore, open_store

#: Seconds a chain read stays cached; pages see new blocks at most this late.
TTL_SECONDS = 5
START_HINT = "Start the chain with `make chain` and deploy with `make deploy`."
DEPLOY_HINT = "Deploy the contracts with `make deploy` (start the chain first with `make chain`)."


class ChainUnavailable(Exception):
    """The chain or the FairFL contracts cannot be read. ``hint`` says what to run."""

    def __init__(self, title: str, detail: str = "", hint: str = START_HINT) -> None:
        super().__init__(title)
        self.title = title
        self.detail = detail
        self.hint = hint


@dataclass(frozen=True)
class ChainSource:
    """Which chain the app reads: an ape network choice and the deployments folder."""

    network: str
    deployments: str

    @classmethod
    def from_settings(cls) -> ChainSource:
        """From ``FAIRFL_NETWORK`` and ``FAIRFL_DEPLOYMENTS`` (see fl_agent/settings.py)."""
        settings = get_settings()
        return cls(settings.network, str(settings.deployments))

    @property
    def deployment_file(self) -> Path:
        return deployment_path(self.network, self.deployments)


# ---------------------------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Connecting to the chain…")
def _connect(network: str) -> Any:
    """Enters ape's provider context for ``network`` once per process and keeps it open.

    ape keeps the active provider per process, so every session's script thread uses it.
    A failed connection raises and is not cached: the next rerun tries again.
    """
    from ape import networks

    try:
        return networks.parse_network_choice(network).__enter__()
    except Exception as err:  # ape raises many types for an unreachable node
        raise ChainUnavailable(f"Cannot reach the chain ({network}).", _one_line(err)) from err


class _CompiledContracts:
    """The contract types of ape's last compile (``.build/``), read without compiling.

    ``FairFL`` only needs ``project.<Name>.at(address)``. A viewer should not compile: a
    contract being edited while the app runs would otherwise break the page (or take seconds).
    """

    def __init__(self, contract_types: dict[str, Any]) -> None:
        self._types = contract_types

    def __getattr__(self, name: str) -> Any:
        from ape.contracts import ContractContainer

        try:
            return ContractContainer(self._types[name])
        except KeyError:
            raise AttributeError(name) from None


def _project() -> Any:
    import ape

    types = ape.Project(PROJECT_ROOT).manifest.contract_types or {}
    if all(name in types for name in CONTRACTS):
        return _CompiledContracts(dict(types))
    return load_project()  # never compiled here yet: compile once


@st.cache_resource(show_spinner=False)
def _fairfl(network: str, deployment_json: str) -> FairFL:
    """The client for one deployment record; a redeploy changes the record, so the key."""
    deployment = Deployment.model_validate_json(deployment_json)
    _check_deployment(network, deployment)
    return FairFL(deployment, _project())


def client(source: ChainSource) -> FairFL:
    """The FairFL client for ``source``, connecting on first use.

    Raises :class:`ChainUnavailable` when the chain does not answer, there is no deployment
    record, or the record does not describe this chain (for example after `chain reset`).
    """
    _connect(source.network)
    return _fairfl(source.network, _deployment(source).model_dump_json())


def _deployment(source: ChainSource) -> Deployment:
    try:
        return load_deployment(source.network, source.deployments)
    except DeploymentNotFoundError as err:
        raise ChainUnavailable(
            f"No FairFL deployment for {source.network}.", str(err), DEPLOY_HINT
        ) from err


def _check_deployment(network: str, deployment: Deployment) -> None:
    """Raises :class:`ChainUnavailable` unless the chain answers and holds the contracts."""
    from ape import chain

    try:
        chain_id = chain.chain_id
        missing = [
            name
            for name, address in deployment.contracts.items()
            if not chain.provider.get_code(address)
        ]
    except Exception as err:
        raise ChainUnavailable(f"Cannot reach the chain ({network}).", _one_line(err)) from err
    if chain_id != deployment.chain_id:
        raise ChainUnavailable(
            "The deployment record is for another chain.",
            f"the record says chain {deployment.chain_id}, the node is chain {chain_id}",
            DEPLOY_HINT,
        )
    if missing:
        raise ChainUnavailable(
            "The deployed contracts are not on this chain (was it reset?).",
            "no code at " + ", ".join(f"{n} {deployment.contracts[n]}" for n in missing),
            DEPLOY_HINT,
        )


def _diagnose(source: ChainSource) -> None:
    """After a failed read: is the chain down, or are the contracts gone (chain reset)?
    Returns if neither, so that the original error (a bug) propagates."""
    _check_deployment(source.network, _deployment(source))


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:400]}"


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
                _diagnose(source)
            raise

    return st.cache_data(ttl=TTL_SECONDS, show_spinner=False)(read)


def clear_cache() -> None:
    """Forget every cached read and sync the event index on the next one (the connection
    stays)."""
    st.cache_data.clear()
    _last_sync.clear()




# ---------------------------------------------------------------------------------------------
# The event index and the content store
# ---------------------------------------------------------------------------------------------


def rpc_url() -> str:
    """The URL of the node ape is connected to."""
    from ape import chain

    provider = chain.provider
    return str(getattr(provider, "http_uri", None) or getattr(provider, "uri", "") or "")


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
            _diagnose(source)
            raise ChainUnavailable(f"Cannot read the chain's events ({source.network}).",
                                   _one_line(err)) from err
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
    """Everything the events say, folded (see :mod:`fl_agent.chain.history`)."""

    block: int
    tasks: dict[int, history.TaskView]
    listings: dict[int, history.ListingView]
    participants: dict[str, history.ParticipantView]


@st.cache_data(show_spinner=False, max_entries=4)
def _fold(_idx: EventIndex, key: tuple[str, int, str, int]) -> Views:
    """The views at one cursor (``key``: index file, cursor block and hash, event count):
    recomputed only when new events arrived or the chain under them changed."""
    events = _idx.events()
    tasks = history.tasks(e for e in events if e.contract == "TaskLedger")
    return Views(
        block=key[1],
        tasks=tasks,
        listings=history.listings(e for e in events if e.contract == "ModelMarketplace"),
        participants=history.participants(
            (e for e in events if e.contract == "ParticipantRegistry"), tasks),
    )


def views(source: ChainSource) -> Views:
    """The folded history of ``source``, up to date with the chain."""
    idx = index(source)
    return _fold(idx, (str(idx.path), idx.cursor or 0, idx.cursor_hash or "", idx.count()))


@st.cache_data(show_spinner=False, max_entries=512)
def document(cid: str) -> bytes | None:
    """A document from the store (immutable, so cached without expiry); None when the
    store does not have it or it does not match its CID."""
    try:
        return store().get(cid)
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
    from ape import chain

    fairfl = client(source)
    deployment = fairfl.deployment
    # Calls to an address without code return zeros, not errors: after a chain reset the
    # page would show an empty ledger. Every page reads this first, so check here.
    _check_deployment(source.network, deployment)
    token = fairfl.payment_token.contract
    return ChainInfo(
        network=source.network,
        rpc_url=rpc_url(),
        chain_id=int(chain.chain_id),
        block=int(chain.blocks.height),
        deployment_file=str(source.deployment_file),
        deployed_at_block=deployment.block,
        deployer=deployment.deployer,
        contracts=dict(deployment.contracts),
        payment_token=str(token.address),
        payment_symbol=str(token.symbol()),
        payment_decimals=int(token.decimals()),
        delivery_window=fairfl.marketplace.delivery_window(),
    )


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
    """``account``'s balance of the payment token, in base units."""
    return client(source).payment_token.balance_of(account)


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
    return get_settings().public_rpc_url or info.rpc_url


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
