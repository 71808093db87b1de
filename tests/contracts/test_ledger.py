"""Contract tests of TaskLedger: tasks, rounds, uploads, aggregations, rewards and reputation.

Every external function is exercised on its happy path and on each custom error it can raise;
every event is checked field by field. ``finalizeRound`` calls the registry (reputation,
rejections) and credits rewards, which ``claimRewards`` later mints through the token (pull
payment), so those effects are asserted here as well. Gas budgets at the end are fixed numbers
on purpose: a regression must fail loudly.
"""

from __future__ import annotations

import hashlib

import pytest
from conftest import (
    CID_MODEL,
    CID_NEW_MODEL,
    CID_ROUND_EVIDENCE,
    CID_SPEC,
    CID_UPDATE,
    CID_WORKLOAD,
    MODEL_HASH,
    POLICY,
    PPM,
    REASON_NORM_OUTLIER,
    UNIT,
    reverts,
    round_result,
    task_config,
)
from eth_utils import keccak

ZERO_ADDRESS = "0x" + "00" * 20
UINT96_MAX = 2**96 - 1
FLT_CAP = 10**9 * UNIT  # FairToken.MAX_SUPPLY
UINT32_MAX = 2**32 - 1
#: Reputations and reputation outcomes are in basis points; scores are in parts per million.
MAX_BPS = 10_000
INITIAL_REPUTATION = 5_000
#: CID of the governance evidence when a test blacklists someone by hand (CIDv1, 59 chars).
CID_EVIDENCE = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
#: A second round's model, to tell the two global models apart.
CID_MODEL_2 = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"

# enum TaskStatus / RoundStatus
NONE, OPEN, COMPLETED = 0, 1, 2
FINALIZED, CLOSED = 2, 3
DP, PRUNING, HOMOMORPHIC, WATERMARK = 1, 2, 4, 8


# --------------------------------------------------------------------------------------------
# helpers


def model_hash(cid: str) -> bytes:
    """What the ledger keeps of a global model: keccak-256 of its CID string."""
    return keccak(text=cid)


def start(ledger, aggregator, task_id, model=CID_MODEL, workload=CID_WORKLOAD):
    """Opens the next round on ``model``, which must be the task's current global model."""
    return ledger.startRound(task_id, model, workload, sender=aggregator)


def claim(ledger, task_id, participant):
    return ledger.claimRewards(task_id, sender=participant)


def addr(account) -> str:
    """Lower-case hex address, for comparing with addresses decoded inside event structs."""
    return str(getattr(account, "address", account)).lower()


def only(tx, event):
    """The single log of ``event`` in receipt ``tx``."""
    logs = tx.events.filter(event)
    assert len(logs) == 1, f"expected one {event.name}, got {len(logs)}"
    return logs[0]


def block_time(chain, tx) -> int:
    return chain.blocks[tx.block_number].timestamp


def emitted_time(log) -> int:
    """The ``timestamp`` argument of an event.

    Not ``log.timestamp``: on an ape ContractLog that is the block's time, whatever was emitted.
    """
    return log.event_arguments["timestamp"]


def submit(ledger, task_id, round_number, participant, cid=CID_UPDATE, samples=100, millis=5_000):
    return ledger.submitUpdate(task_id, round_number, cid, samples, millis, "", sender=participant)


def finalize(
    ledger,
    aggregator,
    task_id,
    round_number,
    contributors=(),
    scores=(),
    rejected=(),
    new_cid=CID_NEW_MODEL,
    millis=1_234,
    reasons=None,
    evidence=CID_ROUND_EVIDENCE,
    model_hash=MODEL_HASH,
):
    result = round_result(
        new_cid, contributors, scores, rejected, millis, reasons, evidence, model_hash
    )
    return ledger.finalizeRound(task_id, round_number, result, sender=aggregator)


def decoded_result(result):
    """A RoundResult decoded from an event (a list with lower-case addresses), normalised."""
    new_cid, digest, contributors, scores, rejected, reasons, evidence, millis = result
    return (
        new_cid,
        bytes(digest),
        [a.lower() for a in contributors],
        list(scores),
        [a.lower() for a in rejected],
        list(reasons),
        evidence,
        millis,
    )


def reward(reward_per_round, score):
    """What a score of ``score`` parts per million of the budget is credited."""
    return reward_per_round * score // PPM


def share_outcome(score, contributors):
    """The reputation outcome of a score: its share (``score / PPM``) relative to an equal
    split (``1 / contributors``), in basis points, at most a full mark."""
    return min(MAX_BPS, score * contributors * MAX_BPS // PPM)


def ewma(old, outcome, alpha=POLICY.alpha_bps):
    return (old * (MAX_BPS - alpha) + outcome * alpha) // MAX_BPS


def chain_logs(chain, event, **topics):
    """Every log of ``event`` on chain so far whose indexed fields match ``topics``."""
    return list(event.range(0, chain.blocks.height + 1, search_topics=topics))


@pytest.fixture(scope="module", autouse=True)
def registered_trainers(registry, trainers):
    """All five trainers register once per module; ape's snapshots keep that state per test."""
    for trainer in trainers:
        registry.register(CID_SPEC, sender=trainer)


@pytest.fixture
def governance(owner):
    return owner


@pytest.fixture
def blacklist(registry, governance):
    def _blacklist(account):
        registry.blacklist(account, CID_EVIDENCE, sender=governance)

    return _blacklist


# --------------------------------------------------------------------------------------------
# createTask


def test_create_task_emits_config_and_stores_task(ledger, owner, aggregator):
    config = task_config(
        aggregator,
        metric="f1_macro",
        rounds=3,
        minParticipants=4,
        submissionWindow=17,
        trainingMode=DP | HOMOMORPHIC,
        rewardPerRound=123 * UNIT + 45,
    )

    tx = ledger.createTask(config, sender=owner)

    assert tx.return_value == 1
    event = only(tx, ledger.TaskCreated)
    assert event.taskId == 1
    assert event.creator == owner
    assert event.aggregator == aggregator
    assert list(event.config) == [
        CID_MODEL,
        CID_SPEC,
        "f1_macro",
        addr(aggregator),
        3,
        4,
        17,
        DP | HOMOMORPHIC,
        123 * UNIT + 45,
    ]
    task = ledger.task(1)
    assert task.creator == owner
    assert task.aggregator == aggregator
    assert task.rounds == 3
    assert task.currentRound == 0
    assert task.minParticipants == 4
    assert task.submissionWindow == 17
    assert task.participantCount == 0
    assert task.trainingMode == DP | HOMOMORPHIC
    assert task.status == OPEN
    assert task.rewardPerRound == 123 * UNIT + 45
    assert task.totalRewarded == 0
    assert task.globalModelHash == model_hash(CID_MODEL)
    assert task.specCid == CID_SPEC
    assert task.metric == "f1_macro"


def test_task_ids_count_up_from_one(ledger, owner, aggregator):
    assert ledger.taskCount() == 0
    assert ledger.task(1).status == NONE

    ids = [ledger.createTask(task_config(aggregator), sender=owner).return_value for _ in range(3)]

    assert ids == [1, 2, 3]
    assert ledger.taskCount() == 3


@pytest.mark.parametrize(
    "cid",
    [
        "b",
        "x" * 31,  # longest string Solidity keeps in one slot
        "y" * 32,  # shortest string spread over slots
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # CIDv0, 46 chars
        CID_MODEL,  # CIDv1 raw, base32, 59 chars
        "bafkrgqe3ohjcjplc6n4f3fwunlj6upltggn7xqujbsvnvyw764srszz4u4rshq6ztos4chl4plgg4ffyyxnayrtdi5oc4xb2332g645433aeg",
    ],
    ids=["1", "31", "32", "cidv0", "cidv1-59", "cidv1-sha512"],
)
def test_cids_round_trip_exactly(ledger, owner, aggregator, trainers, cid):
    config = task_config(aggregator, modelCid=cid, specCid=cid[::-1], minParticipants=1)
    tx = ledger.createTask(config, sender=owner)

    assert list(only(tx, ledger.TaskCreated).config)[:2] == [cid, cid[::-1]]
    assert ledger.task(1).globalModelHash == model_hash(cid)
    assert ledger.task(1).specCid == cid[::-1]
    # the model CID is kept as a hash; the exact string comes back through startRound
    ledger.join(1, sender=trainers[0])
    started = only(start(ledger, aggregator, 1, model=cid, workload=cid), ledger.RoundStarted)
    assert (started.globalModelCid, started.workloadCid) == (cid, cid)


def test_cidv1_is_59_characters():
    """Guards the fixtures: the round-trip test above must cover a real 59-char CIDv1."""
    assert len(CID_MODEL) == len(CID_NEW_MODEL) == len(CID_EVIDENCE) == 59


@pytest.mark.parametrize("caller", ["aggregator", "stranger"])
def test_create_task_requires_task_creator_role(ledger, aggregator, stranger, caller):
    account = aggregator if caller == "aggregator" else stranger

    with reverts(
        ledger.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=ledger.TASK_CREATOR_ROLE(),
    ):
        ledger.createTask(task_config(aggregator), sender=account)


@pytest.mark.parametrize(
    "field,overrides",
    [
        ("modelCid", {"modelCid": ""}),
        ("specCid", {"specCid": ""}),
        ("metric", {"metric": ""}),
        ("aggregator", {"aggregator": ZERO_ADDRESS}),
        ("rounds", {"rounds": 0}),
        ("minParticipants", {"minParticipants": 0}),
        ("submissionWindow", {"submissionWindow": 0}),
        ("trainingMode", {"trainingMode": 16}),
        ("rewardPerRound", {"rounds": 1, "rewardPerRound": UINT96_MAX + 1}),
        ("rewardPerRound", {"rounds": 3, "rewardPerRound": UINT96_MAX // 3 + 1}),
    ],
    ids=[
        "modelCid",
        "specCid",
        "metric",
        "aggregator",
        "rounds",
        "minParticipants",
        "submissionWindow",
        "trainingMode-16",
        "reward-1-round",
        "reward-3-rounds",
    ],
)
def test_create_task_rejects_invalid_config(ledger, owner, aggregator, field, overrides):
    config = task_config(aggregator)
    config.update(overrides)

    with reverts(ledger.TaskLedgerInvalidConfig, field=field):
        ledger.createTask(config, sender=owner)

    assert ledger.taskCount() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"trainingMode": 0},
        {"trainingMode": DP | PRUNING | HOMOMORPHIC | WATERMARK},
        {"rounds": 1, "rewardPerRound": FLT_CAP},
        {"rounds": 3, "rewardPerRound": FLT_CAP // 3},
        {"rewardPerRound": 0},
        {"rounds": 1, "minParticipants": 1, "submissionWindow": 1},
    ],
    ids=[
        "plain-fedavg",
        "all-modes",
        "max-budget-1-round",
        "max-budget-3-rounds",
        "no-reward",
        "minimal",
    ],
)
def test_create_task_accepts_boundary_values(ledger, owner, aggregator, overrides):
    ledger.createTask(task_config(aggregator, **overrides), sender=owner)

    task = ledger.task(1)
    for name in ("trainingMode", "rounds", "rewardPerRound", "minParticipants", "submissionWindow"):
        if name in overrides:
            assert getattr(task, name) == overrides[name]


# --------------------------------------------------------------------------------------------
# join


def test_join_emits_count_and_records_membership(tasks, ledger, trainers):
    tasks.register(*trainers[:3])
    task_id = tasks.create()

    for count, trainer in enumerate(trainers[:3], start=1):
        event = only(ledger.join(task_id, sender=trainer), ledger.ParticipantJoined)
        assert (event.taskId, event.participant, event.participantCount) == (
            task_id,
            trainer,
            count,
        )

    assert ledger.participants(task_id) == [t.address for t in trainers[:3]]
    assert ledger.task(task_id).participantCount == 3
    member = ledger.membership(task_id, trainers[1])
    assert member.joined
    assert (
        member.lastSubmittedRound,
        member.lastSettledRound,
        member.acceptedRounds,
        member.rejectedRounds,
        member.earned,
    ) == (0, 0, 0, 0, 0)
    assert not ledger.membership(task_id, trainers[3]).joined


def test_memberships_are_per_task(tasks, ledger, trainers):
    first = tasks.joined(trainers[:2])
    second = tasks.create()

    assert ledger.membership(first, trainers[0]).joined
    assert not ledger.membership(second, trainers[0]).joined
    assert ledger.participants(second) == []


def test_participant_may_join_while_a_round_is_open(tasks, ledger, trainers):
    task_id = tasks.started(trainers[:2])
    tasks.register(trainers[2])

    ledger.join(task_id, sender=trainers[2])
    submit(ledger, task_id, 1, trainers[2])

    assert ledger.round(task_id, 1).submissions == 1


@pytest.mark.parametrize("task_id", [0, 2])
def test_join_unknown_task_reverts(tasks, ledger, trainers, task_id):
    tasks.register(trainers[0])
    tasks.create()

    with reverts(ledger.TaskLedgerUnknownTask, taskId=task_id):
        ledger.join(task_id, sender=trainers[0])


def test_join_requires_registration(tasks, ledger, stranger):
    task_id = tasks.create()

    with reverts(ledger.TaskLedgerNotRegistered, account=stranger):
        ledger.join(task_id, sender=stranger)


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "unregistered"])
def test_join_rejects_blacklisted_account(tasks, ledger, attacker, blacklist, registered):
    if registered:
        tasks.register(attacker)
    task_id = tasks.create()
    blacklist(attacker)

    with reverts(ledger.TaskLedgerBlacklisted, account=attacker):
        ledger.join(task_id, sender=attacker)


def test_join_twice_reverts(tasks, ledger, trainers):
    task_id = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerAlreadyJoined, taskId=task_id, participant=trainers[1]):
        ledger.join(task_id, sender=trainers[1])


def test_join_completed_task_reverts(tasks, ledger, trainers):
    task_id = tasks.completed(trainers[:2])
    tasks.register(trainers[2])

    with reverts(ledger.TaskLedgerTaskCompleted, taskId=task_id):
        ledger.join(task_id, sender=trainers[2])


# --------------------------------------------------------------------------------------------
# startRound


def test_start_round_emits_record_and_opens_round(tasks, ledger, chain, aggregator, trainers):
    task_id = tasks.joined(trainers[:2], submissionWindow=25, trainingMode=DP | PRUNING)

    tx = ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)

    assert tx.return_value == 1
    event = only(tx, ledger.RoundStarted)
    assert event.taskId == task_id
    assert event.round == 1
    assert event.globalModelCid == CID_MODEL
    assert event.workloadCid == CID_WORKLOAD
    assert event.deadlineBlock == tx.block_number + 25
    assert event.trainingMode == DP | PRUNING
    assert emitted_time(event) == block_time(chain, tx)
    assert ledger.round(task_id, 1) == (tx.block_number, tx.block_number + 25, 0, 0, OPEN)
    assert ledger.task(task_id).currentRound == 1
    assert ledger.round(task_id, 2).status == NONE


@pytest.mark.parametrize("caller", ["owner", "trainer"])
def test_start_round_only_aggregator(tasks, ledger, owner, trainers, caller):
    account = owner if caller == "owner" else trainers[0]
    task_id = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerNotAggregator, taskId=task_id, caller=account):
        ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=account)


@pytest.mark.parametrize("caller", ["aggregator", "stranger"])
def test_start_round_unknown_task_reverts(ledger, aggregator, stranger, caller):
    account = aggregator if caller == "aggregator" else stranger

    with reverts(ledger.TaskLedgerUnknownTask, taskId=7):
        ledger.startRound(7, CID_MODEL, CID_WORKLOAD, sender=account)


def test_start_round_requires_workload_cid(tasks, ledger, aggregator, trainers):
    task_id = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerEmptyCid):
        ledger.startRound(task_id, CID_MODEL, "", sender=aggregator)


@pytest.mark.parametrize("joined", [0, 2])
def test_start_round_requires_quorum(tasks, ledger, aggregator, trainers, joined):
    task_id = tasks.joined(trainers[:joined], minParticipants=3)

    with reverts(ledger.TaskLedgerNotEnoughParticipants, taskId=task_id, joined=joined, required=3):
        start(ledger, aggregator, task_id)


def test_start_round_while_previous_open_reverts(tasks, ledger, aggregator, trainers):
    task_id = tasks.started(trainers[:2])

    with reverts(ledger.TaskLedgerRoundStillOpen, taskId=task_id, round=1):
        start(ledger, aggregator, task_id)


def test_start_round_after_last_round_reverts(tasks, ledger, aggregator, trainers):
    task_id = tasks.completed(trainers[:2])

    with reverts(ledger.TaskLedgerTaskCompleted, taskId=task_id):
        start(ledger, aggregator, task_id, model=CID_NEW_MODEL)


@pytest.mark.parametrize(
    "model",
    ["", CID_NEW_MODEL, CID_MODEL + " ", CID_MODEL.upper(), CID_MODEL[:-1]],
    ids=["empty", "other-cid", "trailing-space", "upper-case", "truncated"],
)
def test_start_round_on_a_wrong_model_reverts(tasks, ledger, aggregator, trainers, model):
    """The CID must be exactly the initial model's: the hash leaves no room for look-alikes."""
    task_id = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerWrongModel, taskId=task_id, modelCid=model):
        start(ledger, aggregator, task_id, model=model)

    assert ledger.task(task_id).currentRound == 0


def test_start_round_on_the_stale_initial_model_reverts(tasks, ledger, aggregator, trainers):
    """Round 2 must start on round 1's result, not again on the initial model."""
    task_id = tasks.submitted(trainers[:2])  # two rounds
    finalize(
        ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000], new_cid=CID_NEW_MODEL
    )

    with reverts(ledger.TaskLedgerWrongModel, taskId=task_id, modelCid=CID_MODEL):
        start(ledger, aggregator, task_id, model=CID_MODEL)

    tx = start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    assert tx.return_value == 2
    assert only(tx, ledger.RoundStarted).globalModelCid == CID_NEW_MODEL


def test_start_round_of_another_tasks_model_reverts(tasks, ledger, aggregator, trainers):
    """Each task tracks its own global model."""
    other = tasks.submitted(trainers[:2])
    finalize(ledger, aggregator, other, 1, trainers[:2], [500_000, 500_000], new_cid=CID_NEW_MODEL)
    task_id = tasks.joined(trainers[:2])  # same initial model, still untrained

    with reverts(ledger.TaskLedgerWrongModel, taskId=task_id, modelCid=CID_NEW_MODEL):
        start(ledger, aggregator, task_id, model=CID_NEW_MODEL)

    start(ledger, aggregator, task_id, model=CID_MODEL)
    start(ledger, aggregator, other, model=CID_NEW_MODEL)


def test_global_model_hash_follows_the_latest_model(tasks, ledger, aggregator, trainers):
    task_id = tasks.joined(trainers[:2], rounds=2)
    assert ledger.task(task_id).globalModelHash == model_hash(CID_MODEL)

    for round_number, (model, new_model) in enumerate(
        [(CID_MODEL, CID_NEW_MODEL), (CID_NEW_MODEL, CID_MODEL_2)], start=1
    ):
        start(ledger, aggregator, task_id, model=model)
        assert ledger.task(task_id).globalModelHash == model_hash(model)  # starting changes nothing
        for trainer in trainers[:2]:
            submit(ledger, task_id, round_number, trainer)
        finalize(
            ledger,
            aggregator,
            task_id,
            round_number,
            trainers[:2],
            [500_000, 500_000],
            new_cid=new_model,
        )
        assert ledger.task(task_id).globalModelHash == model_hash(new_model)

    assert ledger.task(task_id).globalModelHash == keccak(text=CID_MODEL_2)
    assert ledger.task(task_id).status == COMPLETED


# --------------------------------------------------------------------------------------------
# submitUpdate


def test_submit_update_emits_upload_record(tasks, ledger, chain, trainers):
    task_id = tasks.started(trainers[:2], trainingMode=PRUNING)

    tx = submit(ledger, task_id, 1, trainers[1], cid=CID_UPDATE, samples=6_000, millis=73_512)

    event = only(tx, ledger.UpdateSubmitted)
    assert event.taskId == task_id
    assert event.round == 1
    assert event.participant == trainers[1]
    assert event.updateCid == CID_UPDATE
    assert event.numSamples == 6_000
    assert event.trainingMillis == 73_512
    assert event.trainingMode == PRUNING
    assert emitted_time(event) == block_time(chain, tx)


def test_submit_update_records_the_privacy_receipt(tasks, ledger, trainers):
    task_id = tasks.started(trainers[:2], trainingMode=DP | WATERMARK)
    receipt = "bafkreiprivacyreceipt"

    tx = ledger.submitUpdate(task_id, 1, CID_UPDATE, 100, 5_000, receipt, sender=trainers[0])
    plain = submit(ledger, task_id, 1, trainers[1])

    assert only(tx, ledger.UpdateSubmitted).privacyCid == receipt
    assert only(tx, ledger.UpdateSubmitted).trainingMode == DP | WATERMARK
    assert only(plain, ledger.UpdateSubmitted).privacyCid == ""


# --------------------------------------------------------------------------------------------
# commitWatermark


def test_a_member_commits_its_watermark_key_once(tasks, ledger, chain, trainers):
    task_id = tasks.joined(trainers[:2], trainingMode=WATERMARK)
    commitment = keccak(text="watermark key of trainer 0")

    tx = ledger.commitWatermark(task_id, commitment, sender=trainers[0])

    event = only(tx, ledger.WatermarkCommitted)
    assert (event.taskId, event.participant, event.commitment) == (task_id, trainers[0],
                                                                   commitment)
    assert ledger.watermarkCommitment(task_id, trainers[0]) == (commitment, tx.block_number,
                                                                False)
    assert ledger.watermarkCommitment(task_id, trainers[1]) == (b"\0" * 32, 0, False)
    with reverts(ledger.TaskLedgerWatermarkCommitted, taskId=task_id, participant=trainers[0]):
        ledger.commitWatermark(task_id, keccak(text="a later key"), sender=trainers[0])
    assert ledger.watermarkCommitment(task_id, trainers[0])[0] == commitment


def test_a_watermark_commitment_needs_a_member_a_key_and_an_open_task(
        tasks, ledger, trainers, stranger, blacklist):
    task_id = tasks.joined(trainers[:2])
    commitment = keccak(text="key")

    with reverts(ledger.TaskLedgerEmptyCommitment):
        ledger.commitWatermark(task_id, b"\0" * 32, sender=trainers[0])
    with reverts(ledger.TaskLedgerNotJoined, taskId=task_id, participant=stranger):
        ledger.commitWatermark(task_id, commitment, sender=stranger)
    with reverts(ledger.TaskLedgerUnknownTask, taskId=task_id + 1):
        ledger.commitWatermark(task_id + 1, commitment, sender=trainers[0])
    blacklist(trainers[1])
    with reverts(ledger.TaskLedgerBlacklisted, account=trainers[1]):
        ledger.commitWatermark(task_id, commitment, sender=trainers[1])
    done = tasks.completed(trainers[:1], minParticipants=1)
    with reverts(ledger.TaskLedgerTaskCompleted, taskId=done):
        ledger.commitWatermark(done, commitment, sender=trainers[0])


def test_a_watermark_key_is_committed_before_round_one_or_never(tasks, ledger, aggregator,
                                                                trainers):
    """A key committed once a model of the task exists could be chosen to match it."""
    task_id = tasks.started(trainers[:2], trainingMode=WATERMARK)
    with reverts(ledger.TaskLedgerTrainingStarted, taskId=task_id, round=1):
        ledger.commitWatermark(task_id, keccak(text="a key ground on round 1"),
                               sender=trainers[0])
    assert ledger.watermarkCommitment(task_id, trainers[0]) == (b"\0" * 32, 0, False)


def _finish_one_round(ledger, aggregator, task_id, contributors):
    ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    for p in contributors:
        ledger.submitUpdate(task_id, 1, CID_UPDATE, 1, 1, "", sender=p)
    scores = [PPM // len(contributors)] * len(contributors)
    result = round_result(contributors=contributors, scores=scores)
    ledger.finalizeRound(task_id, 1, result, sender=aggregator)
    assert ledger.task(task_id).status == COMPLETED


def test_a_member_claims_its_watermark_once_after_the_task_completed(
        tasks, ledger, aggregator, trainers):
    task_id = tasks.joined(trainers[:2], trainingMode=WATERMARK, rounds=1, minParticipants=1)
    commitment = keccak(text="watermark key of trainer 0")
    ledger.commitWatermark(task_id, commitment, sender=trainers[0])
    with reverts(ledger.TaskLedgerTaskNotCompleted, taskId=task_id):
        ledger.claimWatermark(task_id, "bafkclaim", sender=trainers[0])
    _finish_one_round(ledger, aggregator, task_id, trainers[:1])

    tx = ledger.claimWatermark(task_id, "bafkclaim", sender=trainers[0])

    event = only(tx, ledger.WatermarkClaimed)
    assert (event.taskId, event.participant, event.commitment, event.claimCid) == (
        task_id, trainers[0], commitment, "bafkclaim")
    assert ledger.watermarkCommitment(task_id, trainers[0])[2] is True
    with reverts(ledger.TaskLedgerWatermarkClaimed, taskId=task_id, participant=trainers[0]):
        ledger.claimWatermark(task_id, "bafkother", sender=trainers[0])
    with reverts(ledger.TaskLedgerNoWatermarkCommitment, taskId=task_id,
                 participant=trainers[1]):
        ledger.claimWatermark(task_id, "bafkclaim", sender=trainers[1])


def test_a_cancelled_task_s_watermark_cannot_be_claimed(tasks, ledger, owner, trainers):
    task_id = tasks.joined(trainers[:1], trainingMode=WATERMARK)
    ledger.commitWatermark(task_id, keccak(text="key"), sender=trainers[0])
    ledger.cancelTask(task_id, sender=owner)
    with reverts(ledger.TaskLedgerTaskNotCompleted, taskId=task_id):
        ledger.claimWatermark(task_id, "bafkclaim", sender=trainers[0])


def test_a_watermark_claim_needs_a_known_task_a_cid_and_good_standing(
        tasks, ledger, aggregator, trainers, blacklist):
    task_id = tasks.joined(trainers[:2], trainingMode=WATERMARK, rounds=1, minParticipants=1)
    for trainer in trainers[:2]:
        ledger.commitWatermark(task_id, keccak(text=str(trainer)), sender=trainer)
    _finish_one_round(ledger, aggregator, task_id, trainers[:2])

    with reverts(ledger.TaskLedgerUnknownTask, taskId=task_id + 1):
        ledger.claimWatermark(task_id + 1, "bafkclaim", sender=trainers[0])
    with reverts(ledger.TaskLedgerEmptyCid):
        ledger.claimWatermark(task_id, "", sender=trainers[0])
    blacklist(trainers[1])
    with reverts(ledger.TaskLedgerBlacklisted, account=trainers[1]):
        ledger.claimWatermark(task_id, "bafkclaim", sender=trainers[1])
    assert ledger.watermarkCommitment(task_id, trainers[1])[2] is False


def test_submit_update_counts_submissions_and_marks_member(tasks, ledger, trainers):
    task_id = tasks.started(trainers[:3])

    for count, trainer in enumerate(trainers[:2], start=1):
        submit(ledger, task_id, 1, trainer)
        assert ledger.round(task_id, 1).submissions == count

    assert ledger.membership(task_id, trainers[0]).lastSubmittedRound == 1
    assert ledger.membership(task_id, trainers[2]).lastSubmittedRound == 0
    assert ledger.round(task_id, 1).status == OPEN


def test_submit_update_unknown_task_reverts(ledger, trainers):
    with reverts(ledger.TaskLedgerUnknownTask, taskId=5):
        submit(ledger, 5, 1, trainers[0])


@pytest.mark.parametrize("given", [0, 2])
def test_submit_update_for_other_than_open_round_reverts(tasks, ledger, trainers, given):
    task_id = tasks.started(trainers[:2])

    with reverts(ledger.TaskLedgerWrongRound, taskId=task_id, given=given, current=1):
        submit(ledger, task_id, given, trainers[0])


def test_submit_update_before_any_round_reverts(tasks, ledger, trainers):
    task_id = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerWrongRound, taskId=task_id, given=1, current=0):
        submit(ledger, task_id, 1, trainers[0])


def test_submit_update_after_finalize_reverts(tasks, ledger, aggregator, trainers):
    task_id = tasks.started(trainers[:3], minParticipants=1)  # two rounds: the task stays open
    submit(ledger, task_id, 1, trainers[0])
    finalize(ledger, aggregator, task_id, 1, [trainers[0]], [PPM])

    with reverts(ledger.TaskLedgerRoundAlreadyFinalized, taskId=task_id, round=1):
        submit(ledger, task_id, 1, trainers[1])


def test_submit_update_to_completed_task_reverts(tasks, ledger, trainers):
    task_id = tasks.completed(trainers[:2])

    with reverts(ledger.TaskLedgerRoundAlreadyFinalized, taskId=task_id, round=1):
        submit(ledger, task_id, 1, trainers[0], cid=CID_UPDATE + "late")


def test_submit_update_is_accepted_up_to_the_deadline_block(tasks, ledger, chain, trainers):
    task_id = tasks.started(trainers[:2], submissionWindow=3)
    deadline = ledger.round(task_id, 1).deadlineBlock
    chain.mine(deadline - chain.blocks.height - 1)  # the next transaction lands on the deadline

    tx = submit(ledger, task_id, 1, trainers[0])

    assert tx.block_number == deadline


def test_submit_update_after_deadline_reverts(tasks, ledger, chain, trainers):
    task_id = tasks.started(trainers[:2], submissionWindow=3)
    deadline = ledger.round(task_id, 1).deadlineBlock
    chain.mine(deadline - chain.blocks.height)  # the next transaction lands one block late

    with reverts(
        ledger.TaskLedgerSubmissionClosed, taskId=task_id, round=1, deadlineBlock=deadline
    ):
        submit(ledger, task_id, 1, trainers[0])


def test_submit_update_requires_cid(tasks, ledger, trainers):
    task_id = tasks.started(trainers[:2])

    with reverts(ledger.TaskLedgerEmptyCid):
        submit(ledger, task_id, 1, trainers[0], cid="")


@pytest.mark.parametrize("who", ["registered", "stranger"])
def test_submit_update_requires_membership(tasks, ledger, trainers, stranger, who):
    task_id = tasks.started(trainers[:2])
    account = trainers[2] if who == "registered" else stranger
    if who == "registered":
        tasks.register(account)

    with reverts(ledger.TaskLedgerNotJoined, taskId=task_id, participant=account):
        submit(ledger, task_id, 1, account)


def test_submit_update_twice_in_a_round_reverts(tasks, ledger, trainers):
    task_id = tasks.submitted(trainers[:2])

    with reverts(
        ledger.TaskLedgerAlreadySubmitted, taskId=task_id, round=1, participant=trainers[1]
    ):
        submit(ledger, task_id, 1, trainers[1], cid=CID_UPDATE + "again")


def test_submit_update_by_blacklisted_member_reverts(tasks, ledger, trainers, blacklist):
    task_id = tasks.started(trainers[:2])
    blacklist(trainers[0])

    with reverts(ledger.TaskLedgerBlacklisted, account=trainers[0]):
        submit(ledger, task_id, 1, trainers[0])


# --------------------------------------------------------------------------------------------
# finalizeRound: effects


def test_finalize_round_emits_aggregation_record(tasks, ledger, chain, aggregator, trainers):
    task_id = tasks.submitted(trainers[:3])
    digest = hashlib.sha256(b"the weights of round 1").digest()

    tx = finalize(
        ledger,
        aggregator,
        task_id,
        1,
        trainers[:2],
        [600_000, 300_000],
        [trainers[2]],
        new_cid=CID_NEW_MODEL,
        millis=4_321,
        reasons=[6],  # trigger
        evidence=CID_EVIDENCE,
        model_hash=digest,
    )

    event = only(tx, ledger.RoundFinalized)
    assert set(event.event_arguments) == {
        "taskId",
        "round",
        "aggregator",
        "result",
        "rewards",
        "timestamp",
    }
    assert event.taskId == task_id
    assert event.round == 1
    assert event.aggregator == aggregator
    # the previous global model is the one the same round started on
    (started,) = chain_logs(chain, ledger.RoundStarted, taskId=task_id, round=1)
    assert started.globalModelCid == CID_MODEL
    assert decoded_result(event.result) == (
        CID_NEW_MODEL,
        digest,
        [addr(trainers[0]), addr(trainers[1])],
        [600_000, 300_000],
        [addr(trainers[2])],
        [6],
        CID_EVIDENCE,
        4_321,
    )
    assert list(event.rewards) == [600 * UNIT, 300 * UNIT]
    assert emitted_time(event) == block_time(chain, tx)


def test_the_final_model_hash_is_read_from_the_last_rounds_event(
    tasks, ledger, chain, aggregator, trainers
):
    """What a buyer compares a listing's plaintextHash with: the modelHash of the task's last
    RoundFinalized, recovered from the logs alone. The task itself keeps only the hash of the
    model's CID."""
    task_id = tasks.submitted(trainers[:2])  # two rounds
    digests = [hashlib.sha256(f"weights of round {r}".encode()).digest() for r in (1, 2)]
    finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000],
             model_hash=digests[0])
    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    for trainer in trainers[:2]:
        submit(ledger, task_id, 2, trainer)
    finalize(ledger, aggregator, task_id, 2, trainers[:2], [500_000, 500_000],
             new_cid=CID_MODEL_2, model_hash=digests[1])

    logs = chain_logs(chain, ledger.RoundFinalized, taskId=task_id)
    assert [decoded_result(log.result)[1] for log in logs] == digests
    last = max(logs, key=lambda log: log.round)
    assert (last.round, decoded_result(last.result)[1]) == (2, digests[1])
    assert ledger.task(task_id).status == COMPLETED
    assert ledger.task(task_id).globalModelHash == model_hash(CID_MODEL_2)


def test_finalize_round_credits_rewards_pro_rata(tasks, ledger, token, aggregator, trainers):
    budget = 1_000 * UNIT + 7  # not divisible, so the rounding down shows
    scores = [333_333, 333_333, 333_334]
    task_id = tasks.submitted(trainers[:3], rewardPerRound=budget)

    tx = finalize(ledger, aggregator, task_id, 1, trainers[:3], scores)

    expected = [reward(budget, s) for s in scores]
    assert expected[0] == 333_333_000_000_000_000_002  # floor(budget * 333333 / 1000000)
    assert expected[2] - expected[0] == budget // PPM  # one part per million apart
    assert list(only(tx, ledger.RoundFinalized).rewards) == expected
    # credited, not minted: finalizeRound never touches the token
    assert tx.events.filter(token.Transfer) == []
    assert token.totalSupply() == 0
    assert [ledger.membership(task_id, t).earned for t in trainers[:3]] == expected
    assert [ledger.claimable(task_id, t) for t in trainers[:3]] == expected
    assert ledger.task(task_id).totalRewarded == sum(expected)

    # the mint happens on claim, to the exact credited amounts
    transfers = []
    for trainer in trainers[:3]:
        transfers += claim(ledger, task_id, trainer).events.filter(token.Transfer)
    assert [(t["from"], t.to, t.value) for t in transfers] == [
        (ZERO_ADDRESS, t.address, amount) for t, amount in zip(trainers[:3], expected, strict=True)
    ]
    assert [token.balanceOf(t) for t in trainers[:3]] == expected
    assert token.totalSupply() == sum(expected) == ledger.task(task_id).totalRewarded


def test_finalize_round_pays_nothing_for_a_zero_score(tasks, ledger, token, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2])

    tx = finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 0])

    assert list(only(tx, ledger.RoundFinalized).rewards) == [500 * UNIT, 0]
    assert tx.events.filter(token.Transfer) == []
    assert [ledger.claimable(task_id, t) for t in trainers[:2]] == [500 * UNIT, 0]
    member = ledger.membership(task_id, trainers[1])
    assert (member.acceptedRounds, member.earned, member.lastSettledRound) == (1, 0, 1)
    with reverts(ledger.TaskLedgerNothingToClaim, taskId=task_id, participant=trainers[1]):
        claim(ledger, task_id, trainers[1])
    claimed = claim(ledger, task_id, trainers[0])
    assert [t.to for t in claimed.events.filter(token.Transfer)] == [trainers[0].address]
    assert token.balanceOf(trainers[1]) == 0


def test_finalize_round_keeps_unspent_budget(tasks, ledger, token, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2])

    finalize(ledger, aggregator, task_id, 1, trainers[:2], [200_000, 100_000])

    assert ledger.task(task_id).totalRewarded == 300 * UNIT
    for trainer in trainers[:2]:
        claim(ledger, task_id, trainer)
    assert token.totalSupply() == 300 * UNIT


def test_a_round_without_contributors_is_not_finalized_but_closed_with_its_rejections(
    tasks, ledger, token, registry, aggregator, trainers
):
    """Every update may be left out (for instance, none could be opened), but no model is
    the aggregate of fewer accepted updates than the quorum, not even of none: the round is
    closed with the rejections on record, and the model stays."""
    task_id = tasks.submitted(trainers[:2], minParticipants=1)

    with reverts(ledger.TaskLedgerQuorumNotReached, taskId=task_id, round=1, accepted=0,
                 required=1):
        finalize(ledger, aggregator, task_id, 1, [], [], trainers[:2])
    tx = ledger.closeRoundRejecting(task_id, 1, trainers[:2], [REASON_NORM_OUTLIER] * 2,
                                    CID_ROUND_EVIDENCE, sender=aggregator)

    assert tx.events.filter(ledger.RoundFinalized) == []
    assert tx.events.filter(token.Transfer) == []
    assert [u.outcomeBps for u in tx.events.filter(registry.ReputationUpdated)] == [0, 0]
    assert [ledger.membership(task_id, t).rejectedRounds for t in trainers[:2]] == [1, 1]
    assert ledger.task(task_id).globalModelHash == model_hash(CID_MODEL)
    assert ledger.task(task_id).totalRewarded == 0
    assert ledger.round(task_id, 1).status == CLOSED


@pytest.mark.parametrize(
    "scores,outcomes",
    [
        ([400_000], [4_000]),
        ([600_000, 300_000, 100_000], [10_000, 9_000, 3_000]),
        ([200_000, 200_100, 199_900, 0, 400_000], [10_000, 10_000, 9_995, 0, 10_000]),
        # a largest-remainder split of the budget: one part per million short of 1/3 is
        # just short of a full mark
        ([333_334, 333_333, 333_333], [10_000, 9_999, 9_999]),
        ([199_999, 1, 800_000], [5_999, 0, 10_000]),
    ],
    ids=["1", "3", "5", "3-equal", "3-ppm"],
)
def test_finalize_round_moves_reputation_by_share(
    tasks, ledger, registry, aggregator, trainers, scores, outcomes
):
    """Outcome = min(10_000, share relative to an equal split): an equal share is a full mark."""
    contributors = trainers[: len(scores)]
    assert [share_outcome(s, len(scores)) for s in scores] == outcomes
    task_id = tasks.submitted(contributors, minParticipants=1)

    tx = finalize(ledger, aggregator, task_id, 1, contributors, scores)

    updates = tx.events.filter(registry.ReputationUpdated)
    assert [(u.account, u.taskId, u.round, u.outcomeBps, u.oldBps, u.newBps) for u in updates] == [
        (t.address, task_id, 1, outcome, INITIAL_REPUTATION, ewma(INITIAL_REPUTATION, outcome))
        for t, outcome in zip(contributors, outcomes, strict=True)
    ]
    for trainer, outcome in zip(contributors, outcomes, strict=True):
        assert registry.reputationOf(trainer) == ewma(INITIAL_REPUTATION, outcome)
        assert registry.participant(trainer).acceptedUpdates == 1


def test_finalize_round_counts_rejections(tasks, ledger, registry, token, aggregator, trainers):
    task_id = tasks.submitted(trainers[:3], minParticipants=1)

    tx = finalize(ledger, aggregator, task_id, 1, trainers[:1], [PPM], trainers[1:3])

    for trainer in trainers[1:3]:
        member = ledger.membership(task_id, trainer)
        assert (
            member.acceptedRounds,
            member.rejectedRounds,
            member.earned,
            member.lastSettledRound,
        ) == (0, 1, 0, 1)
        record = registry.participant(trainer)
        assert (record.rejectedUpdates, record.rejectionsInWindow, record.acceptedUpdates) == (
            1,
            1,
            0,
        )
        assert registry.reputationOf(trainer) == ewma(INITIAL_REPUTATION, 0)
        assert ledger.claimable(task_id, trainer) == 0
        assert token.balanceOf(trainer) == 0
    rejections = tx.events.filter(registry.UpdateRejected)
    assert [(r.account, r.taskId, r.round, r.rejectionsInWindow) for r in rejections] == [
        (trainers[1].address, task_id, 1, 1),
        (trainers[2].address, task_id, 1, 1),
    ]
    zero_outcomes = [
        u.account for u in tx.events.filter(registry.ReputationUpdated) if u.outcomeBps == 0
    ]
    assert zero_outcomes == [trainers[1].address, trainers[2].address]


def test_repeated_rejections_blacklist_the_uploader(tasks, ledger, registry, aggregator, trainers):
    honest, cheat = trainers[:2]
    task_id = tasks.joined([honest, cheat], rounds=POLICY.max_rejections + 1, minParticipants=1)
    model = CID_MODEL
    for round_number in range(1, POLICY.max_rejections + 1):
        start(ledger, aggregator, task_id, model=model)
        submit(ledger, task_id, round_number, honest)
        submit(ledger, task_id, round_number, cheat)
        model = f"{CID_NEW_MODEL}{round_number}"
        tx = finalize(
            ledger, aggregator, task_id, round_number, [honest], [PPM], [cheat], new_cid=model
        )

    blacklisted = only(tx, registry.Blacklisted)  # who counts as `by` is the registry's test
    assert (blacklisted.account, blacklisted.by, blacklisted.taskId, blacklisted.round,
            blacklisted.automatic, blacklisted.evidenceCid) == (
        cheat.address, aggregator.address, task_id, POLICY.max_rejections, True,
        CID_ROUND_EVIDENCE,
    )
    assert registry.isBlacklisted(cheat)
    assert not registry.isBlacklisted(honest)
    assert ledger.membership(task_id, cheat).rejectedRounds == POLICY.max_rejections
    start(ledger, aggregator, task_id, model=model)
    with reverts(ledger.TaskLedgerBlacklisted, account=cheat):
        submit(ledger, task_id, POLICY.max_rejections + 1, cheat)


def test_finalize_round_may_reject_a_blacklisted_uploader(
    tasks, ledger, aggregator, trainers, blacklist
):
    task_id = tasks.submitted(trainers[:2], minParticipants=1)
    blacklist(trainers[1])

    finalize(ledger, aggregator, task_id, 1, trainers[:1], [PPM], trainers[1:2])

    assert ledger.membership(task_id, trainers[1]).rejectedRounds == 1


def test_finalize_round_updates_memberships_task_and_round(tasks, ledger, aggregator, trainers):
    task_id = tasks.submitted(trainers[:3])  # two rounds

    tx = finalize(ledger, aggregator, task_id, 1, trainers[:2], [700_000, 300_000], trainers[2:3])

    assert ledger.membership(task_id, trainers[0]) == (True, 1, 1, 1, 0, 700 * UNIT)
    assert ledger.membership(task_id, trainers[1]) == (True, 1, 1, 1, 0, 300 * UNIT)
    assert ledger.membership(task_id, trainers[2]) == (True, 1, 1, 0, 1, 0)
    round_ = ledger.round(task_id, 1)
    assert (round_.finalizedBlock, round_.submissions, round_.status) == (
        tx.block_number,
        3,
        FINALIZED,
    )
    task = ledger.task(task_id)
    assert (task.globalModelHash, task.totalRewarded, task.currentRound, task.status) == (
        model_hash(CID_NEW_MODEL),
        1_000 * UNIT,
        1,
        OPEN,
    )
    assert tx.events.filter(ledger.TaskCompleted) == []


def test_last_round_completes_task(tasks, ledger, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2], rounds=1)

    tx = finalize(
        ledger, aggregator, task_id, 1, trainers[:2], [400_000, 400_000], new_cid=CID_MODEL_2
    )

    event = only(tx, ledger.TaskCompleted)
    assert (event.taskId, event.finalModelCid, event.totalRewarded) == (
        task_id,
        CID_MODEL_2,
        800 * UNIT,
    )
    task = ledger.task(task_id)
    assert (task.status, task.globalModelHash, task.totalRewarded) == (
        COMPLETED,
        model_hash(CID_MODEL_2),
        800 * UNIT,
    )


# --------------------------------------------------------------------------------------------
# finalizeRound: errors


@pytest.mark.parametrize("caller", ["owner", "trainer"])
def test_finalize_round_only_aggregator(tasks, ledger, owner, trainers, caller):
    account = owner if caller == "owner" else trainers[0]
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerNotAggregator, taskId=task_id, caller=account):
        finalize(ledger, account, task_id, 1, trainers[:2], [500_000, 500_000])


def test_finalize_round_unknown_task_reverts(ledger, aggregator):
    with reverts(ledger.TaskLedgerUnknownTask, taskId=3):
        finalize(ledger, aggregator, 3, 1)


@pytest.mark.parametrize("given", [0, 2])
def test_finalize_other_than_open_round_reverts(tasks, ledger, aggregator, trainers, given):
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerWrongRound, taskId=task_id, given=given, current=1):
        finalize(ledger, aggregator, task_id, given)


def test_finalize_before_any_round_reverts(tasks, ledger, aggregator, trainers):
    task_id = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerWrongRound, taskId=task_id, given=1, current=0):
        finalize(ledger, aggregator, task_id, 1)


def test_finalize_twice_reverts(tasks, ledger, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2])  # two rounds, so the task stays open
    finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000])

    with reverts(ledger.TaskLedgerRoundAlreadyFinalized, taskId=task_id, round=1):
        finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000])


def test_finalize_requires_new_model_cid(tasks, ledger, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerEmptyCid):
        finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000], new_cid="")


def test_finalize_requires_a_model_hash(tasks, ledger, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerEmptyModelHash):
        finalize(
            ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000],
            model_hash=b"\0" * 32,
        )
    assert ledger.round(task_id, 1).status == OPEN
    assert ledger.membership(task_id, trainers[0]).earned == 0


@pytest.mark.parametrize("n_scores", [1, 3])
def test_finalize_requires_one_score_per_contributor(tasks, ledger, aggregator, trainers, n_scores):
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerLengthMismatch, expected=2, actual=n_scores):
        finalize(ledger, aggregator, task_id, 1, trainers[:2], [100_000] * n_scores)


@pytest.mark.parametrize("n_reasons", [0, 1, 3])
def test_finalize_requires_one_reason_per_rejected_update(
    tasks, ledger, aggregator, trainers, n_reasons
):
    task_id = tasks.submitted(trainers[:3], minParticipants=1)
    rejected = trainers[1:3]

    with reverts(ledger.TaskLedgerLengthMismatch, expected=2, actual=n_reasons):
        finalize(
            ledger,
            aggregator,
            task_id,
            1,
            trainers[:1],
            [PPM],
            rejected,
            reasons=[REASON_NORM_OUTLIER] * n_reasons,
        )
    assert ledger.round(task_id, 1).status == OPEN


def test_finalize_requires_an_evidence_cid(tasks, ledger, aggregator, trainers):
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerEmptyCid):
        finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000], evidence="")
    assert ledger.round(task_id, 1).status == OPEN


def test_reason_codes_are_recorded_not_interpreted(tasks, ledger, registry, aggregator, trainers):
    """Every uint8 is accepted, also codes beyond the 13 the spec names: a rejection counts
    the same whatever its reason."""
    task_id = tasks.submitted(trainers[:4], minParticipants=1)
    reasons = [0, 12, 255]

    tx = finalize(ledger, aggregator, task_id, 1, trainers[:1], [PPM], trainers[1:4],
                  reasons=reasons)

    assert decoded_result(only(tx, ledger.RoundFinalized).result)[5] == reasons
    for trainer in trainers[1:4]:
        assert ledger.membership(task_id, trainer).rejectedRounds == 1
        assert registry.participant(trainer).rejectionsInWindow == 1


@pytest.mark.parametrize("as_", ["contributor", "rejected"])
def test_finalize_with_a_non_submitter_reverts(tasks, ledger, aggregator, trainers, as_):
    task_id = tasks.started(trainers[:3], minParticipants=1)
    submit(ledger, task_id, 1, trainers[0])
    idle = trainers[1]  # joined, never submitted
    contributors, scores, rejected = (
        ([trainers[0], idle], [500_000, 500_000], [])
        if as_ == "contributor"
        else ([trainers[0]], [500_000], [idle])
    )

    with reverts(ledger.TaskLedgerNotSubmitted, taskId=task_id, round=1, participant=idle):
        finalize(ledger, aggregator, task_id, 1, contributors, scores, rejected)


def test_finalize_with_an_outsider_reverts(tasks, ledger, aggregator, trainers, stranger):
    task_id = tasks.submitted(trainers[:2], minParticipants=1)

    with reverts(ledger.TaskLedgerNotSubmitted, taskId=task_id, round=1, participant=stranger):
        finalize(ledger, aggregator, task_id, 1, [stranger], [100_000])


def test_finalize_with_last_rounds_submitter_reverts(tasks, ledger, aggregator, trainers):
    """An update of round 1 does not count in round 2."""
    task_id = tasks.submitted(trainers[:2], minParticipants=1)
    finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000])
    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    submit(ledger, task_id, 2, trainers[0])

    with reverts(ledger.TaskLedgerNotSubmitted, taskId=task_id, round=2, participant=trainers[1]):
        finalize(ledger, aggregator, task_id, 2, trainers[:2], [500_000, 500_000])


@pytest.mark.parametrize(
    "contributors,rejected",
    [([0, 1, 0], []), ([0, 1], [1]), ([0], [1, 1])],
    ids=["contributor-twice", "contributor-and-rejected", "rejected-twice"],
)
def test_finalize_with_duplicate_participant_reverts(
    tasks, ledger, aggregator, trainers, contributors, rejected
):
    task_id = tasks.submitted(trainers[:2], minParticipants=1)
    duplicate = trainers[0] if contributors.count(0) > 1 else trainers[1]

    with reverts(
        ledger.TaskLedgerDuplicateParticipant, taskId=task_id, round=1, participant=duplicate
    ):
        finalize(
            ledger,
            aggregator,
            task_id,
            1,
            [trainers[i] for i in contributors],
            [100_000] * len(contributors),
            [trainers[i] for i in rejected],
        )


@pytest.mark.parametrize(
    "scores,total",
    [
        ([500_001, 500_000], 1_000_001),
        ([1_000_001], 1_000_001),
        ([UINT32_MAX, UINT32_MAX], 2 * UINT32_MAX),  # the sum is reported beyond uint32
    ],
)
def test_finalize_over_budget_reverts(tasks, ledger, aggregator, trainers, scores, total):
    contributors = trainers[: len(scores)]
    task_id = tasks.submitted(contributors, minParticipants=1)

    with reverts(ledger.TaskLedgerBudgetExceeded, totalScore=total):
        finalize(ledger, aggregator, task_id, 1, contributors, scores)


def test_finalize_over_budget_reverts_even_at_maximal_reward(tasks, ledger, aggregator, trainers):
    """A single huge score must be reported as a budget excess, not as an arithmetic panic."""
    budget = FLT_CAP // 2
    task_id = tasks.submitted(trainers[:1], minParticipants=1, rewardPerRound=budget)
    finalize(ledger, aggregator, task_id, 1, trainers[:1], [PPM])
    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    submit(ledger, task_id, 2, trainers[0])

    with reverts(ledger.TaskLedgerBudgetExceeded, totalScore=3_500_000):
        finalize(ledger, aggregator, task_id, 2, trainers[:1], [3_500_000])


def test_finalize_paying_a_blacklisted_contributor_reverts(
    tasks, ledger, registry, aggregator, trainers, blacklist
):
    task_id = tasks.submitted(trainers[:2])
    blacklist(trainers[1])  # after the upload: governance caught it late

    with reverts(registry.ParticipantRegistryBlacklisted, account=trainers[1]):
        finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000])


# --------------------------------------------------------------------------------------------
# claimRewards


def test_claim_rewards_mints_what_was_credited(tasks, ledger, token, aggregator, trainers):
    winner, runner_up = trainers[:2]
    task_id = tasks.completed([winner, runner_up], scores=[600_000, 300_000])
    assert ledger.claimable(task_id, winner) == 600 * UNIT

    tx = claim(ledger, task_id, winner)

    assert tx.return_value == 600 * UNIT
    event = only(tx, ledger.RewardsClaimed)
    assert (event.taskId, event.participant, event.amount) == (task_id, winner, 600 * UNIT)
    transfer = only(tx, token.Transfer)
    assert (transfer["from"], transfer.to, transfer.value) == (
        ZERO_ADDRESS,
        winner.address,
        600 * UNIT,
    )
    assert token.balanceOf(winner) == 600 * UNIT
    assert token.totalSupply() == 600 * UNIT
    assert ledger.claimable(task_id, winner) == 0
    assert ledger.claimable(task_id, runner_up) == 300 * UNIT  # the others' credit is untouched
    # what it earned stays on record
    assert ledger.membership(task_id, winner).earned == 600 * UNIT
    assert ledger.task(task_id).totalRewarded == 900 * UNIT
    assert ledger.contributions(task_id) == (
        [winner.address, runner_up.address],
        [600 * UNIT, 300 * UNIT],
    )

    with reverts(ledger.TaskLedgerNothingToClaim, taskId=task_id, participant=winner):
        claim(ledger, task_id, winner)

    assert token.balanceOf(winner) == 600 * UNIT
    assert token.totalSupply() == 600 * UNIT


def test_claims_accumulate_across_rounds(tasks, ledger, token, aggregator, trainers):
    """One participant claims after each round, the other once at the end: both get it all."""
    early, late = trainers[:2]
    task_id = tasks.submitted([early, late])  # two rounds
    finalize(ledger, aggregator, task_id, 1, [early, late], [700_000, 300_000])

    assert claim(ledger, task_id, early).return_value == 700 * UNIT
    assert ledger.claimable(task_id, early) == 0
    with reverts(ledger.TaskLedgerNothingToClaim, taskId=task_id, participant=early):
        claim(ledger, task_id, early)

    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    for trainer in (early, late):
        submit(ledger, task_id, 2, trainer)
    finalize(ledger, aggregator, task_id, 2, [early, late], [200_000, 800_000], new_cid=CID_MODEL_2)

    assert [ledger.claimable(task_id, t) for t in (early, late)] == [200 * UNIT, 1_100 * UNIT]
    for trainer, amount, total in ((early, 200, 900), (late, 1_100, 1_100)):
        tx = claim(ledger, task_id, trainer)
        assert tx.return_value == amount * UNIT
        assert only(tx, ledger.RewardsClaimed).amount == amount * UNIT
        assert only(tx, token.Transfer).value == amount * UNIT  # one mint for what is due
        assert (
            token.balanceOf(trainer) == total * UNIT == ledger.membership(task_id, trainer).earned
        )
        assert ledger.claimable(task_id, trainer) == 0
    assert token.totalSupply() == 2_000 * UNIT == ledger.task(task_id).totalRewarded


def test_claim_by_blacklisted_participant_reverts(
    tasks, ledger, token, registry, governance, trainers, blacklist
):
    cheat, honest = trainers[:2]
    task_id = tasks.completed([cheat, honest])
    blacklist(cheat)

    with reverts(ledger.TaskLedgerBlacklisted, account=cheat):
        claim(ledger, task_id, cheat)

    assert token.balanceOf(cheat) == 0
    assert ledger.claimable(task_id, cheat) == 500 * UNIT  # frozen, not forfeited
    assert claim(ledger, task_id, honest).return_value == 500 * UNIT
    registry.liftBlacklist(cheat, sender=governance)
    assert claim(ledger, task_id, cheat).return_value == 500 * UNIT


@pytest.mark.parametrize("task_id", [0, 2])
def test_claim_on_unknown_task_reverts(tasks, ledger, trainers, task_id):
    tasks.completed(trainers[:2])  # task 1 exists and owes its contributors

    with reverts(ledger.TaskLedgerUnknownTask, taskId=task_id):
        claim(ledger, task_id, trainers[0])


@pytest.mark.parametrize(
    "who", ["stranger", "idle-member", "rejected", "zero-score", "aggregator", "creator"]
)
def test_claim_by_a_non_contributor_reverts(
    tasks, ledger, token, aggregator, owner, trainers, stranger, who
):
    paid, zero, rejected, idle = trainers[:4]
    task_id = tasks.started([paid, zero, rejected, idle])
    for trainer in (paid, zero, rejected):
        submit(ledger, task_id, 1, trainer)
    finalize(ledger, aggregator, task_id, 1, [paid, zero], [PPM, 0], [rejected])
    account = {
        "stranger": stranger,
        "idle-member": idle,
        "rejected": rejected,
        "zero-score": zero,
        "aggregator": aggregator,
        "creator": owner,
    }[who]

    with reverts(ledger.TaskLedgerNothingToClaim, taskId=task_id, participant=account):
        claim(ledger, task_id, account)

    assert ledger.claimable(task_id, account) == 0
    assert token.totalSupply() == 0


def test_claim_before_any_finalization_reverts(tasks, ledger, trainers):
    task_id = tasks.submitted(trainers[:2])

    with reverts(ledger.TaskLedgerNothingToClaim, taskId=task_id, participant=trainers[0]):
        claim(ledger, task_id, trainers[0])


def test_rewards_are_claimed_per_task(tasks, ledger, token, trainers):
    paid = tasks.completed(trainers[:2])
    unpaid = tasks.joined(trainers[:2])

    with reverts(ledger.TaskLedgerNothingToClaim, taskId=unpaid, participant=trainers[0]):
        claim(ledger, unpaid, trainers[0])

    assert ledger.claimable(unpaid, trainers[0]) == 0
    assert claim(ledger, paid, trainers[0]).return_value == 500 * UNIT
    assert token.balanceOf(trainers[0]) == 500 * UNIT


# --------------------------------------------------------------------------------------------
# views and multi-round flow


def test_views_of_unknown_ids_are_empty(ledger, trainers):
    assert ledger.task(42).status == NONE
    assert ledger.task(42).creator == ZERO_ADDRESS
    assert ledger.round(42, 1) == (0, 0, 0, 0, NONE)
    assert ledger.membership(42, trainers[0]) == (False, 0, 0, 0, 0, 0)
    assert ledger.participants(42) == []
    assert ledger.contributions(42) == ([], [])
    assert ledger.claimable(42, trainers[0]) == 0


def test_reward_share_is_what_an_account_earned_out_of_the_task_total(
    tasks, ledger, aggregator, trainers, stranger
):
    task_id = tasks.submitted(trainers[:3])  # two rounds
    assert tuple(ledger.rewardShare(task_id, trainers[0])) == (0, 0)
    finalize(ledger, aggregator, task_id, 1, trainers[:2], [600_000, 300_000], trainers[2:3])
    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    for trainer in trainers[:2]:
        submit(ledger, task_id, 2, trainer)
    finalize(ledger, aggregator, task_id, 2, trainers[:2], [100_000, 400_000], new_cid=CID_MODEL_2)
    claim(ledger, task_id, trainers[0])  # claiming changes neither figure

    total = 1_400 * UNIT
    assert tuple(ledger.rewardShare(task_id, trainers[0])) == (700 * UNIT, total)
    assert tuple(ledger.rewardShare(task_id, trainers[1])) == (700 * UNIT, total)
    assert tuple(ledger.rewardShare(task_id, trainers[2])) == (0, total)  # rejected
    assert tuple(ledger.rewardShare(task_id, stranger)) == (0, total)  # never joined
    assert ledger.task(task_id).totalRewarded == total
    assert tuple(ledger.rewardShare(task_id + 1, trainers[0])) == (0, 0)  # unknown task


def test_contributions_list_only_paid_participants(tasks, ledger, aggregator, trainers):
    paid, unpaid, rejected, idle = trainers[:4]
    task_id = tasks.started([paid, unpaid, rejected, idle])
    for trainer in (paid, unpaid, rejected):
        submit(ledger, task_id, 1, trainer)
    finalize(ledger, aggregator, task_id, 1, [paid, unpaid], [700_000, 0], [rejected])

    assert ledger.contributions(task_id) == ([paid.address], [700 * UNIT])

    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    submit(ledger, task_id, 2, unpaid)  # joined second, listed second
    submit(ledger, task_id, 2, paid)
    finalize(ledger, aggregator, task_id, 2, [unpaid, paid], [600_000, 400_000])

    accounts, earned = ledger.contributions(task_id)
    assert accounts == [paid.address, unpaid.address]
    assert earned == [1_100 * UNIT, 600 * UNIT]
    assert [ledger.membership(task_id, t).earned for t in (paid, unpaid)] == earned


def test_second_round_trains_on_first_rounds_model(
    tasks, ledger, token, chain, aggregator, trainers
):
    task_id = tasks.submitted(trainers[:2])  # two rounds
    finalize(
        ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000], new_cid=CID_NEW_MODEL
    )

    started = only(
        start(ledger, aggregator, task_id, model=CID_NEW_MODEL, workload=CID_WORKLOAD + "2"),
        ledger.RoundStarted,
    )
    assert (started.round, started.globalModelCid, started.workloadCid) == (
        2,
        CID_NEW_MODEL,
        CID_WORKLOAD + "2",
    )
    for trainer in trainers[:2]:
        submit(ledger, task_id, 2, trainer)  # the round-1 upload does not block round 2
    tx = finalize(
        ledger, aggregator, task_id, 2, trainers[:2], [800_000, 200_000], new_cid=CID_MODEL_2
    )

    finalized = only(tx, ledger.RoundFinalized)
    assert (finalized.round, finalized.result[0]) == (2, CID_MODEL_2)
    # round 2 aggregated on top of round 1's result, as its RoundStarted says
    (first,) = chain_logs(chain, ledger.RoundFinalized, taskId=task_id, round=1)
    (second_start,) = chain_logs(chain, ledger.RoundStarted, taskId=task_id, round=2)
    assert second_start.globalModelCid == first.result[0] == CID_NEW_MODEL
    assert only(tx, ledger.TaskCompleted).totalRewarded == 2_000 * UNIT
    task = ledger.task(task_id)
    assert (task.currentRound, task.globalModelHash, task.status, task.totalRewarded) == (
        2,
        model_hash(CID_MODEL_2),
        COMPLETED,
        2_000 * UNIT,
    )
    assert ledger.membership(task_id, trainers[0]) == (True, 2, 2, 2, 0, 1_300 * UNIT)
    assert ledger.claimable(task_id, trainers[1]) == 700 * UNIT
    claim(ledger, task_id, trainers[1])
    assert token.balanceOf(trainers[1]) == 700 * UNIT


def test_figure1_record_is_readable_from_chain(tasks, ledger, chain, aggregator, trainers):
    """Figure 1 of the paper: training mode, time, uploader, previous global model, aggregated
    updates, time spent and IPFS location, for the uploads and aggregations of two rounds,
    recovered from logs alone (no receipts kept by the test).

    An aggregation's previous global model is the model its round started on (``RoundStarted``
    of the same round); the initial one is in ``TaskCreated``, later ones are the previous
    round's ``RoundFinalized`` result.
    """
    uploader, other = trainers[:2]
    task_id = tasks.joined([uploader, other], trainingMode=DP | PRUNING)  # two rounds
    plan = {  # round: (model it starts on, new model, aggregation millis)
        1: (CID_MODEL, CID_NEW_MODEL, 2_468),
        2: (CID_NEW_MODEL, CID_MODEL_2, 1_357),
    }
    for round_number, (model, new_model, aggregation_millis) in plan.items():
        start(ledger, aggregator, task_id, model=model)
        submit(
            ledger,
            task_id,
            round_number,
            uploader,
            cid=f"{CID_UPDATE}{round_number}",
            samples=512,
            millis=9_876 + round_number,
        )
        submit(
            ledger,
            task_id,
            round_number,
            other,
            cid=f"{CID_UPDATE}x{round_number}",
            samples=256,
            millis=1_111,
        )
        finalize(
            ledger,
            aggregator,
            task_id,
            round_number,
            [uploader, other],
            [600_000, 400_000],
            new_cid=new_model,
            millis=aggregation_millis,
        )

    (created,) = chain_logs(chain, ledger.TaskCreated, taskId=task_id)
    previous_model = created.config[0]  # the initial global model
    for round_number, (model, new_model, aggregation_millis) in plan.items():
        (started,) = chain_logs(chain, ledger.RoundStarted, taskId=task_id, round=round_number)
        (upload,) = chain_logs(
            chain,
            ledger.UpdateSubmitted,
            taskId=task_id,
            round=round_number,
            participant=uploader.address,
        )
        (aggregation,) = chain_logs(
            chain, ledger.RoundFinalized, taskId=task_id, round=round_number
        )
        uploads = {
            u.participant.lower(): u.updateCid
            for u in chain_logs(chain, ledger.UpdateSubmitted, taskId=task_id, round=round_number)
        }
        assert started.block_number <= upload.block_number <= aggregation.block_number

        # the upload
        assert upload.trainingMode == DP | PRUNING  # training mode
        assert emitted_time(upload) == chain.blocks[upload.block_number].timestamp  # time
        assert upload.participant == uploader  # uploader
        assert started.globalModelCid == model  # previous global model it trained from
        assert upload.updateCid == f"{CID_UPDATE}{round_number}"  # IPFS location
        assert upload.trainingMillis == 9_876 + round_number  # time spent
        assert upload.numSamples == 512

        # the aggregation
        new_cid, _hash, contributors, _scores, _rejected, _reasons, evidence, millis = (
            decoded_result(aggregation.result)
        )
        assert evidence == CID_ROUND_EVIDENCE  # the round's verdicts and statistics
        assert started.trainingMode == DP | PRUNING  # training mode
        assert emitted_time(aggregation) == chain.blocks[aggregation.block_number].timestamp  # time
        assert aggregation.aggregator == aggregator  # uploader of the new model
        assert started.globalModelCid == previous_model == model  # previous global model
        assert [uploads[c] for c in contributors] == [  # the updates aggregated
            f"{CID_UPDATE}{round_number}",
            f"{CID_UPDATE}x{round_number}",
        ]
        assert millis == aggregation_millis  # time spent
        assert new_cid == new_model  # IPFS location
        previous_model = new_cid


# --------------------------------------------------------------------------------------------
# gas budgets

SUBMIT_BUDGET = 80_000


def finalize_budget(contributors):
    # 60k before the round named its aggregator and evidence with each rejection, checked its
    # quorum and, in the last round, released the task's unspent budget under FLT's cap.
    return 65_000 + 40_000 * contributors


def test_submit_update_gas(tasks, ledger, aggregator, trainers):
    """First and later uploads of round 1 and of round 2 each stay within the budget."""
    task_id = tasks.started(trainers)
    gas = {}
    for round_number in (1, 2):
        if round_number == 2:
            finalize(ledger, aggregator, task_id, 1, trainers, [200_000] * 5)
            start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
        for position, trainer in enumerate(trainers):
            tx = submit(ledger, task_id, round_number, trainer)
            gas[(round_number, position)] = tx.gas_used

    measured = {
        "round1-first": gas[(1, 0)],
        "round1-later": gas[(1, 4)],
        "round2-first": gas[(2, 0)],
        "round2-later": gas[(2, 4)],
    }
    print(f"submitUpdate gas: {measured}")
    assert all(g <= SUBMIT_BUDGET for g in measured.values()), measured


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("round_number", [1, 2], ids=["round1-first-credit", "round2-final"])
def test_finalize_round_gas(tasks, ledger, aggregator, trainers, n, round_number):
    contributors = trainers[:n]
    scores = [PPM // n] * n
    task_id = tasks.submitted(contributors, minParticipants=1, rounds=2)
    if round_number == 2:
        finalize(ledger, aggregator, task_id, 1, contributors, scores)
        start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
        for trainer in contributors:
            submit(ledger, task_id, 2, trainer)

    gas = finalize(
        ledger, aggregator, task_id, round_number, contributors, scores, new_cid=CID_MODEL_2
    ).gas_used

    print(f"finalizeRound gas, round {round_number}, {n} contributors: {gas}")
    assert gas <= finalize_budget(n), (
        f"finalizeRound with {n} contributors in round {round_number} used {gas} gas, "
        f"budget {finalize_budget(n)}"
    )


def test_claim_rewards_gas(tasks, ledger, token, aggregator, trainers):
    """No budget: measured so that the cost of the pull payment is on record.

    The first claim mints into an empty supply and balance; the second into an empty balance;
    the third, after round 2, to an account that already holds FLT and claimed before.
    """
    task_id = tasks.submitted(trainers[:2])  # two rounds
    finalize(ledger, aggregator, task_id, 1, trainers[:2], [500_000, 500_000])
    first = claim(ledger, task_id, trainers[0])
    second = claim(ledger, task_id, trainers[1])
    start(ledger, aggregator, task_id, model=CID_NEW_MODEL)
    for trainer in trainers[:2]:
        submit(ledger, task_id, 2, trainer)
    finalize(ledger, aggregator, task_id, 2, trainers[:2], [500_000, 500_000], new_cid=CID_MODEL_2)
    again = claim(ledger, task_id, trainers[0])

    measured = {
        "first-mint": first.gas_used,
        "fresh-balance": second.gas_used,
        "repeat-claim": again.gas_used,
    }
    print(f"claimRewards gas: {measured}")
    assert [tx.return_value for tx in (first, second, again)] == [500 * UNIT] * 3
    assert token.totalSupply() == 1_500 * UNIT


# ---------------------------------------------------------------------------
# A blacklisted aggregator or task creator cannot move state either
# ---------------------------------------------------------------------------


def test_blacklisted_aggregator_can_neither_start_nor_finalize(tasks, ledger, registry, owner,
                                                               aggregator, trainers):
    task_id = tasks.joined(trainers[:2])
    registry.blacklist(aggregator, CID_SPEC, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=aggregator.address):
        ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    registry.liftBlacklist(aggregator, sender=owner)
    ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=aggregator)
    ledger.submitUpdate(task_id, 1, CID_UPDATE, 10, 10, "", sender=trainers[0])
    registry.blacklist(aggregator, CID_SPEC, sender=owner)
    with reverts(ledger.TaskLedgerBlacklisted, account=aggregator.address):
        ledger.finalizeRound(task_id, 1, round_result(contributors=[trainers[0]], scores=[PPM]),
                             sender=aggregator)
    assert ledger.round(task_id, 1).status == 1  # still open


def test_blacklisted_task_creator_cannot_create_tasks(ledger, registry, owner, aggregator):
    registry.blacklist(owner, CID_SPEC, sender=owner)
    count = ledger.taskCount()
    with reverts(ledger.TaskLedgerBlacklisted, account=owner.address):
        ledger.createTask(task_config(aggregator), sender=owner)
    assert ledger.taskCount() == count
