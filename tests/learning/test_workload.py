"""Workload balancing from measured throughput."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_agent.errors import ConfigError
from fl_agent.learning.workload import Measurement, Workload, assign_steps


def test_the_median_device_keeps_the_base_steps_and_others_scale_with_speed():
    m = {"a": Measurement(20, 32, 1000), "b": Measurement(20, 32, 2000),
         "c": Measurement(20, 32, 500)}
    steps = assign_steps(["a", "b", "c", "new"], m, 20)
    assert steps == {"a": 20, "b": 10, "c": 40, "new": 20}


def test_assignments_are_clamped():
    m = {"fast": Measurement(10, 32, 60), "slow": Measurement(10, 32, 100_000),
         "mid": Measurement(10, 32, 1000)}
    steps = assign_steps(["fast", "slow", "mid"], m, 10, min_ratio=0.5, max_ratio=2.0)
    assert steps == {"fast": 20, "slow": 5, "mid": 10}
    assert Measurement(1, 1, 0).throughput == float("inf")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(50, 100_000), min_size=1),
       st.integers(1, 200))
def test_faster_devices_never_get_fewer_steps_and_bounds_hold(millis, base):
    m = {k: Measurement(base, 16, v) for k, v in millis.items()}
    steps = assign_steps(sorted(m), m, base)
    for a in m:
        assert max(1, -(-base // 2)) <= steps[a] <= max(1, 2 * base)
        for b in m:
            if millis[a] < millis[b]:
                assert steps[a] >= steps[b]


def test_timing_noise_does_not_move_work():
    coarse = {"a": Measurement(20, 32, 2), "b": Measurement(20, 32, 4),
              "c": Measurement(20, 32, 3)}
    assert assign_steps(["a", "b", "c"], coarse, 20) == {"a": 20, "b": 20, "c": 20}
    close = {"a": Measurement(20, 32, 1000), "b": Measurement(20, 32, 1150),
             "c": Measurement(20, 32, 900)}
    assert assign_steps(["a", "b", "c"], close, 20) == {"a": 20, "b": 20, "c": 20}
    with pytest.raises(ConfigError, match="dead_band"):
        assign_steps(["a"], close, 20, dead_band=1.0)


@pytest.mark.parametrize("base, lo, hi", [(0, 0.5, 2), (5, 0, 2), (5, 0.5, 0.9), (True, .5, 2)])
def test_bad_balancing_settings(base, lo, hi):
    with pytest.raises(ConfigError):
        assign_steps(["a"], {}, base, min_ratio=lo, max_ratio=hi)


def test_workload_document_round_trip_and_validation():
    w = Workload(3, 32, {"0xABC": 7}, 20)
    back = Workload.from_json(w.to_json())
    assert back.steps_for("0xabc") == 7 and back.steps_for("0xdef") == 20 and back.round == 3
    assert w.to_json() == Workload(3, 32, {"0xabc": 7}, 20).to_json()
    for bad in (b"not json", b'{"format": "other"}', b'{"format": "fairfl-workload/1"}',
                b'{"format":"fairfl-workload/1","round":1,"batch_size":8,"default_steps":5,'
                b'"steps":{"0xa":0}}'):
        with pytest.raises(ConfigError):
            Workload.from_json(bad)
