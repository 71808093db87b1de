"""Rules R55 and R55b's candidate, **not adopted**: a cap on how far a participant's
watermark moves the weights in a round (docs/privacy-watermark.md, "A cap on the mark's
length").

:func:`capped` wraps a gradient hook (the watermark's,
:func:`fl_agent.privacy.watermark.embed_hook`) so that the sum of the hook's moves in one
local training stays within ``length_cap`` times the length of everything else the weights
moved since step 0: after each step's hook, the gradient it added is read off (the grads
after minus before), its move is ``-lr`` times that (exact for plain SGD, the task's
optimizer), and the part that would not fit is taken back. The update is then at most
``1 + length_cap`` times as long as its part other than the mark.

Why one would: a participant whose bits the global model never holds at the margin pushes
them the full reach every round, and once the others' updates shrink, FairFL's norm screen
refuses its update as more than three times the round's median (`benchmarks.watermark_trace`,
tuning seed 1: a client with 1.5 % of the data refused in 30 of the 31 rounds from 30 to 60).
Why it was not adopted: on the tuning seeds caps of 1 and 2 ended those refusals but kept
marks out of the model (R55), and with the registry's bans a cap of 2 banned 1 honest member
against 4 but verified 97 keys against 98 (R55b). A task never uses it; the benchmarks do
(`privacy_watermark --length-caps`, `held_out --length-cap`, `watermark_trace --length-cap`).
The runs of both rules were made with the cap computed inside `embed_hook` (commits 0cab71c
and d5e737c), moved here afterwards so that the product keeps no untaken option: equal in
exact arithmetic, but the float32 rounding differs, so a capped rerun here may not
reproduce the published figures bit for bit (check out d5e737c for that).

Written here by hand: the bookkeeping and the largest step that fits, which no library does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from fl_agent.errors import ConfigError
from fl_agent.learning.training import GradientHook


def capped(hook: GradientHook, lr: float, length_cap: float) -> GradientHook:
    """``hook`` with its moves in each local training held within ``length_cap`` times the
    rest's (see the module docstring). The same wrapped hook may serve round after round:
    each training starts its count at step 0."""
    for name, value in (("lr", lr), ("length_cap", length_cap)):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 < value < math.inf:
            raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    start: list[torch.Tensor] = []
    moved: list[torch.Tensor] = []

    def wrapped(step: int, parameters: Sequence[nn.Parameter]) -> None:
        with torch.no_grad():
            if step == 0:
                start[:] = [p.detach().clone() for p in parameters]
                moved[:] = [torch.zeros_like(p) for p in parameters]
            before = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                      for p in parameters]
        hook(step, parameters)
        with torch.no_grad():
            added = [torch.zeros_like(p) if p.grad is None else p.grad.detach() - b
                     for p, b in zip(parameters, before, strict=True)]
            moves = [-lr * a for a in added]
            others = math.sqrt(sum(float(torch.sum((p.detach() - s - m) ** 2))
                                   for p, s, m in zip(parameters, start, moved, strict=True)))
            a = room(length_cap * others, moved, moves)
            for p, add, m, move in zip(parameters, added, moved, moves, strict=True):
                if a < 1.0 and p.grad is not None:
                    p.grad.sub_(add, alpha=1.0 - a)
                m.add_(move, alpha=a)

    return wrapped


def room(limit: float, moved: Sequence[torch.Tensor], step: Sequence[torch.Tensor]) -> float:
    """The largest ``a`` in [0, 1] with ``|moved + a * step| <= limit``, or 0 if ``moved`` is
    already at or past it (then 0 even where a step pointing back would fit)."""
    a2 = sum(float(torch.sum(s * s)) for s in step)
    b = sum(float(torch.sum(m * s)) for m, s in zip(moved, step, strict=True))
    c = sum(float(torch.sum(m * m)) for m in moved) - limit ** 2
    if a2 == 0.0 or c + 2 * b + a2 <= 0.0:  # the whole step fits
        return 1.0
    if c >= 0.0:  # already at (or past) the cap: the others' moves shrank
        return 0.0
    return max(0.0, min(1.0, (-b + math.sqrt(b * b - a2 * c)) / a2))


def marking(spec: object, key: object, strength: float, margin: float, reach: float | None,
            lr: float | None, length_cap: float | None = None) -> GradientHook:
    """The watermark's hook as a participant runs it (:func:`embed_hook`), wrapped by
    :func:`capped` when a ``length_cap`` is given (which needs the ``lr`` of a reach)."""
    from fl_agent.privacy.watermark import embed_hook

    hook = embed_hook(spec, key, strength, margin, reach, lr=lr)  # type: ignore[arg-type]
    if length_cap is None:
        return hook
    if lr is None:
        raise ConfigError("a length cap needs the optimizer's lr, which only a reach passes")
    return capped(hook, lr, length_cap)
