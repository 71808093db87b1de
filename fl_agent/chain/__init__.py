"""The chain side of FairFL: deploying the contracts and typed clients for them."""

from fl_agent.chain.client import FairFL, Ledger, Marketplace, Registry, Token, load_project
from fl_agent.chain.deployment import (
    BlacklistPolicy,
    Deployment,
    deploy_contracts,
    load_deployment,
    save_deployment,
)

__all__ = [
    "BlacklistPolicy",
    "Deployment",
    "FairFL",
    "Ledger",
    "Marketplace",
    "Registry",
    "Token",
    "deploy_contracts",
    "load_deployment",
    "load_project",
    "save_deployment",
]
