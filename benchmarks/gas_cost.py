"""Gas and chain cost of a FairFL task, measured on a private anvil (``make bench-gas``).

The script starts its own anvil (hardfork prague), deploys the contracts with
:func:`~fl_agent.chain.deployment.deploy_contracts` and sends every transaction through the
typed client (:mod:`fl_agent.chain.client`), as the agents do. Before the measured passes it
opens a background task that stays open (so the ledger's task counter and its reservation
under FLT's cap are non-zero, as on a chain in use) and runs one small first-use pass (two
participants, one round, a sale), whose first-ever writes are reported apart.

Then, for each N of ``--participants``, a pass with N fresh accounts (test-mnemonic accounts
from index 1,000 on, funded with ``anvil_setBalance``):

* each registers, the task creator creates one task (``minParticipants`` = N, a window of a
  million blocks, plain training mode) and each joins; the first three commit a watermark;
* ``--rounds`` normal rounds: ``startRound`` by the aggregator, N ``submitUpdate``,
  ``finalizeRound`` with all N as contributors at equal scores; then one round in which
  ``--reject-share`` of them (at least one) are rejected with reason 5 (norm outlier), and a
  last normal round, which completes the task;
* each participant's ``claimRewards`` (once, after the last round), the watermark claims;
* a sale: ``listTaskModel``, three buyers ``approve`` + ``buy``, the seller's ``deliverKey``
  to two of them, a payee's ``withdraw`` and, once the delivery window has passed, the third
  buyer's ``refund``.

Each main function is also set against its floor: 21,000 intrinsic gas + the calldata of the
actual transaction (4 gas per zero byte, 16 per non-zero byte) + the storage writes the
function needs (22,100 for a cold zero to non-zero write, 5,000 for a cold non-zero to
non-zero one, 200 net for one that clears a slot: 5,000 less the 4,800 refund) + the events
it emits (375 + 375 per topic + 8 per data byte, read from the receipt). Which writes are
needed, and which the code makes on top, is spelled out per function in :data:`WRITES` and
:data:`NOT_COUNTED`; the writes the code really made come from anvil's ``prestateTracer``
(diff mode). Prague's EIP-7623 floor (21,000 + 10 gas per calldata token, a token being a
zero byte or a quarter of a non-zero one) is computed for every transaction and whether it
binds is reported. After the passes, :mod:`benchmarks.gas_other` sends once every function a
task's happy path does not (governance, recovery, the rest of the marketplace, the key
holder's desk, FLT's ``approve`` and ``transfer``) and sets each against its floor.

Last, the cost of one task of ``--cost-participants`` participants and ``--cost-rounds``
rounds (createTask, every register, join, round and claim; the deployment apart) in ETH, on
Ethereum mainnet at several gas prices and on an OP-stack L2 (execution gas at an L2 price
plus the Fjord L1 data fee of each signed transaction, FastLZ-compressed). Every price and
parameter assumed is in :data:`MAINNET_GWEI`, :data:`L2_SCENARIOS` and :data:`OP_SCALARS`.

Writes ``reports/bench/gas_cost.json`` and a plot beside it (``gas_cost.png``) and prints
Markdown tables (``docs/gas-cost.md`` quotes them). Exits with 1 if a function used less gas
than its floor (the floor would then be wrong).

    python -m benchmarks.gas_cost                                    # 5, 20, 50, 100; 2 rounds
    python -m benchmarks.gas_cost --participants 2,3 --rounds 1      # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import machine, publish
from benchmarks import versions as shared_versions
from benchmarks.gas_chain import (
    BULK,
    CREATOR,
    FLT,
    PPM,
    REJECT_REASON,
    Pass,
    Rpc,
    Setup,
    cid,
    key32,
)
from benchmarks.gas_floor import (
    FLOOR_PER_TOKEN,
    INTRINSIC,
    LOG_BYTE_GAS,
    LOG_GAS,
    LOG_TOPIC_GAS,
    NONZERO_BYTE,
    NOT_COUNTED,
    WRITE_GAS,
    WRITES,
    ZERO_BYTE,
)
from benchmarks.gas_other import OTHER_FUNCTIONS, run_other
from benchmarks.l2_fee import (
    FJORD,
    GWEI,
    L2_SCENARIOS,
    MAINNET_GWEI,
    OP_SCALARS,
    flz_compress_len,
    l1_fee_ecotone,
    l1_fee_fjord,
)

# -- the scenario -----------------------------------------------------------------------------
REWARD_PER_ROUND = 1_000 * FLT
PRICE = FLT
WINDOW = 1_000_000
#: Blocks before a buyer may take a refund: short, so that the refund is reached at once.
DELIVERY_WINDOW = 2
WATERMARKS = 3
BUYERS = 3
#: The functions a task pass sets against their floor, in the order of the table.
MAIN_FUNCTIONS = ("register", "createTask", "join", "commitWatermark", "startRound",
                  "submitUpdate", "finalizeRound", "claimRewards", "claimWatermark",
                  "listTaskModel", "buy", "deliverKey", "withdraw", "refund")


def run_pass(setup: Setup, label: str, n: int, rounds: int, reject_share: float
             ) -> dict[str, Any]:
    """One task of ``n`` participants: ``rounds`` normal rounds, one with rejections, a last
    one; claims, watermarks and a sale. Returns its transactions, rounds and floors."""
    from fl_agent.chain.records import RoundResult, TaskSpec, TrainingMode

    began = time.monotonic()
    s = setup
    ledger, registry, market, token = s.ledger, s.registry, s.market, s.token
    people = s.accounts(n)
    buyers = s.accounts(BUYERS)
    for buyer in buyers:
        token.mint(buyer, 100 * PRICE, sender=s.creator)  # setup, not measured
    p = Pass(s, label, n, MAIN_FUNCTIONS)

    for i, person in enumerate(people):
        p.note("register", registry.register(cid("metadata", label, i), sender=person))
    first_task = ledger.task_count() == 0
    model = cid("model", label, 0)
    rejected_count = min(max(1, math.ceil(n * reject_share)), n - 1)  # one contributor left
    spec = TaskSpec(model_cid=model, spec_cid=cid("spec", label), metric="accuracy",
                    aggregator=str(s.aggregator.address), rounds=rounds + 2,
                    # the quorum: the contributors left in the round with rejections
                    min_participants=n - rejected_count, submission_window=WINDOW,
                    training_mode=TrainingMode.PLAIN, reward_per_round=REWARD_PER_ROUND)
    task_id, receipt = ledger.create_task(spec, sender=s.creator)
    p.note("createTask", receipt, first_task=first_task)
    for person in people:
        p.note("join", ledger.join(task_id, sender=person))
    watermarked = people[:WATERMARKS]
    for person in watermarked:
        p.note("commitWatermark", ledger.commit_watermark(
            task_id, key32("watermark", label, str(person.address)), sender=person))

    round_rows = []
    credited = 0  # FLT credited so far: the last round releases the rest of the budget
    for number in range(1, rounds + 3):
        kind = "normal" if number <= rounds else "rejections" if number == rounds + 1 \
            else "last"
        opened, receipt = ledger.start_round(task_id, cid("workload", label, number),
                                             sender=s.aggregator, global_model_cid=model)
        assert opened == number, (opened, number)
        start = p.note("startRound", receipt, round=number)
        submits = [p.note("submitUpdate", ledger.submit_update(
            task_id, number, cid("update", label, number, i), 1_000 + i, 5_000 + i,
            sender=person), round=number) for i, person in enumerate(people)]
        rejected = [str(a.address) for a in people[n - rejected_count:]] \
            if kind == "rejections" else []
        contributors = [str(a.address) for a in people if str(a.address) not in rejected]
        new_model = cid("model", label, number)
        credited += len(contributors) * (REWARD_PER_ROUND * (PPM // len(contributors)) // PPM)
        result = RoundResult(
            new_model_cid=new_model, model_hash=hashlib.sha256(new_model.encode()).digest(),
            contributors=tuple(contributors),
            scores_ppm=tuple([PPM // len(contributors)] * len(contributors)),
            rejected=tuple(rejected), reasons=tuple([REJECT_REASON] * len(rejected)),
            evidence_cid=cid("evidence", label, number), aggregation_millis=1_234)
        final = p.note("finalizeRound", ledger.finalize_round(task_id, number, result,
                                                              sender=s.aggregator),
                       round=number, contributors=len(contributors), rejected=len(rejected),
                       last=kind == "last",
                       releases_budget=credited < REWARD_PER_ROUND * (rounds + 2))
        model = new_model
        submit_gas = [r.gas_used for r in submits]
        total = start.gas_used + sum(submit_gas) + final.gas_used
        round_rows.append({
            "round": number, "kind": kind, "contributors": len(contributors),
            "rejected": len(rejected), "startRound": start.gas_used,
            "submitUpdate": submit_gas, "submitUpdate_sum": sum(submit_gas),
            "finalizeRound": final.gas_used, "total": total,
            "per_participant": round(total / n)})

    for person in people:
        had, supply = token.balance_of(person), token.total_supply()
        p.note("claimRewards", ledger.claim_rewards(task_id, sender=person),
               claimant_had_flt=had > 0, supply_was_zero=supply == 0)
    for i, person in enumerate(watermarked):
        p.note("claimWatermark", ledger.claim_watermark(task_id, cid("claim", label, i),
                                                        sender=person))

    first_model = market.model_count() == 0
    model_id, receipt = market.list_task_model(
        task_id, cid("encrypted", label), cid("listing", label),
        hashlib.sha256(model.encode()).digest(), PRICE, sender=s.creator)
    p.note("listTaskModel", receipt, first_model=first_model)
    for i, buyer in enumerate(buyers):
        p.note("approve", token.approve(market.address, PRICE, sender=buyer))
        buyer_key = key32("buyer", label, i)
        # What the floor needs to know is read before each transaction is sent.
        before = {"market_had_flt": token.balance_of(market.address) > 0,
                  "allowance_cleared": token.allowance(buyer, market.address) == PRICE}
        p.note("buy", market.buy(model_id, PRICE, buyer_key, sender=buyer), **before)
        if i < BUYERS - 1:
            first_sale = market.listing(model_id).revenue == 0
            sealed = key32("sealed", label, i) * 3
            p.note("deliverKey", market.deliver_key(model_id, buyer, buyer_key, sealed[:92],
                                                    sender=s.creator),
                   first_sale=first_sale)
    payee = people[0]
    before = {"first_withdrawal": market.withdrawn(model_id, payee) == 0,
              "empties_market": token.balance_of(market.address)
              == market.withdrawable(model_id, payee),
              "payee_had_flt": token.balance_of(payee) > 0}
    p.note("withdraw", market.withdraw(model_id, sender=payee), **before)
    s.rpc.call("anvil_mine", hex(DELIVERY_WINDOW + 1))
    late = buyers[-1]
    before = {"empties_market": token.balance_of(market.address) == PRICE,
              "buyer_had_flt": token.balance_of(late) > 0}
    p.note("refund", market.refund(model_id, sender=late), **before)

    raw = s.rpc.batch([("eth_getRawTransactionByHash", [t["tx"]]) for t in p.txs])
    for tx, blob in zip(p.txs, raw, strict=True):
        tx["raw"] = blob
    return {"label": label, "participants": n, "rounds": round_rows, "txs": p.txs,
            "floors": p.floors, "wall_s": round(time.monotonic() - began, 1)}


# -- summaries ------------------------------------------------------------------------------
def _mean(values: list[float]) -> int:
    return round(sum(values) / len(values)) if values else 0


def _gas_of(result: dict[str, Any], function: str) -> list[int]:
    return [t["gas"] for t in result["txs"] if t["function"] == function]


def summarise_pass(result: dict[str, Any]) -> dict[str, Any]:
    n = result["participants"]
    rows = result["rounds"]
    normal = [r for r in rows if r["kind"] == "normal"]
    fields = ("startRound", "submitUpdate_sum", "finalizeRound", "total", "per_participant")
    mean = {f: _mean([r[f] for r in normal]) for f in fields}
    mean["total"] = mean["startRound"] + mean["submitUpdate_sum"] + mean["finalizeRound"]
    mean["per_participant"] = round(mean["total"] / n)
    rejections = next(r for r in rows if r["kind"] == "rejections")
    last = next(r for r in rows if r["kind"] == "last")
    once = {f: _mean(_gas_of(result, f)) for f in ("register", "join", "claimRewards")}
    return {
        "participants": n, "normal_round": mean,
        "rejection_round": {f: rejections[f] for f in (*fields, "rejected")},
        "last_round": {f: last[f] for f in fields},
        "one_time": {"per_participant": {**once, "total": sum(once.values())},
                     "per_task": {"createTask": _gas_of(result, "createTask")[0]}},
        "other": {f: _mean(_gas_of(result, f)) for f in (
            "commitWatermark", "claimWatermark", "listTaskModel", "approve", "buy",
            "deliverKey", "withdraw", "refund")},
        "wall_s": result["wall_s"],
    }


def finalize_marginal(passes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Gas of one more contributor to ``finalizeRound`` (round 1 of the smallest and the
    largest pass), measured and floor, and of one rejection instead of an acceptance."""
    measured = sorted(passes, key=lambda r: r["participants"])
    if len(measured) < 2:
        return None
    ends = []
    for result in (measured[0], measured[-1]):
        floor = next(f for f in result["floors"] if f["function"] == "finalizeRound"
                     and f["context"]["round"] == 1)
        ends.append((result["participants"], floor["gas"], floor["floor"]))
    (n1, g1, f1), (n2, g2, f2) = ends
    per_gas, per_floor = (g2 - g1) / (n2 - n1), (f2 - f1) / (n2 - n1)
    rejections = []
    for result in measured:
        normal = _mean([r["finalizeRound"] for r in result["rounds"] if r["kind"] == "normal"])
        row = next(r for r in result["rounds"] if r["kind"] == "rejections")
        rejections.append((row["finalizeRound"] - normal) / row["rejected"])
    return {"from_participants": n1, "to_participants": n2,
            "per_contributor_gas": round(per_gas), "per_contributor_floor": round(per_floor),
            "ratio": round(per_gas / per_floor, 3),
            "rejection_instead_of_acceptance_gas": round(sum(rejections) / len(rejections))}


def cost_model(result: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Gas and ETH of one task of the pass's participants and ``rounds`` rounds: createTask,
    every register, join and claim, ``rounds - 1`` normal rounds (their mean) and the last."""
    n = result["participants"]
    txs = result["txs"]
    normal = {r["round"] for r in result["rounds"] if r["kind"] == "normal"}
    last = next(r["round"] for r in result["rounds"] if r["kind"] == "last")
    round_fns = ("startRound", "submitUpdate", "finalizeRound")

    def part(pick: Callable[[dict[str, Any]], bool], times: float = 1.0) -> dict[str, Any]:
        chosen = [t for t in txs if pick(t)]
        raws = [bytes.fromhex(t["raw"].removeprefix("0x")) for t in chosen]
        fees = [{"fjord": [l1_fee_fjord(r, int(sc["l1_base_fee_gwei"] * GWEI),
                                        int(sc["blob_base_fee_gwei"] * GWEI))
                           for sc in L2_SCENARIOS],
                 "ecotone": [l1_fee_ecotone(r, int(sc["l1_base_fee_gwei"] * GWEI),
                                            int(sc["blob_base_fee_gwei"] * GWEI))
                             for sc in L2_SCENARIOS]} for r in raws]
        return {"transactions": round(len(chosen) * times),
                "gas": round(sum(t["gas"] for t in chosen) * times),
                "bytes": round(sum(len(r) for r in raws) * times),
                "fastlz_bytes": round(sum(flz_compress_len(r) for r in raws) * times),
                "l1_fee_wei": {kind: [round(sum(f[kind][i] for f in fees) * times)
                                      for i in range(len(L2_SCENARIOS))]
                               for kind in ("fjord", "ecotone")}}

    per_normal = 1 / len(normal) * (rounds - 1)
    parts = {
        "createTask": part(lambda t: t["function"] == "createTask"),
        "register": part(lambda t: t["function"] == "register"),
        "join": part(lambda t: t["function"] == "join"),
        f"{rounds - 1} normal rounds": part(
            lambda t: t["function"] in round_fns and t.get("round") in normal, per_normal),
        "last round": part(lambda t: t["function"] in round_fns and t.get("round") == last),
        "claimRewards": part(lambda t: t["function"] == "claimRewards"),
    }
    total_gas = sum(p["gas"] for p in parts.values())
    mainnet = [{"gwei": g, "eth": total_gas * g * GWEI / 10**18} for g in MAINNET_GWEI]

    def sent_by(functions: set[str], share: int = 1) -> dict[str, Any]:
        """What the sender of ``functions`` pays (``share``: how many such senders)."""
        pieces = [part(lambda t: t["function"] in functions and t.get("round") in normal,
                       per_normal),
                  part(lambda t: t["function"] in functions and t.get("round") in (None, last))]
        gas = sum(x["gas"] for x in pieces) / share
        l1 = [sum(x["l1_fee_wei"]["fjord"][i] for x in pieces) / share
              for i in range(len(L2_SCENARIOS))]
        return {"transactions": round(sum(x["transactions"] for x in pieces) / share),
                "gas": round(gas),
                "mainnet_eth": [gas * g * GWEI / 10**18 for g in MAINNET_GWEI],
                "l2_eth": [(gas * sc["l2_gwei"] * GWEI + fee) / 10**18
                           for sc, fee in zip(L2_SCENARIOS, l1, strict=True)]}

    payers = {"task creator": sent_by({"createTask"}),
              "aggregator": sent_by({"startRound", "finalizeRound"}),
              "each participant": sent_by({"register", "join", "submitUpdate", "claimRewards"},
                                          n)}
    l2 = []
    for i, sc in enumerate(L2_SCENARIOS):
        execution = total_gas * sc["l2_gwei"] * GWEI / 10**18
        data = sum(p["l1_fee_wei"]["fjord"][i] for p in parts.values()) / 10**18
        ecotone = sum(p["l1_fee_wei"]["ecotone"][i] for p in parts.values()) / 10**18
        l2.append({**sc, "execution_eth": execution, "l1_data_eth": data,
                   "total_eth": execution + data, "l1_data_eth_ecotone_formula": ecotone})
    return {"participants": n, "rounds": rounds, "parts": parts, "total_gas": total_gas,
            "transactions": sum(p["transactions"] for p in parts.values()),
            "mainnet": mainnet, "l2": l2, "payers": payers,
            "assumptions": {"mainnet_gwei": list(MAINNET_GWEI), "l2_scenarios": L2_SCENARIOS,
                            "op_scalars": OP_SCALARS, "fjord": FJORD, "operator_fee": 0}}


def deployment_gas(rpc: Rpc, last_block: int, names: dict[str, str]) -> dict[str, Any]:
    """Every transaction up to the deployment's block: the constructors and the role grants."""
    blocks = rpc.batch([("eth_getBlockByNumber", [hex(b), False])
                        for b in range(1, last_block + 1)])
    hashes = [h for block in blocks for h in block["transactions"]]
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    rows = []
    for r in receipts:
        created = (r.get("contractAddress") or "").lower()
        what = f"{names.get(created, created)} constructor" if created else \
            f"{names.get(r['to'].lower(), r['to'])}.grantRole"
        rows.append({"what": what, "gas": int(r["gasUsed"], 16)})
    return {"transactions": rows, "total_gas": sum(r["gas"] for r in rows),
            "mainnet_eth": [{"gwei": g, "eth": sum(r["gas"] for r in rows) * g * GWEI / 10**18}
                            for g in MAINNET_GWEI]}


# -- the run ------------------------------------------------------------------------------------
def run(participants: list[int], rounds: int, reject_share: float, cost_participants: int,
        cost_rounds: int, workdir: Path) -> dict[str, Any]:
    from ape import networks

    from fl_agent.chain.client import FairFL, load_project
    from fl_agent.chain.deployment import deploy_contracts
    from fl_agent.chain.node import LocalChain, dev_account, free_port
    from fl_agent.chain.records import TaskSpec, TrainingMode
    from fl_agent.cli.common import quiet_ape

    began = time.monotonic()
    node = LocalChain(workdir / "chain", "127.0.0.1", free_port())
    node.start(accounts=2)
    try:
        quiet_ape()
        with networks.parse_network_choice(node.url):
            rpc = Rpc(node.url)
            creator = dev_account(CREATOR)
            record, instances = deploy_contracts(creator, load_project(),
                                                 delivery_window=DELIVERY_WINDOW)
            setup = Setup(FairFL(record), rpc)
            deployed = deployment_gas(rpc, record.block, setup.names)
            token = instances["FairToken"]
            token.grantRole(token.MINTER_ROLE(), creator, sender=creator)  # buyers' FLT
            # A task that stays open, as on a chain in use: the task counter and the
            # reservation under FLT's cap are non-zero from here on.
            background = TaskSpec(
                model_cid=cid("background"), spec_cid=cid("background spec"), metric="accuracy",
                aggregator=str(setup.aggregator.address), rounds=1_000, min_participants=1,
                submission_window=WINDOW, training_mode=TrainingMode.PLAIN,
                reward_per_round=FLT)
            _, first_task = setup.ledger.create_task(background, sender=creator)
            first = run_pass(setup, "first use", 2, 1, reject_share)
            passes = []
            for n in participants:
                passes.append(run_pass(setup, f"{n} participants", n, rounds, reject_share))
                print(f"  {n} participants: {passes[-1]['wall_s']} s", file=sys.stderr)
            other = run_other(setup)
    finally:
        node.stop()

    chosen = next((r for r in passes if r["participants"] == cost_participants),
                  max(passes, key=lambda r: r["participants"]))
    floors = [f for r in passes for f in r["floors"]]
    return {
        "settings": {"participants": participants, "rounds": rounds,
                     "reject_share": reject_share, "reject_reason": REJECT_REASON,
                     "reward_per_round_flt": REWARD_PER_ROUND // FLT, "price_flt": PRICE // FLT,
                     "submission_window": WINDOW, "delivery_window": DELIVERY_WINDOW,
                     "cost_participants": cost_participants, "cost_rounds": cost_rounds},
        "prices": {"write_gas": WRITE_GAS, "intrinsic": INTRINSIC,
                   "calldata": {"zero": ZERO_BYTE, "nonzero": NONZERO_BYTE},
                   "eip7623_per_token": FLOOR_PER_TOKEN,
                   "log": {"base": LOG_GAS, "topic": LOG_TOPIC_GAS, "byte": LOG_BYTE_GAS}},
        "floor_rules": writes_section(),
        "deployment": deployed,
        "first_use": {"background_createTask": first_task.gas_used,
                      "summary": summarise_pass(first),
                      "floors": first["floors"]},
        "passes": [summarise_pass(r) for r in passes],
        "rounds": {r["participants"]: r["rounds"] for r in passes},
        "floors": floors,
        "other_floors": other["floors"],
        "finalize_marginal": finalize_marginal(passes),
        "cost": cost_model(chosen, cost_rounds),
        "wall_s": {"total": round(time.monotonic() - began, 1),
                   "passes": {r["label"]: r["wall_s"] for r in [first, *passes]}},
    }


# -- report -----------------------------------------------------------------------------------
def _g(value: float) -> str:
    return f"{value:,.0f}"


def _eth(value: float) -> str:
    return f"{value:.3g}" if value < 0.001 else f"{value:.4f}"


def floor_rows(result: dict[str, Any], participants: int) -> list[dict[str, Any]]:
    """One traced transaction per function of the pass with ``participants``: the second of a
    bulk function (the first joiner also creates the member list's length slot), the first
    of the others; for finalizeRound its first normal round, its rejection round and its last
    round; for deliverKey the first and a later sale."""
    of_pass = [f for f in result["floors"] if f["participants"] == participants]
    rows = []
    for function in MAIN_FUNCTIONS:
        found = [f for f in of_pass if f["function"] == function]
        if function == "finalizeRound":
            rounds = {}
            for f in found:
                ctx = f["context"]
                kind = "last" if ctx["last"] else "rejections" if ctx["rejected"] else "normal"
                rounds.setdefault(kind, f)
            rows += [rounds[k] for k in ("normal", "rejections", "last") if k in rounds]
        elif function == "deliverKey":
            rows += found[:2]
        elif found:
            rows.append(found[-1] if function in BULK else found[0])
    return rows


def _label(row: dict[str, Any]) -> str:
    ctx, name = row["context"], row["function"]
    if name == "finalizeRound":
        extra = f", {ctx['rejected']} rejected" if ctx["rejected"] else ""
        return f"`finalizeRound` ({ctx['contributors']} contributors{extra}" \
            + (", last round)" if ctx["last"] else ")")
    if name == "deliverKey":
        return "`deliverKey` (first sale)" if ctx["first_sale"] else "`deliverKey` (later sale)"
    if name == "resolveAppeal":
        return f"`resolveAppeal` ({'granted' if ctx['granted'] else 'denied'})"
    if name == "deliverKeys":
        return f"`deliverKeys` ({ctx['buyers']} buyers" \
            + (", first sale)" if ctx["first_sale"] else ")")
    if name == "closeRoundRejecting":
        return f"`closeRoundRejecting` ({ctx['rejected']} rejected)"
    if name == "cancelTask":
        return "`cancelTask` (a round open)" if ctx["open_round"] else "`cancelTask`"
    return f"`{name}`"


def counted(row: dict[str, Any]) -> dict[str, int]:
    """Slots the floor counts, by kind."""
    counts = {"new": 0, "update": 0, "clear": 0}
    for w in row["writes"]:
        counts[w["kind"]] += w["count"]
    return counts


def _writes(row: dict[str, Any]) -> str:
    return " + ".join(f"{v} {k}" for k, v in counted(row).items() if v) or "none"


def writes_section() -> str:
    """The writes each floor counts and those it leaves out, as the docs list them."""
    lines = []
    example = {"first_task": False, "contributors": 1, "rejected": 1, "last": True,
               "releases_budget": True,
               "claimant_had_flt": False, "supply_was_zero": False, "first_model": False,
               "market_had_flt": True, "allowance_cleared": True, "first_sale": True,
               "first_withdrawal": True, "empties_market": False, "payee_had_flt": True,
               "buyer_had_flt": True, "had_proposal": True, "open_round": True,
               "granted": True, "first_permit": True, "buyers": 2, "pause_slot": "new",
               "unpause_slot": "clear", "first_request": True, "allowance_was_zero": True,
               "empties_sender": False, "recipient_had_flt": False}
    for function in (*MAIN_FUNCTIONS, *OTHER_FUNCTIONS):
        here = "; ".join(
            w["what"] + ", " + w["kind"] + (f" (one per {w['per']})" if w["per"] else "")
            + ": " + w["why"] for w in WRITES[function](example))
        lines.append(f"* `{function}`: {here}. Not counted: {NOT_COUNTED[function]}.")
    return "\n".join(lines)


def floor_without_events(row: dict[str, Any]) -> int:
    """The floor less the events: the issue's floor (21,000 + the writes it needs), with the
    calldata no transaction avoids; the EIP-7623 floor still applies."""
    return max(row["floor"] - row["parts"]["events"], row["eip7623"]["floor"])


def floor_line(row: dict[str, Any]) -> str:
    cd, w = row["calldata"], row["written"]
    return (f"| {_label(row)} | {_g(row['gas'])} | {_g(row['floor'])} | "
            f"{row['gas'] / row['floor']:.2f} | {row['gas'] / floor_without_events(row):.2f} | "
            f"{_g(row['parts']['calldata'])} "
            f"({cd['zero_bytes']} / {cd['nonzero_bytes']}) | "
            f"{_g(row['parts']['storage'])} ({_writes(row)}) | "
            f"{_g(row['parts']['events'])} ({row['events']}) | "
            f"{w['new']} / {w['update']} / {w['clear']} | "
            f"{_g(w['gas'] - row['parts']['storage'])} | {_g(row['rest_after_written'])} | "
            f"{_g(row['eip7623']['floor'])}"
            f"{' **binds**' if row['eip7623']['binds_measured'] else ''} |")


def markdown(result: dict[str, Any]) -> str:
    passes, cost = result["passes"], result["cost"]
    lines = [
        "Per round (normal rounds: the mean of the first "
        f"{result['settings']['rounds']}; every participant submits and is a contributor):",
        "",
        "| participants | `startRound` | Σ `submitUpdate` | `finalizeRound` | round total | "
        "per participant | round with rejections (total) | last round (total) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in passes:
        m, rej, last = p["normal_round"], p["rejection_round"], p["last_round"]
        lines.append(
            f"| {p['participants']} | {_g(m['startRound'])} | {_g(m['submitUpdate_sum'])} | "
            f"{_g(m['finalizeRound'])} | {_g(m['total'])} | {_g(m['per_participant'])} | "
            f"{_g(rej['total'])} ({rej['rejected']} rejected) | {_g(last['total'])} |")
    lines += ["", "One-time costs (mean per participant; per task):", "",
              "| participants | `register` | `join` | `claimRewards` | per participant | "
              "`createTask` (per task) |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in passes:
        o = p["one_time"]["per_participant"]
        lines.append(f"| {p['participants']} | {_g(o['register'])} | {_g(o['join'])} | "
                     f"{_g(o['claimRewards'])} | {_g(o['total'])} | "
                     f"{_g(p['one_time']['per_task']['createTask'])} |")

    reference = cost["participants"]
    lines += ["", f"Each function against its floor ({reference}-participant pass; floor = "
              "21,000 + calldata + needed storage writes + events; ratio = measured / floor):",
              "",
              "| function | measured | floor | ratio | ratio, floor without events | "
              "calldata gas (zero / non-zero bytes) | "
              "storage counted (slots) | events (logs) | slots written: new / updated / "
              "cleared | writes beyond the floor | rest: reads, calls, memory | "
              "EIP-7623 floor |",
              "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | ---: | ---: | ---: |"]
    header = lines[-2:]
    lines += [floor_line(row) for row in floor_rows(result, reference)]
    lines += ["", "Every other function against its floor (a pass of its own, one transaction "
              "each; the scenario is in `benchmarks/gas_other.py`):", "", *header]
    order = {name: i for i, name in enumerate(OTHER_FUNCTIONS)}
    lines += [floor_line(row) for row in sorted(result["other_floors"],
                                                key=lambda r: order[r["function"]])]
    lines += ["", "`finalizeRound` against its floor, by participants:", "",
              "| participants | normal round: measured / floor (ratio) | with rejections | "
              "last round |", "| ---: | --- | --- | --- |"]
    for p in passes:
        cells = [f"{_g(r['gas'])} / {_g(r['floor'])} ({r['gas'] / r['floor']:.2f})"
                 for r in floor_rows(result, p["participants"])
                 if r["function"] == "finalizeRound"]  # normal, with rejections, last
        lines.append(f"| {p['participants']} | " + " | ".join(cells) + " |")
    marginal = result["finalize_marginal"]
    if marginal:
        lines += ["", f"`finalizeRound`, one more contributor (round 1, "
                  f"{marginal['from_participants']} → {marginal['to_participants']} "
                  f"participants): {_g(marginal['per_contributor_gas'])} gas, floor "
                  f"{_g(marginal['per_contributor_floor'])} (ratio {marginal['ratio']:.2f}); "
                  "a rejection instead of an acceptance adds "
                  f"{_g(marginal['rejection_instead_of_acceptance_gas'])}."]

    lines += ["", f"One task of {cost['participants']} participants and {cost['rounds']} rounds "
              f"({cost['transactions']:,} transactions; the deployment apart):", "",
              "| part | transactions | gas | signed bytes (FastLZ) |",
              "| --- | ---: | ---: | ---: |"]
    for name, part in cost["parts"].items():
        lines.append(f"| {name} | {part['transactions']:,} | {_g(part['gas'])} | "
                     f"{part['bytes']:,} ({part['fastlz_bytes']:,}) |")
    lines.append(f"| **total** | {cost['transactions']:,} | **{_g(cost['total_gas'])}** | |")
    deployment = result["deployment"]
    gwei = " / ".join(str(g) for g in MAINNET_GWEI)
    names = " / ".join(sc["name"] for sc in L2_SCENARIOS)
    lines += ["", "| sender | transactions | gas | ETH on mainnet at " + gwei + " gwei | "
              "ETH on the L2, " + names + " |", "| --- | ---: | ---: | ---: | ---: |"]
    for who, row in cost["payers"].items():
        lines.append(f"| {who} | {row['transactions']:,} | {_g(row['gas'])} | "
                     + " / ".join(_eth(x) for x in row["mainnet_eth"]) + " | "
                     + " / ".join(_eth(x) for x in row["l2_eth"]) + " |")
    lines += ["", "| Ethereum mainnet, gas price (base + priority) | task (ETH) | "
              "deployment (ETH) |", "| ---: | ---: | ---: |"]
    for row, dep in zip(cost["mainnet"], deployment["mainnet_eth"], strict=True):
        lines.append(f"| {row['gwei']} gwei | {_eth(row['eth'])} | {_eth(dep['eth'])} |")
    lines += ["", "| OP-stack L2 scenario | L2 gas price | L1 base fee | L1 blob base fee | "
              "execution (ETH) | L1 data, Fjord (ETH) | task total (ETH) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in cost["l2"]:
        lines.append(f"| {row['name']} | {row['l2_gwei']} gwei | {row['l1_base_fee_gwei']} gwei "
                     f"| {row['blob_base_fee_gwei']} gwei | {_eth(row['execution_eth'])} | "
                     f"{_eth(row['l1_data_eth'])} | {_eth(row['total_eth'])} |")
    first = result["first_use"]
    fo = first["summary"]
    lines += ["", "First use of a fresh deployment (a pass of its own, not in the tables): "
              f"createTask {_g(first['background_createTask'])} (the task counter and the "
              f"reservation start at zero), listTaskModel {_g(fo['other']['listTaskModel'])} "
              "(the model counter starts at zero), the first sale's buy "
              f"{_g(next(f['gas'] for f in first['floors'] if f['function'] == 'buy'))} "
              "(the marketplace's FLT balance starts at zero)."]
    lines += ["", f"Deployment: {_g(deployment['total_gas'])} gas "
              f"({len(deployment['transactions'])} transactions). Fee scalars assumed: "
              f"baseFeeScalar {OP_SCALARS['base_fee_scalar']:,}, blobBaseFeeScalar "
              f"{OP_SCALARS['blob_base_fee_scalar']:,}; operator fee 0.",
              f"Wall time {result['wall_s']['total']:,.0f} s."]
    below = [f for f in [*result["floors"], *result["other_floors"]] if f["gas"] < f["floor"]]
    if below:
        lines.append(f"**{len(below)} transactions used less gas than their floor.**")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    passes = result["passes"]
    n = [p["participants"] for p in passes]
    fig, (stack, per) = plt.subplots(1, 2, figsize=(12, 4.5))
    bottom = [0] * len(n)
    labels = [str(x) for x in n]
    for key, name in (("startRound", "startRound"), ("submitUpdate_sum", "Σ submitUpdate"),
                      ("finalizeRound", "finalizeRound")):
        values = [p["normal_round"][key] / 1e6 for p in passes]
        stack.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    stack.set(xlabel="participants", ylabel="gas per round (millions)",
              title="Gas of one round (normal rounds)")
    stack.legend(fontsize=8)
    stack.grid(axis="y", alpha=0.3)
    per.plot(n, [p["normal_round"]["per_participant"] / 1e3 for p in passes], marker="o",
             label="round, per participant")
    per.plot(n, [p["one_time"]["per_participant"]["total"] / 1e3 for p in passes], marker="s",
             label="register + join + claimRewards, once")
    per.set(xlabel="participants", ylabel="gas per participant (thousands)",
            title="Gas per participant", ylim=(0, None))
    per.legend(fontsize=8)
    per.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions() -> dict[str, str | None]:
    return {"solc": "0.8.37 (optimizer 200 runs)", "hardfork": "prague",
            **shared_versions("eth-ape", "web3")}


def _counts(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError("every participant count must be >= 2")
    return sorted(set(values))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gas_cost", description=__doc__.replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The results of the last full run, and what they mean: docs/gas-cost.md.")
    parser.add_argument("--participants", type=_counts, default=[5, 20, 50, 100],
                        help="participant counts, one pass and one task each, separated by "
                        "commas (default 5,20,50,100; each >= 2)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="normal rounds per pass (default 2); a round with rejections and "
                        "a last round follow")
    parser.add_argument("--reject-share", type=float, default=0.1,
                        help="share of the participants rejected in the round with rejections "
                        "(default 0.1, rounded up, at least one)")
    parser.add_argument("--cost-participants", type=int, default=20,
                        help="participants of the task priced in ETH (default 20; it must be "
                        "among --participants, else the largest is priced)")
    parser.add_argument("--cost-rounds", type=int, default=20,
                        help="rounds of the task priced in ETH (default 20)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/gas_cost.json"),
                        help="where the results go; the plot goes beside it (.png)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.cost_rounds < 1:
        parser.error("--rounds and --cost-rounds must be >= 1")
    if not 0 < args.reject_share < 1:
        parser.error("--reject-share must be between 0 and 1")
    about = {**machine(), "versions": versions()}
    with tempfile.TemporaryDirectory(prefix="fairfl-bench-gas-") as tmp:
        result = run(args.participants, args.rounds, args.reject_share, args.cost_participants,
                     args.cost_rounds, Path(tmp))
    result["machine"] = {**about, "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    publish(result, args.json, markdown(result))
    plot(result, args.json.with_suffix(".png"))
    print(f"plot: {args.json.with_suffix('.png')}")
    below = [f"{f['function']} ({f['pass']}): {f['gas']:,} < {f['floor']:,}"
             for f in [*result["floors"], *result["first_use"]["floors"],
                       *result["other_floors"]]
             if f["gas"] < f["floor"]]
    if below:
        sys.exit("error: used less gas than the floor: " + "; ".join(below))


if __name__ == "__main__":
    main()
