"""The deployment code that `ape run deploy` runs: roles wired, record written, hand-over."""

from __future__ import annotations

import json

import ape
import pytest
from conftest import POLICY

from fl_agent.chain.deployment import (
    CONTRACTS,
    DEFAULT_DELIVERY_WINDOW,
    BlacklistPolicy,
    accept_admin,
    deploy_contracts,
    load_deployment,
    save_deployment,
)
from fl_agent.errors import DeploymentNotFoundError


def test_deploy_wires_roles_and_policy_and_writes_a_record(owner, project, tmp_path):
    record, contracts = deploy_contracts(owner, project, policy=POLICY)
    token, registry, ledger, market = (contracts[n] for n in CONTRACTS)
    assert token.hasRole(token.MINTER_ROLE(), ledger)
    assert registry.hasRole(registry.LEDGER_ROLE(), ledger)
    assert not token.hasRole(token.MINTER_ROLE(), owner)
    assert tuple(registry.policy()) == POLICY.as_tuple()
    assert ledger.hasRole(ledger.TASK_CREATOR_ROLE(), owner)
    assert market.hasRole(market.PAUSER_ROLE(), owner)

    # FLT is the payment token unless another is given; the default window is about a day.
    assert market.paymentToken() == token.address == record.payment_token
    assert market.deliveryWindow() == DEFAULT_DELIVERY_WINDOW == record.delivery_window == 7_200

    path = save_deployment(record, tmp_path)
    assert path.name == "local.json"
    addresses = {n: str(contracts[n].address) for n in CONTRACTS}
    saved = json.loads(path.read_text())
    assert saved["contracts"] == addresses
    assert (saved["payment_token"], saved["delivery_window"]) == (token.address, 7_200)
    assert load_deployment(record.network, tmp_path) == record


def test_deploy_with_another_payment_token_and_window(owner, project):
    plain = project.load_contracts("contracts/mocks/PlainToken.sol")["PlainToken"]
    usd = owner.deploy(plain)
    record, contracts = deploy_contracts(
        owner, project, policy=POLICY, payment_token=usd.address, delivery_window=25
    )
    market = contracts["ModelMarketplace"]
    assert market.paymentToken() == usd.address == record.payment_token
    assert market.deliveryWindow() == 25 == record.delivery_window
    assert contracts["FairToken"].address != usd.address  # FLT is still the reward token


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"delivery_window": 0}, "delivery_window"),
        ({"delivery_window": 2**32}, "delivery_window"),
        ({"payment_token": "0x000000000000000000000000000000000000dEaD"}, "no code"),
    ],
)
def test_bad_market_settings_are_refused_before_any_transaction(owner, project, chain, kwargs,
                                                                 message):
    height = chain.blocks.height
    with pytest.raises(ValueError, match=message):
        deploy_contracts(owner, project, policy=POLICY, **kwargs)
    assert chain.blocks.height == height


def test_a_record_from_before_the_escrow_still_loads(tmp_path):
    old = {"network": "ethereum:local:node", "chain_id": 31337, "deployer": "0x" + "11" * 20,
           "block": 7, "contracts": {n: "0x" + "22" * 20 for n in CONTRACTS}}
    (tmp_path / "local.json").write_text(json.dumps(old))
    record = load_deployment("ethereum:local:node", tmp_path)
    assert (record.payment_token, record.delivery_window) == ("", 0)


def test_governance_hand_over_leaves_the_deployer_without_roles(owner, stranger, project, chain):
    _, contracts = deploy_contracts(owner, project, governance=stranger.address, policy=POLICY)
    token, registry, ledger, market = (contracts[n] for n in CONTRACTS)
    roles = [
        (registry, registry.GOVERNANCE_ROLE()),
        (ledger, ledger.TASK_CREATOR_ROLE()),
        (market, market.PAUSER_ROLE()),
    ]
    for contract, role in roles:
        assert contract.hasRole(role, stranger), (contract, role)
        assert not contract.hasRole(role, owner), (contract, role)
    assert token.hasRole(token.MINTER_ROLE(), ledger)  # the wiring survives the hand-over
    # The admin role moves only after the delay (AccessControlDefaultAdminRules).
    admins = (token, registry, ledger, market)
    assert all(c.defaultAdmin() == owner.address for c in admins)
    assert all(c.pendingDefaultAdmin()[0] == stranger.address for c in admins)
    with ape.reverts(token.AccessControlEnforcedDefaultAdminDelay):
        accept_admin(stranger, contracts)
    chain.pending_timestamp += token.ADMIN_TRANSFER_DELAY() + 1
    accept_admin(stranger, contracts)
    for contract in admins:
        assert contract.defaultAdmin() == stranger.address
        assert contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), stranger)
        assert not contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), owner)


def test_the_admin_role_cannot_be_granted_outright(owner, stranger, project):
    _, contracts = deploy_contracts(owner, project, policy=POLICY)
    for contract in contracts.values():
        with ape.reverts(contract.AccessControlEnforcedDefaultAdminRules):
            contract.grantRole(contract.DEFAULT_ADMIN_ROLE(), stranger, sender=owner)


def test_missing_record_says_how_to_deploy(tmp_path):
    with pytest.raises(DeploymentNotFoundError, match="ape run deploy"):
        load_deployment("ethereum:sepolia:node", tmp_path)


@pytest.mark.parametrize("bad", [{"alpha_bps": 0}, {"alpha_bps": 10_001},
                                 {"max_rejections": 0}, {"window_blocks": 0}])
def test_bad_policy_is_refused_before_any_transaction(bad):
    with pytest.raises(ValueError):
        BlacklistPolicy(**bad)
