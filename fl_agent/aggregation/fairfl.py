"""FairFL's robust aggregation: similarity, DBSCAN clusters, bottom-up merging, validation gate.

The paper describes the method in these words:

    "the similarity between users is first calculated, and appropriate clustering and
    aggregation orders are assigned based on the model weights trained for each user ... We
    adopted the DBSCAN algorithm to classify each data point as either noise or a member of a
    cluster ... compares the weights uploaded by users with the weights calculated by the
    global model using cosine similarity, and aggregates similar weights from bottom to top.
    At the same time, the aggregation method is designed to minimize the standard deviation of
    the similarity between gradients during aggregation and maximize the number of gradient
    weight models in aggregation. Finally, the accuracy of the weights for the task is
    evaluated to determine whether to include these weights in the next aggregation. Through
    multiple bottom-to-top aggregations, weights that are closer in distance will be
    aggregated, gradually forming larger clusters of positive weights, while malicious weights
    will be blocked and discarded."

It leaves the details open; this module fixes them as follows. Everything works on the
*deltas* ``delta_i = update_i - global`` (an update is a full parameter vector, so its
similarity to the global model itself is ~1 for everyone and says nothing).

1. **Screening by norm.** With ``m`` the median delta norm of the usable updates: a delta
   shorter than ``free_rider_ratio * m`` (or zero up to float rounding) is a *free rider* --
   "re-submits the global model unchanged" -- and is rejected (``free_rider``); a delta longer than
   ``max_norm_ratio * m`` is a scaling attack (``norm_outlier``; with ``max_norm_ratio`` None, none
   is). The remaining deltas are clipped to ``clip_ratio * m'`` (``m'`` their median norm;
   median-norm clipping as in FLAME, loosened by ``clip_ratio=2``) so that no update can dominate
   by its length. The factor 2 is there because a benign client with much data legitimately moves
   further: plain median clipping (``clip_ratio=1``) cost 1-2 accuracy points against FedAvg in the
   digits runs below, ``clip_ratio=2`` none.

1b. **Trigger screen** (not in the paper; only when ``input_layer`` says where the dense
   weight that reads the raw input features sits in the vector): an update whose change to
   the input layer piles up on a few input features, far beyond the round's median share
   of each feature, is rejected (``trigger``); with ``trigger_rounds`` above 1 the sum of
   each sender's latest rounds is screened too. The statistic, why it finds a backdoor's
   trigger, the defaults and the limits: :mod:`fl_agent.aggregation.trigger_screen`.

2. **Similarity.** ``S``, the pairwise cosine similarity of the deltas, the similarity
   "between users" (clipping keeps a delta's direction, so these are the clipped deltas'
   cosines too; they are read from the Gram matrix of the usable deltas,
   :meth:`~fl_agent.aggregation.base.Round.delta_gram`, which the round's copy groups read
   as well: scikit-learn's ``cosine_similarity`` up to rounding, without its normalised
   copy of every delta). The paper's "weights calculated by the global model" are
   taken to be the direction the global model would move this round under a robust rule:
   the coordinate-wise median ``r`` of the clipped deltas; ``s_i = cos(delta_i, r)``.
   With ``copies_once`` (every task made since rule R49, 2026-12-06; the class default is
   off so that older tasks keep their rule) a group of exact copies (cosine distance within
   float rounding, :data:`~fl_agent.aggregation.rounds.EXACT_COPIES`, found from ``S``)
   gives one row, its first, to that median, and one value to the medians and spread of
   ``s`` that steps 4 and 5 read; the gate's slack is scaled by that median
   (``median_similarity`` in the figures). ALIE's and min-max's colluders all submit one
   crafted update; counted six times out of 20 they pulled ``r`` towards themselves, and
   the honest updates lost similarity and with it the gate's slack (docs/held-out.md, rule
   R49). Exact copies only: the weights' relative rule
   (:data:`~fl_agent.aggregation.rounds.COPY_CLOSENESS`) applied here, before anyone is
   screened, let attackers whose noisy updates point every which way stretch the round's
   typical distance until alike honest updates were joined into one vote (R49a).
   Colluders who each add any noise of their own are not copies and each vote again: with
   1 % of the update's length (``alie-jitter-1%``) the rounds are decided as without the
   option, so it stops only colluders who submit the very same update.
   An update whose similarity to *every* other update is within chance -- below
   ``chance_z / sqrt(d)``, the spread of the cosine between a random direction and any fixed
   vector in ``d`` dimensions -- is noise in the plainest sense (``noise``): no other
   participant's data pulls in its direction (Gaussian-noise attacks; benign updates of
   even very non-IID clients share some direction with somebody). The test needs
   ``d >= 4 * chance_z**2`` (64 by default); in fewer dimensions random directions are not
   reliably near-orthogonal and it is skipped. With ``noise_rounds`` above 1 (an option of a
   task's rule, not a default: rule R52 measured it and did not adopt it,
   docs/privacy-sparse.md) the test reads, for each update, the sum of its delta and what its
   sender sent in its previous rounds (:attr:`Round.earlier`, the window the trigger screen
   reads too), against the other updates' sums: a sparse update is
   mostly its sender's own residual, on coordinates nobody else sends, and by error feedback
   its sum over rounds is close to the sender's dense step, which shares a direction with
   the others; noise summed stays noise. But a sender's own earlier round vouches for this
   one: noise sent after an honest round shares the honest direction in the sum (an attacker
   sending noise every other round got through more often), and the sums are not clipped and
   hold earlier updates whatever their verdict, so a long earlier update can vouch for any
   noise after it (not measured). Only this test reads the sums; the steps after it read the
   updates alone.

3. **DBSCAN** (scikit-learn, ``metric="precomputed"`` on ``1 - S``) labels each remaining
   update as a member of a cluster or as noise, without a number of clusters. ``eps`` is
   data-driven: ``eps_scale`` times the median, over the updates, of the cosine distance to
   the ``(min_samples - 1)``-th nearest other update -- the typical neighbourhood radius of
   this round, so it adapts to how tightly the clients agree -- capped at ``1 - chance``
   (never call random directions neighbours). An explicit ``eps`` overrides it (still
   capped).

4. **Bottom-up order and the std test.** Each cluster is a unit; each DBSCAN-noise update
   is a unit of one. The seed is the unit of largest *support* ``sum(s_i)`` over its
   members -- many members, all close to the global model's direction ("maximize the number
   of gradient weight models in aggregation"); then, repeatedly, the unit whose mean delta
   is most similar to the aggregate built so far ("aggregates similar weights from bottom to
   top", "gradually forming larger clusters"). Before that, the std test ("minimize the
   standard deviation of the similarity"): an update whose ``s_i`` is a low outlier,
   ``s_i < median(s) - similarity_z * max(1.4826 * MAD(s), min_std)``, is ``dissimilar``.
   It drops the updates that would widen the spread of the similarities and keeps every
   other one, so that as many updates as possible stay in. (The spread is measured over the
   whole round, not inside the growing aggregate: with non-IID clients the benign updates
   form several clusters of complementary directions, and an aggregate of a few of them
   would call the others outliers.)

5. **Validation gate** ("the accuracy of the weights for the task is evaluated to determine
   whether to include these weights"), only if ``evaluate`` is given
   (:func:`validation_gate`). ``evaluate`` gives one score per validation example (their
   mean is the score; :mod:`fl_agent.learning.gate_scores` makes them from minus the loss,
   the expected accuracy or the soft macro-F1), and two models are compared example by
   example: with ``d`` the paired differences, one *holds* against the other if
   ``mean(d) + slack * se(d) >= required`` (:func:`paired_margin`, ``se`` the standard error
   of the mean). The slack is in standard errors, so the verdicts do not depend on the
   units of the score (not ours to choose: the task's). Walking the merge order, each unit
   is added to a running sum of sample-weighted deltas; the candidate model is
   ``global + running / W`` with ``W`` the weight of all merged units, so a unit is judged
   by the contribution it makes to the full aggregate (judging a few non-IID clients'
   average on its own would punish them for the classes they lack). A unit joins if its
   candidate holds against the best model so far (at first the current global model: "not
   worse than the current global model"). The slack is per update
   (:func:`gate_tolerances`): the full ``tolerance`` for an update whose ``s_i`` reaches
   ``full_tolerance_at`` times the round's median ``s``, linearly less below that, none
   (or ``min_tolerance``, 0 by default) at ``s_i <= 0`` (a unit gets its members'
   smallest). Late in training a sign-flipped update
   costs the validation loss about as little as a benign one gains it, and only its
   direction gives it away; a benign update that points the way the round moves keeps the
   slack it needs against the noise of a converged model. Measured (rule R46, tuning seeds,
   docs/held-out.md): the scaling bans weakly poisoned backdoors and targeted
   flippers more often than the full slack for all (``full_tolerance_at=0``), and it bans
   more honest clients under attack (8 against 0 at 20 rounds, 31 against 7 at 60 rounds
   with attackers from round 41; without attackers as many) and turns away more honest
   updates the longer a task runs; it hardly catches sign flippers who start late. Why
   (``benchmarks.gate_trace``, tuning seeds): in converged rounds the honest updates it
   turns away point away from the round's direction, so the scaling leaves them almost no
   slack (median 0) for an effect that is mild (validation ``z`` median -0.93) and
   persistent from round to round; under ALIE from round 41 the colluders' identical
   updates keep the full slack while the honest updates' similarity falls. A floor under
   the slack (``min_tolerance``, rule R48) at 1.5 standard errors spared 19 of 33 honest
   bans at 60 rounds but let more weak backdoor and targeted-flip senders stay than the
   rule allowed (at 1, 14 of 33, with the same problem), so it is 0. A cluster that
   fails is retried member by member, most similar first, so one bad member does not sink
   its neighbours. A final check at the accepted aggregate's own scale drops every member
   without which the aggregate would not hold up (this catches a group whose direction
   helps a partial sum but pulls the renormalised mean away). Then the rescue, the same
   test the other way round: an update the walk turned away rejoins if the accepted
   aggregate with it holds against the aggregate without it. The walk judges the first
   units against a partial sum, a step towards a few clients' classes, and could otherwise
   turn away a benign update for it.
   Stricter for a lone update that points away from the round (:func:`strict_noise`): a
   DBSCAN-noise unit (no neighbours) whose ``s_i`` is below ``strict_noise_at`` times the
   median ``s`` gets no slack (``min_tolerance`` does not apply) and must *raise* the
   score by ``strict_gain`` times its share
   ``w_i / W`` of the round's gain (the mean of all merged updates against the current
   model), in the gate and in the final check, instead of merely not lowering it. The rule
   applies only while that share stands out of the noise of the update's own contribution
   by twice the slack: ``share_i >= 2 * tolerance * se_i``, with ``se_i`` the standard error
   of the paired difference between the merged aggregate with and without the update
   (early rounds); late in training a benign update's share of the gain is within the
   gate's noise and it keeps its ordinary slack. While tuning,
   label flippers with a small, mostly benign label mix brought 0-11 % of their share in
   rounds 1-3 (a neutral step), lone benign updates 38-100 %. Rejected updates are
   ``validation``. Without ``evaluate``, every update that passed steps 1-4 is aggregated.
   **Noise control** (``noise_control``; the aggregator turns it on for a task with
   example-level DP). An honest DP-SGD update is mostly isotropic noise, which costs the
   validation score whatever the update's signal, so the plain gate turns away honest
   updates that help (docs/privacy-dp.md). With the control each test compares the state
   with the update against its reference moved by noise of the update's own size (its
   clipped delta's length spread evenly over the coordinates, :func:`update_noise`; no
   claim is read, and the length is bounded by step 1), valued at ``+z`` and ``-z``: the
   update must beat noise, not nothing. What it gives up: an update of pure noise of an
   honest length (a free rider that adds noise) passes like a DP update whose signal is
   negligible; a harmful signal about as strong as an honest one hides in the noise as
   the honest one does; and the allowance grows with the update's length (up to step 1's
   clip at twice the median) and is isotropic, so an attacker that pads its update in
   directions where the validation loss is flat earns an allowance it does not pay for
   (docs/privacy-dp.md has the measured costs under attack).
   **Sequential test** (``sequential``, with the control; off in this class, recorded on by a new
   example-level DP task's document since 2026-12-05). Each test draws :data:`SEQUENTIAL_DRAWS`
   antithetic pairs and counts one draw's own luck in its spread (:func:`noise_margin`), so that one
   round's test rejects honest noise rarely; then every update that reached the gate gets a z-score
   against noise of its size in the gate's aggregate (:func:`noise_evidence`), and an update whose
   sender's z-scores, this round's and its earlier rounds' (:attr:`Round.evidence`), sum below
   ``-tolerance * sqrt(count)`` is turned away as ``validation`` (:func:`sequential_out`); the
   figures record each z-score with the sum it was judged with. Honest FPR at most 0.015 on the
   evaluation seeds, honest or under attackers who attack every round; those who hurt round
   after round caught, noise-like ones not, those with a record of good rounds less
   (docs/privacy-dp.md). From seeded weights only: from a start already trained, honest
   senders' records fall near 0 and some below (rule R64: FPR up to 0.090 at epsilon 8 and 5
   honest bans on 16 fresh seeds, none from seeded weights).

5c. **Held back** (``held_back``, rules R50 and R50a: recorded on by every new task without
   the noise control since 2026-12-06; off in this class, and refused with the noise
   control). The similarity scaling above may keep an update out, but not, on its own,
   get its sender penalised: each update the gate turned away whose slack from the scaling
   was below the full ``tolerance`` (before the strict rule: a lone update held to a gain
   is turned away for that, not for its direction) is tested once more
   (:func:`held_back_margins`): the accepted aggregate with it, counted at no less than
   the accepted updates' median weight (a small claim must not shrink its harm), against
   the aggregate without it, at the full ``tolerance``. If that holds, its reason is
   ``held_back`` instead of ``validation``: it is still not aggregated and not paid, but
   the registry counts it neither towards a ban nor in the sender's reputation. The
   figures record
   ``[index, slack from the scaling, margin]`` for each update tested. What it gives up:
   a sender whose updates are held back may submit again without losing anything, so it
   can probe round after round for an update the gate lets in, and while it submits it is
   one of the round's candidates (docs/held-out.md, R50).

6. **Combination rule** (:func:`fairfl_combine`, also used to value subsets for contribution
   scoring): clip the accepted deltas to ``clip_ratio`` times their median norm and take the
   sample-weighted mean.

Scores: for accepted updates, the cosine similarity of the delta to the final aggregate's
delta; 0 for rejected ones. :meth:`FairFL.report` returns every intermediate decision.

``tolerance`` is in standard errors of the paired per-example difference, not in the units
of the score: the gate asks whether the validation examples show, beyond their own noise,
that one model is worse than another. Multiplying or shifting every score changes no
verdict (``tests/aggregation/test_fairfl.py``). On real rounds the verdicts with minus the
loss, the expected accuracy and the soft macro-F1 agree as closely as the loss gate agrees
with itself on a resampled validation split (``docs/held-out.md``, ``python -m
benchmarks.gate_units``). Hard 0/1 accuracy is a poor choice: on a few hundred examples one
participant's share of a late step changes almost no prediction, so the gate sees nothing.
Before issue 11 the tolerance was an absolute ``0.001`` in units of the loss; the review
that opened the issue measured 4-6 points lost with accuracy as the score.
Limits: the agreement is partly by construction, since the expected accuracy of an example
is ``exp(-loss)`` and the soft macro-F1 is a smooth function of the same probabilities; the
point is that the gate needs no constant in any of their units. The rule is a one-sided
test repeated about twice per update and round, not a margin of acceptable cost: its slack
``tolerance * se`` shrinks as ``1 / sqrt(n_val)``, so with a larger validation split a
benign update with a small, consistent cost is turned away more often (``tolerance=2`` was
chosen with 270 validation examples).

Defaults (``min_samples=3``, ``chance_z=4``, ``similarity_z=5``, ``min_std=0.05``,
``tolerance=2``, ``full_tolerance_at=0.5``, ``strict_noise_at=0.6``, ``strict_gain=0.2``,
``free_rider_ratio=0.1``, ``max_norm_ratio=3``, ``clip_ratio=2``, ``trigger_share=0.2``;
``noise_control`` off, on in DP tasks, has no constant) were chosen on the crafted rounds
of ``tests/aggregation`` and on the digits simulation
(scikit-learn digits, 20 clients, Dirichlet(0.5) label split, a 64-64-10 MLP, 20 rounds of
20 local SGD steps, 6 of 20 clients attacking, ``evaluate`` = minus each example's loss,
blacklisting on) on the **tuning seeds 1-5**, with devices of equal speed:
``python -m benchmarks.held_out --seeds 1,2,3,4,5 --device-spread 1`` reruns that setting
with the current code.

``tolerance=2`` came later, when the slack became unit-free (issue 11), on the same tuning
seeds with the default device speeds, without attack and under label and sign flips
(``python -m benchmarks.held_out --seeds 1,2,3,4,5 --attacks none,label_flip,sign_flip
--tolerance T``): 1 blacklisted honest clients under attack (two on seed 1, three on seed
5); 2 none, rejecting at most 1 % of honest updates and 75-100 % of label flips per seed;
3 rejected no honest update under attack and fewer label flips (72-100 %). Under each of
the three one honest client of seed 1 is blacklisted without attack (under 2, by the
trigger screen).

The figures quoted in the steps above (the attackers' and honest updates' trigger excess,
what a benign update or a label flipper costs the validation loss, the strict rule's gain
shares) were observed while tuning, with earlier versions of this module; no harness in the
repository records those per-update statistics yet, so treat them as the reasons for the
defaults, not as measurements to cite. ``similarity_z=3`` made one benign client with an
unusual label mix a ``dissimilar`` outlier in 8 rounds of one tuning run (enough to be
blacklisted), which is why it is 5; the gate, not the std test, is what stops label and
sign flippers.

The evaluation, on seeds 11-15 that no constant was chosen on, is in ``docs/held-out.md``
(with blacklisting, every attack and variant) and ``docs/rules-alone.md`` (without
blacklisting, against the other rules and a perfect detector). Known limits found there
and while tuning: attacks crafted to sit inside the honest spread (ALIE, min-max) and a
targeted flip of one class are mostly accepted, and are bounded only by the attackers'
share of the weight; the trigger screen catches the corner trigger it was designed on, not
a trigger where digits have ink, nor one on few examples; and a benign client whose update
costs the converged model's validation score beyond the gate's slack is rejected round
after round and, on chain, blacklisted (seeds 1 and 5 while tuning, seed 11 in the
evaluation).

Hand-written here: the orchestration (screening, the eps rule, the merge order, the gate)
in plain numpy, the pairwise similarities from the Gram matrix of the deltas; the
clustering is scikit-learn's. The steps' pure functions live beside this module: the
trigger screen in :mod:`~fl_agent.aggregation.trigger_screen`, the chance level, DBSCAN,
the std test and the merge order in :mod:`~fl_agent.aggregation.clustering`, the
validation gate and the strict rule in :mod:`~fl_agent.aggregation.gate`, the norm screen
and the combination rule in :mod:`~fl_agent.aggregation.norms`; this module re-exports
them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fl_agent.aggregation.base import (
    AggregationResult,
    DeltaRows,
    Evaluate,
    FloatArray,
    Reason,
    Round,
    Strategy,
    UpdatesLike,
    clip_factors,
    column_median,
    cosine_to,
    gram_cosines,
    prepare_round,
    row_norms,
)
from fl_agent.aggregation.clustering import (
    chance_similarity,
    data_driven_eps,
    dbscan_labels,
    merge_order,
    similarity_outliers,
)
from fl_agent.aggregation.gate import (
    SEQUENTIAL_DRAWS,
    GateStep,
    Unit,
    Values,
    gate_tolerances,
    held_back_margins,
    noise_evidence,
    sequential_out,
    strict_noise,
    strict_requirements,
    update_noise,
    validation_gate,
)
from fl_agent.aggregation.norms import (
    clipped_mean,
    fairfl_combine,
    norm_screen,
    unchanged_below,
)
from fl_agent.aggregation.rounds import EXACT_COPIES, close_groups, first_of_groups
from fl_agent.aggregation.trigger_screen import (
    input_feature_shares,
    trigger_excess,
)
from fl_agent.errors import ConfigError

_MAX_CHANCE = 0.5  # above it (d < 4 * chance_z**2) the chance test says nothing
_MIN_EXAMPLES = 10  # fewer validation examples give no standard error worth the name


# ----------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FairFLReport:
    """What FairFL saw and decided in a round; every index is a round index."""

    result: AggregationResult
    eps: float | None  # the DBSCAN radius used
    labels: Mapping[int, int]  # DBSCAN label of each clustered update (-1: noise)
    reference_similarity: Mapping[int, float]  # s_i, similarity to the global direction
    order: tuple[tuple[int, ...], ...]  # the units in bottom-up merge order
    gate: tuple[GateStep, ...]  # the validation gate's steps (empty without evaluate)
    dropped: tuple[int, ...]  # merged, then dropped by the gate's final check
    rescued: tuple[int, ...]  # turned away by the gate's walk, then let back in (rescue)
    baseline_value: float | None  # the current global model's score (mean over examples)
    trigger_excess: Mapping[int, float]  # step 1b's statistic (empty when it did not run)


# --------------------------------------------------------------------------------- strategy


@dataclass(frozen=True)
class FairFL(Strategy):
    """The paper's aggregation (see the module docstring). Options by step: 1
    ``free_rider_ratio``, ``max_norm_ratio``, ``clip_ratio``; 2 ``chance_z``; 3
    ``min_samples``, ``eps`` (None: data-driven), ``eps_scale``; 4 ``similarity_z``,
    ``min_std``; 5 ``tolerance`` (in standard errors, see the module docstring),
    ``full_tolerance_at``, ``min_tolerance``, ``strict_noise_at``, ``strict_gain``; 1b
    ``input_layer`` (``(offset, units, features)`` of the dense input weight, see
    :func:`fl_agent.learning.input_layer`; None skips the step), ``trigger_share`` (0 skips
    it), ``trigger_rounds`` (how many of a sender's latest rounds the screen adds up, from
    what the round gives in :attr:`~fl_agent.aggregation.base.Round.earlier`; 1: the update
    alone); ``noise_rounds`` (the same for step 2's chance test; above 1 it must equal
    ``trigger_rounds`` when that screen runs over rounds too, the round carrying one sum per
    sender); ``noise_control`` (step 5 for DP-SGD updates, see the module docstring),
    ``sequential`` (step 5 with the control: senders judged over their rounds, from what the
    round gives in :attr:`~fl_agent.aggregation.base.Round.evidence`); ``copies_once`` (steps
    2, 4 and 5: exact copies count once); ``held_back`` (step 5c)."""

    min_samples: int = 3
    eps: float | None = None
    eps_scale: float = 1.0
    chance_z: float = 4.0
    similarity_z: float = 5.0
    min_std: float = 0.05
    tolerance: float = 2.0
    full_tolerance_at: float = 0.5
    min_tolerance: float = 0.0
    strict_noise_at: float = 0.6
    strict_gain: float = 0.2
    free_rider_ratio: float = 0.1
    max_norm_ratio: float | None = 3.0
    clip_ratio: float = 2.0
    input_layer: tuple[int, int, int] | None = None
    trigger_share: float = 0.2
    trigger_rounds: int = 1
    noise_rounds: int = 1
    noise_control: bool = False
    sequential: bool = False
    copies_once: bool = False
    held_back: bool = False
    name: ClassVar[str] = "fairfl"

    def cluster(self, similarity: FloatArray, eps: float) -> NDArray[np.intp]:
        """Step 3: a cluster label per update (``-1``: noise) from their pairwise cosine
        similarities, with DBSCAN at radius ``eps``. The paper's clustering ablation
        (``benchmarks/ablation.py``) swaps this method for other clusterings."""
        return dbscan_labels(similarity, eps, self.min_samples)

    def __post_init__(self) -> None:
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) \
                or self.min_samples < 2:
            raise ConfigError(f"min_samples must be an integer >= 2, got {self.min_samples!r}")
        if self.eps is not None and not (isinstance(self.eps, int | float)
                                         and 0.0 < self.eps <= 2.0):
            raise ConfigError(f"eps is a cosine distance in (0, 2] or None, got {self.eps!r}")
        _positive("eps_scale", self.eps_scale)
        _positive("chance_z", self.chance_z)
        _positive("similarity_z", self.similarity_z)
        _non_negative("min_std", self.min_std)
        _non_negative("tolerance", self.tolerance)
        _non_negative("full_tolerance_at", self.full_tolerance_at)
        if not (isinstance(self.min_tolerance, int | float)
                and 0.0 <= self.min_tolerance <= self.tolerance):
            raise ConfigError(f"min_tolerance must be in [0, tolerance={self.tolerance}], got "
                              f"{self.min_tolerance!r}")
        if not (isinstance(self.strict_noise_at, int | float)
                and 0.0 <= self.strict_noise_at <= 1.0):
            raise ConfigError(f"strict_noise_at must be in [0, 1], got {self.strict_noise_at!r}")
        _non_negative("strict_gain", self.strict_gain)
        if not isinstance(self.noise_control, bool):
            raise ConfigError(f"noise_control must be true or false, got {self.noise_control!r}")
        if not isinstance(self.sequential, bool):
            raise ConfigError(f"sequential must be true or false, got {self.sequential!r}")
        if not isinstance(self.copies_once, bool):
            raise ConfigError(f"copies_once must be true or false, got {self.copies_once!r}")
        if not isinstance(self.held_back, bool):
            raise ConfigError(f"held_back must be true or false, got {self.held_back!r}")
        if self.held_back and self.noise_control:
            raise ConfigError("held_back does not apply under noise_control (a DP task's "
                              "gate): its verdicts are the noise control's; leave it false")
        if not (isinstance(self.free_rider_ratio, int | float)
                and 0.0 <= self.free_rider_ratio < 1.0):
            raise ConfigError(f"free_rider_ratio must be in [0, 1), got {self.free_rider_ratio!r}")
        if self.max_norm_ratio is not None and not (
                isinstance(self.max_norm_ratio, int | float)
                and not isinstance(self.max_norm_ratio, bool)
                and math.isfinite(self.max_norm_ratio) and self.max_norm_ratio > 1.0):
            raise ConfigError(f"max_norm_ratio must be a number > 1 or None (no length "
                              f"outliers), got {self.max_norm_ratio!r}")
        if not (isinstance(self.clip_ratio, int | float) and math.isfinite(self.clip_ratio)
                and self.clip_ratio >= 1.0):
            raise ConfigError(f"clip_ratio must be >= 1, got {self.clip_ratio!r}")
        if not (isinstance(self.trigger_share, int | float) and 0.0 <= self.trigger_share <= 1.0):
            raise ConfigError(f"trigger_share must be in [0, 1], got {self.trigger_share!r}")
        if isinstance(self.trigger_rounds, bool) or not isinstance(self.trigger_rounds, int) \
                or self.trigger_rounds < 1:
            raise ConfigError(f"trigger_rounds must be an integer >= 1, got "
                              f"{self.trigger_rounds!r}")
        if isinstance(self.noise_rounds, bool) or not isinstance(self.noise_rounds, int) \
                or self.noise_rounds < 1:
            raise ConfigError(f"noise_rounds must be an integer >= 1, got {self.noise_rounds!r}")
        if self.noise_rounds > 1 and self.trigger_rounds > 1 \
                and self.input_layer is not None and self.trigger_share > 0 \
                and self.noise_rounds != self.trigger_rounds:
            raise ConfigError(f"noise_rounds ({self.noise_rounds}) and trigger_rounds "
                              f"({self.trigger_rounds}) read one window of a sender's rounds: "
                              "set them equal, or one of them to 1")
        if self.input_layer is not None:
            layer = self.input_layer
            if (isinstance(layer, str | bytes) or not hasattr(layer, "__len__")
                    or len(layer) != 3
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in layer)
                    or layer[0] < 0 or layer[1] < 1 or layer[2] < 1):
                raise ConfigError("input_layer must be (offset, units, features): integers, "
                                  f"offset >= 0 and sizes >= 1, got {layer!r}")
            object.__setattr__(self, "input_layer", tuple(layer))  # a JSON list becomes a tuple

    def combine(self, global_params: FloatArray, updates: FloatArray,
                num_samples: FloatArray) -> FloatArray:
        return fairfl_combine(global_params, updates, num_samples, self.clip_ratio)

    def combine_round(self, rnd: Round, rows: Sequence[int],
                      num_samples: FloatArray) -> FloatArray:
        """:meth:`combine` bit for bit, reading the deltas a row at a time."""
        if not len(rows):
            return rnd.global_params.copy()
        deltas = DeltaRows(rnd.raw, rnd.global_params, rows)
        return rnd.global_params + clipped_mean(deltas, row_norms(deltas), num_samples,
                                                self.clip_ratio)

    def sequential_verdicts(self, sums: FloatArray, counts: FloatArray,
                            z: FloatArray) -> NDArray[np.bool_]:
        """Step 5b's verdict on the round's scored updates, given their senders' earlier
        z-scores (``sums`` over ``counts`` rounds) and this round's ``z``: which to turn away
        (:func:`sequential_out` at the gate's tolerance). A separate method so that a
        benchmark can try another verdict on the same evidence (rule R65)."""
        return sequential_out(sums, counts, z, self.tolerance)

    def mean_clip_ratio(self) -> float | None:
        return self.clip_ratio

    def _aggregate(self, rnd: Round, evaluate: Evaluate | None) -> AggregationResult:
        return self._run(rnd, evaluate).result

    def report(self, global_params: ArrayLike, updates: UpdatesLike, num_samples: ArrayLike,
               evaluate: Evaluate | None = None) -> FairFLReport:
        """Like :meth:`aggregate`, with every intermediate decision."""
        return self._run(prepare_round(global_params, updates, num_samples), evaluate)

    def _run(self, rnd: Round, evaluate: Evaluate | None) -> FairFLReport:
        g, valid = rnd.global_params, rnd.valid
        reasons: dict[int, Reason] = {}
        excess_by_index: dict[int, float] = {}
        #: What the screens measured, for the round's evidence (see :meth:`figures`).
        measured: dict[str, Any] = {}
        if self.input_layer is not None:
            offset, units, features = self.input_layer
            if offset + units * features > g.size:
                raise ConfigError(f"input_layer {self.input_layer} does not fit a parameter "
                                  f"vector of length {g.size}; derive it from the task's "
                                  "model spec (fl_agent.learning.input_layer)")
        score: Callable[[FloatArray], Values] | None = None
        baseline: Values | None = None
        if evaluate is not None:
            shape: tuple[int, ...] = ()

            def score(params: FloatArray) -> Values:  # evaluate sees the round's dtype
                values = np.asarray(evaluate(params.astype(rnd.dtype)), dtype=np.float64)
                if shape and values.shape != shape:
                    raise ConfigError(f"evaluate returned {values.shape} scores for one model "
                                      f"and {shape} for the current global model")
                return values

            baseline = score(g)
            if baseline.ndim != 1 or baseline.size < _MIN_EXAMPLES:
                raise ConfigError(
                    "FairFL's gate needs one score per validation example (an array of at "
                    f"least {_MIN_EXAMPLES}, whose mean is the score), got shape "
                    f"{baseline.shape}; see fl_agent.learning.gate_scores")
            shape = baseline.shape
            if not np.isfinite(baseline).all():
                raise ConfigError("evaluate returned a non-finite score for the current "
                                  "global model")

        def finish(accepted: list[int], eps: float | None = None,
                   labels: Mapping[int, int] | None = None,
                   reference: Mapping[int, float] | None = None,
                   order: tuple[tuple[int, ...], ...] = (),
                   gate: tuple[GateStep, ...] = (),
                   dropped: tuple[int, ...] = (),
                   rescued: tuple[int, ...] = ()) -> FairFLReport:
            if accepted:  # fairfl_combine on the deltas and norms of step 1, not copied
                rows = np.searchsorted(valid, accepted)
                new = g + clipped_mean(deltas, norms[rows], rnd.num_samples[accepted],
                                       self.clip_ratio, rows)
                sims = cosine_to(deltas, new - g, norms)[rows]
            else:
                new, sims = g.copy(), np.zeros(0)
            result = rnd.result(new, accepted, dict(zip(accepted, sims.tolist(), strict=True)),
                                reasons)
            if gate:
                measured["gate"] = [{"members": list(step.members), "kept": list(step.kept),
                                     "value": step.value} for step in gate]
                measured.update(dropped=list(dropped), rescued=list(rescued))
            result = dataclasses.replace(result, figures=MappingProxyType(measured))
            return FairFLReport(result, eps, MappingProxyType(dict(labels or {})),
                                MappingProxyType(dict(reference or {})), order, gate,
                                dropped, rescued,
                                None if baseline is None else float(baseline.mean()),
                                MappingProxyType(excess_by_index))

        # 1. Norm screening, then clipping to clip_ratio times the median norm.
        # The usable deltas, read a row or a block at a time, never copied whole; the
        # similarities of step 2 come from their Gram matrix (made here unless the caller
        # made it already).
        deltas = rnd.deltas()
        gram = rnd.delta_gram()
        norms = row_norms(deltas)
        free_rider, outlier, _ = norm_screen(deltas, float(np.linalg.norm(g)),
                                             self.free_rider_ratio, self.max_norm_ratio, norms)
        reasons.update({int(i): Reason.FREE_RIDER for i in valid[free_rider]})
        reasons.update({int(i): Reason.NORM_OUTLIER for i in valid[outlier]})
        measured.update(indices=valid.tolist(), norms=norms.tolist(),
                        unchanged_below=unchanged_below(float(np.linalg.norm(g))))
        keep = ~free_rider & ~outlier

        # 1b. Trigger screen: an input-layer change piled on a few input features.
        if (self.input_layer is not None and self.trigger_share > 0
                and int(keep.sum()) >= self.min_samples):
            offset, units, features = self.input_layer  # only the input layer is copied
            width = offset + units * features
            block = deltas[keep, :width]
            excess = trigger_excess(block, self.input_layer)
            measured["trigger"] = {"indices": valid[keep].tolist()}
            if self.trigger_rounds > 1 and rnd.earlier is not None:
                # The update plus what its sender sent in its earlier rounds of the window;
                # an update is screened on the larger of the two, so that no earlier round
                # can hide a pile in this one.
                if rnd.earlier.shape[1] < width:
                    raise ConfigError(f"earlier holds {rnd.earlier.shape[1]} values per "
                                      f"update; the trigger screen reads {width}")
                summed = trigger_excess(block + rnd.earlier[valid[keep], :width],
                                        self.input_layer)
                measured["trigger"].update(rounds=self.trigger_rounds, alone=excess.tolist(),
                                           summed=summed.tolist())
                excess = np.maximum(excess, summed)
            excess_by_index.update(_by_index(valid[keep], excess))
            measured["trigger"]["excess"] = excess.tolist()
            piled = np.zeros_like(keep)
            piled[np.flatnonzero(keep)] = excess >= self.trigger_share
            reasons.update({int(i): Reason.TRIGGER for i in valid[piled]})
            keep &= ~piled
        candidates = valid[keep]
        if candidates.size == 0:
            return finish([])
        # The candidates' deltas are clipped by a factor each, never copied: clipping keeps a
        # delta's direction, so only the median and the sums below read the factors.
        rows = np.flatnonzero(keep)  # the candidates' rows of deltas and of the Gram matrix
        clipping = clip_factors(norms[rows], self.clip_ratio * float(np.median(norms[rows])))

        # 2. Similarities: pairwise, and to the global model's (median) direction.
        similarity = gram_cosines(gram, rows)
        # With copies_once, a group of exact copies (rounds.close_groups, from the cosines an
        # audit reads too) is one row of the median and one value of the medians and spread
        # of steps 4 and 5.
        groups = close_groups(similarity, EXACT_COPIES) if self.copies_once \
            else np.full(rows.size, -1, dtype=np.intp)
        voters = first_of_groups(groups, np.arange(rows.size))
        reference_sim = cosine_to(deltas, column_median(deltas, which=rows[voters],
                                                        factors=clipping[voters]),
                                  norms)[rows]
        reference = _by_index(candidates, reference_sim)
        chance = chance_similarity(g.size, self.chance_z)
        if candidates.size > 1 and chance <= _MAX_CHANCE:
            tested = similarity
            if self.noise_rounds > 1 and rnd.earlier is not None:
                # Each candidate's delta plus what its sender sent in its earlier rounds of
                # the window, against the others' sums (only this test reads them).
                if rnd.earlier.shape[1] != g.size:
                    raise ConfigError(f"earlier holds {rnd.earlier.shape[1]} values per "
                                      f"update; the NOISE check over rounds reads all {g.size}")
                summed = deltas[rows] + rnd.earlier[candidates]
                tested = gram_cosines(summed @ summed.T)
                measured["noise"] = {"rounds": self.noise_rounds,
                                     "similarity": tested.tolist()}
            others = tested - 3.0 * np.eye(candidates.size)
            correlated = others.max(axis=1) > chance
        else:
            correlated = np.ones(candidates.size, dtype=bool)
        reasons.update({int(i): Reason.NOISE for i in candidates[~correlated]})
        measured.update(candidates=candidates.tolist(), similarity=similarity.tolist(),
                        reference_similarity=reference_sim.tolist(), chance=chance,
                        noise_checked=bool(candidates.size > 1 and chance <= _MAX_CHANCE))
        pool = np.flatnonzero(correlated)
        if pool.size == 0:
            return finish([], reference=reference)

        # 3. DBSCAN with a data-driven radius.
        pool_similarity = similarity[np.ix_(pool, pool)]
        cap = 1.0 - chance if chance <= _MAX_CHANCE else 2.0
        if self.eps is None:
            eps = data_driven_eps(np.clip(1.0 - pool_similarity, 0.0, 2.0), self.min_samples,
                                  self.eps_scale, cap)
        else:
            eps = min(float(self.eps), cap)
        labels = self.cluster(pool_similarity, eps)
        pool_index = candidates[pool]
        label_map = {int(i): int(lab) for i, lab in zip(pool_index, labels, strict=True)}
        measured.update(pool=pool_index.tolist(), eps=eps, labels=labels.tolist())
        pool_voters = first_of_groups(groups, pool)  # pool's positions that vote
        if self.copies_once:
            measured["voters"] = candidates[pool_voters].tolist()

        # 4. The std test, then the bottom-up merge order.
        dissimilar = similarity_outliers(reference_sim[pool], self.similarity_z, self.min_std,
                                         basis=reference_sim[pool_voters])
        reasons.update({int(i): Reason.DISSIMILAR for i in pool_index[dissimilar]})
        kept = pool[~dissimilar]
        merge_index = candidates[kept]
        at, factors = rows[kept], clipping[kept]  # positions 0..k-1 of the merged deltas
        order = merge_order(gram[np.ix_(at, at)] * np.outer(factors, factors),
                            rnd.num_samples[merge_index], labels[~dissimilar],
                            reference_sim[kept])
        round_order = tuple(tuple(int(merge_index[p]) for p in members) for members, _ in order)
        if score is None or baseline is None:
            return finish(sorted(int(i) for i in merge_index), eps, label_map, reference,
                          round_order)

        # 5. The validation gate.
        median_sim = float(np.median(reference_sim[pool_voters]))
        measured["median_similarity"] = median_sim  # what the gate's slack is scaled by
        slack = gate_tolerances(reference_sim[kept], median_sim, self.tolerance,
                                self.full_tolerance_at, self.min_tolerance)
        scaled_slack = slack  # before the strict rule: what the similarity scaling left
        strict = strict_noise(labels[~dissimilar], reference_sim[kept], median_sim,
                              self.strict_noise_at)
        required = np.zeros(kept.size)
        if strict.any() and self.strict_gain > 0:
            slack, required = strict_requirements(
                strict, deltas, at, factors, rnd.num_samples[merge_index], score, g,
                baseline, slack, self.tolerance, self.strict_gain)
        control = None
        if self.noise_control:  # seeded by the round's model: a rerun draws the same noise
            control = update_noise(deltas, norms[at] * factors)  # of the clipped deltas
            seed = int.from_bytes(hashlib.sha256(g.tobytes()).digest()[:8], "big")
        survivors, steps, dropped, rescued = validation_gate(
            order, deltas, rnd.num_samples[merge_index], score, g, baseline,
            slack, required, control=control, seed=0 if control is None else seed,
            rows=at, factors=factors, draws=SEQUENTIAL_DRAWS if self.sequential else 1)
        if self.sequential and control is not None:  # 5b. the sum over the senders' rounds
            z = noise_evidence(survivors, deltas, rnd.num_samples[merge_index], score, g,
                               control, np.random.default_rng([seed, 1]), SEQUENTIAL_DRAWS,
                               at, factors)
            noisy = np.flatnonzero(np.isfinite(z))
            prior = np.zeros((rnd.n, 2)) if rnd.evidence is None else rnd.evidence
            before = prior[merge_index[noisy]]
            out = set(noisy[self.sequential_verdicts(before[:, 0], before[:, 1],
                                                     z[noisy])].tolist())
            survivors = [p for p in survivors if p not in out]
            measured["sequential"] = [[int(merge_index[p]), float(z[p]), float(b[0]), int(b[1])]
                                      for p, b in zip(noisy, before, strict=True)]
        survived = set(survivors)
        turned = [p for p in range(merge_index.size) if p not in survived]
        held: set[int] = set()
        if self.held_back and turned:  # 5c. scaled slack alone keeps out, does not penalise
            scaled = [p for p in turned if scaled_slack[p] < self.tolerance]
            margins = held_back_margins(scaled, survivors, deltas, at, factors,
                                        rnd.num_samples[merge_index], score, g, baseline,
                                        self.tolerance)
            measured["held_back"] = [[int(merge_index[p]), float(scaled_slack[p]), float(m)]
                                     for p, m in zip(scaled, margins, strict=True)]
            held = {p for p, m in zip(scaled, margins, strict=True) if m >= 0}
        reasons.update({int(merge_index[p]): Reason.HELD_BACK if p in held
                        else Reason.VALIDATION for p in turned})
        gate = tuple(GateStep(tuple(int(merge_index[p]) for p in step.members), step.cluster,
                              tuple(int(merge_index[p]) for p in step.kept), step.value)
                     for step in steps)
        return finish(sorted(int(merge_index[p]) for p in survivors), eps, label_map, reference,
                      round_order, gate, tuple(int(merge_index[p]) for p in dropped),
                      tuple(int(merge_index[p]) for p in rescued))


def _by_index(indices: NDArray[np.intp], values: FloatArray) -> dict[int, float]:
    return {int(i): float(v) for i, v in zip(indices, values, strict=True)}


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")


__all__ = [
    "FairFL",
    "FairFLReport",
    "GateStep",
    "Unit",
    "chance_similarity",
    "data_driven_eps",
    "dbscan_labels",
    "fairfl_combine",
    "gate_tolerances",
    "input_feature_shares",
    "merge_order",
    "norm_screen",
    "similarity_outliers",
    "strict_noise",
    "strict_requirements",
    "trigger_excess",
    "validation_gate",
]
