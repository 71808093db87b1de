"""Property-based tests (hypothesis) of the invariants of the FairFL contracts.

Each test builds what its examples share once, then runs a nested ``@given`` function whose
examples each run inside :func:`isolated`: ape reverts the chain after every *test*, not after
every hypothesis example, so a snapshot keeps examples independent (also while hypothesis
shrinks a failure). Examples are derandomized, so every run draws the same ones.

Properties:

1. Rewards: the rewards credited in ``RoundFinalized`` equal the task's ``totalRewarded`` and
   the sum of its members' ``earned``, stay within ``rewardPerRound`` per finalized round, and
   split exactly into FLT minted by ``claimRewards`` and FLT still ``claimable``; scores adding
   up to more than 1_000_000 parts per million revert and credit nothing.
   The model hash, the reason codes and the evidence CID of every round are recorded as given.
2. Money: across random interleavings of buy, buyWithPermit, key updates, deliverKey(s),
   refunds, withdrawals, price changes, delistings, blocks passing and blacklistings, the
   marketplace holds exactly sum(escrowed) + sum(revenue) - sum(withdrawn); every buyer's
   payment is in escrow (Pending), in revenue (Delivered) or back with the buyer (Refunded);
   the payees' shares add up to the revenue less under one base unit per payee; a delivery
   sealed to a key the purchase no longer names reverts; and a blacklisted buyer or payee
   moves nothing. Every path that moves tokens is shown to succeed, and counted.
3. Blacklist: a blacklisted address (manually or after three rejections) cannot move state
   through any entry point meant for participants, buyers, sellers and payees, and can neither
   be credited a reward nor claim one credited before. (What serves buyers who already paid,
   key delivery, key updates and refunds, stays open to it by design: see property 2.)
4. Reputation: ``recordRound`` moves reputations by the integer EWMA of the policy, keeps them
   in 0..10_000, counts rejections in a tumbling window and blacklists at the threshold.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import types
from dataclasses import dataclass, field

import ape
import eth_abi
import pytest
from conftest import (
    CID_MODEL,
    CID_NEW_MODEL,
    CID_SPEC,
    CID_UPDATE,
    CID_WORKLOAD,
    DELIVERY_WINDOW,
    MODEL_HASH,
    UNIT,
    round_result,
    task_config,
)
from eth_account import Account
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: Reputations and reputation outcomes are in basis points.
MAX_BPS = 10_000
#: Scores are in parts per million of the round's budget.
PPM = 1_000_000
#: What a reported round names as its evidence, and the reason code of its rejections.
CID_EVIDENCE_OF_ROUND = "bafkreidrkzxzmxsbyyv5mfuvblzpn4kzsdgbmpbkvaz5gvdfgm5bzfkdrq"
REASON_VALIDATION = 9
#: ParticipantRegistry.HELD_BACK: recorded, neither counted towards a ban nor penalised.
REASON_HELD_BACK = 13
MAX_UINT16 = 2**16 - 1
MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1
FLT_CAP = 10**9 * UNIT  # FairToken.MAX_SUPPLY: createTask reserves each budget under it
MAX_UINT256 = 2**256 - 1
BUYER_KEY = bytes(range(32))
PLAINTEXT_HASH = b"\x11" * 32


def examples(n: int):
    """Hypothesis settings of these tests: ``n`` seeded examples, no deadline, no database."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@contextlib.contextmanager
def isolated(chain):
    """Runs the block on a snapshot of the chain and reverts to it afterwards.

    Not ``chain.isolate()``: that one swallows every exception raised inside it, failed
    assertions included (ape 0.8), so a failing example would pass.
    """
    snapshot = chain.snapshot()
    try:
        yield
    finally:
        chain.restore(snapshot)


@pytest.fixture
def read(chain, token, registry, ledger, marketplace):
    """Fast read access to the views of the four contracts (see :class:`Views`)."""
    return types.SimpleNamespace(
        token=Views(chain, token),
        registry=Views(chain, registry),
        ledger=Views(chain, ledger),
        marketplace=Views(chain, marketplace),
    )


def addr(account) -> str:
    return getattr(account, "address", account)


class Views:
    """The view functions of a deployed contract, called with one raw ``eth_call`` each.

    An ape contract call costs three RPC requests and a web3 call three as well (it checks the
    chain id twice); these tests make thousands of view calls. Structs come back as named
    tuples, so they compare equal to the tuples of another call or of a model; addresses are
    checksummed as ape's are.
    """

    def __init__(self, chain, contract):
        self._provider = chain.provider.web3.provider
        self._address = str(contract.address)
        abi = contract.contract_type.model_dump(mode="json", by_alias=True)["abi"]
        self._functions = {item["name"]: item for item in abi if item["type"] == "function"}

    def __getattr__(self, name):
        if name not in self._functions:
            raise AttributeError(name)
        item = self._functions[name]
        selector = function_abi_to_4byte_selector(item)
        input_types = [collapse_if_tuple(i) for i in item["inputs"]]
        outputs = item["outputs"]
        output_types = [collapse_if_tuple(o) for o in outputs]

        def call(*args):
            data = selector + eth_abi.encode(input_types, [addr(a) for a in args])
            params = [{"to": self._address, "data": "0x" + data.hex()}, "latest"]
            response = self._provider.make_request("eth_call", params)
            if "error" in response:
                raise AssertionError(f"{name}{args} failed: {response['error']}")
            values = eth_abi.decode(output_types, bytes.fromhex(response["result"][2:]))
            if len(outputs) == 1:
                return _named(outputs[0], values[0])
            return tuple(_named(o, v) for o, v in zip(outputs, values, strict=True))

        return call


def _named(output: dict, value):
    kind = output["type"]
    if kind.endswith("[]"):
        element = {**output, "type": kind[:-2]}
        return [_named(element, v) for v in value]
    if kind == "tuple":
        names = tuple(c["name"] for c in output["components"])
        fields = [_named(c, v) for c, v in zip(output["components"], value, strict=True)]
        return _struct_type(output.get("internalType", "struct"), names)(*fields)
    if kind == "address":
        return to_checksum_address(value)
    return value


@functools.cache
def _struct_type(internal_type: str, names: tuple[str, ...]):
    return collections.namedtuple(internal_type.split(".")[-1].split(" ")[-1], names)


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


@st.composite
def split(draw, parts: int, total: int, min_part: int = 0):
    """``parts`` integers >= ``min_part`` adding up to exactly ``total``."""
    if min_part:
        cuts = draw(
            st.lists(st.integers(1, total - 1), min_size=parts - 1, max_size=parts - 1, unique=True)
        )
    else:
        cuts = draw(st.lists(st.integers(0, total), min_size=parts - 1, max_size=parts - 1))
    bounds = [0, *sorted(cuts), total]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


@st.composite
def scores_within_budget(draw, parts: int):
    """Scores in parts per million whose sum is at most 1_000_000 (often exactly)."""
    total = draw(st.one_of(st.just(PPM), st.integers(0, PPM)))
    return draw(split(parts, total))


@st.composite
def scores_over_budget(draw, parts: int):
    """uint32 scores whose sum exceeds 1_000_000 (often by exactly 1)."""
    scores = draw(split(parts, PPM))
    i = draw(st.integers(0, parts - 1))
    excess = draw(st.one_of(st.just(1), st.integers(1, MAX_UINT32 - scores[i])))
    scores[i] += excess
    return scores


cids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=1, max_size=52).map(
    lambda s: "bafk" + s
)
# Large prices stay under FLT's cap: four buyers hold 2**86 each, up to 64 purchases apiece.
prices = st.one_of(st.integers(1, 1_000), st.integers(1, 2**80))
hashes = st.binary(min_size=32, max_size=32)
buyer_keys = st.binary(min_size=32, max_size=32)


# --------------------------------------------------------------------------------------------
# 1. Rewards
# --------------------------------------------------------------------------------------------


@st.composite
def reward_plans(draw):
    """Members of a task (trainer indices), its reward per round and, for each of 1-3 rounds,
    the contributors with their scores, the rejected members with a reason code each and the
    members that claim their rewards right after the round (everyone claims what is left at
    the end)."""
    members = draw(st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True))
    rounds = draw(st.integers(1, 3))
    reward = draw(
        st.one_of(
            st.integers(0, 10_000),  # small budgets: rounding matters
            st.integers(0, 10**6).map(lambda x: x * UNIT),
            st.integers(0, FLT_CAP // rounds),  # up to the cap createTask reserves under
        )
    )
    plan = []
    for _ in range(rounds):
        order = draw(st.permutations(members))
        k = draw(st.integers(1, len(order)))
        rejected = [m for m in order[k:] if draw(st.booleans())]
        reasons = [draw(st.integers(0, 255)) for _ in rejected]
        claimers = [m for m in members if draw(st.booleans())]
        plan.append(
            (list(order[:k]), draw(scores_within_budget(k)), rejected, reasons, claimers)
        )
    return members, reward, plan


def test_minted_supply_equals_credited_rewards_and_earnings_within_budget(
    chain, read, token, registry, ledger, tasks, trainers, aggregator
):
    """Rewards are credited by ``finalizeRound`` and minted by ``claimRewards``. At every step
    the credits announced in ``RoundFinalized`` equal the task's ``totalRewarded`` and the sum
    of the members' ``earned``, and split exactly into what was minted (the supply, the
    Transfer-from-zero events and the ``RewardsClaimed`` events agree) and what is still
    ``claimable``; they never exceed ``rewardPerRound`` per finalized round."""
    tasks.register(*trainers)

    @examples(20)
    @given(reward_plans())
    def check(plan):
        members, reward, rounds = plan
        accounts = {m: trainers[m] for m in members}
        with isolated(chain):
            supply_before = read.token.totalSupply()
            balances_before = {m: read.token.balanceOf(a) for m, a in accounts.items()}
            task_id = tasks.create(
                rounds=len(rounds), minParticipants=1, submissionWindow=100, rewardPerRound=reward
            )
            for a in accounts.values():
                ledger.join(task_id, sender=a)

            earned = dict.fromkeys(members, 0)  # credited, by the RoundFinalized events
            claimed = dict.fromkeys(members, 0)  # minted, by the Transfer events of the claims
            model_cid = CID_MODEL

            def claim(m):
                due = earned[m] - claimed[m]
                if read.registry.isBlacklisted(accounts[m]):  # rejected in all three rounds
                    assert due == 0
                    with ape.reverts(ledger.TaskLedgerBlacklisted):
                        ledger.claimRewards(task_id, sender=accounts[m])
                elif due == 0:
                    with ape.reverts(ledger.TaskLedgerNothingToClaim):
                        ledger.claimRewards(task_id, sender=accounts[m])
                else:
                    tx = ledger.claimRewards(task_id, sender=accounts[m])
                    [event] = tx.decode_logs(ledger.RewardsClaimed)
                    assert (event.participant, event.amount) == (addr(accounts[m]), due)
                    [mint] = tx.decode_logs(token.Transfer)
                    assert (mint["from"], mint["to"], mint["value"]) == (
                        ZERO_ADDRESS,
                        addr(accounts[m]),
                        due,
                    )
                    claimed[m] += mint["value"]

            def check_accounts(finalized_rounds):
                credited = sum(earned.values())
                task = read.ledger.task(task_id)
                assert task.totalRewarded == credited <= reward * finalized_rounds
                for m, a in accounts.items():
                    assert read.ledger.membership(task_id, a).earned == earned[m]
                    assert read.ledger.claimable(task_id, a) == earned[m] - claimed[m]
                    assert read.token.balanceOf(a) - balances_before[m] == claimed[m]
                assert read.token.totalSupply() - supply_before == sum(claimed.values())

            for number, (contributors, scores, rejected, reasons, claimers) in enumerate(
                rounds, start=1
            ):
                ledger.startRound(task_id, model_cid, CID_WORKLOAD, sender=aggregator)
                for m in contributors + rejected:
                    ledger.submitUpdate(
                        task_id, number, f"{CID_UPDATE}{m}", 100, 5, "", sender=trainers[m]
                    )
                model_cid = f"{CID_NEW_MODEL}{number}"
                result = round_result(
                    new_cid=model_cid,
                    contributors=[trainers[m] for m in contributors],
                    scores=scores,
                    rejected=[trainers[m] for m in rejected],
                    reasons=reasons,
                    evidence=f"{CID_SPEC}{number}",
                )
                tx = ledger.finalizeRound(task_id, number, result, sender=aggregator)
                [event] = tx.decode_logs(ledger.RoundFinalized)
                # The model hash, the reason codes and the evidence are recorded as given
                # (fields 1, 5 and 6).
                assert (event.result[1], list(event.result[5]), event.result[6]) == (
                    MODEL_HASH,
                    reasons,
                    f"{CID_SPEC}{number}",
                )
                rewards = list(event.rewards)
                assert rewards == [reward * s // PPM for s in scores]
                assert sum(rewards) <= reward
                assert not list(tx.decode_logs(token.Transfer))  # credited, not minted
                for m, r in zip(contributors, rewards, strict=True):
                    earned[m] += r
                check_accounts(number)
                for m in claimers:
                    claim(m)
                check_accounts(number)

            for m in members:
                if earned[m] > claimed[m]:
                    claim(m)
            check_accounts(len(rounds))
            assert claimed == earned
            listed, amounts = read.ledger.contributions(task_id)
            assert dict(zip(listed, amounts, strict=True)) == {
                addr(accounts[m]): e for m, e in earned.items() if e
            }

    check()


def test_scores_over_budget_always_revert_and_credit_nothing(
    chain, read, token, registry, ledger, tasks, trainers, aggregator
):
    """Over-budget finalizations of two open rounds: one of a task with a tiny budget, and round
    2 of a task whose budget is a third of FLT's cap, where round 1 already credited the
    trainers (an over-budget reward added before the check would show in ``earned``)."""
    tiny = tasks.submitted(trainers, rounds=1, rewardPerRound=3, minParticipants=1)
    huge = tasks.submitted(trainers, rounds=2, rewardPerRound=FLT_CAP // 3, minParticipants=1)
    first = round_result(
        contributors=trainers, scores=[600_000, 100_000, 100_000, 100_000, 100_000]
    )
    ledger.finalizeRound(huge, 1, first, sender=aggregator)
    ledger.startRound(huge, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
    for i, t in enumerate(trainers):
        ledger.submitUpdate(huge, 2, f"{CID_UPDATE}{i}", 100, 5, "", sender=t)
    open_rounds = [(tiny, 1), (huge, 2)]

    def state():
        return (
            read.token.totalSupply(),
            [read.ledger.task(task_id) for task_id, _ in open_rounds],
            [read.ledger.round(task_id, number) for task_id, number in open_rounds],
            [read.ledger.membership(task_id, t) for task_id, _ in open_rounds for t in trainers],
            [read.ledger.claimable(task_id, t) for task_id, _ in open_rounds for t in trainers],
            [read.registry.participant(t) for t in trainers],
        )

    before = state()

    @st.composite
    def over_budget_results(draw):
        order = draw(st.permutations(range(5)))
        k = draw(st.integers(1, 5))
        rejected = [i for i in order[k:] if draw(st.booleans())]
        return draw(st.sampled_from(open_rounds)), order[:k], draw(scores_over_budget(k)), rejected

    @examples(25)
    @given(over_budget_results())
    # trainers[0] earned 60% of the budget in round 1; 150% of the budget on top of that must
    # revert as a budget excess before anything is credited.
    @example(((huge, 2), [0], [1_500_000], []))
    def check(case):
        (task_id, number), contributors, scores, rejected = case
        result = round_result(
            contributors=[trainers[i] for i in contributors],
            scores=scores,
            rejected=[trainers[i] for i in rejected],
        )
        with isolated(chain):
            with ape.reverts(ledger.TaskLedgerBudgetExceeded, totalScore=sum(scores)):
                ledger.finalizeRound(task_id, number, result, sender=aggregator)
            assert state() == before

    check()
    # Control: the same rounds finalize with the whole budget.
    for (task_id, number), task_before in zip(open_rounds, before[1], strict=True):
        result = round_result(contributors=trainers[:2], scores=[900_000, 100_000])
        ledger.finalizeRound(task_id, number, result, sender=aggregator)
        credited = read.ledger.task(task_id).totalRewarded - task_before.totalRewarded
        budget = task_before.rewardPerRound
        assert credited == budget * 900_000 // PPM + budget * 100_000 // PPM


# --------------------------------------------------------------------------------------------
# 2. Money in the marketplace
# --------------------------------------------------------------------------------------------

PENDING, DELIVERED, REFUNDED = 1, 2, 3
OTHER_KEY = bytes([7]) * 32
SEALED_KEY = b"\x5e" * 92


@dataclass
class PurchaseModel:
    """The expected purchase of one buyer."""

    status: int = 0
    paid: int = 0
    deadline: int = 0
    key: bytes = b"\x00" * 32


@dataclass
class ListingModel:
    """What a listing should hold, kept in Python alongside the contract."""

    model_id: int
    earned: dict[str, int]  # the task's contributors -> what each earned in the ledger
    price: int
    active: bool = True
    purchases: dict[str, PurchaseModel] = field(default_factory=dict)
    revenue: int = 0
    sales: int = 0
    withdrawn: dict[str, int] = field(default_factory=dict)

    def purchase(self, buyer: str) -> PurchaseModel:
        return self.purchases.setdefault(buyer, PurchaseModel())

    @property
    def escrowed(self) -> int:
        return sum(p.paid for p in self.purchases.values() if p.status == PENDING)

    @property
    def payees(self) -> int:
        return sum(1 for e in self.earned.values() if e)

    def withdrawable(self, payee: str) -> int:
        entitled = self.revenue * self.earned.get(payee, 0) // sum(self.earned.values())
        return entitled - self.withdrawn.get(payee, 0)


def pick_actor(actor: int, aim: bool, pool: list, *preferred: list):
    """The ``actor``-th of the first non-empty ``preferred`` list when aiming, else of
    ``pool``."""
    for candidates in preferred if aim else ():
        if candidates:
            return candidates[actor % len(candidates)]
    return pool[actor % len(pool)]


@st.composite
def money_ops(draw):
    """One step: (kind, listing index, actor index, argument, aim).

    With ``aim``, refund, deliverKey(s), withdraw and updateBuyerKey pick their actor among
    those the call can succeed for, when there is one (a refund among the pending buyers,
    those past their deadline first; a withdrawal among the payees with something due).
    Drawn blindly, those calls nearly always revert: a refund needs a purchase of the same
    buyer, of the same model, a delivery window earlier, and nothing delivered since.
    """
    kind = draw(
        st.sampled_from(
            ["buy"] * 4
            + ["buyWithPermit"] * 2
            + ["deliverKey"] * 2
            + ["deliverKeys"] * 3
            + ["refund"] * 3
            + ["mine"] * 3
            + ["withdraw"] * 4
            + ["updateBuyerKey"] * 2
            + ["setPrice", "delist", "blacklist"]
        )
    )
    index, actor = draw(st.integers(0, 1)), draw(st.integers(0, 8))
    aim = draw(st.sampled_from([True, True, True, False]))
    arg = None
    if kind in ("buy", "buyWithPermit"):
        # The buyer's maxPrice is the price plus this slack (-1: one unit short).
        arg = draw(st.one_of(st.sampled_from([0, 0, 0, -1]), st.integers(1, 10**30)))
    elif kind in ("deliverKey", "deliverKeys"):
        # The buyers served (deliverKey: the actor), and now and then the position of one
        # whose key the seller sealed to a key the purchase does not name (the buyer replaced
        # it after the seller read it).
        batch = None
        if kind == "deliverKeys":
            batch = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True))
        stale = draw(st.sampled_from([None, None, None, 0, 1]))
        arg = (batch, stale)
    elif kind == "mine":
        arg = draw(st.sampled_from([1, DELIVERY_WINDOW // 2, DELIVERY_WINDOW, DELIVERY_WINDOW + 1]))
    elif kind == "refund":
        # Whether the buyer waits for its deadline to pass first (blocks are mined).
        arg = draw(st.booleans())
    elif kind == "setPrice":
        arg = draw(prices)
    return kind, index, actor, arg, aim


def test_every_token_is_in_escrow_in_revenue_or_back_with_its_buyer(
    chain, read, accounts, token, registry, marketplace, tasks, owner, aggregator, trainers
):
    """Random interleavings of every call that moves tokens (buy, buyWithPermit, deliverKey,
    deliverKeys, refund, withdraw) with key updates, price changes, delisting, blocks passing
    and blacklistings, on two listed tasks, against a model kept in Python. After every step:

    - the marketplace holds exactly sum(escrowed) + sum(revenue) - sum(withdrawn);
    - every buyer's payment is in escrow (Pending), in revenue (Delivered) or back with the
      buyer (Refunded), and its balance says so;
    - per model, the payees' withdrawable + withdrawn add up to at most the revenue, and to
      less than one base unit per payee below it;
    - a delivery sealed to a key other than the purchase's (the buyer replaced it) reverts
      and moves nothing, also in a batch;
    - a blacklisted buyer or payee moves nothing with buy, buyWithPermit or withdraw.

    The successful calls of each path are counted over all examples and must be at least
    three: a path that always reverts would prove nothing. Three explicit examples make sure
    of it; the random ones, whose calls aim at an actor they can succeed for, add more.
    """
    seller = owner
    buyers = [aggregator, accounts[7], accounts[8], accounts[9]]  # neither payees nor seller
    # Task A: three equal contributors. Task B: uneven, with a 100 ppm earner and a zero one.
    task_specs = [
        (trainers[0:3], [300_000, 300_000, 300_000]),
        (trainers[1:5], [100, 299_900, 600_000, 0]),
    ]
    task_ids = [tasks.completed(list(c), scores=s, minParticipants=1) for c, s in task_specs]
    earned = [
        {addr(t): read.ledger.membership(task_id, t).earned for t in contributors}
        for task_id, (contributors, _) in zip(task_ids, task_specs, strict=True)
    ]
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    start_balance = 2**86
    for b in buyers:
        token.mint(b, start_balance, sender=owner)
        token.approve(marketplace, MAX_UINT256, sender=b)

    def check(models, balances, held_before):
        """Every view against the model, and the money identities."""
        for m in models:
            listing = read.marketplace.listing(m.model_id)
            assert (listing.price, listing.active, listing.sales) == (m.price, m.active, m.sales)
            assert (listing.escrowed, listing.revenue) == (m.escrowed, m.revenue)
            for b in buyers:
                expected = m.purchases.get(addr(b), PurchaseModel())
                stored = read.marketplace.purchase(m.model_id, b)
                assert (stored.status, stored.pricePaid) == (expected.status, expected.paid)
                if expected.status == PENDING:
                    assert (stored.deadlineBlock, stored.buyerKey) == (
                        expected.deadline,
                        expected.key,
                    )
                assert read.marketplace.hasAccess(m.model_id, b) == (expected.status == DELIVERED)
            accounted = 0
            for payee in {addr(t) for t in trainers} | {addr(buyers[0])}:
                withdrawn = read.marketplace.withdrawn(m.model_id, payee)
                withdrawable = read.marketplace.withdrawable(m.model_id, payee)
                assert withdrawn == m.withdrawn.get(payee, 0)
                assert withdrawable == m.withdrawable(payee)
                accounted += withdrawn + withdrawable
            assert accounted <= m.revenue
            assert m.revenue - accounted < m.payees
        for b in buyers:
            # Whatever a buyer paid is in escrow or revenue; a refund gave it back.
            spent = sum(
                m.purchases[addr(b)].paid
                for m in models
                if m.purchases.get(addr(b), PurchaseModel()).status in (PENDING, DELIVERED)
            )
            assert read.token.balanceOf(b) == balances[addr(b)] == start_balance - spent
        held = read.token.balanceOf(marketplace) - held_before
        assert held == sum(
            m.escrowed + m.revenue - sum(m.withdrawn.values()) for m in models
        )

    # Successful calls of each path that moves tokens, over all examples: the property says
    # little about a path that never succeeds.
    exercised = collections.Counter()

    def tally(path):
        exercised[path] += 1
        event(path)  # shown by --hypothesis-show-statistics

    payees = [*trainers, buyers[0]]  # buyers[0] never earned anything

    def targets(kind, m, next_block):
        """Who ``kind`` can succeed for on model ``m`` now (before blacklistings)."""
        pending = [b for b in buyers if m.purchase(addr(b)).status == PENDING]
        if kind in ("updateBuyerKey", "deliverKey", "deliverKeys"):
            return pending
        if kind == "refund":
            return [b for b in pending if m.purchase(addr(b)).deadline < next_block]
        if kind == "withdraw":
            return [p for p in payees if m.withdrawable(addr(p))]
        return buyers

    def sealed_to(m, buyer, stale):
        """The buyer key the seller names: the purchase's, or another one if ``stale``."""
        current = m.purchase(addr(buyer)).key
        if not stale:
            return current if current != b"\x00" * 32 else BUYER_KEY
        return OTHER_KEY if current != OTHER_KEY else BUYER_KEY

    def frozen(models, actor):
        """What a blacklisted actor's buy or withdraw could change."""
        return (
            [read.marketplace.listing(m.model_id) for m in models],
            [read.marketplace.purchase(m.model_id, actor) for m in models],
            [read.marketplace.withdrawn(m.model_id, actor) for m in models],
            read.token.balanceOf(actor),
            read.token.balanceOf(marketplace),
            read.token.allowance(actor, marketplace),
            read.token.nonces(actor),
        )

    @examples(50)
    @given(st.tuples(prices, prices), st.lists(money_ops(), min_size=6, max_size=16))
    # Every path that moves tokens, and the race of a key update with a delivery sealed to
    # the old key, in each of three examples, whatever hypothesis draws.
    @example(
        (7, 10**18 + 1),
        [
            ("buy", 0, 1, 0, False),
            ("buyWithPermit", 0, 2, 0, False),
            ("updateBuyerKey", 0, 1, None, False),
            ("deliverKey", 0, 1, (None, 0), False),  # sealed to the key just replaced
            ("deliverKeys", 0, 0, ([1, 2], None), False),
            ("buy", 0, 3, 5, False),
            ("deliverKey", 0, 3, (None, None), False),
            ("withdraw", 0, 0, None, False),
            ("buy", 1, 3, 0, False),
            ("mine", 1, 0, DELIVERY_WINDOW + 1, False),
            ("refund", 1, 3, False, False),
        ],
    )
    @example(
        (2**80, 1),
        [
            ("buy", 1, 0, 0, False),
            ("buyWithPermit", 1, 1, 10**30, False),
            ("deliverKey", 1, 0, (None, None), False),
            ("updateBuyerKey", 1, 1, None, False),
            ("deliverKeys", 1, 0, ([1], 0), False),  # sealed to the key just replaced
            ("deliverKeys", 1, 0, ([1], None), False),
            ("withdraw", 1, 3, None, False),
            ("buyWithPermit", 0, 2, 0, False),
            ("refund", 0, 2, True, False),  # after waiting for the deadline
        ],
    )
    @example(
        (1_000, 3),
        [
            ("buy", 0, 2, 0, False),
            ("buy", 1, 2, 0, False),
            ("updateBuyerKey", 1, 2, None, False),
            ("deliverKey", 1, 2, (None, 0), False),  # sealed to the key just replaced
            ("deliverKey", 1, 2, (None, None), False),
            ("deliverKeys", 0, 0, ([2], None), False),
            ("buyWithPermit", 0, 3, 0, False),
            ("refund", 0, 3, True, False),
            ("withdraw", 1, 3, None, False),
            ("withdraw", 0, 1, None, False),
        ],
    )
    def run(list_prices, ops):
        with isolated(chain):
            held_before = read.token.balanceOf(marketplace)
            models = []
            for task_id, price, shares in zip(task_ids, list_prices, earned, strict=True):
                tx = marketplace.listTaskModel(
                    task_id, CID_MODEL, CID_SPEC, PLAINTEXT_HASH, price, sender=seller
                )
                [event] = tx.decode_logs(marketplace.ModelListed)
                models.append(ListingModel(event.modelId, shares, price))
            balances = {addr(b): start_balance for b in buyers}
            allowances = {addr(b): MAX_UINT256 for b in buyers}
            blacklisted: set[str] = set()
            check(models, balances, held_before)

            for kind, index, actor, arg, aim in ops:
                next_block = chain.blocks.height + 1  # ape sends even a failing transaction
                if aim and not targets(kind, models[index], next_block):
                    index = 1 - index  # the other model, if the call can succeed there
                m = models[index]
                mid = m.model_id
                pending = targets("deliverKey", m, next_block)
                pick = functools.partial(pick_actor, actor, aim)
                if kind in ("buy", "buyWithPermit"):
                    who = buyers[actor % len(buyers)]
                    b = addr(who)
                    max_price = max(m.price + arg, 0)
                    permit = kind == "buyWithPermit"
                    allowance = max_price if permit else allowances[b]
                    if not m.active:
                        error = (marketplace.ModelMarketplaceDelisted, {"modelId": mid})
                    elif b in blacklisted:
                        error = (marketplace.ModelMarketplaceBlacklisted, {"account": b})
                    elif m.price > max_price:
                        error = (marketplace.ModelMarketplacePriceAboveMax, {"maxPrice": max_price})
                    elif m.purchase(b).status in (PENDING, DELIVERED):
                        error = (marketplace.ModelMarketplaceAlreadyPurchased, {"buyer": b})
                    elif allowance < m.price:
                        error = (marketplace.ModelMarketplaceInsufficientAllowance, {})
                    else:
                        error = None
                    if permit:
                        deadline = chain.pending_timestamp + 3_600
                        v, r, s = sign_permit(chain, token, who, marketplace, max_price, deadline)
                        call = functools.partial(
                            marketplace.buyWithPermit, mid, max_price, BUYER_KEY, deadline, v, r, s
                        )
                    else:
                        call = functools.partial(marketplace.buy, mid, max_price, BUYER_KEY)
                    if error:
                        before = frozen(models, who)
                        with ape.reverts(error[0], **error[1]):
                            call(sender=who)
                        assert frozen(models, who) == before
                    else:
                        tx = call(sender=who)
                        tally(kind)
                        m.purchases[b] = PurchaseModel(
                            PENDING, m.price, tx.block_number + DELIVERY_WINDOW, BUYER_KEY
                        )
                        balances[b] -= m.price
                        if allowance != MAX_UINT256:
                            allowances[b] = allowance - m.price
                elif kind == "updateBuyerKey":
                    who = pick(buyers, pending)
                    p = m.purchase(addr(who))
                    new_key = OTHER_KEY if p.key != OTHER_KEY else BUYER_KEY
                    if p.status != PENDING:
                        with ape.reverts(marketplace.ModelMarketplaceNotPending, buyer=addr(who)):
                            marketplace.updateBuyerKey(mid, new_key, sender=who)
                    else:  # also while blacklisted: the buyer paid
                        tx = marketplace.updateBuyerKey(mid, new_key, sender=who)
                        p.deadline, p.key = tx.block_number + DELIVERY_WINDOW, new_key
                elif kind in ("deliverKey", "deliverKeys"):
                    indices, stale = arg
                    if indices is None:
                        batch = [pick(buyers, pending)]
                    else:
                        batch = [buyers[i] for i in indices]
                        if aim and pending:
                            batch = [b for b in batch if b in pending] or pending
                    keys = [
                        sealed_to(m, b, stale is not None and i == stale % len(batch))
                        for i, b in enumerate(batch)
                    ]
                    error = None
                    for b, key in zip(batch, keys, strict=True):  # in order, as the contract
                        if m.purchase(addr(b)).status != PENDING:
                            error = (marketplace.ModelMarketplaceNotPending, addr(b))
                            break
                        if key != m.purchase(addr(b)).key:
                            error = (marketplace.ModelMarketplaceBuyerKeyChanged, addr(b))
                            break
                    if kind == "deliverKey":
                        call = functools.partial(
                            marketplace.deliverKey, mid, batch[0], keys[0], SEALED_KEY
                        )
                    else:
                        call = functools.partial(
                            marketplace.deliverKeys, mid, batch, keys, [SEALED_KEY] * len(batch)
                        )
                    if error:
                        with ape.reverts(error[0], modelId=mid, buyer=error[1]):
                            call(sender=seller)
                        if error[0] == marketplace.ModelMarketplaceBuyerKeyChanged:
                            tally("delivery to a replaced key refused")
                    else:
                        tx = call(sender=seller)
                        tally(kind)
                        for b in batch:
                            p = m.purchases[addr(b)]
                            p.status = DELIVERED
                            m.revenue += p.paid
                            m.sales += 1
                        assert [e.sales for e in tx.decode_logs(marketplace.KeyDelivered)] == list(
                            range(m.sales - len(batch) + 1, m.sales + 1)
                        )
                elif kind == "refund":
                    who = pick(buyers, targets(kind, m, next_block), pending)
                    p = m.purchase(addr(who))
                    if arg and p.status == PENDING and next_block <= p.deadline:
                        chain.mine(p.deadline - chain.blocks.height)  # the window passes
                        next_block = chain.blocks.height + 1
                    if p.status != PENDING:
                        with ape.reverts(marketplace.ModelMarketplaceNotPending, buyer=addr(who)):
                            marketplace.refund(mid, sender=who)
                    elif next_block <= p.deadline:
                        with ape.reverts(
                            marketplace.ModelMarketplaceRefundNotYet, deadlineBlock=p.deadline
                        ):
                            marketplace.refund(mid, sender=who)
                    else:  # also while blacklisted: it is the buyer's own money
                        tx = marketplace.refund(mid, sender=who)
                        tally(kind)
                        [event] = tx.decode_logs(marketplace.PurchaseRefunded)
                        assert event.amount == p.paid
                        p.status = REFUNDED
                        balances[addr(who)] += p.paid
                elif kind == "mine":
                    chain.mine(arg)
                elif kind == "withdraw":
                    who = pick(payees, targets(kind, m, next_block))
                    due = m.withdrawable(addr(who))
                    if addr(who) in blacklisted:
                        before = frozen(models, who)
                        with ape.reverts(
                            marketplace.ModelMarketplaceBlacklisted, account=addr(who)
                        ):
                            marketplace.withdraw(mid, sender=who)
                        assert frozen(models, who) == before
                    elif due == 0:
                        with ape.reverts(marketplace.ModelMarketplaceNothingToWithdraw):
                            marketplace.withdraw(mid, sender=who)
                    else:
                        balance = read.token.balanceOf(who)
                        tx = marketplace.withdraw(mid, sender=who)
                        tally(kind)
                        [event] = tx.decode_logs(marketplace.RevenueWithdrawn)
                        assert event.amount == due
                        assert read.token.balanceOf(who) - balance == due
                        m.withdrawn[addr(who)] = m.withdrawn.get(addr(who), 0) + due
                        if addr(who) in balances:
                            balances[addr(who)] += due
                elif kind == "setPrice":
                    if not m.active:
                        with ape.reverts(marketplace.ModelMarketplaceDelisted):
                            marketplace.setPrice(mid, arg, sender=seller)
                    else:
                        marketplace.setPrice(mid, arg, sender=seller)
                        m.price = arg
                elif kind == "delist":
                    if not m.active:
                        with ape.reverts(marketplace.ModelMarketplaceDelisted):
                            marketplace.delist(mid, sender=seller)
                    else:
                        marketplace.delist(mid, sender=seller)
                        m.active = False
                else:  # blacklist, or lift a blacklisting, of a buyer or a payee
                    who = addr([*buyers, *trainers][actor % (len(buyers) + len(trainers))])
                    if who in blacklisted:
                        registry.liftBlacklist(who, sender=owner)
                        blacklisted.discard(who)
                    else:
                        registry.blacklist(who, CID_SPEC, sender=owner)
                        blacklisted.add(who)
                check(models, balances, held_before)

    run()
    print(f"money paths exercised: {dict(exercised)}")
    paths = ["buy", "buyWithPermit", "deliverKey", "deliverKeys", "refund", "withdraw"]
    paths.append("delivery to a replaced key refused")
    assert {p: exercised[p] for p in paths if exercised[p] < 3} == {}, dict(exercised)


# --------------------------------------------------------------------------------------------
# 3. Blacklist
# --------------------------------------------------------------------------------------------


def sign_permit(chain, token, owner_account, spender, value, deadline):
    """An EIP-2612 permit of ``owner_account`` (a test account), as (v, r, s)."""
    signed = Account.sign_typed_data(
        owner_account.private_key,
        {
            "name": "FairFL Token",
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": addr(token),
        },
        {
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        },
        {
            "owner": addr(owner_account),
            "spender": addr(spender),
            "value": value,
            "nonce": token.nonces(owner_account),
            "deadline": deadline,
        },
    )
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


blacklisted_actions = st.one_of(
    st.tuples(st.just("register"), st.tuples(cids, st.integers(0, 1))),
    st.tuples(st.just("updateMetadata"), cids),
    st.tuples(st.just("join"), st.just(None)),
    st.tuples(
        st.just("submitUpdate"),
        st.tuples(cids, st.integers(0, MAX_UINT64), st.integers(0, MAX_UINT64)),
    ),
    st.tuples(st.just("listTaskModel"), st.tuples(cids, cids, hashes, prices)),
    st.tuples(st.just("buy"), st.tuples(st.integers(0, 10**24), buyer_keys)),
    st.tuples(st.just("buyWithPermit"), st.tuples(st.integers(0, 10**24), buyer_keys)),
    st.tuples(st.just("withdraw"), st.just(None)),
    st.tuples(st.just("reward"), st.tuples(st.integers(1, PPM), st.booleans())),
    st.tuples(st.just("claimRewards"), st.just(None)),
    st.tuples(st.just("commitWatermark"), hashes.filter(any)),  # zero: TaskLedgerEmptyCommitment
    st.tuples(st.just("claimWatermark"), cids),
)


@pytest.mark.parametrize("how", ["governance", "rejections"])
def test_blacklisted_address_can_never_move_state_nor_be_rewarded(
    how,
    chain,
    read,
    token,
    registry,
    ledger,
    marketplace,
    tasks,
    owner,
    aggregator,
    trainers,
    buyer,
    attacker,
    stranger,
):
    """``attacker`` is blacklisted by governance or by three rejections through the ledger;
    with ``governance``, the never-registered ``stranger`` is blacklisted too. Before that,
    every action is shown to succeed for it (so each revert below is the blacklist's doing)."""
    honest, seller_trainer = trainers[0], trainers[1]
    tasks.register(honest, seller_trainer, attacker)

    # Task A: created by the attacker (a task creator) and completed with `honest` and the
    # attacker as contributors: the attacker may list its model and has rewards to claim.
    ledger.grantRole(ledger.TASK_CREATOR_ROLE(), attacker, sender=owner)
    ledger.createTask(
        task_config(aggregator, rounds=1, minParticipants=1, submissionWindow=1_000),
        sender=attacker,
    )
    task_a = ledger.taskCount()
    for p in (honest, attacker):
        ledger.join(task_a, sender=p)
    ledger.commitWatermark(task_a, PLAINTEXT_HASH, sender=attacker)  # to claim once A completes
    ledger.startRound(task_a, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    for p in (honest, attacker):
        ledger.submitUpdate(task_a, 1, CID_UPDATE, 1, 1, "", sender=p)
    result = round_result(contributors=[honest, attacker], scores=[600_000, 400_000])
    ledger.finalizeRound(task_a, 1, result, sender=aggregator)
    assert read.ledger.claimable(task_a, attacker) > 0
    # Task B: four rounds, joined by the attacker; round 1 open.
    task_b = tasks.create(rounds=4, minParticipants=1, submissionWindow=1_000)
    ledger.join(task_b, sender=attacker)
    ledger.join(task_b, sender=seller_trainer)
    ledger.startRound(task_b, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    # Task F: joined by the attacker, before round 1: where watermark keys are committed.
    task_f = tasks.create(rounds=1, minParticipants=1)
    ledger.join(task_f, sender=attacker)
    # Task C: the attacker submitted an update that is still to be scored.
    task_c = tasks.create(rounds=1, minParticipants=1, submissionWindow=1_000)
    for p in (attacker, seller_trainer):
        ledger.join(task_c, sender=p)
    ledger.startRound(task_c, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    for p in (attacker, seller_trainer):
        ledger.submitUpdate(task_c, 1, CID_UPDATE, 1, 1, "", sender=p)
    # Task D: open, not joined by the attacker.
    task_d = tasks.create(rounds=1, minParticipants=1)
    # Model M, of task E: the attacker contributed 40 % and has revenue to withdraw, and it
    # has FLT to buy with.
    task_e = tasks.create(rounds=1, minParticipants=1, submissionWindow=1_000)
    for p in (attacker, seller_trainer):
        ledger.join(task_e, sender=p)
    ledger.startRound(task_e, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    for p in (attacker, seller_trainer):
        ledger.submitUpdate(task_e, 1, CID_UPDATE, 1, 1, "", sender=p)
    result = round_result(contributors=[attacker, seller_trainer], scores=[400_000, 600_000])
    ledger.finalizeRound(task_e, 1, result, sender=aggregator)
    price = 1_000 * UNIT
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    token.mint(buyer, 10**6 * UNIT, sender=owner)
    token.mint(attacker, 10**6 * UNIT, sender=owner)
    tx = marketplace.listTaskModel(task_e, CID_MODEL, CID_SPEC, PLAINTEXT_HASH, price, sender=owner)
    model = tx.decode_logs(marketplace.ModelListed)[0].modelId
    token.approve(marketplace, price, sender=buyer)
    marketplace.buy(model, price, BUYER_KEY, sender=buyer)
    marketplace.deliverKey(model, buyer, BUYER_KEY, SEALED_KEY, sender=owner)
    assert read.marketplace.withdrawable(model, attacker) == 400 * UNIT

    def run(kind, args, actor):
        """Performs one action of ``actor`` (``reward``: the aggregator pays ``actor``)."""
        if kind == "register":
            registry.register(args, sender=actor)
        elif kind == "updateMetadata":
            registry.updateMetadata(args, sender=actor)
        elif kind == "join":
            ledger.join(task_d, sender=actor)
        elif kind == "submitUpdate":
            cid, samples, millis = args
            number = read.ledger.task(task_b).currentRound
            ledger.submitUpdate(task_b, number, cid, samples, millis, "", sender=actor)
        elif kind == "listTaskModel":
            encrypted, metadata, digest, list_price = args
            marketplace.listTaskModel(task_a, encrypted, metadata, digest, list_price, sender=actor)
        elif kind == "buy":
            extra, key = args
            marketplace.buy(model, price + extra, key, sender=actor)
        elif kind == "buyWithPermit":
            extra, key = args
            deadline = chain.pending_timestamp + 3_600
            v, r, s = sign_permit(chain, token, actor, marketplace, price + extra, deadline)
            marketplace.buyWithPermit(model, price + extra, key, deadline, v, r, s, sender=actor)
        elif kind == "withdraw":
            marketplace.withdraw(model, sender=actor)
        elif kind == "reward":  # the aggregator tries to pay the attacker for its task-C update
            score, with_honest = args
            contributors = [actor, seller_trainer] if with_honest else [actor]
            scores = [score, PPM - score] if with_honest else [score]
            ledger.finalizeRound(
                task_c,
                1,
                round_result(contributors=contributors, scores=scores),
                sender=aggregator,
            )
        elif kind == "claimRewards":  # what task A credited to the attacker
            ledger.claimRewards(task_a, sender=actor)
        elif kind == "commitWatermark":
            ledger.commitWatermark(task_f, args, sender=actor)
        elif kind == "claimWatermark":
            ledger.claimWatermark(task_a, args, sender=actor)
        else:
            raise AssertionError(kind)

    def expected_error(kind):
        """The custom error each action must revert with once ``actor`` is blacklisted."""
        if kind in ("register", "updateMetadata", "reward"):
            return registry.ParticipantRegistryBlacklisted
        if kind in ("join", "submitUpdate", "claimRewards", "commitWatermark", "claimWatermark"):
            return ledger.TaskLedgerBlacklisted
        return marketplace.ModelMarketplaceBlacklisted

    def prepare(kind, args, actor):
        """Token-side preparation the marketplace needs (ERC-20 calls are not FairFL state)."""
        if kind == "buy":
            token.approve(marketplace, price + args[0], sender=actor)

    # Controls: before the blacklisting, each action succeeds for the same accounts.
    control_args = {
        "register": CID_SPEC,
        "updateMetadata": CID_SPEC,
        "join": None,
        "submitUpdate": (CID_UPDATE, 1, 1),
        "listTaskModel": (CID_MODEL, CID_SPEC, PLAINTEXT_HASH, price),
        "buy": (0, BUYER_KEY),
        "buyWithPermit": (0, BUYER_KEY),
        "withdraw": None,
        "reward": (500_000, True),
        "claimRewards": None,
        "commitWatermark": PLAINTEXT_HASH,
        "claimWatermark": CID_SPEC,
    }
    for kind, args in control_args.items():
        actor = stranger if kind == "register" else attacker
        with isolated(chain):
            prepare(kind, args, actor)
            run(kind, args, actor)

    # The blacklisting.
    if how == "governance":
        registry.blacklist(attacker, CID_SPEC, sender=owner)
        registry.blacklist(stranger, CID_SPEC, sender=owner)
        blacklisted = [attacker, stranger]
    else:
        for number in (1, 2, 3):
            if number > 1:
                ledger.startRound(task_b, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
            for p in (attacker, seller_trainer):
                ledger.submitUpdate(task_b, number, CID_UPDATE, 1, 1, "", sender=p)
            tx = ledger.finalizeRound(
                task_b,
                number,
                round_result(contributors=[seller_trainer], scores=[PPM], rejected=[attacker]),
                sender=aggregator,
            )
            assert read.registry.isBlacklisted(attacker) == (number == 3)
        [event] = tx.decode_logs(registry.Blacklisted)
        assert (event.account, event.automatic) == (addr(attacker), True)
        ledger.startRound(task_b, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
        blacklisted = [attacker]

    def state():
        """Everything the actions could change."""
        views = [
            read.registry.participantCount(),
            read.ledger.taskCount(),
            read.marketplace.modelCount(),
            read.marketplace.listing(model),
            read.token.totalSupply(),
            read.token.balanceOf(marketplace),
            read.token.balanceOf(attacker),
            read.token.allowance(attacker, marketplace),
            read.token.nonces(attacker),
            read.marketplace.purchase(model, attacker),
            read.marketplace.withdrawn(model, attacker),
            read.ledger.round(task_b, read.ledger.task(task_b).currentRound),
            read.ledger.round(task_c, 1),
            read.ledger.watermarkCommitment(task_f, attacker),
            read.ledger.watermarkCommitment(task_a, attacker),
        ]
        for t in (task_a, task_b, task_c, task_d, task_f):
            views.append(read.ledger.task(t))
            views.append(read.ledger.membership(t, attacker))
            views.append(read.ledger.claimable(t, attacker))
        for b in blacklisted:
            views.append(read.registry.participant(b))
            views.append(read.registry.metadataOf(b))
        return views

    def attempt(actions):
        """Every action must revert with its custom error and leave the state as it was."""
        with isolated(chain):
            before = state()
            for kind, args, actor in actions:
                prepare(kind, args, actor)
                if kind == "buy":
                    before = state()  # only the allowance moved
                with ape.reverts(expected_error(kind), account=addr(actor)):
                    run(kind, args, actor)
                assert state() == before, kind

    # Each action once, with the arguments that worked before the blacklisting.
    attempt(
        [
            (kind, args, blacklisted[-1] if kind == "register" else attacker)
            for kind, args in control_args.items()
        ]
    )

    # Then random sequences with random arguments.
    @examples(15)
    @given(st.lists(blacklisted_actions, min_size=1, max_size=4))
    def check(actions):
        resolved = []
        for kind, args in actions:
            actor = attacker
            if kind == "register":
                args, who = args
                actor = blacklisted[who % len(blacklisted)]
            resolved.append((kind, args, actor))
        attempt(resolved)

    check()


# --------------------------------------------------------------------------------------------
# 4. Reputation
# --------------------------------------------------------------------------------------------


@dataclass
class ParticipantModel:
    """The expected ``Participant`` record, field by field."""

    registered: bool = True
    blacklisted: bool = False
    reputationBps: int = 5_000
    rejectionsInWindow: int = 0
    windowStartBlock: int = 0
    acceptedUpdates: int = 0
    rejectedUpdates: int = 0

    def as_tuple(self):
        return (
            self.registered,
            self.blacklisted,
            self.reputationBps,
            self.rejectionsInWindow,
            self.windowStartBlock,
            self.acceptedUpdates,
            self.rejectedUpdates,
        )

    def move(self, outcome: int, alpha: int) -> tuple[int, int]:
        old = self.reputationBps
        self.reputationBps = (old * (MAX_BPS - alpha) + outcome * alpha) // MAX_BPS
        return old, self.reputationBps


@st.composite
def reputation_plans(draw):
    """A policy and 1-8 rounds of outcomes for the five trainers, with blocks mined before each.

    The gaps often put a rejection exactly at the end of a rejection window. A round is
    ``strict`` now and then: it keeps the blacklisted trainers among the accepted ones (and so
    must revert); otherwise they are left out when the round is sent."""
    window = draw(st.integers(1, 12))
    policy = (
        draw(
            st.one_of(st.sampled_from([1, 2_000, 5_000, 9_999, MAX_BPS]), st.integers(1, MAX_BPS))
        ),
        draw(st.integers(1, 4)),  # maxRejections
        window,  # windowBlocks
    )
    rounds = []
    for _ in range(draw(st.integers(1, 8))):
        accepted, rejected = [], []
        for t in draw(st.permutations(range(5))):
            kind = draw(st.sampled_from(["accepted", "accepted", "rejected", "absent"]))
            if kind == "accepted":
                outcome = draw(
                    st.one_of(
                        st.sampled_from([0, 1, 5_000, 9_999, MAX_BPS]), st.integers(0, MAX_BPS)
                    )
                )
                if draw(st.integers(0, 24)) == 0:  # rarely, an out-of-range outcome
                    outcome = draw(st.integers(MAX_BPS + 1, MAX_UINT16))
                accepted.append((t, outcome))
            elif kind == "rejected":  # now and then held back: recorded, not counted
                rejected.append((t, draw(st.sampled_from([REASON_VALIDATION] * 3
                                                         + [REASON_HELD_BACK]))))
        gap = draw(st.one_of(st.integers(0, 12), st.sampled_from([window - 2, window - 1])))
        strict = draw(st.sampled_from([False] * 4 + [True]))
        rounds.append((accepted, rejected, max(gap, 0), strict))
    return policy, rounds


V, H = REASON_VALIDATION, REASON_HELD_BACK


def test_reputation_follows_integer_ewma_within_bounds_and_rejections_blacklist(
    chain, read, registry, tasks, owner, aggregator, trainers
):
    reporter = aggregator  # stands in for the ledger
    registry.grantRole(registry.LEDGER_ROLE(), reporter, sender=owner)
    tasks.register(*trainers)

    @examples(25)
    @given(reputation_plans())
    # A 5-block window: trainer 0 rejected at blocks b, b+4, b+5 and at b, b+5, b+9; the
    # rejection at b+5 is the first one outside the window opened at b.
    @example(((2_000, 3, 5), [([], [(0, V)], 0, False), ([], [(0, V)], 3, False),
                              ([], [(0, V)], 0, False)]))
    @example(((2_000, 3, 5), [([], [(0, V)], 0, False), ([], [(0, V)], 4, False),
                              ([], [(0, V)], 3, False)]))
    # A held-back update between two rejections neither counts nor moves the reputation.
    @example(((2_000, 2, 5), [([], [(0, V)], 0, False), ([], [(0, H), (0, H)], 0, False),
                              ([], [(0, V)], 0, False)]))
    # Both ends of the range: alpha = 100% moves a reputation straight to the outcome.
    @example(((MAX_BPS, 4, 1), [([(0, MAX_BPS), (1, 0)], [], 0, False),
                                ([(0, 0)], [(1, V)], 0, False)]))
    def check(plan):
        (alpha, max_rejections, window), rounds = plan
        with isolated(chain):
            registry.setPolicy((alpha, max_rejections, window), sender=owner)
            models = [ParticipantModel() for _ in trainers]
            for number, (accepted, rejected, gap, strict) in enumerate(rounds, start=1):
                if gap:
                    chain.mine(gap)
                if not strict:
                    accepted = [(t, o) for t, o in accepted if not models[t].blacklisted]
                args = ({
                    "taskId": 7,
                    "round": number,
                    "aggregator": addr(aggregator),
                    "evidenceCid": CID_EVIDENCE_OF_ROUND,
                    "accepted": [addr(trainers[t]) for t, _ in accepted],
                    "outcomesBps": [o for _, o in accepted],
                    "rejected": [addr(trainers[t]) for t, _ in rejected],
                    "reasons": [reason for _, reason in rejected],
                },)
                failure = None
                for t, outcome in accepted:
                    if outcome > MAX_BPS:
                        failure = (
                            registry.ParticipantRegistryInvalidOutcome,
                            {"outcomeBps": outcome},
                        )
                    elif models[t].blacklisted:
                        failure = (
                            registry.ParticipantRegistryBlacklisted,
                            {"account": addr(trainers[t])},
                        )
                    if failure:
                        break
                if failure:
                    error, inputs = failure
                    with ape.reverts(error, **inputs):
                        registry.recordRound(*args, sender=reporter)
                else:
                    tx = registry.recordRound(*args, sender=reporter)
                    moves, counted, blacklisted = [], [], []
                    for t, outcome in accepted:
                        models[t].acceptedUpdates += 1
                        moves.append((addr(trainers[t]), outcome, *models[t].move(outcome, alpha)))
                    for t, reason in rejected:
                        m = models[t]
                        m.rejectedUpdates += 1
                        if reason == REASON_HELD_BACK:
                            counted.append((addr(trainers[t]), m.rejectionsInWindow, reason))
                            continue
                        moves.append((addr(trainers[t]), 0, *m.move(0, alpha)))
                        if (
                            m.rejectionsInWindow == 0
                            or tx.block_number >= m.windowStartBlock + window
                        ):
                            m.windowStartBlock = tx.block_number
                            m.rejectionsInWindow = 1
                        else:
                            m.rejectionsInWindow += 1
                        counted.append((addr(trainers[t]), m.rejectionsInWindow, reason))
                        if not m.blacklisted and m.rejectionsInWindow >= max_rejections:
                            m.blacklisted = True
                            blacklisted.append((addr(trainers[t]), True))
                    assert moves == [
                        (e.account, e.outcomeBps, e.oldBps, e.newBps)
                        for e in tx.decode_logs(registry.ReputationUpdated)
                    ]
                    assert counted == [
                        (e.account, e.rejectionsInWindow, e.reason)
                        for e in tx.decode_logs(registry.UpdateRejected)
                    ]
                    assert blacklisted == [
                        (e.account, e.automatic) for e in tx.decode_logs(registry.Blacklisted)
                    ]
                    # Each rejection and blacklisting names its round, aggregator and evidence.
                    for e in [*tx.decode_logs(registry.UpdateRejected),
                              *tx.decode_logs(registry.Blacklisted)]:
                        assert (e.taskId, e.round, e.evidenceCid) == (7, number,
                                                                      CID_EVIDENCE_OF_ROUND)
                    assert all(e.aggregator == addr(aggregator)
                               for e in tx.decode_logs(registry.UpdateRejected))
                    assert all(e.by == addr(aggregator)
                               for e in tx.decode_logs(registry.Blacklisted))
                for t, model in zip(trainers, models, strict=True):
                    record = read.registry.participant(t)
                    assert 0 <= record.reputationBps <= MAX_BPS
                    assert record == model.as_tuple()

    check()
