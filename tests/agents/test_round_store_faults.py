"""Storage faults in the middle of a round, with the agents on the real local chain.

The store fails the way it really would: the Kubo address it is switched to has nothing
listening (a refused connection, so the real retry and the real ``NodeUnavailableError``),
and a block of the embedded store is changed on disk. What must hold: a store that is down
costs nobody anything. The aggregator judges nobody and finalizes the round once the store
is back; when it opens a round, it leaves no member without the task key; a participant
does not give up its round. An update that alone cannot be fetched, or fails its CID check,
is its sender's rejection with the reason, and the round goes on with everyone else.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fl_agent.agents.aggregator import UpdateNotYetAvailableError
from fl_agent.chain.records import RoundStatus, TaskStatus
from fl_agent.crypto.envelopes import Keyring
from fl_agent.retry import transient
from fl_agent.storage.cid import compute_cid
from fl_agent.storage.store import KuboStore, NodeUnavailableError


class FlakyStore:
    """The world's store, except that while ``down`` every call, and at all times a get of
    a CID in ``unreachable``, goes to a Kubo address where nothing listens. With
    ``dies_after`` set, it goes down right after it served that CID; ``back_for_add``, it
    is back by the time anything is added (a node that restarts while the updates are
    fetched)."""

    def __init__(self, store: Any) -> None:
        from fl_agent.chain.node import free_port

        self.store, self.down, self.unreachable = store, False, set[str]()
        self.dies_after: str | None = None
        self.back_for_add = False
        self.adds_down = False  # only adds fail (it serves what it holds)
        self.tries: Counter[str] = Counter()
        self.dead = KuboStore(f"http://127.0.0.1:{free_port()}", attempts=2, backoff=0.01)

    def get(self, cid: str) -> bytes:
        self.tries[cid] += 1
        data = (self.dead if self.down or cid in self.unreachable else self.store).get(cid)
        self.down = self.down or cid == self.dies_after
        return data

    def add(self, data: bytes) -> str:
        self.down = self.down and not self.back_for_add
        return (self.dead if self.down or self.adds_down else self.store).add(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dead if self.down else self.store, name)


def submitted_round(world, window: int = 200) -> tuple[int, Any, list[Any]]:
    """A one-round task whose two updates are in; the aggregator (in process, on a
    :class:`FlakyStore`) has opened the round and not yet finalized it."""
    task_id = world.create_task(rounds=1, window=window, min_participants=1)
    people = [world.participant(task_id, i) for i in range(2)]
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()  # opens round 1
    for person in people:
        person.step()
    aggregator.store = FlakyStore(world.store)
    updates = world.fairfl.ledger.events("UpdateSubmitted", taskId=task_id, round=1)
    assert len(updates) == 2
    return task_id, aggregator, updates


def standings(world, updates) -> list[Any]:
    return [world.fairfl.registry.participant(str(u.participant)) for u in updates]


@pytest.mark.parametrize("when", ["down", "dies-after-the-round-model",
                                  "down-while-the-updates-are-fetched"])
def test_a_store_that_is_down_judges_nobody_and_the_round_finalizes_once_it_is_back(
        world, when):
    """The node is down when the round is finalized, or dies just after it served the
    round's global model (and stays down, or is back before the new model is added)."""
    task_id, aggregator, updates = submitted_round(world)
    before = standings(world, updates)
    if when == "down":
        aggregator.store.down = True
    else:
        [opened] = world.fairfl.ledger.events("RoundStarted", taskId=task_id, round=1)
        aggregator.store.dies_after = str(opened.globalModelCid)
        aggregator.store.back_for_add = when == "down-while-the-updates-are-fetched"
    with pytest.raises(NodeUnavailableError) as down:
        aggregator.step()
    assert transient(down.value)  # the agent's loop waits and tries again
    rnd = world.fairfl.ledger.round(task_id, 1)
    assert (rnd.status, rnd.submissions) == (RoundStatus.OPEN, 2)
    assert standings(world, updates) == before  # reputation, rejections, blacklist

    aggregator.store.down, aggregator.store.dies_after = False, None
    aggregator.store.back_for_add = False
    outcome = aggregator.step()
    assert sorted(outcome.accepted) == sorted(str(u.participant) for u in updates)
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED


def test_an_update_nobody_provides_is_waited_for_until_the_window_closes_then_rejected(
        world):
    """While the window is open its sender may still provide it; after, the sender is
    rejected with the reason and the round goes on with everyone else."""
    from ape import chain

    task_id, aggregator, updates = submitted_round(world, window=30)
    missing, kept = updates
    aggregator.store.unreachable.add(str(missing.updateCid))
    before = standings(world, updates)
    with pytest.raises(UpdateNotYetAvailableError) as waiting:
        aggregator.step()
    assert transient(waiting.value)
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.OPEN
    assert standings(world, updates) == before
    deadline = world.fairfl.ledger.round(task_id, 1).deadline_block
    chain.provider.make_request("anvil_mine", [deadline - int(chain.blocks.height) + 1])
    tried = aggregator.store.tries[str(missing.updateCid)]
    outcome = aggregator.step()
    assert aggregator.store.tries[str(missing.updateCid)] == tried  # not tried again: each
    # try can cost minutes with a real Kubo, and the round's grace period is running
    assert outcome.accepted == [str(kept.participant)]
    [verdict] = [v for v in outcome.verdicts if not v.accepted]
    assert verdict.participant == str(missing.participant)
    assert "nobody provides it" in verdict.reason
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED


def test_a_block_changed_on_disk_is_caught_by_its_cid_and_only_its_sender_is_rejected(world):
    task_id, aggregator, updates = submitted_round(world)
    damaged, kept = updates
    path = world.store._path(str(damaged.updateCid))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    outcome = aggregator.step()
    assert outcome.accepted == [str(kept.participant)]
    [verdict] = [v for v in outcome.verdicts if not v.accepted]
    assert verdict.participant == str(damaged.participant)
    assert "should hold" in verdict.reason and "hash to" in verdict.reason
    assert world.fairfl.ledger.task(task_id).status == TaskStatus.COMPLETED


def test_a_store_down_when_a_round_opens_leaves_no_member_without_the_task_key(world):
    """The aggregator reads each member's published key from the store to seal the task key
    to it. With the store down it opens nothing; once it is back, every member can read."""
    task_id = world.create_task(rounds=1, window=200)
    people = [world.participant(task_id, i) for i in range(2)]
    said: list[str] = []
    aggregator = world.aggregator_agent(task_id, log=said.append)
    aggregator.store = FlakyStore(world.store)
    aggregator.store.down = True
    with pytest.raises(NodeUnavailableError) as down:
        aggregator.step()
    assert transient(down.value)
    assert world.fairfl.ledger.task(task_id).current_round == 0
    aggregator.store.down = False
    _, _, workload = aggregator.step()  # opens round 1
    readers = Keyring.from_json(world.store.get(workload.keyring)).holders()
    assert {person.address.lower() for person in people} <= readers
    assert not [line for line in said if "no usable member key" in line]
    for person in people:
        submitted, skipped = person.step()
        assert len(submitted) == 1 and not skipped


def test_a_participant_whose_store_is_down_submits_once_it_is_back(world):
    """The store is down when the participant handles the round's start: it does not skip
    the round (nor acknowledge the event), and submits once the store is back, in the
    window, exactly once."""
    task_id = world.create_task(rounds=1, window=200)
    person, other = (world.participant(task_id, i) for i in range(2))
    world.aggregator_agent(task_id).step()  # opens round 1
    person.store = FlakyStore(world.store)
    person.store.down = True
    with pytest.raises(NodeUnavailableError) as down:
        person.step()
    assert transient(down.value)
    assert world.fairfl.ledger.round(task_id, 1).submissions == 0
    person.store.down = False
    submitted, skipped = person.step()
    assert len(submitted) == 1 and not skipped
    assert person.step() == ([], [])  # the event was acknowledged once handled
    assert world.fairfl.ledger.round(task_id, 1).submissions == 1


def test_an_update_whose_upload_failed_is_sent_again_not_trained_again(world):
    """The store takes no upload when the participant has trained: the retry sends the same
    sealed update, without training again (a DP participant would spend budget twice)."""
    trained: list[int] = []

    def count(global_vector, result):
        trained.append(1)
        return result.vector

    task_id = world.create_task(rounds=1, window=200)
    person = world.participant(task_id, 0, update_hook=count)
    world.participant(task_id, 1)
    world.aggregator_agent(task_id).step()  # opens round 1
    person.store = FlakyStore(world.store)
    person.store.adds_down = True
    with pytest.raises(NodeUnavailableError):
        person.step()
    assert trained == [1]
    prepared = person._prepared(1)
    assert prepared is not None  # kept on disk before the upload
    person.store.adds_down = False
    [submission], _ = person.step()
    assert trained == [1]  # not trained again
    assert submission.update_cid == compute_cid(prepared.sealed)
    assert person._prepared(1) is None  # gone once on chain
    [event] = world.fairfl.ledger.events("UpdateSubmitted", taskId=task_id, round=1)
    assert str(event.updateCid) == submission.update_cid


def test_a_member_whose_key_document_is_out_of_reach_stops_nothing(world):
    """One member published a CID nobody provides: the aggregator opens the round without
    it (keyless this time, not for good) and the others train; once the document can be
    fetched, the member is a reader again."""
    task_id = world.create_task(rounds=2, window=200)
    people = [world.participant(task_id, i) for i in range(2)]
    aggregator = world.aggregator_agent(task_id)
    aggregator.store = FlakyStore(world.store)
    hidden = world.fairfl.registry.participant(people[0].address).metadata_cid
    aggregator.store.unreachable.add(hidden)
    _, _, workload = aggregator.step()  # opens round 1
    readers = Keyring.from_json(world.store.get(workload.keyring)).holders()
    assert people[0].address.lower() not in readers
    assert people[1].address.lower() in readers
    assert len(people[1].step()[0]) == 1
    aggregator.store.unreachable.clear()  # the next time the aggregator asks, it is there
    members = {m.address: m for m in aggregator.members([p.address for p in people])}
    assert all(members[p.address].public is not None for p in people)


def test_a_store_cut_off_from_its_peers_judges_nobody(world):
    """The store serves the round's model (it holds it) but none of the updates, past the
    window: the store is at fault, not every sender, and nobody is rejected."""
    from ape import chain

    task_id, aggregator, updates = submitted_round(world, window=30)
    before = standings(world, updates)
    aggregator.store.unreachable.update(str(u.updateCid) for u in updates)
    deadline = world.fairfl.ledger.round(task_id, 1).deadline_block
    chain.provider.make_request("anvil_mine", [deadline - int(chain.blocks.height) + 1])
    with pytest.raises(NodeUnavailableError, match="cut off from its peers") as cut_off:
        aggregator.step()
    assert transient(cut_off.value)
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.OPEN
    assert standings(world, updates) == before
    aggregator.store.unreachable.clear()
    assert len(aggregator.step().accepted) == 2


def test_sybils_that_withhold_their_updates_are_judged_half_a_window_after_the_deadline(world):
    """Two sybils of three senders submit CIDs that nobody provides. That looks like a store
    cut off from its peers, so nobody is judged at first; but not for ever, or the sybils
    would never be rejected and the task would stall: half a window past the deadline the
    unreachable senders are rejected and the round goes on with the honest update."""
    from ape import chain

    from fl_agent.agents import RoundOutcome
    from fl_agent.crypto.envelopes import seal_update

    task_id = world.create_task(rounds=1, window=30, min_participants=1)
    honest = world.participant(task_id, 0)
    sybils = world.bare_members(task_id, world.accounts[6:8])
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    honest.step()
    aggregator.store = FlakyStore(world.store)
    for k, account in enumerate(sybils):
        withheld = compute_cid(seal_update(b"never provided %d" % k, workload.aggregator_key,
                                           task_id, 1, account.address))
        aggregator.store.unreachable.add(withheld)
        world.fairfl.ledger.submit_update(task_id, 1, withheld, 10, 5, sender=account)
    rnd = world.fairfl.ledger.round(task_id, 1)
    patience = rnd.deadline_block + (rnd.deadline_block - rnd.start_block) // 2
    chain.provider.make_request("anvil_mine", [rnd.deadline_block - int(chain.blocks.height) + 1])
    with pytest.raises(NodeUnavailableError, match=f"or until block {patience}"):
        aggregator.step()
    chain.provider.make_request("anvil_mine", [patience - int(chain.blocks.height) + 1])

    outcome = aggregator.step()

    assert isinstance(outcome, RoundOutcome)
    assert outcome.accepted == [honest.address]
    assert sorted(outcome.rejected) == sorted(a.address for a in sybils)
    assert all("could not be fetched" in v.reason for v in outcome.verdicts if not v.accepted)
    for account in sybils:
        assert world.fairfl.registry.participant(account).rejected_updates == 1
