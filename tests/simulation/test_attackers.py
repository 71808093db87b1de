"""Who attacks and how (fl_agent.simulation.attackers): trigger variants, attackers that
attack only in some rounds."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.aggregation.rounds import EXACT_COPIES, close_groups, copy_groups
from fl_agent.errors import ConfigError
from fl_agent.simulation.attackers import Intermittent, Probing, backdoor_trigger, client_data
from fl_agent.simulation.attacks import Trigger
from fl_agent.simulation.config import SimulationConfig, attack_settings, plan_clients
from fl_agent.simulation.offline import federation


def test_the_centre_trigger_sits_in_the_middle_of_the_image():
    # 8x8 digits: rows and columns 3 and 4.
    assert Trigger.centre((8, 8)).features == (27, 28, 35, 36)
    assert Trigger.corner((8, 8)).features == (54, 55, 62, 63)
    assert Trigger.centre((10,)).features == (3, 4, 5, 6)


@pytest.mark.parametrize("position, value, expected", [
    ("corner", "in_range", None), ("centre", "in_range", 16.0),
    ("corner", "out_of_range", 32.0), ("centre", "out_of_range", 32.0)])
def test_trigger_variants_take_their_place_and_value_from_the_data(position, value, expected):
    config = SimulationConfig(attack="backdoor", trigger_position=position,
                              trigger_value=value)
    fed = federation(config)
    X = fed.splits.train.X
    trigger = backdoor_trigger(config, (8, 8), X)
    place = Trigger.corner if position == "corner" else Trigger.centre
    assert trigger.features == place((8, 8)).features
    in_range = float(X[:, list(trigger.features)].max())
    assert trigger.value == (in_range if expected is None else expected)
    assert X.max() == 16.0  # digits' pixels are 0-16: 32 is out of range anywhere


def test_an_intermittent_attacker_attacks_every_other_round():
    calls = []

    def poison(global_vector, trained):
        calls.append(float(global_vector[0]))
        return global_vector - 1.0

    hook = Intermittent(poison, every=2)
    trained = np.full(3, 5.0, np.float32)
    out = [hook(np.full(3, float(r), np.float32), trained)[0] for r in (1, 1, 2, 3, 4, 5)]
    # Rounds 1 (twice: one model), 3, 5 attack; 2 and 4 submit the honest update.
    assert out == [0.0, 0.0, 5.0, 2.0, 5.0, 4.0]
    assert calls == [1.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # called every round: it keeps count
    with pytest.raises(ConfigError):
        Intermittent(poison, every=0)


def test_an_intermittent_data_attacker_keeps_its_clean_data_and_trains_on_the_poison():
    config = SimulationConfig(clients=6, malicious=0.34, attack="label_flip", attack_every=2)
    fed = federation(config)
    plans = plan_clients(config, fed.splits.train.y)
    trained_on = []

    def trainer(global_vector, X, y, seed, round_number):
        trained_on.append((y.copy(), round_number))
        return global_vector + 1.0

    clients = client_data(config, plans, fed.splits.train, 10, None, trainer)
    bad = [(plan, y, poison) for plan, _, y, poison in clients if plan.malicious]
    assert len(bad) == 2
    plan, y, poison = bad[0]
    np.testing.assert_array_equal(y, fed.splits.train.y[plan.rows])  # clean
    g = np.zeros(4, np.float32)
    honest = np.full(4, 0.5, np.float32)
    np.testing.assert_array_equal(poison(g, honest), g + 1.0)  # round 1: trains on flips
    np.testing.assert_array_equal(trained_on[0][0], 9 - y)
    np.testing.assert_array_equal(poison(g + 3, honest), honest)  # round 2: honest
    with pytest.raises(ConfigError, match="trainer"):
        client_data(config, plans, fed.splits.train, 10, None)


def test_an_intermittent_free_rider_is_honest_between_its_attacks():
    config = SimulationConfig(clients=6, malicious=0.34, attack="free_rider", attack_every=2)
    fed = federation(config)
    bad = [c for c in fed.clients if c.malicious]
    g = np.zeros(4, np.float32)
    honest = np.full(4, 0.5, np.float32)
    np.testing.assert_array_equal(bad[0].poison(g, honest), g)
    np.testing.assert_array_equal(bad[0].poison(g + 1, honest), honest)


def test_an_attacker_that_builds_credit_is_honest_before_its_first_attack_round():
    def poison(global_vector, trained):
        return global_vector - 1.0

    hook = Intermittent(poison, every=1, first=3)
    trained = np.full(3, 5.0, np.float32)
    out = [hook(np.full(3, float(r), np.float32), trained)[0] for r in (1, 2, 3, 4, 5)]
    assert out == [5.0, 5.0, 2.0, 3.0, 4.0]  # honest in 1 and 2, then every round
    both = Intermittent(poison, every=2, first=2)
    out = [both(np.full(3, float(r), np.float32), trained)[0] for r in (1, 2, 3, 4, 5)]
    assert out == [5.0, 1.0, 5.0, 3.0, 5.0]  # rounds 2 and 4
    with pytest.raises(ConfigError):
        Intermittent(poison, every=1, first=0)


@pytest.mark.parametrize("every, first, rounds", [
    (1, 1, [1, 2, 3, 4, 5, 6]), (2, 1, [1, 3, 5]), (1, 4, [4, 5, 6]), (3, 2, [2, 5])])
def test_the_config_names_the_rounds_its_attackers_attack_in(every, first, rounds):
    config = SimulationConfig(attack="sign_flip", malicious=0.2, attack_every=every,
                              attack_from=first)
    assert [r for r in range(1, 7) if config.attacks_in(r)] == rounds
    assert config.attacks_sometimes == (rounds != [1, 2, 3, 4, 5, 6])


def test_a_sign_flipper_from_round_three_submits_its_honest_update_before():
    config = SimulationConfig(clients=6, malicious=0.34, attack="sign_flip", attack_from=3)
    bad = [c for c in federation(config).clients if c.malicious]
    g = np.zeros(4, np.float32)
    honest = np.full(4, 0.5, np.float32)
    np.testing.assert_array_equal(bad[0].poison(g, honest), honest)
    np.testing.assert_array_equal(bad[0].poison(g + 1, honest), honest)
    flipped = bad[0].poison(g + 2, honest)
    assert float(np.dot(flipped - (g + 2), honest - (g + 2))) < 0  # round 3: flipped


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_a_sign_flipper_sends_its_delta_reversed_and_scaled_by_the_configs_flip_scale(scale):
    config = SimulationConfig(clients=6, malicious=0.34, attack="sign_flip", flip_scale=scale)
    bad = [c for c in federation(config).clients if c.malicious]
    g = np.ones(4, np.float32)
    np.testing.assert_allclose(bad[0].poison(g, g + 0.5), g - 0.5 * scale)


def test_held_out_counts_a_credit_builders_attack_rounds_only():
    """benchmarks.held_out's TPR: an attacker's rejections in its honest rounds count
    neither as caught nor as honest submissions turned away."""
    from types import SimpleNamespace

    from benchmarks.held_out import detection

    config = SimulationConfig(clients=4, malicious=0.25, attack="sign_flip", attack_from=3)
    fed = SimpleNamespace(config=config, clients=[SimpleNamespace(malicious=i == 0)
                                                   for i in range(4)])

    def rnd(number, accepted):
        return SimpleNamespace(round=number, submitted=[0, 1, 2, 3],
                               decision=SimpleNamespace(accepted=accepted))

    # the attacker (0) is turned away in rounds 1, 2 and 3, honest client 1 in round 2
    run = SimpleNamespace(rounds=[rnd(1, [1, 2, 3]), rnd(2, [2, 3]), rnd(3, [1, 2, 3]),
                                  rnd(4, [0, 1, 2, 3])],
                          earned=lambda: np.ones(4), blacklisted=[])
    found = detection(fed, run)
    assert found["tpr"] == 0.5  # rounds 3 and 4, caught in 3; rounds 1 and 2 do not count
    assert found["fpr"] == 1 / 12


def _simulated_config(monkeypatch, *args: str) -> SimulationConfig:
    """The config ``fl-agent simulate ARGS`` hands the simulation (stopped there)."""
    from click.testing import CliRunner

    import fl_agent.simulation.runner as runner
    from fl_agent.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def run(config, **_):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr(runner, "run_simulation", run)
    done = CliRunner().invoke(main, ["simulate", *args])
    assert isinstance(done.exception, Stop), done.output
    return seen["config"]


def test_simulate_hands_its_flip_scale_to_the_simulation(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from fl_agent.cli import main

    config = _simulated_config(monkeypatch, "--attack", "sign_flip", "--flip-scale", "10",
                               "--out", str(tmp_path))
    assert config.flip_scale == 10
    assert CliRunner().invoke(main, ["simulate", "--flip-scale", "0"]).exit_code == 2
    with pytest.raises(ConfigError, match="flip_scale"):
        SimulationConfig.build(attack="label_flip", flip_scale=10)


def test_simulate_hands_the_dp_length_check_to_the_task_document(monkeypatch, tmp_path):
    from fl_agent.learning import ModelSpec, load_dataset
    from fl_agent.learning.task_doc import DataSpec
    from fl_agent.simulation.config import task_document

    config = _simulated_config(monkeypatch, "--mode", "dp", "--epsilon", "2",
                               "--dp-length-check", "--out", str(tmp_path))
    assert config.dp_length_check
    data = load_dataset("digits")
    spec = ModelSpec.for_features("mlp", data.feature_shape, data.num_classes)
    assert task_document(config, spec, DataSpec.describe(data)).privacy.dp.length_check
    with pytest.raises(ConfigError, match="dp_length_check"):
        SimulationConfig.build(mode="dp+prune", epsilon=2, prune_ratio=0.9, dp_length_check=True)
    with pytest.raises(ConfigError, match="dp_length_check"):
        SimulationConfig.build(dp_length_check=True)  # plain


def _colluders_submit(attack: str, trainer, d: int = 200) -> np.ndarray:
    """What the four colluders of a 12-client federation under ``attack`` submit, as rows,
    when ``trainer`` gives their honest updates (global model at 0)."""
    config = SimulationConfig.build(clients=12, malicious=0.34, **attack_settings(attack))
    fed = federation(config)
    clients = client_data(config, plan_clients(config, fed.splits.train.y), fed.splits.train,
                          10, None, trainer)
    g = np.zeros(d, np.float32)
    poisons = [poison for plan, _, _, poison in clients if plan.malicious]
    assert len(poisons) == 4
    return np.stack([p(g, g) for p in poisons]).astype(np.float64)


def test_jittered_colluders_submit_the_crafted_update_plus_noise_of_their_own():
    """alie-jitter (rule R49's adaptive attacker): each colluder adds its own noise of half
    the crafted delta's length, enough that the weights' copy rule no longer joins them."""
    d = 200
    rng = np.random.default_rng(3)
    directions = rng.standard_normal((4, d))  # what each colluder's honest training gives

    def trainer(global_vector, X, y, seed, round_number):
        return global_vector + directions[seed % 4] * (1 + round_number)

    for name, jitter in (("alie", 0.0), ("alie-jitter", 0.5)):
        assert SimulationConfig.build(**attack_settings(name)).collusion_jitter == jitter
    submitted = {0.0: _colluders_submit("alie", trainer, d),
                 0.5: _colluders_submit("alie-jitter", trainer, d)}
    crafted = submitted[0.0][0]
    assert (submitted[0.0] == crafted).all()  # the papers' colluders: one update, copied
    noise = submitted[0.5] - crafted
    np.testing.assert_allclose(np.linalg.norm(noise, axis=1), 0.5 * np.linalg.norm(crafted),
                               rtol=1e-5)
    assert len({tuple(row) for row in noise}) == 4  # each its own
    # Honest updates that share a direction (cosine about 0.3, as digits updates do) set the
    # round's typical distance.
    g = np.zeros(d)
    honest = rng.standard_normal(d) + 1.5 * rng.standard_normal((8, d))
    for jitter, groups in ((0.0, 9), (0.5, 12)):
        assert len(set(copy_groups(g, np.vstack([submitted[jitter], honest])).tolist())) == groups


def test_a_little_noise_escapes_exact_copies_but_not_the_weights_rule():
    """alie-jitter-1%: noise of 1 % of the crafted delta's length. FairFL's copies_once
    (exact copies only) sees four colluders; the weights' relative rule still joins them."""
    d = 200
    rng = np.random.default_rng(4)
    directions = rng.standard_normal((4, d))

    def trainer(global_vector, X, y, seed, round_number):
        return global_vector + directions[seed % 4]

    submitted = _colluders_submit("alie-jitter-1%", trainer, d)
    honest = rng.standard_normal(d) + 1.5 * rng.standard_normal((8, d))
    rows = np.vstack([submitted, honest])
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert len(set(close_groups(unit @ unit.T, EXACT_COPIES)[:4].tolist())) == 4
    assert len(set(copy_groups(np.zeros(d), rows)[:4].tolist())) == 1


def test_only_colluders_jitter():
    with pytest.raises(ConfigError, match="collusion_jitter"):
        SimulationConfig.build(attack="sign_flip", collusion_jitter=0.5)


def _global(number: int) -> np.ndarray:
    """Round ``number``'s global model (a new model, a new round, as hooks count them)."""
    return np.full(3, float(number), dtype=np.float32)


def _probe(**options) -> Probing:
    """An attacker whose attack update is the global model plus 10, from round 2."""
    settings = {"up": 2.0, "down": 0.5, "held": 0.75, **options}
    return Probing(lambda g, trained: g + 10.0, 2, **settings)


def test_a_probing_attacker_is_honest_before_its_first_round_then_sends_the_attack():
    probe = _probe()
    trained = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(probe(_global(1), trained), trained)
    probe.observe("accepted", ban_next=False)  # an honest round's verdict moves nothing
    assert probe.strength == 1.0 and probe.sent == []
    np.testing.assert_allclose(probe(_global(2), trained), _global(2) + 10.0)
    assert probe.sent == [[2, 1.0, None]]


def test_a_probing_attacker_scales_its_attack_by_each_verdict_without_a_ceiling():
    probe = _probe()
    trained = np.zeros(3, dtype=np.float32)
    probe(_global(1), trained)
    probe.observe("accepted", ban_next=False)
    steps = []
    for number, verdict in zip(range(2, 8), ["accepted", "accepted", "held_back",
                                             "rejected", "rejected", "rejected"], strict=True):
        out = probe(_global(number), trained)
        steps.append(float(out[0] - number))  # strength times the attack's delta of 10
        probe.observe(verdict, ban_next=False)
    # accepted doubles it past the plain attack, held back takes 3/4, rejected halves it,
    # and it never falls below the floor of 0.2
    assert steps == pytest.approx([10.0, 20.0, 40.0, 30.0, 15.0, 7.5])
    assert probe.strength == pytest.approx(0.375)
    probe(_global(8), trained)
    probe.observe("rejected", ban_next=False)
    assert probe.strength == pytest.approx(0.2)
    assert [s[2] for s in probe.sent][:4] == ["accepted", "accepted", "held_back", "rejected"]


def test_a_probing_attacker_sends_its_honest_update_while_one_more_rejection_would_ban_it():
    probe = _probe()
    trained = np.ones(3, dtype=np.float32)
    probe(_global(1), trained)
    probe.observe("accepted", ban_next=False)
    probe(_global(2), trained)
    probe.observe("rejected", ban_next=True)
    np.testing.assert_array_equal(probe(_global(3), trained), trained)  # guarded: honest
    probe.observe("accepted", ban_next=False)  # an honest update's verdict moves nothing
    assert probe.strength == 0.5 and len(probe.sent) == 1
    np.testing.assert_allclose(probe(_global(4), trained), _global(4) + 5.0)


def test_a_probing_attacker_counts_rounds_by_the_models_it_is_shown():
    """A round that accepted nothing keeps the global model: the attacker sees the same
    model again and counts it as the same round (it labels its sends by that count)."""
    probe = _probe()
    trained = np.zeros(3, dtype=np.float32)
    for model in (1, 2, 2, 3):
        probe(_global(model), trained)
        probe.observe("held_back", ban_next=False)
    assert [s[0] for s in probe.sent] == [2, 2, 3]


def test_a_probing_attacker_refuses_bad_settings_and_verdicts():
    with pytest.raises(ConfigError, match="down"):
        _probe(down=1.0)
    with pytest.raises(ConfigError, match="up"):
        _probe(up=0.5)
    with pytest.raises(ConfigError, match="held"):
        _probe(held=0.0)
    with pytest.raises(ConfigError, match="verdict"):
        _probe().observe("maybe", ban_next=False)
