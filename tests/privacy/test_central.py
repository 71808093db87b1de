"""Participant-level DP's per-round record (fl_agent.privacy.central): what the aggregator
writes into a round's evidence, and the check anyone can run on it."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.chain.records import TrainingMode
from fl_agent.privacy.accounting import PrivacyStep
from fl_agent.privacy.central import DPFedAvgRecord, record_problems, record_round, task_epsilon
from fl_agent.privacy.dp import dp_fedavg, epsilon_spent, noise_for_budget
from fl_agent.privacy.plan import build_plan

ROUNDS = 5


@pytest.fixture(scope="module", params=["rdp", "prv"])
def plan(request):
    built = build_plan(TrainingMode.DP, epsilon=4.0, dp_level="participant").dp
    return built.model_copy(update={"accountant": request.param})


@pytest.fixture(scope="module")
def sigma(plan):
    return noise_for_budget(plan.epsilon, plan.delta, 1.0, ROUNDS, plan.accountant)


def honest_records(plan, sigma):
    """The records of a task's ROUNDS rounds, each averaging 4 updates (one of them long)."""
    updates = np.ones((4, 6)) * 0.1
    updates[0] *= 100  # clipped
    records = []
    for applied in range(1, ROUNDS + 1):
        _, info = dp_fedavg(np.zeros(6), updates, plan.clip, sigma, seed=applied)
        records.append(record_round(info, plan, applied))
    return records


def test_each_round_records_the_epsilon_spent_so_far_by_the_plans_accountant(plan, sigma):
    records = honest_records(plan, sigma)
    spent = [r.epsilon for r in records]
    assert spent == sorted(spent) and len(set(spent)) == ROUNDS  # grows with every round
    # The accountant's own figure for k rounds at rate 1 (not the record's function).
    for k, record in enumerate(records, start=1):
        assert record.epsilon == epsilon_spent([PrivacyStep.build(sigma, 1.0, k)],
                                               plan.delta, plan.accountant)
        assert (record.updates, record.clipped, record.clip) == (4, 1, plan.clip)
        assert record.noise_std == pytest.approx(sigma * plan.clip / 4)
    assert plan.epsilon - 0.05 < spent[-1] <= plan.epsilon  # the calibration spends it all
    for k, record in enumerate(records, start=1):
        assert record_problems(record, plan, applications=k, accepted=4, rounds=ROUNDS) == []


def _lie(record: DPFedAvgRecord, **changes) -> DPFedAvgRecord:
    return record.model_copy(update=changes)


@pytest.mark.parametrize(("changes", "says"), [
    ({"clip": 2.0}, "clip"),
    ({"delta": 1e-3}, "delta"),
    ({"accountant": "gdp"}, "accountant"),
    ({"applications": 1}, "application"),
    ({"updates": 3}, "averaged 3"),
    ({"clipped": 5}, "clipped 5"),
    ({"noise_std": 0.01}, "noise std"),
    ({"epsilon": 0.5}, "records ε"),
])
def test_a_record_that_misstates_the_round_is_named(plan, sigma, changes, says):
    record = honest_records(plan, sigma)[2]  # the third round
    problems = record_problems(_lie(record, **changes), plan, applications=3, accepted=4,
                               rounds=ROUNDS)
    assert any(says in problem for problem in problems), problems


def test_too_little_noise_for_the_whole_task_is_named_even_when_consistent(plan, sigma):
    """An aggregator that calibrates for fewer rounds than the task has spends less in the
    early rounds, every figure consistent, and would exceed the budget later."""
    short = noise_for_budget(plan.epsilon, plan.delta, 1.0, 2, plan.accountant)
    assert short < sigma
    _, info = dp_fedavg(np.zeros(6), np.ones((4, 6)) * 0.1, plan.clip, short, seed=0)
    record = record_round(info, plan, 1)
    assert record.epsilon < plan.epsilon
    [problem] = record_problems(record, plan, applications=1, accepted=4, rounds=ROUNDS)
    assert f"over the task's {ROUNDS} rounds" in problem
    assert task_epsilon(short, ROUNDS, plan) > plan.epsilon


def test_a_missing_record_is_named(plan):
    [problem] = record_problems(None, plan, applications=1, accepted=4, rounds=ROUNDS)
    assert "no DP-FedAvg record" in problem
