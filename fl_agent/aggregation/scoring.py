"""Contribution scoring: each accepted participant's marginal value to the aggregate.

The value of a set ``S`` of accepted updates is ``v(S) = evaluate(combine(S))``: the task's
validation metric of the model the strategy's own combination rule (``Strategy.combine``)
builds from ``S`` alone; ``v(empty) = evaluate(global model)`` (:func:`subset_value`, which
caches every value it computes).

* **Leave-one-out** (:func:`leave_one_out`): ``score_i = max(0, v(A) - v(A - {i}))`` over the
  accepted set ``A``; ``|A| + 1`` evaluations. It credits what *only* ``i`` brings, so
  participants with interchangeable data can all score 0. With a (clipped) weighted-mean
  combine (below), each ``A - {i}`` is the running sum of ``A`` less ``i``'s update
  (:meth:`_Cached.all_but_one`): at 140 accepted updates of 994,570 parameters, combining
  each of them afresh took 0.49 s an evaluation (``benchmarks/round_scale.py --scoring loo``).
* **Shapley** (:func:`shapley_values`): the average marginal value of ``i`` over orders of
  arrival. Exact over every permutation when ``|A|! <= num_permutations``; else exact over
  every subset (the formula ``phi_i = sum_S |S|! (|A|-|S|-1)! / |A|! (v(S+i) - v(S))``,
  ``2^|A|`` evaluations) when ``2^|A| <= num_permutations * |A|``, the most prefixes the
  sampler could evaluate (with the aggregator's 40 permutations: up to 8 players). Its cache
  makes the sampler evaluate fewer in practice (about 147 distinct sets at 8 players and 40
  permutations, against 256), so exactness costs up to about 1.7 times the sampler's
  evaluations; truncation does not apply to the exact values. Else Monte-Carlo over
  ``num_permutations`` seeded random permutations, optionally truncated as in Ghorbani &
  Zou (2019, "Data Shapley"): once a prefix is within ``truncation`` of ``v(A)`` the
  remaining marginals count as 0 and are not evaluated. Without truncation the values of
  every permutation sum to ``v(A) - v(empty)`` (efficiency), so their average does too.
  ``benchmarks/fidelity.py`` measures how the sampled values rank players against exact
  ones (``docs/sweep.md`` §3). When the strategy's combine is a (clipped) weighted mean of
  the deltas (:meth:`Strategy.mean_clip_ratio`: FairFL, FedAvg, Krum, Multi-Krum), each
  permutation's growing coalitions are built from a running sum (:class:`_Running`): one
  pass over the newcomer's update per prefix instead of one per member, so a prefix of
  ``k`` updates costs ``O(d)``, not ``O(k d)``: in a round of 140 accepted updates of 994,570
  parameters, 12-14 ms an evaluation (half of it the model's forward pass) against 0.07-0.09 s
  to 0.7-2.3 s afresh for 14 to 140 members, about 2 s against 1 to 3 minutes a permutation
  (by the trapezoid rule over those sizes; ``benchmarks/round_scale.py``, ``docs/sweep.md``
  §5). The values equal combining each coalition afresh up to rounding
  (``tests/aggregation/test_scoring.py``).

:func:`to_reward_shares` turns scores into the integer parts per million of the round's
budget that ``TaskLedger.finalizeRound`` takes (a ``uint32`` per contributor, sum
``<= 1_000_000``; basis points were too coarse: with 300 equal contributors a third of them
got 34 and the rest 33, a 3 % edge to whoever won the ties):

* rejected updates (which includes flagged free riders) get 0, whatever their score;
* negative scores count as 0 (a participant who made the model worse earns nothing);
* if some accepted update has a positive score, the shares are proportional to the scores
  and sum to exactly ``total`` (largest-remainder rounding on exact fractions; among equal
  remainders the extra units go round-robin from ``tie_break``, which the aggregator sets to
  the round number, so no contributor wins every tie);
* if updates were accepted but every score is 0 -- typical of leave-one-out when several
  participants are interchangeable, or of a round that did not move the validation metric --
  the accepted updates split ``total`` equally: they passed the robust filter and were
  aggregated, and a share of 0 would also count against their on-chain reputation;
* if nothing was accepted, every share is 0.

:func:`blend_with_samples` mixes the scores with the accepted updates' sample counts before
:func:`to_reward_shares`: with ``base_share = b``, a fraction ``b`` of the round's budget is
shared by data size among the accepted updates and ``1 - b`` by contribution score. Marginal
values of a converged model are small and noisy from round to round; the base share keeps
an accepted honest participant's pay and on-chain reputation (which the ledger derives from
the share) from swinging to zero on noise, while the score part still rewards the updates
that helped most.

Hand-written here, because neither numpy nor scipy nor scikit-learn provides them: the
leave-one-out, subset and permutation-sampling loops (a few lines each) and the largest-remainder
rounding (with ``fractions.Fraction`` so the sum is exact).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from fl_agent.aggregation.base import (
    Evaluate,
    FloatArray,
    Round,
    Strategy,
    UpdatesLike,
    prepare_round,
)
from fl_agent.errors import ConfigError

ValueFunction = Callable[[Iterable[int]], float]
Combine = Callable[[FloatArray, FloatArray, FloatArray], FloatArray]

MAX_TOTAL = 1_000_000  # TaskLedger's cap on the sum of a round's scores (parts per million)


class _Running:
    """A coalition grown one update at a time, for a combine that is the weighted mean of the
    deltas each clipped to ``ratio`` times the coalition's median delta norm
    (:meth:`Strategy.mean_clip_ratio`): the weighted sum of the unclipped deltas is kept, so
    adding an update costs one pass over it, and building the coalition's model costs one
    more pass per update the clipping shortens, instead of one pass per member. The result
    equals the strategy's ``combine`` up to rounding (the deltas are summed in the order they
    join, not in index order)."""

    def __init__(self, rnd: Round, ratio: float, to_value: Callable[[FloatArray], float],
                 check: Callable[[list[int]], list[int]]) -> None:
        self._rnd, self._ratio, self._to_value, self._check = rnd, ratio, to_value, check
        self._total = np.zeros(rnd.global_params.size)
        self._scratch = np.empty(rnd.global_params.size)
        self._weight = 0.0
        self._members: list[int] = []
        self._norms: list[float] = []

    def _delta(self, i: int) -> FloatArray:
        np.copyto(self._scratch, self._rnd.raw[i])  # widened, then subtracted in place:
        self._scratch -= self._rnd.global_params  # half the time of a mixed-type subtract
        return self._scratch

    def add(self, i: int) -> None:
        self._check([i])
        delta = self._delta(i)
        self._norms.append(float(np.linalg.norm(delta)))
        weight = float(self._rnd.num_samples[i])
        self._total += np.multiply(delta, weight, out=delta)
        self._weight += weight
        self._members.append(i)

    def value(self) -> float:
        return self.value_without(())

    def value_without(self, removed: Sequence[int]) -> float:
        """The value of the coalition less the updates ``removed`` (members of it), from
        the running sum less theirs: one pass over each removed update, and the clipping
        recomputed on the median of the members left; the coalition itself is unchanged.
        The subtraction loses precision when a removed update dwarfs the rest (a relative
        error of about 1e-8 at a 1e8 length ratio, against combining afresh); a round's
        norm screen and capped claims keep the aggregator's rounds far from that."""
        gone = {self._members.index(int(i)) for i in removed}
        left = [k for k in range(len(self._members)) if k not in gone]
        if not left:
            return self._to_value(self._rnd.global_params)
        mean = self._total.copy()
        weight = self._weight
        for k in sorted(gone):
            i = self._members[k]
            w = float(self._rnd.num_samples[i])
            mean -= np.multiply(self._delta(i), w, out=self._scratch)
            weight -= w
        if math.isfinite(self._ratio):
            norms = np.asarray(self._norms)
            bound = self._ratio * float(np.median(norms[left]))
            for k in left:
                if norms[k] > bound:
                    i = self._members[k]
                    shrink = float(self._rnd.num_samples[i]) * (bound / norms[k] - 1.0)
                    mean += np.multiply(self._delta(i), shrink, out=self._scratch)
        mean /= weight
        mean += self._rnd.global_params
        return self._to_value(mean)


class _Cached:
    """Memoises a value function by the set of players. ``start`` (optional) makes an empty
    :class:`_Running` coalition, and ``members`` names the updates a player adds to it (a
    group's members; default: the player itself), so that :meth:`prefixes` can grow a
    permutation's coalitions from running sums."""

    def __init__(self, value: ValueFunction, start: Callable[[], _Running] | None = None,
                 members: Callable[[int], Sequence[int]] | None = None) -> None:
        self._value = value
        self.start = start
        self._members = members or (lambda p: (p,))
        self._cache: dict[frozenset[int], float] = {}

    def __call__(self, players: Iterable[int]) -> float:
        key = frozenset(int(p) for p in players)
        if key not in self._cache:
            self._cache[key] = float(self._value(sorted(key)))
        return self._cache[key]

    def prefixes(self, order: Sequence[int]) -> Iterator[float]:
        """``v(order[:1])``, ``v(order[:2])``, ..., computed as they are asked for (a caller
        that stops early pays for no more), each cached like a call's."""
        running = self.start() if self.start is not None else None
        prefix: list[int] = []
        for player in order:
            prefix.append(int(player))
            key = frozenset(prefix)
            if running is not None:
                for i in self._members(int(player)):
                    running.add(i)
            if key not in self._cache:
                self._cache[key] = float(running.value() if running is not None
                                         else self._value(sorted(key)))
            yield self._cache[key]

    def all_but_one(self, group: Sequence[int]) -> Iterator[tuple[int, float]]:
        """``(p, v(group - {p}))`` for each player ``p`` of ``group``, each cached like a
        call's. With running sums, every value is the full coalition's sum less ``p``'s
        updates (one pass over them each), not a coalition combined afresh, and the full
        coalition's value (if not cached yet) comes from the same sum, so that the
        differences compare like with like."""
        running = None
        if self.start is not None:
            running = self.start()
            for player in group:
                for i in self._members(int(player)):
                    running.add(i)
            whole = frozenset(int(p) for p in group)
            if whole not in self._cache:
                self._cache[whole] = float(running.value())
        for player in group:
            rest = [int(p) for p in group if p != player]
            key = frozenset(rest)
            if key not in self._cache:
                self._cache[key] = float(
                    running.value_without(self._members(int(player))) if running is not None
                    else self._value(sorted(key)))
            yield int(player), self._cache[key]

    @property
    def evaluations(self) -> int:
        return len(self._cache)


def subset_value(strategy: Strategy | Combine, global_params: ArrayLike, updates: UpdatesLike,
                 num_samples: ArrayLike, evaluate: Evaluate) -> ValueFunction:
    """``v(S) = evaluate(combine(global, updates[S], num_samples[S]))``, cached by ``S``.

    ``strategy`` is a strategy (its ``combine`` is used) or a combine function. ``S`` may only
    hold indices of valid updates (finite, trained on > 0 samples)."""
    combine: Combine = strategy.combine if isinstance(strategy, Strategy) else strategy
    ratio = strategy.mean_clip_ratio() if isinstance(strategy, Strategy) else None
    rnd = prepare_round(global_params, updates, num_samples)
    valid = set(rnd.valid.tolist())

    def checked(idx: list[int]) -> list[int]:
        bad = [i for i in idx if i not in valid]
        if bad:
            raise ConfigError(f"cannot value updates {bad}: out of range, non-finite or "
                              "trained on no samples")
        return idx

    def to_value(params: FloatArray) -> float:
        score = float(evaluate(np.asarray(params).astype(rnd.dtype)))
        if not math.isfinite(score):
            raise ConfigError(f"evaluate returned {score} for an aggregate of the updates")
        return score

    def value(players: Iterable[int]) -> float:
        idx = checked(sorted(int(p) for p in players))
        return to_value(combine(rnd.global_params, np.asarray(rnd.raw[idx], dtype=np.float64),
                                rnd.num_samples[idx]))

    start = None if ratio is None else lambda: _Running(rnd, ratio, to_value, checked)
    return _Cached(value, start)


def _players(players: Iterable[int]) -> list[int]:
    out = [int(p) for p in players]
    if len(set(out)) != len(out):
        raise ConfigError(f"players must be distinct, got {out}")
    return out


def leave_one_out(value: ValueFunction, players: Iterable[int]) -> dict[int, float]:
    """``max(0, v(players) - v(players - {i}))`` for each player."""
    group = _players(players)
    v = _cached(value)
    if not group:
        return {}
    rests = dict(v.all_but_one(group))
    full = v(group)
    return {i: max(0.0, full - rests[i]) for i in group}


def shapley_values(value: ValueFunction, players: Iterable[int], *, num_permutations: int = 200,
                   seed: int = 0, truncation: float = 0.0) -> dict[int, float]:
    """Shapley values, exact when affordable (``len(players)! <= num_permutations``, or
    ``2^len(players) <= num_permutations * len(players)``), else sampled; raw, so possibly
    negative. See the module docstring for when each applies and for the truncation rule."""
    group = _checked(players, num_permutations, truncation)
    n = len(group)
    if n and math.factorial(n) > num_permutations and 2 ** n <= num_permutations * n:
        return _exact_by_subsets(_cached(value), group)
    return _by_permutations(_cached(value), group, num_permutations, seed, truncation)


def permutation_shapley_values(value: ValueFunction, players: Iterable[int], *,
                               num_permutations: int = 200, seed: int = 0,
                               truncation: float = 0.0) -> dict[int, float]:
    """Shapley values over every permutation when ``len(players)! <= num_permutations``, else
    over ``num_permutations`` seeded random ones (never over subsets: the sampler alone, which
    :func:`shapley_values` uses when the subsets cost more)."""
    return _by_permutations(_cached(value), _checked(players, num_permutations, truncation),
                            num_permutations, seed, truncation)


def _cached(value: ValueFunction) -> _Cached:
    return value if isinstance(value, _Cached) else _Cached(value)


def _by_permutations(v: _Cached, group: list[int], num_permutations: int, seed: int,
                     truncation: float) -> dict[int, float]:
    if not group:
        return {}
    if math.factorial(len(group)) <= num_permutations:
        orders: Iterable[Sequence[int]] = itertools.permutations(group)
        count = math.factorial(len(group))
    else:
        rng = np.random.default_rng(seed)
        orders = ([group[k] for k in rng.permutation(len(group))]
                  for _ in range(num_permutations))
        count = num_permutations
    empty, full = v([]), v(group)
    totals = dict.fromkeys(group, 0.0)
    for order in orders:
        previous = empty
        values = v.prefixes(order)
        for player in order:
            if truncation > 0 and abs(full - previous) <= truncation:
                break  # truncated: this and later marginals count as 0
            current = next(values)
            totals[player] += current - previous
            previous = current
    return {p: totals[p] / count for p in group}


def _checked(players: Iterable[int], num_permutations: int, truncation: float) -> list[int]:
    group = _players(players)
    if not isinstance(num_permutations, int) or num_permutations < 1:
        raise ConfigError(f"num_permutations must be a positive integer, got "
                          f"{num_permutations!r}")
    if not (math.isfinite(truncation) and truncation >= 0):
        raise ConfigError(f"truncation must be >= 0, got {truncation!r}")
    return group


def _exact_by_subsets(value: ValueFunction, group: list[int]) -> dict[int, float]:
    """The Shapley formula over every subset of ``group``: ``2^n`` evaluations, each
    subset's value used once per player outside it, weighted ``|S|! (n-|S|-1)! / n!``."""
    n = len(group)
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
              for k in range(n)]
    values = [value([group[j] for j in range(n) if mask >> j & 1]) for mask in range(1 << n)]
    totals = dict.fromkeys(group, 0.0)
    for mask in range(1 << n):
        size = mask.bit_count()
        for j in range(n):
            if not mask >> j & 1:
                totals[group[j]] += weight[size] * (values[mask | 1 << j] - values[mask])
    return totals


def contribution_scores(strategy: Strategy | Combine, global_params: ArrayLike,
                        updates: UpdatesLike, num_samples: ArrayLike, accepted: Iterable[int],
                        evaluate: Evaluate, *, method: Literal["loo", "shapley"] = "shapley",
                        num_permutations: int = 200, seed: int = 0,
                        truncation: float = 0.0,
                        groups: Sequence[int] | None = None) -> FloatArray:
    """Non-negative contribution score of every update of the round (0 for the ones not in
    ``accepted``), by leave-one-out or Shapley value, clipped at 0.

    ``groups`` (one label per update) makes the accepted updates that share a label one
    player: the game is played between groups, and a group's value is split equally among
    its accepted members. Without it every update is its own player."""
    value = subset_value(strategy, global_params, updates, num_samples, evaluate)
    n = len(updates)
    chosen = _players(accepted)
    labels = list(range(n)) if groups is None else [int(g) for g in groups]
    if len(labels) != n:
        raise ConfigError(f"need one group label per update, got {len(labels)} for {n}")
    members: dict[int, list[int]] = {}
    for i in chosen:
        members.setdefault(labels[i], []).append(i)
    by_group = _Cached(lambda gs: value([i for g in gs for i in members[g]]), value.start,
                       members=lambda g: members[g])
    if method == "loo":
        values = leave_one_out(by_group, list(members))
    elif method == "shapley":
        values = shapley_values(by_group, list(members), num_permutations=num_permutations,
                                seed=seed, truncation=truncation)
    else:
        raise ConfigError(f"method must be 'loo' or 'shapley', got {method!r}")
    scores = np.zeros(n)
    for g, s in values.items():
        for i in members[g]:
            scores[i] = max(0.0, s) / len(members[g])
    return scores


def blend_with_samples(scores: Sequence[float] | FloatArray, num_samples: ArrayLike,
                       accepted: Iterable[int], base_share: float) -> FloatArray:
    """``base_share * samples_i / sum(samples) + (1 - base_share) * score_i / sum(scores)``
    over the accepted updates (0 elsewhere); with no positive score, all by samples."""
    if not (isinstance(base_share, int | float) and 0.0 <= base_share <= 1.0):
        raise ConfigError(f"base_share must be in [0, 1], got {base_share!r}")
    values = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    samples = np.asarray(num_samples, dtype=np.float64)
    if values.shape != samples.shape or values.ndim != 1:
        raise ConfigError(f"need one score and one sample count per update, got "
                          f"{values.shape} and {samples.shape}")
    chosen = _players(accepted)
    out = np.zeros(values.size)
    if not chosen:
        return out
    mask = np.zeros(values.size, dtype=bool)
    mask[chosen] = True
    size = samples * mask
    merit = values * mask
    size_part = size / size.sum() if size.sum() > 0 else mask / mask.sum()
    if merit.sum() <= 0:
        return size_part
    return base_share * size_part + (1.0 - base_share) * merit / merit.sum()


def to_reward_shares(scores: Sequence[float] | FloatArray, accepted: Iterable[int],
                     total: int = MAX_TOTAL, *, tie_break: int = 0) -> list[int]:
    """Integer shares in parts per million, one per update, for ``TaskLedger.finalizeRound``
    (rules in the module docstring). The sum is ``total`` when anything was accepted, else
    0."""
    if isinstance(total, bool) or not isinstance(total, int) or not 0 < total <= MAX_TOTAL:
        raise ConfigError(f"total must be an integer in 1..{MAX_TOTAL} (the ledger caps a "
                          f"round's shares at {MAX_TOTAL} parts per million), got {total!r}")
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigError(f"scores must be one number per update, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ConfigError("scores hold NaN or Inf")
    n = values.size
    chosen = _players(accepted)
    out_of_range = [i for i in chosen if not 0 <= i < n]
    if out_of_range:
        raise ConfigError(f"accepted indices {out_of_range} are outside 0..{n - 1}")
    shares = [0] * n
    if not chosen:
        return shares
    weights = {i: Fraction(float(max(values[i], 0.0))) for i in chosen}
    if sum(weights.values()) == 0:
        weights = dict.fromkeys(chosen, Fraction(1))
    weight_sum = sum(weights.values())
    quotas = {i: w * total / weight_sum for i, w in weights.items()}
    for i, q in quotas.items():
        shares[i] = math.floor(q)
    left = total - sum(shares)
    by_remainder = sorted(quotas, key=lambda i: (-(quotas[i] - math.floor(quotas[i])),
                                                 (i - tie_break) % n))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares
