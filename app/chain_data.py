"""What the app reads from the chain, as plain rows ready for ``pandas.DataFrame``.

One place for the connection and the caching, so that pages only describe what they show:

* :func:`client` connects ape once per process (``st.cache_resource``) and builds the
  :class:`~fl_agent.chain.client.FairFL` client for the deployment record on disk; a new
  deployment record gives a new client.
* The readers (:func:`chain_info`, :func:`tasks`, :func:`participants`, ...) are
  ``st.cache_data(ttl=5)`` functions that return frozen dataclasses of plain values. They
  take a :class:`ChainSource` (network and deployments folder) so that the cache never
  mixes two chains.
* When the chain does not answer, there is no deployment record, or the contracts are not
  on the chain (it was reset), the readers raise :class:`ChainUnavailable`, whose ``hint``
  says what to run; the entry point shows it for every page. Other errors are bugs and
  propagate as they are.

No Streamlit widgets here (Streamlit's rule for cached functions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pandas as pd
import streamlit as st

from fl_agent.chain.client import PROJECT_ROOT, FairFL, load_project
from fl_agent.chain.deployment import CONTRACTS, Deployment, deployment_path, load_deployment
from fl_agent.errors import DeploymentNotFoundError
from fl_agent.settings import get_settings

FLT = 10**18
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
# Rows
# ---------------------------------------------------------------------------------------------


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
    flt_supply: float
    task_count: int
    participant_count: int
    model_count: int


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    status: str
    round: str
    mode: str
    metric: str
    participants: int
    flt_rewarded: float
    global_model_cid: str
    aggregator: str
    creator: str


@dataclass(frozen=True)
class RoundRow:
    round: int
    status: str
    start_block: int
    deadline_block: int
    finalized_block: int | None
    submissions: int


@dataclass(frozen=True)
class MemberRow:
    participant: str
    joined: bool
    last_submitted_round: int
    accepted_rounds: int
    rejected_rounds: int
    earned_flt: float


@dataclass(frozen=True)
class ParticipantRow:
    participant: str
    label: str
    reputation_pct: float
    accepted: int
    rejected: int
    blacklisted: bool
    flt_balance: float
    standing: str


@dataclass(frozen=True)
class ListingRow:
    model_id: int
    task_id: int | None
    price_flt: float
    sales: int
    revenue_flt: float
    active: bool
    payee_count: int
    payees: list[str] = field(default_factory=list)
    seller: str = ""
    encrypted_cid: str = ""


def frame(rows: list[Any]) -> pd.DataFrame:
    """Rows (dataclasses) as a DataFrame whose columns are the field names."""
    return pd.DataFrame([asdict(r) for r in rows])


def short(address: str) -> str:
    """``0xf39Fd6e5…92266`` → ``0xf39F…2266``, for chart labels."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def flt(amount: int) -> float:
    return amount / FLT


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
    """Forget every cached read (the connection stays)."""
    st.cache_data.clear()


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


@chain_read
def chain_info(source: ChainSource) -> ChainInfo:
    from ape import chain

    fairfl = client(source)
    deployment = fairfl.deployment
    # Calls to an address without code return zeros, not errors: after a chain reset the
    # page would show an empty ledger. Every page reads this first, so check here.
    _check_deployment(source.network, deployment)
    provider = chain.provider
    return ChainInfo(
        network=source.network,
        rpc_url=str(getattr(provider, "http_uri", None) or getattr(provider, "uri", "") or ""),
        chain_id=int(chain.chain_id),
        block=int(chain.blocks.height),
        deployment_file=str(source.deployment_file),
        deployed_at_block=deployment.block,
        deployer=deployment.deployer,
        contracts=dict(deployment.contracts),
        flt_supply=flt(fairfl.token.total_supply()),
        task_count=fairfl.ledger.task_count(),
        participant_count=int(fairfl.registry.contract.participantCount()),
        model_count=fairfl.marketplace.model_count(),
    )


@chain_read
def tasks(source: ChainSource) -> list[TaskRow]:
    return [
        TaskRow(
            task_id=t.task_id,
            status=t.status.name.lower(),
            round=f"{t.current_round}/{t.rounds}",
            mode=t.training_mode.label(),
            metric=t.metric,
            participants=t.participant_count,
            flt_rewarded=flt(t.total_rewarded),
            global_model_cid=t.global_model_cid,
            aggregator=t.aggregator,
            creator=t.creator,
        )
        for t in client(source).ledger.tasks()
    ]


@chain_read
def task_rounds(source: ChainSource, task_id: int) -> list[RoundRow]:
    return [
        RoundRow(
            round=r.round,
            status=r.status.name.lower(),
            start_block=r.start_block,
            deadline_block=r.deadline_block,
            finalized_block=r.finalized_block or None,
            submissions=r.submissions,
        )
        for r in client(source).ledger.rounds(task_id)
    ]


@chain_read
def task_members(source: ChainSource, task_id: int) -> list[MemberRow]:
    ledger = client(source).ledger
    rows = []
    for address in ledger.participants(task_id):
        m = ledger.membership(task_id, address)
        rows.append(
            MemberRow(
                participant=address,
                joined=m.joined,
                last_submitted_round=m.last_submitted_round,
                accepted_rounds=m.accepted_rounds,
                rejected_rounds=m.rejected_rounds,
                earned_flt=flt(m.earned),
            )
        )
    return rows


@chain_read
def participants(source: ChainSource) -> list[ParticipantRow]:
    fairfl = client(source)
    return [
        ParticipantRow(
            participant=p.address,
            label=short(p.address),
            reputation_pct=p.reputation_bps / 100,
            accepted=p.accepted_updates,
            rejected=p.rejected_updates,
            blacklisted=p.blacklisted,
            flt_balance=flt(fairfl.token.balance_of(p.address)),
            standing="blacklisted" if p.blacklisted else "in good standing",
        )
        for p in fairfl.registry.participants()
    ]


@chain_read
def listings(source: ChainSource) -> list[ListingRow]:
    return [
        ListingRow(
            model_id=m.model_id,
            task_id=m.task_id or None,
            price_flt=flt(m.price),
            sales=m.sales,
            revenue_flt=flt(m.revenue),
            active=m.active,
            payee_count=len(m.payees),
            payees=[
                f"{short(p)} · {s / 100:g}%" for p, s in zip(m.payees, m.shares_bps, strict=True)
            ],
            seller=m.seller,
            encrypted_cid=m.encrypted_cid,
        )
        for m in client(source).marketplace.listings()
    ]
