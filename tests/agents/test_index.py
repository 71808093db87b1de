"""The event index and the views folded from it, against what the contracts store.

A real task (agents on the test anvil) is trained, listed, bought and partly refunded; the
index's views must agree with the contracts' own storage read through the typed client,
which the index never uses. Then the chain under the index is rewound and rewritten, as a
reset local chain or a reorganisation would, and the index must notice and rebuild.
"""

from __future__ import annotations

import dataclasses

import pytest

from fl_agent.chain import history
from fl_agent.chain.records import PurchaseStatus

FLT = 10**18


@pytest.fixture(scope="module")
def sale(anvil_url, tmp_path_factory, world_builder):
    """A 2-round task of 3 participants, listed, bought twice (one purchase delivered): made
    once for the module, each test starting from it (:func:`sold`)."""
    from ape import chain, networks

    with networks.parse_network_choice(anvil_url):
        yield _sell(world_builder(tmp_path_factory.mktemp("sale")), chain)


@pytest.fixture
def sold(sale, connected, tmp_path):
    """The module's sale, the world's working folder (``tmp``: deployments, index files)
    this test's ``tmp_path`` (its store and the sale's keys stay the module's, which no test
    here writes to); what the test does on chain is reverted after it."""
    from ape import chain

    world, *rest = sale
    snapshot = chain.provider.make_request("evm_snapshot", [])  # (ape's node provider has
    try:                                                        # no chain.snapshot())
        yield dataclasses.replace(world, tmp=tmp_path), *rest
    finally:
        assert chain.provider.make_request("evm_revert", [snapshot]) is True, \
            "the sale's snapshot is gone: the next test would start from this one's chain"


def _sell(world, chain):
    from fl_agent.agents.access import member_key
    from fl_agent.chain.node import dev_account
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.learning.task_doc import AccessPlan
    from fl_agent.market.buyer import buy_model
    from fl_agent.market.key_agent import KeyAgent
    from fl_agent.market.listing import list_task_model

    owner = world.accounts[0]
    world.document = world.document.model_copy(update={"access": AccessPlan(
        creator_key=public_bytes(member_key(world.fairfl, owner)).hex())})
    task_id = world.create_task(rounds=2)
    people = [world.participant(task_id, i) for i in range(3)]
    aggregator = world.aggregator_agent(task_id)
    for _ in range(2):
        aggregator.step()
        for agent in people:
            agent.step()
        aggregator.step()
    listed = list_task_model(world.fairfl, world.store, task_id, 30 * FLT, seller=owner,
                             keys_dir=world.tmp / "keys")
    token = world.fairfl.token
    token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
    buyers = [dev_account(300 + i) for i in range(2)]
    for buyer in buyers:
        chain.provider.make_request("anvil_setBalance", [buyer.address, hex(10**20)])
        token.mint(buyer.address, 100 * FLT, sender=owner)
    buy_model(world.fairfl, buyers[0], listed.model_id)
    KeyAgent(world.fairfl, owner, world.tmp / "keys", world.tmp / "agents").step()
    buy_model(world.fairfl, buyers[1], listed.model_id)  # stays pending
    return world, task_id, listed.model_id, buyers


def make_index(world, path=None):
    from ape import chain

    from fl_agent.chain.client import load_project
    from fl_agent.chain.index import EventIndex, JsonRpc, ape_decoder

    return EventIndex(path or world.tmp / "index.sqlite", world.fairfl.deployment,
                      JsonRpc(chain.provider.http_uri), ape_decoder(load_project()))


def test_the_views_agree_with_what_the_contracts_store(sold):
    world, task_id, model_id, buyers = sold
    index = make_index(world)
    assert index.sync() > 0
    events = index.events()
    assert [(e.block, e.log_index) for e in events] == sorted((e.block, e.log_index)
                                                             for e in events)
    fairfl = world.fairfl

    task = history.tasks(index.events(task=task_id))[task_id]
    stored = fairfl.ledger.task(task_id)
    assert (task.status, task.current_round, task.total_rewarded) == (
        "completed", stored.current_round, stored.total_rewarded)
    assert task.global_model_cid == stored.global_model_cid
    assert task.earned == {a.lower(): v for a, v in fairfl.ledger.contributions(task_id).items()}
    for rnd in task.rounds:
        assert len(rnd.submissions) == fairfl.ledger.round(task_id, rnd.round).submissions

    listing = history.listings(index.events(model=model_id))[model_id]
    on_chain = fairfl.marketplace.listing(model_id)
    assert (listing.price, listing.sales, listing.revenue, listing.escrowed) == (
        on_chain.price, on_chain.sales, on_chain.revenue, on_chain.escrowed)
    statuses = {history.DELIVERED: PurchaseStatus.DELIVERED,
                history.PENDING: PurchaseStatus.PENDING}
    for buyer in buyers:
        mine = listing.purchase_of(buyer.address)
        purchase = fairfl.marketplace.purchase(model_id, buyer.address)
        assert statuses[mine.status] == purchase.status
        assert mine.deadline_block == purchase.deadline_block
        assert mine.buyer_key == "0x" + purchase.buyer_key.hex()

    people = history.participants(index.events(), {task_id: task})
    for person in fairfl.registry.participants():
        view = people[person.address.lower()]
        assert (view.reputation_bps, view.blacklisted) == (person.reputation_bps,
                                                           person.blacklisted)
        assert view.accepted + len(view.rejections) == person.accepted_updates + \
            person.rejected_updates
    for payee in task.earned:
        assert history.entitlement(listing, task, payee) == \
            fairfl.marketplace.withdrawable(model_id, payee)


def test_a_sync_adds_only_what_is_new_and_a_restart_carries_on(sold):
    world, task_id, model_id, buyers = sold
    index = make_index(world)
    first = index.sync()
    assert index.sync() == 0  # nothing new
    world.fairfl.marketplace.set_price(model_id, 40 * FLT, sender=world.accounts[0])
    assert index.sync() == 1
    assert index.count() == first + 1
    again = make_index(world)  # another process, same file: it resumes at the cursor
    assert again.cursor == index.cursor and again.sync() == 0
    assert history.listings(again.events())[model_id].price == 40 * FLT


def test_a_rewritten_chain_is_noticed_and_the_index_rebuilt(sold):
    from ape import chain

    world, task_id, model_id, buyers = sold
    index = make_index(world)
    snapshot = chain.provider.make_request("evm_snapshot", [])
    world.fairfl.marketplace.set_price(model_id, 40 * FLT, sender=world.accounts[0])
    index.sync()
    assert history.listings(index.events())[model_id].price == 40 * FLT
    chain.provider.make_request("evm_revert", [snapshot])
    world.fairfl.marketplace.delist(model_id, sender=world.accounts[0])  # another history
    index.sync()
    fresh = make_index(world, world.tmp / "fresh.sqlite")
    fresh.sync()
    assert [(e.block, e.name, e.args) for e in index.events()] == \
        [(e.block, e.name, e.args) for e in fresh.events()]
    listing = history.listings(index.events())[model_id]
    assert (listing.price, listing.active) == (30 * FLT, False)


def test_an_index_file_of_another_deployment_is_not_mixed_in(sold, tmp_path):
    from fl_agent.chain.deployment import Deployment

    world, *_ = sold
    index = make_index(world, tmp_path / "shared.sqlite")
    index.sync()
    other = world.fairfl.deployment.model_copy(update={"contracts": {
        **world.fairfl.deployment.contracts, "TaskLedger": "0x" + "11" * 20}})
    assert isinstance(other, Deployment)
    from ape import chain

    from fl_agent.chain.client import load_project
    from fl_agent.chain.index import EventIndex, JsonRpc, ape_decoder

    reused = EventIndex(tmp_path / "shared.sqlite", other, JsonRpc(chain.provider.http_uri),
                        ape_decoder(load_project()))
    assert reused.count() == 0 and reused.cursor is None


def test_a_process_that_holds_the_index_keeps_every_other_out_until_it_is_done(sold, tmp_path):
    """Two app servers share one index file (app/serve.py). While one holds the lock beside it
    (opening the file, resetting it or moving its cursor), another can neither open nor sync
    it; afterwards the other carries on from where the first left the cursor."""
    import threading

    from filelock import FileLock

    world, *_ = sold
    path = tmp_path / "shared.sqlite"
    first = make_index(world, path)
    other_process = FileLock(path.with_name(path.name + ".lock"))  # a lock of its own
    finished: list[str] = []

    def open_then_sync() -> None:
        finished.append(f"opened {make_index(world, path).cursor}")

    with other_process:
        syncing = threading.Thread(target=lambda: finished.append(f"synced {first.sync()}"))
        opening = threading.Thread(target=open_then_sync)
        syncing.start()
        opening.start()
        syncing.join(timeout=3.0)
        opening.join(timeout=0.1)
        assert finished == [], "the index was opened or synced while another process held it"
        assert first.cursor is None  # (its count would wait for the sync's thread lock)
    syncing.join(timeout=60)
    opening.join(timeout=60)
    assert len(finished) == 2 and first.cursor is not None and first.count() > 0
    assert make_index(world, path).sync() == 0  # the next process finds it up to date


class Rationed:
    """The node's JSON-RPC, through an endpoint with limits: ``eth_getLogs`` over more than
    ``span`` blocks is refused as too many results, and while ``limited`` every call is
    refused as rate-limited (both as Infura words them, code -32005)."""

    def __init__(self, rpc, span: int) -> None:
        self.rpc, self.span, self.limited, self.log_calls = rpc, span, False, 0

    def __getattr__(self, name):
        return getattr(self.rpc, name)

    def logs(self, addresses, first, last):
        from fl_agent.chain.index import RpcError

        self.log_calls += 1
        if self.limited:
            raise RpcError("project ID request rate exceeded", -32005)
        if last - first + 1 > self.span:
            raise RpcError("query returned more than 10000 results", -32005)
        return self.rpc.logs(addresses, first, last)


def test_a_range_too_large_is_halved_but_a_rate_limit_is_left_to_the_caller(world, tmp_path):
    """Halving the range answers "too many results"; under a rate limit it would only send
    more requests, so the sync stops at once, moves nothing, and the error is retryable."""
    from fl_agent.chain.index import RpcError
    from fl_agent.retry import transient

    world.create_task(rounds=1)
    whole = make_index(world, tmp_path / "whole.sqlite")
    expected = whole.sync()
    assert expected > 0
    index = make_index(world, tmp_path / "rationed.sqlite")
    index.rpc = rationed = Rationed(index.rpc, span=3)
    assert index.sync() == expected  # in ranges of at most 3 blocks
    assert index.events() == whole.events()
    cursor = index.cursor
    world.create_task(rounds=1)
    rationed.limited, rationed.log_calls = True, 0
    with pytest.raises(RpcError) as limited:
        index.sync()
    assert rationed.log_calls == 1 and index.cursor == cursor
    assert transient(limited.value)
    rationed.limited = False
    assert index.sync() > 0 and index.cursor > cursor
