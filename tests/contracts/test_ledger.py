import ape
import pytest
from conftest import *  # noqa

def test_x(tasks, ledger, registry, token, trainers, aggregator, owner, stranger, chain):
    with ape.reverts(ledger.AccessControlUnauthorizedAccount, account=stranger, neededRole=ledger.TASK_CREATOR_ROLE()):
        ledger.createTask(task_config(aggregator), sender=stranger)
    tid = tasks.submitted(trainers[:2])
    start = chain.blocks.height
    logs = list(ledger.UpdateSubmitted.range(0, chain.blocks.height + 1, search_topics={"taskId": tid, "round": 1}))
    print("RANGE", logs)
    l = logs[0]
    print(l.block_number, l.transaction_hash, chain.blocks[l.block_number].timestamp, l.timestamp)
    print(type(l.participant), l.participant == trainers[0], trainers[0] == l.participant)
    try:
        print(ledger.UpdateSubmitted.query("*"))
    except Exception as e:
        print("QUERY ERR", e)
    tx = ledger.finalizeRound(tid, 1, round_result(contributors=trainers[:2], scores=[5000, 5000]), sender=aggregator)
    print("TS", tx.timestamp, chain.blocks[tx.block_number].timestamp)
    with ape.reverts(ledger.TaskLedgerRoundAlreadyFinalized, taskId=tid, round=1):
        ledger.finalizeRound(tid, 1, round_result(contributors=trainers[:2], scores=[5000, 5000]), sender=aggregator)
    registry.blacklist(trainers[0], CID_SPEC, sender=owner)
    print(ledger.startRound(tid, CID_WORKLOAD, sender=aggregator).return_value)
    ledger.submitUpdate(tid, 2, "x", 1, 1, sender=trainers[1])
    with ape.reverts(registry.ParticipantRegistryBlacklisted, account=trainers[0]):
        ledger.finalizeRound(tid, 2, round_result(contributors=trainers[1:2], scores=[5000], rejected=[trainers[0]]), sender=aggregator)
