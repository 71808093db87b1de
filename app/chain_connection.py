"""The app's connection to the chain: settings, ape's provider, the FairFL client of the
deployment record, and the check that the contracts are still on the chain.

Split from :mod:`chain_data`, which re-exports what pages use (:class:`ChainSource`,
:class:`ChainUnavailable`, :func:`client`). No Streamlit widgets here.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from fl_agent.chain.client import PROJECT_ROOT, FairFL, load_project
from fl_agent.chain.deployment import CONTRACTS, Deployment, deployment_path, load_deployment
from fl_agent.chain.index import JsonRpc
from fl_agent.errors import DeploymentNotFoundError
from fl_agent.settings import Settings, get_settings

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
        settings = current_settings()
        return cls(settings.network, str(settings.deployments))

    @property
    def deployment_file(self) -> Path:
        return deployment_path(self.network, self.deployments)


def current_settings() -> Settings:
    """The settings, parsed again only when a ``FAIRFL_*`` variable changed (parsing them
    costs about as much as the rest of a short page)."""
    return _settings_for(tuple(sorted(
        (k, v) for k, v in os.environ.items() if k.upper().startswith("FAIRFL_"))))


@functools.lru_cache(maxsize=8)
def _settings_for(env: tuple[tuple[str, str], ...]) -> Settings:
    return get_settings()


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
        raise ChainUnavailable(f"Cannot reach the chain ({network}).", one_line(err)) from err


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
def deployment_client(network: str, deployment_json: str) -> FairFL:
    """The client for one deployment record; a redeploy changes the record, so the key."""
    deployment = Deployment.model_validate_json(deployment_json)
    check_deployment(network, deployment)
    return FairFL(deployment, _project())


def client(source: ChainSource) -> FairFL:
    """The FairFL client for ``source``, connecting on first use.

    Raises :class:`ChainUnavailable` when the chain does not answer, there is no deployment
    record, or the record does not describe this chain (for example after `chain reset`).
    """
    _connect(source.network)
    return deployment_client(source.network, _deployment(source).model_dump_json())


def _deployment(source: ChainSource) -> Deployment:
    try:
        return load_deployment(source.network, source.deployments)
    except DeploymentNotFoundError as err:
        raise ChainUnavailable(
            f"No FairFL deployment for {source.network}.", str(err), DEPLOY_HINT
        ) from err


def check_deployment(network: str, deployment: Deployment) -> int:
    """Raises :class:`ChainUnavailable` unless the chain answers and holds the contracts;
    returns the chain's height. Plain JSON-RPC: through ape's stack these few calls cost
    more CPU than a page."""
    try:
        rpc = node(network)
        chain_id = int(rpc.call("eth_chainId"), 16)
        missing = [
            name
            for name, address in deployment.contracts.items()
            if rpc.call("eth_getCode", address, "latest") in ("0x", "", None)
        ]
        height = rpc.block_number()
    except ChainUnavailable:
        raise
    except Exception as err:
        raise ChainUnavailable(f"Cannot reach the chain ({network}).", one_line(err)) from err
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
    return height


def diagnose(source: ChainSource) -> None:
    """After a failed read: is the chain down, or are the contracts gone (chain reset)?
    Returns if neither, so that the original error (a bug) propagates."""
    check_deployment(source.network, _deployment(source))


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:400]}"


def rpc_url() -> str:
    """The URL of the node ape is connected to."""
    from ape import chain

    provider = chain.provider
    return str(getattr(provider, "http_uri", None) or getattr(provider, "uri", "") or "")


@st.cache_resource(show_spinner=False)
def node(network: str) -> JsonRpc:
    """Plain JSON-RPC to the node ape connected to for ``network`` (reading ape's
    provider settings for its URL costs tens of milliseconds each time)."""
    _connect(network)
    return JsonRpc(rpc_url())
