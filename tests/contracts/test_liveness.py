"""A task can always move on, a rejection is accountable, and no policy bricks a round.

Each test here failed on the contracts before issue 10: a task whose aggregator went offline
or was blacklisted could never finish, members that never trained (and, until the quorum
counted accepted updates only, sybils that sent junk) made a quorum, a
blacklisting named the ledger and no evidence and could not be appealed, a window of 2^64 - 1
blocks reverted every round that rejected a participant twice, and a task could promise more
FLT than the token will ever mint.
"""

from __future__ import annotations

import pytest
from conftest import (
    CID_MODEL,
    CID_NEW_MODEL,
    CID_ROUND_EVIDENCE,
    CID_UPDATE,
    CID_WORKLOAD,
    POLICY,
    PPM,
    REASON_NORM_OUTLIER,
    UNIT,
    reverts,
    round_result,
)

# enum TaskStatus / RoundStatus / AppealStatus
OPEN, COMPLETED, CANCELLED = 1, 2, 3
FINALIZED, CLOSED = 2, 3
APPEAL_NONE, PENDING, GRANTED, DENIED = 0, 1, 2, 3
CID_STATEMENT = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqstatem"
CID_DECISION = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqdecisi"
REWARD = 1_000 * UNIT  # task_config's rewardPerRound


def submit(ledger, task_id, round_number, *participants):
    for i, p in enumerate(participants):
        ledger.submitUpdate(task_id, round_number, f"{CID_UPDATE}{i}", 100, 5_000, "", sender=p)


def finalize(ledger, sender, task_id, round_number, contributors, rejected=(),
             new_cid=CID_NEW_MODEL):
    scores = [PPM // len(contributors)] * len(contributors) if contributors else []
    return ledger.finalizeRound(
        task_id, round_number, round_result(new_cid, contributors, scores, rejected),
        sender=sender)


def past_deadline(chain, ledger, task_id, round_number, extra=0):
    """Mines until the next transaction lands ``extra`` blocks after the round's deadline + 1."""
    deadline = ledger.round(task_id, round_number).deadlineBlock
    gap = deadline + extra - chain.blocks.height
    if gap > 0:
        chain.mine(gap)


@pytest.fixture
def backup(buyer):
    """A second aggregator the task can be handed to (an account with no other part here)."""
    return buyer


# --- a new aggregator ----------------------------------------------------------------------


def test_governance_replaces_an_offline_aggregator_and_the_open_round_is_credited(
    tasks, ledger, registry, owner, aggregator, backup, trainers
):
    task_id = tasks.submitted(trainers[:2], rounds=1)  # the aggregator then goes silent

    tx = ledger.replaceAggregator(task_id, backup, sender=owner)

    assert [dict(e.event_arguments) for e in tx.events.filter(ledger.AggregatorReplaced)] == [
        {"taskId": task_id, "previous": aggregator.address, "aggregator": backup.address,
         "by": owner.address}]
    assert ledger.task(task_id).aggregator == backup.address
    with reverts(ledger.TaskLedgerNotAggregator, taskId=task_id, caller=aggregator):
        finalize(ledger, aggregator, task_id, 1, trainers[:2])
    finalize(ledger, backup, task_id, 1, trainers[:2])
    assert ledger.task(task_id).status == COMPLETED
    assert [ledger.claimable(task_id, t) for t in trainers[:2]] == [REWARD // 2] * 2


def test_a_blacklisted_aggregator_is_replaced_and_the_task_finishes(
    tasks, ledger, registry, owner, aggregator, backup, trainers
):
    task_id = tasks.submitted(trainers[:2], rounds=1)
    registry.blacklist(aggregator, CID_ROUND_EVIDENCE, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=aggregator):
        finalize(ledger, aggregator, task_id, 1, trainers[:2])

    ledger.replaceAggregator(task_id, backup, sender=owner)
    finalize(ledger, backup, task_id, 1, trainers[:2])

    assert ledger.task(task_id).status == COMPLETED


def test_the_creator_replaces_its_aggregator_only_after_the_delay(
    tasks, ledger, chain, owner, backup, trainers, stranger
):
    task_id = tasks.started(trainers[:2])
    # The creator is governance here too; a creator without governance must wait.
    creator = tasks.owner
    registry = tasks.registry
    registry.revokeRole(registry.GOVERNANCE_ROLE(), creator, sender=owner)
    delay = ledger.AGGREGATOR_DELAY()

    with reverts(ledger.TaskLedgerAggregatorNotReady, taskId=task_id, aggregator=backup,
                 readyTime=0):
        ledger.replaceAggregator(task_id, backup, sender=creator)
    tx = ledger.proposeAggregator(task_id, backup, sender=creator)
    ready = chain.blocks[tx.block_number].timestamp + delay
    assert [dict(e.event_arguments) for e in tx.events.filter(ledger.AggregatorProposed)] == [
        {"taskId": task_id, "aggregator": backup.address, "readyTime": ready}]
    for who in (stranger, backup):
        with reverts(ledger.TaskLedgerNotCreatorOrGovernance, taskId=task_id, caller=who):
            ledger.proposeAggregator(task_id, who, sender=who)
        with reverts(ledger.TaskLedgerNotCreatorOrGovernance, taskId=task_id, caller=who):
            ledger.replaceAggregator(task_id, backup, sender=who)
    chain.pending_timestamp = ready - 1  # the next transaction lands one second early
    with reverts(ledger.TaskLedgerAggregatorNotReady, taskId=task_id, aggregator=backup,
                 readyTime=ready):
        ledger.replaceAggregator(task_id, backup, sender=creator)

    chain.pending_timestamp = ready
    ledger.replaceAggregator(task_id, backup, sender=creator)

    assert ledger.task(task_id).aggregator == backup.address
    with reverts(ledger.TaskLedgerAggregatorNotReady, taskId=task_id, aggregator=backup,
                 readyTime=0):  # the proposal was used up
        ledger.replaceAggregator(task_id, backup, sender=creator)


def test_no_task_is_handed_to_nobody_or_to_a_blacklisted_aggregator(
    tasks, ledger, registry, owner, attacker, trainers
):
    task_id = tasks.started(trainers[:2])
    with reverts(ledger.TaskLedgerInvalidConfig, field="aggregator"):
        ledger.replaceAggregator(task_id, "0x" + "00" * 20, sender=owner)
    registry.blacklist(attacker, CID_ROUND_EVIDENCE, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=attacker):
        ledger.replaceAggregator(task_id, attacker, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=attacker):
        ledger.proposeAggregator(task_id, attacker, sender=owner)


# --- closing a round -----------------------------------------------------------------------


def test_anyone_closes_a_round_its_aggregator_left_open_after_the_grace_period(
    tasks, ledger, chain, token, trainers, stranger
):
    task_id = tasks.submitted(trainers[:2], rounds=1)
    rnd = ledger.round(task_id, 1)
    grace_end = rnd.deadlineBlock + ledger.task(task_id).submissionWindow
    past_deadline(chain, ledger, task_id, 1, extra=ledger.task(task_id).submissionWindow - 1)
    with reverts(ledger.TaskLedgerTooEarlyToClose, taskId=task_id, round=1,
                 allowedAfter=grace_end):
        ledger.closeRound(task_id, 1, sender=stranger)

    tx = ledger.closeRound(task_id, 1, sender=stranger)

    assert [dict(e.event_arguments) for e in tx.events.filter(ledger.RoundClosed)] == [
        {"taskId": task_id, "round": 1, "by": stranger.address, "submissions": 2}]
    assert ledger.round(task_id, 1).status == CLOSED
    task = ledger.task(task_id)
    assert (task.status, task.finalizedRounds, task.totalRewarded) == (OPEN, 0, 0)
    assert task.globalModelHash == ledger.task(task_id).globalModelHash  # the model stays
    assert tx.events.filter(token.Transfer) == []
    with reverts(ledger.TaskLedgerRoundClosed, taskId=task_id, round=1):
        finalize(ledger, tasks.aggregator, task_id, 1, trainers[:2])


def test_a_closed_round_is_retried_and_the_task_completes_after_its_rounds_are_finalized(
    tasks, ledger, chain, aggregator, trainers
):
    task_id = tasks.submitted(trainers[:2], rounds=1)
    past_deadline(chain, ledger, task_id, 1)
    ledger.closeRound(task_id, 1, sender=aggregator)  # the aggregator need not wait for grace

    ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)  # same model
    submit(ledger, task_id, 2, *trainers[:2])
    finalize(ledger, aggregator, task_id, 2, trainers[:2])

    task = ledger.task(task_id)
    assert (task.status, task.currentRound, task.finalizedRounds) == (COMPLETED, 2, 1)
    assert task.totalRewarded == REWARD - REWARD % 2


def test_the_aggregator_cannot_close_a_round_before_its_deadline(
    tasks, ledger, aggregator, trainers
):
    task_id = tasks.submitted(trainers[:2])
    deadline = ledger.round(task_id, 1).deadlineBlock
    with reverts(ledger.TaskLedgerTooEarlyToClose, taskId=task_id, round=1,
                 allowedAfter=deadline):
        ledger.closeRound(task_id, 1, sender=aggregator)


# --- quorum --------------------------------------------------------------------------------


def test_members_that_never_train_do_not_make_a_quorum(
    tasks, ledger, chain, aggregator, trainers
):
    """Five sybils joined; one member trained. The round cannot be finalized with it alone."""
    task_id = tasks.started(trainers, minParticipants=3)
    submit(ledger, task_id, 1, trainers[0])

    with reverts(ledger.TaskLedgerQuorumNotReached, taskId=task_id, round=1, accepted=1,
                 required=3):
        finalize(ledger, aggregator, task_id, 1, trainers[:1])
    past_deadline(chain, ledger, task_id, 1)
    ledger.closeRound(task_id, 1, sender=aggregator)
    assert ledger.round(task_id, 1).status == CLOSED


def test_a_blacklisted_member_cannot_help_make_a_quorum(
    tasks, ledger, registry, owner, aggregator, trainers
):
    task_id = tasks.started(trainers[:2], minParticipants=2)
    registry.blacklist(trainers[1], CID_ROUND_EVIDENCE, sender=owner)
    submit(ledger, task_id, 1, trainers[0])
    with reverts(ledger.TaskLedgerBlacklisted, account=trainers[1]):
        ledger.submitUpdate(task_id, 1, CID_UPDATE, 100, 5_000, "", sender=trainers[1])
    with reverts(ledger.TaskLedgerQuorumNotReached, taskId=task_id, round=1, accepted=1,
                 required=2):
        finalize(ledger, aggregator, task_id, 1, trainers[:1])


def test_sybils_whose_updates_are_rejected_make_no_quorum(
    tasks, ledger, registry, token, aggregator, trainers
):
    """One member trains, two sybils send junk: three submissions, but the new model would be
    the honest member's update alone. The round cannot be finalized; the aggregator closes it
    with the sybils' rejections on record, and nobody is paid."""
    honest, *sybils = trainers[:3]
    task_id = tasks.started(trainers[:3], minParticipants=3, rounds=2)
    submit(ledger, task_id, 1, honest, *sybils)

    with reverts(ledger.TaskLedgerQuorumNotReached, taskId=task_id, round=1, accepted=1,
                 required=3):
        finalize(ledger, aggregator, task_id, 1, [honest], sybils)
    tx = ledger.closeRoundRejecting(task_id, 1, sybils, [REASON_NORM_OUTLIER] * 2,
                                    CID_ROUND_EVIDENCE, sender=aggregator)

    assert ledger.round(task_id, 1).status == CLOSED
    assert [dict(e.event_arguments) for e in tx.events.filter(ledger.RoundClosed)] == [
        {"taskId": task_id, "round": 1, "by": aggregator.address, "submissions": 3}]
    rejections = [dict(e.event_arguments) for e in tx.events.filter(registry.UpdateRejected)]
    assert [(r["account"], r["round"], r["aggregator"], r["evidenceCid"]) for r in rejections] \
        == [(s.address, 1, aggregator.address, CID_ROUND_EVIDENCE) for s in sybils]
    assert [registry.participant(s).rejectedUpdates for s in sybils] == [1, 1]
    assert registry.participant(honest).rejectedUpdates == 0
    assert [ledger.claimable(task_id, p) for p in trainers[:3]] == [0, 0, 0]
    assert ledger.task(task_id).finalizedRounds == 0
    # The next round opens on the model the closed round started from.
    ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)


def test_a_round_closed_short_of_its_quorum_blacklists_at_the_policy_threshold(
    tasks, ledger, registry, aggregator, trainers
):
    honest, sybil = trainers[:2]
    task_id = tasks.joined([honest, sybil], rounds=1, minParticipants=2)
    for round_number in range(1, POLICY.max_rejections + 1):
        ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
        submit(ledger, task_id, round_number, honest, sybil)
        tx = ledger.closeRoundRejecting(task_id, round_number, [sybil], [REASON_NORM_OUTLIER],
                                        CID_ROUND_EVIDENCE, sender=aggregator)
    assert registry.isBlacklisted(sybil) and not registry.isBlacklisted(honest)
    [blacklisting] = [dict(e.event_arguments) for e in tx.events.filter(registry.Blacklisted)]
    assert (blacklisting["by"], blacklisting["round"], blacklisting["automatic"]) == (
        aggregator.address, POLICY.max_rejections, True)


def test_a_round_is_closed_with_rejections_only_by_its_aggregator_once_it_may_be_judged(
    tasks, ledger, chain, aggregator, trainers, stranger
):
    """Before the quorum has submitted, members may still come: the aggregator must wait for
    the window, as with closeRound. Each rejected member must have submitted, once."""
    task_id = tasks.started(trainers[:3], minParticipants=3)
    submit(ledger, task_id, 1, *trainers[:2])
    deadline = ledger.round(task_id, 1).deadlineBlock
    with reverts(ledger.TaskLedgerTooEarlyToClose, taskId=task_id, round=1,
                 allowedAfter=deadline):
        ledger.closeRoundRejecting(task_id, 1, [trainers[1]], [REASON_NORM_OUTLIER],
                                   CID_ROUND_EVIDENCE, sender=aggregator)
    submit(ledger, task_id, 1, trainers[2])  # the quorum has submitted: judged at once
    with reverts(ledger.TaskLedgerNotAggregator, taskId=task_id, caller=stranger):
        ledger.closeRoundRejecting(task_id, 1, trainers[1:3], [REASON_NORM_OUTLIER] * 2,
                                   CID_ROUND_EVIDENCE, sender=stranger)
    with reverts(ledger.TaskLedgerNotSubmitted, taskId=task_id, round=1, participant=stranger):
        ledger.closeRoundRejecting(task_id, 1, [trainers[1], stranger],
                                   [REASON_NORM_OUTLIER] * 2, CID_ROUND_EVIDENCE,
                                   sender=aggregator)
    with reverts(ledger.TaskLedgerDuplicateParticipant, taskId=task_id, round=1,
                 participant=trainers[1]):
        ledger.closeRoundRejecting(task_id, 1, [trainers[1], trainers[1]],
                                   [REASON_NORM_OUTLIER] * 2, CID_ROUND_EVIDENCE,
                                   sender=aggregator)
    with reverts(ledger.TaskLedgerLengthMismatch, expected=2, actual=1):
        ledger.closeRoundRejecting(task_id, 1, trainers[1:3], [REASON_NORM_OUTLIER],
                                   CID_ROUND_EVIDENCE, sender=aggregator)
    with reverts(ledger.TaskLedgerEmptyCid):
        ledger.closeRoundRejecting(task_id, 1, trainers[1:3], [REASON_NORM_OUTLIER] * 2, "",
                                   sender=aggregator)
    ledger.closeRoundRejecting(task_id, 1, trainers[1:3], [REASON_NORM_OUTLIER] * 2,
                               CID_ROUND_EVIDENCE, sender=aggregator)
    with reverts(ledger.TaskLedgerRoundClosed, taskId=task_id, round=1):
        finalize(ledger, aggregator, task_id, 1, trainers[:3])
    # After the window, a round short of submissions is closed with its rejections too.
    ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    submit(ledger, task_id, 2, trainers[0])
    past_deadline(chain, ledger, task_id, 2)
    ledger.closeRoundRejecting(task_id, 2, [trainers[0]], [REASON_NORM_OUTLIER],
                               CID_ROUND_EVIDENCE, sender=aggregator)
    assert ledger.membership(task_id, trainers[0]).rejectedRounds == 1


# --- cancelling a task ---------------------------------------------------------------------


def test_a_cancelled_task_keeps_its_credits_claimable_and_frees_its_budget(
    tasks, ledger, token, owner, aggregator, trainers, stranger
):
    task_id = tasks.submitted(trainers[:2], rounds=3)
    finalize(ledger, aggregator, task_id, 1, trainers[:2])
    ledger.startRound(task_id, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
    with reverts(ledger.TaskLedgerNotCreatorOrGovernance, taskId=task_id, caller=stranger):
        ledger.cancelTask(task_id, sender=stranger)

    tx = ledger.cancelTask(task_id, sender=owner)

    assert [dict(e.event_arguments) for e in tx.events.filter(ledger.TaskCancelled)] == [
        {"taskId": task_id, "by": owner.address, "totalRewarded": REWARD}]
    assert ledger.task(task_id).status == CANCELLED
    assert ledger.round(task_id, 2).status == CLOSED
    for t in trainers[:2]:
        ledger.claimRewards(task_id, sender=t)
        assert token.balanceOf(t) == REWARD // 2
    with reverts(ledger.TaskLedgerTaskCancelled, taskId=task_id):
        ledger.join(task_id, sender=trainers[2])
    with reverts(ledger.TaskLedgerTaskCancelled, taskId=task_id):
        ledger.startRound(task_id, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
    with reverts(ledger.TaskLedgerTaskCancelled, taskId=task_id):
        ledger.cancelTask(task_id, sender=owner)


def test_task_budgets_are_reserved_under_the_token_cap(tasks, ledger, token, owner, aggregator):
    cap = token.cap()
    first = tasks.create(rounds=2, rewardPerRound=cap // 2)
    with reverts(ledger.TaskLedgerBudgetOverCap, requested=2, available=0):
        tasks.create(rounds=1, rewardPerRound=2)

    ledger.cancelTask(first, sender=owner)  # nothing was credited: the whole budget returns

    tasks.create(rounds=1, rewardPerRound=cap)


def test_the_cap_counts_tokens_minted_outside_the_ledger(tasks, ledger, token, owner, buyer):
    token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    token.mint(buyer, 10 * UNIT, sender=owner)
    available = token.cap() - 10 * UNIT
    with reverts(ledger.TaskLedgerBudgetOverCap, requested=available + 1, available=available):
        tasks.create(rounds=1, rewardPerRound=available + 1)
    tasks.create(rounds=1, rewardPerRound=available)


# --- accountable rejections and appeals ----------------------------------------------------


def rejected_until_blacklisted(tasks, ledger, aggregator, honest, cheat):
    task_id = tasks.joined([honest, cheat], rounds=POLICY.max_rejections, minParticipants=1)
    model = CID_MODEL
    for round_number in range(1, POLICY.max_rejections + 1):
        ledger.startRound(task_id, model, CID_WORKLOAD, sender=aggregator)
        submit(ledger, task_id, round_number, honest, cheat)
        model = f"{CID_NEW_MODEL}{round_number}"
        tx = finalize(ledger, aggregator, task_id, round_number, [honest], [cheat], model)
    return task_id, tx


def test_a_blacklisting_names_task_round_aggregator_reason_and_evidence(
    tasks, ledger, registry, aggregator, trainers
):
    honest, cheat = trainers[:2]
    task_id, tx = rejected_until_blacklisted(tasks, ledger, aggregator, honest, cheat)

    [rejection] = [dict(e.event_arguments) for e in tx.events.filter(registry.UpdateRejected)]
    assert rejection == {"account": cheat.address, "taskId": task_id,
                         "round": POLICY.max_rejections, "aggregator": aggregator.address,
                         "reason": REASON_NORM_OUTLIER,
                         "rejectionsInWindow": POLICY.max_rejections,
                         "evidenceCid": CID_ROUND_EVIDENCE}
    [blacklisting] = [dict(e.event_arguments) for e in tx.events.filter(registry.Blacklisted)]
    assert blacklisting == {"account": cheat.address, "by": aggregator.address,
                            "taskId": task_id, "round": POLICY.max_rejections,
                            "automatic": True, "evidenceCid": CID_ROUND_EVIDENCE}


def test_an_appeal_granted_by_governance_lifts_the_blacklisting(
    tasks, ledger, registry, owner, aggregator, trainers, stranger
):
    honest, cheat = trainers[:2]
    rejected_until_blacklisted(tasks, ledger, aggregator, honest, cheat)
    with reverts(registry.ParticipantRegistryNotBlacklisted, account=honest):
        registry.fileAppeal(CID_STATEMENT, sender=honest)
    with reverts(registry.ParticipantRegistryEmptyCid):
        registry.fileAppeal("", sender=cheat)

    tx = registry.fileAppeal(CID_STATEMENT, sender=cheat)

    assert [dict(e.event_arguments) for e in tx.events.filter(registry.AppealFiled)] == [
        {"account": cheat.address, "statementCid": CID_STATEMENT}]
    assert registry.appealOf(cheat) == PENDING
    with reverts(registry.ParticipantRegistryAlreadyAppealed, account=cheat, status=PENDING):
        registry.fileAppeal(CID_STATEMENT, sender=cheat)
    with reverts(registry.AccessControlUnauthorizedAccount, account=stranger,
                 neededRole=registry.GOVERNANCE_ROLE()):
        registry.resolveAppeal(cheat, True, CID_DECISION, sender=stranger)

    tx = registry.resolveAppeal(cheat, True, CID_DECISION, sender=owner)

    assert [dict(e.event_arguments) for e in tx.events.filter(registry.AppealResolved)] == [
        {"account": cheat.address, "by": owner.address, "granted": True,
         "decisionCid": CID_DECISION}]
    assert not registry.isBlacklisted(cheat)
    assert registry.participant(cheat).rejectionsInWindow == 0
    assert registry.appealOf(cheat) == GRANTED
    with reverts(registry.ParticipantRegistryNoPendingAppeal, account=cheat):
        registry.resolveAppeal(cheat, True, CID_DECISION, sender=owner)


def test_a_denied_appeal_keeps_the_blacklisting_and_a_new_blacklisting_can_be_appealed(
    tasks, ledger, registry, owner, aggregator, trainers
):
    honest, cheat = trainers[:2]
    rejected_until_blacklisted(tasks, ledger, aggregator, honest, cheat)
    registry.fileAppeal(CID_STATEMENT, sender=cheat)

    registry.resolveAppeal(cheat, False, CID_DECISION, sender=owner)

    assert registry.isBlacklisted(cheat)
    assert registry.appealOf(cheat) == DENIED
    with reverts(registry.ParticipantRegistryAlreadyAppealed, account=cheat, status=DENIED):
        registry.fileAppeal(CID_STATEMENT, sender=cheat)
    registry.liftBlacklist(cheat, sender=owner)
    registry.blacklist(cheat, CID_ROUND_EVIDENCE, sender=owner)
    assert registry.appealOf(cheat) == APPEAL_NONE
    registry.fileAppeal(CID_STATEMENT, sender=cheat)
    assert registry.appealOf(cheat) == PENDING


# --- policies that cannot brick finalize ---------------------------------------------------


def test_the_longest_rejection_window_does_not_overflow(
    tasks, ledger, registry, owner, aggregator, trainers
):
    """windowBlocks = 2^64 - 1 used to overflow on a participant's second rejection and revert
    every finalizeRound that rejected it."""
    registry.setPolicy((POLICY.alpha_bps, 3, 2**64 - 1), sender=owner)
    honest, cheat = trainers[:2]
    task_id = tasks.joined([honest, cheat], rounds=3, minParticipants=1)
    model = CID_MODEL
    for round_number in (1, 2, 3):
        ledger.startRound(task_id, model, CID_WORKLOAD, sender=aggregator)
        submit(ledger, task_id, round_number, honest, cheat)
        model = f"{CID_NEW_MODEL}{round_number}"
        finalize(ledger, aggregator, task_id, round_number, [honest], [cheat], model)

    assert registry.participant(cheat).rejectionsInWindow == 3
    assert registry.isBlacklisted(cheat)



def test_a_blacklisted_creator_cannot_cancel_but_governance_can(
    tasks, ledger, registry, owner, aggregator, trainers, stranger
):
    """Found by the lifecycle fuzz: a blacklisted creator could still cancel its task."""
    creator = trainers[4]
    ledger.grantRole(ledger.TASK_CREATOR_ROLE(), creator, sender=owner)
    from conftest import task_config

    task_id = ledger.createTask(task_config(aggregator), sender=creator).return_value
    registry.blacklist(creator, CID_ROUND_EVIDENCE, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=creator):
        ledger.cancelTask(task_id, sender=creator)
    ledger.cancelTask(task_id, sender=owner)
    assert ledger.task(task_id).status == CANCELLED


def test_no_task_is_created_for_a_blacklisted_aggregator(tasks, ledger, registry, owner, attacker):
    """Found by the lifecycle fuzz: createTask took an aggregator replaceAggregator refuses."""
    from conftest import task_config

    registry.blacklist(attacker, CID_ROUND_EVIDENCE, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=attacker):
        ledger.createTask(task_config(attacker), sender=owner)


def test_lifting_a_blacklisting_ends_a_pending_appeal(
    tasks, ledger, registry, owner, aggregator, trainers
):
    """Found by the lifecycle fuzz: an appeal left pending across a lift could later be
    granted, resetting the rejection window of an account that was no longer blacklisted."""
    honest, cheat = trainers[:2]
    rejected_until_blacklisted(tasks, ledger, aggregator, honest, cheat)
    registry.fileAppeal(CID_STATEMENT, sender=cheat)

    registry.liftBlacklist(cheat, sender=owner)

    assert registry.appealOf(cheat) == APPEAL_NONE
    with reverts(registry.ParticipantRegistryNoPendingAppeal, account=cheat):
        registry.resolveAppeal(cheat, True, CID_DECISION, sender=owner)
