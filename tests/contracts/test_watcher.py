"""The event watcher: chain order, resume after a restart, confirmations, bad input."""

from __future__ import annotations

import pytest
from conftest import CID_SPEC

from fl_agent.chain.watcher import CursorFile, EventWatcher
from fl_agent.errors import ChainError, StorageError


def register(registry, *accounts):
    for a in accounts:
        registry.register(CID_SPEC, sender=a)


def test_returns_new_logs_in_chain_order_once_acknowledged(registry, trainers, tmp_path, chain):
    start = chain.blocks.height + 1
    watcher = EventWatcher(registry, ["ParticipantRegistered"], tmp_path / "c.json",
                           start_block=start)
    register(registry, *trainers[:3])
    logs = watcher.poll()
    assert [log.account for log in logs] == [t.address for t in trainers[:3]]
    assert watcher.poll() == logs  # nothing acknowledged yet: the same logs again
    for log in logs:
        watcher.ack(log)
    assert watcher.poll() == []


def test_a_restarted_watcher_resumes_after_the_last_acknowledged_log(registry, trainers,
                                                                     tmp_path, chain):
    start = chain.blocks.height + 1
    path = tmp_path / "cursor.json"
    first = EventWatcher(registry, ["ParticipantRegistered"], path, start_block=start)
    register(registry, *trainers[:2])
    first.ack(first.poll()[0])  # crash after handling only the first one
    restarted = EventWatcher(registry, ["ParticipantRegistered"], path, start_block=start)
    assert [log.account for log in restarted.poll()] == [trainers[1].address]
    restarted.ack(restarted.poll()[0])
    register(registry, trainers[2])
    again = EventWatcher(registry, ["ParticipantRegistered"], path, start_block=start)
    assert [log.account for log in again.poll()] == [trainers[2].address]


def test_several_events_are_merged_in_chain_order(registry, owner, trainers, tmp_path, chain):
    start = chain.blocks.height + 1
    watcher = EventWatcher(registry, ["ParticipantRegistered", "Blacklisted"],
                           tmp_path / "c.json", start_block=start)
    register(registry, trainers[0])
    registry.blacklist(trainers[1], "bafkreievidence", sender=owner)
    register(registry, trainers[2])
    logs = watcher.poll()
    assert [log.event_name for log in logs] == ["ParticipantRegistered", "Blacklisted",
                                                "ParticipantRegistered"]


def test_logs_wait_for_confirmations(registry, trainers, tmp_path, chain):
    start = chain.blocks.height + 1
    watcher = EventWatcher(registry, ["ParticipantRegistered"], tmp_path / "c.json",
                           start_block=start, confirmations=3)
    register(registry, trainers[0])
    assert watcher.poll() == []
    chain.mine(3)
    assert len(watcher.poll()) == 1


def test_bad_input_is_reported_and_skipped_other_errors_stop(registry, trainers, tmp_path,
                                                             chain):
    start = chain.blocks.height + 1
    path = tmp_path / "c.json"
    register(registry, *trainers[:3])
    handled, rejected = [], []

    def handler(log):
        if log.account == trainers[0].address:
            raise StorageError("update CID does not match its content")
        if log.account == trainers[2].address:
            raise RuntimeError("RPC down")
        handled.append(log.account)

    watcher = EventWatcher(registry, ["ParticipantRegistered"], path, start_block=start)
    with pytest.raises(RuntimeError):
        watcher.run(handler, poll_interval=0, on_rejected=lambda log, e: rejected.append(e))
    assert handled == [trainers[1].address]
    assert [str(e) for e in rejected] == ["update CID does not match its content"]
    # The failing log was not acknowledged: it comes back after a restart.
    resumed = EventWatcher(registry, ["ParticipantRegistered"], path, start_block=start)
    assert [log.account for log in resumed.poll()] == [trainers[2].address]


def test_acknowledging_out_of_order_is_refused(registry, trainers, tmp_path, chain):
    watcher = EventWatcher(registry, ["ParticipantRegistered"], tmp_path / "c.json",
                           start_block=chain.blocks.height + 1)
    register(registry, *trainers[:2])
    logs = watcher.poll()
    watcher.ack(logs[1])
    with pytest.raises(ChainError, match="out of order"):
        watcher.ack(logs[0])


def test_bad_arguments_and_corrupt_cursor(registry, tmp_path):
    with pytest.raises(ValueError, match="no event"):
        EventWatcher(registry, ["NoSuchEvent"], tmp_path / "c.json")
    with pytest.raises(ValueError, match="confirmations"):
        EventWatcher(registry, ["ParticipantRegistered"], tmp_path / "c.json", confirmations=-1)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ChainError, match="corrupt"):
        CursorFile(tmp_path / "bad.json").load()


def test_a_node_that_stops_answering_is_an_error_not_an_empty_or_rewound_chain(
        registry, trainers, tmp_path, chain, monkeypatch):
    """ape's own ``chain.blocks.height`` answers 0 when the node fails, and its event queries
    clamp to it: during an outage the watcher took its cursor's block for gone (a rewound
    chain, so it started over from the beginning), a query of events found none, and the
    height read 0. Now each of them raises an error the agents wait out, and the cursor
    stays where it was."""
    import requests

    from fl_agent.chain.client import Registry, chain_height
    from fl_agent.retry import transient

    start = chain.blocks.height + 1
    watcher = EventWatcher(registry, ["ParticipantRegistered", "MetadataUpdated"],
                           tmp_path / "c.json", start_block=start)
    register(registry, *trainers[:2])
    watcher.ack(watcher.poll()[0])
    wrapper = Registry(str(registry.address), start_block=start)
    assert len(wrapper.events("ParticipantRegistered")) == 2

    def refused(method, request_data):
        raise requests.exceptions.ConnectionError(f"{method}: connection refused")

    # Under web3's middleware, where every request of ape and of web3 ends (HTTPProvider).
    monkeypatch.setattr(chain.provider.web3.provider, "_make_request", refused)
    for read in (watcher.poll, chain_height, lambda: wrapper.events("ParticipantRegistered")):
        with pytest.raises(Exception) as info:
            read()
        assert transient(info.value), info.value
    assert not watcher.rewound and watcher.cursor.block >= start
    monkeypatch.undo()
    assert [log.account for log in watcher.poll()] == [trainers[1].address]


def test_a_chain_rewound_under_the_cursor_is_noticed_and_read_again_from_the_start(
        registry, trainers, tmp_path, chain):
    """The blocks under the cursor are gone (a local chain reset and rebuilt): the watcher
    starts over from its first block, and sees only what the chain now holds."""
    start = chain.blocks.height + 1
    snapshot = chain.snapshot()
    watcher = EventWatcher(registry, ["ParticipantRegistered"], tmp_path / "c.json",
                           start_block=start)
    register(registry, *trainers[:2])
    for log in watcher.poll():
        watcher.ack(log)
    chain.restore(snapshot)  # the two registrations never happened
    assert watcher.poll() == [] and watcher.rewound
    register(registry, trainers[2])
    assert [log.account for log in watcher.poll()] == [trainers[2].address]
