"""A small, deterministic FairFL history written through the typed client, for the app tests.

Four participants register; the fourth is blacklisted by governance. Task 1 (accuracy, DP,
two rounds) runs to completion: in round 1 trainer C's update is rejected, in round 2
everybody is accepted. Its final model is listed for 250 FLT and bought once. Task 2
(f1_macro, plain, three rounds) is still in round 1 with one upload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from fl_agent.chain.client import FairFL
from fl_agent.chain.records import RoundResult, TaskSpec, TrainingMode

UNIT = 10**18
CID_MODEL = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
CID_SPEC = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CID_WORKLOAD = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
CID_UPDATE = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CID_ROUND_1 = "bafkreiabltrd5zm73pvi7plq25pef3hm7jxhbi3kv4hapegrkfpkqtkbme"
CID_ROUND_2 = "bafkreiflzm2x2alnv4uzzkqoxhwxfgslvswbdbizw3d3omkfevjutmbxbe"
CID_ENCRYPTED = "bafkreid7qoywk77r7rj3slobqfekdvs57qwuwh5d2z3sqsw52iabe3mqne"
CID_EVIDENCE = "bafkreihfkpyo3ldd6oclpibtwxfxfxkjtwnwvjlyk5hqpd3n2dlgfapxsu"
PRICE = 250 * UNIT


@dataclass(frozen=True)
class Story:
    """What :func:`populate` wrote, for the tests to look for."""

    owner: str
    aggregator: str
    trainers: tuple[str, str, str]
    banned: str
    buyer: str
    completed_task: int
    open_task: int
    model_id: int
    final_model_cid: str
    #: Read back through the typed client after the story, for participants a, b, c, d:
    #: reputation in percent and FLT balance (the contracts' arithmetic is not tested here).
    reputation_pct: tuple[float, ...]
    flt_balance: tuple[float, ...]
    #: FLT that trainers a, b, c earned in the completed task, and their revenue shares (%).
    earned_flt: tuple[float, ...]
    shares_pct: tuple[float, ...]


def populate(fairfl: FairFL, accounts: Any) -> Story:
    """Writes the story with ape test accounts 0 (governance), 1 (aggregator), 2-5
    (participants) and 7 (buyer)."""
    owner, aggregator, buyer = accounts[0], accounts[1], accounts[7]
    a, b, c, d = (accounts[i] for i in range(2, 6))
    ledger, registry, market, token = (fairfl.ledger, fairfl.registry, fairfl.marketplace,
                                       fairfl.token)

    for p in (a, b, c, d):
        registry.register(CID_SPEC, sender=p)
    registry.blacklist(d, CID_EVIDENCE, sender=owner)

    spec = TaskSpec(model_cid=CID_MODEL, spec_cid=CID_SPEC, metric="accuracy",
                    aggregator=aggregator.address, rounds=2, min_participants=2,
                    submission_window=50, training_mode=TrainingMode.DP,
                    reward_per_round=1_000 * UNIT)
    done, _ = ledger.create_task(spec, sender=owner)
    for p in (a, b, c):
        ledger.join(done, sender=p)

    round_1, _ = ledger.start_round(done, CID_WORKLOAD, sender=aggregator)
    for i, p in enumerate((a, b, c)):
        ledger.submit_update(done, round_1, f"{CID_UPDATE}{i}", 600 + i, 4_000, sender=p)
    ledger.finalize_round(done, round_1, RoundResult(
        CID_ROUND_1, (a.address, b.address), (6_000, 4_000), rejected=(c.address,),
        aggregation_millis=812), sender=aggregator)

    round_2, _ = ledger.start_round(done, CID_WORKLOAD, sender=aggregator)
    for i, p in enumerate((a, b, c)):
        ledger.submit_update(done, round_2, f"{CID_UPDATE}{i + 3}", 600 + i, 4_100,
                             sender=p)
    ledger.finalize_round(done, round_2, RoundResult(
        CID_ROUND_2, (a.address, b.address, c.address), (4_000, 3_000, 3_000),
        aggregation_millis=790), sender=aggregator)
    for p in (a, b, c):  # rewards are credited at finalization and minted on claim
        ledger.claim_rewards(done, sender=p)

    plaintext_hash = hashlib.sha256(b"fairfl app test model").digest()
    model_id, _ = market.list_task_model(done, CID_ENCRYPTED, CID_SPEC, plaintext_hash, PRICE,
                                         sender=owner)
    token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
    token.mint(buyer, 1_000 * UNIT, sender=owner)
    token.approve(market.address, PRICE, sender=buyer)
    market.buy(model_id, PRICE, bytes(range(32)), sender=buyer)

    open_spec = TaskSpec(model_cid=CID_MODEL, spec_cid=CID_SPEC, metric="f1_macro",
                         aggregator=aggregator.address, rounds=3, min_participants=2,
                         submission_window=500, training_mode=TrainingMode.PLAIN,
                         reward_per_round=500 * UNIT)
    still_open, _ = ledger.create_task(open_spec, sender=owner)
    for p in (a, b):
        ledger.join(still_open, sender=p)
    open_round, _ = ledger.start_round(still_open, CID_WORKLOAD, sender=aggregator)
    ledger.submit_update(still_open, open_round, f"{CID_UPDATE}9", 640, 3_900, sender=a)

    everyone = (a, b, c, d)
    earned = ledger.contributions(done)
    return Story(
        owner=owner.address, aggregator=aggregator.address,
        trainers=(a.address, b.address, c.address), banned=d.address, buyer=buyer.address,
        completed_task=done, open_task=still_open, model_id=model_id,
        final_model_cid=CID_ROUND_2,
        reputation_pct=tuple(registry.participant(p).reputation_bps / 100 for p in everyone),
        flt_balance=tuple(token.balance_of(p) / UNIT for p in everyone),
        earned_flt=tuple(earned[p.address] / UNIT for p in (a, b, c)),
        shares_pct=tuple(s / 100 for s in market.listing(model_id).shares_bps),
    )
