"""ParticipantRegistry: registration, EWMA reputation, rejection window and blacklist.

Round outcomes are mostly reported by ``reporter``, a plain account the governance grants
``LEDGER_ROLE`` to, so that every number is chosen by the test; the automatic blacklist is also
driven once through the real TaskLedger.
"""

from __future__ import annotations

import ape
import pytest
from conftest import (
    CID_NEW_MODEL,
    CID_ROUND_EVIDENCE,
    CID_SPEC,
    CID_UPDATE,
    CID_WORKLOAD,
    POLICY,
    PPM,
    REASON_NORM_OUTLIER,
    reverts,
    round_result,
)

CID_META = CID_SPEC
CID_META_NEW = "bafkreif7tq2x5x3pqcqjcaxmqzv6rasfh3z5h7ttpjg4u2nkwuz6b2xmli"
CID_EVIDENCE = "bafkreiexvidencexvidencexvidencexvidencexvidencexvidencexv"
ZERO_ADDRESS = "0x" + "00" * 20
ALPHA = POLICY.alpha_bps  # 2_000
MAX_REJECTIONS = POLICY.max_rejections  # 3
WINDOW = POLICY.window_blocks  # 100


# --- helpers ------------------------------------------------------------------------------


def emitted(tx, event):
    """Arguments of every ``event`` log of ``tx``, in order, as plain dicts."""
    return [dict(log.event_arguments) for log in tx.events.filter(event)]


def next_tx_at(chain, block_number):
    """Mines empty blocks so that the next transaction is included in ``block_number``."""
    gap = block_number - chain.blocks.head.number - 1
    assert gap >= 0, "that block is already mined"
    if gap:
        chain.mine(gap)


def ewma(old, outcome, alpha=ALPHA):
    return (old * (10_000 - alpha) + outcome * alpha) // 10_000


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def reporter(registry, owner, stranger):
    """Stands in for the ledger: holds LEDGER_ROLE and nothing else."""
    registry.grantRole(registry.LEDGER_ROLE(), stranger, sender=owner)
    return stranger


@pytest.fixture
def alice(registry, trainers):
    registry.register(CID_META, sender=trainers[0])
    return trainers[0]


@pytest.fixture
def bob(registry, trainers):
    registry.register(CID_META, sender=trainers[1])
    return trainers[1]


VALIDATION = 9  # a rejection reason code (ITaskLedger.RoundResult.reasons)


def round_record(accepted=(), outcomes=(), rejected=(), task_id=1, round_number=1,
                 aggregator=None, reasons=None):
    """An IParticipantRegistry.RoundRecord as a dict (accounts or addresses)."""
    return {
        "taskId": task_id,
        "round": round_number,
        "aggregator": str(getattr(aggregator, "address", aggregator or ZERO_ADDRESS)),
        "evidenceCid": CID_ROUND_EVIDENCE,
        "accepted": [getattr(a, "address", a) for a in accepted],
        "outcomesBps": list(outcomes),
        "rejected": [getattr(a, "address", a) for a in rejected],
        "reasons": [VALIDATION] * len(rejected) if reasons is None else list(reasons),
    }


@pytest.fixture
def record(registry, reporter, aggregator):
    """``record(accepted=..., outcomes=..., rejected=...)`` reports a round as ``reporter``,
    finalized by ``aggregator``."""

    def _record(accepted=(), outcomes=(), rejected=(), task_id=1, round_number=1):
        return registry.recordRound(
            round_record(accepted, outcomes, rejected, task_id, round_number, aggregator),
            sender=reporter,
        )

    return _record


# --- register -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cid",
    [CID_META, "Qm", "ipfs://" + "x" * 200, "bafy-ünïcødé-✓"],
    ids=["cidv1", "short", "multi-slot", "unicode"],
)
def test_register_stores_participant_and_emits_event(registry, trainers, cid):
    account = trainers[0]
    tx = registry.register(cid, sender=account)

    assert emitted(tx, registry.ParticipantRegistered) == [
        {"account": account.address, "metadataCid": cid, "reputationBps": 5_000}
    ]
    assert registry.metadataOf(account) == cid
    p = registry.participant(account)
    assert (p.registered, p.blacklisted, p.reputationBps) == (True, False, 5_000)
    assert (p.rejectionsInWindow, p.windowStartBlock, p.acceptedUpdates, p.rejectedUpdates) == (
        0,
        0,
        0,
        0,
    )
    assert registry.reputationOf(account) == registry.INITIAL_REPUTATION_BPS() == 5_000


def test_register_appends_to_participant_list_in_order(registry, trainers):
    assert registry.participantCount() == 0
    for account in (trainers[2], trainers[0], trainers[1]):
        registry.register(CID_META, sender=account)

    assert registry.participantCount() == 3
    assert [registry.participantAt(i) for i in range(3)] == [
        trainers[2].address,
        trainers[0].address,
        trainers[1].address,
    ]


def test_participant_at_out_of_range_reverts(registry, alice):
    with ape.reverts():
        registry.participantAt(1)


def test_register_twice_reverts_already_registered(registry, alice):
    with reverts(registry.ParticipantRegistryAlreadyRegistered, account=alice):
        registry.register(CID_META_NEW, sender=alice)
    assert registry.metadataOf(alice) == CID_META
    assert registry.participantCount() == 1


def test_register_with_empty_cid_reverts(registry, trainers):
    with reverts(registry.ParticipantRegistryEmptyCid):
        registry.register("", sender=trainers[0])
    assert not registry.participant(trainers[0]).registered
    assert registry.participantCount() == 0


def test_blacklisted_address_cannot_register(registry, owner, attacker):
    registry.blacklist(attacker, CID_EVIDENCE, sender=owner)
    with reverts(registry.ParticipantRegistryBlacklisted, account=attacker):
        registry.register(CID_META, sender=attacker)
    assert registry.participantCount() == 0


def test_blacklisted_participant_registering_again_gets_blacklisted_error(registry, owner, alice):
    registry.blacklist(alice, CID_EVIDENCE, sender=owner)
    # The blacklist check comes before the duplicate check.
    with reverts(registry.ParticipantRegistryBlacklisted, account=alice):
        registry.register(CID_META, sender=alice)


# --- updateMetadata -----------------------------------------------------------------------


def test_update_metadata_replaces_cid_and_emits_event(registry, alice):
    tx = registry.updateMetadata(CID_META_NEW, sender=alice)

    assert emitted(tx, registry.MetadataUpdated) == [
        {"account": alice.address, "metadataCid": CID_META_NEW}
    ]
    assert registry.metadataOf(alice) == CID_META_NEW
    assert registry.participantCount() == 1
    assert registry.reputationOf(alice) == 5_000


def test_update_metadata_unregistered_reverts(registry, stranger):
    with reverts(registry.ParticipantRegistryNotRegistered, account=stranger):
        registry.updateMetadata(CID_META, sender=stranger)


def test_update_metadata_with_empty_cid_reverts(registry, alice):
    with reverts(registry.ParticipantRegistryEmptyCid):
        registry.updateMetadata("", sender=alice)
    assert registry.metadataOf(alice) == CID_META


def test_update_metadata_blacklisted_reverts(registry, owner, alice):
    registry.blacklist(alice, CID_EVIDENCE, sender=owner)
    with reverts(registry.ParticipantRegistryBlacklisted, account=alice):
        registry.updateMetadata(CID_META_NEW, sender=alice)
    assert registry.metadataOf(alice) == CID_META


# --- recordRound: reputation --------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome, expected",
    [
        (10_000, 6_000),  # 5000 * 0.8 + 10000 * 0.2
        (7_000, 5_400),
        (5_000, 5_000),
        (0, 4_000),
        (3, 4_000),  # 4000.6 is floored, not rounded
    ],
)
def test_accepted_update_moves_reputation_by_ewma(registry, record, alice, outcome, expected):
    tx = record(accepted=[alice], outcomes=[outcome], task_id=7, round_number=3)

    assert registry.reputationOf(alice) == expected
    assert emitted(tx, registry.ReputationUpdated) == [
        {
            "account": alice.address,
            "taskId": 7,
            "round": 3,
            "outcomeBps": outcome,
            "oldBps": 5_000,
            "newBps": expected,
        }
    ]
    assert emitted(tx, registry.UpdateRejected) == []
    p = registry.participant(alice)
    assert (p.acceptedUpdates, p.rejectedUpdates, p.rejectionsInWindow) == (1, 0, 0)


def test_reputation_compounds_over_rounds(registry, record, alice):
    # 5000 -> 6000 -> 6800 -> 5440 (rejected: target 0) -> 6352
    for round_number, (accepted, outcome, expected) in enumerate(
        [(True, 10_000, 6_000), (True, 10_000, 6_800), (False, 0, 5_440), (True, 10_000, 6_352)],
        start=1,
    ):
        if accepted:
            record(accepted=[alice], outcomes=[outcome], round_number=round_number)
        else:
            record(rejected=[alice], round_number=round_number)
        assert registry.reputationOf(alice) == expected


def test_rejected_update_moves_reputation_toward_zero_and_counts(registry, record, alice,
                                                                aggregator):
    tx = record(rejected=[alice], task_id=4, round_number=2)

    assert registry.reputationOf(alice) == 4_000
    assert emitted(tx, registry.ReputationUpdated) == [
        {
            "account": alice.address,
            "taskId": 4,
            "round": 2,
            "outcomeBps": 0,
            "oldBps": 5_000,
            "newBps": 4_000,
        }
    ]
    assert emitted(tx, registry.UpdateRejected) == [
        {"account": alice.address, "taskId": 4, "round": 2, "aggregator": aggregator.address,
         "reason": VALIDATION, "rejectionsInWindow": 1, "evidenceCid": CID_ROUND_EVIDENCE}
    ]
    assert emitted(tx, registry.Blacklisted) == []
    p = registry.participant(alice)
    assert (p.acceptedUpdates, p.rejectedUpdates) == (0, 1)
    assert (p.rejectionsInWindow, p.windowStartBlock) == (1, tx.block_number)


def test_record_round_handles_several_accounts_in_order(registry, record, alice, bob, trainers):
    carol = trainers[2]
    registry.register(CID_META, sender=carol)

    tx = record(accepted=[alice, bob], outcomes=[10_000, 2_500], rejected=[carol])

    assert [e["account"] for e in emitted(tx, registry.ReputationUpdated)] == [
        alice.address,
        bob.address,
        carol.address,
    ]
    assert [registry.reputationOf(a) for a in (alice, bob, carol)] == [6_000, 4_500, 4_000]
    assert [e["account"] for e in emitted(tx, registry.UpdateRejected)] == [carol.address]


def test_counters_track_accepted_and_rejected_updates(registry, record, alice, bob):
    record(accepted=[alice, bob], outcomes=[9_000, 9_000])
    record(accepted=[alice], outcomes=[9_000], rejected=[bob])
    record(accepted=[alice], outcomes=[0])

    a, b = registry.participant(alice), registry.participant(bob)
    assert (a.acceptedUpdates, a.rejectedUpdates) == (3, 0)
    assert (b.acceptedUpdates, b.rejectedUpdates) == (1, 1)


def test_new_alpha_applies_to_later_rounds(registry, record, owner, alice, bob):
    registry.setPolicy((10_000, MAX_REJECTIONS, WINDOW), sender=owner)
    record(accepted=[alice], outcomes=[7_300])
    assert registry.reputationOf(alice) == 7_300  # alpha 100 %: the outcome replaces the reputation

    registry.setPolicy((1, MAX_REJECTIONS, WINDOW), sender=owner)
    record(accepted=[bob], outcomes=[10_000])
    assert registry.reputationOf(bob) == ewma(5_000, 10_000, alpha=1) == 5_000


@pytest.mark.parametrize("accepted, outcomes", [(2, 1), (1, 2), (0, 1)])
def test_record_round_length_mismatch_reverts(registry, reporter, trainers, accepted, outcomes):
    with reverts(
        registry.ParticipantRegistryLengthMismatch, accounts=accepted, outcomes=outcomes
    ):
        registry.recordRound(
            round_record(trainers[:accepted], [5_000] * outcomes), sender=reporter
        )


def test_record_round_outcome_above_10000_reverts(registry, record, alice, bob):
    with reverts(registry.ParticipantRegistryInvalidOutcome, outcomeBps=10_001):
        record(accepted=[alice, bob], outcomes=[10_000, 10_001])
    assert registry.reputationOf(alice) == 5_000  # the whole round reverted


@pytest.mark.parametrize("caller", ["owner", "attacker", "aggregator"])
def test_record_round_requires_ledger_role(registry, alice, caller, request):
    account = request.getfixturevalue(caller)
    with reverts(
        registry.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=registry.LEDGER_ROLE(),
    ):
        registry.recordRound(round_record([alice], [10_000]), sender=account)


def test_accepted_blacklisted_account_reverts_whole_round(registry, record, owner, alice, bob):
    registry.blacklist(bob, CID_EVIDENCE, sender=owner)
    with reverts(registry.ParticipantRegistryBlacklisted, account=bob):
        record(accepted=[alice, bob], outcomes=[10_000, 10_000])
    assert registry.reputationOf(alice) == 5_000
    assert registry.reputationOf(bob) == 5_000
    assert registry.participant(alice).acceptedUpdates == 0


def test_empty_round_changes_nothing(registry, record, alice):
    tx = record()
    assert list(tx.events) == []
    assert registry.reputationOf(alice) == 5_000


# --- automatic blacklist ------------------------------------------------------------------


def test_third_rejection_in_window_blacklists_automatically(registry, record, aggregator, alice):
    first = record(rejected=[alice], round_number=1)
    second = record(rejected=[alice], round_number=2)
    assert not registry.isBlacklisted(alice)
    assert emitted(second, registry.UpdateRejected)[0]["rejectionsInWindow"] == 2
    assert emitted(second, registry.Blacklisted) == []

    third = record(rejected=[alice], round_number=3)

    assert emitted(third, registry.UpdateRejected) == [
        {"account": alice.address, "taskId": 1, "round": 3, "aggregator": aggregator.address,
         "reason": VALIDATION, "rejectionsInWindow": 3, "evidenceCid": CID_ROUND_EVIDENCE}
    ]
    assert emitted(third, registry.Blacklisted) == [
        {"account": alice.address, "by": aggregator.address, "taskId": 1, "round": 3,
         "automatic": True, "evidenceCid": CID_ROUND_EVIDENCE}
    ]
    assert [log.event_name for log in third.events] == [
        "ReputationUpdated",
        "UpdateRejected",
        "Blacklisted",
    ]
    assert registry.isBlacklisted(alice)
    assert not registry.isActive(alice)
    p = registry.participant(alice)
    assert (p.rejectionsInWindow, p.windowStartBlock, p.rejectedUpdates) == (
        3,
        first.block_number,
        3,
    )
    assert p.reputationBps == 2_560  # 5000 -> 4000 -> 3200 -> 2560


HELD_BACK = 13  # ParticipantRegistry.HELD_BACK


def test_held_back_updates_are_recorded_but_neither_counted_nor_penalised(
        registry, reporter, aggregator, alice):
    assert registry.HELD_BACK() == HELD_BACK
    record = round_record(rejected=[alice] * (MAX_REJECTIONS + 1), aggregator=aggregator,
                          reasons=[HELD_BACK] * (MAX_REJECTIONS + 1))
    tx = registry.recordRound(record, sender=reporter)

    assert emitted(tx, registry.UpdateRejected) == [
        {"account": alice.address, "taskId": 1, "round": 1, "aggregator": aggregator.address,
         "reason": HELD_BACK, "rejectionsInWindow": 0, "evidenceCid": CID_ROUND_EVIDENCE}
    ] * (MAX_REJECTIONS + 1)
    assert emitted(tx, registry.ReputationUpdated) == []
    assert emitted(tx, registry.Blacklisted) == []
    assert not registry.isBlacklisted(alice)
    assert registry.reputationOf(alice) == 5_000
    p = registry.participant(alice)
    assert (p.rejectedUpdates, p.rejectionsInWindow, p.windowStartBlock) == (
        MAX_REJECTIONS + 1, 0, 0)


def test_held_back_leaves_an_open_window_as_it_is(registry, reporter, aggregator, record,
                                                  alice):
    first = record(rejected=[alice], round_number=1)
    second = record(rejected=[alice], round_number=2)
    held = registry.recordRound(round_record(rejected=[alice], round_number=3,
                                             aggregator=aggregator, reasons=[HELD_BACK]),
                                sender=reporter)
    assert emitted(held, registry.UpdateRejected)[0]["rejectionsInWindow"] == 2
    p = registry.participant(alice)
    assert (p.rejectionsInWindow, p.windowStartBlock) == (2, first.block_number)
    assert registry.reputationOf(alice) == 3_200  # 5000 -> 4000 -> 3200, not moved by 3
    assert not registry.isBlacklisted(alice)
    third = record(rejected=[alice], round_number=4)  # the next counted rejection bans
    assert len(emitted(third, registry.Blacklisted)) == 1
    assert second.block_number < third.block_number


def test_repeated_rejection_in_one_round_blacklists(registry, record, reporter, alice):
    tx = record(rejected=[alice] * MAX_REJECTIONS)
    assert [e["rejectionsInWindow"] for e in emitted(tx, registry.UpdateRejected)] == [1, 2, 3]
    assert len(emitted(tx, registry.Blacklisted)) == 1
    assert registry.isBlacklisted(alice)


def test_rejections_of_other_accounts_do_not_add_up(registry, record, alice, bob, trainers):
    carol = trainers[2]
    record(rejected=[alice, bob, carol])
    record(rejected=[alice, bob])
    assert [registry.participant(a).rejectionsInWindow for a in (alice, bob, carol)] == [2, 2, 1]
    assert not any(registry.isBlacklisted(a) for a in (alice, bob, carol))


def test_rejection_on_last_block_of_window_still_counts(registry, record, chain, alice):
    first = record(rejected=[alice])
    record(rejected=[alice])
    next_tx_at(chain, first.block_number + WINDOW - 1)

    last = record(rejected=[alice])

    assert last.block_number == first.block_number + WINDOW - 1
    assert emitted(last, registry.UpdateRejected)[0]["rejectionsInWindow"] == 3
    assert registry.isBlacklisted(alice)


def test_rejection_after_window_closes_opens_new_window(registry, record, chain, alice):
    first = record(rejected=[alice])
    record(rejected=[alice])
    next_tx_at(chain, first.block_number + WINDOW)

    late = record(rejected=[alice])

    assert emitted(late, registry.UpdateRejected)[0]["rejectionsInWindow"] == 1
    assert emitted(late, registry.Blacklisted) == []
    assert not registry.isBlacklisted(alice)
    p = registry.participant(alice)
    assert (p.rejectionsInWindow, p.windowStartBlock, p.rejectedUpdates) == (
        1,
        late.block_number,
        3,
    )


def test_rejections_spread_beyond_window_never_blacklist(registry, record, chain, alice):
    for _ in range(MAX_REJECTIONS + 2):
        tx = record(rejected=[alice])
        assert emitted(tx, registry.UpdateRejected)[0]["rejectionsInWindow"] == 1
        chain.mine(WINDOW)
    assert not registry.isBlacklisted(alice)
    assert registry.participant(alice).rejectedUpdates == MAX_REJECTIONS + 2


def test_rejection_of_blacklisted_account_counts_without_second_blacklisting(
    registry, record, owner, alice
):
    registry.blacklist(alice, CID_EVIDENCE, sender=owner)
    record(rejected=[alice])
    record(rejected=[alice])
    tx = record(rejected=[alice])
    assert emitted(tx, registry.UpdateRejected)[0]["rejectionsInWindow"] == 3
    assert emitted(tx, registry.Blacklisted) == []
    assert registry.participant(alice).rejectedUpdates == 3


def test_lower_max_rejections_blacklists_on_first_rejection(
    registry, record, owner, aggregator, alice
):
    registry.setPolicy((ALPHA, 1, WINDOW), sender=owner)
    tx = record(rejected=[alice])
    assert emitted(tx, registry.Blacklisted) == [
        {"account": alice.address, "by": aggregator.address, "taskId": 1, "round": 1,
         "automatic": True, "evidenceCid": CID_ROUND_EVIDENCE}
    ]


def test_ledger_rejections_blacklist_automatically(
    registry, ledger, tasks, aggregator, trainers, attacker
):
    """Three rounds of one task, each rejecting the attacker, through TaskLedger.finalizeRound."""
    honest = trainers[0]
    task_id = tasks.started([honest, attacker], rounds=MAX_REJECTIONS, minParticipants=1)
    for round_number in range(1, MAX_REJECTIONS + 1):
        if round_number > 1:
            # each round starts on the previous round's model (round_result's CID_NEW_MODEL)
            ledger.startRound(task_id, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
        for i, account in enumerate((honest, attacker)):
            ledger.submitUpdate(
                task_id, round_number, f"{CID_UPDATE}{i}", 100, 5_000, "", sender=account
            )
        tx = ledger.finalizeRound(
            task_id,
            round_number,
            round_result(contributors=[honest], scores=[PPM], rejected=[attacker]),
            sender=aggregator,
        )
        assert emitted(tx, registry.UpdateRejected) == [
            {
                "account": attacker.address,
                "taskId": task_id,
                "round": round_number,
                "aggregator": aggregator.address,
                "reason": REASON_NORM_OUTLIER,
                "rejectionsInWindow": round_number,
                "evidenceCid": CID_ROUND_EVIDENCE,
            }
        ]

    # The blacklisting names the aggregator (not the ledger), the task, the round and its evidence.
    assert emitted(tx, registry.Blacklisted) == [
        {"account": attacker.address, "by": aggregator.address, "taskId": task_id,
         "round": MAX_REJECTIONS, "automatic": True, "evidenceCid": CID_ROUND_EVIDENCE}
    ]
    assert registry.isBlacklisted(attacker)
    assert not registry.isActive(attacker)
    assert registry.reputationOf(attacker) == 2_560
    assert registry.reputationOf(honest) == 7_440  # 5000 -> 6000 -> 6800 -> 7440
    assert registry.participant(honest).acceptedUpdates == 3


# --- blacklist (manual) -------------------------------------------------------------------


def test_governance_blacklists_with_evidence(registry, owner, alice):
    tx = registry.blacklist(alice, CID_EVIDENCE, sender=owner)

    assert emitted(tx, registry.Blacklisted) == [
        {
            "account": alice.address,
            "by": owner.address,
            "taskId": 0,
            "round": 0,
            "automatic": False,
            "evidenceCid": CID_EVIDENCE,
        }
    ]
    assert registry.isBlacklisted(alice)
    assert not registry.isActive(alice)
    p = registry.participant(alice)
    assert (p.registered, p.blacklisted, p.reputationBps) == (True, True, 5_000)


def test_blacklisting_unregistered_address_works(registry, owner, stranger):
    tx = registry.blacklist(stranger, CID_EVIDENCE, sender=owner)

    assert emitted(tx, registry.Blacklisted)[0]["account"] == stranger.address
    assert registry.isBlacklisted(stranger)
    p = registry.participant(stranger)
    assert (p.registered, p.blacklisted) == (False, True)
    assert registry.participantCount() == 0


def test_blacklist_with_empty_evidence_reverts(registry, owner, alice):
    with reverts(registry.ParticipantRegistryEmptyCid):
        registry.blacklist(alice, "", sender=owner)
    assert not registry.isBlacklisted(alice)


def test_blacklist_twice_reverts(registry, owner, alice):
    registry.blacklist(alice, CID_EVIDENCE, sender=owner)
    with reverts(registry.ParticipantRegistryBlacklisted, account=alice):
        registry.blacklist(alice, CID_EVIDENCE, sender=owner)


def test_blacklist_after_automatic_blacklist_reverts(registry, record, owner, alice):
    record(rejected=[alice] * MAX_REJECTIONS)
    with reverts(registry.ParticipantRegistryBlacklisted, account=alice):
        registry.blacklist(alice, CID_EVIDENCE, sender=owner)


@pytest.mark.parametrize("caller", ["attacker", "reporter"])
def test_blacklist_requires_governance_role(registry, alice, caller, request):
    account = request.getfixturevalue(caller)
    with reverts(
        registry.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=registry.GOVERNANCE_ROLE(),
    ):
        registry.blacklist(alice, CID_EVIDENCE, sender=account)
    assert not registry.isBlacklisted(alice)


# --- liftBlacklist ------------------------------------------------------------------------


def test_lift_blacklist_clears_window_and_keeps_reputation(registry, record, owner, alice):
    record(rejected=[alice] * MAX_REJECTIONS)
    before = registry.participant(alice)
    assert (before.blacklisted, before.rejectionsInWindow) == (True, 3)
    assert before.windowStartBlock != 0

    tx = registry.liftBlacklist(alice, sender=owner)

    assert emitted(tx, registry.BlacklistLifted) == [
        {"account": alice.address, "by": owner.address}
    ]
    after = registry.participant(alice)
    assert (after.blacklisted, after.rejectionsInWindow, after.windowStartBlock) == (False, 0, 0)
    assert after.reputationBps == before.reputationBps == 2_560
    assert (after.registered, after.acceptedUpdates, after.rejectedUpdates) == (True, 0, 3)
    assert registry.isActive(alice)


def test_lifted_participant_starts_a_fresh_window(registry, record, owner, alice):
    record(rejected=[alice] * MAX_REJECTIONS)
    registry.liftBlacklist(alice, sender=owner)

    tx = record(rejected=[alice])

    assert emitted(tx, registry.UpdateRejected)[0]["rejectionsInWindow"] == 1
    assert not registry.isBlacklisted(alice)


def test_lifted_participant_can_be_recorded_and_update_metadata(registry, record, owner, alice):
    registry.blacklist(alice, CID_EVIDENCE, sender=owner)
    registry.liftBlacklist(alice, sender=owner)

    record(accepted=[alice], outcomes=[10_000])
    registry.updateMetadata(CID_META_NEW, sender=alice)
    assert registry.reputationOf(alice) == 6_000
    assert registry.metadataOf(alice) == CID_META_NEW


@pytest.mark.parametrize("blacklisted_before", [False, True], ids=["never", "already-lifted"])
def test_lift_blacklist_not_blacklisted_reverts(registry, owner, alice, blacklisted_before):
    if blacklisted_before:
        registry.blacklist(alice, CID_EVIDENCE, sender=owner)
        registry.liftBlacklist(alice, sender=owner)
    with reverts(registry.ParticipantRegistryNotBlacklisted, account=alice):
        registry.liftBlacklist(alice, sender=owner)


@pytest.mark.parametrize("caller", ["attacker", "reporter"])
def test_lift_blacklist_requires_governance_role(registry, owner, attacker, caller, request):
    account = request.getfixturevalue(caller)
    registry.blacklist(attacker, CID_EVIDENCE, sender=owner)
    with reverts(
        registry.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=registry.GOVERNANCE_ROLE(),
    ):
        registry.liftBlacklist(attacker, sender=account)
    assert registry.isBlacklisted(attacker)


# --- setPolicy ----------------------------------------------------------------------------


def test_initial_policy_is_the_deployed_one(registry):
    p = registry.policy()
    assert (p.alphaBps, p.maxRejections, p.windowBlocks) == POLICY.as_tuple()


@pytest.mark.parametrize("new_policy", [(1, 1, 1), (10_000, 2**32 - 1, 2**64 - 1), (3_500, 5, 50)])
def test_set_policy_updates_and_emits(registry, owner, new_policy):
    tx = registry.setPolicy(new_policy, sender=owner)

    alpha, max_rejections, window = new_policy
    assert emitted(tx, registry.PolicyUpdated) == [
        {"alphaBps": alpha, "maxRejections": max_rejections, "windowBlocks": window}
    ]
    p = registry.policy()
    assert (p.alphaBps, p.maxRejections, p.windowBlocks) == new_policy


@pytest.mark.parametrize(
    "bad_policy",
    [(0, 3, 100), (10_001, 3, 100), (2**16 - 1, 3, 100), (2_000, 0, 100), (2_000, 3, 0)],
    ids=["alpha-zero", "alpha-above-max", "alpha-uint16-max", "max-rejections-zero", "window-zero"],
)
def test_set_policy_rejects_out_of_range_values(registry, owner, bad_policy):
    alpha, max_rejections, window = bad_policy
    with reverts(
        registry.ParticipantRegistryInvalidPolicy,
        alphaBps=alpha,
        maxRejections=max_rejections,
        windowBlocks=window,
    ):
        registry.setPolicy(bad_policy, sender=owner)
    p = registry.policy()
    assert (p.alphaBps, p.maxRejections, p.windowBlocks) == POLICY.as_tuple()


@pytest.mark.parametrize("caller", ["attacker", "reporter"])
def test_set_policy_requires_governance_role(registry, caller, request):
    account = request.getfixturevalue(caller)
    with reverts(
        registry.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=registry.GOVERNANCE_ROLE(),
    ):
        registry.setPolicy((5_000, 1, 1), sender=account)


# --- views --------------------------------------------------------------------------------


def test_views_of_unknown_address_are_zero(registry, stranger):
    p = registry.participant(stranger)
    assert (p.registered, p.blacklisted, p.reputationBps) == (False, False, 0)
    assert (p.rejectionsInWindow, p.windowStartBlock, p.acceptedUpdates, p.rejectedUpdates) == (
        0,
        0,
        0,
        0,
    )
    assert registry.metadataOf(stranger) == ""
    assert registry.reputationOf(stranger) == 0
    assert not registry.isBlacklisted(stranger)
    assert not registry.isActive(stranger)
    assert registry.participant(ZERO_ADDRESS).registered is False


def test_is_active_follows_registration_and_blacklist(registry, owner, trainers):
    account = trainers[0]
    assert not registry.isActive(account)
    registry.register(CID_META, sender=account)
    assert registry.isActive(account)
    assert not registry.isBlacklisted(account)
    registry.blacklist(account, CID_EVIDENCE, sender=owner)
    assert not registry.isActive(account)
    assert registry.isBlacklisted(account)


def test_roles_are_wired_to_governance_and_ledger(registry, owner, ledger, stranger):
    assert registry.hasRole(registry.GOVERNANCE_ROLE(), owner)
    assert registry.hasRole(registry.DEFAULT_ADMIN_ROLE(), owner)
    assert registry.hasRole(registry.LEDGER_ROLE(), ledger)
    assert not registry.hasRole(registry.LEDGER_ROLE(), owner)
    assert not registry.hasRole(registry.GOVERNANCE_ROLE(), stranger)
