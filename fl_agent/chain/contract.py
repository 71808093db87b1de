"""What every contract wrapper of :mod:`fl_agent.chain.client` shares: the ape project of
the compiled contracts, the contract handle with its event history, and the chain's height.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fl_agent.chain.logs import contract_logs, height

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_project() -> Any:
    """The ape project holding the compiled FairFL contracts (compiles on first use)."""
    import ape

    if Path(ape.project.path).resolve() == PROJECT_ROOT:
        return ape.project
    return ape.Project(PROJECT_ROOT)


class ContractWrapper:
    """One deployed contract: its ape handle, and its events since the deployment's block."""


    contract_name: str = ""

    def __init__(self, address: str, project: Any | None = None, start_block: int = 0) -> None:
        project = project or load_project()
        self.contract = getattr(project, self.contract_name).at(address)
        #: Where event queries start by default: the deployment's block (none before it).
        self.start_block = start_block

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def events(self, name: str, start_block: int | None = None, **filters: Any) -> list[Any]:
        """Logs of event ``name`` (e.g. ``"UpdateSubmitted"``) since ``start_block`` (default:
        the deployment's block), filtered on indexed fields (``taskId=1``)."""
        first = self.start_block if start_block is None else max(start_block, self.start_block)
        return contract_logs(self.contract, name, first, chain_height(), filters)


def chain_height() -> int:
    """The latest block number; raises when the node does not answer (not ape's
    ``chain.blocks.height``, which answers 0 then: see :mod:`fl_agent.chain.logs`)."""
    return height()


__all__ = ["PROJECT_ROOT", "ContractWrapper", "chain_height", "load_project"]
