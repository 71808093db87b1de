"""The typed Python client of the ledger and the marketplace (fl_agent.chain.client).

One walk through every marketplace call the client offers, checked against the contracts'
own views, plus the records' ABI round trips and the errors the client turns reverts into.
"""

from __future__ import annotations

import pytest
from conftest import CID_MODEL, CID_ROUND_EVIDENCE, DELIVERY_WINDOW, MODEL_HASH, UNIT

from fl_agent.chain.client import FairFL
from fl_agent.chain.deployment import CONTRACTS, Deployment
from fl_agent.chain.records import (
    NO_MODEL_HASH,
    PPM,
    Listing,
    Purchase,
    PurchaseStatus,
    RejectReason,
    RoundResult,
)
from fl_agent.errors import ContractRevertError

PRICE = 20 * UNIT
CID_META = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"
PLAINTEXT_HASH = bytes(range(32))
KEY = bytes(range(1, 33))
SEALED = b"\x5e" * 92


@pytest.fixture
def fairfl(deployed, chain, owner, project):
    record = Deployment(
        network="ethereum:local:test",
        chain_id=chain.chain_id,
        deployer=owner.address,
        block=0,
        contracts={name: str(deployed[name].address) for name in CONTRACTS},
        payment_token=str(deployed["FairToken"].address),
        delivery_window=DELIVERY_WINDOW,
    )
    return FairFL(record, project)


@pytest.fixture
def funded(token, owner, marketplace):
    """funded(*accounts): each gets PRICE FLT and approves the marketplace for it."""
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)

    def _funded(*accounts):
        for a in accounts:
            token.mint(a, PRICE, sender=owner)
            token.approve(marketplace, PRICE, sender=a)

    return _funded


def test_round_result_round_trips_through_the_abi_in_the_new_field_order(
    fairfl, tasks, aggregator, trainers
):
    task_id = tasks.submitted(trainers[:3])
    result = RoundResult(
        new_model_cid=CID_MODEL,
        model_hash=MODEL_HASH,
        contributors=(trainers[0].address, trainers[1].address),
        scores_ppm=(600_000, 400_000),
        rejected=(trainers[2].address,),
        reasons=(RejectReason.TRIGGER,),
        evidence_cid=CID_ROUND_EVIDENCE,
        aggregation_millis=77,
    )
    assert result.as_abi() == (
        CID_MODEL,
        MODEL_HASH,
        [trainers[0].address, trainers[1].address],
        [600_000, 400_000],
        [trainers[2].address],
        [6],
        CID_ROUND_EVIDENCE,
        77,
    )
    # positionally, too: the dataclass fields are in ABI order
    assert RoundResult(*result.as_abi()).as_abi() == result.as_abi()
    fairfl.ledger.finalize_round(task_id, 1, result, sender=aggregator)
    [event] = fairfl.ledger.events("RoundFinalized", taskId=task_id)
    assert RoundResult.from_chain(event.result) == result
    assert list(event.rewards) == [1_000 * UNIT * s // PPM for s in result.scores_ppm]


def test_round_result_defaults_and_a_missing_model_hash(fairfl, tasks, aggregator, trainers):
    defaults = RoundResult("cid")
    assert defaults.as_abi() == ("cid", NO_MODEL_HASH, [], [], [], [], "", 0)
    with pytest.raises(ValueError, match="32-byte"):
        RoundResult("cid", model_hash=b"\x01" * 31)
    task_id = tasks.submitted(trainers[:2])
    unhashed = RoundResult(
        CID_MODEL,
        contributors=(trainers[0].address, trainers[1].address),
        scores_ppm=(PPM // 2, PPM // 2),
        evidence_cid=CID_ROUND_EVIDENCE,
    )
    with pytest.raises(ContractRevertError) as info:
        fairfl.ledger.finalize_round(task_id, 1, unhashed, sender=aggregator)
    assert info.value.error_name == "TaskLedgerEmptyModelHash"


def test_the_marketplace_client_walks_through_escrow_delivery_refund_and_withdrawal(
    fairfl, chain, tasks, owner, trainers, accounts, funded
):
    market, ledger = fairfl.marketplace, fairfl.ledger
    payees = trainers[:2]
    task_id = tasks.completed(payees, scores=[600_000, 400_000])
    assert market.payment_token() == fairfl.token.address == fairfl.payment_token.address
    assert fairfl.payment_token.symbol() == "FLT"
    assert market.delivery_window() == DELIVERY_WINDOW
    assert market.model_of_task(task_id) == 0
    assert ledger.reward_share(task_id, payees[0]) == (600 * UNIT, 1_000 * UNIT)

    model_id, _ = market.list_task_model(
        task_id, CID_MODEL, CID_META, PLAINTEXT_HASH, PRICE, sender=owner
    )
    assert market.model_of_task(task_id) == model_id == 1
    assert market.listing(model_id) == Listing(
        model_id, owner.address, True, 0, PRICE, 0, 0, task_id, PLAINTEXT_HASH, CID_MODEL, CID_META
    )
    assert market.listings() == [market.listing(model_id)]

    first, second, third = accounts[7:10]
    funded(first, second, third)
    bought = market.buy(model_id, PRICE, KEY, sender=first)
    assert market.purchase(model_id, first) == Purchase(
        model_id,
        first.address,
        PurchaseStatus.PENDING,
        bought.block,
        bought.block + DELIVERY_WINDOW,
        PRICE,
        KEY,
    )
    market.buy(model_id, PRICE, KEY, sender=second)
    market.buy(model_id, PRICE, KEY, sender=third)
    market.update_buyer_key(model_id, bytes(32 * [9]), sender=third)
    assert market.purchase(model_id, third).buyer_key == bytes(32 * [9])
    assert market.listing(model_id).escrowed == 3 * PRICE

    market.deliver_key(model_id, first, KEY, SEALED, sender=owner)
    market.deliver_keys(model_id, [second], [KEY], [SEALED], sender=owner)
    with pytest.raises(ContractRevertError) as info:  # sealed to the key third replaced
        market.deliver_key(model_id, third, KEY, SEALED, sender=owner)
    assert info.value.error_name == "ModelMarketplaceBuyerKeyChanged"
    assert market.purchase(model_id, third).status is PurchaseStatus.PENDING
    assert market.has_access(model_id, second)
    assert market.purchase(model_id, second).status is PurchaseStatus.DELIVERED
    chain.mine(DELIVERY_WINDOW)
    market.refund(model_id, sender=third)
    assert market.purchase(model_id, third).status is PurchaseStatus.REFUNDED
    assert fairfl.payment_token.balance_of(third) == PRICE

    assert market.withdrawable(model_id, payees[0]) == 2 * PRICE * 6 // 10
    market.withdraw(model_id, sender=payees[0])
    assert market.withdrawn(model_id, payees[0]) == 2 * PRICE * 6 // 10
    market.set_price(model_id, 2 * PRICE, sender=owner)
    market.delist(model_id, sender=owner)
    listing = market.listing(model_id)
    assert (listing.price, listing.active, listing.sales, listing.revenue, listing.escrowed) == (
        2 * PRICE,
        False,
        2,
        2 * PRICE,
        0,
    )


def test_the_client_names_the_custom_error_and_checks_its_arguments(
    fairfl, tasks, owner, trainers, buyer
):
    task_id = tasks.completed(trainers[:2])
    fairfl.marketplace.list_task_model(
        task_id, CID_MODEL, CID_META, PLAINTEXT_HASH, PRICE, sender=owner
    )
    with pytest.raises(ContractRevertError) as info:
        fairfl.marketplace.refund(1, sender=buyer)
    assert info.value.error_name == "ModelMarketplaceNotPending"
    with pytest.raises(ValueError, match="32-byte"):
        fairfl.marketplace.buy(1, PRICE, b"\x01" * 31, sender=buyer)
    with pytest.raises(ValueError, match="2 buyers, 2 buyer keys and 1 sealed keys"):
        fairfl.marketplace.deliver_keys(1, [buyer, owner], [KEY, KEY], [SEALED], sender=owner)
    with pytest.raises(ValueError, match="2 buyers, 1 buyer keys and 2 sealed keys"):
        fairfl.marketplace.deliver_keys(1, [buyer, owner], [KEY], [SEALED] * 2, sender=owner)
    with pytest.raises(ValueError, match="32-byte"):
        fairfl.marketplace.deliver_key(1, buyer, KEY[:31], SEALED, sender=owner)
    with pytest.raises(ContractRevertError) as info:
        fairfl.marketplace.deliver_key(1, buyer, KEY, SEALED[:91], sender=owner)
    assert info.value.error_name == "ModelMarketplaceInvalidSealedKey"
