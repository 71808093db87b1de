"""FairToken: ERC-20 metadata, role-gated minting, batch minting and EIP-2612 permit."""

from __future__ import annotations

import pytest
from conftest import UNIT, reverts
from eip712.messages import EIP712Domain, EIP712Message
from eth_pydantic_types import abi

ZERO_ADDRESS = "0x" + "00" * 20
FAR_FUTURE = 2**64


# --- helpers ------------------------------------------------------------------------------


def emitted(tx, event):
    """Arguments of every ``event`` log of ``tx``, in order, as plain dicts."""
    return [dict(log.event_arguments) for log in tx.events.filter(event)]


class Permit(EIP712Message):
    """The EIP-2612 ``Permit`` struct; the domain is given per message."""

    owner: abi.address
    spender: abi.address
    value: abi.uint256
    nonce: abi.uint256
    deadline: abi.uint256


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def minter(token, owner, aggregator):
    """An account the admin granted MINTER_ROLE to (the admin itself cannot mint)."""
    token.grantRole(token.MINTER_ROLE(), aggregator, sender=owner)
    return aggregator


@pytest.fixture
def holder(token, minter, trainers):
    """An account holding 100 FLT, who signs permits."""
    token.mint(trainers[0], 100 * UNIT, sender=minter)
    return trainers[0]


@pytest.fixture
def sign_permit(token, chain):
    """``sign_permit(signer, owner, spender, value, deadline, nonce=None)`` -> (v, r, s)."""
    domain = EIP712Domain(
        name="FairFL Token", version="1", chainId=chain.chain_id, verifyingContract=token.address
    )

    def _sign(signer, owner, spender, value, deadline, nonce=None):
        message = Permit(
            owner=owner.address,
            spender=spender.address,
            value=value,
            nonce=token.nonces(owner) if nonce is None else nonce,
            deadline=deadline,
            eip712_domain=domain,
        )
        signature = signer.sign_message(message)
        return signature.v, signature.r, signature.s

    return _sign


# --- metadata -----------------------------------------------------------------------------


def test_metadata(token):
    assert token.name() == "FairFL Token"
    assert token.symbol() == "FLT"
    assert token.decimals() == 18
    assert token.totalSupply() == 0


def test_roles_after_deployment(token, owner, ledger):
    assert token.hasRole(token.DEFAULT_ADMIN_ROLE(), owner)
    assert token.hasRole(token.MINTER_ROLE(), ledger)
    assert not token.hasRole(token.MINTER_ROLE(), owner)


# --- mint ---------------------------------------------------------------------------------


def test_minter_mints(token, minter, buyer):
    tx = token.mint(buyer, 250 * UNIT, sender=minter)

    assert token.balanceOf(buyer) == 250 * UNIT
    assert token.totalSupply() == 250 * UNIT
    assert emitted(tx, token.Transfer) == [
        {"from": ZERO_ADDRESS, "to": buyer.address, "value": 250 * UNIT}
    ]


@pytest.mark.parametrize("caller", ["owner", "stranger", "buyer"])
def test_mint_by_non_minter_reverts(token, caller, request):
    account = request.getfixturevalue(caller)
    with reverts(
        token.AccessControlUnauthorizedAccount, account=account, neededRole=token.MINTER_ROLE()
    ):
        token.mint(account, UNIT, sender=account)
    assert token.totalSupply() == 0


def test_revoked_minter_cannot_mint(token, owner, minter, buyer):
    token.revokeRole(token.MINTER_ROLE(), minter, sender=owner)
    with reverts(
        token.AccessControlUnauthorizedAccount, account=minter, neededRole=token.MINTER_ROLE()
    ):
        token.mint(buyer, UNIT, sender=minter)


# --- supply cap ---------------------------------------------------------------------------


def test_supply_is_capped_at_one_billion(token, minter, buyer):
    assert token.cap() == token.MAX_SUPPLY() == 10**9 * UNIT
    token.mint(buyer, token.cap() - 1, sender=minter)
    token.mint(buyer, 1, sender=minter)  # exactly the cap

    with reverts(token.ERC20ExceededCap, increasedSupply=token.cap() + 1, cap=token.cap()):
        token.mint(buyer, 1, sender=minter)
    assert token.totalSupply() == token.cap()

# --- permit -------------------------------------------------------------------------------


def test_domain_separator_matches_eip712_domain(token, chain):
    domain = EIP712Domain(
        name="FairFL Token", version="1", chainId=chain.chain_id, verifyingContract=token.address
    )
    assert token.DOMAIN_SEPARATOR() == domain.separator
    d = token.eip712Domain()
    assert (d.name, d.version, d.chainId, d.verifyingContract) == (
        "FairFL Token",
        "1",
        chain.chain_id,
        token.address,
    )


def test_permit_sets_allowance_and_bumps_nonce(token, holder, buyer, stranger, sign_permit):
    assert token.nonces(holder) == 0
    v, r, s = sign_permit(holder, holder, buyer, 40 * UNIT, FAR_FUTURE)

    # Anyone may relay the signature; the holder pays no gas.
    tx = token.permit(holder, buyer, 40 * UNIT, FAR_FUTURE, v, r, s, sender=stranger)

    assert token.allowance(holder, buyer) == 40 * UNIT
    assert token.nonces(holder) == 1
    assert emitted(tx, token.Approval) == [
        {"owner": holder.address, "spender": buyer.address, "value": 40 * UNIT}
    ]

    token.transferFrom(holder, buyer, 30 * UNIT, sender=buyer)
    assert token.balanceOf(buyer) == 30 * UNIT
    assert token.allowance(holder, buyer) == 10 * UNIT


def test_permit_cannot_be_replayed(token, holder, buyer, stranger, sign_permit):
    v, r, s = sign_permit(holder, holder, buyer, 40 * UNIT, FAR_FUTURE)
    token.permit(holder, buyer, 40 * UNIT, FAR_FUTURE, v, r, s, sender=stranger)
    token.approve(buyer, 0, sender=holder)

    with reverts(token.ERC2612InvalidSigner, owner=holder):
        token.permit(holder, buyer, 40 * UNIT, FAR_FUTURE, v, r, s, sender=stranger)
    assert token.allowance(holder, buyer) == 0
    assert token.nonces(holder) == 1


def test_expired_permit_reverts(token, holder, buyer, chain, sign_permit):
    deadline = chain.blocks.head.timestamp - 1
    v, r, s = sign_permit(holder, holder, buyer, 40 * UNIT, deadline)

    with reverts(token.ERC2612ExpiredSignature, deadline=deadline):
        token.permit(holder, buyer, 40 * UNIT, deadline, v, r, s, sender=buyer)
    assert token.allowance(holder, buyer) == 0
    assert token.nonces(holder) == 0


def test_permit_signed_by_someone_else_reverts(token, holder, attacker, sign_permit):
    v, r, s = sign_permit(attacker, holder, attacker, 100 * UNIT, FAR_FUTURE)

    with reverts(token.ERC2612InvalidSigner, signer=attacker, owner=holder):
        token.permit(holder, attacker, 100 * UNIT, FAR_FUTURE, v, r, s, sender=attacker)
    assert token.allowance(holder, attacker) == 0


def test_permit_with_altered_value_reverts(token, holder, buyer, sign_permit):
    v, r, s = sign_permit(holder, holder, buyer, 1 * UNIT, FAR_FUTURE)

    with reverts(token.ERC2612InvalidSigner, owner=holder):
        token.permit(holder, buyer, 100 * UNIT, FAR_FUTURE, v, r, s, sender=buyer)
    assert token.allowance(holder, buyer) == 0
