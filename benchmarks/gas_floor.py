"""What each FairFL transaction must cost at least on Prague: its floor, for
:mod:`benchmarks.gas_cost`.

A floor is 21,000 intrinsic gas + the calldata of the actual transaction + the storage writes
the function needs (:data:`WRITES`; what the code writes on top is in :data:`NOT_COUNTED`) +
the events it emits. Written by hand: no library prices a transaction this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# -- EVM prices (Prague) ----------------------------------------------------------------------
INTRINSIC = 21_000
ZERO_BYTE, NONZERO_BYTE = 4, 16
#: EIP-7623: a transaction pays at least 21,000 + 10 gas per token (zero byte 1, non-zero 4).
FLOOR_PER_TOKEN = 10
#: SSTORE with the slot's cold access (EIP-2929 / 2200 / 3529): zero to non-zero, non-zero to
#: another non-zero, non-zero to zero net of its 4,800 refund.
WRITE_GAS = {"new": 22_100, "update": 5_000, "clear": 5_000 - 4_800}
LOG_GAS, LOG_TOPIC_GAS, LOG_BYTE_GAS = 375, 375, 8

# -- floors ----------------------------------------------------------------------------------
def _w(what: str, kind: str, why: str, count: int = 1, per: str = "") -> dict[str, Any]:
    return {"what": what, "kind": kind, "count": count, "gas": WRITE_GAS[kind] * count,
            "why": why, "per": per}


def _balance(had: bool) -> str:
    return "update" if had else "new"


def _purchase(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """What a purchase writes, paid by allowance or by permit."""
    return [
        _w("market: purchase slot 0 (status, blocks, pricePaid)", "new",
           "delivery and refund read it"),
        _w("market: purchase slot 1 (buyerKey)", "new",
           "deliverKey checks the key the seller sealed to"),
        _w("FLT: balance of the buyer", "update", "the payment"),
        _w("FLT: balance of the marketplace", _balance(ctx["market_had_flt"]), "the escrow")]


#: The storage writes each function needs, from the contract code, priced with the layout the
#: contracts use. A write counts when a contract reads the value later (a check, a payment,
#: a share) or it is the protocol's on-chain record (reputation); lists and strings that only
#: the app's views read, and that the function's events already carry, do not.
#: ``ctx`` is what the pass knew of the state before sending the transaction.
WRITES: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "register": lambda ctx: [
        _w("registry: participant slot (registered, reputation 5,000 bps)", "new",
           "join checks registered and blacklisted; reputation is the registry's record")],
    "createTask": lambda ctx: [
        _w("ledger: task slot 0 (creator, rounds, currentRound, minParticipants)", "new",
           "startRound, cancelTask and proposeAggregator check them"),
        _w("ledger: task slot 1 (aggregator, window, participantCount, mode, status)", "new",
           "every round checks the aggregator, window and status"),
        _w("ledger: task slot 2 (rewardPerRound; totalRewarded, finalizedRounds later)",
           "new", "finalizeRound credits from it"),
        _w("ledger: task slot 3 (globalModelHash)", "new",
           "startRound checks the model's CID against it"),
        _w("ledger: _taskCount", "new" if ctx["first_task"] else "update",
           "allocates the task id"),
        _w("ledger: _reserved", "new" if ctx["first_task"] else "update",
           "reserves the budget under FLT's cap, so every credit can be minted")],
    "join": lambda ctx: [
        _w("ledger: membership slot (joined)", "new", "submitUpdate checks it"),
        _w("ledger: task slot 1 (participantCount)", "update",
           "startRound checks the quorum against it")],
    "commitWatermark": lambda ctx: [
        _w("ledger: watermark slot 0 (commitment)", "new", "claimWatermark checks and emits it"),
        _w("ledger: watermark slot 1 (blockNumber, claimed)", "new",
           "holds the flag claimWatermark sets: written now, that later write is an update")],
    "startRound": lambda ctx: [
        _w("ledger: task slot 0 (currentRound)", "update", "every round call checks it"),
        _w("ledger: round slot (startBlock, deadlineBlock, status)", "new",
           "submitUpdate checks the deadline and the status")],
    "submitUpdate": lambda ctx: [
        _w("ledger: membership slot (lastSubmittedRound)", "update",
           "no second submission; finalizeRound settles only those who submitted"),
        _w("ledger: round slot (submissions)", "update",
           "closeRoundRejecting waits for the window until the quorum has submitted")],
    "finalizeRound": lambda ctx: [
        _w("ledger: round slot (status, finalizedBlock)", "update", "closes the round"),
        _w("ledger: task slot 2 (totalRewarded, finalizedRounds)", "update",
           "revenue shares; the task completes at its last round"),
        _w("ledger: task slot 3 (globalModelHash)", "update", "the next startRound checks it"),
        _w("ledger: membership slot of each contributor (lastSettledRound, acceptedRounds, "
           "earned)", "update", "claims and revenue shares; no double settlement",
           ctx["contributors"], "contributor"),
        _w("registry: participant slot of each contributor (reputation, acceptedUpdates)",
           "update", "the reputation EWMA", ctx["contributors"], "contributor"),
        *([_w("ledger: membership slot of each rejected (lastSettledRound, rejectedRounds)",
              "update", "no double settlement", ctx["rejected"], "rejected"),
           _w("registry: participant slot of each rejected (reputation, rejection window)",
              "update", "counts toward automatic blacklisting", ctx["rejected"], "rejected")]
          if ctx["rejected"] else []),
        *([_w("ledger: task slot 1 (status Completed)", "update", "ends the task")]
          if ctx["last"] else []),
        *([_w("ledger: _reserved", "update", "releases the unspent budget (when some is)")]
          if ctx["last"] and ctx["releases_budget"] else [])],
    "claimRewards": lambda ctx: [
        _w("ledger: _claimed[task][account]", "new", "claimable is earned less claimed"),
        _w("ledger: _reserved", "update", "the claim leaves the reservation"),
        _w("FLT: balance of the claimant", _balance(ctx["claimant_had_flt"]), "the mint"),
        _w("FLT: totalSupply", _balance(not ctx["supply_was_zero"]), "the mint, under the cap")],
    "claimWatermark": lambda ctx: [
        _w("ledger: watermark slot 1 (claimed)", "update", "one claim per member")],
    "listTaskModel": lambda ctx: [
        _w("market: listing slot 0 (seller, active)", "new", "onlySeller and buy check them"),
        _w("market: listing slot 1 (price)", "new", "buy reads the price"),
        _w("market: listing slot 3 (taskId)", "new", "withdraw reads the task's reward shares"),
        _w("market: _modelOfTask[task]", "new", "one listing per task"),
        _w("market: _modelCount", "new" if ctx["first_model"] else "update",
           "allocates the model id")],
    "buy": lambda ctx: [
        *_purchase(ctx),
        _w("FLT: allowance of the marketplace", "clear" if ctx["allowance_cleared"]
           else "update", "transferFrom spends it")],
    "deliverKey": lambda ctx: [
        _w("market: purchase slot 0 (status Delivered)", "update",
           "no second delivery, no refund after it"),
        _w("market: listing slot 2 (revenue)", "new" if ctx["first_sale"] else "update",
           "withdraw pays shares of it")],
    "withdraw": lambda ctx: [
        _w("market: _withdrawn[model][payee]", "new" if ctx["first_withdrawal"] else "update",
           "no second payment of the same share"),
        _w("FLT: balance of the marketplace", "clear" if ctx["empties_market"] else "update",
           "the payment"),
        _w("FLT: balance of the payee", _balance(ctx["payee_had_flt"]), "the payment")],
    "refund": lambda ctx: [
        _w("market: purchase slot 0 (status Refunded)", "update", "no second refund"),
        _w("FLT: balance of the marketplace", "clear" if ctx["empties_market"] else "update",
           "the repayment"),
        _w("FLT: balance of the buyer", _balance(ctx["buyer_had_flt"]), "the repayment")],
}

# The functions a task does not need on its happy path (``benchmarks.gas_other`` sends each).
WRITES.update({
    "updateMetadata": lambda ctx: [],
    "proposeAggregator": lambda ctx: [
        _w("ledger: _proposed[task] (account, readyTime)", "new",
           "replaceAggregator checks the account and the delay")],
    "replaceAggregator": lambda ctx: [
        _w("ledger: task slot 1 (aggregator)", "update", "every round checks the aggregator"),
        *([_w("ledger: _proposed[task]", "clear",
              "a proposal used or overruled must not install its account later")]
          if ctx["had_proposal"] else [])],
    "closeRound": lambda ctx: [
        _w("ledger: round slot (status Closed, finalizedBlock)", "update",
           "no submission, finalization or second close after it; the next startRound "
           "checks it")],
    "closeRoundRejecting": lambda ctx: [
        _w("ledger: round slot (status Closed, finalizedBlock)", "update", "closes the round"),
        _w("ledger: membership slot of each rejected (lastSettledRound, rejectedRounds)",
           "update", "no double settlement", ctx["rejected"], "rejected"),
        _w("registry: participant slot of each rejected (reputation, rejection window)",
           "update", "counts toward automatic blacklisting", ctx["rejected"], "rejected")],
    "cancelTask": lambda ctx: [
        _w("ledger: task slot 1 (status Cancelled)", "update",
           "join, startRound, commitWatermark and the aggregator changes check it"),
        _w("ledger: _reserved", "update", "releases the budget not credited"),
        *([_w("ledger: round slot (status Closed)", "update",
              "submitUpdate, finalizeRound and closeRoundRejecting check the round's status, "
              "not the task's: closing the round is what stops them")]
          if ctx["open_round"] else [])],
    "blacklist": lambda ctx: [
        _w("registry: participant slot (blacklisted)", "update",
           "every contract checks it before letting the account act or earn")],
    "liftBlacklist": lambda ctx: [
        _w("registry: participant slot (blacklisted, rejection window reset)", "update",
           "the account may act again, with a fresh window")],
    "fileAppeal": lambda ctx: [
        _w("registry: _appeals[account] (Pending)", "new",
           "resolveAppeal checks it; one appeal per blacklisting")],
    "resolveAppeal": lambda ctx: [
        _w("registry: _appeals[account] (Granted or Denied)", "update",
           "no second decision, no second appeal"),
        *([_w("registry: participant slot (blacklisted, rejection window reset)", "update",
              "the appeal granted lifts the blacklisting")] if ctx["granted"] else [])],
    "setPolicy": lambda ctx: [
        _w("registry: _policy (alpha, maxRejections, windowBlocks)", "update",
           "every recordRound reads it")],
    "buyWithPermit": lambda ctx: [
        *_purchase(ctx),
        _w("FLT: nonces[buyer]", _balance(not ctx["first_permit"]),
           "a permit is used once (EIP-2612)")],
    "updateBuyerKey": lambda ctx: [
        _w("market: purchase slot 0 (deadlineBlock)", "update",
           "the seller's delivery window restarts; refund checks it"),
        _w("market: purchase slot 1 (buyerKey)", "update",
           "deliverKey checks the key the seller sealed to")],
    "deliverKeys": lambda ctx: [
        _w("market: purchase slot 0 of each buyer (status Delivered)", "update",
           "no second delivery, no refund after it", ctx["buyers"], "buyer"),
        _w("market: listing slot 2 (revenue)", "new" if ctx["first_sale"] else "update",
           "withdraw pays shares of it")],
    "setPrice": lambda ctx: [
        _w("market: listing slot 1 (price)", "update", "buy reads the price")],
    "delist": lambda ctx: [
        _w("market: listing slot 0 (active)", "update", "buy checks it")],
    "pause": lambda ctx: [
        _w("market: _paused", ctx["pause_slot"], "listTaskModel and buy check it")],
    "unpause": lambda ctx: [
        _w("market: _paused", ctx["unpause_slot"], "listTaskModel and buy check it")],
    "setKeyHolder": lambda ctx: [
        _w("desk: _keyHolders[task]", "new", "answerDecryption checks the key holder")],
    "requestDecryption": lambda ctx: [
        _w("desk: _requestIds[task][round][kind]", "new",
           "one request per round and kind; the aggregate waits for the scalars' answer"),
        _w("desk: the request's slot (task, round, kind, requestedBlock)", "new",
           "answerDecryption checks it exists and is unanswered"),
        _w("desk: _requestCount", _balance(not ctx["first_request"]),
           "allocates the request id")],
    "answerDecryption": lambda ctx: [
        _w("desk: the request's slot (answered, answeredBlock)", "update",
           "no second answer; the aggregate request checks the scalars were answered")],
    "approve": lambda ctx: [
        _w("FLT: allowance[owner][spender]", _balance(not ctx["allowance_was_zero"]),
           "transferFrom spends it")],
    "transfer": lambda ctx: [
        _w("FLT: balance of the sender", "clear" if ctx["empties_sender"] else "update",
           "the transfer"),
        _w("FLT: balance of the recipient", _balance(ctx["recipient_had_flt"]), "the transfer")],
})

#: What the code writes on top of :data:`WRITES`, and why the floor leaves it out.
NOT_COUNTED = {
    "register": "the metadata CID string (a length slot and two data slots for a 59-character "
                "CID) and the _registered array (new element, length): only the metadataOf and "
                "participantAt views read them; ParticipantRegistered carries both",
    "createTask": "the specCid and metric strings (3 + 1 slots): only the task() view reads "
                  "them; TaskCreated carries the whole config",
    "join": "the _participants[task] array (new element; its length, new for the first "
            "joiner): only the participants() and contributions() views read it; "
            "ParticipantJoined carries it",
    "commitWatermark": "nothing",
    "startRound": "nothing",
    "submitUpdate": "nothing (CIDs, samples and time are in UpdateSubmitted only)",
    "finalizeRound": "nothing (modelHash is emitted, not stored)",
    "claimRewards": "nothing",
    "claimWatermark": "nothing",
    "listTaskModel": "plaintextHash (1 slot), encryptedCid and metadataCid (3 slots each): only "
                     "the listing() view reads them; ModelListed carries all three",
    "buy": "the listing's escrowed total (listing slot 1): no check needs it, each purchase "
           "holds its price",
    "deliverKey": "the listing's sales counter and escrowed total: sales is in KeyDelivered, "
                  "the escrow is the sum of the pending purchases",
    "withdraw": "nothing",
    "refund": "the listing's escrowed total",
    "updateMetadata": "the metadata CID string (a length slot and two data slots): only the "
                      "metadataOf view reads it; MetadataUpdated carries it",
    "proposeAggregator": "nothing",
    "replaceAggregator": "nothing",
    "closeRound": "nothing",
    "closeRoundRejecting": "nothing",
    "cancelTask": "nothing",
    "blacklist": "nothing (the evidence CID is in Blacklisted only)",
    "liftBlacklist": "the appeal's status, when there is one (cleared: a new blacklisting "
                     "clears it anyway)",
    "fileAppeal": "nothing (the statement CID is in AppealFiled only)",
    "resolveAppeal": "nothing (the decision CID is in AppealResolved only)",
    "setPolicy": "nothing",
    "buyWithPermit": "the listing's escrowed total, as for buy; the allowance the permit sets "
                     "and transferFrom spends in the same transaction (no net change)",
    "updateBuyerKey": "nothing",
    "deliverKeys": "the listing's sales counter and escrowed total, as for deliverKey",
    "setPrice": "nothing",
    "delist": "nothing",
    "pause": "nothing",
    "unpause": "nothing",
    "setKeyHolder": "nothing",
    "requestDecryption": "nothing (the document CID is in DecryptionRequested only)",
    "answerDecryption": "nothing (the result CID is in DecryptionAnswered only)",
    "approve": "nothing",
    "transfer": "nothing",
}


def calldata(data: bytes) -> dict[str, int]:
    zeros = data.count(0)
    nonzero = len(data) - zeros
    tokens = zeros + 4 * nonzero
    return {"bytes": len(data), "zero_bytes": zeros, "nonzero_bytes": nonzero,
            "gas": ZERO_BYTE * zeros + NONZERO_BYTE * nonzero,
            "eip7623_floor": INTRINSIC + FLOOR_PER_TOKEN * tokens}


def log_gas(logs: list[dict[str, Any]]) -> int:
    return sum(LOG_GAS + LOG_TOPIC_GAS * len(entry["topics"])
               + LOG_BYTE_GAS * (len(entry["data"]) - 2) // 2 for entry in logs)


def slot_changes(diff: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Slots a transaction changed, from ``prestateTracer`` in diff mode: created (zero before),
    updated, cleared (zero after), per contract, and their price as if each was written once
    with a cold access (an estimate: a slot written twice pays 100 more, one written back to
    its value is not listed)."""
    pre, post = diff.get("pre", {}), diff.get("post", {})
    by_contract: dict[str, dict[str, int]] = {}
    for address in set(pre) | set(post):
        before = pre.get(address, {}).get("storage", {})
        after = post.get(address, {}).get("storage", {})
        counts = {"new": 0, "update": 0, "clear": 0}
        for slot in set(before) | set(after):
            old, new = int(before.get(slot, "0x0"), 16), int(after.get(slot, "0x0"), 16)
            if old == new:
                continue
            counts["new" if old == 0 else "clear" if new == 0 else "update"] += 1
        if any(counts.values()):
            by_contract[names.get(address.lower(), address)] = counts
    total = {k: sum(c[k] for c in by_contract.values()) for k in WRITE_GAS}
    return {**total, "gas": sum(WRITE_GAS[k] * v for k, v in total.items()),
            "by_contract": by_contract}


def floor_of(function: str, ctx: dict[str, Any], gas: int, data: bytes,
             logs: list[dict[str, Any]], diff: dict[str, Any] | None,
             names: dict[str, str]) -> dict[str, Any]:
    """``function``'s floor for one transaction, set against the gas it used."""
    cd = calldata(data)
    writes = WRITES[function](ctx)
    storage = sum(w["gas"] for w in writes)
    events = log_gas(logs)
    standard = INTRINSIC + cd["gas"] + storage + events
    floor = max(standard, cd["eip7623_floor"])
    written = slot_changes(diff, names) if diff is not None else None
    return {
        "function": function, "gas": gas, "floor": floor, "ratio": round(gas / floor, 3),
        "parts": {"intrinsic": INTRINSIC, "calldata": cd["gas"], "storage": storage,
                  "events": events},
        "calldata": cd, "events": len(logs),
        "eip7623": {"floor": cd["eip7623_floor"], "binds_measured": gas <= cd["eip7623_floor"],
                    "binds_floor": cd["eip7623_floor"] > standard},
        "writes": writes, "not_counted": NOT_COUNTED[function],
        "written": written,
        # What the writes the code really made leave for reads, calls, hashing and memory.
        "rest_after_written": None if written is None else
        gas - INTRINSIC - cd["gas"] - events - written["gas"],
        "context": ctx,
    }
