"""Differential privacy: DP-SGD's clipping bound, the budget that stops a participant, the
noise calibration, DP-FedAvg's clipping and noise, and the records' JSON."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from fl_agent.errors import ConfigError
from fl_agent.learning.data import load_dataset, split_dataset
from fl_agent.learning.models import ModelSpec, init_params
from fl_agent.learning.training import train_local
from fl_agent.privacy.dp import (
    PRV_RANGE,
    PrivacyBudget,
    PrivacyStep,
    dp_fedavg,
    epsilon_spent,
    noise_for_budget,
    train_local_dp,
)

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(16,))
LOGREG = ModelSpec(name="logreg", input_shape=(64,), num_classes=10)
DELTA = 1e-5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shard() -> tuple[np.ndarray, np.ndarray]:
    """48 standardised digits: one participant's data."""
    train = split_dataset(load_dataset("digits"), seed=0).train
    return np.asarray(train.X[:48]), np.asarray(train.y[:48], dtype=np.int64)


def _norm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))


# ------------------------------------------------------------------------------------ DP-SGD


def test_one_example_moves_the_model_at_most_lr_times_the_clip_bound_per_expected_batch(shard):
    # Replacement neighbours: the same n and seed give the same batches (and the same noise,
    # here none), so the runs differ only where example 0 is drawn. Each draw moves the
    # weights by lr * C / B for that example on each side: 2 * lr * C * steps / B at most,
    # up to the drift of the other examples' gradients along the two paths.
    X, y = shard
    poisoned_X, poisoned_y = X.copy(), y.copy()
    poisoned_X[0] = 1e4  # a loss in the tens of thousands
    poisoned_y[0] = (y[0] + 5) % 10
    start = init_params(LOGREG, 1)
    lr, clip, steps, batch = 0.1, 0.5, 12, 8
    args = dict(seed=7, batch_size=batch, lr=lr, noise_multiplier=0.0, max_grad_norm=clip)
    clean = train_local_dp(LOGREG, start, X, y, steps, **args)
    poisoned = train_local_dp(LOGREG, start, poisoned_X, poisoned_y, steps, **args)
    assert clean.batch_sizes == poisoned.batch_sizes
    assert _norm(clean.vector, poisoned.vector) <= 2 * lr * clip * steps / batch
    assert _norm(clean.vector, poisoned.vector) > 0  # example 0 was drawn
    # Without clipping the same example throws the model far away.
    plain = train_local(LOGREG, start, X, y, steps, seed=7, batch_size=batch, lr=lr)
    wild = train_local(LOGREG, start, poisoned_X, poisoned_y, steps, seed=7, batch_size=batch,
                       lr=lr)
    assert _norm(plain.vector, wild.vector) > 100 * lr * clip * steps / batch


def test_every_private_gradient_is_bounded_by_the_clip_norm_times_the_batch(shard):
    X, y = shard
    X = X * 1e3  # every example's gradient is far above the bound
    norms: list[float] = []

    def watch(step: int, parameters) -> None:
        norms.append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in parameters))))

    result = train_local_dp(MLP, init_params(MLP, 0), X, y, 10, seed=1, batch_size=8, lr=0.05,
                            noise_multiplier=0.0, max_grad_norm=1.0, gradient_hook=watch)
    assert len(norms) == 10
    for norm, size in zip(norms, result.batch_sizes, strict=True):
        assert norm <= 1.0 * size / 8 + 1e-5


def test_with_full_batches_no_noise_and_no_clipping_it_is_plain_gradient_descent(shard):
    # q = 1 (batch >= n): Poisson sampling takes every example, as train_local's full batch.
    X, y = shard
    start = init_params(MLP, 2)
    private = train_local_dp(MLP, start, X, y, 15, seed=0, batch_size=64, lr=0.1,
                             noise_multiplier=0.0, max_grad_norm=1e6)
    plain = train_local(MLP, start, X, y, 15, seed=0, batch_size=64, lr=0.1)
    assert private.batch_sizes == (48,) * 15 and private.privacy.sample_rate == 1.0
    np.testing.assert_allclose(private.vector, plain.vector, atol=1e-5)


def test_the_same_seed_gives_the_same_vector_and_another_seed_other_noise(shard):
    X, y = shard
    args = dict(batch_size=8, lr=0.1, noise_multiplier=1.0, max_grad_norm=1.0)
    start = init_params(MLP, 0)
    before = torch.random.get_rng_state()
    first = train_local_dp(MLP, start, X, y, 5, seed=3, **args)
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    assert np.array_equal(first.vector, train_local_dp(MLP, start, X, y, 5, seed=3, **args).vector)
    assert not np.array_equal(first.vector,
                              train_local_dp(MLP, start, X, y, 5, seed=4, **args).vector)
    assert not np.array_equal(first.vector,
                              train_local_dp(MLP, start, X, y, 5, seed=None, **args).vector)
    assert first.privacy == PrivacyStep(noise_multiplier=1.0, sample_rate=8 / 48, steps=5)
    assert first.num_samples == 48 and len(first.batch_sizes) == 5


def test_the_hook_sees_the_noised_gradient_and_its_change_reaches_the_step(shard):
    X, y = shard
    start = init_params(LOGREG, 0)
    seen: list[int] = []
    grads: list[float] = []

    def push(step: int, parameters) -> None:
        seen.append(step)
        grads.append(float(parameters[0].grad.abs().sum()))
        parameters[1].grad.add_(1.0)  # data-independent: post-processing

    args = dict(seed=5, batch_size=8, lr=0.1, noise_multiplier=1.0, max_grad_norm=1.0)
    pushed = train_local_dp(LOGREG, start, X, y, 4, gradient_hook=push, **args)
    free = train_local_dp(LOGREG, start, X, y, 4, **args)
    assert seen == [0, 1, 2, 3] and all(g > 0 for g in grads)
    bias = slice(640, 650)  # the logistic regression's bias: 10 x 64 weights come first
    np.testing.assert_allclose(pushed.vector[bias] - free.vector[bias], -0.4, atol=1e-4)


@pytest.mark.parametrize("bad", [dict(noise_multiplier=-1.0), dict(max_grad_norm=0.0),
                                 dict(max_grad_norm=math.inf), dict(batch_size=0),
                                 dict(lr=math.nan), dict(momentum=-0.5), dict(seed=-1),
                                 dict(steps=0), dict(y=np.full(48, 10))],
                         ids=lambda d: next(iter(d)))
def test_bad_training_parameters_raise_config_error(shard, bad):
    X, y = shard
    args = dict(spec=MLP, global_vector=init_params(MLP, 0), X=X, y=y, steps=2, seed=0,
                batch_size=8, lr=0.1, noise_multiplier=1.0, max_grad_norm=1.0)
    with pytest.raises(ConfigError):
        train_local_dp(**{**args, **bad})


# -------------------------------------------------------------------------------- accounting


def test_more_privacy_fewer_steps_and_rarer_sampling_need_the_noise_they_should():
    def sigma(epsilon=2.0, delta=DELTA, rate=0.02, steps=200):
        return noise_for_budget(epsilon, delta, rate, steps, epsilon_tolerance=0.05)

    base = sigma()
    assert base < sigma(epsilon=1.0)  # a smaller ε needs more noise,
    assert base < sigma(steps=400)  # so do more steps,
    assert base < sigma(rate=0.04)  # a larger sample rate
    assert base < sigma(delta=1e-7)  # and a smaller δ
    assert sigma(epsilon=4.0) < base


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_a_calibrated_task_spends_its_whole_budget_and_one_more_round_would_exceed_it(accountant):
    rounds, steps, rate, target = 5, 20, 0.05, 2.0
    sigma = noise_for_budget(target, DELTA, rate, rounds * steps, accountant)
    budget = PrivacyBudget.build(target, DELTA, accountant)
    assert not budget.would_exceed(sigma, rate, steps)
    for _ in range(rounds - 1):
        budget = budget.record(sigma, rate, steps)
    assert not budget.would_exceed(sigma, rate, steps)  # the last round still fits
    budget = budget.record(sigma, rate, steps)
    assert target - 0.05 <= budget.spent() <= target
    assert len(budget.history) == 1 and budget.history[0].steps == rounds * steps
    assert budget.would_exceed(sigma, rate, steps)  # round 11: the participant stops
    assert budget.record(sigma, rate, steps).spent() > target
    assert budget.spent(1e-3) < budget.spent()  # a looser δ costs less ε


def test_a_remembered_answer_is_the_answer_to_the_same_numbers_whatever_was_asked_first():
    """The accountant's answers are memoised. Opacus computes with a numpy float32 δ in
    float32, and 0.25 as a float32 hashes and compares like the float 0.25: the memo must
    give each the answer to the number, whichever was asked first."""
    from fl_agent.privacy import accounting

    history = [PrivacyStep.build(1.3, 0.2, 40)]
    asked = [np.float32(0.25), 0.25]

    def answers(order):
        accounting._epsilon.cache_clear()
        accounting._noise_for.cache_clear()
        got = {id(d): (epsilon_spent(history, d), noise_for_budget(4.0, d, 0.2, 40))
               for d in order}
        return [got[id(d)] for d in asked]

    first = answers(asked)
    assert first == answers(asked[::-1])
    assert first[0] == first[1]  # the same number, the same answer


def test_epsilon_grows_with_every_step_and_without_noise_it_is_infinite():
    budget = PrivacyBudget.build(8.0, DELTA)
    assert budget.spent() == 0.0 and budget.remaining() == 8.0
    spent = [budget.record(1.0, 0.02, k).spent() for k in (10, 20, 40, 80)]
    assert spent == sorted(spent) and len(set(spent)) == 4
    assert budget.record(0.0, 0.1, 1).spent() == math.inf
    assert budget.would_exceed(0.0, 0.1, 1)
    mixed = budget.record(1.0, 0.1, 10).record(2.0, 0.1, 10)
    assert len(mixed.history) == 2
    assert mixed.spent() == epsilon_spent(mixed.history, DELTA, "rdp")


@pytest.mark.parametrize("epsilon", [100.0, 1000.0])
def test_a_prv_task_above_the_prv_range_spends_its_budget_in_exactly_its_rounds(epsilon):
    """Above PRV_RANGE the budget is checked by the RDP bound, so it must be calibrated by it
    too: calibrated by PRV, ε = 100 refused round 19 of 20, and ε = 1000 ran out of memory."""
    q, rounds, steps = 0.3, 20, 20
    sigma = noise_for_budget(epsilon, DELTA, q, rounds * steps, "prv")
    budget = PrivacyBudget.build(epsilon, DELTA, "prv")
    for _ in range(rounds):
        assert not budget.would_exceed(sigma, q, steps)
        budget = budget.record(sigma, q, steps)
    assert budget.would_exceed(sigma, q, steps)
    assert budget.spent() == pytest.approx(epsilon, rel=1e-3)


def test_prv_at_sample_rate_one_calibrates_quietly_and_below_rdp():
    """DP-FedAvg over every member samples at rate 1; PRV's grid then takes log(0) where it
    masks it out anyway. The aggregator's log must not fill with numpy warnings, and the
    tighter accountant must still need less noise than RDP for the same budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prv = noise_for_budget(8.0, DELTA, 1.0, 20, "prv")
    rdp = noise_for_budget(8.0, DELTA, 1.0, 20, "rdp")
    assert 0.8 * rdp < prv < rdp
    assert epsilon_spent([PrivacyStep.build(prv, 1.0, 20)], DELTA, "prv") <= 8.0


def test_a_prv_budget_far_past_any_target_reports_the_rdp_bound_instead_of_hanging():
    # Opacus's PRV accountant runs for minutes (or asks for terabytes) this far out.
    budget = PrivacyBudget.build(8.0, DELTA, "prv").record(0.3, 1.0, 1000)
    assert budget.spent() == PrivacyBudget.build(8.0, DELTA).record(0.3, 1.0, 1000).spent()
    assert budget.spent() > PRV_RANGE and budget.would_exceed(0.3, 1.0, 1)


def test_the_budget_round_trips_through_json():
    for accountant in ("rdp", "prv"):
        budget = (PrivacyBudget.build(4.0, DELTA, accountant, unit="participant")
                  .record(1.3, 0.02, 20).record(1.1, 0.05, 5))
        text = budget.to_json()
        assert PrivacyBudget.from_json(text) == budget
        assert PrivacyBudget.from_json(text.encode()) == budget
    assert PrivacyBudget.from_json(text).spent() == budget.spent()


@pytest.mark.parametrize("text", ['{"target_epsilon": 1, "delta": 1e-5, "accountant": "gdp"}',
                                  '{"target_epsilon": -1, "delta": 1e-5}',
                                  '{"target_epsilon": 1, "delta": 1e-5, "history": '
                                  '[{"noise_multiplier": 1, "sample_rate": 2, "steps": 1}]}',
                                  '{"target_epsilon": 1, "delta": 1e-5, "extra": 0}', "{"])
def test_a_malformed_budget_record_raises_config_error(text):
    with pytest.raises(ConfigError):
        PrivacyBudget.from_json(text)


@pytest.mark.parametrize("call", [
    lambda: PrivacyBudget.build(0.0, DELTA), lambda: PrivacyBudget.build(1.0, 1.0),
    lambda: PrivacyBudget.build(1.0, DELTA, "gdp"), lambda: PrivacyBudget.build(1.0, DELTA,
                                                                               unit="user"),
    lambda: PrivacyBudget.build(1.0, DELTA).record(1.0, 0.0, 1),
    lambda: PrivacyBudget.build(1.0, DELTA).record(1.0, 0.5, 0),
    lambda: PrivacyBudget.build(1.0, DELTA).record(-1.0, 0.5, 1),
    lambda: noise_for_budget(0.0, DELTA, 0.1, 10), lambda: noise_for_budget(1.0, 0.0, 0.1, 10),
    lambda: noise_for_budget(1.0, DELTA, 1.5, 10), lambda: noise_for_budget(1.0, DELTA, 0.1, 0),
    lambda: noise_for_budget(1.0, DELTA, 0.1, 10, "gdp"),
    lambda: noise_for_budget(1e-9, DELTA, 1.0, 10**6, epsilon_tolerance=1e-10)])
def test_bad_budget_parameters_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()


# --------------------------------------------------------------------------------- DP-FedAvg


def test_dp_fedavg_bounds_one_participants_influence_by_the_clip_norm_over_n():
    rng = np.random.default_rng(0)
    global_params = rng.normal(size=500).astype(np.float32)
    honest = global_params + rng.normal(scale=0.1, size=(9, 500))
    attacker = global_params + 1e6 * rng.normal(size=500)
    absent = global_params.copy()  # the neighbour round: the attacker sends nothing new
    clip = 0.5
    with_attacker, info = dp_fedavg(global_params, [*honest, attacker], clip, 0.0, seed=1)
    without, _ = dp_fedavg(global_params, [*honest, absent], clip, 0.0, seed=1)
    assert with_attacker.dtype == np.float32
    assert _norm(with_attacker, without) <= clip / 10 + 1e-5
    assert _norm(with_attacker, global_params) <= clip + 1e-5
    assert 9 in info.clipped and info.norms[9] > 1e6
    # Uniform, not sample-weighted, and unclipped deltas pass unchanged.
    small, _ = dp_fedavg(global_params, honest, clip_norm=100.0, noise_multiplier=0.0, seed=0)
    np.testing.assert_allclose(small, honest.mean(axis=0), atol=1e-5)


def test_dp_fedavg_noise_has_the_promised_scale_and_follows_the_seed():
    global_params = np.zeros(40_000)
    updates = np.zeros((4, 40_000))
    params, info = dp_fedavg(global_params, updates, clip_norm=2.0, noise_multiplier=1.5,
                             seed=3)
    assert info.noise_std == pytest.approx(1.5 * 2.0 / 4)
    assert np.std(params) == pytest.approx(info.noise_std, rel=0.02)
    assert abs(np.mean(params)) < 4 * info.noise_std / math.sqrt(params.size)
    again, _ = dp_fedavg(global_params, updates, 2.0, 1.5, seed=3)
    other, _ = dp_fedavg(global_params, updates, 2.0, 1.5, seed=4)
    assert np.array_equal(params, again) and not np.array_equal(params, other)


def test_dp_fedavg_rounds_feed_a_participant_level_budget():
    global_params = np.zeros(10)
    budget = PrivacyBudget.build(8.0, DELTA, unit="participant")
    for round_number in range(3):
        _, info = dp_fedavg(global_params, np.ones((5, 10)), 1.0, 1.0, seed=round_number)
        step = info.privacy_step(members=20)
        assert step.sample_rate == 0.25 and step.steps == 1
        budget = budget.record_step(step)
    assert budget.history == (PrivacyStep(noise_multiplier=1.0, sample_rate=0.25, steps=3),)
    assert 0 < budget.spent() < 8.0
    with pytest.raises(ConfigError):
        info.privacy_step(members=4)  # fewer members than participants


@pytest.mark.parametrize("args", [
    dict(clip_norm=0.0), dict(clip_norm=-1.0), dict(clip_norm=math.nan),
    dict(noise_multiplier=-0.1), dict(noise_multiplier=math.inf), dict(seed=-1),
    dict(updates=[]), dict(updates=np.zeros((2, 3))), dict(updates=[np.full(5, np.nan)]),
    dict(global_params=np.zeros((5, 1)))], ids=lambda d: next(iter(d)))
def test_dp_fedavg_bad_parameters_raise_config_error(args):
    call = dict(global_params=np.zeros(5), updates=np.ones((2, 5)), clip_norm=1.0,
                noise_multiplier=1.0, seed=0)
    with pytest.raises(ConfigError):
        dp_fedavg(**{**call, **args})
