"""One round's decision, from the updates: the new model, who is accepted, who is paid.

The aggregator agent (:mod:`fl_agent.agents.aggregator`) and the offline harness
(:mod:`fl_agent.simulation.offline`) both call :func:`decide_round`, so what is measured
offline is what runs on chain.

The sample counts the participants report in ``submitUpdate`` cannot be checked, and the
same person can register several accounts. Two rules bound what such lies buy
(:func:`round_weights`); they are ours, not the paper's (which weights by the reported
counts):

* **Claims are capped at the others' median.** An update weighs
  ``min(claim_i, median of the other accepted updates' claims)`` (the upper middle claim
  when the others are even in number: always a claim somebody made). A participant whose
  true count is above every other participant's cap gains nothing by overstating it: the
  whole round is the same bit for bit. One with less can raise its own weight to the
  median at most, and each lying account moves the others' caps by at most one rank.
* **Copies count once.** Updates whose deltas point far more alike than the round's
  participants usually do (:data:`COPY_CLOSENESS`) are one *group*: the group makes one
  claim (its members' mean, capped like any other), its members share that weight equally,
  and they share one player's contribution score. Three accounts that train on the same
  data therefore weigh and earn what one would. FairFL's ``copies_once`` counts *exact*
  copies once in the round's direction (:func:`close_groups` with :data:`EXACT_COPIES`):
  it reads all the round's candidates, before anyone is screened, where this relative rule
  could be turned against alike honest clients (rule R49a).

Both rules count only the updates the strategy accepts: the strategy decides on
provisional weights computed among the usable updates, then the weights are computed again
among the accepted ones (and the accepted updates recombined if that changes the model).
So accounts that are turned away, and earn nothing, can neither raise the cap nor stretch
the round's typical distance until honest participants look like copies. (The accepted
updates' distances are read from the Gram matrix of every usable update, made once a
round: the same as a pass over the accepted alone up to the last bits of rounding.)

The strategy aggregates the updates with those weights; the accepted updates are scored
by their contribution on validation (Shapley or leave-one-out over groups, with the same
weights); a ``base_share`` of the round's budget is paid in proportion to the weights and
the rest by the scores (:func:`fl_agent.aggregation.scoring.blend_with_samples`).

What is still open (``docs/fairness.md``, measured by ``benchmarks/claims.py``): accounts
that each train on a *different part* of one person's data look like independent small
participants, and earn more together than the person would alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.csgraph import connected_components

from fl_agent.aggregation.base import (
    BLOCK_VALUES,
    Evaluate,
    FloatArray,
    Strategy,
    UpdatesLike,
    cosine_to,
    delta_gram,
    prepare_round,
)
from fl_agent.aggregation.scoring import (
    blend_with_samples,
    contribution_scores,
    to_reward_shares,
)

#: Two deltas count as copies when their cosine distance ``1 - cos`` is at most this share
#: of the round's median cosine distance: copies are far closer to each other than
#: participants usually are, in the round's own terms (a fixed cosine would not do: honest
#: updates of a two-class task reach 0.96 in the first round). Measured on tuning seed 102
#: by ``python -m benchmarks.claims --closeness --seeds 102`` (rounds 1-10, three accounts
#: on one client's data among 19 honest clients): the copies came within 0.026 / 0.110 /
#: 0.010 / 0.000 of the median on digits with Dirichlet 0.5 / 100 / 0.1 and on
#: breast_cancer, the closest honest pair no nearer than 0.304 / 0.633 / 0.180 / 0.112. The
#: margin is thin in two settings: in near-IID digits, copies may stay apart in a round
#: (and weigh and earn three times in it), and in breast_cancer, two honest clients may be
#: joined in a round (and share one weight and one score in it). (0.1 was chosen with
#: equal device speeds, where the same harness gave at most 0.082 and at least 0.148.)
COPY_CLOSENESS = 0.1


def capped_claims(claims: ArrayLike) -> FloatArray:
    """``min(claim_i, median of the other claims)``, where the median of an even number of
    claims is the upper middle one: a claim some other participant made, never an average
    of two (which two colluders could steer); a lone claim is kept as it is."""
    c = np.asarray(claims, dtype=np.float64)
    if c.size <= 1:
        return c.copy()
    order = np.sort(c)
    k = (c.size - 1) // 2  # the median's index among the n - 1 others
    # Without claim i, the k-th smallest of the others is order[k] if claim i sits above
    # it in the sorted claims, else order[k + 1].
    rank = np.argsort(np.argsort(c, kind="stable"), kind="stable")
    others = np.where(rank > k, order[k], order[min(k + 1, c.size - 1)])
    return np.minimum(c, others)


#: Cosine distances up to this count as copies even when the round's median distance is 0
#: (every update the same): float rounding of identical vectors.
_SAME = 1e-9

#: The ``closeness`` that links exact copies only (distances up to :data:`_SAME`): what
#: FairFL's ``copies_once`` reads, before any update is screened. The relative rule of
#: :data:`COPY_CLOSENESS` there would let attackers whose noisy updates point every which
#: way stretch the round's median distance until alike honest updates chain into one group
#: (rule R49a).
EXACT_COPIES = 0.0


def _cosine_distances(gram: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """``1 - cos`` between the deltas whose Gram matrix is ``gram``, and which of them are
    usable (finite and not zero)."""
    with np.errstate(invalid="ignore", over="ignore"):
        squared = np.diag(gram).copy()
        usable = np.isfinite(squared) & (squared > 0)
        norms = np.sqrt(np.where(usable, squared, 1.0))
        return 1.0 - gram / np.outer(norms, norms), usable


def copy_groups(global_params: ArrayLike, updates: UpdatesLike,
                members: ArrayLike | None = None,
                closeness: float = COPY_CLOSENESS, *,
                gram: FloatArray | None = None) -> NDArray[np.intp]:
    """A group label per update: among ``members`` (default: all), updates linked by a chain
    of pairs whose cosine distance is at most ``closeness`` times the median cosine distance
    of the members' pairs share one. Non-members, and updates that hold a non-finite value
    or do not move the model, are alone. ``gram``: the members' :func:`delta_gram`, if
    already computed (rows in ``members`` order)."""
    labels = np.arange(len(updates))
    chosen = labels if members is None else np.asarray(members, dtype=np.intp)
    if gram is not None and gram.shape != (chosen.size, chosen.size):
        raise ValueError(f"gram is {gram.shape}, for {chosen.size} members")
    if chosen.size < 2:
        return labels
    if gram is None:
        gram = delta_gram(global_params, updates, chosen)
    parts = close_groups(gram, closeness)
    if int((parts >= 0).sum()) < 2:
        return labels
    labels[chosen[parts >= 0]] = labels.size + parts[parts >= 0]  # apart from the others
    return np.unique(labels, return_inverse=True)[1]


def close_groups(gram: FloatArray, closeness: float = COPY_CLOSENESS) -> NDArray[np.intp]:
    """:func:`copy_groups` on a Gram matrix: a label per row, the same for rows linked by a
    chain of pairs whose cosine distance is at most ``closeness`` times the median cosine
    distance of the usable rows' pairs, numbered from 0 in the order of their first row;
    ``-1`` for a row that holds a non-finite value or is zero (it copies nobody)."""
    distance, usable = _cosine_distances(gram)
    out = np.full(gram.shape[0], -1, dtype=np.intp)
    inner = distance[np.ix_(usable, usable)]
    if inner.shape[0] == 0:
        return out
    typical = float(np.median(inner[np.triu_indices(inner.shape[0], 1)])) \
        if inner.shape[0] > 1 else 0.0
    linked = inner <= max(closeness * typical, _SAME)
    np.fill_diagonal(linked, True)
    out[usable] = connected_components(linked, directed=False)[1]
    return out


def first_of_groups(groups: NDArray[np.intp], among: NDArray[np.intp]) -> NDArray[np.intp]:
    """The positions of ``among`` (sorted) that stand for their group: each one whose group
    (``groups``, from :func:`close_groups`; -1: alone) has no earlier position in
    ``among``."""
    seen: set[int] = set()
    out = []
    for p in among.tolist():
        group = int(groups[p])
        if group < 0 or group not in seen:
            out.append(p)
            seen.add(group)
    return np.asarray(out, dtype=np.intp)


def round_weights(global_params: ArrayLike, updates: UpdatesLike, claims: ArrayLike,
                  members: ArrayLike | None = None, *,
                  gram: FloatArray | None = None) -> tuple[FloatArray, NDArray[np.intp]]:
    """Each update's weight and its copy group, among ``members`` (default: all): a group's
    claim is the mean of its members' claims; the groups' claims are capped at the others'
    median (:func:`capped_claims`, so copies cannot move the cap either) and split
    equally among the members. Non-members keep their claim and a group of their own.
    ``gram``: as in :func:`copy_groups`."""
    c = np.asarray(claims, dtype=np.float64)
    chosen = np.arange(c.size) if members is None else np.asarray(members, dtype=np.intp)
    groups = copy_groups(global_params, updates, chosen, gram=gram)
    weights = c.copy()
    if chosen.size:
        labels, inverse, size = np.unique(groups[chosen], return_inverse=True,
                                          return_counts=True)
        mean = np.bincount(inverse, weights=c[chosen], minlength=labels.size) / size
        weights[chosen] = (capped_claims(mean) / size)[inverse]
    return weights, groups


@dataclass(frozen=True)
class RoundDecision:
    """What the aggregator decides about one round's ``n`` updates (indices into them)."""

    params: FloatArray = field(repr=False)  # the new global model
    accepted: tuple[int, ...]
    reasons: Mapping[int, str]  # why each rejected update was rejected
    scores: FloatArray  # contribution score per update (0 when rejected)
    shares: tuple[int, ...]  # parts per million of the round's budget per update
    #: What the rule measured to decide (``AggregationResult.figures``).
    figures: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The final weights and copy groups (:func:`round_weights` among the accepted): the
    #: weights the model was combined with and the players the scores were computed for.
    weights: FloatArray | None = field(default=None, repr=False)
    groups: NDArray[np.intp] | None = field(default=None, repr=False)


def decide_round(strategy: Strategy, global_params: ArrayLike, updates: UpdatesLike,
                 num_samples: ArrayLike, *, gate: Evaluate | None,
                 score: Callable[[FloatArray], float],
                 scoring: Literal["loo", "shapley"] = "shapley", permutations: int = 40,
                 base_share: float = 0.5, round_number: int = 0,
                 earlier: ArrayLike | None = None,
                 evidence: ArrayLike | None = None) -> RoundDecision:
    """Aggregates ``updates`` with ``strategy`` weighted by :func:`round_weights` of the
    reported ``num_samples`` (``gate``: its validation score, higher is better), scores the
    accepted ones with ``score`` (the task metric on validation) by ``scoring`` with copies
    as one player, and shares the round's budget: ``base_share`` by weight, the rest by
    score (ties rotate with ``round_number``, which also seeds the Shapley permutations).
    ``earlier``: what each update's sender sent in its earlier rounds
    (:attr:`~fl_agent.aggregation.base.Round.earlier`), for a rule that reads it."""
    n = len(updates)
    # a malformed round raises here
    rnd = prepare_round(global_params, updates, num_samples, earlier, evidence)
    # Provisional weights among the usable updates, for the strategy's decision...
    gram = rnd.delta_gram()  # one pass, used here, below and by FairFL's similarities
    provisional, _ = round_weights(rnd.global_params, rnd.raw, rnd.num_samples, rnd.valid,
                                   gram=gram)
    # (the same round, checked once, handed on with the provisional weights)
    result = strategy.aggregate_round(rnd.with_num_samples(provisional), evaluate=gate)
    accepted = list(result.accepted)
    # ...and the final ones among the accepted: accounts that were turned away (and earn
    # nothing) neither move the cap nor make anyone a copy.
    position = {int(i): k for k, i in enumerate(rnd.valid)}
    among = [position.get(int(i), -1) for i in accepted]
    weights, groups = round_weights(
        rnd.global_params, rnd.raw, rnd.num_samples, accepted,
        gram=gram[np.ix_(among, among)] if len(among) > 1 and min(among) >= 0 else None)
    params = np.asarray(result.params)
    if accepted and not np.array_equal(weights[accepted], provisional[accepted]):
        final = strategy.combine_round(rnd, accepted, weights[accepted])
        if not np.array_equal(final, strategy.combine_round(rnd, accepted,
                                                            provisional[accepted])):
            params = np.asarray(final).astype(rnd.dtype)  # the weights matter to this rule
    scores = np.zeros(n)
    shares: tuple[int, ...] = (0,) * n
    if accepted:
        scores = contribution_scores(strategy, global_params, updates, weights, accepted,
                                     score, method=scoring, num_permutations=permutations,
                                     seed=round_number, groups=groups.tolist())
        shares = tuple(to_reward_shares(
            blend_with_samples(scores, weights, accepted, base_share),
            accepted, tie_break=round_number))
    return RoundDecision(params, tuple(int(i) for i in accepted),
                         MappingProxyType({int(i): str(why) for i, why in result.reasons.items()}),
                         scores, shares, result.figures, weights, groups)


@dataclass(frozen=True)
class UpdateFigures:
    """What the round's evidence says about one update, whatever the rule: figures a
    rejected participant can set beside the accepted ones' (they are not the rule's own
    internal values, and re-running the rule needs the updates, which stay sealed)."""

    cosine: float  # of its delta to the new model's delta (0 if either has zero length)
    norm_ratio: float  # its delta's length over the median length of the round's updates
    alone: float  # the task metric on validation of the global model plus this update only


def update_figures(global_params: ArrayLike, updates: ArrayLike, new_params: ArrayLike,
                   score: Callable[[FloatArray], float]) -> list[UpdateFigures]:
    """:class:`UpdateFigures` of each row of ``updates`` (full parameter vectors), against
    the round's ``global_params`` and the ``new_params`` it produced; ``score`` is the task
    metric on the aggregator's validation data (one call per update).

    The deltas are made a block of rows at a time: at 200 updates of 1M parameters a float64
    copy of them all and its deltas were 3.2 GB of new memory a round."""
    base = np.asarray(global_params, dtype=np.float64)
    rows = np.atleast_2d(np.asarray(updates))
    direction = np.asarray(new_params, dtype=np.float64) - base
    direction_norm = float(np.linalg.norm(direction))
    step = max(1, BLOCK_VALUES // max(1, rows.shape[1]))
    lengths, cosines = [], []
    for start in range(0, len(rows), step):
        deltas = rows[start:start + step].astype(np.float64) - base
        lengths.append(np.linalg.norm(deltas, axis=1))
        cosines.append(cosine_to(deltas, direction, lengths[-1], direction_norm))
    length = np.concatenate(lengths) if lengths else np.zeros(0)
    cosine = np.concatenate(cosines) if cosines else np.zeros(0)
    median = float(np.median(length)) if length.size else 0.0
    return [UpdateFigures(cosine=float(cosine[i]),
                          norm_ratio=float(length[i] / median) if median > 0 else 0.0,
                          alone=float(score(rows[i].astype(np.float64))))
            for i in range(len(rows))]


__all__ = ["COPY_CLOSENESS", "EXACT_COPIES", "RoundDecision", "UpdateFigures", "capped_claims",
           "close_groups", "copy_groups", "decide_round", "delta_gram", "first_of_groups",
           "round_weights", "update_figures"]
