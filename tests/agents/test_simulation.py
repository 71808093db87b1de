"""An end-to-end simulation of a few rounds on anvil; the report must match the chain."""

from __future__ import annotations

import json

import pytest

from fl_agent.chain.records import RoundResult
from fl_agent.errors import ConfigError
from fl_agent.simulation.report import save_plots, write_report
from fl_agent.simulation.runner import SimulationConfig, run_simulation


@pytest.fixture(scope="module")
def simulated(anvil_url, tmp_path_factory):
    config = SimulationConfig.build(clients=5, malicious=0.2, attack="sign_flip", rounds=3,
                                    steps=10, scoring="loo", seed=3, list_price=10**18)
    folder = tmp_path_factory.mktemp("simulation")
    report = run_simulation(config, workdir=folder, network=anvil_url)
    return config, folder, report


def test_the_report_has_every_field_and_is_json(simulated, tmp_path):
    config, folder, report = simulated
    path = write_report(report, tmp_path / "report.json")
    loaded = json.loads(path.read_text())
    assert loaded["config"]["attack"] == "sign_flip" and loaded["config"]["seed"] == 3
    assert [r["round"] for r in loaded["rounds"]] == [1, 2, 3]
    for row in loaded["rounds"]:
        assert {"round", "accuracy", "f1_macro", "accepted", "rejected", "global_cid",
                "tx_hash", "gas_used"} <= set(row)
        assert 0 <= row["accuracy"] <= 1 and row["gas_used"] > 0
    assert set(loaded["final"]) == {"accuracy", "f1_macro"}
    assert set(loaded["detection"]) >= {"tpr", "fpr"}
    assert len(loaded["rewards"]) == 5 and len(loaded["malicious"]) == 1
    assert loaded["chain"]["transactions"] > 5 * 3
    plots = save_plots(loaded, folder)
    assert [p.name for p in plots] == ["accuracy.png", "participants.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)


def test_the_report_matches_the_chain(simulated, anvil_url):
    from ape import networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import Deployment

    _, folder, report = simulated
    with networks.parse_network_choice(anvil_url):
        fairfl = FairFL(Deployment(network=anvil_url, chain_id=31337, deployer="0x" + "0" * 40,
                                   block=0, contracts=report["chain"]["contracts"]))
        task_id = report["chain"]["task_id"]
        for row in report["rounds"]:
            [event] = fairfl.ledger.events("RoundFinalized", taskId=task_id, round=row["round"])
            result = RoundResult.from_chain(event.result)
            assert str(event.transaction_hash) == row["tx_hash"]
            assert result.new_model_cid == row["global_cid"]
            assert list(result.contributors) == row["accepted"]
            assert list(result.rejected) == row["rejected"]
            receipt = fairfl.ledger.contract.provider.get_receipt(row["tx_hash"])
            assert receipt.gas_used == row["gas_used"]
        assert fairfl.ledger.task(task_id).global_model_cid == report["rounds"][-1]["global_cid"]
        earned = {a.lower(): v for a, v in fairfl.ledger.contributions(task_id).items()}
        assert {a: v for a, v in report["rewards"].items() if v} == \
            {a: v for a, v in earned.items() if v}
        assert sum(report["rewards"].values()) == 3 * 100 * 10**18
        for address, bps in report["reputation"].items():
            assert fairfl.registry.participant(address).reputation_bps == bps
        listing = fairfl.marketplace.listing(report["listing"]["model_id"])
        assert listing.encrypted_cid == report["listing"]["encrypted_cid"]
        assert listing.task_id == task_id


def test_the_attacker_is_caught_and_unpaid(simulated):
    _, _, report = simulated
    [attacker] = report["malicious"]
    assert report["detection"]["malicious_flagged"] == report["detection"][
        "malicious_submissions"] > 0
    assert report["rewards"][attacker] == 0
    assert report["reward_share_malicious"] == 0
    for row in report["rounds"]:
        assert attacker not in [a.lower() for a in row["accepted"]]


def test_backdoor_attackers_are_stopped_by_the_trigger_screen(anvil_url, tmp_path):
    """The corner trigger, devices of equal speed. Known limit: with the default device
    spread, attacker 1 (1.86x the median speed) trains twice the steps in round 2 and its
    change piles less on the trigger's columns: the screen misses it (the benchmark's
    backdoor rows measure how often)."""
    config = SimulationConfig.build(clients=6, malicious=0.34, attack="backdoor", rounds=2,
                                    scoring="loo", seed=1, device_spread=1.0)
    report = run_simulation(config, workdir=tmp_path, network=anvil_url)
    attackers = set(report["malicious"])
    assert len(attackers) == 2
    for row in report["rounds"]:
        why = {a.lower(): reason for a, reason in row["reasons"].items()}
        assert {a for a, reason in why.items() if reason == "trigger"} == attackers
        assert not attackers & {a.lower() for a in row["accepted"]}
    assert report["detection"]["tpr"] == 1.0
    assert all(report["rewards"][a] == 0 for a in attackers)
    # the backdoor never entered the global model: triggered test inputs keep their class
    assert report["final"]["backdoor_asr"] < 0.1


def test_store_holds_every_global_model_encrypted_for_the_members(simulated, anvil_url):
    from ape import networks

    from fl_agent.agents.access import member_key
    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import dev_account
    from fl_agent.crypto.envelopes import Keyring, decrypt_model, model_epoch
    from fl_agent.learning.models import ModelSpec
    from fl_agent.learning.weights import decode_weights
    from fl_agent.learning.workload import Workload
    from fl_agent.storage.store import LocalStore

    _, folder, report = simulated
    store = LocalStore(folder / "store")
    spec = ModelSpec.for_features("mlp", (1, 8, 8), 10)
    blobs = [store.get(row["global_cid"]) for row in report["rounds"]]
    assert all(model_epoch(blob) is not None for blob in blobs)  # nothing readable in public
    with networks.parse_network_choice(anvil_url):
        fairfl = FairFL(load_deployment(anvil_url, folder / "deployments"))
        task = fairfl.ledger.task(1)
        started = fairfl.ledger.events("RoundStarted", taskId=1, round=task.current_round)[-1]
        ring = Keyring.from_json(store.get(Workload.from_json(
            store.get(str(started.workloadCid))).keyring))
        # The creator (the deployer, who lists the model) reads every round's model.
        keys = ring.open(dev_account(0).address, member_key(fairfl, dev_account(0)))
    for blob in blobs:
        assert decode_weights(decrypt_model(blob, keys, 1), spec).dtype.name == "float32"


@pytest.mark.parametrize("fields, message", [
    ({"attack": "bribery"}, "attack must be one of"),
    ({"aggregator": "mean"}, "aggregator must be one of"),
    ({"clients": 1}, "clients"),
    ({"malicious": 1.5}, "malicious"),
    ({"dataset": "/no/such.csv"}, "dataset must be one of"),
])
def test_bad_settings_are_refused_before_anything_runs(fields, message):
    with pytest.raises(ConfigError, match=message):
        SimulationConfig.build(**fields)


def test_a_chain_without_enough_funded_accounts_is_refused_before_deploying(anvil_url, tmp_path):
    config = SimulationConfig.build(clients=20, rounds=1)  # the test anvil funds 16 accounts
    with pytest.raises(ConfigError, match="6 of the 22 test accounts .* hold no ETH"):
        run_simulation(config, workdir=tmp_path, network=anvil_url)
    assert not (tmp_path / "deployments").exists()


def test_a_rerun_in_the_same_folder_starts_afresh(tmp_path):
    """A second run reuses the folder (store, stale cursors) on a new private chain."""
    config = SimulationConfig.build(clients=3, malicious=0.0, attack="none", rounds=1,
                                    steps=5, scoring="loo", aggregator="fedavg")
    first = run_simulation(config, workdir=tmp_path)
    second = run_simulation(config, workdir=tmp_path)
    assert len(second["rounds"]) == 1 and second["rounds"][0]["submissions"] == 3
    # The same training (models are encrypted under a fresh task key, so their CIDs differ).
    assert second["rounds"][0]["accuracy"] == first["rounds"][0]["accuracy"]
    assert second["rounds"][0]["global_cid"] != first["rounds"][0]["global_cid"]


def test_blocks_pass_on_anvil_reached_by_url(connected):
    from ape import chain

    from fl_agent.simulation.runner import _let_blocks_pass

    height = chain.blocks.height
    _let_blocks_pass(7)
    assert chain.blocks.height == height + 7


def test_the_offline_harness_replays_the_chain_run(simulated):
    """benchmarks/ measure offline; that only counts if offline is what runs on chain: the
    same config gives the same rounds (model accuracy, accepted count) without the chain."""
    from fl_agent.simulation.offline import federation, run_offline

    config, _, report = simulated
    run = run_offline(federation(config))
    assert [round(r.test_accuracy, 6) for r in run.rounds] == \
        [round(r["accuracy"], 6) for r in report["rounds"]]
    assert [len(r.decision.accepted) for r in run.rounds] == \
        [len(r["accepted"]) for r in report["rounds"]]
    assert run.test_accuracy == pytest.approx(report["final"]["accuracy"], abs=1e-12)


def test_workload_balancing_acts_on_simulated_device_speeds(anvil_url, tmp_path):
    """With device speeds spread over 4x (seed 4: two clients below 0.8x the median speed,
    two above 1.2x), round 2 gives the slow devices fewer steps and the fast ones more,
    and the round's training ends sooner than round 1's, where everyone had the base
    steps (what happens without balancing)."""
    from fl_agent.simulation.runner import STEP_MILLIS, device_speeds
    from fl_agent.storage.store import LocalStore

    config = SimulationConfig.build(clients=6, malicious=0.0, attack="none", rounds=2,
                                    steps=20, seed=4, device_spread=4.0, permutations=5)
    report = run_simulation(config, workdir=tmp_path, network=anvil_url)
    speeds = device_speeds(config)
    store = LocalStore(tmp_path / "store")
    steps = [json.loads(store.get(r["workload_cid"]))["steps"] for r in report["rounds"]]
    by_speed = sorted(range(6), key=lambda i: speeds[i])
    from fl_agent.chain.node import dev_account

    addresses = [str(dev_account(2 + i).address) for i in range(6)]  # client i's account
    first = [steps[0][addresses[i].lower()] for i in by_speed]
    second = [steps[1][addresses[i].lower()] for i in by_speed]
    assert first == [20] * 6
    assert second[0] < 20 and second[1] < 20 and second[-1] > 20 and second[-2] > 20
    assert second == sorted(second)  # never more steps for a slower device
    slowest = by_speed[0]
    assert report["rounds"][0]["round_millis"] == round(20 * STEP_MILLIS / speeds[slowest])
    assert report["rounds"][1]["round_millis"] < 0.8 * report["rounds"][0]["round_millis"]


def test_a_task_whose_rounds_all_fall_short_of_the_quorum_is_cancelled_and_said_so(
        anvil_url, tmp_path, monkeypatch):
    """Every round closed short of its quorum (here: the rule made to reject everyone)
    leaves the model as it was, so the simulation would wait forever: after as many closed
    rounds in a row as the task has rounds, it cancels the task and says why."""
    import dataclasses
    from types import MappingProxyType

    from fl_agent.agents import aggregator
    from fl_agent.errors import FairFLError

    real = aggregator.decide_round

    def rejects_everyone(*args, **kwargs):
        decision = real(*args, **kwargs)
        everyone = range(len(decision.scores))
        return dataclasses.replace(decision, accepted=(), shares=tuple(0 for _ in everyone),
                                   reasons=MappingProxyType({j: "validation" for j in everyone}))

    monkeypatch.setattr(aggregator, "decide_round", rejects_everyone)
    config = SimulationConfig.build(clients=3, malicious=0.0, attack="none", rounds=1,
                                    steps=5, scoring="loo", aggregator="fedavg")
    with pytest.raises(FairFLError, match="2 rounds in a row were closed without a model: "
                                          "each had fewer than the quorum of 1 accepted"):
        run_simulation(config, workdir=tmp_path, network=anvil_url)
