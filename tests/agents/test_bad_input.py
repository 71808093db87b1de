"""Hardening: every bad input gives a clear error, loses nothing, and everyone else is served.

On the real contracts and store (the ``world`` of conftest.py): bad updates are rejected with
their reason while the round is finalized for the honest participants and the next one opens;
the chain refuses submissions from outsiders, blacklisted members, late ones and ones for an
unknown task or round without counting them; a malformed task document stops the agents of
that task with the reason while other tasks go on; a member key or buyer key of the wrong
length leaves that one account out. The command line (click's CliRunner on the real
``fl-agent``) exits non-zero with a message that says what to fix, never a traceback.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fl_agent.agents import RoundOutcome
from fl_agent.agents.evidence import RoundEvidence
from fl_agent.chain.records import RejectReason, RoundResult, RoundStatus, TaskSpec, TrainingMode
from fl_agent.cli import main
from fl_agent.crypto.envelopes import Keyring, seal_update
from fl_agent.errors import ConfigError, ContractRevertError, StorageError
from fl_agent.learning import encode_weights, init_params
from fl_agent.learning.weights import max_weights_bytes
from fl_agent.learning.workload import Workload
from fl_agent.storage.cid import compute_cid

FLT = 10**18


def finalize(aggregator) -> RoundOutcome:
    outcome = aggregator.step()
    assert isinstance(outcome, RoundOutcome), outcome
    return outcome


def outsider(world, index: int):
    """Test account ``index`` registered (with no member key) and joined to nothing yet."""
    from fl_agent.chain.node import dev_account

    account = dev_account(index)
    world.fairfl.registry.register(world.store.add(b"{}"), sender=account)
    return account


class _Touch:
    """A pickle payload that would create ``path`` if anything ever unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# ------------------------------------------------------------------------------ bad updates


def test_every_bad_update_is_rejected_with_its_reason_and_the_task_goes_on(world, tmp_path):
    """Inf, truncated safetensors, a header that lies about its length, two pickles posing
    as weights, a non-CID, two huge-norm updates, a tensor of the wrong shape and a file
    over the model's size limit, all in one round with three honest
    participants: each bad one is rejected with a reason that names the problem (on chain
    too), the honest ones are accepted and paid the whole budget, the round is finalized,
    and the next round opens for the honest participants."""
    import torch

    spec = world.document.model
    task_id = world.create_task(rounds=2, min_participants=1)
    honest = [world.participant(task_id, i) for i in range(3)]
    cheats = [outsider(world, i) for i in range(6, 16)]
    for account in cheats:
        world.fairfl.ledger.join(task_id, sender=account)
    aggregator = world.aggregator_agent(task_id)
    _, _, workload = aggregator.step()
    for agent in honest:
        assert len(agent.step()[0]) == 1

    global_vector = init_params(spec, 0)  # create_task's seed: round 1's global model
    valid = encode_weights(spec, global_vector)
    inf = valid.replace(np.float32(global_vector[0]).tobytes(), np.float32(np.inf).tobytes(), 1)
    assert inf != valid
    header_length = struct.unpack("<Q", valid[:8])[0]
    lying_header = struct.pack("<Q", 2**40) + valid[8:]
    state = {slot.name: torch.zeros(slot.shape) for slot in _layout(spec)}
    buffer = io.BytesIO()
    torch.save(state, buffer)  # what a careless participant would upload: a pickle (zip)
    marker = tmp_path / "unpickled"
    exploit = pickle.dumps(_Touch(marker))
    rng = np.random.default_rng(0)
    huge_delta = global_vector + 1e4 * rng.normal(size=global_vector.size).astype(np.float32)
    huge_max = np.full(global_vector.size, 3e38, np.float32)  # finite, near float32's max

    # The right tensors and spec, one of them flattened; and valid weights padded past the
    # size limit for the model (refused before parsing).
    from safetensors.numpy import load, save

    tensors = load(valid)
    matrix = next(name for name in sorted(tensors) if tensors[name].ndim >= 2)
    tensors[matrix] = tensors[matrix].reshape(-1)
    header = json.loads(valid[8:8 + header_length])
    wrong_shape = save(tensors, metadata=header["__metadata__"])
    oversized = valid + b" " * max_weights_bytes(spec)

    def sealed(payload: bytes, account) -> str:
        return world.store.add(seal_update(payload, workload.aggregator_key, task_id, 1,
                                           account.address))

    bad = [  # (payload or CID, words the reason must hold, on-chain code)
        (sealed(inf, cheats[0]), "contains NaN or infinite", RejectReason.INVALID_UPDATE),
        (sealed(valid[:8 + header_length + 100], cheats[1]), "not a safetensors document",
         RejectReason.INVALID_UPDATE),
        (sealed(lying_header, cheats[2]), "not a safetensors document",
         RejectReason.INVALID_UPDATE),
        (sealed(buffer.getvalue(), cheats[3]), "not a safetensors document",
         RejectReason.INVALID_UPDATE),
        (sealed(exploit, cheats[4]), "not a safetensors document", RejectReason.INVALID_UPDATE),
        ("not-a-cid", "not a base32 CIDv1", RejectReason.INVALID_UPDATE),
        (sealed(encode_weights(spec, huge_delta), cheats[6]), "norm_outlier",
         RejectReason.NORM_OUTLIER),
        (sealed(encode_weights(spec, huge_max), cheats[7]), "norm_outlier",
         RejectReason.NORM_OUTLIER),
        (sealed(wrong_shape, cheats[8]), "must have shape", RejectReason.INVALID_UPDATE),
        (sealed(oversized, cheats[9]), "more than the limit", RejectReason.INVALID_UPDATE),
    ]
    for account, (cid, _, _) in zip(cheats, bad, strict=True):
        world.fairfl.ledger.submit_update(task_id, 1, cid, 100, 5, sender=account)

    outcome = finalize(aggregator)
    assert not marker.exists()  # the pickle was never unpickled
    assert sorted(outcome.accepted) == sorted(a.address for a in honest)
    reasons = {v.participant: v.reason for v in outcome.verdicts if not v.accepted}
    assert set(reasons) == {a.address for a in cheats}
    for account, (_, words, code) in zip(cheats, bad, strict=True):
        assert words.lower() in reasons[account.address].lower(), \
            (words, reasons[account.address])
        if code == RejectReason.INVALID_UPDATE:
            assert reasons[account.address].startswith("invalid_update:")
    # On chain: the round is finalized, every rejected sender has its reason code, the honest
    # ones share the whole budget, and each cheat has exactly one rejection on its record.
    assert world.fairfl.ledger.round(task_id, 1).status == RoundStatus.FINALIZED
    result = RoundResult.from_chain(world.fairfl.ledger.events(
        "RoundFinalized", taskId=task_id, round=1)[-1].result)
    assert dict(zip(result.rejected, result.reasons, strict=True)) == \
        {a.address: code for a, (_, _, code) in zip(cheats, bad, strict=True)}
    assert sum(result.scores_ppm) == 1_000_000
    assert set(world.fairfl.ledger.contributions(task_id)) == {a.address for a in honest}
    evidence = RoundEvidence.from_json(world.store.get(result.evidence_cid))
    assert {v.participant for v in evidence.verdicts} == \
        {a.address for a in [*honest, *cheats]}
    for account in cheats:
        assert world.fairfl.registry.participant(account).rejected_updates == 1
    # The new model is finite, and what the honest participants read.
    assert np.all(np.isfinite(outcome.params))
    assert np.abs(outcome.params).max() < 100
    assert honest[0].read_global_model().tolist() == pytest.approx(outcome.params.tolist())
    # The task goes on: round 2 opens on that model and the honest participants train in it.
    number, _, _ = aggregator.step()
    assert number == 2
    for agent in honest:
        submitted, skipped = agent.step()
        assert [s.round for s in submitted] == [2] and skipped == []
    assert sorted(finalize(aggregator).accepted) == sorted(a.address for a in honest)


def _layout(spec):
    from fl_agent.learning.models import param_layout

    return param_layout(spec)


# ------------------------------------------------------------------ refused by the chain


def test_outsiders_blacklisted_late_and_misdirected_submissions_are_refused_and_not_counted(
        world):
    """The ledger refuses, with a named error, a submission from an unregistered address, a
    registered non-member, a blacklisted member, for an unknown task, for a round that is
    not open, a second one from the same member, and one after the window; none of them
    counts, and the round is finalized for the members who submitted in time."""
    from ape import chain

    from fl_agent.chain.node import dev_account

    task_id = world.create_task(rounds=1, min_participants=1, window=30)
    honest = [world.participant(task_id, i) for i in range(2)]
    late = world.participant(task_id, 2)
    blacklisted = world.participant(task_id, 3)
    stranger = dev_account(14)  # never registered
    non_member = outsider(world, 15)  # registered, never joined
    world.fairfl.registry.blacklist(blacklisted.address, compute_cid(b"evidence"),
                                    sender=world.accounts[0])
    aggregator = world.aggregator_agent(task_id)
    aggregator.step()
    for agent in honest:
        assert len(agent.step()[0]) == 1
    cid = compute_cid(b"an update")

    def refused(name: str, task: int, round_number: int, account) -> None:
        with pytest.raises(ContractRevertError) as caught:
            world.fairfl.ledger.submit_update(task, round_number, cid, 10, 5, sender=account)
        assert caught.value.error_name == name

    refused("TaskLedgerNotJoined", task_id, 1, non_member)
    refused("TaskLedgerBlacklisted", task_id, 1, blacklisted.account)
    refused("TaskLedgerUnknownTask", 99, 1, honest[0].account)
    refused("TaskLedgerWrongRound", task_id, 2, late.account)
    refused("TaskLedgerNotJoined", task_id, 1, stranger)
    refused("TaskLedgerAlreadySubmitted", task_id, 1, honest[0].account)  # a second update
    # The blacklisted member's own agent says so and stops; it is no longer counted.
    submitted, skipped = blacklisted.step()
    assert submitted == [] and "blacklisted" in skipped[0].reason and blacklisted.finished

    deadline = world.fairfl.ledger.round(task_id, 1).deadline_block
    chain.provider.make_request("anvil_mine", [deadline - int(chain.blocks.height) + 1])
    refused("TaskLedgerSubmissionClosed", task_id, 1, late.account)
    messages: list[str] = []
    late.log = messages.append
    assert late.step() == ([], [])  # its agent sees the closed window and does not submit
    assert any("round 1 is already closed" in m for m in messages), messages

    assert world.fairfl.ledger.round(task_id, 1).submissions == len(honest)
    outcome = finalize(aggregator)
    assert sorted(outcome.accepted) == sorted(a.address for a in honest)
    assert [v.participant for v in outcome.verdicts if not v.accepted] == []
    assert set(world.fairfl.ledger.contributions(task_id)) == {a.address for a in honest}


# ------------------------------------------------------------- malformed task documents


def _task_with_document(world, spec_cid: str) -> int:
    spec = world.document.model
    task_id, _ = world.fairfl.ledger.create_task(TaskSpec(
        model_cid=world.store.add(encode_weights(spec, init_params(spec, 0))),
        spec_cid=spec_cid, metric="accuracy", aggregator=world.aggregator.address, rounds=1,
        min_participants=1, submission_window=30, training_mode=TrainingMode.PLAIN,
        reward_per_round=100 * FLT), sender=world.accounts[0])
    return task_id


def _document_with(world, **changes) -> bytes:
    """The world's task document with ``section__key=value`` changes (JSON allows NaN)."""
    doc = json.loads(world.document.to_json())
    for path, value in changes.items():
        section, key = path.split("__")
        doc[section][key] = value
    return json.dumps(doc).encode()


MALFORMED_DOCUMENTS = {
    "not JSON": (lambda w: w.store.add(b"{\"format\": \"fairfl-task/1\", \"model\":"),
                 ConfigError, "not a valid FairFL task document.*EOF"),
    "unknown model": (lambda w: w.store.add(_document_with(w, model__name="resnet")),
                      ConfigError, "not a valid FairFL task document.*model.*resnet"),
    "NaN mean": (lambda w: w.store.add(_document_with(
        w, data__mean=[float("nan")] + list(w.document.data.mean[1:]))),
        ConfigError, "not a valid FairFL task document.*data.mean.0.*finite number"),
    "infinite scale": (lambda w: w.store.add(_document_with(
        w, data__scale=[float("inf")] + list(w.document.data.scale[1:]))),
        ConfigError, "not a valid FairFL task document.*data.scale.0.*finite number"),
    "infinite learning rate": (lambda w: w.store.add(_document_with(
        w, training__lr=float("inf"))), ConfigError,
        "not a valid FairFL task document.*training.lr.*finite number"),
    "not a CID": (lambda w: "not-a-cid", StorageError, "not a base32 CIDv1: 'not-a-cid'"),
    "missing": (lambda w: compute_cid(b"never stored"), StorageError,
                f"{compute_cid(b'never stored')} is not in"),
}


def test_a_malformed_task_document_stops_its_agents_with_the_reason_and_other_tasks_go_on(
        world):
    """A task whose document is not JSON, names an unknown model, holds statistics or a
    learning rate that would turn every participant's training into NaN, or whose CID is
    not a CID or not stored: its participant and aggregator refuse to start and say which
    field is wrong, before joining anything; another task on the ledger runs as usual."""
    from fl_agent.agents import AggregatorAgent, ParticipantAgent

    X, y = world.shard(0)
    for name, (make, kind, words) in MALFORMED_DOCUMENTS.items():
        task_id = _task_with_document(world, make(world))
        with pytest.raises(kind, match="(?s)" + words):
            ParticipantAgent(world.fairfl, world.store, world.accounts[2], task_id, X, y,
                             world.tmp / "agents")
        with pytest.raises(kind, match="(?s)" + words):
            AggregatorAgent(world.fairfl, world.store, world.aggregator, task_id,
                            world.splits.validation.X, world.splits.validation.y,
                            world.tmp / "agents")
        assert world.fairfl.ledger.participants(task_id) == [], name  # nobody joined it
    # A well-formed task on the same ledger, with the same accounts, runs as usual.
    good = world.create_task(rounds=1, min_participants=1)
    people = [world.participant(good, i) for i in range(2)]
    aggregator = world.aggregator_agent(good)
    aggregator.step()
    for agent in people:
        agent.step()
    assert sorted(finalize(aggregator).accepted) == sorted(p.address for p in people)


# ------------------------------------------------------------ keys of the wrong length


def test_a_member_key_of_the_wrong_length_leaves_that_member_out_and_the_others_are_served(
        world):
    """A member whose registry metadata publishes a 31- or 33-byte X25519 key (or none that
    parses) is given no task key, the aggregator says why, the quorum does not wait for it,
    and the round is finalized for the others; that member's agent is told it holds no key."""
    from fl_agent.agents import ParticipantAgent
    from fl_agent.agents.access import participant_metadata

    task_id = world.create_task(rounds=1, min_participants=1)
    honest = [world.participant(task_id, i) for i in range(2)]
    odd = [world.accounts[i] for i in (6, 7, 8)]
    for account, metadata in zip(odd, [participant_metadata(b"\x09" * 31),
                                       participant_metadata(b"\x09" * 33),
                                       b'{"x25519": "not hex"}'], strict=True):
        world.fairfl.registry.register(world.store.add(metadata), sender=account)
        world.fairfl.ledger.join(task_id, sender=account)
    messages: list[str] = []
    aggregator = world.aggregator_agent(task_id, log=messages.append)
    _, _, workload = aggregator.step()
    holders = Keyring.from_json(world.store.get(workload.keyring)).holders()
    assert {a.address.lower() for a in honest} <= holders
    for account in odd:
        assert account.address.lower() not in holders
        assert any(account.address in m and "published no usable member key" in m
                   for m in messages), messages
    X, y = world.shard(3)
    agent = ParticipantAgent(world.fairfl, world.store, odd[0], task_id, X, y,
                             world.tmp / "agents")  # as it is: not joined again
    submitted, skipped = agent.step()
    assert submitted == [] and "no member key published" in skipped[0].reason
    for person in honest:
        person.step()
    outcome = finalize(aggregator)  # the quorum is the key holders: nobody waits for `odd`
    assert sorted(outcome.accepted) == sorted(a.address for a in honest)
    assert Workload.from_json(world.store.get(str(world.fairfl.ledger.events(
        "RoundStarted", taskId=task_id, round=1)[-1].workloadCid))).aggregator_key is not None


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_a_buyer_key_of_the_wrong_length_is_refused_before_any_transaction(world, length):
    """The client refuses a buyer key that is not 32 bytes before it signs anything, so no
    gas is spent and no money moves (the contract's ``bytes32`` could not say why)."""
    from ape import chain

    buyer = world.accounts[9]
    market = world.fairfl.marketplace
    nonce = chain.provider.get_nonce(buyer.address)
    balance = world.fairfl.token.balance_of(buyer.address)
    for call in (lambda: market.buy(1, 10 * FLT, b"\x07" * length, sender=buyer),
                 lambda: market.update_buyer_key(1, b"\x07" * length, sender=buyer)):
        with pytest.raises(ValueError, match=f"32-byte X25519 public key, got {length} bytes"):
            call()
    assert chain.provider.get_nonce(buyer.address) == nonce
    assert world.fairfl.token.balance_of(buyer.address) == balance


# --------------------------------------------------------------------------- the CLI


def run(args: list[str], env: dict[str, str]):
    result = CliRunner().invoke(main, args, env={"COLUMNS": "200", **env})
    # A handled error is a SystemExit with a message; anything else is a crash.
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{args}: crashed with {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("args, env, message", [
    (["status"], {"FAIRFL_RPC_PORT": "abc"}, "FAIRFL_RPC_PORT"),
    (["storage", "add", str(Path(__file__).parents[2] / "README.md")],
     {"FAIRFL_MAX_CONTENT_BYTES": "lots"},
     "FAIRFL_MAX_CONTENT_BYTES"),
    (["status"], {"FAIRFL_CONFIRMATIONS": "-1"}, "FAIRFL_CONFIRMATIONS"),
    (["status", "--network", "nonsense:foo:bar"], {}, "cannot reach network 'nonsense:foo:bar'"),
    (["status", "--network", "http://127.0.0.1:1"], {}, "fl-agent chain up"),
    (["storage", "get", "not-a-cid", "-o", "out.bin"], {}, "not a base32 CIDv1"),
    (["storage", "get", compute_cid(b"never stored"), "-o", "out.bin"], {}, "is not in"),
    (["task", "create", "--lr", "-1", "--account", "TEST::0", "--aggregator", "TEST::1"], {},
     "--lr"),
    (["task", "create", "--lr", "inf", "--account", "TEST::0", "--aggregator", "TEST::1"], {},
     "--lr"),
    (["task", "create", "--lr", "nan", "--account", "TEST::0", "--aggregator", "TEST::1"], {},
     "--lr"),
    (["task", "create", "--steps", "200000", "--account", "TEST::0", "--aggregator", "TEST::1"],
     {}, "training.steps"),
    (["task", "create", "--reward", "nan", "--account", "TEST::0", "--aggregator", "TEST::1"],
     {}, "--reward"),
    (["task", "create", "--reward", "-5", "--account", "TEST::0", "--aggregator", "TEST::1"],
     {}, "--reward"),
    (["task", "create", "--rounds", str(2**32), "--account", "TEST::0", "--aggregator",
      "TEST::1"], {}, "--rounds"),
    (["task", "create", "--model", "resnet", "--account", "TEST::0", "--aggregator", "TEST::1"],
     {}, "'resnet' is not one of"),
    (["train", "--task", "1", "--data", "digits", "--poll-interval", "-1", "--account",
      "TEST::2"], {}, "--poll-interval"),
    (["train", "--task", "1", "--data", "/no/such.csv", "--account", "TEST::2"], {},
     "does not exist"),
    (["aggregate", "--task", "1", "--validation", "digits", "--poll-interval", "inf",
      "--account", "TEST::1"], {}, "--poll-interval"),
    (["market", "serve", "--poll-interval", "-1", "--account", "TEST::0"], {},
     "--poll-interval"),
    (["market", "download", "1", "--wait", "nan", "-o", "m.bin", "--account", "TEST::9"], {},
     "--wait"),
])
def test_bad_configuration_and_arguments_exit_with_a_message_not_a_traceback(
        args, env, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where -o would write
    result = run(args, {"FAIRFL_HOME": str(tmp_path), "FAIRFL_DEPLOYMENTS": str(tmp_path),
                        "FAIRFL_NETWORK": "http://127.0.0.1:1", **env})
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert not (tmp_path / "store").exists() or "storage" in args


def test_unknown_task_model_and_malformed_task_on_a_deployment_exit_with_a_message(world):
    """``fl-agent`` against a real deployment: an unknown task or model, a task whose
    document is malformed, validation data of the wrong shape."""
    from fl_agent.chain.deployment import save_deployment

    folder = world.tmp / "deployments"
    save_deployment(world.fairfl.deployment, folder)
    from ape import chain

    env = {"FAIRFL_HOME": str(world.tmp), "FAIRFL_DEPLOYMENTS": str(folder),
           "FAIRFL_NETWORK": chain.provider.uri}
    broken = _task_with_document(world, world.store.add(b"[1, 2, 3]"))
    good = world.create_task(rounds=1, min_participants=1)
    wrong_shape = world.tmp / "val.csv"
    wrong_shape.write_text("a,b,label\n1,2,0\n3,4,1\n")
    cases = [
        (["train", "--task", "99", "--data", "digits", "--account", "TEST::2"],
         "task 99 does not exist"),
        (["train", "--task", str(broken), "--data", "digits", "--account", "TEST::2"],
         "not a valid FairFL task document"),
        (["aggregate", "--task", str(broken), "--validation", "digits", "--account", "TEST::1"],
         "not a valid FairFL task document"),
        (["aggregate", "--task", str(good), "--validation", str(wrong_shape), "--account",
          "TEST::1"], "expects 64 features"),
        (["market", "show", "99"], "model 99 does not exist"),
        (["market", "buy", "99", "--account", "TEST::9"], "model 99 does not exist"),
        (["market", "download", "99", "--account", "TEST::9", "-o", str(world.tmp / "m")],
         "model 99 does not exist"),
    ]
    for args, message in cases:
        result = run(args, env)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    assert world.fairfl.ledger.participants(broken) == []
    assert not (world.tmp / "m").exists()
