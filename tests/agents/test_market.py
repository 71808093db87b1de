"""Selling a trained model for real: list, buy, key agent, download, refund, withdraw.

A small simulation trains and lists a model on the test anvil; buyers are ape test accounts
(funded with FLT by governance, which on a test chain may mint). Every check reads the
chain or the store, never the code under test's own view of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from fl_agent.chain.records import PurchaseStatus
from fl_agent.crypto.sealing import SealingError, plaintext_hash
from fl_agent.errors import ConfigError
from fl_agent.simulation.runner import SimulationConfig, run_simulation

FLT = 10**18
PRICE = 20 * FLT
DELIVERY_WINDOW = 64  # blocks a seller has to deliver a key before the buyer may take a refund


@pytest.fixture(scope="module")
def market(anvil_url, tmp_path_factory):
    """A completed, listed task on the test anvil: (url, home folder, report)."""
    from fl_agent.chain import deployment
    from fl_agent.storage.store import LocalStore

    home = tmp_path_factory.mktemp("market-home")  # FAIRFL_HOME of the seller and buyers
    config = SimulationConfig.build(clients=4, malicious=0.0, attack="none", rounds=2,
                                    steps=5, scoring="loo", seed=5, list_price=PRICE)
    # A short delivery window, so that the refund test mines DELIVERY_WINDOW blocks and not
    # the default 7,200: anvil's cost per mined block grows with the chain's height, so 7,200
    # blocks took 35 s there and slowed every later test on this session's chain.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deployment, "deploy_contracts",
                      partial(deployment.deploy_contracts, delivery_window=DELIVERY_WINDOW))
        report = run_simulation(config, workdir=home / "sim", network=anvil_url,
                                deployments=home / "deployments", keys_dir=home / "keys",
                                store=LocalStore(home / "store"))
    return anvil_url, home, report


@pytest.fixture
def shop(market):
    """Connected to the market's chain: the client, the store, the model id and helpers."""
    from ape import networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.storage.store import LocalStore

    url, home, report = market
    with networks.parse_network_choice(url):
        fairfl = FairFL(load_deployment(url, home / "deployments"))
        yield Shop(fairfl, LocalStore(home / "store"), report["listing"]["model_id"], home, url,
                   report)


class Shop:
    def __init__(self, fairfl, store, model_id, home, url, report):
        self.fairfl, self.store, self.model_id, self.home, self.url = (fairfl, store, model_id,
                                                                         home, url)
        self.report = report

    def test_accuracy(self, weights: bytes) -> float:
        """``weights``' accuracy on the simulation's test split, which no agent saw."""
        from fl_agent.agents.participant import load_task_document
        from fl_agent.learning import load_dataset, split_dataset
        from fl_agent.learning.training import evaluate
        from fl_agent.learning.weights import decode_weights

        document = load_task_document(self.store, self.fairfl.ledger.task(1).spec_cid)
        config = self.report["config"]
        test = split_dataset(load_dataset("digits"),
                             validation_fraction=config["validation_fraction"],
                             test_fraction=config["test_fraction"], seed=config["seed"],
                             standardize=False).test
        return evaluate(document.model, decode_weights(weights, document.model),
                        document.data.standardize(test.X), test.y, "accuracy")

    def buyer(self, index: int, tokens: int = 100):
        """Dev account ``index`` with ETH for gas and ``tokens`` FLT."""
        from ape import chain

        from fl_agent.chain.node import dev_account

        account = dev_account(index)
        chain.provider.make_request("anvil_setBalance", [account.address, hex(10**20)])
        owner = dev_account(0)
        token = self.fairfl.token
        if not token.contract.hasRole(token.contract.MINTER_ROLE(), owner):
            token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
        token.mint(account.address, tokens * FLT, sender=owner)
        return account

    def agent(self, **kwargs):
        from fl_agent.chain.node import dev_account
        from fl_agent.market.key_agent import KeyAgent

        return KeyAgent(self.fairfl, dev_account(0), self.home / "keys", self.home / "agents",
                        **kwargs)

    def weights(self) -> bytes:
        """The final model as its creator reads it (the reference a download must equal)."""
        from fl_agent.agents.access import member_key
        from fl_agent.agents.participant import load_task_document, read_task_model_bytes
        from fl_agent.chain.node import dev_account

        task = self.fairfl.ledger.task(1)
        return read_task_model_bytes(self.fairfl, self.store, 1, dev_account(0).address,
                                     member_key(self.fairfl, dev_account(0)),
                                     load_task_document(self.store, task.spec_cid))


def test_a_buyer_pays_into_escrow_gets_its_key_and_downloads_the_exact_model(shop):
    from fl_agent.market.buyer import KeyPendingError, buy_model, download_model

    buyer = shop.buyer(220)
    market, token = shop.fairfl.marketplace, shop.fairfl.token
    before = token.balance_of(buyer.address)
    bought = buy_model(shop.fairfl, buyer, shop.model_id)
    assert bought.via == "permit" and len(bought.receipts) == 1
    assert token.balance_of(buyer.address) == before - PRICE
    listing = market.listing(shop.model_id)
    assert (listing.escrowed, listing.revenue) == (PRICE, 0)  # held until the key comes
    with pytest.raises(KeyPendingError, match="has not delivered the key"):
        download_model(shop.fairfl, shop.store, buyer, shop.model_id)

    deliveries, skipped = shop.agent().step()
    assert skipped == [] and [d.buyers for d in deliveries] == [(buyer.address,)]
    assert market.purchase(shop.model_id, buyer.address).status == PurchaseStatus.DELIVERED
    listing = market.listing(shop.model_id)
    assert (listing.escrowed, listing.revenue, listing.sales) == (0, PRICE, 1)

    plain = download_model(shop.fairfl, shop.store, buyer, shop.model_id)
    assert plain == shop.weights()
    # What was sold is what the task trained: it scores on the held-out test split exactly
    # what the simulation's report measured on the aggregator's final parameters.
    assert shop.test_accuracy(plain) == shop.report["final"]["accuracy"]
    assert plaintext_hash(plain) == listing.plaintext_hash
    # The public ciphertext is not the model, and the seller's content key is its own.
    assert shop.store.get(listing.encrypted_cid) != plain
    assert (shop.home / "keys" / f"{listing.encrypted_cid}.key").stat().st_mode & 0o777 == 0o600


def test_another_account_cannot_open_a_buyers_key(shop):
    from fl_agent.market.buyer import buy_model, download_model

    buyer, thief = shop.buyer(221), shop.buyer(222)
    buy_model(shop.fairfl, buyer, shop.model_id, permit=False)  # approve + buy
    shop.agent().step()
    with pytest.raises(ConfigError, match="has not bought"):
        download_model(shop.fairfl, shop.store, thief, shop.model_id)
    from fl_agent.crypto.sealing import open_sealed_key
    from fl_agent.market.buyer import buyer_key, sealed_key_for

    sealed = sealed_key_for(shop.fairfl, shop.model_id, buyer.address)
    with pytest.raises(SealingError):
        open_sealed_key(sealed, buyer_key(shop.fairfl, thief, shop.model_id))


def test_purchases_made_while_the_key_agent_was_down_are_all_served_in_one_batch(shop):
    from ape import chain

    from fl_agent.market.buyer import buy_model

    agent = shop.agent()
    agent.step()  # whatever earlier tests left is served first
    buyers = [shop.buyer(300 + i) for i in range(50)]  # the "50 purchases"
    for buyer in buyers:
        buy_model(shop.fairfl, buyer, shop.model_id)
    restarted = shop.agent()  # a new process: only its cursor file remembers
    deliveries, skipped = restarted.step()
    assert skipped == [] and len(deliveries) == 1
    assert set(deliveries[0].buyers) == {b.address for b in buyers}
    for buyer in buyers:
        purchase = shop.fairfl.marketplace.purchase(shop.model_id, buyer.address)
        assert purchase.status == PurchaseStatus.DELIVERED
    assert restarted.step() == ([], [])  # nothing is delivered twice
    assert int(chain.blocks.height) == deliveries[0].receipt.block


def test_a_malformed_buyer_key_is_reported_and_skipped_and_a_replaced_key_is_served(shop):
    agent = shop.agent()
    agent.step()
    market, token = shop.fairfl.marketplace, shop.fairfl.token
    odd, fine = shop.buyer(223), shop.buyer(224)
    for who in (odd, fine):
        token.approve(market.address, PRICE, sender=who)
    market.buy(shop.model_id, PRICE, (1).to_bytes(32, "little"), sender=odd)  # order-1 point
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.market.buyer import buyer_key

    market.buy(shop.model_id, PRICE, public_bytes(buyer_key(shop.fairfl, fine, shop.model_id)),
               sender=fine)
    deliveries, skipped = agent.step()
    assert [d.buyers for d in deliveries] == [(fine.address,)]
    assert [(s.buyer, "not a usable X25519" in s.reason) for s in skipped] == [(odd.address, True)]
    assert agent.step() == ([], [])  # skipped, not retried forever
    market.update_buyer_key(shop.model_id, public_bytes(buyer_key(shop.fairfl, odd,
                                                                  shop.model_id)), sender=odd)
    deliveries, skipped = agent.step()
    assert [d.buyers for d in deliveries] == [(odd.address,)] and skipped == []


def test_a_buyer_whose_key_never_comes_takes_the_money_back(shop):
    from ape import chain

    from fl_agent.market.buyer import buy_model

    shop.agent().step()
    buyer = shop.buyer(225)
    market, token = shop.fairfl.marketplace, shop.fairfl.token
    start = token.balance_of(buyer.address)
    buy_model(shop.fairfl, buyer, shop.model_id)
    purchase = market.purchase(shop.model_id, buyer.address)
    assert market.delivery_window() == DELIVERY_WINDOW
    from fl_agent.errors import ContractRevertError

    with pytest.raises(ContractRevertError) as refused:
        market.refund(shop.model_id, sender=buyer)
    assert refused.value.error_name == "ModelMarketplaceRefundNotYet"
    chain.provider.make_request("anvil_mine", [purchase.deadline_block - int(chain.blocks.height)
                                               + 1])
    market.refund(shop.model_id, sender=buyer)
    assert token.balance_of(buyer.address) == start
    assert market.purchase(shop.model_id, buyer.address).status == PurchaseStatus.REFUNDED
    assert shop.agent().step() == ([], [])  # the agent does not deliver a refunded purchase


def test_contributors_withdraw_exactly_their_share_of_the_revenue(shop):
    from fl_agent.market.buyer import buy_model

    market, token = shop.fairfl.marketplace, shop.fairfl.token
    buy_model(shop.fairfl, shop.buyer(229), shop.model_id)  # a sale of its own
    shop.agent().step()
    revenue = market.listing(shop.model_id).revenue
    earned = shop.fairfl.ledger.contributions(1)
    total = sum(earned.values())
    from fl_agent.chain.node import dev_account

    assert revenue >= PRICE, "no sale was delivered: nothing to share"
    paid = 0
    for index in range(2, 6):
        payee = dev_account(index)
        owed = revenue * earned.get(payee.address, 0) // total - market.withdrawn(
            shop.model_id, payee.address)
        if owed == 0:
            continue
        before = token.balance_of(payee.address)
        market.withdraw(shop.model_id, sender=payee)
        assert token.balance_of(payee.address) - before == owed
        paid += owed
    assert paid > 0  # at least one contributor was paid here


def test_the_market_commands_walk_the_whole_sale(shop, tmp_path):
    """`fl-agent market` as a person would use it, each command its own process."""
    env = {"FAIRFL_HOME": str(shop.home), "FAIRFL_DEPLOYMENTS": str(shop.home / "deployments"),
           "FAIRFL_NETWORK": shop.url, "PATH": str(Path(sys.executable).parent),
           "HOME": str(Path.home()),  # and make test's ape data folder, if it gives one
           **{key: value for key, value in os.environ.items() if key == "APE_DATA_FOLDER"}}
    shop.buyer(226)

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "fl_agent.cli", "market", *args],
                              env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    listing = run("ls")
    assert "digits mlp, 2 rounds" in listing and "20.0000 FLT" in listing
    shown = run("show", str(shop.model_id))
    assert "Payees" in shown and shop.fairfl.marketplace.listing(shop.model_id).encrypted_cid \
        in shown
    bought = run("buy", str(shop.model_id), "--account", "TEST::226", "--approve")
    assert "approve" in bought and "bought model" in bought
    run("serve", "--account", "TEST::0", "--once")
    out = tmp_path / "model.safetensors"
    run("download", str(shop.model_id), "--account", "TEST::226", "-o", str(out))
    assert out.read_bytes() == shop.weights()
    failed = subprocess.run([sys.executable, "-m", "fl_agent.cli", "market", "buy",
                             str(shop.model_id), "--account", "TEST::226"], env=env,
                            capture_output=True, text=True, timeout=180)
    assert failed.returncode == 1 and "already bought model" in failed.stdout


def test_a_buyer_whose_wallet_derives_another_key_is_told_and_can_rekey_while_pending(shop):
    """A purchase made with a key the account no longer derives (another wallet that signs
    differently): download says so instead of failing obscurely, and while the purchase is
    pending `rekey` puts the key derived now in its place."""
    from fl_agent.crypto.sealing import new_buyer_key
    from fl_agent.market.buyer import download_model, rekey

    shop.agent().step()
    market, token = shop.fairfl.marketplace, shop.fairfl.token
    lost, kept = shop.buyer(227), shop.buyer(228)
    for who in (lost, kept):
        token.approve(market.address, PRICE, sender=who)
        market.buy(shop.model_id, PRICE, new_buyer_key()[1], sender=who)  # not its derived key
    rekey(shop.fairfl, kept, shop.model_id)
    shop.agent().step()
    assert download_model(shop.fairfl, shop.store, kept, shop.model_id) == shop.weights()
    with pytest.raises(ConfigError, match="now derives the key .* but bought it with"):
        download_model(shop.fairfl, shop.store, lost, shop.model_id)
    with pytest.raises(ConfigError, match="only a purchase whose key was not delivered"):
        rekey(shop.fairfl, lost, shop.model_id)


def test_a_key_replaced_while_the_agent_delivers_is_served_to_the_new_key(shop):
    """The buyer replaces its key between the agent's read and its transaction: the contract
    refuses the stale delivery (nothing moves) and the agent seals to the new key."""
    from fl_agent.crypto.sealing import new_buyer_key, seal_key
    from fl_agent.market.buyer import buyer_key, download_model, public_bytes

    agent = shop.agent()
    agent.step()
    market, token = shop.fairfl.marketplace, shop.fairfl.token
    buyer = shop.buyer(260)
    token.approve(market.address, PRICE, sender=buyer)
    stale = new_buyer_key()[1]
    market.buy(shop.model_id, PRICE, stale, sender=buyer)
    market.update_buyer_key(shop.model_id, public_bytes(buyer_key(shop.fairfl, buyer,
                                                                   shop.model_id)), sender=buyer)
    content_key = agent.content_key(shop.model_id)
    [delivery] = agent._deliver(shop.model_id, {buyer.address: (stale, seal_key(content_key,
                                                                                 stale))})
    assert delivery.buyers == (buyer.address,)
    assert download_model(shop.fairfl, shop.store, buyer, shop.model_id) == shop.weights()


def test_a_buyer_who_replaces_its_key_before_every_batch_holds_up_nobody_else(shop,
                                                                              monkeypatch):
    """A griefer changes its key after each of the agent's reads, so that every
    ``deliverKeys`` is refused: the agent falls back to one ``deliverKey`` per buyer and
    the honest buyer in the same batch is served in the same step."""
    from fl_agent.crypto.sealing import new_buyer_key
    from fl_agent.market.buyer import buyer_key, public_bytes

    agent = shop.agent()
    agent.step()
    market, token = shop.fairfl.marketplace, shop.fairfl.token
    griefer, honest = shop.buyer(270), shop.buyer(271)
    for account in (griefer, honest):
        token.approve(market.address, PRICE, sender=account)
        market.buy(shop.model_id, PRICE, public_bytes(buyer_key(shop.fairfl, account,
                                                                shop.model_id)), sender=account)
    real_purchase = type(market).purchase

    def purchase_then_grief(self, model_id, buyer):
        found = real_purchase(self, model_id, buyer)
        if str(buyer).lower() == griefer.address.lower():  # the griefer's real transaction
            real_update(self, model_id, new_buyer_key()[1], sender=griefer)
        return found

    real_update = type(market).update_buyer_key
    monkeypatch.setattr(type(market), "purchase", purchase_then_grief)
    deliveries, _ = agent.step()
    monkeypatch.undo()
    assert [d.buyers for d in deliveries] == [(honest.address,)]
    assert market.purchase(shop.model_id, honest.address).status == PurchaseStatus.DELIVERED
    assert market.purchase(shop.model_id, griefer.address).status == PurchaseStatus.PENDING
