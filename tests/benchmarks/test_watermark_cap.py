"""Rules R55 and R55b's candidate (benchmarks.watermark_cap), which the benchmarks can still
run (the published runs computed it inside embed_hook; see the module): the mark's moves
stay within the cap, the cap binds, each round starts anew, and the largest step that
fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector

from benchmarks.watermark_cap import capped, marking, room
from fl_agent.errors import ConfigError
from fl_agent.learning.data import load_dataset, split_dataset
from fl_agent.learning.models import ModelSpec, init_params, model_from_vector
from fl_agent.learning.training import train_local
from fl_agent.privacy.watermark import (
    DEFAULT_BITS,
    DEFAULT_MARGIN,
    DEFAULT_REACH,
    DEFAULT_STRENGTH,
    WatermarkKey,
    embed_hook,
)

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10)
#: The task's strength, margin and reach, as a participant runs them.
MARK = (DEFAULT_STRENGTH, DEFAULT_MARGIN, DEFAULT_REACH)


@pytest.fixture(scope="module")
def digits():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic, and fair to the other jobs
    yield split_dataset(load_dataset("digits"), seed=0)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def plain(digits):
    """A model trained 300 steps without a mark: converged enough that a client's own moves
    are short."""
    return train_local(MLP, init_params(MLP, seed=3), digits.train.X, digits.train.y, 300,
                       seed=0).vector


def key(byte: int, bits: int = DEFAULT_BITS) -> WatermarkKey:
    return WatermarkKey(bytes([byte]) * 32, bits)


def _marks_moves(spec, start, X, y, steps, hook, lr):
    """Plain SGD from ``start`` with ``hook``; returns how far the weights moved in all, and
    how far the hook's own gradients moved them (read off the grads before and after it, so
    the sum does not come from the hook's own bookkeeping)."""
    model = model_from_vector(spec, start)
    parameters = list(model.parameters())
    optimizer = torch.optim.SGD(parameters, lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    X = torch.tensor(np.asarray(X), dtype=torch.float32)
    y = torch.tensor(np.asarray(y), dtype=torch.int64)
    rng = np.random.default_rng(0)
    by_hook = [torch.zeros_like(p) for p in parameters]
    for step in range(steps):
        batch = rng.choice(len(y), size=min(32, len(y)), replace=False)
        optimizer.zero_grad(set_to_none=False)
        loss_fn(model(X[batch]), y[batch]).backward()
        before = [p.grad.detach().clone() for p in parameters]
        hook(step, parameters)
        for total, p, b in zip(by_hook, parameters, before, strict=True):
            total.add_(p.grad.detach() - b, alpha=-lr)
        optimizer.step()
    moved = parameters_to_vector(parameters).detach() - torch.tensor(np.asarray(start))
    mark = parameters_to_vector(by_hook)
    return float(torch.linalg.norm(moved - mark)), float(torch.linalg.norm(mark))


@pytest.mark.parametrize("cap", [0.5, 1.0, 2.0])
def test_a_length_cap_keeps_the_marks_moves_within_cap_times_the_rest(plain, digits, cap):
    """A converged model, a small shard, and a key whose bits the model does not hold: without
    a cap the mark is most of the update (the round that FairFL's norm screen refuses); with
    one, the mark's moves stay within ``cap`` times everything else's, and still move it."""
    X, y, lr = digits.train.X[:40], digits.train.y[:40], 0.05
    other = key(9, DEFAULT_BITS)
    rest, mark = _marks_moves(MLP, plain, X, y, 20, marking(MLP, other, *MARK, lr), lr)
    assert mark > 3 * rest  # uncapped: the mark dwarfs the training's own moves
    rest, mark = _marks_moves(MLP, plain, X, y, 20, marking(MLP, other, *MARK, lr, cap), lr)
    assert mark <= cap * rest * (1 + 1e-4)
    assert mark >= 0.8 * cap * rest  # it binds: the mark takes the room it has
    hook = marking(MLP, other, *MARK, lr, cap)  # one hook, round after round:
    first = _marks_moves(MLP, plain, X, y, 20, hook, lr)
    assert _marks_moves(MLP, plain, X, y, 20, hook, lr) == first == (rest, mark)  # anew
    with pytest.raises(ConfigError, match="needs the optimizer's lr"):
        marking(MLP, other, *MARK, None, cap)
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ConfigError, match="length_cap"):
            capped(embed_hook(MLP, other, lr=lr), lr, bad)
        with pytest.raises(ConfigError, match="lr"):
            capped(embed_hook(MLP, other, lr=lr), bad, cap)


def test_room_is_the_largest_step_that_fits():
    moved, step = [torch.tensor([3.0, 0.0])], [torch.tensor([0.0, 4.0])]
    assert room(5.0, moved, step) == pytest.approx(1.0)  # |(3, 4)| = 5 fits exactly
    assert room(4.0, moved, step) == pytest.approx(math.sqrt(7) / 4)  # 9 + 16 a^2 = 16
    assert room(3.0, moved, step) == 0.0  # already at the cap
    assert room(2.0, moved, step) == 0.0  # past it (the others' moves shrank)
    assert room(1.0, [torch.zeros(2)], [torch.zeros(2)]) == 1.0  # nothing to move


