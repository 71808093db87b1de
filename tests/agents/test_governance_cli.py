"""The commands that keep a task moving and a punishment accountable, on a real deployment:
``task close-round``, ``task replace-aggregator``, ``task cancel``, ``appeal file`` and
``appeal resolve``."""

from __future__ import annotations

from fl_agent.chain.records import AppealStatus, RoundStatus, TaskStatus


def test_governance_hands_a_stalled_round_to_a_new_aggregator(world):
    from ape import chain

    task_id = world.create_task(rounds=1, window=3)
    people = [world.participant(task_id, i) for i in range(2)]
    world.aggregator_agent(task_id).step()  # opens round 1, then the aggregator goes silent
    for person in people:
        person.step()

    result = world.cli("task", "replace-aggregator", "--task", str(task_id),
                 "--aggregator", "TEST::9", "--account", "TEST::0")

    assert result.exit_code == 0, result.output
    assert world.fairfl.ledger.task(task_id).aggregator == world.accounts[9].address
    chain.provider.make_request("anvil_mine", [hex(4)])
    closed = world.cli("task", "close-round", "--task", str(task_id), "--account", "TEST::9")
    assert closed.exit_code == 0, closed.output
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.CLOSED


def test_a_creator_must_propose_first_and_a_stranger_is_told_why_not(world):
    task_id = world.create_task(rounds=1)
    stranger = world.cli("task", "replace-aggregator", "--task", str(task_id),
                   "--aggregator", "TEST::9", "--account", "TEST::8")
    assert stranger.exit_code != 0
    assert "TaskLedgerNotCreatorOrGovernance" in stranger.output
    proposed = world.cli("task", "replace-aggregator", "--task", str(task_id),
                   "--aggregator", "TEST::9", "--propose", "--account", "TEST::0")
    assert proposed.exit_code == 0, proposed.output
    assert "in a day" in proposed.output


def test_an_aggregator_closes_a_round_without_quorum_and_a_creator_cancels(world):
    from ape import chain

    task_id = world.create_task(rounds=2, window=3)
    world.participant(task_id, 0)
    world.participant(task_id, 1)
    world.aggregator_agent(task_id).step()  # round 1 opens; nobody trains
    early = world.cli("task", "close-round", "--task", str(task_id), "--account", "TEST::1")
    assert early.exit_code != 0 and "TaskLedgerTooEarlyToClose" in early.output
    chain.provider.make_request("anvil_mine", [hex(4)])

    closed = world.cli("task", "close-round", "--task", str(task_id), "--account", "TEST::1")

    assert closed.exit_code == 0, closed.output
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.CLOSED
    cancelled = world.cli("task", "cancel", "--task", str(task_id), "--account", "TEST::0")
    assert cancelled.exit_code == 0, cancelled.output
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.CANCELLED


def test_a_blacklisted_participant_appeals_and_governance_grants_it(world, tmp_path):
    cheat = world.accounts[4]
    world.fairfl.registry.register(
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", sender=cheat)
    world.fairfl.registry.blacklist(
        cheat, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        sender=world.accounts[0])
    statement = tmp_path / "statement.txt"
    statement.write_text("My update was rejected for a validation split that was not mine.")
    decision = tmp_path / "decision.txt"
    decision.write_text("Re-ran the round's evidence: the rejection does not reproduce.")

    filed = world.cli("appeal", "file", "--statement", str(statement), "--account", "TEST::4")
    assert filed.exit_code == 0, filed.output
    assert world.fairfl.registry.appeal_of(cheat.address) == AppealStatus.PENDING
    resolved = world.cli("appeal", "resolve", cheat.address, "--grant", "--decision",
                   str(decision), "--account", "TEST::0")

    assert resolved.exit_code == 0, resolved.output
    assert world.fairfl.registry.appeal_of(cheat.address) == AppealStatus.GRANTED
    assert not world.fairfl.registry.is_blacklisted(cheat.address)
    again = world.cli("appeal", "file", "--statement", str(statement), "--account", "TEST::4")
    assert again.exit_code != 0 and "ParticipantRegistryNotBlacklisted" in again.output


def test_the_creator_takes_over_a_stalled_task_and_finishes_it_without_judging_anyone(world):
    """The aggregator vanishes mid-round. Governance names the task's creator, who can read
    the task's keys; its agent closes the stalled round (whose updates are sealed to the old
    aggregator) once its window has passed, and runs the task to completion."""
    from ape import chain

    from fl_agent.agents import AggregatorAgent, RoundOutcome
    from fl_agent.agents.access import member_key
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.learning.task_doc import AccessPlan

    # As `fl-agent task create` does: the creator reads every model (it lists the final one).
    key = public_bytes(member_key(world.fairfl, world.accounts[0])).hex()
    world.document = world.document.model_copy(update={"access": AccessPlan(creator_key=key)})
    task_id = world.create_task(rounds=2, window=5)
    people = [world.participant(task_id, i) for i in range(2)]
    world.aggregator_agent(task_id).step()
    for person in people:
        person.step()
    result = world.cli("task", "replace-aggregator", "--task", str(task_id),
                 "--aggregator", "TEST::0", "--account", "TEST::0")
    assert result.exit_code == 0, result.output
    creator = AggregatorAgent(world.fairfl, world.store, world.accounts[0], task_id,
                              world.splits.validation.X, world.splits.validation.y,
                              world.tmp / "creator")
    assert creator.step() is None  # the stalled round's window is still open
    chain.provider.make_request("anvil_mine", [hex(6)])

    outcomes = []
    for _ in range(12):
        if creator.finished:
            break
        outcome = creator.step()
        if isinstance(outcome, RoundOutcome):
            outcomes.append(outcome)
        for person in people:
            person.step()

    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.CLOSED
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED
    assert [o.round for o in outcomes] == [2, 3]
    assert all(v.accepted for o in outcomes for v in o.verdicts)
    rejected = world.fairfl.registry.contract.UpdateRejected.range(
        world.fairfl.deployment.block, chain.blocks.height + 1)
    assert list(rejected) == []  # nobody was judged on updates the new aggregator cannot open
