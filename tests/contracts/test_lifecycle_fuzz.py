"""Stateful fuzzing (hypothesis ``RuleBasedStateMachine``) of the whole life cycle of FairFL.

One machine drives the four deployed contracts on the test's anvil through random sequences
of everything FairFL does: registering, joining, creating tasks (some at the edge of FLT's
cap), starting rounds, submitting, finalizing them with contributors and rejections (also
rejections that blacklist automatically), closing rounds (by the aggregator after the
deadline, by anyone after the grace period, with blocks mined as needed), replacing
aggregators (by governance at once, by a task's creator after its delay), cancelling tasks,
claiming rewards, governance blacklisting and lifting, appeals filed, granted and denied,
listing completed task models, buying, replacing buyer keys, delivering sealed keys, refunds
after the delivery window, price changes, delistings and withdrawals by payees.

A model kept in Python (:class:`TaskModel`, :class:`ListingModel` and the machine's own
dictionaries) predicts the outcome of every call: success, or the custom error of the revert
with its arguments, and every amount. After every step the invariants compare the chain with
it; every expectation comes from the model, never from the contract's view of the same
quantity:

1. Supply: FLT's total supply is the sum of the ``RewardsClaimed`` amounts plus what the test
   minted to buyers itself, and every account holds what the model says it received and spent.
2. Money: per listing, ``escrowed`` + the payees' ``withdrawable + withdrawn`` is what buyers
   paid less refunds, short of it by less than one base unit per payee (each entitlement is
   rounded down on its own), and the marketplace holds exactly the escrows plus the revenue
   not withdrawn yet.
3. Blacklist: every call the contracts forbid a blacklisted account is sent as a real
   transaction, must revert with its error and must leave everything the account could reach
   as it was. What stays open to it by design is modelled as allowed: refunds, key updates
   and (for a seller) key delivery and delisting, appeals, closing a round after the grace
   period, and being rejected for an update submitted before the blacklisting. The
   registry's blacklist, appeals and rejection windows match the model after every step.
4. Liveness: at the end of every example, inside a snapshot, each open task is driven to
   completion with permitted calls only (governance replaces a blacklisted aggregator or lifts
   blacklistings, rounds without quorum are closed by the aggregator or, after the grace
   period, by anyone, registered accounts join), and then every credited reward is claimed;
   in another snapshot every open task is cancelled and its budget released.
5. Cap: totalSupply + what open tasks may still credit and nobody claimed + what ended tasks
   credited and nobody claimed <= FLT's cap, and the ledger agrees to the unit: creating a
   task with exactly what the model says is left would succeed and one unit more would revert
   with ``TaskLedgerBudgetOverCap(left + 1, left)`` (both simulated with ``eth_call``).

Speed: transactions are sent with ``eth_sendTransaction`` from anvil's unlocked dev accounts
(the ape test accounts) and their raw receipts decoded here (ape's own path costs ~40 ms a
transaction and ~85 ms a revert, this ~3 ms), the views are read in JSON-RPC batches, and an
expected revert is checked with an ``eth_call`` on the pending block, where the transaction
would land (same code, same block number); a refused call of a blacklisted account is then
also mined. Examples are derandomized, each starts from a chain snapshot that its teardown
restores, and a run ends by checking that every path above was taken.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import types
from dataclasses import dataclass, field
from types import SimpleNamespace

import eth_abi
import pytest
from conftest import (
    CID_MODEL,
    CID_NEW_MODEL,
    CID_ROUND_EVIDENCE,
    CID_SPEC,
    CID_UPDATE,
    CID_WORKLOAD,
    DELIVERY_WINDOW,
    POLICY,
    PPM,
    UNIT,
    reverts,
    round_result,
    task_config,
)
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    keccak,
    to_checksum_address,
)
from eth_utils.abi import collapse_if_tuple
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from test_properties import (
    Views,
    _named,
    addr,
    isolated,
    scores_within_budget,
)

# enum TaskStatus / RoundStatus / AppealStatus / PurchaseStatus
OPEN, COMPLETED, CANCELLED = 1, 2, 3
R_NONE, R_OPEN, R_FINALIZED, R_CLOSED = 0, 1, 2, 3
APPEAL_NONE, APPEAL_PENDING, APPEAL_GRANTED, APPEAL_DENIED = 0, 1, 2, 3
P_NONE, P_PENDING, P_DELIVERED, P_REFUNDED = 0, 1, 2, 3

FLT_CAP = 10**9 * UNIT  # FairToken.MAX_SUPPLY
AGGREGATOR_DELAY = 86_400  # TaskLedger.AGGREGATOR_DELAY, in seconds
#: What the test mints, once, to each buyer, before any task.
BUYER_FUNDS = 10_000 * UNIT
#: Ephemeral X25519 key (32) + AES-GCM nonce (12) + sealed content key (32) + tag (16).
SEALED_KEY = b"\x5e" * 92
BUYER_KEYS = (b"\x01" * 32, b"\x02" * 32)
CID_STATEMENT = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqstatem"
CID_DECISION = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqdecisi"
CID_ENCRYPTED = "bafkreiencryptedmodelweightsofthetaskxxxxxxxxxxxxxxxxxxxxxx"
MAX_TASKS = 3  # per example
#: Submission windows, in blocks. Every transaction mines a block, so a 3-block window often
#: closes before its quorum and longer ones let rounds finalize; closing a round after its
#: deadline or grace period mines the missing blocks in one ``anvil_mine``.
WINDOWS = (3, 5, 10, 20)

#: The actions of a step, each as often as it appears (the methods of the machine). Once a
#: task is complete, half the steps are drawn among the marketplace's actions instead.
ACTIONS = (
    ["progress"] * 8
    + ["register", "create_task", "join", "start_round", "close_round", "seller_changes_listing"]
    + ["close_rejecting", "cancel_task"]
    + ["submit", "finalize", "claim", "buy", "withdraw", "governance_blacklists_or_lifts"] * 2
    + ["deliver", "refund", "list_model", "file_appeal", "resolve_appeal", "update_buyer_key"]
    + ["replace_aggregator", "cancel_task", "mine", "test_mints"]
    + ["file_appeal", "resolve_appeal", "resolve_appeal"]
    + ["blacklisted_tries"] * 3
)
NEEDS_LISTING = {"buy", "deliver", "refund", "withdraw", "update_buyer_key"}
NEEDS_LISTING |= {"seller_changes_listing"}

#: 100 examples of 40 steps (4,000 steps): about 80 s on two cores.
MACHINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass(repr=False)
class TaskModel:
    task_id: int
    creator: str
    aggregator: str
    rounds: int
    quorum: int
    window: int
    reward: int  # per round
    status: int = OPEN
    members: list[str] = field(default_factory=list)
    current: int = 0
    round_status: int = R_NONE  # of the current round
    deadline: int = 0
    submitted: list[str] = field(default_factory=list)  # to the current round, in order
    finalized: int = 0
    rewarded: int = 0
    earned: dict[str, int] = field(default_factory=dict)
    claimed: dict[str, int] = field(default_factory=dict)
    model_cid: str = CID_MODEL  # the current global model
    model_hash: bytes | None = None  # the plaintext hash named by the last RoundFinalized
    model_id: int = 0  # its listing, if any

    def __repr__(self):
        return f"task {self.task_id}"

    def reserved(self) -> int:
        """What the ledger must still hold under the cap for this task."""
        claimed = sum(self.claimed.values())
        if self.status == OPEN:
            return self.reward * self.rounds - claimed
        return self.rewarded - claimed

    def due(self, who: str) -> int:
        return self.earned.get(who, 0) - self.claimed.get(who, 0)


@dataclass
class PurchaseModel:
    status: int = P_NONE
    paid: int = 0
    deadline: int = 0
    key: bytes = b"\x00" * 32


@dataclass(repr=False)
class ListingModel:
    model_id: int
    task_id: int
    seller: str
    price: int
    shares: dict[str, int]  # the task's contributors -> what each earned (final)
    active: bool = True
    purchases: dict[str, PurchaseModel] = field(default_factory=dict)
    revenue: int = 0
    sales: int = 0
    withdrawn: dict[str, int] = field(default_factory=dict)
    paid: int = 0  # by buyers, in total
    refunded: int = 0  # to buyers, in total

    def __repr__(self):
        return f"model {self.model_id}"

    def purchase(self, buyer: str) -> PurchaseModel:
        return self.purchases.setdefault(buyer, PurchaseModel())

    @property
    def escrowed(self) -> int:
        return sum(p.paid for p in self.purchases.values() if p.status == P_PENDING)

    @property
    def payees(self) -> list[str]:
        return [a for a, e in self.shares.items() if e]

    def withdrawable(self, payee: str) -> int:
        entitled = self.revenue * self.shares.get(payee, 0) // sum(self.shares.values())
        return entitled - self.withdrawn.get(payee, 0)

    def pending(self) -> list[str]:
        return sorted(b for b, p in self.purchases.items() if p.status == P_PENDING)


@dataclass
class Rejections:
    count: int = 0
    start: int = 0


# --------------------------------------------------------------------------------------------
# Chain access
# --------------------------------------------------------------------------------------------


class Batch:
    """The view functions of the four contracts, read with one JSON-RPC batch per call of
    the instance (one HTTP request instead of one per view). Results decode as
    :class:`test_properties.Views` does."""

    def __init__(self, chain, contracts: dict):
        self._provider = chain.provider.web3.provider
        self._functions = {}
        for name, contract in contracts.items():
            abi = contract.contract_type.model_dump(mode="json", by_alias=True)["abi"]
            for item in abi:
                if item["type"] == "function":
                    self._functions[(name, item["name"])] = (
                        str(contract.address),
                        function_abi_to_4byte_selector(item),
                        [collapse_if_tuple(i) for i in item["inputs"]],
                        item["outputs"],
                        [collapse_if_tuple(o) for o in item["outputs"]],
                    )

    def __call__(self, calls: dict) -> dict:
        """``{key: (contract, function, *args)}`` -> ``{key: result}``. A ``("raw", call)``
        entry is an eth_call of its own (on the pending block) whose response comes back
        undecoded."""
        keys, requests, decoders = [], [], []
        for key, (contract, name, *args) in calls.items():
            keys.append(key)
            if contract == "raw":
                requests.append(("eth_call", [name, "pending"]))
                decoders.append(None)
                continue
            address, selector, input_types, outputs, output_types = self._functions[
                (contract, name)
            ]
            data = selector + eth_abi.encode(input_types, [addr(a) for a in args])
            requests.append(("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"]))
            decoders.append((name, outputs, output_types))
        if not requests:
            return {}
        responses = self._provider.make_batch_request(requests)
        results = {}
        for key, decoder, response in zip(keys, decoders, responses, strict=True):
            if decoder is None:
                results[key] = response
                continue
            name, outputs, output_types = decoder
            assert "error" not in response, f"{name} failed: {response['error']}"
            values = eth_abi.decode(output_types, bytes.fromhex(response["result"][2:]))
            if len(outputs) == 1:
                results[key] = _named(outputs[0], values[0])
            else:
                results[key] = tuple(
                    _named(o, v) for o, v in zip(outputs, values, strict=True)
                )
        return results


class Receipt:
    """A mined transaction, from the raw JSON-RPC receipt: its block and its events, decoded
    as ape's ``receipt.decode_logs(contract.Event)`` does (with attribute access)."""

    _events: dict = {}

    def __init__(self, raw: dict):
        self.block_number = int(raw["blockNumber"], 16)
        self._logs = raw["logs"]

    def decode_logs(self, event) -> list:
        abi = event.abi.model_dump(mode="json", by_alias=True)
        topic = "0x" + event_abi_to_log_topic(abi).hex()
        address = str(event.contract.address).lower()
        indexed = [i for i in abi["inputs"] if i["indexed"]]
        plain = [i for i in abi["inputs"] if not i["indexed"]]
        found = []
        for log in self._logs:
            if log["address"].lower() != address or log["topics"][0] != topic:
                continue
            values = {}
            for item, raw in zip(indexed, log["topics"][1:], strict=True):
                [value] = eth_abi.decode([item["type"]], bytes.fromhex(raw[2:]))
                values[item["name"]] = _named(item, value)
            decoded = eth_abi.decode(
                [collapse_if_tuple(i) for i in plain], bytes.fromhex(log["data"][2:])
            )
            for item, value in zip(plain, decoded, strict=True):
                values[item["name"]] = _named(item, value)
            found.append(types.SimpleNamespace(**values))
        return found


def pick(data, aimed: list, pool: list, label: str):
    """One of ``aimed`` (those the call can succeed for) three times in four when there are
    any, otherwise one of ``pool``."""
    if aimed and data.draw(st.sampled_from([True, True, True, False]), label=f"aim {label}"):
        return data.draw(st.sampled_from(aimed), label=label)
    return data.draw(st.sampled_from(pool), label=label)


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


def build_machine(ctx):
    """The state machine class over the deployed contracts and accounts of ``ctx``."""

    chain, token, registry, ledger, market = (
        ctx.chain,
        ctx.token,
        ctx.registry,
        ctx.ledger,
        ctx.marketplace,
    )
    read = ctx.read
    batch = ctx.batch
    owner = addr(ctx.owner)  # governance, task creator, minter; never blacklisted
    creator2 = addr(ctx.creator2)  # a task creator without governance
    aggregators = [addr(a) for a in ctx.aggregators]
    trainers = [addr(a) for a in ctx.trainers]
    buyers = [addr(a) for a in ctx.buyers]
    others = [addr(a) for a in ctx.others]  # every account but the owner
    signer = {addr(a): a for a in ctx.all_accounts}
    participants_pool = [*trainers, buyers[0]]  # those that register and join
    provider = chain.provider.web3.provider
    errors_by_selector = {
        keccak(text=e.abi.selector)[:4]: e
        for contract in (token, registry, ledger, market)
        for e in (getattr(contract, a.name) for a in contract.contract_type.errors)
    }
    coverage = ctx.coverage

    def height() -> int:
        return int(provider.make_request("eth_blockNumber", [])["result"], 16)

    def timestamp() -> int:
        block = provider.make_request("eth_getBlockByNumber", ["latest", False])["result"]
        return int(block["timestamp"], 16)

    def mine_until(block: int):
        """Mines so that the next transaction lands in block ``block`` (or later)."""
        gap = block - 1 - height()
        if gap > 0:
            chain.mine(gap)

    def tally(path: str):
        coverage[path] += 1
        event(path)

    def encode(method, args, sender) -> dict:
        data = bytes(method.encode_input(*args))
        return {"from": sender, "to": str(method.contract.address), "data": "0x" + data.hex()}

    def revert_data(response: dict) -> bytes | None:
        if "error" not in response:
            return None
        return bytes.fromhex(response["error"]["data"][2:])

    def simulate(method, args, sender) -> bytes | None:
        """``method(*args)`` sent by ``sender``, as an eth_call on the pending block: None if
        it would succeed, else the revert data."""
        call = encode(method, args, sender)
        return revert_data(provider.make_request("eth_call", [call, "pending"]))

    def transact(method, args, sender) -> dict:
        """Sends ``method(*args)`` from ``sender`` (one of anvil's unlocked dev accounts), as
        a real transaction mined at once, without ape's preparation and receipt decoding
        (~3 ms instead of ~40). Returns the raw receipt."""
        tx = {**encode(method, args, sender), "gas": hex(5_000_000)}
        response = provider.make_request("eth_sendTransaction", [tx])
        assert "error" not in response, f"{method.abis[0].name} by {sender}: {response}"
        receipt = None
        while receipt is None:
            receipt = provider.make_request("eth_getTransactionReceipt", [response["result"]])
            receipt = receipt["result"]
        return receipt

    def fast(method, args, sender) -> Receipt:
        """``method(*args)`` sent by ``sender``; it must succeed."""
        receipt = transact(method, args, sender)
        if receipt["status"] != "0x1":
            revert = simulate(method, args, sender)
            got = errors_by_selector.get(revert[:4]) if revert else None
            name = got.__name__ if got else revert
            raise AssertionError(f"{method.abis[0].name} by {sender} reverted: {name}")
        return Receipt(receipt)

    def assert_error(revert: bytes | None, error, inputs: dict, what: str):
        """``revert`` is ``error`` with (at least) these named ``inputs``."""
        assert revert is not None, f"{what} did not revert; expected {error.__name__}{inputs}"
        got = errors_by_selector.get(revert[:4])
        name = got.__name__ if got else revert[:4].hex()
        abi = error.abi
        assert revert[:4] == keccak(text=abi.selector)[:4], (
            f"{what}: expected {error.__name__}, got {name}"
        )
        names = {i.name for i in abi.inputs}
        assert set(inputs) <= names, f"{error.__name__} has no input(s) {set(inputs) - names}"
        values = eth_abi.decode([i.canonical_type for i in abi.inputs], revert[4:])
        actual = {}
        for i, value in zip(abi.inputs, values, strict=True):
            actual[i.name] = to_checksum_address(value) if i.canonical_type == "address" else value
        assert {n: actual[n] for n in inputs} == inputs, f"{what}: {error.__name__}{actual}"

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.snapshot = chain.snapshot()
            self.policy = POLICY.as_tuple()
            self.registered: set[str] = set()
            self.blacklisted: set[str] = set()
            self.appeals: dict[str, int] = dict.fromkeys(others, APPEAL_NONE)
            self.rejections = {a: Rejections() for a in others}
            # What the test minted to the buyers before any task (the context checks it);
            # `test_mints` adds to it.
            self.balances = {a: BUYER_FUNDS if a in buyers else 0 for a in [owner, *others]}
            self.minted = BUYER_FUNDS * len(buyers)
            self.claimed_total = 0  # the sum of every RewardsClaimed amount
            self.tasks: list[TaskModel] = []
            self.listings: list[ListingModel] = []
            self.serial = 0
            self.focus: TaskModel | None = None  # the task `progress` works on
            self.forced: str | None = None  # the account `blacklisted_tries` makes act

        # ---- helpers ---------------------------------------------------------------------

        def send(self, method, args, sender, error=None, inputs=None, actor=None, guard=True):
            """``method(*args)`` sent by ``sender``. Without ``error`` it must succeed and its
            receipt is returned. With ``error`` it must revert with that error and ``inputs``
            (checked by an eth_call on the pending block, where the transaction would land);
            then if ``guard`` and ``actor`` (default: the sender) is blacklisted, it is also
            sent as a real transaction, which must fail and leave everything ``actor`` could
            reach as it was (invariant 3)."""
            if error is None:
                return fast(method, args, sender)
            inputs = inputs or {}
            actor = actor or sender
            name = method.abis[0].name
            revert = simulate(method, args, sender)
            assert_error(revert, error, inputs, f"{name} by {sender}")
            tally(f"refused: {error.__name__}")
            if guard and actor in self.blacklisted:
                before = self.fingerprint(actor)
                receipt = transact(method, args, sender)
                assert receipt["status"] == "0x0", f"{name} by blacklisted {actor} went through"
                assert self.fingerprint(actor) == before, f"blacklisted {actor} moved state"
                tally(f"blacklisted refused: {name}")
            return None

        def fingerprint(self, actor: str) -> dict:
            """Everything ``actor`` could change with a call of its own."""
            calls = {
                "supply": ("token", "totalSupply"),
                "market": ("token", "balanceOf", market),
                "balance": ("token", "balanceOf", actor),
                "allowance": ("token", "allowance", actor, market),
                "participant": ("registry", "participant", actor),
                "appeal": ("registry", "appealOf", actor),
                "metadata": ("registry", "metadataOf", actor),
                "participants": ("registry", "participantCount"),
                "tasks": ("ledger", "taskCount"),
                "models": ("marketplace", "modelCount"),
            }
            for t in self.tasks:
                calls[("task", t.task_id)] = ("ledger", "task", t.task_id)
                calls[("member", t.task_id)] = ("ledger", "membership", t.task_id, actor)
                calls[("claimable", t.task_id)] = ("ledger", "claimable", t.task_id, actor)
                calls[("round", t.task_id)] = ("ledger", "round", t.task_id, t.current)
            for m in self.listings:
                calls[("listing", m.model_id)] = ("marketplace", "listing", m.model_id)
                calls[("purchase", m.model_id)] = ("marketplace", "purchase", m.model_id, actor)
                calls[("withdrawn", m.model_id)] = ("marketplace", "withdrawn", m.model_id, actor)
            return batch(calls)

        def pick(self, data, aimed: list, pool: list, label: str) -> str:
            """The account that acts (see :func:`pick`), or the one `blacklisted_tries` forces."""
            if self.forced is not None:
                return self.forced
            return pick(data, aimed, pool, label)

        def task_of(self, data, aimed=None) -> TaskModel:
            if self.focus is not None:  # set by `progress`
                return self.focus
            return pick(data, aimed or [], self.tasks, "task")

        def market_actions(self) -> list[str]:
            actions = ["claim", "seller_changes_listing", "mine"]
            if self.listable():  # a task that credited nothing cannot be listed
                actions += ["list_model"] * (3 if any(t.rewarded for t in self.listable()) else 1)
            if any(m.active for m in self.listings):
                actions += ["buy"] * 4
            if any(m.pending() for m in self.listings):
                actions += ["deliver"] * 3 + ["refund"] * 2 + ["update_buyer_key"]
            if any(m.revenue for m in self.listings):
                actions += ["withdraw"] * 3
            return actions

        def listable(self) -> list[TaskModel]:
            return [t for t in self.tasks if t.status == COMPLETED and not t.model_id]

        def listing_of(self, data, aimed) -> ListingModel:
            return pick(data, aimed, self.listings, "listing")

        def available(self) -> int:
            """FLT the ledger can still reserve under the cap, by the model."""
            taken = self.minted + self.claimed_total + sum(t.reserved() for t in self.tasks)
            return FLT_CAP - taken

        def blacklist_model(self, who: str):
            self.blacklisted.add(who)
            self.appeals[who] = APPEAL_NONE  # a new blacklisting may be appealed anew

        def lift_model(self, who: str):
            self.blacklisted.discard(who)
            self.rejections[who] = Rejections()
            self.appeals[who] = APPEAL_NONE  # a lift ends a pending appeal

        def closed_task_error(self, t: TaskModel):
            if t.status == COMPLETED:
                return ledger.TaskLedgerTaskCompleted, {"taskId": t.task_id}
            return ledger.TaskLedgerTaskCancelled, {"taskId": t.task_id}

        def aggregator_error(self, t: TaskModel, sender: str):
            """The error of ``onlyAggregator`` for ``sender``, or None."""
            if sender != t.aggregator:
                return ledger.TaskLedgerNotAggregator, {"taskId": t.task_id, "caller": sender}
            if sender in self.blacklisted:
                return ledger.TaskLedgerBlacklisted, {"account": sender}
            return None

        def round_error(self, t: TaskModel, number: int):
            """The error of ``_openRound`` for round ``number``, or None."""
            if number != t.current or t.current == 0:
                return ledger.TaskLedgerWrongRound, {
                    "taskId": t.task_id,
                    "given": number,
                    "current": t.current,
                }
            if t.round_status == R_FINALIZED:
                return ledger.TaskLedgerRoundAlreadyFinalized, {
                    "taskId": t.task_id,
                    "round": number,
                }
            if t.round_status == R_CLOSED:
                return ledger.TaskLedgerRoundClosed, {"taskId": t.task_id, "round": number}
            return None

        # ---- set-up ----------------------------------------------------------------------

        @initialize(
            max_rejections=st.sampled_from([1, 2, 2, 3]),
            window=st.sampled_from([8, 100, 10_000]),
            early=st.lists(st.sampled_from(participants_pool), unique=True, max_size=5),
        )
        def setup(self, max_rejections, window, early):
            """The blacklist policy of this example, and some participants registered."""
            self.policy = (POLICY.alpha_bps, max_rejections, window)
            fast(registry.setPolicy, [self.policy], owner)
            for who in early:
                fast(registry.register, [CID_SPEC], who)
                self.registered.add(who)

        @initialize(data=st.data())
        def first_task(self, data):
            """Every example starts with a task (more may be created later)."""
            self.create_task(data)

        @rule(action=st.sampled_from(ACTIONS), data=st.data())
        def step(self, action, data):
            """One action, drawn with the weights of ``ACTIONS``. A single rule rather than one
            per action: hypothesis's swarm testing would otherwise spend whole examples on
            one or two rules. An action that needs what does not exist yet (a task, a
            listing) moves a task on instead."""
            if self.listable() or self.listings:
                # Once a task is complete, half the steps go to the sales of models, drawn
                # among what can happen now.
                if data.draw(st.booleans(), label="to market"):
                    action = data.draw(st.sampled_from(self.market_actions()), label="market")
            if action in NEEDS_LISTING and not self.listings:
                action = "list_model" if self.listable() else "progress"
            if action == "list_model" and not self.listable():
                action = "progress"
            if action == "resolve_appeal" and APPEAL_PENDING not in self.appeals.values():
                action = "file_appeal"
            if not self.tasks:  # the first task was over the cap
                return self.create_task(data, "small")
            getattr(self, action)(data)

        # ---- registry --------------------------------------------------------------------

        def register(self, data):
            unregistered = [a for a in participants_pool if a not in self.registered]
            who = self.pick(data, unregistered, others, "who")
            if who not in self.registered:
                error = None
                if who in self.blacklisted:
                    error = registry.ParticipantRegistryBlacklisted
                self.send(registry.register, [CID_SPEC], who, error, {"account": who})
                if error is None:
                    self.registered.add(who)
                    tally("register")
            else:
                error = None
                if who in self.blacklisted:
                    error = registry.ParticipantRegistryBlacklisted
                args, inputs = [f"{CID_SPEC}x"], {"account": who}
                self.send(registry.updateMetadata, args, who, error, inputs)

        def governance_blacklists_or_lifts(self, data):
            pool = others
            submitters = sorted(
                {a for t in self.tasks if t.round_status == R_OPEN for a in t.submitted}
                - self.blacklisted
            )
            if self.blacklisted and data.draw(st.booleans(), label="lift"):
                pool = sorted(self.blacklisted)
            elif submitters and data.draw(st.booleans(), label="a submitter"):
                pool = submitters  # whose update is then still to be scored
            who = data.draw(st.sampled_from(pool), label="account")
            if who in self.blacklisted:
                fast(registry.liftBlacklist, [who], owner)
                self.lift_model(who)
                tally("governance lifts")
            else:
                fast(registry.blacklist, [who, CID_ROUND_EVIDENCE], owner)
                self.blacklist_model(who)
                tally("governance blacklists")

        def file_appeal(self, data):
            aimed = sorted(a for a in self.blacklisted if self.appeals[a] == APPEAL_NONE)
            who = self.pick(data, aimed, others, "who")
            error, inputs = None, {}
            if who not in self.blacklisted:
                error, inputs = registry.ParticipantRegistryNotBlacklisted, {"account": who}
            elif self.appeals[who] != APPEAL_NONE:
                error = registry.ParticipantRegistryAlreadyAppealed
                inputs = {"account": who, "status": self.appeals[who]}
            # Appealing is what a blacklisted account may do: no guard.
            args = [CID_STATEMENT]
            self.send(registry.fileAppeal, args, who, error, inputs, guard=False)
            if error is None:
                self.appeals[who] = APPEAL_PENDING
                tally("appeal filed")
                if data.draw(st.booleans(), label="decided at once"):
                    self.resolve_appeal(data, who)

        def resolve_appeal(self, data, who=None):
            granted = data.draw(st.booleans(), label="granted")
            aimed = sorted(a for a, s in self.appeals.items() if s == APPEAL_PENDING)
            who = who or self.pick(data, aimed, others, "who")
            if self.appeals[who] != APPEAL_PENDING:
                self.send(
                    registry.resolveAppeal,
                    [who, granted, CID_DECISION],
                    owner,
                    registry.ParticipantRegistryNoPendingAppeal,
                    {"account": who},
                )
                return
            tx = fast(registry.resolveAppeal, [who, granted, CID_DECISION], owner)
            lifted = [e.account for e in tx.decode_logs(registry.BlacklistLifted)]
            if granted:
                assert lifted == [who]  # as liftBlacklist does; a lift ends a pending appeal
                assert who in self.blacklisted
                self.lift_model(who)
                self.appeals[who] = APPEAL_GRANTED
                tally("appeal granted")
            else:
                assert lifted == []
                self.appeals[who] = APPEAL_DENIED
                tally("appeal denied")

        # ---- tasks -----------------------------------------------------------------------

        def create_task(self, data, budget=None):
            if len(self.tasks) >= MAX_TASKS:
                return None
            rounds = data.draw(st.sampled_from([1, 1, 2, 2, 3]), label="rounds")
            quorum = data.draw(st.sampled_from([1, 2, 2, 3]), label="quorum")
            window = data.draw(st.sampled_from(WINDOWS), label="window")
            if budget is None:
                budget = data.draw(
                    st.sampled_from(["small"] * 3 + ["half", "all", "over"]), label="budget"
                )
            creator = self.pick(data, [], [owner, creator2], "creator")
            aggregator = data.draw(st.sampled_from(aggregators), label="aggregator")
            available = self.available()
            if budget == "small":
                reward = data.draw(
                    st.one_of(
                        st.integers(0, 10_000), st.integers(0, 5_000).map(lambda x: x * UNIT)
                    ),
                    label="reward",
                )
            elif budget == "half":
                reward = available // rounds // 2
            elif budget == "all":
                reward = available // rounds
            else:
                reward = available // rounds + 1
            config = task_config(
                signer[aggregator],
                rounds=rounds,
                minParticipants=quorum,
                submissionWindow=window,
                rewardPerRound=reward,
            )
            error, inputs = None, {}
            if creator in self.blacklisted:
                error, inputs = ledger.TaskLedgerBlacklisted, {"account": creator}
            elif aggregator in self.blacklisted:
                error, inputs = ledger.TaskLedgerBlacklisted, {"account": aggregator}
            elif reward * rounds > available:
                error = ledger.TaskLedgerBudgetOverCap
                inputs = {"requested": reward * rounds, "available": available}
            tx = self.send(ledger.createTask, [config], creator, error, inputs)
            if tx is None:
                if error == ledger.TaskLedgerBudgetOverCap:
                    tally("createTask over the cap refused")
                return
            task_id = len(self.tasks) + 1  # ids run from 1: each example starts afresh
            [created] = tx.decode_logs(ledger.TaskCreated)
            assert (created.taskId, created.creator, created.aggregator) == (
                task_id,
                creator,
                aggregator,
            )
            self.tasks.append(
                TaskModel(task_id, creator, aggregator, rounds, quorum, window, reward)
            )
            tally("createTask")
            if budget == "all":
                tally("createTask with all that is left under the cap")

        def join(self, data):
            t = self.task_of(data, [t for t in self.tasks if t.status == OPEN])
            aimed = [
                a
                for a in participants_pool
                if a in self.registered and a not in self.blacklisted and a not in t.members
            ]
            for i in range(data.draw(st.integers(1, 3), label="joiners")):
                if i and not aimed:
                    break
                who = self.pick(data, aimed, others, "who")
                error, inputs = None, {}
                if t.status != OPEN:
                    error, inputs = self.closed_task_error(t)
                elif who in self.blacklisted:
                    error, inputs = ledger.TaskLedgerBlacklisted, {"account": who}
                elif who not in self.registered:
                    error, inputs = ledger.TaskLedgerNotRegistered, {"account": who}
                elif who in t.members:
                    error = ledger.TaskLedgerAlreadyJoined
                    inputs = {"taskId": t.task_id, "participant": who}
                self.send(ledger.join, [t.task_id], who, error, inputs)
                if error is None:
                    t.members.append(who)
                    aimed = [a for a in aimed if a != who]
                    tally("join")

        def start_round(self, data):
            startable = [
                t
                for t in self.tasks
                if t.status == OPEN
                and t.round_status != R_OPEN
                and len(t.members) >= t.quorum
                and t.aggregator not in self.blacklisted
            ]
            t = self.task_of(data, startable)
            sender = data.draw(
                st.sampled_from([t.aggregator] * 5 + [*aggregators, trainers[0]]), label="sender"
            )
            model_cid = data.draw(st.sampled_from([t.model_cid] * 6 + [CID_SPEC]), label="cid")
            error = self.aggregator_error(t, sender)
            if error is None and t.status != OPEN:
                error = self.closed_task_error(t)
            if error is None and model_cid != t.model_cid:
                error = ledger.TaskLedgerWrongModel, {"taskId": t.task_id, "modelCid": model_cid}
            if error is None and len(t.members) < t.quorum:
                error = ledger.TaskLedgerNotEnoughParticipants, {
                    "taskId": t.task_id,
                    "joined": len(t.members),
                    "required": t.quorum,
                }
            if error is None and t.round_status == R_OPEN:
                error = ledger.TaskLedgerRoundStillOpen, {"taskId": t.task_id, "round": t.current}
            error, inputs = error or (None, {})
            args = [t.task_id, model_cid, CID_WORKLOAD]
            tx = self.send(ledger.startRound, args, sender, error, inputs)
            if tx is not None:
                t.current += 1
                t.round_status = R_OPEN
                t.deadline = tx.block_number + t.window
                t.submitted = []
                tally("startRound")

        def submit(self, data):
            t = self.task_of(data, [t for t in self.tasks if t.round_status == R_OPEN])
            aimed = [a for a in t.members if a not in t.submitted and a not in self.blacklisted]
            for i in range(data.draw(st.integers(1, 3), label="submitters")):
                if i and not aimed:
                    break
                who = self.pick(data, aimed, others, "who")
                number = t.current
                if data.draw(st.integers(0, 9), label="stale round") == 0:
                    number = max(t.current - 1, 0)
                error = self.round_error(t, number)
                if error is None and height() + 1 > t.deadline:
                    error = ledger.TaskLedgerSubmissionClosed, {
                        "taskId": t.task_id,
                        "round": number,
                        "deadlineBlock": t.deadline,
                    }
                if error is None and who not in t.members:
                    error = ledger.TaskLedgerNotJoined, {"taskId": t.task_id, "participant": who}
                if error is None and who in t.submitted:
                    error = ledger.TaskLedgerAlreadySubmitted, {
                        "taskId": t.task_id,
                        "round": number,
                        "participant": who,
                    }
                if error is None and who in self.blacklisted:
                    error = ledger.TaskLedgerBlacklisted, {"account": who}
                error, inputs = error or (None, {})
                args = [t.task_id, number, CID_UPDATE, 100, 5_000, ""]
                self.send(ledger.submitUpdate, args, who, error, inputs)
                if error is None:
                    t.submitted.append(who)
                    aimed = [a for a in aimed if a != who]
                    tally("submitUpdate")
                elif error == ledger.TaskLedgerSubmissionClosed:
                    tally("submission after the deadline refused")

        def finalize(self, data, variant=None):
            variant = variant or data.draw(
                st.sampled_from(
                    ["valid"] * 6 + ["blacklisted contributor", "non-submitter", "wrong sender"]
                ),
                label="variant",
            )
            ready = [
                t
                for t in self.tasks
                if t.round_status == R_OPEN
                and len(t.submitted) >= t.quorum
                and t.aggregator not in self.blacklisted
            ]
            t = self.task_of(data, ready)
            number = t.current
            sender = t.aggregator
            active = [a for a in t.submitted if a not in self.blacklisted]
            contributors = [a for a in active if data.draw(st.booleans(), label=f"credit {a}")]
            if active and not contributors and data.draw(st.booleans(), label="at least one"):
                contributors = [active[0]]
            if len(contributors) < t.quorum and data.draw(
                st.sampled_from([True] * 3 + [False]), label="accept a quorum"
            ):
                missing = [a for a in active if a not in contributors]
                contributors += missing[: t.quorum - len(contributors)]
            rest = [a for a in t.submitted if a not in contributors]
            rejected = [a for a in rest if data.draw(st.booleans(), label=f"reject {a}")]
            actor = None  # whose state must stay frozen if the call is refused
            if variant == "blacklisted contributor":
                banned = [a for a in t.submitted if a in self.blacklisted]
                if banned:
                    contributors.append(banned[0])
                    rejected = [a for a in rejected if a != banned[0]]
                    actor = banned[0]
            elif variant == "non-submitter":
                absent = [a for a in others if a not in t.submitted]
                contributors.append(data.draw(st.sampled_from(absent), label="absent"))
            elif variant == "wrong sender":
                sender = data.draw(st.sampled_from(others), label="sender")
            scores = []
            if contributors:
                scores = data.draw(scores_within_budget(len(contributors)), label="scores")
            reasons = [data.draw(st.integers(0, 12), label="reason") for _ in rejected]
            self.serial += 1
            new_cid = f"{CID_NEW_MODEL}{self.serial}"
            model_hash = hashlib.sha256(new_cid.encode()).digest()
            result = round_result(
                new_cid=new_cid,
                contributors=contributors,
                scores=scores,
                rejected=rejected,
                reasons=reasons,
                model_hash=model_hash,
            )

            error = self.aggregator_error(t, sender) or self.round_error(t, number)
            if error is None and len(contributors) < t.quorum:
                # Only accepted updates make a quorum: rejected ones (sybils' junk) do not.
                error = ledger.TaskLedgerQuorumNotReached, {
                    "taskId": t.task_id,
                    "round": number,
                    "accepted": len(contributors),
                    "required": t.quorum,
                }
            error = error or self.not_submitted_error(t, number, [*contributors, *rejected])
            if error is None:
                banned = [a for a in contributors if a in self.blacklisted]
                if banned:  # the registry refuses to credit a blacklisted address
                    error = registry.ParticipantRegistryBlacklisted, {"account": banned[0]}
            if error is not None:
                args = [t.task_id, number, result]
                self.send(ledger.finalizeRound, args, sender, *error, actor=actor)
                if error[0] == ledger.TaskLedgerQuorumNotReached:
                    tally("finalize without quorum refused")
                return

            tx = fast(ledger.finalizeRound, [t.task_id, number, result], sender)
            [finalized] = tx.decode_logs(ledger.RoundFinalized)
            rewards = [t.reward * s // PPM for s in scores]
            assert list(finalized.rewards) == rewards
            assert finalized.result[1] == model_hash
            for who, amount in zip(contributors, rewards, strict=True):
                t.earned[who] = t.earned.get(who, 0) + amount
            t.rewarded += sum(rewards)
            t.finalized += 1
            t.round_status = R_FINALIZED
            t.model_cid, t.model_hash = new_cid, model_hash
            if t.finalized == t.rounds:
                t.status = COMPLETED
                tally("task completed")
            expected = self.rejections_model(tx, t, number, rejected)
            tally("finalizeRound")
            if rejected:
                tally("finalize with rejections")
            if expected:
                tally("automatic blacklisting")

        def not_submitted_error(self, t: TaskModel, number: int, settled: list):
            """The error of ``_settle`` for the first of ``settled`` that did not submit to
            round ``number``, or None."""
            for who in settled:
                if who not in t.submitted:
                    return ledger.TaskLedgerNotSubmitted, {
                        "taskId": t.task_id,
                        "round": number,
                        "participant": who,
                    }
            return None

        def rejections_model(self, tx, t: TaskModel, number: int, rejected: list) -> list:
            """The registry counts each rejection in a tumbling window and blacklists at the
            policy's threshold: the model does the same and checks the ``Blacklisted`` events
            of ``tx``; returns the automatic blacklistings."""
            _, max_rejections, window = self.policy
            expected = []
            for who in rejected:
                r = self.rejections[who]
                if r.count == 0 or tx.block_number >= r.start + window:
                    r.count, r.start = 1, tx.block_number
                else:
                    r.count += 1
                if who not in self.blacklisted and r.count >= max_rejections:
                    self.blacklist_model(who)
                    expected.append((who, True, t.task_id, number))
                elif who in self.blacklisted:
                    tally("a blacklisted submitter rejected")
            got = [
                (e.account, e.automatic, e.taskId, e.round)
                for e in tx.decode_logs(registry.Blacklisted)
            ]
            assert got == expected
            return expected

        def close_rejecting(self, data, variant=None):
            """The aggregator closes a round whose accepted updates fall short of the
            quorum: the rejections count, no model, no reward. Once the quorum submitted,
            or after the window."""
            variant = variant or data.draw(
                st.sampled_from(["short"] * 4 + ["any", "non-submitter", "wrong sender"]),
                label="variant",
            )
            t = self.task_of(data, [t for t in self.tasks if t.round_status == R_OPEN])
            number, sender = t.current, t.aggregator
            # "short": reject enough of the round's updates that fewer than the quorum remain.
            keep = max(0, t.quorum - 1) if variant == "short" else len(t.submitted)
            rejected = list(t.submitted)[min(keep, len(t.submitted)):]
            rejected += [
                a for a in list(t.submitted)[: min(keep, len(t.submitted))]
                if data.draw(st.booleans(), label=f"reject {a}")
            ]
            if variant == "non-submitter":
                absent = [a for a in others if a not in t.submitted]
                rejected.append(data.draw(st.sampled_from(absent), label="absent"))
            elif variant == "wrong sender":
                sender = data.draw(st.sampled_from(others), label="sender")
            reasons = [data.draw(st.integers(0, 12), label="reason") for _ in rejected]
            if len(t.submitted) < t.quorum and data.draw(st.booleans(), label="wait"):
                mine_until(t.deadline + 1)
            error = self.aggregator_error(t, sender) or self.round_error(t, number)
            if error is None and len(t.submitted) < t.quorum and height() + 1 <= t.deadline:
                error = ledger.TaskLedgerTooEarlyToClose, {
                    "taskId": t.task_id,
                    "round": number,
                    "allowedAfter": t.deadline,
                }
            error = error or self.not_submitted_error(t, number, rejected)
            args = [t.task_id, number, rejected, reasons, CID_ROUND_EVIDENCE]
            if error is not None:
                self.send(ledger.closeRoundRejecting, args, sender, *error)
                if error[0] == ledger.TaskLedgerTooEarlyToClose:
                    tally("round closed short before its deadline refused")
                return
            tx = fast(ledger.closeRoundRejecting, args, sender)
            [closed] = tx.decode_logs(ledger.RoundClosed)
            assert (closed.by, closed.submissions) == (sender, len(t.submitted))
            t.round_status = R_CLOSED
            if self.rejections_model(tx, t, number, rejected):
                tally("automatic blacklisting")
            tally("round closed short of its quorum")
            if rejected:
                tally("closed short with rejections")

        def close_round(self, data, wait=None):
            waits = ["none", "exact", "past", "past"]
            wait = wait or data.draw(st.sampled_from(waits), label="wait")
            t = self.task_of(data, [t for t in self.tasks if t.round_status == R_OPEN])
            closer = data.draw(st.sampled_from([t.aggregator] * 6 + others), label="by")
            by_aggregator = closer == t.aggregator and closer not in self.blacklisted
            allowed_after = t.deadline + (0 if by_aggregator else t.window)
            if t.round_status == R_OPEN and wait != "none":
                # "exact": the call lands in the last block that refuses it.
                mine_until(allowed_after + (1 if wait == "past" else 0))
            number = t.current
            error = self.round_error(t, number)
            if error is None and height() + 1 <= allowed_after:
                error = ledger.TaskLedgerTooEarlyToClose, {
                    "taskId": t.task_id,
                    "round": number,
                    "allowedAfter": allowed_after,
                }
            error, inputs = error or (None, {})
            # Closing a stale round is open to anyone, blacklisted or not: no guard.
            args = [t.task_id, number]
            tx = self.send(ledger.closeRound, args, closer, error, inputs, guard=False)
            if tx is not None:
                [closed] = tx.decode_logs(ledger.RoundClosed)
                assert (closed.by, closed.submissions) == (closer, len(t.submitted))
                t.round_status = R_CLOSED
                tally(f"round closed by {'its aggregator' if by_aggregator else 'anyone'}")

        def replace_aggregator(self, data, how=None):
            how = how or data.draw(
                st.sampled_from(["governance", "governance", "creator"]), label="how"
            )
            t = self.task_of(data, [t for t in self.tasks if t.status == OPEN])
            new = data.draw(st.sampled_from([*aggregators, owner]), label="aggregator")
            error, inputs = self.closed_task_error(t) if t.status != OPEN else (None, {})
            if how == "governance":
                if error is None and new in self.blacklisted:
                    error, inputs = ledger.TaskLedgerBlacklisted, {"account": new}
                self.send(ledger.replaceAggregator, [t.task_id, new], owner, error, inputs)
                if error is None:
                    t.aggregator = new
                    tally("aggregator replaced by governance")
                return
            # The creator proposes, waits (or tries not to) and installs. The owner is
            # governance and never waits: creator2 stands in for it, and is refused.
            creator = t.creator if t.creator != owner else creator2
            if error is None and creator != t.creator:
                error = ledger.TaskLedgerNotCreatorOrGovernance
                inputs = {"taskId": t.task_id, "caller": creator}
            if error is None and creator in self.blacklisted:
                error, inputs = ledger.TaskLedgerBlacklisted, {"account": creator}
            if error is None and new in self.blacklisted:
                error, inputs = ledger.TaskLedgerBlacklisted, {"account": new}
            tx = self.send(ledger.proposeAggregator, [t.task_id, new], creator, error, inputs)
            if tx is None:
                return
            ready = timestamp() + AGGREGATOR_DELAY
            [proposed] = tx.decode_logs(ledger.AggregatorProposed)
            assert proposed.readyTime == ready
            tally("aggregator proposed")
            if data.draw(st.booleans(), label="too early"):
                chain.pending_timestamp = ready - 1  # the next transaction lands a second early
                with reverts(
                    ledger.TaskLedgerAggregatorNotReady,
                    taskId=t.task_id,
                    aggregator=new,
                    readyTime=ready,
                ):
                    ledger.replaceAggregator(t.task_id, new, sender=signer[creator])
            chain.pending_timestamp = max(ready, timestamp() + 1)
            fast(ledger.replaceAggregator, [t.task_id, new], creator)
            t.aggregator = new
            tally("aggregator replaced by its creator after the delay")

        def cancel_task(self, data):
            if data.draw(st.booleans(), label="rarely"):
                return  # cancelling ends a task: rarer than the other steps
            t = self.task_of(data, [t for t in self.tasks if t.status == OPEN])
            by = data.draw(st.sampled_from([t.creator, owner, trainers[0]]), label="by")
            error, inputs = None, {}
            if t.status != OPEN:
                error, inputs = self.closed_task_error(t)
            elif by not in (t.creator, owner):
                error = ledger.TaskLedgerNotCreatorOrGovernance
                inputs = {"taskId": t.task_id, "caller": by}
            elif by != owner and by in self.blacklisted:
                error, inputs = ledger.TaskLedgerBlacklisted, {"account": by}
            tx = self.send(ledger.cancelTask, [t.task_id], by, error, inputs, guard=False)
            if tx is not None:
                [cancelled] = tx.decode_logs(ledger.TaskCancelled)
                assert cancelled.totalRewarded == t.rewarded
                if t.round_status == R_OPEN:
                    t.round_status = R_CLOSED
                t.status = CANCELLED
                tally("task cancelled")

        def claim(self, data):
            t = self.task_of(data, [t for t in self.tasks if any(t.due(a) for a in t.earned)])
            who = self.pick(data, [a for a in t.earned if t.due(a)], others, "who")
            amount = t.due(who)
            error, inputs = None, {}
            if who in self.blacklisted:
                error, inputs = ledger.TaskLedgerBlacklisted, {"account": who}
            elif amount == 0:
                error = ledger.TaskLedgerNothingToClaim
                inputs = {"taskId": t.task_id, "participant": who}
            tx = self.send(ledger.claimRewards, [t.task_id], who, error, inputs)
            if tx is not None:
                [claimed] = tx.decode_logs(ledger.RewardsClaimed)
                assert (claimed.participant, claimed.amount) == (who, amount)
                t.claimed[who] = t.claimed.get(who, 0) + amount
                self.claimed_total += amount
                self.balances[who] += amount
                tally("claimRewards")

        # ---- marketplace -----------------------------------------------------------------

        def list_model(self, data):
            price = data.draw(
                st.one_of(st.integers(1, 1_000), st.integers(1, 50 * UNIT)), label="price"
            )
            listable = [
                t for t in self.tasks if t.status == COMPLETED and not t.model_id and t.rewarded
            ]
            t = self.task_of(data, listable)
            seller = self.pick(data, [], [t.creator] * 5 + [creator2, owner], "seller")
            # What a buyer checks a listing against: the modelHash of the last RoundFinalized.
            plaintext = t.model_hash or b"\x11" * 32
            error, inputs = None, {}
            if seller in self.blacklisted:
                error, inputs = market.ModelMarketplaceBlacklisted, {"account": seller}
            elif seller != t.creator:
                error = market.ModelMarketplaceNotTaskCreator
                inputs = {"taskId": t.task_id, "caller": seller}
            elif t.status != COMPLETED:
                error, inputs = market.ModelMarketplaceTaskNotCompleted, {"taskId": t.task_id}
            elif t.model_id:
                error = market.ModelMarketplaceTaskAlreadyListed
                inputs = {"taskId": t.task_id, "modelId": t.model_id}
            elif t.rewarded == 0:
                error, inputs = market.ModelMarketplaceNoContributors, {"taskId": t.task_id}
            args = [t.task_id, CID_ENCRYPTED, CID_SPEC, plaintext, price]
            tx = self.send(market.listTaskModel, args, seller, error, inputs)
            if tx is not None:
                [listed] = tx.decode_logs(market.ModelListed)
                model_id = len(self.listings) + 1
                assert (listed.modelId, listed.plaintextHash) == (model_id, t.model_hash)
                t.model_id = model_id
                shares = {a: e for a, e in t.earned.items() if e}
                self.listings.append(ListingModel(model_id, t.task_id, seller, price, shares))
                tally("listTaskModel")

        def buy(self, data):
            slack = data.draw(st.sampled_from([0, 0, 0, 5, -1]), label="slack")
            m = self.listing_of(data, [m for m in self.listings if m.active])
            aimed = [
                b
                for b in buyers
                if b not in self.blacklisted and m.purchase(b).status in (P_NONE, P_REFUNDED)
            ]
            who = self.pick(data, aimed, others, "buyer")
            max_price = m.price + slack
            short = data.draw(st.integers(0, 7), label="short allowance") == 0
            approved = m.price - 1 if short else max_price
            fast(token.approve, [market, approved], who)  # ERC-20, not FairFL state
            balance = self.balances[who]
            error, inputs = None, {}
            if not m.active:
                error, inputs = market.ModelMarketplaceDelisted, {"modelId": m.model_id}
            elif who in self.blacklisted:
                error, inputs = market.ModelMarketplaceBlacklisted, {"account": who}
            elif m.price > max_price:
                error = market.ModelMarketplacePriceAboveMax
                inputs = {"price": m.price, "maxPrice": max_price}
            elif m.purchase(who).status in (P_PENDING, P_DELIVERED):
                error = market.ModelMarketplaceAlreadyPurchased
                inputs = {"modelId": m.model_id, "buyer": who}
            elif balance < m.price:
                error = market.ModelMarketplaceInsufficientBalance
                inputs = {"balance": balance, "price": m.price}
            elif approved < m.price:
                error = market.ModelMarketplaceInsufficientAllowance
                inputs = {"allowance": approved, "price": m.price}
            key = BUYER_KEYS[0]
            tx = self.send(market.buy, [m.model_id, max_price, key], who, error, inputs)
            if tx is not None:
                deadline = tx.block_number + DELIVERY_WINDOW
                m.purchases[who] = PurchaseModel(P_PENDING, m.price, deadline, key)
                m.paid += m.price
                self.balances[who] -= m.price
                tally("buy")

        def deliver(self, data, m=None, variant=None):
            variant = variant or data.draw(
                st.sampled_from(["ok"] * 5 + ["stale", "short", "intruder"]), label="variant"
            )
            m = m or self.listing_of(data, [m for m in self.listings if m.pending()])
            who = self.pick(data, m.pending(), buyers, "buyer")
            p = m.purchase(who)
            key = p.key if p.status == P_PENDING else BUYER_KEYS[0]
            sealed = SEALED_KEY
            sender = m.seller
            if variant == "stale":  # sealed to a key the purchase does not name
                key = BUYER_KEYS[1] if key == BUYER_KEYS[0] else BUYER_KEYS[0]
            elif variant == "short":
                sealed = SEALED_KEY[:91]
            elif variant == "intruder":
                intruders = [a for a in others if a != m.seller]
                sender = data.draw(st.sampled_from(intruders), label="sender")
            error, inputs = None, {}
            if sender != m.seller:
                error = market.ModelMarketplaceNotSeller
                inputs = {"modelId": m.model_id, "caller": sender}
            elif len(sealed) != len(SEALED_KEY):
                error, inputs = market.ModelMarketplaceInvalidSealedKey, {"length": len(sealed)}
            elif p.status != P_PENDING:
                error = market.ModelMarketplaceNotPending
                inputs = {"modelId": m.model_id, "buyer": who}
            elif key != p.key:
                error = market.ModelMarketplaceBuyerKeyChanged
                inputs = {"modelId": m.model_id, "buyer": who}
            # Delivery serves a buyer who paid: allowed to a blacklisted seller, no guard.
            args = [m.model_id, who, key, sealed]
            tx = self.send(market.deliverKey, args, sender, error, inputs, guard=False)
            if tx is not None:
                [delivered] = tx.decode_logs(market.KeyDelivered)
                assert (bytes(delivered.sealedKey), delivered.sales) == (SEALED_KEY, m.sales + 1)
                p.status = P_DELIVERED
                m.revenue += p.paid
                m.sales += 1
                tally("deliverKey")
                if sender in self.blacklisted:
                    tally("deliverKey by a blacklisted seller")

        def update_buyer_key(self, data):
            m = self.listing_of(data, [m for m in self.listings if m.pending()])
            who = self.pick(data, m.pending(), buyers, "buyer")
            p = m.purchase(who)
            new_key = BUYER_KEYS[1] if p.key == BUYER_KEYS[0] else BUYER_KEYS[0]
            error = None if p.status == P_PENDING else market.ModelMarketplaceNotPending
            inputs = {"modelId": m.model_id, "buyer": who}
            # Allowed while blacklisted: the buyer paid. No guard.
            args = [m.model_id, new_key]
            tx = self.send(market.updateBuyerKey, args, who, error, inputs, guard=False)
            if tx is not None:
                p.key, p.deadline = new_key, tx.block_number + DELIVERY_WINDOW
                tally("updateBuyerKey")

        def refund(self, data, m=None, wait=None):
            waits = ["none", "exact", "past", "past"]
            wait = wait or data.draw(st.sampled_from(waits), label="wait")
            m = m or self.listing_of(data, [m for m in self.listings if m.pending()])
            who = self.pick(data, m.pending(), buyers, "buyer")
            p = m.purchase(who)
            if p.status == P_PENDING and wait != "none":
                mine_until(p.deadline + (1 if wait == "past" else 0))
            error, inputs = None, {}
            if p.status != P_PENDING:
                error = market.ModelMarketplaceNotPending
                inputs = {"modelId": m.model_id, "buyer": who}
            elif height() + 1 <= p.deadline:
                error = market.ModelMarketplaceRefundNotYet
                inputs = {"modelId": m.model_id, "buyer": who, "deadlineBlock": p.deadline}
            # The buyer's own money: allowed while blacklisted, no guard.
            tx = self.send(market.refund, [m.model_id], who, error, inputs, guard=False)
            if tx is not None:
                [refunded] = tx.decode_logs(market.PurchaseRefunded)
                assert refunded.amount == p.paid
                p.status = P_REFUNDED
                m.refunded += p.paid
                self.balances[who] += p.paid
                tally("refund")
                if who in self.blacklisted:
                    tally("refund to a blacklisted buyer")

        def withdraw(self, data):
            m = self.listing_of(data, [m for m in self.listings if m.revenue])
            who = self.pick(data, [a for a in m.payees if m.withdrawable(a)], others, "payee")
            amount = m.withdrawable(who)
            error, inputs = None, {}
            if who in self.blacklisted:
                error, inputs = market.ModelMarketplaceBlacklisted, {"account": who}
            elif amount == 0:
                error = market.ModelMarketplaceNothingToWithdraw
                inputs = {"modelId": m.model_id, "payee": who}
            tx = self.send(market.withdraw, [m.model_id], who, error, inputs)
            if tx is not None:
                [withdrawn] = tx.decode_logs(market.RevenueWithdrawn)
                assert withdrawn.amount == amount
                m.withdrawn[who] = m.withdrawn.get(who, 0) + amount
                self.balances[who] += amount
                tally("withdraw")

        def seller_changes_listing(self, data):
            kind = data.draw(st.sampled_from(["setPrice", "setPrice", "delist"]), label="kind")
            m = self.listing_of(data, [m for m in self.listings if m.active])
            seller = m.seller
            if kind == "delist":  # allowed while blacklisted: it only stops sales
                error = None if m.active else market.ModelMarketplaceDelisted
                inputs = {"modelId": m.model_id}
                args = [m.model_id]
                self.send(market.delist, args, seller, error, inputs, guard=False)
                if error is None:
                    m.active = False
                    tally("delist")
                return
            price = data.draw(st.integers(1, 20 * UNIT), label="price")
            error, inputs = None, {}
            if seller in self.blacklisted:
                error, inputs = market.ModelMarketplaceBlacklisted, {"account": seller}
            elif not m.active:
                error, inputs = market.ModelMarketplaceDelisted, {"modelId": m.model_id}
            args = [m.model_id, price]
            if self.send(market.setPrice, args, seller, error, inputs) is not None:
                m.price = price
                tally("setPrice")

        def blacklisted_tries(self, data):
            """A blacklisted account tries what the contracts forbid it (invariant 3), where
            it gets furthest: a join of an open task, a submission to a round of a task it is
            a member of, a claim, a purchase, a withdrawal, a listing, a registration, and for
            the second task creator a new task."""
            if not self.blacklisted:
                self.governance_blacklists_or_lifts(data)
            if not self.blacklisted:
                return
            who = data.draw(st.sampled_from(sorted(self.blacklisted)), label="blacklisted")
            kinds = ["register", "join", "claim", "buy", "withdraw", "list_model"]
            if who == creator2:
                kinds.append("create_task")
            rounds = [
                t
                for t in self.tasks
                if t.round_status == R_OPEN and who in t.members and who not in t.submitted
            ]
            if rounds:
                kinds.append("submit")
            scored = [
                (t, a) for t in self.tasks if t.round_status == R_OPEN for a in t.submitted
            ]
            if scored:  # an update submitted before the blacklisting is still to be scored
                kinds += ["be credited"] * 2
            paid = [(m, b) for m in self.listings for b in m.pending()]
            if paid:  # a buyer who paid before the blacklisting takes its money back
                kinds += ["take a refund"] * 2
            owed = [m for m in self.listings if m.seller == creator2 and m.pending()]
            if owed:  # a seller that was paid before its blacklisting delivers the key
                kinds += ["deliver a key"] * 2
            kind = data.draw(st.sampled_from(kinds), label="tries")
            if kind in ("buy", "withdraw") and not self.listings:
                kind = "claim"
            if kind == "list_model" and not self.listable():
                kind = "register"
            live = [t for t in self.tasks if t.status == OPEN]
            self.forced = who
            try:
                if kind == "take a refund":
                    m, who = data.draw(st.sampled_from(paid), label="buyer")
                    if who not in self.blacklisted:
                        fast(registry.blacklist, [who, CID_ROUND_EVIDENCE], owner)
                        self.blacklist_model(who)
                        tally("governance blacklists")
                    self.forced = who
                    return self.refund(data, m, "past")
                if kind == "deliver a key":
                    m = data.draw(st.sampled_from(owed), label="listing")
                    if creator2 not in self.blacklisted:
                        fast(registry.blacklist, [creator2, CID_ROUND_EVIDENCE], owner)
                        self.blacklist_model(creator2)
                        tally("governance blacklists")
                    self.forced = None  # the buyer is drawn among those who paid
                    return self.deliver(data, m, "ok")
                if kind == "be credited":
                    self.focus, who = data.draw(st.sampled_from(scored), label="submitter")
                    if who not in self.blacklisted:
                        fast(registry.blacklist, [who, CID_ROUND_EVIDENCE], owner)
                        self.blacklist_model(who)
                        tally("governance blacklists")
                    return self.finalize(data, "blacklisted contributor")
                if kind == "submit":
                    self.focus = data.draw(st.sampled_from(rounds), label="task")
                elif kind == "join" and live:
                    self.focus = data.draw(st.sampled_from(live), label="task")
                getattr(self, kind)(data)
            finally:
                self.forced = self.focus = None

        def test_mints(self, data):
            """The test mints FLT to a buyer (the owner holds MINTER_ROLE here), never more
            than the cap leaves unreserved: the token itself would let a minter take the
            budgets the ledger reserved (see the report of this test)."""
            who = data.draw(st.sampled_from(buyers), label="buyer")
            free = self.available()
            amount = data.draw(
                st.one_of(st.integers(1, 1_000 * UNIT), st.just(free)), label="amount"
            )
            amount = min(amount, free)
            if amount == 0:
                return
            fast(token.mint, [who, amount], owner)
            self.minted += amount
            self.balances[who] += amount
            tally("test mints")

        # ---- time, and the natural course of a task --------------------------------------

        def mine(self, data):
            chain.mine(data.draw(st.sampled_from([1, 2, 5, DELIVERY_WINDOW]), label="blocks"))

        def progress(self, data):
            """The next natural steps of open tasks (register, join, start, submit, finalize
            or close), each still drawn at random by its action: with actions drawn blindly,
            a task would rarely go through all of its rounds."""
            for _ in range(data.draw(st.integers(1, 4), label="steps")):
                live = [t for t in self.tasks if t.status == OPEN]
                if not live:
                    return self.create_task(data, "small")
                t = data.draw(st.sampled_from(live), label="task")
                joiners = [
                    a
                    for a in participants_pool
                    if a in self.registered and a not in self.blacklisted and a not in t.members
                ]
                self.focus = t
                try:
                    if t.aggregator in self.blacklisted:
                        self.replace_aggregator(data)
                    elif t.round_status != R_OPEN and len(t.members) < t.quorum:
                        if joiners:
                            self.join(data)
                        else:
                            self.register(data)
                    elif t.round_status != R_OPEN:
                        self.start_round(data)
                    elif len(t.submitted) < t.quorum and height() < t.deadline:
                        if data.draw(st.sampled_from([True] * 9 + [False]), label="submit"):
                            self.submit(data)
                        else:  # the aggregator judges too early (or waits for the window)
                            self.close_rejecting(data, "short")
                    elif len(t.submitted) >= t.quorum:
                        if data.draw(st.sampled_from([True] * 9 + [False]), label="finalize"):
                            self.finalize(data, "valid")
                        else:
                            self.close_rejecting(data)
                    else:
                        self.close_round(data, "past")
                finally:
                    self.focus = None

        # ---- invariants, after every step -------------------------------------------------

        @invariant()
        def the_chain_agrees_with_the_model(self):
            """The five checks below, on views read in a single JSON-RPC batch."""
            calls = {
                **self.supply_calls(),
                **self.money_calls(),
                **self.registry_calls(),
                **self.ledger_calls(),
                **self.cap_calls(),
            }
            got = batch(calls)
            self.check_supply(got)
            self.check_money(got)
            self.check_registry(got)
            self.check_ledger(got)
            self.check_cap(got)

        # 1. Supply.

        def supply_calls(self) -> dict:
            calls = {("balance", a): ("token", "balanceOf", a) for a in self.balances}
            calls["supply"] = ("token", "totalSupply")
            return calls

        def check_supply(self, got):
            """Every FLT in existence was claimed as a reward or minted by this test, and
            every account holds what it received less what it spent."""
            assert got["supply"] == self.claimed_total + self.minted
            balances = {a: got[("balance", a)] for a in self.balances}
            assert balances == self.balances

        # 2. Money.

        def money_calls(self) -> dict:
            calls = {"market": ("token", "balanceOf", market)}
            for m in self.listings:
                i = m.model_id
                calls[("listing", i)] = ("marketplace", "listing", i)
                for payee in m.payees:
                    calls[("withdrawn", i, payee)] = ("marketplace", "withdrawn", i, payee)
                    calls[("withdrawable", i, payee)] = ("marketplace", "withdrawable", i, payee)
                for buyer in m.purchases:
                    calls[("purchase", i, buyer)] = ("marketplace", "purchase", i, buyer)
            return calls

        def check_money(self, got):
            """Per listing: escrowed + what the payees withdrew or can withdraw = what buyers
            paid less refunds, less under one unit per payee; the marketplace holds the
            escrows and the revenue not withdrawn yet."""
            held = 0
            for m in self.listings:
                i = m.model_id
                listing = got[("listing", i)]
                assert (listing.escrowed, listing.revenue, listing.sales) == (
                    m.escrowed,
                    m.revenue,
                    m.sales,
                ), m
                assert (listing.price, listing.active) == (m.price, m.active), m
                accounted = listing.escrowed
                for payee in m.payees:
                    assert got[("withdrawn", i, payee)] == m.withdrawn.get(payee, 0), m
                    accounted += got[("withdrawable", i, payee)] + got[("withdrawn", i, payee)]
                # Each entitlement is rounded down on its own: less than one base unit per
                # payee stays unallocated.
                paid = m.paid - m.refunded
                assert paid - len(m.payees) < accounted <= paid, (m, paid, accounted)
                for buyer, p in m.purchases.items():
                    stored = got[("purchase", i, buyer)]
                    assert (stored.status, stored.pricePaid) == (p.status, p.paid), (m, buyer)
                    if p.status == P_PENDING:
                        assert (stored.deadlineBlock, stored.buyerKey) == (p.deadline, p.key)
                held += m.escrowed + m.revenue - sum(m.withdrawn.values())
            assert got["market"] == held

        # 3. Blacklist (the refused calls themselves are checked as they are made).

        def registry_calls(self) -> dict:
            calls = {}
            for who in others:
                calls[("participant", who)] = ("registry", "participant", who)
                calls[("appeal", who)] = ("registry", "appealOf", who)
            return calls

        def check_registry(self, got):
            """The blacklist, the appeals and the rejection windows are the model's."""
            for who in others:
                record = got[("participant", who)]
                r = self.rejections[who]
                assert (
                    record.registered,
                    record.blacklisted,
                    record.rejectionsInWindow,
                    record.windowStartBlock,
                ) == (who in self.registered, who in self.blacklisted, r.count, r.start), who
                assert got[("appeal", who)] == self.appeals[who], who

        # Tasks, rounds and credits (what invariants 1, 4 and 5 rest on).

        def ledger_calls(self) -> dict:
            calls = {}
            for t in self.tasks:
                calls[("task", t.task_id)] = ("ledger", "task", t.task_id)
                calls[("round", t.task_id)] = ("ledger", "round", t.task_id, t.current)
                for who in t.earned:
                    calls[("due", t.task_id, who)] = ("ledger", "claimable", t.task_id, who)
            return calls

        def check_ledger(self, got):
            for t in self.tasks:
                stored = got[("task", t.task_id)]
                assert (
                    stored.status,
                    stored.aggregator,
                    stored.currentRound,
                    stored.finalizedRounds,
                    stored.totalRewarded,
                    stored.participantCount,
                ) == (
                    t.status,
                    t.aggregator,
                    t.current,
                    t.finalized,
                    t.rewarded,
                    len(t.members),
                ), t
                if t.current:
                    r = got[("round", t.task_id)]
                    assert (r.status, r.submissions) == (t.round_status, len(t.submitted)), t
                    assert r.deadlineBlock == t.deadline, t
                for who in t.earned:
                    assert got[("due", t.task_id, who)] == t.due(who), (t, who)

        # 5. Cap.

        def left_under_cap(self) -> int:
            """totalSupply + what open tasks may still credit + what ended tasks credited,
            less what was claimed: what is left of the cap, by the model."""
            supply = self.minted + self.claimed_total
            assert all(t.reserved() >= 0 for t in self.tasks)
            return FLT_CAP - supply - sum(t.reserved() for t in self.tasks)

        def cap_calls(self) -> dict:
            """createTask of a one-round task by the owner with all that is left, and with one
            unit more, simulated."""
            left = max(self.left_under_cap(), 0)
            calls = {}
            # createTask refuses a blacklisted aggregator: name one in good standing.
            free = next((a for a in ctx.aggregators if addr(a) not in self.blacklisted),
                        SimpleNamespace(address=owner))
            for key, reward in (("fits", left), ("over", left + 1)):
                config = task_config(free, rounds=1, rewardPerRound=reward)
                calls[key] = ("raw", encode(ledger.createTask, [config], owner))
            return calls

        def check_cap(self, got):
            left = self.left_under_cap()
            assert left >= 0, "the tasks reserve more than the cap"
            assert revert_data(got["fits"]) is None, f"cannot reserve the {left} left"
            inputs = {"requested": left + 1, "available": left}
            error = ledger.TaskLedgerBudgetOverCap
            assert_error(revert_data(got["over"]), error, inputs, "createTask of one unit more")

        # ---- 4. liveness, at the end of every example -------------------------------------

        def teardown(self):
            failed = sys.exc_info()[0] is not None  # a step failed: that is the report
            try:
                if not failed and any(t.status == OPEN for t in self.tasks):
                    with isolated(chain):
                        self.drive_every_open_task_to_completion()
                    with isolated(chain):
                        self.cancel_every_open_task()
            finally:
                chain.restore(self.snapshot)

        def drive_every_open_task_to_completion(self):
            """Only calls the contracts permit, chosen from the chain's own state; then every
            credit of every task is claimed (governance lifting the blacklistings first)."""
            blacklisted = set(self.blacklisted)
            credited = sum(t.rewarded for t in self.tasks)  # by the model, plus what follows
            for t in self.tasks:
                if t.status != OPEN:
                    continue
                task_id, model_cid = t.task_id, t.model_cid
                if read.ledger.task(task_id).aggregator in blacklisted:
                    fresh = [a for a in aggregators if a not in blacklisted] or [owner]
                    fast(ledger.replaceAggregator, [task_id, fresh[0]], owner)
                aggregator = read.ledger.task(task_id).aggregator
                for step in range(3 * t.rounds + 3):
                    stored = read.ledger.task(task_id)
                    if stored.status != OPEN:
                        break
                    number = stored.currentRound
                    members = list(read.ledger.participants(task_id))
                    rnd = read.ledger.round(task_id, number) if number else None
                    if rnd is not None and rnd.status == R_OPEN:
                        submitted = batch(
                            {
                                a: ("ledger", "membership", task_id, a)
                                for a in members
                            }
                        )
                        for who in members:
                            if height() + 1 > rnd.deadlineBlock:
                                break
                            if who not in blacklisted and (
                                submitted[who].lastSubmittedRound != number
                            ):
                                args = [task_id, number, CID_UPDATE, 1, 1, ""]
                                fast(ledger.submitUpdate, args, who)
                        submitted = batch(
                            {a: ("ledger", "membership", task_id, a) for a in members}
                        )
                        contributors = [
                            a
                            for a in members
                            if a not in blacklisted and submitted[a].lastSubmittedRound == number
                        ]
                        if len(contributors) >= stored.minParticipants:
                            scores = [PPM // len(contributors)] * len(contributors)
                            credited += sum(t.reward * score // PPM for score in scores)
                            model_cid = f"{CID_NEW_MODEL}live{task_id}.{number}"
                            result = round_result(
                                new_cid=model_cid, contributors=contributors, scores=scores
                            )
                            fast(ledger.finalizeRound, [task_id, number, result], aggregator)
                        elif step % 2:  # the aggregator closes it after the deadline...
                            mine_until(rnd.deadlineBlock + 1)
                            fast(ledger.closeRound, [task_id, number], aggregator)
                        else:  # ...or anyone after the grace period
                            mine_until(rnd.deadlineBlock + stored.submissionWindow + 1)
                            fast(ledger.closeRound, [task_id, number], owner)
                        continue
                    # Enough members that can submit: accounts register and join; if there
                    # are not enough of them, governance lifts blacklistings.
                    active = [a for a in members if a not in blacklisted]
                    for lift in (False, True):
                        for who in others:
                            if len(active) >= stored.minParticipants or who in active:
                                continue
                            if who in blacklisted:
                                if not lift:
                                    continue
                                fast(registry.liftBlacklist, [who], owner)
                                blacklisted.discard(who)
                            if who not in members:
                                if not read.registry.participant(who).registered:
                                    fast(registry.register, [CID_SPEC], who)
                                fast(ledger.join, [task_id], who)
                            active.append(who)
                    fast(ledger.startRound, [task_id, model_cid, CID_WORKLOAD], aggregator)
                stored = read.ledger.task(task_id)
                assert (stored.status, stored.finalizedRounds) == (COMPLETED, t.rounds), t
                tally("liveness: open task completed")
            # Every credit can be minted: the cap reserved it.
            for who in sorted(blacklisted):
                fast(registry.liftBlacklist, [who], owner)
            for t in self.tasks:
                for who in read.ledger.participants(t.task_id):
                    if read.ledger.claimable(t.task_id, who):
                        fast(ledger.claimRewards, [t.task_id], who)
            assert read.token.totalSupply() == self.minted + credited <= FLT_CAP

        def cancel_every_open_task(self):
            """Cancelling frees each open task's budget, less what it credited."""
            for t in self.tasks:
                if t.status != OPEN:
                    continue
                by = owner if t.creator in self.blacklisted else t.creator
                fast(ledger.cancelTask, [t.task_id], by)
                stored = read.ledger.task(t.task_id)
                assert (stored.status, stored.totalRewarded) == (CANCELLED, t.rewarded)
                t.status = CANCELLED  # the model is discarded with the snapshot
                tally("liveness: open task cancelled")
            self.check_cap(batch(self.cap_calls()))

    return Lifecycle


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    chain: object
    token: object
    registry: object
    ledger: object
    marketplace: object
    read: object
    batch: Batch
    owner: object
    creator2: object
    aggregators: list
    trainers: list
    buyers: list
    others: list
    all_accounts: list
    coverage: collections.Counter


#: Paths every run must take: an invariant says little about a path the fuzzer never took.
REQUIRED_PATHS = [
    "register",
    "createTask",
    "createTask over the cap refused",
    "createTask with all that is left under the cap",
    "join",
    "startRound",
    "submitUpdate",
    "submission after the deadline refused",
    "finalizeRound",
    "finalize with rejections",
    "finalize without quorum refused",
    "round closed short of its quorum",
    "closed short with rejections",
    "round closed short before its deadline refused",
    "automatic blacklisting",
    "task completed",
    "round closed by its aggregator",
    "round closed by anyone",
    "aggregator replaced by governance",
    "aggregator replaced by its creator after the delay",
    "task cancelled",
    "claimRewards",
    "governance blacklists",
    "governance lifts",
    "appeal filed",
    "appeal granted",
    "appeal denied",
    "listTaskModel",
    "buy",
    "deliverKey",
    "updateBuyerKey",
    "refund",
    "withdraw",
    "liveness: open task completed",
    "liveness: open task cancelled",
    "test mints",
    # Invariant 3, by entry point: each refused to a blacklisted account, for real.
    "blacklisted refused: join",
    "blacklisted refused: submitUpdate",
    "blacklisted refused: claimRewards",
    "blacklisted refused: buy",
    "blacklisted refused: withdraw",
    "blacklisted refused: register",
    "blacklisted refused: finalizeRound",
]
#: What stays open to a blacklisted account is tallied when the fuzzer takes it, but it needs
#: a blacklisting between two rare steps and derandomized runs missed it after unrelated
#: edits to this file; deterministic tests pin both: test_marketplace.py::
#: test_blacklisted_seller_cannot_change_the_price_but_still_delivers_keys and
#: test_ledger.py::test_finalize_round_may_reject_a_blacklisted_uploader.
RARE_PATHS = ["deliverKey by a blacklisted seller", "a blacklisted submitter rejected"]


@pytest.fixture
def context(chain, accounts, token, registry, ledger, marketplace, owner):
    """The accounts' parts: accounts[0] is governance, a task creator and (here) a minter and
    is never blacklisted; accounts[8] creates tasks without governance (it must wait to
    replace an aggregator); accounts[1] and [9] aggregate; accounts[2..6] and [7] train;
    accounts[7], [9], [2] and [3] buy, with funds minted here. Every account but the owner
    may be blacklisted."""
    creator2 = accounts[8]
    ledger.grantRole(ledger.TASK_CREATOR_ROLE(), creator2, sender=owner)
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    # accounts[2] also trains (it may buy a model it is paid for), accounts[9] aggregates.
    buyers = [accounts[7], accounts[9], accounts[2], accounts[3]]
    for b in buyers:
        token.mint(b, BUYER_FUNDS, sender=owner)
    contracts = {"token": token, "registry": registry, "ledger": ledger, "marketplace": marketplace}
    assert token.cap() == FLT_CAP
    assert marketplace.deliveryWindow() == DELIVERY_WINDOW
    assert ledger.AGGREGATOR_DELAY() == AGGREGATOR_DELAY
    assert token.totalSupply() == len(buyers) * BUYER_FUNDS
    assert token.balanceOf(marketplace) == 0
    return Context(
        chain=chain,
        token=token,
        registry=registry,
        ledger=ledger,
        marketplace=marketplace,
        read=type("Read", (), {n: Views(chain, c) for n, c in contracts.items()}),
        batch=Batch(chain, contracts),
        owner=owner,
        creator2=creator2,
        aggregators=[accounts[1], accounts[9]],
        trainers=[accounts[i] for i in range(2, 7)],
        buyers=buyers,
        others=[accounts[i] for i in range(1, 10)],
        all_accounts=[accounts[i] for i in range(10)],
        coverage=collections.Counter(),
    )


def test_the_whole_life_cycle_keeps_money_blacklist_liveness_and_cap_invariants(context):
    """Random life cycles of tasks, rounds, rewards, blacklistings, appeals and sales; see the
    module's docstring for the invariants checked after every step and at every teardown."""
    run_state_machine_as_test(build_machine(context), settings=MACHINE_SETTINGS)
    print(f"paths taken: {dict(sorted(context.coverage.items()))}")
    print(f"rare paths (pinned by deterministic tests): "
          f"{ {p: context.coverage[p] for p in RARE_PATHS} }")
    missing = [p for p in REQUIRED_PATHS if not context.coverage[p]]
    assert missing == [], dict(context.coverage)
