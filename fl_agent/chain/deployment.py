"""Deploying the FairFL contracts and remembering where they are.

ape keeps no deployment history of its own, so :func:`deploy_contracts` returns a
:class:`Deployment` record that :func:`save_deployment` writes to
``deployments/<network>.json``. The deploy script, the test fixtures and the demo all call
the same function, so the wiring of roles is written once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from pydantic import BaseModel, Field

from fl_agent.errors import DeploymentNotFoundError

#: Contract names in deployment order.
CONTRACTS = ("FairToken", "ParticipantRegistry", "TaskLedger", "ModelMarketplace")
#: Contracts deployed after them that hold no role and grant none: they only read the
#: ledger (the KeyHolderDesk of homomorphic tasks). Recorded under ``Deployment.addons``.
ADDONS = ("KeyHolderDesk",)


class BlacklistPolicy(BaseModel):
    """Reputation EWMA weight and automatic blacklisting threshold (see ParticipantRegistry)."""

    alpha_bps: int = Field(2_000, ge=1, le=10_000)
    max_rejections: int = Field(3, ge=1)
    window_blocks: int = Field(10_000, ge=1)

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.alpha_bps, self.max_rejections, self.window_blocks)


#: Default delivery window of the marketplace: 7200 blocks, about a day at 12 s per block.
DEFAULT_DELIVERY_WINDOW = 7_200
#: The longest window the marketplace accepts (about 1,600 years of 12 s blocks).
MAX_DELIVERY_WINDOW = 2**32 - 1


class Deployment(BaseModel):
    """Where the FairFL contracts of one network live."""

    network: str
    chain_id: int
    deployer: str
    block: int
    contracts: dict[str, str]
    #: The ERC-20 the marketplace takes payment in ("" in records older than the escrow).
    payment_token: str = ""
    #: Blocks a seller has to deliver a key before the buyer may take a refund (0 in records
    #: older than the escrow).
    delivery_window: int = 0
    #: The :data:`ADDONS` by name (empty in records older than the KeyHolderDesk).
    addons: dict[str, str] = Field(default_factory=dict)

    def address(self, name: str) -> str:
        try:
            return self.contracts[name] if name in self.contracts else self.addons[name]
        except KeyError:
            raise DeploymentNotFoundError(
                f"{name} is not in the deployment of {self.network}; redeploy with `ape run deploy`"
            ) from None


def deploy_contracts(
    deployer: Any,
    project: Any,
    *,
    governance: Any | None = None,
    policy: BlacklistPolicy | None = None,
    payment_token: Any | None = None,
    delivery_window: int = DEFAULT_DELIVERY_WINDOW,
    **tx_kwargs: Any,
) -> tuple[Deployment, dict[str, Any]]:
    """Deploys token, registry, ledger and marketplace from ``deployer`` and wires the roles,
    then the :data:`ADDONS` (the KeyHolderDesk, on the ledger).

    ``governance`` (an address or account; default: the deployer) receives the admin,
    governance, task-creator and pauser roles, and the deployer renounces them. The ledger
    gets the token's ``MINTER_ROLE`` and the registry's ``LEDGER_ROLE``. The marketplace
    takes payment in ``payment_token`` (the address of any ERC-20, e.g. a stablecoin; default:
    FLT) and gives sellers ``delivery_window`` blocks to deliver a key before a buyer may take
    a refund. Returns the record and the ape contract instances of :data:`CONTRACTS` by name
    (an addon's instance: ``project.<name>.at(record.address(name))``).
    """
    from ape import chain

    from fl_agent.chain.logs import height

    if not 1 <= delivery_window <= MAX_DELIVERY_WINDOW:
        raise ValueError(
            f"delivery_window must be 1 to {MAX_DELIVERY_WINDOW} blocks, got {delivery_window}"
        )
    given_token = None
    if payment_token is not None:
        given_token = to_checksum_address(str(getattr(payment_token, "address", payment_token)))
        if not chain.provider.get_code(given_token):
            raise ValueError(f"payment token {given_token} has no code on this chain")
    governance_address = str(getattr(governance, "address", governance or deployer.address))
    policy = policy or BlacklistPolicy()
    token = deployer.deploy(project.FairToken, deployer, **tx_kwargs)
    registry = deployer.deploy(
        project.ParticipantRegistry, deployer, policy.as_tuple(), **tx_kwargs
    )
    ledger = deployer.deploy(project.TaskLedger, deployer, token, registry, **tx_kwargs)
    payment = given_token or to_checksum_address(str(token.address))
    marketplace = deployer.deploy(
        project.ModelMarketplace,
        deployer,
        payment,
        registry,
        ledger,
        delivery_window,
        **tx_kwargs,
    )
    token.grantRole(token.MINTER_ROLE(), ledger, sender=deployer, **tx_kwargs)
    registry.grantRole(registry.LEDGER_ROLE(), ledger, sender=deployer, **tx_kwargs)
    if governance_address.lower() != str(deployer.address).lower():
        _hand_over(deployer, governance_address, token, registry, ledger, marketplace, **tx_kwargs)
    desk = deployer.deploy(project.KeyHolderDesk, ledger, **tx_kwargs)

    instances = {
        "FairToken": token,
        "ParticipantRegistry": registry,
        "TaskLedger": ledger,
        "ModelMarketplace": marketplace,
    }
    record = Deployment(
        network=chain.provider.network_choice,
        chain_id=chain.chain_id,
        deployer=deployer.address,
        block=height(),
        contracts={name: str(c.address) for name, c in instances.items()},
        payment_token=payment,
        delivery_window=delivery_window,
        addons={"KeyHolderDesk": str(desk.address)},
    )
    return record, instances


def _hand_over(
    deployer: Any,
    governance: str,
    token: Any,
    registry: Any,
    ledger: Any,
    marketplace: Any,
    **tx_kwargs: Any,
) -> None:
    """Grants every operational role to ``governance``, renounces the deployer's, and starts
    the delayed hand-over of each contract's admin role: ``governance`` completes it with
    :func:`accept_admin` once ``ADMIN_TRANSFER_DELAY`` (two days) has passed."""
    grants = [
        (registry, registry.GOVERNANCE_ROLE()),
        (ledger, ledger.TASK_CREATOR_ROLE()),
        (marketplace, marketplace.PAUSER_ROLE()),
    ]
    for contract, role in grants:
        contract.grantRole(role, governance, sender=deployer, **tx_kwargs)
    for contract, role in grants:
        contract.renounceRole(role, deployer, sender=deployer, **tx_kwargs)
    for contract in (token, registry, ledger, marketplace):
        contract.beginDefaultAdminTransfer(governance, sender=deployer, **tx_kwargs)


def accept_admin(governance: Any, contracts: dict[str, Any], **tx_kwargs: Any) -> None:
    """``governance`` takes over the admin role of every contract that a deployment with
    ``governance=`` offered it, once the two-day delay has passed (the contracts revert
    with ``AccessControlEnforcedDefaultAdminDelay`` before that)."""
    for contract in contracts.values():
        pending, _ = contract.pendingDefaultAdmin()
        if str(pending).lower() == str(governance.address).lower():
            contract.acceptDefaultAdminTransfer(sender=governance, **tx_kwargs)


def deployment_path(network: str, folder: Path | str = "deployments") -> Path:
    """``deployments/<name>.json`` for an ape network choice.

    ``ethereum:sepolia:node`` → ``sepolia``; any ``ethereum:local:*`` → ``local``;
    ``base:sepolia:node`` → ``base-sepolia``; a bare URL ``http://127.0.0.1:8561`` →
    ``127.0.0.1-8561``, so chains on different ports keep separate records.
    """
    if network.startswith(("http://", "https://", "ws://", "wss://")):
        name = network.split("://", 1)[1].rstrip("/").replace(":", "-").replace("/", "-")
    else:
        ecosystem, _, rest = network.partition(":")
        name = rest.split(":", 1)[0] if rest else ecosystem
        if ecosystem not in ("ethereum", "") and rest:
            name = f"{ecosystem}-{name}"
    return Path(folder) / f"{name}.json"


def save_deployment(record: Deployment, folder: Path | str = "deployments") -> Path:
    path = deployment_path(record.network, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.model_dump(), indent=2) + "\n")
    return path


def load_deployment(network: str, folder: Path | str = "deployments") -> Deployment:
    path = deployment_path(network, folder)
    if not path.exists():
        raise DeploymentNotFoundError(
            f"no deployment for {network} at {path}; run `ape run deploy --network {network}` "
            "(or `make deploy` for the local chain) first"
        )
    return Deployment.model_validate_json(path.read_text())
