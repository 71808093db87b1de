"""Contract tests of ModelMarketplace.

Listing (free-standing and a task's final model), buying with an allowance or an EIP-2612
permit, key delivery, price changes, delisting, the pull-based revenue split, pausing,
reentrancy through a hostile token, and the gas budget of ``buy``.

Unless a test says otherwise, ``model`` is listed by ``seller`` (a trainer) at ``PRICE`` and its
revenue is shared by three trainers in 50/30/20 %.
"""

from __future__ import annotations

import pytest
from ape.utils import ZERO_ADDRESS
from conftest import CID_MODEL, CID_SPEC, UNIT, reverts
from eth_account import Account
from eth_utils import keccak, to_checksum_address

PRICE_UNIT = 10_000
PRICE = 20 * UNIT
SHARES = [5_000, 3_000, 2_000]
CID_META = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"
PLAINTEXT_HASH = keccak(b"plaintext of the final model")
KEY = bytes(range(32))  # a buyer's X25519 public key
ENCRYPTED_KEY = b"\xc0\xfe" * 40  # the content key, sealed for KEY
EVIDENCE = CID_SPEC  # any CID will do as blacklisting evidence
BUY_GAS_BUDGET = 150_000


# --------------------------------------------------------------------------- helpers


def only_event(tx, event_type):
    """The single log of ``event_type`` in ``tx``, as a dict of its arguments."""
    logs = tx.events.filter(event_type)
    assert len(logs) == 1, f"expected one {event_type.name}, got {len(logs)}"
    return dict(logs[0].event_arguments)


def addresses(accounts):
    return [getattr(a, "address", a) for a in accounts]


def list_model(market, seller, payees, shares, price=PRICE):
    """Lists a free-standing model with the usual CIDs and hash."""
    return market.list(
        CID_MODEL, CID_META, PLAINTEXT_HASH, price, addresses(payees), shares, sender=seller
    )


def list_task_model(market, task_id, creator, price=PRICE, encrypted_cid=CID_MODEL):
    """Lists the final model of ``task_id`` with the usual CIDs and hash."""
    return market.listTaskModel(
        task_id, encrypted_cid, CID_META, PLAINTEXT_HASH, price, sender=creator
    )


def sign_permit(token, holder, spender, value, deadline, nonce=None):
    """(v, r, s) of an EIP-2612 permit signed with ``holder``'s key."""
    from ape import chain

    message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": "FairFL Token",
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": holder.address,
            "spender": spender.address,
            "value": value,
            "nonce": token.nonces(holder) if nonce is None else nonce,
            "deadline": deadline,
        },
    }
    signed = Account.sign_typed_data(holder.private_key, full_message=message)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def mint(token, owner):
    """mint(account, amount): owner, the token admin, makes itself a minter for the test."""
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)

    def _mint(account, amount):
        token.mint(account, amount, sender=owner)

    return _mint


@pytest.fixture
def fund(mint, token, marketplace):
    """fund(account, amount, allowance=amount): tokens plus an allowance for the marketplace."""

    def _fund(account, amount=PRICE, allowance=None, market=marketplace):
        mint(account, amount)
        token.approve(market, amount if allowance is None else allowance, sender=account)

    return _fund


@pytest.fixture
def purchase(fund, marketplace):
    """purchase(account, model_id, price): funds ``account`` with exactly ``price`` and buys."""

    def _purchase(account, model_id, price=PRICE, key=KEY):
        fund(account, price)
        return marketplace.buy(model_id, price, key, sender=account)

    return _purchase


@pytest.fixture
def seller(trainers):
    """A trainer who lists a model of their own and shares its revenue with two others."""
    return trainers[0]


@pytest.fixture
def payees(trainers):
    return trainers[:3]


@pytest.fixture
def listed(marketplace, seller, payees):
    """The tx that listed ``model``."""
    return list_model(marketplace, seller, payees, SHARES)


@pytest.fixture
def model(listed, marketplace):
    return marketplace.modelCount()


@pytest.fixture
def blacklist(registry, owner):
    def _blacklist(account):
        registry.blacklist(account, EVIDENCE, sender=owner)

    return _blacklist


# --------------------------------------------------------------------------- list


def test_list_emits_every_field_and_stores_the_listing(marketplace, listed, seller, payees):
    assert listed.return_value == 1
    assert only_event(listed, marketplace.ModelListed) == {
        "modelId": 1,
        "seller": seller.address,
        "taskId": 0,
        "price": PRICE,
        "encryptedCid": CID_MODEL,
        "metadataCid": CID_META,
        "plaintextHash": PLAINTEXT_HASH,
        "payees": addresses(payees),
        "sharesBps": SHARES,
    }
    stored = marketplace.listing(1)
    assert stored.seller == seller.address
    assert stored.active is True
    assert (stored.sales, stored.revenue, stored.taskId) == (0, 0, 0)
    assert stored.price == PRICE
    assert stored.plaintextHash == PLAINTEXT_HASH
    assert (stored.encryptedCid, stored.metadataCid) == (CID_MODEL, CID_META)
    assert tuple(marketplace.payeesOf(1)) == (addresses(payees), SHARES)
    assert marketplace.modelCount() == 1


def test_list_numbers_models_from_one(marketplace, model, stranger):
    tx = list_model(marketplace, stranger, [stranger], [10_000], price=PRICE_UNIT)
    assert model == 1
    assert tx.return_value == 2
    assert marketplace.modelCount() == 2
    assert marketplace.listing(2).seller == stranger.address
    assert marketplace.listing(2).price == PRICE_UNIT  # the smallest price is fine
    assert tuple(marketplace.payeesOf(2)) == ([stranger.address], [10_000])


def test_unknown_model_views_are_empty(marketplace, model, buyer):
    assert marketplace.listing(2).seller == ZERO_ADDRESS
    assert tuple(marketplace.payeesOf(2)) == ([], [])
    assert marketplace.hasAccess(2, buyer) is False


@pytest.mark.parametrize("encrypted_cid, metadata_cid", [("", CID_META), (CID_MODEL, "")])
def test_list_rejects_an_empty_cid(marketplace, seller, encrypted_cid, metadata_cid):
    with reverts(marketplace.ModelMarketplaceEmptyCid):
        marketplace.list(
            encrypted_cid, metadata_cid, PLAINTEXT_HASH, PRICE, [seller], [10_000], sender=seller
        )
    assert marketplace.modelCount() == 0


@pytest.mark.parametrize("price", [0, 1, PRICE_UNIT - 1, PRICE_UNIT + 1, UNIT + PRICE_UNIT // 2])
def test_list_rejects_a_price_that_is_not_a_positive_multiple_of_the_unit(
    marketplace, seller, price
):
    with reverts(marketplace.ModelMarketplaceInvalidPrice, price=price):
        list_model(marketplace, seller, [seller], [10_000], price=price)


ZERO = "0x0000000000000000000000000000000000000000"
INVALID_SHARES = {
    "empty": lambda a, b, c: ([], []),
    "more payees than shares": lambda a, b, c: ([a, b], [10_000]),
    "more shares than payees": lambda a, b, c: ([a], [5_000, 5_000]),
    "zero address": lambda a, b, c: ([a, ZERO], [5_000, 5_000]),
    "zero share": lambda a, b, c: ([a, b, c], [5_000, 0, 5_000]),
    "duplicate payee": lambda a, b, c: ([a, b, a], [4_000, 2_000, 4_000]),
    "sum below 10000": lambda a, b, c: ([a, b], [5_000, 4_999]),
    "sum above 10000": lambda a, b, c: ([a, b], [5_000, 5_001]),
    "single share below 10000": lambda a, b, c: ([a], [9_999]),
}


@pytest.mark.parametrize("case", INVALID_SHARES, ids=list(INVALID_SHARES))
def test_list_rejects_invalid_payees_or_shares(marketplace, seller, payees, case):
    payee_list, shares = INVALID_SHARES[case](*addresses(payees))
    with reverts(marketplace.ModelMarketplaceInvalidShares):
        list_model(marketplace, seller, payee_list, shares)
    assert marketplace.modelCount() == 0


def test_list_rejects_a_blacklisted_seller(marketplace, blacklist, seller):
    blacklist(seller)
    with reverts(marketplace.ModelMarketplaceBlacklisted, account=seller):
        list_model(marketplace, seller, [seller], [10_000])


# --------------------------------------------------------------------------- listTaskModel


@pytest.mark.parametrize(
    "scores, expected_shares",
    [
        pytest.param([6_000, 3_000, 1_000], [6_000, 3_000, 1_000], id="exact"),
        # 700/4800 of 10_000 = 1458.33, 2000/4800 = 4166.67: 2 bps left over, to the largest earner.
        pytest.param(
            [700, 700, 700, 2_000, 700], [1_458, 1_458, 1_458, 4_168, 1_458], id="remainder"
        ),
        # An equal three-way split leaves 1 bp; on a tie it goes to the first contributor.
        pytest.param([3_000, 3_000, 3_000], [3_334, 3_333, 3_333], id="tie"),
    ],
)
def test_task_model_is_shared_in_proportion_to_earned_rewards(
    marketplace, ledger, tasks, owner, trainers, scores, expected_shares
):
    contributors = trainers[: len(scores)]
    task_id = tasks.completed(contributors, scores=scores)

    tx = list_task_model(marketplace, task_id, owner)

    assert sum(expected_shares) == 10_000
    assert tuple(marketplace.payeesOf(1)) == (addresses(contributors), expected_shares)
    assert only_event(tx, marketplace.ModelListed) == {
        "modelId": 1,
        "seller": owner.address,
        "taskId": task_id,
        "price": PRICE,
        "encryptedCid": CID_MODEL,
        "metadataCid": CID_META,
        "plaintextHash": PLAINTEXT_HASH,
        "payees": addresses(contributors),
        "sharesBps": expected_shares,
    }
    assert marketplace.listing(1).taskId == task_id
    assert marketplace.listing(1).seller == owner.address


def test_task_model_leaves_out_a_blacklisted_contributor(
    marketplace, tasks, owner, trainers, blacklist
):
    task_id = tasks.completed(trainers[:3], scores=[6_000, 3_000, 1_000])
    blacklist(trainers[1])

    list_task_model(marketplace, task_id, owner)

    # 6000/7000 = 8571.4 and 1000/7000 = 1428.6 bps; the spare bp goes to the largest earner.
    assert tuple(marketplace.payeesOf(1)) == (addresses([trainers[0], trainers[2]]), [8_572, 1_428])


def test_task_model_only_by_the_task_creator(marketplace, tasks, trainers, stranger):
    task_id = tasks.completed(trainers[:2])
    with reverts(marketplace.ModelMarketplaceNotTaskCreator, taskId=task_id, caller=stranger):
        list_task_model(marketplace, task_id, stranger)


def test_task_model_of_an_unknown_task_has_no_creator(marketplace, owner):
    with reverts(marketplace.ModelMarketplaceNotTaskCreator, taskId=42, caller=owner):
        list_task_model(marketplace, 42, owner)


def test_task_model_requires_a_completed_task(marketplace, tasks, trainers, owner):
    task_id = tasks.started(trainers[:2], rounds=1)
    with reverts(marketplace.ModelMarketplaceTaskNotCompleted, taskId=task_id):
        list_task_model(marketplace, task_id, owner)


def test_task_model_without_rewards_has_no_contributors(marketplace, tasks, trainers, owner):
    task_id = tasks.completed(trainers[:2], scores=[0, 0])
    with reverts(marketplace.ModelMarketplaceNoContributors, taskId=task_id):
        list_task_model(marketplace, task_id, owner)


def test_task_model_whose_contributors_are_all_blacklisted_has_no_contributors(
    marketplace, tasks, trainers, owner, blacklist
):
    task_id = tasks.completed(trainers[:2])
    blacklist(trainers[0])
    blacklist(trainers[1])
    with reverts(marketplace.ModelMarketplaceNoContributors, taskId=task_id):
        list_task_model(marketplace, task_id, owner)


def test_task_model_checks_cids_price_and_creator_blacklist(
    marketplace, tasks, trainers, owner, blacklist
):
    task_id = tasks.completed(trainers[:2])
    with reverts(marketplace.ModelMarketplaceEmptyCid):
        list_task_model(marketplace, task_id, owner, encrypted_cid="")
    with reverts(marketplace.ModelMarketplaceInvalidPrice, price=PRICE + 1):
        list_task_model(marketplace, task_id, owner, price=PRICE + 1)
    blacklist(owner)
    with reverts(marketplace.ModelMarketplaceBlacklisted, account=owner):
        list_task_model(marketplace, task_id, owner)
    assert marketplace.modelCount() == 0


# --------------------------------------------------------------------------- buy


def test_buy_takes_the_price_and_grants_access(
    marketplace, token, model, seller, buyer, stranger, fund
):
    fund(buyer, 3 * PRICE, allowance=2 * PRICE)

    tx = marketplace.buy(model, 2 * PRICE, KEY, sender=buyer)  # maxPrice is a limit, not an amount

    assert only_event(tx, marketplace.ModelPurchased) == {
        "modelId": model,
        "buyer": buyer.address,
        "seller": seller.address,
        "price": PRICE,
        "buyerKey": KEY,
        "sales": 1,
    }
    assert token.balanceOf(buyer) == 2 * PRICE
    assert token.balanceOf(marketplace) == PRICE
    assert token.allowance(buyer, marketplace) == PRICE
    assert marketplace.hasAccess(model, buyer) is True
    assert marketplace.hasAccess(model, stranger) is False
    access = marketplace.accessOf(model, buyer)
    assert (access.purchasedBlock, access.pricePaid, access.keyDelivered) == (
        tx.block_number,
        PRICE,
        False,
    )
    assert (marketplace.listing(model).sales, marketplace.listing(model).revenue) == (1, PRICE)


def test_buy_counts_sales_and_revenue_at_the_price_paid(
    marketplace, model, seller, buyer, attacker, stranger, purchase
):
    purchase(buyer, model)
    tx = purchase(attacker, model)
    assert only_event(tx, marketplace.ModelPurchased)["sales"] == 2
    marketplace.setPrice(model, 3 * PRICE, sender=seller)
    tx = purchase(stranger, model, price=3 * PRICE)

    assert only_event(tx, marketplace.ModelPurchased)["sales"] == 3
    assert only_event(tx, marketplace.ModelPurchased)["price"] == 3 * PRICE
    assert marketplace.listing(model).sales == 3
    assert marketplace.listing(model).revenue == 5 * PRICE
    assert marketplace.accessOf(model, buyer).pricePaid == PRICE
    assert marketplace.accessOf(model, stranger).pricePaid == 3 * PRICE


@pytest.mark.parametrize("model_id", [0, 2])
def test_buy_rejects_an_unknown_model(marketplace, model, buyer, fund, model_id):
    fund(buyer)
    with reverts(marketplace.ModelMarketplaceUnknownModel, modelId=model_id):
        marketplace.buy(model_id, PRICE, KEY, sender=buyer)


def test_buy_rejects_a_delisted_model(marketplace, model, seller, buyer, fund):
    fund(buyer)
    marketplace.delist(model, sender=seller)
    with reverts(marketplace.ModelMarketplaceDelisted, modelId=model):
        marketplace.buy(model, PRICE, KEY, sender=buyer)


def test_buy_rejects_a_blacklisted_buyer(marketplace, model, buyer, fund, blacklist):
    fund(buyer)
    blacklist(buyer)
    with reverts(marketplace.ModelMarketplaceBlacklisted, account=buyer):
        marketplace.buy(model, PRICE, KEY, sender=buyer)


def test_buy_rejects_a_price_above_the_buyers_limit(marketplace, token, model, seller, buyer, fund):
    fund(buyer, 2 * PRICE)
    marketplace.setPrice(model, 2 * PRICE, sender=seller)  # e.g. front-running the buyer
    with reverts(marketplace.ModelMarketplacePriceAboveMax, price=2 * PRICE, maxPrice=PRICE):
        marketplace.buy(model, PRICE, KEY, sender=buyer)
    assert token.balanceOf(buyer) == 2 * PRICE


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_buy_rejects_a_buyer_key_that_is_not_32_bytes(marketplace, model, buyer, fund, length):
    fund(buyer)
    with reverts(marketplace.ModelMarketplaceInvalidBuyerKey, length=length):
        marketplace.buy(model, PRICE, b"\x07" * length, sender=buyer)


def test_buy_twice_is_rejected(marketplace, token, model, buyer, purchase, fund):
    purchase(buyer, model)
    fund(buyer)
    with reverts(marketplace.ModelMarketplaceAlreadyPurchased, modelId=model, buyer=buyer):
        marketplace.buy(model, PRICE, KEY, sender=buyer)
    assert token.balanceOf(buyer) == PRICE
    assert marketplace.listing(model).sales == 1


@pytest.mark.parametrize("allowance", [0, PRICE - PRICE_UNIT])
def test_buy_rejects_an_allowance_below_the_price(
    marketplace, token, model, buyer, fund, allowance
):
    fund(buyer, PRICE, allowance=allowance)
    with reverts(
        marketplace.ModelMarketplaceInsufficientAllowance, allowance=allowance, price=PRICE
    ):
        marketplace.buy(model, PRICE, KEY, sender=buyer)
    assert token.balanceOf(buyer) == PRICE


# --------------------------------------------------------------------------- buyWithPermit


@pytest.fixture
def deadline(chain):
    return chain.pending_timestamp + 3_600


def test_buy_with_permit_needs_no_prior_approve(
    marketplace, token, model, seller, buyer, mint, deadline
):
    mint(buyer, PRICE)
    assert token.allowance(buyer, marketplace) == 0
    max_price = PRICE + 5 * PRICE_UNIT
    v, r, s = sign_permit(token, buyer, marketplace, max_price, deadline)

    tx = marketplace.buyWithPermit(model, max_price, KEY, deadline, v, r, s, sender=buyer)

    assert token.nonces(buyer) == 1  # the permit was used
    assert token.allowance(buyer, marketplace) == max_price - PRICE
    assert token.balanceOf(buyer) == 0
    assert token.balanceOf(marketplace) == PRICE
    assert marketplace.hasAccess(model, buyer) is True
    assert only_event(tx, marketplace.ModelPurchased) == {
        "modelId": model,
        "buyer": buyer.address,
        "seller": seller.address,
        "price": PRICE,
        "buyerKey": KEY,
        "sales": 1,
    }


def test_buy_with_permit_survives_a_front_run_permit(
    marketplace, token, model, buyer, attacker, mint, deadline
):
    mint(buyer, PRICE)
    v, r, s = sign_permit(token, buyer, marketplace, PRICE, deadline)
    # Someone copies the permit from the mempool and submits it first.
    token.permit(buyer, marketplace, PRICE, deadline, v, r, s, sender=attacker)
    assert token.nonces(buyer) == 1

    marketplace.buyWithPermit(model, PRICE, KEY, deadline, v, r, s, sender=buyer)

    assert marketplace.hasAccess(model, buyer) is True
    assert token.balanceOf(marketplace) == PRICE
    assert token.nonces(buyer) == 1


def test_buy_with_a_bad_permit_and_no_allowance_is_rejected(
    marketplace, token, model, buyer, attacker, mint, deadline
):
    mint(buyer, PRICE)
    v, r, s = sign_permit(token, attacker, marketplace, PRICE, deadline)  # wrong signer
    with reverts(marketplace.ModelMarketplaceInsufficientAllowance, allowance=0, price=PRICE):
        marketplace.buyWithPermit(model, PRICE, KEY, deadline, v, r, s, sender=buyer)
    assert token.balanceOf(buyer) == PRICE


def test_buy_with_permit_applies_the_buy_checks(
    marketplace, token, model, seller, buyer, mint, deadline
):
    mint(buyer, 2 * PRICE)
    marketplace.setPrice(model, 2 * PRICE, sender=seller)
    v, r, s = sign_permit(token, buyer, marketplace, PRICE, deadline)
    with reverts(marketplace.ModelMarketplacePriceAboveMax, price=2 * PRICE, maxPrice=PRICE):
        marketplace.buyWithPermit(model, PRICE, KEY, deadline, v, r, s, sender=buyer)
    assert token.nonces(buyer) == 0


# --------------------------------------------------------------------------- deliverKey


def test_deliver_key_publishes_the_sealed_key(
    marketplace, model, seller, buyer, attacker, purchase
):
    purchase(buyer, model)
    purchase(attacker, model)

    tx = marketplace.deliverKey(model, buyer, ENCRYPTED_KEY, sender=seller)

    assert only_event(tx, marketplace.KeyDelivered) == {
        "modelId": model,
        "buyer": buyer.address,
        "encryptedKey": ENCRYPTED_KEY,
    }
    assert marketplace.accessOf(model, buyer).keyDelivered is True
    assert marketplace.accessOf(model, attacker).keyDelivered is False
    assert marketplace.accessOf(model, buyer).pricePaid == PRICE


def test_deliver_key_only_by_the_seller(marketplace, model, payees, buyer, purchase):
    purchase(buyer, model)
    other_payee = payees[1]
    with reverts(marketplace.ModelMarketplaceNotSeller, modelId=model, caller=other_payee):
        marketplace.deliverKey(model, buyer, ENCRYPTED_KEY, sender=other_payee)
    assert marketplace.accessOf(model, buyer).keyDelivered is False


def test_deliver_key_for_an_unknown_model(marketplace, model, seller, buyer):
    with reverts(marketplace.ModelMarketplaceUnknownModel, modelId=2):
        marketplace.deliverKey(2, buyer, ENCRYPTED_KEY, sender=seller)


def test_deliver_key_to_someone_who_did_not_buy(marketplace, model, seller, stranger):
    with reverts(marketplace.ModelMarketplaceNotPurchased, modelId=model, buyer=stranger):
        marketplace.deliverKey(model, stranger, ENCRYPTED_KEY, sender=seller)


# --------------------------------------------------------------------------- setPrice / delist


def test_set_price_changes_what_the_next_buyer_pays(marketplace, token, model, seller, buyer, fund):
    tx = marketplace.setPrice(model, PRICE_UNIT, sender=seller)

    assert only_event(tx, marketplace.PriceChanged) == {
        "modelId": model,
        "oldPrice": PRICE,
        "newPrice": PRICE_UNIT,
    }
    assert marketplace.listing(model).price == PRICE_UNIT
    fund(buyer, PRICE)
    marketplace.buy(model, PRICE, KEY, sender=buyer)
    assert token.balanceOf(buyer) == PRICE - PRICE_UNIT


def test_blacklisted_seller_cannot_change_the_price_but_still_delivers_keys(
    marketplace, registry, owner, model, seller, buyer, fund
):
    fund(buyer, PRICE)
    marketplace.buy(model, PRICE, KEY, sender=buyer)
    registry.blacklist(seller, "bafkreievidence", sender=owner)
    with reverts(marketplace.ModelMarketplaceBlacklisted, account=seller.address):
        marketplace.setPrice(model, PRICE_UNIT, sender=seller)
    assert marketplace.listing(model).price == PRICE
    marketplace.deliverKey(model, buyer, b"sealed", sender=seller)  # the buyer paid: deliver
    assert marketplace.accessOf(model, buyer).keyDelivered


def test_set_price_only_by_the_seller(marketplace, model, payees):
    with reverts(marketplace.ModelMarketplaceNotSeller, modelId=model, caller=payees[1]):
        marketplace.setPrice(model, 2 * PRICE, sender=payees[1])
    with reverts(marketplace.ModelMarketplaceUnknownModel, modelId=2):
        marketplace.setPrice(2, 2 * PRICE, sender=payees[1])
    assert marketplace.listing(model).price == PRICE


def test_set_price_of_a_delisted_model(marketplace, model, seller):
    marketplace.delist(model, sender=seller)
    with reverts(marketplace.ModelMarketplaceDelisted, modelId=model):
        marketplace.setPrice(model, 2 * PRICE, sender=seller)


@pytest.mark.parametrize("price", [0, PRICE + 1, 12_345])
def test_set_price_rejects_an_invalid_price(marketplace, model, seller, price):
    with reverts(marketplace.ModelMarketplaceInvalidPrice, price=price):
        marketplace.setPrice(model, price, sender=seller)
    assert marketplace.listing(model).price == PRICE


def test_delist_stops_sales_but_past_buyers_keep_access(
    marketplace, token, model, seller, payees, buyer, stranger, purchase, fund
):
    purchase(buyer, model)

    tx = marketplace.delist(model, sender=seller)

    assert only_event(tx, marketplace.ModelDelisted) == {"modelId": model}
    assert marketplace.listing(model).active is False
    fund(stranger)
    with reverts(marketplace.ModelMarketplaceDelisted, modelId=model):
        marketplace.buy(model, PRICE, KEY, sender=stranger)
    # The past buyer keeps access, still gets the key, and the payees still get paid.
    assert marketplace.hasAccess(model, buyer) is True
    marketplace.deliverKey(model, buyer, ENCRYPTED_KEY, sender=seller)
    assert marketplace.accessOf(model, buyer).keyDelivered is True
    marketplace.withdraw(model, sender=payees[0])
    assert token.balanceOf(payees[0]) == PRICE * SHARES[0] // 10_000


def test_delist_only_by_the_seller(marketplace, model, buyer):
    with reverts(marketplace.ModelMarketplaceNotSeller, modelId=model, caller=buyer):
        marketplace.delist(model, sender=buyer)
    with reverts(marketplace.ModelMarketplaceUnknownModel, modelId=2):
        marketplace.delist(2, sender=buyer)
    assert marketplace.listing(model).active is True


def test_delist_twice_is_rejected(marketplace, model, seller):
    marketplace.delist(model, sender=seller)
    with reverts(marketplace.ModelMarketplaceDelisted, modelId=model):
        marketplace.delist(model, sender=seller)


# --------------------------------------------------------------------------- withdraw


def test_withdraw_pays_the_callers_share(marketplace, token, model, payees, buyer, purchase):
    purchase(buyer, model)
    payee = payees[1]
    share = PRICE * SHARES[1] // 10_000
    assert marketplace.withdrawable(model, payee) == share

    tx = marketplace.withdraw(model, sender=payee)

    assert only_event(tx, marketplace.RevenueWithdrawn) == {
        "modelId": model,
        "payee": payee.address,
        "amount": share,
    }
    assert tx.return_value == share
    assert token.balanceOf(payee) == share
    assert token.balanceOf(marketplace) == PRICE - share
    assert marketplace.withdrawn(model, payee) == share
    assert marketplace.withdrawable(model, payee) == 0
    assert marketplace.withdrawable(model, payees[0]) == PRICE * SHARES[0] // 10_000


def test_withdrawals_split_revenue_exactly_over_several_sales(
    marketplace, token, trainers, buyer, attacker, stranger, aggregator, purchase
):
    # Shares with no common factor and prices of a few units: any rounding would show.
    payees, shares = trainers[:3], [5_001, 3_333, 1_666]
    seller = trainers[0]
    list_model(marketplace, seller, payees, shares, price=7 * PRICE_UNIT)
    model = marketplace.modelCount()

    purchase(buyer, model, price=7 * PRICE_UNIT)
    marketplace.withdraw(model, sender=payees[2])  # one payee withdraws between sales
    marketplace.setPrice(model, 13 * PRICE_UNIT, sender=seller)
    purchase(attacker, model, price=13 * PRICE_UNIT)
    purchase(stranger, model, price=13 * PRICE_UNIT)
    marketplace.withdraw(model, sender=payees[0])
    marketplace.setPrice(model, UNIT, sender=seller)
    purchase(aggregator, model, price=UNIT)

    revenue = 33 * PRICE_UNIT + UNIT
    assert marketplace.listing(model).revenue == revenue
    for payee, share in zip(payees, shares, strict=True):
        if marketplace.withdrawable(model, payee):
            marketplace.withdraw(model, sender=payee)
        assert marketplace.withdrawn(model, payee) == revenue * share // 10_000
        assert token.balanceOf(payee) == revenue * share // 10_000
        assert marketplace.withdrawable(model, payee) == 0
    assert sum(marketplace.withdrawn(model, p) for p in payees) == revenue
    assert token.balanceOf(marketplace) == 0  # no dust


def test_withdraw_keeps_each_models_revenue_apart(
    marketplace, token, model, seller, payees, buyer, purchase
):
    list_model(marketplace, seller, [payees[2]], [10_000])
    purchase(buyer, 2)
    assert marketplace.withdrawable(model, payees[2]) == 0
    with reverts(marketplace.ModelMarketplaceNothingToWithdraw, modelId=model, payee=payees[2]):
        marketplace.withdraw(model, sender=payees[2])
    marketplace.withdraw(2, sender=payees[2])
    assert token.balanceOf(payees[2]) == PRICE


@pytest.mark.parametrize("model_id", [0, 2])
def test_withdraw_from_an_unknown_model(marketplace, model, payees, model_id):
    with reverts(marketplace.ModelMarketplaceUnknownModel, modelId=model_id):
        marketplace.withdraw(model_id, sender=payees[0])


def test_withdraw_by_a_non_payee(marketplace, model, buyer, purchase):
    purchase(buyer, model)
    with reverts(marketplace.ModelMarketplaceNothingToWithdraw, modelId=model, payee=buyer):
        marketplace.withdraw(model, sender=buyer)


def test_withdraw_before_any_sale(marketplace, model, payees):
    with reverts(marketplace.ModelMarketplaceNothingToWithdraw, modelId=model, payee=payees[0]):
        marketplace.withdraw(model, sender=payees[0])


def test_withdraw_again_needs_new_revenue(
    marketplace, token, model, payees, buyer, attacker, purchase
):
    purchase(buyer, model)
    marketplace.withdraw(model, sender=payees[0])
    with reverts(marketplace.ModelMarketplaceNothingToWithdraw, modelId=model, payee=payees[0]):
        marketplace.withdraw(model, sender=payees[0])
    purchase(attacker, model)
    tx = marketplace.withdraw(model, sender=payees[0])
    assert only_event(tx, marketplace.RevenueWithdrawn)["amount"] == PRICE * SHARES[0] // 10_000
    assert token.balanceOf(payees[0]) == 2 * PRICE * SHARES[0] // 10_000


def test_withdraw_by_a_blacklisted_payee(
    marketplace, token, model, payees, buyer, purchase, blacklist
):
    purchase(buyer, model)
    blacklist(payees[1])
    with reverts(marketplace.ModelMarketplaceBlacklisted, account=payees[1]):
        marketplace.withdraw(model, sender=payees[1])
    assert token.balanceOf(payees[1]) == 0
    assert marketplace.withdrawable(model, payees[1]) == PRICE * SHARES[1] // 10_000


def test_withdraw_works_while_paused(marketplace, token, model, payees, owner, buyer, purchase):
    purchase(buyer, model)
    marketplace.pause(sender=owner)
    marketplace.withdraw(model, sender=payees[0])
    assert token.balanceOf(payees[0]) == PRICE * SHARES[0] // 10_000


# --------------------------------------------------------------------------- pause


def test_pause_and_unpause(marketplace, owner):
    tx = marketplace.pause(sender=owner)
    assert only_event(tx, marketplace.Paused) == {"account": owner.address}
    assert marketplace.paused() is True
    tx = marketplace.unpause(sender=owner)
    assert only_event(tx, marketplace.Unpaused) == {"account": owner.address}
    assert marketplace.paused() is False


@pytest.mark.parametrize("action", ["pause", "unpause"])
def test_pause_and_unpause_need_the_pauser_role(marketplace, owner, stranger, action):
    if action == "unpause":
        marketplace.pause(sender=owner)
    with reverts(
        marketplace.AccessControlUnauthorizedAccount,
        account=stranger,
        neededRole=marketplace.PAUSER_ROLE(),
    ):
        getattr(marketplace, action)(sender=stranger)
    assert marketplace.paused() is (action == "unpause")


@pytest.fixture
def paused_attempts(
    marketplace, token, tasks, owner, trainers, seller, buyer, model, fund, deadline
):
    """Calls that would succeed if the marketplace were not paused, by name."""
    task_id = tasks.completed(trainers[3:5])
    fund(buyer)
    v, r, s = sign_permit(token, buyer, marketplace, PRICE, deadline)
    return {
        "list": lambda: list_model(marketplace, seller, [seller], [10_000]),
        "listTaskModel": lambda: list_task_model(marketplace, task_id, owner),
        "buy": lambda: marketplace.buy(model, PRICE, KEY, sender=buyer),
        "buyWithPermit": lambda: marketplace.buyWithPermit(
            model, PRICE, KEY, deadline, v, r, s, sender=buyer
        ),
    }


@pytest.mark.parametrize("action", ["list", "listTaskModel", "buy", "buyWithPermit"])
def test_pause_stops_listing_and_buying(marketplace, owner, paused_attempts, action):
    marketplace.pause(sender=owner)
    with reverts(marketplace.EnforcedPause):
        paused_attempts[action]()
    marketplace.unpause(sender=owner)
    paused_attempts[action]()  # the same call goes through once trading resumes


# --------------------------------------------------------------------------- reentrancy


@pytest.fixture(scope="session")
def reentrant_token_type(project):
    # By path, not `project.ReentrantToken`: ape 0.8 lists at most 500 files under contracts/,
    # and once contracts/.cache holds OpenZeppelin's ~500 files, contracts/mocks/ drops out.
    return project.load_contracts("contracts/mocks/ReentrantToken.sol")["ReentrantToken"]


@pytest.fixture
def hostile(reentrant_token_type, project, owner, registry, ledger, seller, payees):
    """A second marketplace paid in ReentrantToken, with ``model`` 1 listed like the main one."""
    evil = owner.deploy(reentrant_token_type)
    market = owner.deploy(project.ModelMarketplace, owner, evil, registry, ledger)
    list_model(market, seller, payees, SHARES)
    return evil, market


@pytest.mark.parametrize("reentered", ["buy", "withdraw"])
def test_buy_cannot_be_reentered(hostile, buyer, reentered):
    evil, market = hostile
    evil.mint(buyer, PRICE, sender=buyer)
    evil.approve(market, PRICE, sender=buyer)
    calls = {
        "buy": market.buy.encode_input(1, PRICE, KEY),
        "withdraw": market.withdraw.encode_input(1),
    }
    evil.arm(market, calls[reentered], sender=buyer)

    with reverts(market.ReentrancyGuardReentrantCall):
        market.buy(1, PRICE, KEY, sender=buyer)

    assert market.hasAccess(1, buyer) is False
    assert (market.listing(1).sales, market.listing(1).revenue) == (0, 0)
    assert evil.balanceOf(buyer) == PRICE
    assert evil.balanceOf(market) == 0
    assert evil.target() == market.address  # still armed: the whole transaction was undone


@pytest.mark.parametrize("reentered", ["withdraw", "buy"])
def test_withdraw_cannot_be_reentered(hostile, buyer, payees, reentered):
    evil, market = hostile
    evil.mint(buyer, PRICE, sender=buyer)
    evil.approve(market, PRICE, sender=buyer)
    market.buy(1, PRICE, KEY, sender=buyer)  # unarmed: revenue to withdraw
    payee, share = payees[0], PRICE * SHARES[0] // 10_000
    calls = {
        "withdraw": market.withdraw.encode_input(1),
        "buy": market.buy.encode_input(1, PRICE, KEY),
    }
    evil.arm(market, calls[reentered], sender=payee)

    with reverts(market.ReentrancyGuardReentrantCall):
        market.withdraw(1, sender=payee)

    assert market.withdrawn(1, payee) == 0
    assert market.withdrawable(1, payee) == share
    assert evil.balanceOf(payee) == 0
    assert evil.balanceOf(market) == PRICE


def test_hostile_token_callback_really_runs(hostile, buyer):
    """Control for the two tests above: an armed callback into an unguarded function does run
    (and fails on its own terms), so the guard is what stops the re-entered buy and withdraw."""
    evil, market = hostile
    evil.mint(buyer, PRICE, sender=buyer)
    evil.approve(market, PRICE, sender=buyer)
    evil.arm(market, market.setPrice.encode_input(1, 2 * PRICE), sender=buyer)
    with reverts(market.ModelMarketplaceNotSeller, modelId=1, caller=evil.address):
        market.buy(1, PRICE, KEY, sender=buyer)


# --------------------------------------------------------------------------- gas


def many_payees(n):
    return [to_checksum_address(f"0x{0xFA11 + i:040x}") for i in range(n)]


@pytest.mark.parametrize("n_payees", [1, 10])
def test_buy_stays_within_the_gas_budget(marketplace, seller, buyer, attacker, purchase, n_payees):
    shares = [10_000 // n_payees] * n_payees
    list_model(marketplace, seller, many_payees(n_payees), shares)

    first = purchase(buyer, 1).gas_used  # the first sale ever: every counter starts at zero
    later = purchase(attacker, 1).gas_used

    assert first <= BUY_GAS_BUDGET, f"first buy used {first} gas"
    assert later <= BUY_GAS_BUDGET, f"later buy used {later} gas"


def test_buy_costs_the_same_whatever_the_number_of_payees(
    marketplace, seller, buyer, attacker, fund, purchase
):
    list_model(marketplace, seller, many_payees(1), [10_000])
    list_model(marketplace, seller, many_payees(10), [1_000] * 10)
    purchase(attacker, 1)  # warm-up, so that the marketplace's balance is no longer zero
    # Enough tokens and allowance that neither runs out: both purchases touch the same slots.
    fund(buyer, 10 * PRICE)

    one = marketplace.buy(1, PRICE, KEY, sender=buyer).gas_used
    ten = marketplace.buy(2, PRICE, KEY, sender=buyer).gas_used

    assert one == ten
