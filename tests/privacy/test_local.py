"""A participant's privacy state across rounds (fl_agent.privacy.local), offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_agent.chain.records import TrainingMode
from fl_agent.errors import ConfigError
from fl_agent.learning import load_dataset
from fl_agent.learning.models import ModelSpec, init_params, param_count
from fl_agent.learning.weights import decode_weights, encode_weights
from fl_agent.privacy.local import BudgetExhausted, LocalPrivacy
from fl_agent.privacy.plan import PrivacyPlan, PrivacyReceipt, build_plan

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    X = (data.X[:200] - data.X.mean(0)) / (data.X.std(0) + 1e-9)
    return ModelSpec.for_features("logreg", data.feature_shape, 10), X.astype(np.float32), \
        data.y[:200]


def train(privacy: LocalPrivacy, spec, X, y, global_vector, seed=1):
    return privacy.train(global_vector, X, y, 10, seed=seed, batch_size=32, lr=0.1,
                         momentum=0.0)


def test_build_plan_turns_the_mode_into_a_plan_and_asks_for_what_is_missing():
    plan = build_plan(TrainingMode.parse("dp+prune+watermark"), epsilon=4, prune_ratio=0.9)
    assert plan.mode() == TrainingMode.DP | TrainingMode.PRUNING | TrainingMode.WATERMARK
    assert (plan.dp.epsilon, plan.dp.delta, plan.prune.ratio) == (4, 1e-5, 0.9)
    assert build_plan(TrainingMode.PLAIN) is None
    with pytest.raises(ConfigError, match="--epsilon"):
        build_plan(TrainingMode.DP)
    with pytest.raises(ConfigError, match="--prune-ratio"):
        build_plan(TrainingMode.PRUNING)
    with pytest.raises(ConfigError, match="invalid privacy settings"):
        build_plan(TrainingMode.PRUNING, prune_ratio=1.5)


def test_dp_spends_the_budget_over_the_planned_rounds_then_stops(digits):
    spec, X, y = digits
    privacy = LocalPrivacy(build_plan(TrainingMode.DP, epsilon=2.0), spec, rounds=3, steps=10)
    vector = init_params(spec, 0)
    spent = []
    for round_number in (1, 2, 3):
        result = train(privacy, spec, X, y, vector, seed=round_number)
        vector = result.vector
        spent.append(privacy.budget.spent())
    assert spent[0] < spent[1] < spent[2] <= 2.0 + 1e-6
    assert spent[2] > 1.9  # the noise was calibrated to use the budget, not a fraction of it
    with pytest.raises(BudgetExhausted, match="stops submitting"):
        train(privacy, spec, X, y, vector, seed=4)
    assert privacy.budget.spent() == spent[2]  # refused before training: nothing spent


def test_dp_never_trains_more_than_the_planned_steps_whatever_the_workload(digits):
    spec, X, y = digits
    privacy = LocalPrivacy(build_plan(TrainingMode.DP, epsilon=2.0), spec, rounds=2, steps=10)
    start = init_params(spec, 0)
    result = privacy.train(start, X, y, 20, seed=1, batch_size=32, lr=0.1, momentum=0.0)
    assert result.steps == 10 and privacy.budget.history[-1].steps == 10
    privacy.train(result.vector, X, y, 20, seed=2, batch_size=32, lr=0.1, momentum=0.0)
    assert privacy.budget.spent() <= 2.0 + 1e-6  # the second round still fits


def test_the_state_survives_a_restart_and_a_damaged_state_is_not_reset_silently(digits):
    spec, X, y = digits
    plan = build_plan(TrainingMode.parse("dp+prune+watermark"), epsilon=4, prune_ratio=0.9)
    privacy = LocalPrivacy(plan, spec, rounds=2, steps=10)
    start = init_params(spec, 0)
    result = train(privacy, spec, X, y, start)
    privacy.encode(start, result.vector)

    restored = LocalPrivacy.restore(plan, spec, 2, 10, privacy.state())
    assert restored.budget == privacy.budget
    assert restored.noise_multiplier == privacy.noise_multiplier
    assert np.array_equal(restored.residual.residual, privacy.residual.residual)
    assert restored.watermark_key.secret == privacy.watermark_key.secret

    with pytest.raises(ConfigError, match="not reset silently"):
        LocalPrivacy.restore(plan, spec, 2, 10, {"privacy.json": b"{not json"})
    # a budget saved under another plan (another ε or δ, or no DP) is not taken on
    for other, problem in (
            (build_plan(TrainingMode.parse("dp+prune+watermark"), epsilon=40,
                        prune_ratio=0.9), "not this task's ε=40"),
            (plan.model_copy(update={"dp": plan.dp.model_copy(update={"delta": 1e-6})}),
             "not this task's"),
            (build_plan(TrainingMode.parse("prune+watermark"), prune_ratio=0.9),
             "no example-level DP")):
        with pytest.raises(ConfigError, match=problem):
            LocalPrivacy.restore(other, spec, 2, 10, privacy.state())
    # ...but its own accountant goes on checking it when the plan names another (a task
    # document without the field read "rdp" before the default became "prv")
    other = plan.model_copy(update={"dp": plan.dp.model_copy(update={"accountant": "rdp"})})
    again = LocalPrivacy.restore(other, spec, 2, 10, privacy.state())
    assert again.budget == privacy.budget and again.budget.accountant == "prv"


def test_prune_sends_a_sparse_delta_and_keeps_what_it_dropped(digits):
    spec, X, y = digits
    plan = build_plan(TrainingMode.PRUNING, prune_ratio=0.9)
    privacy = LocalPrivacy(plan, spec, rounds=1, steps=10)
    start = init_params(spec, 0)
    result = train(privacy, spec, X, y, start)
    payload, fields = privacy.encode(start, result.vector)
    d = param_count(spec)
    assert fields == {"kept": round(d * 0.1), "length": d}
    dense = encode_weights(spec, result.vector)
    assert len(payload) < 0.4 * len(dense)  # 8 bytes per kept entry, 4 per dense weight
    with pytest.raises(Exception, match="weights|safetensors|fairfl"):
        decode_weights(payload, spec)  # not full weights: the aggregator must densify
    delta = result.vector.astype(np.float64) - start
    sent = np.zeros(d)
    from fl_agent.privacy.sparse import decode_sparse

    sparse = decode_sparse(payload, spec)
    sent[sparse.indices] = sparse.values
    assert np.allclose(sent + privacy.residual.residual, delta, atol=1e-6)


def test_the_receipt_says_what_was_applied_and_spent(digits):
    spec, X, y = digits
    plan = build_plan(TrainingMode.parse("dp+watermark"), epsilon=8)
    privacy = LocalPrivacy(plan, spec, rounds=2, steps=10)
    start = init_params(spec, 0)
    result = train(privacy, spec, X, y, start)
    payload, fields = privacy.encode(start, result.vector)
    receipt = privacy.receipt(3, 1, "0xAbC", payload, fields, b"\x01" * 32)
    again = PrivacyReceipt.from_json(receipt.to_json())
    assert again == receipt
    assert (again.mode, again.participant, again.update_bytes) == ("dp+watermark", "0xabc",
                                                                   len(payload))
    assert again.epsilon_spent == pytest.approx(privacy.budget.spent())
    assert again.delta == 1e-5 and again.accountant == "prv"
    assert again.steps == 10 and again.sample_rate == pytest.approx(32 / 200)
    assert again.watermark_commitment == "0x" + "01" * 32


def test_a_plan_that_cannot_work_is_refused():
    with pytest.raises(ValueError, match="do not combine"):
        PrivacyPlan(prune={"ratio": 0.5},
                    he={"context_cid": "bafk", "fingerprint": "0" * 64,
                        "key_holder": "0x" + "1" * 40})
