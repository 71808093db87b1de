"""The pass of ``benchmarks.gas_cost`` that sends every function a task's happy path does not:
governance, recovery, the rest of the marketplace, the key holder's desk and the token's own
``approve`` and ``transfer``. Each is sent once (``resolveAppeal`` twice: granted and denied)
on fresh accounts and set against its floor (:mod:`benchmarks.gas_floor`).

The scenario, in order (what is only set-up is sent but not floored):

* four participants register; one replaces its metadata (``updateMetadata``);
* a task of four with a 10-block window: the creator proposes another aggregator
  (``proposeAggregator``) and, as governance, installs it at once (``replaceAggregator``,
  which clears the proposal); round 1, all submit, the new aggregator closes it rejecting one
  (``closeRoundRejecting``); round 2, two submit, the window passes, the aggregator closes it
  (``closeRound``); round 3 opens and the creator cancels the task (``cancelTask``, closing
  the open round and releasing the budget);
* governance blacklists a participant (``blacklist``), who appeals (``fileAppeal``) and is
  granted (``resolveAppeal``); another is blacklisted, appeals, is denied, then lifted
  (``liftBlacklist``); the policy changes (``setPolicy``);
* a finished task of two is listed; the seller changes its price (``setPrice``); one buyer
  pays with an EIP-2612 permit (``buyWithPermit``, the buyer's first permit), one with
  ``approve`` + ``buy``; that buyer replaces its key (``updateBuyerKey``); the seller delivers
  to both at once (``deliverKeys``, the model's first sale), pauses and unpauses the
  marketplace (``pause``, ``unpause``) and delists the model (``delist``); a buyer approves an
  allowance (``approve``, from zero) and transfers FLT to a participant (``transfer``);
* a homomorphic task: the creator names a key holder (``setKeyHolder``); round 1, the
  aggregator asks for the scalars (``requestDecryption``) and the key holder answers
  (``answerDecryption``).

The contracts' access-control functions (``grantRole``, the delayed admin transfer) are left
out: the deployment's grants are in its own table, and none is sent in a task's life.
"""

from __future__ import annotations

import hashlib
from typing import Any

from benchmarks.gas_chain import FLT, PPM, REJECT_REASON, Pass, Setup, cid, key32

PRICE = FLT
WINDOW = 10
#: In the order of the table.
OTHER_FUNCTIONS = (
    "updateMetadata", "proposeAggregator", "replaceAggregator", "closeRoundRejecting",
    "closeRound", "cancelTask", "blacklist", "fileAppeal", "resolveAppeal", "liftBlacklist",
    "setPolicy", "setPrice", "buyWithPermit", "updateBuyerKey", "deliverKeys", "pause",
    "unpause", "delist", "approve", "transfer", "setKeyHolder", "requestDecryption",
    "answerDecryption")


def _spec(label: str, members: int, rounds: int, mode: int, aggregator: Any) -> Any:
    from fl_agent.chain.records import TaskSpec

    return TaskSpec(model_cid=cid("model", label, 0), spec_cid=cid("spec", label),
                    metric="accuracy", aggregator=str(aggregator.address), rounds=rounds,
                    min_participants=members, submission_window=WINDOW, training_mode=mode,
                    reward_per_round=1_000 * FLT)


def _round(setup: Setup, task_id: int, label: str, number: int, people: list[Any],
           aggregator: Any) -> None:
    ledger = setup.ledger
    ledger.start_round(task_id, cid("workload", label, number), sender=aggregator,
                       global_model_cid=cid("model", label, 0))
    for i, person in enumerate(people):
        ledger.submit_update(task_id, number, cid("update", label, number, i), 1_000, 5_000,
                             sender=person)


def _mine(setup: Setup, blocks: int) -> None:
    setup.rpc.call("anvil_mine", hex(blocks))


def run_other(setup: Setup) -> dict[str, Any]:
    """Sends every function of :data:`OTHER_FUNCTIONS` once (``resolveAppeal`` twice) and
    returns the transactions and their floors."""
    from eth_account.messages import encode_typed_data

    from fl_agent.chain.client import DecryptionKind
    from fl_agent.chain.records import RoundResult, TrainingMode
    from fl_agent.chain.transactions import transact
    from fl_agent.market.payment import permit_domain, permit_typed_data, split_signature

    s = setup
    ledger, registry, market, token, desk = (s.ledger, s.registry, s.market, s.token,
                                             s.fairfl.desk)
    creator = s.creator
    p = Pass(s, "other functions", 4, OTHER_FUNCTIONS)
    people = s.accounts(4)
    newcomer, keyholder = s.accounts(2)
    buyers = s.accounts(2)
    for i, person in enumerate(people):
        registry.register(cid("metadata", "other", i), sender=person)
    p.note("updateMetadata", registry.update_metadata(cid("metadata", "other", "new"),
                                                      sender=people[0]))

    # -- recovery: a task whose aggregator is replaced, rounds closed, then cancelled --------
    task_id, _ = ledger.create_task(
        _spec("recovery", 4, 5, TrainingMode.PLAIN, s.aggregator), sender=creator)
    for person in people:
        ledger.join(task_id, sender=person)
    p.note("proposeAggregator", ledger.propose_aggregator(task_id, newcomer, sender=creator))
    p.note("replaceAggregator", ledger.replace_aggregator(task_id, newcomer, sender=creator),
           had_proposal=True)
    _round(s, task_id, "recovery", 1, people, newcomer)
    p.note("closeRoundRejecting", ledger.close_round_rejecting(
        task_id, 1, [str(people[3].address)], [REJECT_REASON], cid("evidence", "recovery", 1),
        sender=newcomer), rejected=1)
    _round(s, task_id, "recovery", 2, people[:2], newcomer)
    _mine(s, WINDOW + 1)
    p.note("closeRound", ledger.close_round(task_id, 2, sender=newcomer))
    ledger.start_round(task_id, cid("workload", "recovery", 3), sender=newcomer,
                       global_model_cid=cid("model", "recovery", 0))
    p.note("cancelTask", ledger.cancel_task(task_id, sender=creator), open_round=True)

    # -- governance: blacklisting, appeals, the policy ---------------------------------------
    granted, denied = people[2], people[3]
    p.note("blacklist", registry.blacklist(granted, cid("evidence", "blacklist"),
                                           sender=creator))
    p.note("fileAppeal", registry.file_appeal(cid("statement", 1), sender=granted))
    p.note("resolveAppeal", registry.resolve_appeal(granted, True, cid("decision", 1),
                                                    sender=creator), granted=True)
    registry.blacklist(denied, cid("evidence", "blacklist", 2), sender=creator)
    registry.file_appeal(cid("statement", 2), sender=denied)
    p.note("resolveAppeal", registry.resolve_appeal(denied, False, cid("decision", 2),
                                                    sender=creator), granted=False)
    p.note("liftBlacklist", registry.lift_blacklist(denied, sender=creator))
    alpha, max_rejections, window = registry.contract.policy()
    p.note("setPolicy", transact(registry.contract.setPolicy,
                                    (alpha, max_rejections, window + 1), sender=creator))

    # -- the rest of the marketplace ---------------------------------------------------------
    sellers_task, _ = ledger.create_task(
        _spec("sale", 2, 1, TrainingMode.PLAIN, s.aggregator), sender=creator)
    for person in people[:2]:
        ledger.join(sellers_task, sender=person)
    _round(s, sellers_task, "sale", 1, people[:2], s.aggregator)
    final = cid("model", "sale", 1)
    members = tuple(str(a.address) for a in people[:2])
    ledger.finalize_round(sellers_task, 1, RoundResult(
        new_model_cid=final, model_hash=hashlib.sha256(final.encode()).digest(),
        contributors=members, scores_ppm=(PPM // 2, PPM // 2), rejected=(), reasons=(),
        evidence_cid=cid("evidence", "sale", 1), aggregation_millis=1_000),
        sender=s.aggregator)
    model_id, _ = market.list_task_model(
        sellers_task, cid("encrypted", "sale"), cid("listing", "sale"),
        hashlib.sha256(final.encode()).digest(), 2 * PRICE, sender=creator)
    p.note("setPrice", market.set_price(model_id, PRICE, sender=creator))
    for buyer in buyers:
        token.mint(buyer, 10 * PRICE, sender=creator)  # set-up, not measured
    with_permit, with_allowance = buyers
    domain = permit_domain(token.contract)
    if domain is None:
        raise RuntimeError("FLT offers no EIP-2612 permit: buyWithPermit cannot be measured")
    nonce = int(token.contract.nonces(with_permit.address))
    deadline = 2**48
    typed = permit_typed_data(domain, str(with_permit.address), market.address, PRICE, nonce,
                              deadline)
    v, r, sig_s = split_signature(
        with_permit.sign_message(encode_typed_data(full_message=typed)).encode_rsv())
    before = {"market_had_flt": token.balance_of(market.address) > 0,
              "first_permit": nonce == 0}
    keys = [key32("buyer", "other", i) for i in range(2)]
    p.note("buyWithPermit", market.buy_with_permit(model_id, PRICE, keys[0], deadline, v, r,
                                                   sig_s, sender=with_permit), **before)
    token.approve(market.address, PRICE, sender=with_allowance)
    market.buy(model_id, PRICE, keys[1], sender=with_allowance)
    keys[1] = key32("buyer", "other", "replaced")
    p.note("updateBuyerKey", market.update_buyer_key(model_id, keys[1],
                                                     sender=with_allowance))
    first_sale = market.listing(model_id).revenue == 0
    sealed = [(key32("sealed", i) * 3)[:92] for i in range(2)]
    p.note("deliverKeys", market.deliver_keys(model_id, list(buyers), keys, sealed,
                                              sender=creator),
           buyers=2, first_sale=first_sale)
    # Pausable's flag shares its slot with nothing that is non-zero here (checked by the
    # test against the trace): pausing writes it from zero, unpausing clears it.
    p.note("pause", transact(market.contract.pause, sender=creator), pause_slot="new")
    p.note("unpause", transact(market.contract.unpause, sender=creator), unpause_slot="clear")
    p.note("delist", market.delist(model_id, sender=creator))
    spender, recipient = people[0], people[1]
    was_zero = token.allowance(with_allowance, spender) == 0  # read before sending
    p.note("approve", token.approve(spender, PRICE, sender=with_allowance),
           allowance_was_zero=was_zero)
    before = {"empties_sender": token.balance_of(with_allowance) == PRICE,
              "recipient_had_flt": token.balance_of(recipient) > 0}
    p.note("transfer", token.transfer(recipient, PRICE, sender=with_allowance), **before)

    # -- the key holder's desk -----------------------------------------------------------------
    he_task, _ = ledger.create_task(
        _spec("he", 2, 1, TrainingMode.HOMOMORPHIC, s.aggregator), sender=creator)
    p.note("setKeyHolder", desk.set_key_holder(he_task, keyholder, sender=creator))
    for person in people[:2]:
        ledger.join(he_task, sender=person)
    _round(s, he_task, "he", 1, people[:2], s.aggregator)
    first_request = desk.request_count() == 0
    request_id, receipt = desk.request_decryption(he_task, 1, DecryptionKind.SCALARS,
                                                  cid("request", "he", 1), sender=s.aggregator)
    p.note("requestDecryption", receipt, first_request=first_request)
    p.note("answerDecryption", desk.answer_decryption(request_id, cid("answer", "he", 1),
                                                      sender=keyholder))
    return {"label": p.label, "txs": p.txs, "floors": p.floors}
