"""Rule R43's candidate (a watermark reach scaled by the participant's weight share), which
the benchmarks can still run to reproduce the published negative result: the weights it
reads, the reach it gives, and that the held-out harness drives it round by round."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks.held_out import honest_marks
from benchmarks.privacy_watermark import mean_weight, reach_for
from fl_agent.aggregation.rounds import capped_claims
from fl_agent.simulation.config import SimulationConfig
from fl_agent.simulation.offline import federation


def test_the_mean_weight_caps_claims_at_the_others_median_and_counts_the_accepted_only():
    # claims 10, 20, 30, 400: the others of the 400 are 10, 20, 30, whose median is 20
    assert mean_weight([10, 20, 30, 400], [0, 3]) == pytest.approx((10 + 20) / 2)
    # the 30's others are 10, 20, 400 (median 20): capped too
    assert mean_weight([10, 20, 30, 400], [1, 2]) == pytest.approx(20.0)
    assert mean_weight([10, 20], []) is None


def test_the_reach_grows_below_the_mean_weight_up_to_the_cap_and_never_shrinks():
    assert reach_for(0.25, 50, 100, 1.5) == pytest.approx(0.25 * 1.5)  # 2x, capped at 1.5
    assert reach_for(0.25, 80, 100, 1.5) == pytest.approx(0.25 * 1.25)
    assert reach_for(0.25, 200, 100, 1.5) == pytest.approx(0.25)  # above the mean: as is
    assert reach_for(0.25, 50, None, 1.5) == 0.25  # round 1: no record yet
    assert reach_for(0.25, 50, 100, None) == 0.25  # no cap: the task's rule
    assert reach_for(None, 50, 100, 1.5) is None  # FedIPR's hinge has no reach
    with pytest.raises(ValueError, match="share cap"):
        reach_for(0.25, 50, 100, 0.5)


def _moved(hook, lr: float, steps: int = 30) -> float:
    """How far ``steps`` steps of plain SGD on the mark alone move a zero carrier (the
    hooks only touch the parameter they mark, the MLP's fc1.weight, parameter 0, so a
    one-element list stands for the model here)."""
    parameter = torch.nn.Parameter(torch.zeros(64, 64))
    for step in range(steps):
        parameter.grad = torch.zeros_like(parameter)
        hook(step, [parameter])
        with torch.no_grad():
            parameter -= lr * parameter.grad
    return float(parameter.detach().norm())


def test_the_held_out_harness_rebuilds_each_round_with_the_last_rounds_mean_weight():
    fed = federation(SimulationConfig(attack="none", malicious=0.0, seed=1, rounds=2))
    keys, hooks, after = honest_marks(fed, share_cap=10.0)  # a cap that does not bind here
    plain_keys, plain_hooks, plain_after = honest_marks(fed)
    assert plain_after is None and after is not None and keys.keys() == plain_keys.keys()
    sizes = np.array([len(c.y) for c in fed.clients])
    small, lr = int(np.argmin(sizes)), fed.config.lr
    # round 1: no record yet, the task's reach
    assert _moved(hooks[small], lr) == pytest.approx(_moved(plain_hooks[small], lr))
    # a round in which every other client submitted and the first three of them (positions
    # in the submitted list, as the decision gives them) were accepted
    submitted = tuple(range(0, len(sizes), 2))
    after(SimpleNamespace(submitted=submitted, decision=SimpleNamespace(accepted=(0, 1, 2))))
    capped = capped_claims(sizes[list(submitted)].astype(float))
    mean = float(np.mean(capped[:3]))
    assert after.__self__.mean == pytest.approx(mean)
    factor = max(1.0, mean / sizes[small])
    assert factor > 1.5  # the check below tells a scaled reach from the plain one
    assert _moved(hooks[small], lr) == pytest.approx(factor * _moved(plain_hooks[small], lr),
                                                     rel=0.05)


def test_the_watermark_benchmark_hands_each_round_the_mean_weight_the_last_accepted():
    from benchmarks.privacy_watermark import Seed, federated_run

    seed = Seed(1, 2, lambda: None)
    seen: list[float | None] = []

    def hooks(mean: float | None) -> list[None]:
        seen.append(mean)
        return [None] * seed.n

    _, decisions = federated_run(seed.fed, seed.fedavg, hooks, 2)
    sizes = [len(c.y) for c in seed.fed.clients]
    assert seen == [None, pytest.approx(mean_weight(sizes, decisions[0].accepted))]
