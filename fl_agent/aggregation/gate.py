"""FairFL's validation gate (step 5 of :mod:`fl_agent.aggregation.fairfl`): models compared
example by example, with the slack in standard errors of the paired difference.

Split from :mod:`fl_agent.aggregation.fairfl`, whose module docstring explains the method;
this module holds the gate's pure functions. Hand-written (plain numpy): no library walks a
merge order with a paired test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fl_agent.aggregation.base import FloatArray, add_weighted_rows, cosine_to, scaled_row

#: Antithetic pairs of the noise control per test under FairFL's sequential test: enough
#: to estimate one draw's own luck (:func:`noise_margin`); the one value run.
SEQUENTIAL_DRAWS = 8
#: A z-score's magnitude is capped here (a model with a non-finite score, or a test without
#: spread): far beyond any threshold, and finite in the round's evidence.
Z_CAP = 1e6

#: A strict update's share of the round's gain below this many slacks is within the gate's
#: noise (:func:`strict_requirements`).
STRICT_RESOLUTION = 2.0

Unit = tuple[tuple[int, ...], int]
"""A merge unit: its members (candidate positions) and its DBSCAN label (-1: a unit of one)."""


def gate_tolerances(reference_sim: FloatArray, median_sim: float, tolerance: float,
                    full_tolerance_at: float, min_tolerance: float = 0.0) -> FloatArray:
    """The gate's tolerance for each update: ``tolerance`` for an update whose similarity
    ``s_i`` to the global direction reaches ``full_tolerance_at * median_sim``, scaled down
    linearly below that to ``min_tolerance`` (0 by default) at ``s_i <= 0`` (an update that
    does not point the way the round moves must not cost anything, or not more than
    ``min_tolerance`` standard errors). ``full_tolerance_at=0``, or a round whose median
    similarity is not positive, gives everyone the full tolerance."""
    sims = np.asarray(reference_sim, dtype=float)
    if full_tolerance_at <= 0 or median_sim <= 0:
        return np.full(sims.shape, float(tolerance))
    scaled = tolerance * np.clip(sims / (full_tolerance_at * median_sim), 0.0, 1.0)
    return np.maximum(scaled, min(float(min_tolerance), float(tolerance)))


def strict_noise(labels: NDArray[np.intp], reference_sim: FloatArray, median_sim: float,
                 strict_noise_at: float) -> NDArray[np.bool_]:
    """The updates the gate treats strictly: DBSCAN noise (label ``-1``, no neighbours) whose
    similarity ``s_i`` to the global direction is below ``strict_noise_at * median_sim``.
    Such an update must *raise* ``evaluate`` to join, not merely keep it (module docstring,
    step 5).
    ``strict_noise_at=0``, or a round whose median similarity is not positive, selects none."""
    sims = np.asarray(reference_sim, dtype=float)
    if strict_noise_at <= 0 or median_sim <= 0:
        return np.zeros(sims.shape, dtype=bool)
    return (np.asarray(labels) == -1) & (sims < strict_noise_at * median_sim)


@dataclass(frozen=True)
class GateStep:
    """The validation gate's decision on one unit (positions as given to the gate)."""

    members: tuple[int, ...]
    cluster: int
    kept: tuple[int, ...]  # the members that joined
    value: float  # best value of the running aggregate after the step


Values = NDArray[np.float64]
"""A model's per-example validation scores (higher is better; the score is their mean)."""


def paired_margin(candidate: Values, reference: Values, slack: float) -> float:
    """How far ``candidate`` is above ``reference`` on the validation examples, allowing
    ``slack`` standard errors of noise: ``mean(d) + slack * se(d)`` with ``d`` the paired
    per-example differences (``-inf`` if a candidate's value is not finite, ``+inf`` if
    only the reference's is). Unit-free: it scales with
    the score, so ``margin >= required`` gives the same verdict for any positive multiple
    (and any shift) of the per-example scores, with ``required`` in the same units."""
    if not np.isfinite(candidate).all():
        return -math.inf
    if not np.isfinite(reference).all():
        return math.inf
    d = candidate - reference
    return float(d.mean()) + slack * standard_error(d)


def standard_error(d: Values) -> float:
    """The standard error of the mean of ``d`` (sample standard deviation over ``sqrt(n)``)."""
    return float(np.std(d, ddof=1)) / math.sqrt(d.size) if d.size > 1 else 0.0


def validation_gate(order: list[Unit], deltas: FloatArray, weights: FloatArray,
                    score: Callable[[FloatArray], Values], global_params: FloatArray,
                    baseline: Values, slack: float | FloatArray,
                    required: float | FloatArray = 0.0, *,
                    control: FloatArray | None = None, seed: int = 0,
                    rows: NDArray[np.intp] | None = None, factors: FloatArray | None = None,
                    draws: int = 1) -> tuple[list[int], list[GateStep], list[int], list[int]]:
    """Step 5 over the units in merge order (positions into ``deltas`` and ``weights``).

    ``score`` gives a model's per-example validation scores. A state "holds" against a
    reference state if :func:`paired_margin` with the member's ``slack`` (standard errors,
    one number or one per position) reaches its ``required`` gain (score units, 0 by
    default; a unit uses its members' smallest slack and largest requirement).

    Bottom-up: units join a running sum ``sum(w_i * delta_i)``; a state is valued as
    ``score(global + running / W)`` with ``W`` the weight of *all* merged units, so each unit
    is judged by the contribution it would make to the full aggregate (a subset valued on its
    own would be judged for the classes it lacks, which in a non-IID federation says nothing
    about its quality). A unit joins if the new state holds against the best state so far
    (the current global model's at first); a cluster that fails is retried member by member,
    most similar to the sum first. Then the final check: at the scale of the accepted
    aggregate, every member is dropped whose aggregate does not hold against the same
    aggregate without it. Last the rescue, the same test the other way round: a member the
    walk turned away (not one the final check dropped) rejoins, most similar to the
    aggregate first, if the aggregate with it holds against the aggregate without it. The
    walk judges a unit against a partial sum; early in the order that is a step towards a
    few clients' classes, which can cost the validation loss even when the same update
    helps the full aggregate.
    Returns ``(kept, steps, dropped, rescued)``.

    ``control`` (one number per position, 0 for none) is the standard deviation per
    coordinate of the isotropic noise an update may carry (DP-SGD's): each test then compares
    the state with the member against its reference state moved by the member's share of a
    fresh draw ``z`` of that noise (the same weight and scale as the member's own delta),
    valued as the mean of the scores at ``+z`` and ``-z``. The reference is then always the
    candidate with the member's delta replaced by that noise, at the candidate's scale: in
    the walk the running sum, not the best state so far (the running sum carries the noise
    of every update kept before; judged against the best state, each noisy update would
    pay for its predecessors' noise); in the rescue the aggregate diluted as the candidate
    is (at the aggregate's own scale its noise would count twice). That control
    asks whether the update beats noise of its size, not whether it beats nothing; the
    antithetic pair cancels the draw's first-order effect on the score, which would
    otherwise add its own luck to every verdict, and keeps its second-order cost, what
    noise of that size costs any model (:func:`noise_control`). The draws come from
    ``numpy.random.default_rng(seed)`` in the walk's order, so a rerun gives the same
    verdicts.

    ``rows`` and ``factors`` (one per position, default: position ``p`` is row ``p``
    unscaled) let the gate read position ``p``'s delta as ``deltas[rows[p]] * factors[p]``
    without a copy of the deltas: FairFL passes every usable delta and the clip factors of
    the merged ones (a copy of the clipped deltas was 1.1-1.6 GB at 200 x 1M). Everything
    else (``weights``, ``slack``, ...) is per position.

    Cost: the walk keeps the running sum, so each candidate costs one pass over the unit's
    own deltas, and the final check subtracts one member from the aggregate; the whole gate
    is ``O((n + calls) * d)`` for ``n`` updates of ``d`` parameters (re-summing the kept
    updates for every candidate made it ``O(n^2 * d)``: 53 of 94 s at 200 clients x 1M
    parameters, ``benchmarks.scale``). Sums are added in the order of the merged list, as
    numpy's sum over the list's rows adds them (for two or more parameters; numpy sums a
    single column pairwise); only the final check's "without" differs from that by
    rounding, and with ``factors`` each term is ``delta * (weight * factor)``, equal to the
    clipped copy's ``(delta * factor) * weight`` up to rounding. Under the noise control
    each test of a noisy member costs two more score calls and a draw of ``d`` normals."""
    n = len(weights)
    index = np.arange(n) if rows is None else np.asarray(rows, dtype=np.intp)
    scale = np.ones(n) if factors is None else np.asarray(factors, dtype=float)
    if index.shape != (n,) or scale.shape != (n,):
        raise ValueError(f"{index.shape} rows and {scale.shape} factors for {n} weights")
    if np.unique(index).size != n:
        raise ValueError("each position must read its own row of deltas")
    coefficients = weights if factors is None else weights * scale
    by_row = coefficients if rows is None else np.zeros(deltas.shape[0])
    if rows is not None:
        by_row[index] = coefficients  # add_weighted_rows reads coefficients by row
    slacks = np.broadcast_to(np.asarray(slack, dtype=float), (n,))
    needs = np.broadcast_to(np.asarray(required, dtype=float), (n,))
    stds = np.zeros(n) if control is None else np.broadcast_to(
        np.asarray(control, dtype=float), (n,))
    rng = np.random.default_rng(seed)

    def weighted(member: int) -> FloatArray:
        return scaled_row(deltas, int(index[member]), coefficients[member])

    def extended(base: FloatArray | None, members: list[int]) -> FloatArray:
        return add_weighted_rows(base, deltas, by_row, [int(index[m]) for m in members])

    def state(running: FloatArray | None, scale: float) -> Values:
        return baseline if running is None else score(global_params + running / scale)

    def holds(candidate: Values, members: list[int], base: FloatArray | None, scale: float,
              reference: Values | None = None, candidate_scale: float | None = None) -> bool:
        """``candidate`` against ``reference`` (default: the state of running sum ``base``
        at ``scale``, None being the current model); if the members carry noise, against
        the state of ``base`` at ``scale`` moved by their noise control at the candidate's
        scale instead."""
        noisy = [m for m in members if stds[m] > 0]
        if noisy:
            point = global_params if base is None else global_params + base / scale
            mean, spread = noise_margin(candidate, point, [stds[m] * weights[m] for m in noisy],
                                        candidate_scale or scale, score, rng, draws)
            margin = mean + float(slacks[members].min()) * spread if math.isfinite(mean) \
                else mean
            return margin >= float(needs[members].max())
        if reference is None:
            reference = state(base, scale)
        return paired_margin(candidate, reference, float(slacks[members].min())) \
            >= float(needs[members].max())

    total = float(weights.sum())
    kept: list[int] = []
    running: FloatArray | None = None  # the sum of the kept rows, in the order of kept
    best = baseline
    steps: list[GateStep] = []

    def better(candidate: Values) -> Values:
        return candidate if paired_margin(candidate, best, 0.0) > 0 else best

    for members, label in order:
        joined = extended(running, list(members))
        candidate = state(joined, total)
        if holds(candidate, list(members), running, total, best):
            kept += members
            running = joined
            best = better(candidate)
            steps.append(GateStep(members, label, members, float(best.mean())))
            continue
        back: list[int] = []
        if len(members) > 1:
            sims = cosine_to(deltas, np.zeros(deltas.shape[1]) if running is None else running,
                             which=index[list(members)])
            for pos in np.argsort(-sims, kind="stable"):
                member = members[int(pos)]
                joined = extended(running, [member])
                candidate = state(joined, total)
                if holds(candidate, [member], running, total, best):
                    kept.append(member)
                    back.append(member)
                    running = joined
                    best = better(candidate)
        steps.append(GateStep(members, label, tuple(back), float(best.mean())))

    dropped: list[int] = []
    if running is not None:
        scale = float(weights[kept].sum())
        final = state(running, scale)
        for m in kept:
            without = running - weighted(m) if len(kept) > 1 else None
            if not holds(final, [m], without, scale):
                dropped.append(m)
    kept = [m for m in kept if m not in dropped]

    rescued: list[int] = []
    turned_away = [m for members, _ in order for m in members
                   if m not in kept and m not in dropped]
    if kept and turned_away:
        aggregate = extended(None, kept)
        sims = cosine_to(deltas, aggregate, which=index[turned_away])  # rows not copied
        current = state(aggregate, float(weights[kept].sum()))
        for pos in np.argsort(-sims, kind="stable"):
            member = turned_away[int(pos)]
            joined = kept + [member]
            grown = extended(aggregate, [member])
            candidate = state(grown, float(weights[joined].sum()))
            scale = float(weights[joined].sum())  # the control: the member's delta as noise
            if holds(candidate, [member], aggregate, scale, current, scale):
                kept.append(member)
                rescued.append(member)
                aggregate = grown
                current = candidate
    return kept, steps, dropped, rescued


def held_back_margins(turned: list[int], kept: list[int], deltas: FloatArray,
                      rows: NDArray[np.intp], factors: FloatArray, weights: FloatArray,
                      score: Callable[[FloatArray], Values], global_params: FloatArray,
                      baseline: Values, tolerance: float) -> FloatArray:
    """For each update the gate turned away (``turned``, positions into ``rows``, the merged
    rows of ``deltas``, with their clip ``factors`` and sample ``weights``), its
    :func:`paired_margin` at the **full** ``tolerance``: the accepted aggregate (``kept``;
    none: the current model, whose scores are ``baseline``) with the update added, against
    the same aggregate without it, at the scale each is averaged at. The update counts with
    the weight ``max(w_i, median of the kept updates' weights)`` (of all, if none was
    kept): its weight is its sender's claim, and a small claim must not make its harm look
    small, nor can the claims of updates turned away lower the median (rule R50a). A
    margin ``>= 0`` means the update's harm is within the tolerance the gate gives an
    update that points the round's way (FairFL's ``held_back``, step 5c). One score call
    per update."""
    floor = float(np.median(weights[kept] if kept else weights))
    by_row = np.zeros(len(deltas))
    by_row[rows] = np.maximum(weights, floor) * factors
    by_row[rows[kept]] = weights[kept] * factors[kept]  # the aggregate's own weights
    total = add_weighted_rows(None, deltas, by_row, [int(rows[p]) for p in kept]) \
        if kept else None
    scale = float(weights[kept].sum()) if kept else 0.0
    current = baseline if total is None else score(global_params + total / scale)
    margins = np.zeros(len(turned))
    for k, p in enumerate(turned):
        grown = add_weighted_rows(total, deltas, by_row, [int(rows[p])])
        candidate = score(global_params + grown / (scale + max(float(weights[p]), floor)))
        margins[k] = paired_margin(candidate, current, tolerance)
    return margins


def strict_requirements(strict: NDArray[np.bool_], deltas: FloatArray, rows: NDArray[np.intp],
                        factors: FloatArray, weights: FloatArray,
                        score: Callable[[FloatArray], Values], global_params: FloatArray,
                        baseline: Values, slack: FloatArray, tolerance: float,
                        strict_gain: float) -> tuple[FloatArray, FloatArray]:
    """The slack and required gain of each merged update (positions into ``rows``, the
    merged rows of ``deltas``, with their clip ``factors`` and sample ``weights``) once the
    :func:`strict_noise` units are held to a gain: each ``strict`` update whose share
    ``w_i / W`` of the round's gain (the mean of all merged updates against the current
    model, :func:`paired_margin` without slack) stands out of the noise of its own
    contribution by :data:`STRICT_RESOLUTION` times the gate's ``tolerance`` gets no slack
    and must raise the score by ``strict_gain`` times that share; the noise is the standard
    error of the paired difference between the merged aggregate with and without the
    update. Early in training that holds; late, a benign update's share is within the
    gate's noise and it keeps its slack. A round whose merged aggregate does not gain, no
    ``strict`` update or ``strict_gain <= 0`` changes nothing (and scores nothing). Returns
    new arrays (``slack`` is not changed)."""
    slack = np.array(slack, dtype=float)
    required = np.zeros(slack.size)
    if not strict.any() or strict_gain <= 0:
        return slack, required
    by_row = np.zeros(len(deltas))  # each merged row's weight times its clip factor
    by_row[rows] = weights * factors
    total = add_weighted_rows(None, deltas, by_row, rows.tolist())
    merged = score(global_params + total / weights.sum())
    gain = paired_margin(merged, baseline, 0.0)
    if not (math.isfinite(gain) and gain > 0):
        return slack, required
    share = gain * weights / weights.sum()  # each update's share of the gain
    for p in np.flatnonzero(strict):
        # the others' sum is the total less this update (one pass, not k: equal to summing
        # the others up to the last bits of rounding)
        rest = np.delete(np.arange(slack.size), p)
        without = score(global_params + (total - deltas[rows[p]] * by_row[rows[p]])
                        / weights[rest].sum())
        noise = standard_error(merged - without) if np.isfinite(without).all() else math.inf
        if share[p] >= STRICT_RESOLUTION * tolerance * noise:
            slack[p] = 0.0
            required[p] = strict_gain * share[p]
    return slack, required


def noise_margin(candidate: Values, point: FloatArray, scales: list[float], divisor: float,
                 score: Callable[[FloatArray], Values], rng: np.random.Generator,
                 draws: int = 1) -> tuple[float, float]:
    """``candidate`` against ``point`` moved by ``draws`` antithetic pairs of the noise
    control (:func:`noise_control` of ``scales``, over ``divisor``): the mean paired
    difference and its spread. The reference is the mean of the ``2 * draws`` scores. With
    one pair the spread is the standard error over the examples (the gate's test); with
    more it also counts one draw's own luck, estimated from the pairs: the first-order term
    (the mean square of the pairs' half-differences) and the second-order one (the variance
    of the pairs' means, times ``1 + 1/draws``). ``(-inf, 0)`` if the candidate's value is
    not finite, ``(inf, 0)`` if only the reference's is."""
    plus, minus = [], []
    for _ in range(draws):
        noise = noise_control(rng, scales, point.size)
        noise /= divisor
        plus.append(score(point + noise))
        minus.append(score(point - noise))
    a, b = np.array(plus), np.array(minus)
    pairs = (a + b) / 2  # antithetic: the draw's first-order effect cancels
    reference = pairs.mean(axis=0)
    if not np.isfinite(candidate).all():  # after the draws: the stream does not depend on it
        return -math.inf, 0.0
    if not np.isfinite(reference).all():
        return math.inf, 0.0
    d = candidate - reference
    variance = standard_error(d) ** 2
    if draws > 1:
        first = float(np.mean(((a - b).mean(axis=1) / 2) ** 2))
        second = float(np.var(pairs.mean(axis=1), ddof=1))
        variance += first + second * (1 + 1 / draws)
    return float(d.mean()), math.sqrt(variance)


def noise_evidence(kept: list[int], deltas: FloatArray, weights: FloatArray,
                   score: Callable[[FloatArray], Values], global_params: FloatArray,
                   control: FloatArray, rng: np.random.Generator, draws: int,
                   rows: NDArray[np.intp], factors: FloatArray) -> FloatArray:
    """For each position with noise (``control > 0``), how the aggregate of ``kept`` with
    its delta compares with the same aggregate with its delta replaced by noise of its size,
    in spreads of :func:`noise_margin` (NaN for a position without noise). A kept position
    is judged against the aggregate of the others; each at the scale of the others plus
    itself."""
    coefficients = weights * factors
    by_row = np.zeros(deltas.shape[0])
    by_row[rows] = coefficients
    total = add_weighted_rows(None, deltas, by_row, [int(rows[m]) for m in kept]) if kept \
        else np.zeros(deltas.shape[1])
    members = set(kept)
    kept_weight = float(weights[kept].sum()) if kept else 0.0
    z = np.full(len(weights), np.nan)
    for p in range(len(weights)):
        if control[p] <= 0:
            continue
        own = scaled_row(deltas, int(rows[p]), coefficients[p])
        base = total - own if p in members else total
        scale = kept_weight if p in members else kept_weight + float(weights[p])
        candidate = score(global_params + (base + own) / scale)
        mean, spread = noise_margin(candidate, global_params + base / scale,
                                    [float(control[p] * weights[p])], scale, score, rng, draws)
        z[p] = mean / spread if spread > 0 else math.copysign(Z_CAP, mean) if mean else 0.0
    return np.clip(z, -Z_CAP, Z_CAP)


def sequential_out(sums: FloatArray, counts: FloatArray, z: FloatArray,
                   tolerance: float) -> NDArray[np.bool_]:
    """FairFL's sequential test: which updates to turn away, given their senders' earlier
    z-scores (their ``sums`` over ``counts`` rounds) and this round's ``z``: those whose
    ``(sum + z) / sqrt(count + 1)`` is below ``-tolerance``. For an honest sender each z is
    about N(mu, 1) with mu >= 0 (its signal beats noise of its size, on average), so the
    statistic stays about N(>= 0, 1) however many rounds it spans; a sender whose updates
    cost the score round after round drifts down as ``sqrt(rounds)``. Measured limit (rule
    R64, docs/privacy-dp.md): from a start that is already good, mu falls near 0 for honest
    senders (median statistic 0.87 at the task's end, against 6.47 from seeded weights, on
    16 fresh seeds at epsilon 8) and below 0 for some, so honest senders are turned away
    and banned; a task starts from seeded weights."""
    return sequential_statistic(sums, counts, z) < -tolerance


def sequential_statistic(sums: FloatArray, counts: FloatArray, z: FloatArray) -> FloatArray:
    """Each sender's record as :func:`sequential_out` reads it: ``(sum + z) / sqrt(count +
    1)``."""
    return (np.asarray(sums, dtype=float) + np.asarray(z, dtype=float)) \
        / np.sqrt(np.asarray(counts, dtype=float) + 1)


def noise_control(rng: np.random.Generator, scales: list[float], dimension: int) -> FloatArray:
    """A draw of ``sum_j scales[j] * z_j`` with each ``z_j ~ N(0, I)`` in ``dimension``
    dimensions: the weighted noise the gate's control adds to a reference state."""
    total = np.zeros(dimension)
    for scale in scales:
        total += scale * rng.standard_normal(dimension)
    return total


def update_noise(deltas: FloatArray, lengths: FloatArray | None = None) -> FloatArray:
    """The noise control's standard deviation per coordinate for each update: its delta's
    length over ``sqrt(d)``, as if all of the delta were isotropic noise. A DP-SGD update is
    noise plus signal, so this overstates its noise by the signal's share of its squared
    length (the control is then a little harder on the reference, the gate a little more
    lenient). It needs no claim from the participant, but the participant chooses its
    length, up to the clip at twice the round's median (step 1): a longer update earns a
    larger allowance (docs/privacy-dp.md, "Under attack"). ``lengths``: the deltas' norms,
    if known (the deltas then give only their dimension)."""
    norms = np.linalg.norm(deltas, axis=1) if lengths is None else lengths
    return norms / math.sqrt(deltas.shape[1])


__all__ = ["GateStep", "SEQUENTIAL_DRAWS", "STRICT_RESOLUTION", "Unit", "Values", "Z_CAP",
           "gate_tolerances", "noise_control", "noise_evidence", "noise_margin", "sequential_out",
           "paired_margin", "sequential_statistic", "standard_error", "strict_noise",
           "strict_requirements", "update_noise", "validation_gate"]
