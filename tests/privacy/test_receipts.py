"""The aggregator's check of a privacy receipt (:mod:`fl_agent.privacy.receipts`): every way a
receipt can be missing, malformed or at odds with the task and the update is refused, with
what is wrong; an honest participant's receipt passes."""

from __future__ import annotations

import json

import pytest

from fl_agent.chain.records import TrainingMode
from fl_agent.privacy.plan import HEPlan, PrivacyReceipt, build_plan
from fl_agent.privacy.receipts import MAX_RECEIPT_BYTES, ReceiptError, check_receipt

SENDER = "0x" + "ab" * 20
PLAN = build_plan(TrainingMode.DP | TrainingMode.PRUNING, epsilon=8.0, prune_ratio=0.9)
FIELDS = {"task": 3, "round": 2, "participant": SENDER, "mode": "dp+pruning",
          "update_bytes": 4312, "epsilon_spent": 2.5, "delta": 1e-5, "accountant": "prv",
          "noise_multiplier": 3.7, "sample_rate": 0.2, "steps": 40, "kept": 481,
          "length": 4810}
SUBMISSION = {"task": 3, "round_number": 2, "participant": SENDER.upper().replace("0X", "0x"),
              "update_bytes": 4312, "kept": 481, "length": 4810}


def receipt_bytes(**changes) -> bytes:
    fields = {k: v for k, v in {**FIELDS, **changes}.items() if v is not None}
    return PrivacyReceipt(**fields).to_json()


def test_an_honest_receipt_passes_and_is_returned():
    receipt = check_receipt(receipt_bytes(), PLAN, **SUBMISSION)
    assert receipt.epsilon_spent == 2.5 and receipt.kept == 481
    # spending exactly the budget is allowed: the participant stops before exceeding it
    assert check_receipt(receipt_bytes(epsilon_spent=8.0), PLAN, **SUBMISSION)
    # RDP's bound under a PRV plan: a budget saved before the plan's accountant changed
    assert check_receipt(receipt_bytes(accountant="rdp"), PLAN, **SUBMISSION)


@pytest.mark.parametrize("data, message", [
    (None, "without a privacy receipt"),
    (b"", "without a privacy receipt"),
    (b"{" + b" " * MAX_RECEIPT_BYTES + b"}", "a receipt is at most"),
    (b"not json", "malformed"),
    (receipt_bytes()[:-5], "malformed"),
    (json.dumps({**FIELDS, "extra": 1}).encode(), "malformed"),
    (receipt_bytes(task=4), "is for task 4"),
    (receipt_bytes(round=1), "round 1"),
    (receipt_bytes(participant="0x" + "cd" * 20), "sender 0x" + "cd" * 20),
    (receipt_bytes(mode="pruning"), "says mode 'pruning'"),
    (receipt_bytes(update_bytes=100), "says the update is 100 bytes; it is 4,312"),
    (receipt_bytes(epsilon_spent=None), "no ε record"),
    (receipt_bytes(epsilon_spent=0.0), "not a positive number"),
    (receipt_bytes(epsilon_spent=-1.0), "not a positive number"),
    (json.dumps({**FIELDS, "epsilon_spent": float("nan")}).encode(), "not a positive number"),
    (json.dumps({**FIELDS, "epsilon_spent": float("inf")}).encode(), "not a positive number"),
    (receipt_bytes(epsilon_spent=8.0001), "above the task's budget of 8"),
    (receipt_bytes(delta=1e-3), "δ = 0.001"),
    (receipt_bytes(accountant="moments"), "by 'moments'"),
    (receipt_bytes(accountant=None), "by None"),
    (receipt_bytes(noise_multiplier=None), "incomplete"),
    (receipt_bytes(noise_multiplier=0.0), "incomplete"),
    (receipt_bytes(sample_rate=1.5), "incomplete"),
    (receipt_bytes(steps=0), "incomplete"),
    (receipt_bytes(kept=48), "says 48 of 4810 entries were sent; the update holds 481"),
    (receipt_bytes(length=4811), "the update holds 481 of 4810"),
])
def test_a_bad_receipt_is_refused_with_what_is_wrong(data, message):
    with pytest.raises(ReceiptError) as caught:
        check_receipt(data, PLAN, **SUBMISSION)
    assert message in str(caught.value), str(caught.value)


def test_participant_level_dp_needs_no_epsilon_and_he_its_context():
    participant = build_plan(TrainingMode.DP, epsilon=8.0, dp_level="participant")
    plain = {"task": 3, "round": 2, "participant": SENDER, "mode": "dp", "update_bytes": 10}
    submission = {**SUBMISSION, "update_bytes": 10}
    assert check_receipt(PrivacyReceipt(**plain).to_json(), participant, **submission)

    he = HEPlan(context_cid="bafkqaaa", fingerprint="0" * 64, key_holder=SENDER)
    plan = build_plan(TrainingMode.HOMOMORPHIC, he=he)
    fields = {**plain, "mode": "homomorphic"}
    assert check_receipt(PrivacyReceipt(**fields, he_fingerprint="0" * 64).to_json(), plan,
                         **submission)
    with pytest.raises(ReceiptError, match="names CKKS context 1111"):
        check_receipt(PrivacyReceipt(**fields, he_fingerprint="1" * 64).to_json(), plan,
                      **submission)


# ------------------------------------------------------------- a sender's receipts over rounds
def honest_series(accountant: str, rounds: int = 3, sigma: float = 1.2, rate: float = 0.2,
                  steps: int = 20) -> list[PrivacyReceipt]:
    """The receipts a participant writes round after round (fl_agent.privacy.local: ε from
    its budget, σ, q and the steps of the budget's last entry)."""
    from fl_agent.privacy.dp import PrivacyBudget

    budget, receipts = PrivacyBudget.build(50.0, 1e-5, accountant), []
    for number in range(1, rounds + 1):
        budget = budget.record(sigma, rate, steps)
        last = budget.history[-1]
        receipts.append(PrivacyReceipt(**{
            **FIELDS, "round": number, "epsilon_spent": budget.spent(),
            "accountant": accountant, "noise_multiplier": last.noise_multiplier,
            "sample_rate": last.sample_rate, "steps": last.steps}))
    return receipts


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_an_honest_senders_receipts_pass_round_after_round(accountant):
    from fl_agent.privacy.receipts import check_history, composed_epsilon

    receipts = honest_series(accountant)
    assert receipts[-1].steps == 60  # the budget merges a task's rounds into one entry
    for k, receipt in enumerate(receipts):
        check_history(receipt, receipts[:k], claimed=160, batch_size=32,
                      earlier_claims=[160] * k, steps_floor=20 * (k + 1))
    # Composed from the receipts (most steps per noise and rate), the budget's own figure.
    assert composed_epsilon(receipts, 1e-5, accountant) == pytest.approx(
        receipts[-1].epsilon_spent, rel=1e-9)


@pytest.mark.parametrize(("lie", "message"), [
    ("repeat", "no more than"),        # the same ε as the round before
    ("reset", "no more than"),         # a fresh budget: one round's ε again
    ("understate", "understates"),     # grows, but by less than its records compose to
])
def test_a_sender_whose_epsilon_stands_falls_or_lags_its_records_is_refused(lie, message):
    from fl_agent.privacy.receipts import check_history

    receipts = honest_series("rdp")
    honest = receipts[2]
    reported = {"repeat": receipts[1].epsilon_spent, "reset": receipts[0].epsilon_spent,
                "understate": (receipts[1].epsilon_spent + honest.epsilon_spent) / 2}[lie]
    with pytest.raises(ReceiptError, match=message):
        check_history(honest.model_copy(update={"epsilon_spent": reported}), receipts[:2])


def test_a_budget_carried_from_other_tasks_may_report_more():
    from fl_agent.privacy.receipts import check_history

    receipts = honest_series("rdp")
    carried = [r.model_copy(update={"epsilon_spent": r.epsilon_spent + 3.0})
               for r in receipts]
    for k, receipt in enumerate(carried):
        check_history(receipt, carried[:k])
    check_history(receipts[0], [])  # a first round has nothing to grow from


def test_a_sender_that_keeps_its_steps_still_or_claims_a_smaller_rate_is_refused():
    """Ways to make the records compose to less: report the same step count every round (ε
    nudged up to pass the growth check), a sample rate below what the samples it claims give,
    other samples than before, another noise multiplier. The steps are held against the
    chain (the rounds it submitted in), not against receipts a sender can stop serving."""
    from fl_agent.privacy.receipts import check_history

    receipts = honest_series("rdp")
    still = [r.model_copy(update={"steps": 20, "epsilon_spent": receipts[0].epsilon_spent
                                  + 0.001 * k}) for k, r in enumerate(receipts)]
    check_history(still[1], still[:1])  # without the chain's steps the records look fine
    with pytest.raises(ReceiptError, match="counts 20 DP-SGD steps; the rounds it submitted "
                                           "in had it run 40"):
        check_history(still[1], [], steps_floor=40)  # its round-1 receipt hidden: no matter
    with pytest.raises(ReceiptError, match="sample rate is 0.2; batches of 32 from its 100 "
                                           "claimed samples give 0.32"):
        check_history(receipts[0], [], claimed=100, batch_size=32)
    with pytest.raises(ReceiptError, match="claims 200 samples, its earlier ones 160"):
        check_history(receipts[1], receipts[:1], claimed=200, earlier_claims=[160])
    with pytest.raises(ReceiptError, match="claims 0 samples"):
        check_history(receipts[0], [], claimed=0, batch_size=32)
    with pytest.raises(ReceiptError, match="noise multiplier is 1.3, its earlier ones' 1.2"):
        check_history(receipts[1].model_copy(update={"noise_multiplier": 1.3}), receipts[:1])
    # A round that assigned fewer steps (a slow device) is met by fewer.
    check_history(receipts[1].model_copy(update={"steps": 30}), receipts[:1], steps_floor=30)


# ------------------------------------------------- an update's length against its receipt
def test_the_length_check_holds_a_real_dp_sgd_update_to_its_receipt(one_torch_thread):
    """A participant's real round (LocalPrivacy: σ calibrated to spend ε = 4 over 5 rounds of
    10 steps, DP-SGD by Opacus) passes; the same receipt with the update scaled ×3, with the
    update trained without noise, or with a σ larger than the budget needs is refused, each
    with what is wrong."""
    import numpy as np

    from fl_agent.learning.data import load_dataset, split_dataset
    from fl_agent.learning.models import ModelSpec, init_params, param_count
    from fl_agent.privacy.dp import train_local_dp
    from fl_agent.privacy.local import LocalPrivacy
    from fl_agent.privacy.receipts import check_update_length, length_checked

    spec = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(64,))
    plan = build_plan(TrainingMode.DP, epsilon=4.0, dp_length_check=True)
    assert length_checked(plan) and plan.dp.length_check
    assert not length_checked(build_plan(TrainingMode.DP, epsilon=4.0))  # off by default
    train = split_dataset(load_dataset("digits"), seed=0).train
    X, y = np.asarray(train.X[:96]), np.asarray(train.y[:96], dtype=np.int64)
    start = init_params(spec, 1)
    local = LocalPrivacy.restore(plan, spec, 5, 10, {})
    trained = local.train(start, X, y, 10, seed=3, batch_size=32, lr=0.1, momentum=0.0)
    receipt = local.receipt(3, 1, SENDER, b"", {}, None)
    args = dict(dp=plan.dp, rounds=5, base_steps=10, steps=10, lr=0.1, momentum=0.0,
                claimed=96, params=param_count(spec))

    def length(vector) -> float:
        return float(np.linalg.norm(np.asarray(vector, np.float64) - start))

    honest = length(trained.vector)
    check_update_length(receipt, honest, **args)
    with pytest.raises(ReceiptError, match="longer: scaled"):
        check_update_length(receipt, 3 * honest, **args)
    quiet = train_local_dp(spec, start, X, y, 10, seed=3, batch_size=32, lr=0.1,
                           noise_multiplier=1e-6, max_grad_norm=1.0)
    with pytest.raises(ReceiptError, match="shorter: its noise was not added"):
        check_update_length(receipt, length(quiet.vector), **args)
    # Twice the noise it needs: ε over the task's 50 steps falls far below 4 (the band would
    # otherwise widen with it).
    louder = receipt.model_copy(update={"noise_multiplier": 2 * receipt.noise_multiplier})
    with pytest.raises(ReceiptError, match="would spend only ε = .* of the task's 4 over its "
                                           "5 rounds of 10 steps"):
        check_update_length(louder, 2 * honest, **args)
    # The task's learning rate sets the band: the same update judged at lr 1 is too short.
    with pytest.raises(ReceiptError, match="shorter"):
        check_update_length(receipt, honest, **{**args, "lr": 1.0})


@pytest.mark.parametrize(("mode", "settings"), [
    (TrainingMode.DP | TrainingMode.PRUNING, {"prune_ratio": 0.9}),  # error feedback
    (TrainingMode.DP | TrainingMode.WATERMARK, {}),                   # an unclipped hinge
    (TrainingMode.DP, {"dp_level": "participant"}),                   # no DP-SGD receipts
    (TrainingMode.PLAIN, {}),
])
def test_the_length_check_is_refused_where_its_band_does_not_describe_the_update(mode,
                                                                                 settings):
    from fl_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="dp-length-check"):
        build_plan(mode, epsilon=4.0, dp_length_check=True, **settings)


def test_the_length_check_takes_either_accountant_and_refuses_numbers_it_cannot_take():
    """A σ calibrated by RDP (a saved budget, or beyond PRV's range) spends the budget by RDP
    but less by PRV: the check takes the larger ε, so it passes whatever the receipt names.
    Numbers no accountant or quantile takes (a claim of 10¹⁸ samples, σ = 1e-300) are the
    receipt's fault: a ReceiptError, never a crash of the aggregator's round."""
    from fl_agent.privacy.dp import noise_for_budget
    from fl_agent.privacy.receipts import check_history, check_update_length

    plan = build_plan(TrainingMode.DP, epsilon=4.0, dp_length_check=True)
    rate = 32 / 160
    sigma = noise_for_budget(4.0, 1e-5, rate, 100, "rdp")
    assert noise_for_budget(4.0, 1e-5, rate, 100, "prv") < 0.97 * sigma
    receipt = PrivacyReceipt(**{**FIELDS, "mode": "dp", "accountant": "prv",
                                "noise_multiplier": sigma, "sample_rate": rate, "steps": 20})
    args = dict(dp=plan.dp, rounds=5, base_steps=20, steps=20, lr=0.05, momentum=0.0,
                claimed=160, params=4810)
    noise = 0.05 * sigma * (20 * 4810) ** 0.5 / 32
    check_update_length(receipt, noise, **args)
    with pytest.raises(ReceiptError, match="would spend only"):  # 1.5x: past both
        check_update_length(receipt.model_copy(update={"noise_multiplier": 1.5 * sigma}),
                            1.5 * noise, **args)
    huge = receipt.model_copy(update={"sample_rate": 32 / 10**18})
    with pytest.raises(ReceiptError):
        check_update_length(huge, noise, **{**args, "claimed": 10**18})
    tiny = receipt.model_copy(update={"noise_multiplier": 1e-300, "epsilon_spent": 3.0})
    with pytest.raises(ReceiptError, match="cannot be checked"):
        check_history(tiny, [])
