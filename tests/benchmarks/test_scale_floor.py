"""Rule R63's candidate, a floor under the standardisation's scales (benchmarks.scale_floor)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.scale_floor import floored_scales, with_scale_floor
from fl_agent.errors import ConfigError


def test_a_scale_floor_lifts_only_the_scales_below_it():
    """No scale below ``share`` times the median scale of the features that vary (here 2:
    scales 0.01, 2 and 4, one constant feature), a constant feature keeping scale 1; 0
    leaves every scale as the data has it."""
    X = np.array([[0.0, -2.0, -4.0, 7.0], [0.02, 2.0, 4.0, 7.0]])
    plain = (0.01, 2.0, 4.0, 1.0)
    assert floored_scales(X, plain, 0.25) == pytest.approx((0.5, 2.0, 4.0, 1.0))
    assert floored_scales(X, plain, 0.0) == pytest.approx(plain)
    for bad in (-0.1, 1.5, float("nan"), "0.2", True):
        with pytest.raises(ConfigError, match="scale_floor must be a share"):
            floored_scales(X, plain, bad)


def test_a_scale_floor_changes_only_the_standardisation_of_the_federation():
    """The same shards, attackers and trigger, the same means, and no scale of a pixel that
    varies below a quarter of the median; colluders, who train through the simulation's own
    standardisation, are refused."""
    from fl_agent.simulation.config import SimulationConfig
    from fl_agent.simulation.offline import federation

    plain = federation(SimulationConfig(seed=4, clients=6, attack="backdoor", malicious=0.3))
    floored = with_scale_floor(plain, 0.25)
    assert with_scale_floor(plain, 0.0) is plain
    scale, lifted = np.array(plain.data.scale), np.array(floored.data.scale)
    std = np.asarray(plain.splits.train.X, dtype=np.float64).std(axis=0)
    varies, floor = std > 0, 0.25 * float(np.median(std[std > 0]))
    assert scale.min() < 0.1 and floor > 1.0  # digits: pixels nearly always blank
    assert np.allclose(lifted[varies], np.maximum(std[varies], floor))
    assert np.array_equal(lifted[~varies], scale[~varies])  # constant pixels keep 1
    assert floored.data.mean == plain.data.mean and floored.trigger == plain.trigger
    for a, b in zip(plain.clients, floored.clients, strict=True):
        assert np.array_equal(a.X, b.X) and a.malicious == b.malicious
    colluding = federation(SimulationConfig(seed=4, clients=6, attack="alie", malicious=0.3))
    with pytest.raises(ConfigError, match="without --scale-floor"):
        with_scale_floor(colluding, 0.25)
