"""The length band of a DP-SGD update (fl_agent.privacy.dp_length), against Opacus's own
DP-SGD (train_local_dp): real updates fall inside their band, and updates that are not what
the band describes (scaled, or without the noise) fall outside it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_agent.errors import ConfigError
from fl_agent.learning.data import load_dataset, split_dataset
from fl_agent.learning.models import ModelSpec, init_params, param_count
from fl_agent.privacy.dp import train_local_dp
from fl_agent.privacy.dp_length import length_band

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(64,))
D = param_count(MLP)


@pytest.fixture(scope="module")
def shard() -> tuple[np.ndarray, np.ndarray]:
    """60 standardised digits: one participant's data."""
    train = split_dataset(load_dataset("digits"), seed=0).train
    return np.asarray(train.X[:60]), np.asarray(train.y[:60], dtype=np.int64)


def _length(shard, sigma: float, *, momentum: float = 0.0, batch: int = 16, steps: int = 20,
            lr: float = 0.15, seed: int = 0) -> tuple[float, object]:
    X, y = shard
    start = init_params(MLP, 3)
    trained = train_local_dp(MLP, start, X, y, steps, seed=seed, batch_size=batch, lr=lr,
                             momentum=momentum, noise_multiplier=sigma, max_grad_norm=1.0)
    band = length_band(params=D, steps=steps, lr=lr, momentum=momentum, clip=1.0,
                       noise_multiplier=sigma, sample_rate=min(batch, len(y)) / len(y),
                       samples=len(y))
    return float(np.linalg.norm(np.asarray(trained.vector, np.float64) - start)), band


@pytest.mark.parametrize("sigma", [0.3, 3.0, 30.0])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_real_dp_sgd_updates_lie_in_their_band(shard, sigma, momentum):
    for seed in range(3):
        length, band = _length(shard, sigma, momentum=momentum, seed=seed)
        assert band.holds(length), (length, band)


def test_the_noise_sets_the_length_when_it_drowns_the_signal(shard):
    # σ = 30: the signal's bound is a small part of the band, and the update is its noise.
    length, band = _length(shard, 30.0)
    assert band.signal < 0.2 * band.noise
    assert length / band.noise == pytest.approx(1.0, abs=0.03)
    # The band is tight: about ±5 % of the noise for 4,810 coordinates, plus the signal.
    assert band.high / band.noise < 1.3 and band.low / band.noise > 0.7


def test_a_scaled_update_or_one_without_its_noise_falls_outside(shard):
    length, band = _length(shard, 5.0)
    assert band.holds(length)
    assert not band.holds(3 * length)       # a flip ×3 with the same receipt
    assert not band.holds(1.3 * band.high)
    clean, _ = _length(shard, 0.0 + 1e-9)   # trained without noise, receipt says σ = 5
    assert clean < band.low


def test_the_signal_bound_is_reached_by_aligned_clipped_gradients(shard):
    # σ ≈ 0 and one example repeated, every gradient clipped (C = 0.01): each step moves the
    # weights by lr·C·|b_s|/B in one direction, the signal bound's worst case. The length
    # must reach the bound computed from the batches actually drawn, and stay under the
    # band's top, which takes the batches at their 10⁻⁶ quantile.
    X, y = shard
    same_X = np.repeat(X[:1], len(y), axis=0)
    same_y = np.full(len(y), (int(y[0]) + 1) % 10)
    start = init_params(MLP, 3)
    band = length_band(params=D, steps=20, lr=0.15, momentum=0.0, clip=0.01,
                       noise_multiplier=1e-9, sample_rate=16 / 60, samples=60)
    assert band.low == 0.0
    for seed in range(3):
        trained = train_local_dp(MLP, start, same_X, same_y, 20, seed=seed, batch_size=16,
                                 lr=0.15, noise_multiplier=1e-9, max_grad_norm=0.01)
        length = float(np.linalg.norm(np.asarray(trained.vector, np.float64) - start))
        drawn = 0.15 * 0.01 * sum(trained.batch_sizes) / 16
        assert length == pytest.approx(drawn, rel=0.01)
        assert length <= band.high


def test_the_band_follows_its_inputs():
    base = dict(params=D, steps=20, lr=0.15, momentum=0.0, clip=1.0, noise_multiplier=4.0,
                sample_rate=0.25, samples=128)
    band = length_band(**base)
    # The expected noise length: lr·σ·C·√(S·d)/B.
    assert band.noise == pytest.approx(0.15 * 4.0 * math.sqrt(20 * D) / 32, rel=1e-9)
    assert length_band(**{**base, "noise_multiplier": 8.0}).high > band.high
    assert length_band(**{**base, "momentum": 0.5}).signal == pytest.approx(2 * band.signal,
                                                                            rel=1e-6)
    # A full batch: every example every step, K = S·n exactly.
    full = length_band(**{**base, "sample_rate": 1.0, "samples": 20})
    assert full.signal == pytest.approx(0.15 * 1.0 * 20, rel=1e-9)
    # A smaller tail widens the band.
    wide = length_band(**base, tail=1e-12)
    assert wide.high > band.high and wide.low < band.low


@pytest.mark.parametrize("bad", [
    {"noise_multiplier": 0.0}, {"noise_multiplier": math.nan}, {"lr": -1.0},
    {"sample_rate": 1.5}, {"sample_rate": 0.0}, {"momentum": 1.0}, {"momentum": True},
    {"steps": 0}, {"samples": 2.5}, {"params": True}, {"tail": 0.7}, {"clip": math.inf},
])
def test_bad_inputs_are_refused(bad):
    base = dict(params=D, steps=20, lr=0.15, momentum=0.0, clip=1.0, noise_multiplier=4.0,
                sample_rate=0.25, samples=128)
    with pytest.raises(ConfigError):
        length_band(**{**base, **bad})
