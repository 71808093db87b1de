"""Contract tests of KeyHolderDesk: the key holder of a homomorphic task, and the decryption
requests of its aggregator with the key holder's answers.

Every external function is exercised on its happy path and on each custom error it can raise;
every event is checked field by field. The desk only reads the ledger, so the ledger's own
state (task, aggregator, open round) decides who may ask and when. Gas budgets at the end are
fixed numbers on purpose: a regression must fail loudly.
"""

from __future__ import annotations

import pytest
from conftest import CID_MODEL, CID_NEW_MODEL, CID_UPDATE, CID_WORKLOAD, reverts, round_result

HOMOMORPHIC = 4
SCALARS, AGGREGATE = 0, 1
ZERO_ADDRESS = "0x" + "00" * 20
CID_REQUEST = "bafkreib2ovifvz6xqzcxanrvcmtnzrkh5buklkyq7asyzacyd6xmrdhc3e"
CID_RESULT = "bafkreigrtwnmbsbpohwxxqoaxhodjd4gz6sqpjsbaxmpyzzrgpzbqc6ppu"


@pytest.fixture(scope="session")
def desk(owner, project, ledger):
    return owner.deploy(project.KeyHolderDesk, ledger)


@pytest.fixture
def he_task(tasks, trainers):
    """A homomorphic task with two members and round 1 open."""
    return tasks.started(trainers[:2], trainingMode=HOMOMORPHIC)


def only(tx, event):
    logs = tx.events.filter(event)
    assert len(logs) == 1, f"expected one {event.name}, got {len(logs)}"
    return logs[0]


def answered_scalars(desk, aggregator, owner, task_id, round_number=1):
    """Requests and answers the round's scalars; returns the request id."""
    tx = desk.requestDecryption(task_id, round_number, SCALARS, CID_REQUEST, sender=aggregator)
    desk.answerDecryption(tx.return_value, CID_RESULT, sender=owner)
    return tx.return_value


# --------------------------------------------------------------------------------------------
# the key holder


def test_the_creator_is_the_key_holder_until_it_names_another(desk, ledger, tasks, owner,
                                                              stranger):
    task_id = tasks.create(trainingMode=HOMOMORPHIC)
    assert desk.ledger() == ledger.address
    assert desk.keyHolderOf(task_id) == owner.address
    tx = desk.setKeyHolder(task_id, stranger, sender=owner)
    log = only(tx, desk.KeyHolderSet)
    assert (log.taskId, log.keyHolder) == (task_id, stranger.address)
    assert desk.keyHolderOf(task_id) == stranger.address
    desk.setKeyHolder(task_id, owner, sender=owner)  # corrected before round 1
    assert desk.keyHolderOf(task_id) == owner.address


def test_only_the_creator_names_the_key_holder_and_only_before_round_one(
        desk, tasks, owner, aggregator, stranger, trainers):
    task_id = tasks.joined(trainers[:2], trainingMode=HOMOMORPHIC)
    with reverts(desk.KeyHolderDeskNotCreator, taskId=task_id, caller=stranger):
        desk.setKeyHolder(task_id, stranger, sender=stranger)
    with reverts(desk.KeyHolderDeskNotCreator, taskId=task_id, caller=aggregator):
        desk.setKeyHolder(task_id, aggregator, sender=aggregator)
    with reverts(desk.KeyHolderDeskInvalidKeyHolder):
        desk.setKeyHolder(task_id, ZERO_ADDRESS, sender=owner)
    tasks.ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    with reverts(desk.KeyHolderDeskTaskStarted, taskId=task_id):
        desk.setKeyHolder(task_id, stranger, sender=owner)


def test_unknown_and_plain_tasks_have_no_key_holder(desk, tasks, owner, aggregator):
    assert desk.keyHolderOf(999) == ZERO_ADDRESS
    with reverts(desk.KeyHolderDeskUnknownTask, taskId=999):
        desk.setKeyHolder(999, owner, sender=owner)
    plain = tasks.create(trainingMode=1)  # DP only
    assert desk.keyHolderOf(plain) == ZERO_ADDRESS
    with reverts(desk.KeyHolderDeskNotHomomorphic, taskId=plain):
        desk.setKeyHolder(plain, owner, sender=owner)
    with reverts(desk.KeyHolderDeskNotHomomorphic, taskId=plain):
        desk.requestDecryption(plain, 1, SCALARS, CID_REQUEST, sender=aggregator)


# --------------------------------------------------------------------------------------------
# requests and answers


def test_a_round_asks_for_scalars_then_the_aggregate_and_each_is_answered_once(
        desk, he_task, owner, aggregator, chain):
    tx = desk.requestDecryption(he_task, 1, SCALARS, CID_REQUEST, sender=aggregator)
    scalars = tx.return_value
    assert scalars == 1 == desk.requestCount()
    log = only(tx, desk.DecryptionRequested)
    assert (log.requestId, log.taskId, log.round, log.kind, log.aggregator, log.documentCid) == \
        (scalars, he_task, 1, SCALARS, aggregator.address, CID_REQUEST)
    stored = desk.request(scalars)
    assert (stored.taskId, stored.round, stored.kind, stored.answered) == (he_task, 1, SCALARS,
                                                                           False)
    assert stored.requestedBlock == tx.block_number and stored.answeredBlock == 0
    assert desk.requestOf(he_task, 1, SCALARS) == scalars
    assert desk.requestOf(he_task, 1, AGGREGATE) == 0

    with reverts(desk.KeyHolderDeskScalarsNotAnswered, taskId=he_task, round=1):
        desk.requestDecryption(he_task, 1, AGGREGATE, CID_REQUEST, sender=aggregator)
    answer = desk.answerDecryption(scalars, CID_RESULT, sender=owner)
    log = only(answer, desk.DecryptionAnswered)
    assert (log.requestId, log.taskId, log.round, log.kind, log.keyHolder, log.resultCid) == \
        (scalars, he_task, 1, SCALARS, owner.address, CID_RESULT)
    assert desk.request(scalars).answered and \
        desk.request(scalars).answeredBlock == answer.block_number
    with reverts(desk.KeyHolderDeskAlreadyAnswered, requestId=scalars):
        desk.answerDecryption(scalars, CID_RESULT, sender=owner)
    with reverts(desk.KeyHolderDeskAlreadyRequested, taskId=he_task, round=1, kind=SCALARS,
                 requestId=scalars):
        desk.requestDecryption(he_task, 1, SCALARS, CID_REQUEST, sender=aggregator)

    aggregate = desk.requestDecryption(he_task, 1, AGGREGATE, CID_REQUEST,
                                       sender=aggregator).return_value
    assert aggregate == 2 and desk.requestOf(he_task, 1, AGGREGATE) == aggregate
    with reverts(desk.KeyHolderDeskAlreadyRequested, taskId=he_task, round=1, kind=AGGREGATE,
                 requestId=aggregate):
        desk.requestDecryption(he_task, 1, AGGREGATE, CID_REQUEST, sender=aggregator)
    desk.answerDecryption(aggregate, CID_RESULT, sender=owner)
    with reverts(desk.KeyHolderDeskAlreadyAnswered, requestId=aggregate):
        desk.answerDecryption(aggregate, CID_RESULT, sender=owner)


def test_only_the_aggregator_asks_and_only_in_the_open_round(desk, he_task, tasks, owner,
                                                             aggregator, stranger, trainers):
    for caller in (owner, stranger, trainers[0]):
        with reverts(desk.KeyHolderDeskNotAggregator, taskId=he_task, caller=caller):
            desk.requestDecryption(he_task, 1, SCALARS, CID_REQUEST, sender=caller)
    for wrong in (0, 2):
        with reverts(desk.KeyHolderDeskRoundNotOpen, taskId=he_task, round=wrong):
            desk.requestDecryption(he_task, wrong, SCALARS, CID_REQUEST, sender=aggregator)
    with reverts(desk.KeyHolderDeskEmptyCid):
        desk.requestDecryption(he_task, 1, SCALARS, "", sender=aggregator)
    with reverts(desk.KeyHolderDeskUnknownTask, taskId=999):
        desk.requestDecryption(999, 1, SCALARS, CID_REQUEST, sender=aggregator)

    # Once the round is finalized nothing more can be asked in it; the next round starts over.
    for i, trainer in enumerate(trainers[:2]):
        tasks.ledger.submitUpdate(he_task, 1, f"{CID_UPDATE}{i}", 10, 1_000, "", sender=trainer)
    tasks.ledger.finalizeRound(he_task, 1, round_result(contributors=trainers[:2],
                                                        scores=[500_000, 500_000]),
                               sender=aggregator)
    with reverts(desk.KeyHolderDeskRoundNotOpen, taskId=he_task, round=1):
        desk.requestDecryption(he_task, 1, SCALARS, CID_REQUEST, sender=aggregator)
    tasks.ledger.startRound(he_task, CID_NEW_MODEL, CID_WORKLOAD, sender=aggregator)
    second = desk.requestDecryption(he_task, 2, SCALARS, CID_REQUEST, sender=aggregator)
    assert desk.requestOf(he_task, 2, SCALARS) == second.return_value


def test_only_the_key_holder_answers(desk, tasks, trainers, owner, aggregator, stranger):
    task_id = tasks.joined(trainers[:2], trainingMode=HOMOMORPHIC)
    desk.setKeyHolder(task_id, stranger, sender=owner)
    tasks.ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    request = desk.requestDecryption(task_id, 1, SCALARS, CID_REQUEST,
                                     sender=aggregator).return_value
    for caller in (owner, aggregator, trainers[0]):  # the creator named another
        with reverts(desk.KeyHolderDeskNotKeyHolder, taskId=task_id, caller=caller):
            desk.answerDecryption(request, CID_RESULT, sender=caller)
    with reverts(desk.KeyHolderDeskEmptyCid):
        desk.answerDecryption(request, "", sender=stranger)
    with reverts(desk.KeyHolderDeskUnknownRequest, requestId=request + 1):
        desk.answerDecryption(request + 1, CID_RESULT, sender=stranger)
    with reverts(desk.KeyHolderDeskUnknownRequest, requestId=0):
        desk.answerDecryption(0, CID_RESULT, sender=stranger)
    desk.answerDecryption(request, CID_RESULT, sender=stranger)
    assert desk.request(request).answered


def test_a_replaced_aggregator_asks_in_its_place(desk, he_task, owner, aggregator, stranger,
                                                 tasks):
    tasks.ledger.replaceAggregator(he_task, stranger, sender=owner)  # governance: at once
    with reverts(desk.KeyHolderDeskNotAggregator, taskId=he_task, caller=aggregator):
        desk.requestDecryption(he_task, 1, SCALARS, CID_REQUEST, sender=aggregator)
    desk.requestDecryption(he_task, 1, SCALARS, CID_REQUEST, sender=stranger)


# --------------------------------------------------------------------------------------------
# gas


def test_gas_of_the_desk(desk, tasks, trainers, owner, aggregator, stranger):
    named = tasks.create(trainingMode=HOMOMORPHIC)
    set_gas = desk.setKeyHolder(named, stranger, sender=owner).gas_used
    task_id = tasks.started(trainers[:2], trainingMode=HOMOMORPHIC)  # its creator holds the key
    scalars = desk.requestDecryption(task_id, 1, SCALARS, CID_REQUEST, sender=aggregator)
    answer = desk.answerDecryption(scalars.return_value, CID_RESULT, sender=owner)
    aggregate = desk.requestDecryption(task_id, 1, AGGREGATE, CID_REQUEST, sender=aggregator)
    print(f"setKeyHolder {set_gas:,}, requestDecryption {scalars.gas_used:,} (scalars) / "
          f"{aggregate.gas_used:,} (aggregate), answerDecryption {answer.gas_used:,}")
    assert set_gas <= 80_000
    assert scalars.gas_used <= 140_000 and aggregate.gas_used <= 140_000
    assert answer.gas_used <= 70_000
