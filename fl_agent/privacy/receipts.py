"""The aggregator's check of an update's privacy receipt against the task's plan.

Every update of a task with a privacy plan names a public receipt in ``submitUpdate``'s
``privacyCid`` (:class:`~fl_agent.privacy.plan.PrivacyReceipt`). :func:`check_receipt` refuses
an update whose receipt is missing, malformed, about another task, round or sender, or
disagrees with the plan or with the update the aggregator decoded:

* any mode: the receipt's ``mode`` is the plan's, and ``update_bytes`` is the size of the
  update as opened;
* example-level dp: an ε record (``epsilon_spent``, finite and positive) that does not exceed
  the task's budget, for the task's δ, by RDP or PRV (either bounds ε; a participant's saved
  budget may predate the plan's accountant), with a positive noise multiplier, a sample rate
  in (0, 1] and at least one step;
* prune: ``kept`` and ``length`` are the entries the decoded sparse update really holds and
  the model's size (the density limit itself is checked on the update,
  :func:`fl_agent.privacy.sparse.decode_for_plan`);
* he: the fingerprint is the task's CKKS context.

:func:`check_history` then holds an example-level dp receipt against what the chain shows
of its sender's task (the samples it claims, the same in every round; the steps the
rounds' workloads assigned it) and against its receipts of the task's earlier rounds: the
sample rate its claim gives, the same noise multiplier, at least the steps assigned, an ε
above theirs and at least what its own DP-SGD records in the task compose to.

In a plain example-level dp task (no pruning, HE or watermark) that asks for it
(``DPPlan.length_check``, ``--dp-length-check``; off by default, rule R44 in
docs/privacy-dp.md), :func:`check_update_length` then holds the opened update against its
receipt:

* its noise multiplier spends the task's budget over the task's rounds (a participant
  calibrates it so, :mod:`fl_agent.privacy.local`; more noise would only buy room);
* its length lies in the band DP-SGD with that noise, rate, the round's steps and the task's
  learning rate, momentum and clip can give (:func:`fl_agent.privacy.dp_length.length_band`):
  a scaled poisoned update is longer, one whose reported noise was not added shorter.

What the check cannot do: a receipt is the participant's own statement. The aggregator sees
that it is complete and consistent with the plan and the update, not that DP-SGD really
added the noise it reports: noise in an update cannot be told from signal, and the length
check sees only a length (noise of the right length from a seed the sender keeps passes it).
A participant that lies about its ε lies in public, on a record signed by its account.

Pure (bytes in, a receipt or :class:`ReceiptError` out); the agents fetch the receipt.
Hand-written: the rules are the task's own.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence

from fl_agent.errors import ConfigError, FairFLError
from fl_agent.privacy.plan import DPPlan, PrivacyPlan, PrivacyReceipt

#: The accountants whose ε a receipt may report (Opacus's; both give upper bounds).
ACCOUNTANTS = ("rdp", "prv")
#: A receipt is a few hundred bytes; anything much larger is not one (refused unparsed).
MAX_RECEIPT_BYTES = 64 * 1024
#: How far below the composition of its own records a receipt's ε may be (the accountant
#: run on another machine may differ in its last digits).
COMPOSITION_RTOL = 1e-6
#: How far below the task's ε the noise a receipt reports may spend over the whole task:
#: twice the calibration's tolerance (``noise_for_budget`` lands within 0.01 of the target).
BUDGET_SLACK = 0.02


class ReceiptError(FairFLError, ValueError):
    """An update's privacy receipt is missing, malformed or disagrees with the task."""


def check_receipt(data: bytes | None, plan: PrivacyPlan, *, task: int, round_number: int,
                  participant: str, update_bytes: int | None, kept: int | None = None,
                  length: int | None = None) -> PrivacyReceipt:
    """The receipt in ``data`` (None: the submission named none), checked as the module
    docstring says against ``plan`` and the submission (``kept`` and ``length``: the entries
    of the decoded sparse update and the model's size, for a task that prunes). Whoever
    cannot open the update (anyone but the aggregator: an audit) passes ``update_bytes`` and
    ``kept`` as None, and what depends on them is not checked. Raises :class:`ReceiptError`
    saying what is wrong."""
    mode = plan.mode().label()
    if not data:
        raise ReceiptError(f"submitted without a privacy receipt: every update of a {mode} "
                           "task names one in privacyCid (the participant agent does)")
    if len(data) > MAX_RECEIPT_BYTES:
        raise ReceiptError(f"its privacy receipt is {len(data):,} bytes; a receipt is at most "
                           f"{MAX_RECEIPT_BYTES:,}")
    try:
        receipt = PrivacyReceipt.from_json(data)
    except ConfigError as err:
        raise ReceiptError(f"its privacy receipt is malformed: {err}") from err
    where = (receipt.task, receipt.round, receipt.participant.lower())
    if where != (task, round_number, participant.lower()):
        raise ReceiptError(
            f"its privacy receipt is for task {receipt.task}, round {receipt.round}, sender "
            f"{receipt.participant}, not task {task}, round {round_number}, sender "
            f"{participant.lower()}")
    if receipt.mode != mode:
        raise ReceiptError(f"its privacy receipt says mode {receipt.mode!r}; the task's is "
                           f"{mode!r}")
    if update_bytes is not None and receipt.update_bytes != update_bytes:
        raise ReceiptError(f"its privacy receipt says the update is {receipt.update_bytes:,} "
                           f"bytes; it is {update_bytes:,}")
    if plan.dp is not None and plan.dp.level == "example":
        _check_epsilon(receipt, plan.dp)
    if plan.prune is not None and kept is not None \
            and (receipt.kept, receipt.length) != (kept, length):
        raise ReceiptError(f"its privacy receipt says {receipt.kept} of {receipt.length} "
                           f"entries were sent; the update holds {kept} of {length}")
    if plan.he is not None and receipt.he_fingerprint != plan.he.fingerprint:
        raise ReceiptError(f"its privacy receipt names CKKS context {receipt.he_fingerprint}, "
                           f"not the task's {plan.he.fingerprint}")
    return receipt


def _check_epsilon(receipt: PrivacyReceipt, dp: DPPlan) -> None:
    spent = receipt.epsilon_spent
    if spent is None:
        raise ReceiptError("its privacy receipt has no ε record (epsilon_spent): a dp task's "
                           "updates say how much of the budget their sender has spent")
    if not math.isfinite(spent) or spent <= 0:
        raise ReceiptError(f"its privacy receipt records ε = {spent}, not a positive number")
    if spent > dp.epsilon:
        raise ReceiptError(f"its privacy receipt records ε = {spent:.4g} spent, above the "
                           f"task's budget of {dp.epsilon:g}: a participant stops submitting "
                           "before it would exceed the budget")
    # Either accountant's ε is an upper bound, so a budget holds under either: a participant
    # whose saved budget predates the plan's accountant keeps its own (fl_agent.privacy.local).
    if receipt.delta != dp.delta or receipt.accountant not in ACCOUNTANTS:
        raise ReceiptError(f"its privacy receipt accounts with δ = {receipt.delta} by "
                           f"{receipt.accountant!r}; the task's budget is for δ = {dp.delta}, "
                           f"by one of {', '.join(ACCOUNTANTS)}")
    sigma, rate, steps = receipt.noise_multiplier, receipt.sample_rate, receipt.steps
    if sigma is None or not (math.isfinite(sigma) and sigma > 0) or rate is None \
            or not (math.isfinite(rate) and 0 < rate <= 1) or steps is None or steps < 1:
        raise ReceiptError(f"its privacy receipt's DP-SGD record is incomplete: noise "
                           f"multiplier {sigma}, sample rate {rate}, steps {steps}")


def composed_epsilon(receipts: Sequence[PrivacyReceipt], delta: float,
                     accountant: str) -> float:
    """The ε that the DP-SGD records of ``receipts`` compose to at ``delta`` by
    ``accountant``. A receipt's ``steps`` counts every step its sender has taken at that
    noise multiplier and sample rate so far (its budget's last entry, which grows round by
    round), so each pair counts with the most steps any of the receipts reports."""
    from fl_agent.privacy.accounting import PrivacyStep, epsilon_spent

    steps: dict[tuple[float, float], int] = {}
    for r in receipts:
        if r.noise_multiplier is not None and r.sample_rate is not None and r.steps:
            pair = (r.noise_multiplier, r.sample_rate)
            steps[pair] = max(steps.get(pair, 0), r.steps)
    return epsilon_spent([PrivacyStep.build(sigma, rate, n) for (sigma, rate), n
                          in steps.items()], delta, accountant)


def read_receipt(data: bytes) -> PrivacyReceipt | None:
    """An earlier round's receipt from its bytes, or None if it is not one (too large or
    malformed: its own round refused it)."""
    if len(data) > MAX_RECEIPT_BYTES:
        return None
    try:
        return PrivacyReceipt.from_json(data)
    except ConfigError:
        return None


def check_history(receipt: PrivacyReceipt, earlier: Sequence[PrivacyReceipt], *,
                  claimed: int | None = None, batch_size: int | None = None,
                  earlier_claims: Sequence[int] = (), steps_floor: int | None = None) -> None:
    """In an example-level dp task, ``receipt`` (checked by :func:`check_receipt`) against
    what the chain shows of its sender's task and against ``earlier``, its sender's receipts
    of the task's earlier rounds (any that could be read):

    * the sender claims the same number of samples in every round (``claimed`` now,
      ``earlier_claims`` before: its data does not change within a task), at least one;
    * its sample rate is ``min(batch_size, claimed) / claimed``, what DP-SGD samples at;
    * its noise multiplier is the one of its earlier receipts (a participant calibrates it
      once per task);
    * its step count (at that noise and rate) is at least ``steps_floor``: the steps the
      workloads of the rounds it submitted in assigned it, each at most the task's base
      steps, which is what DP-SGD runs; a count kept still, or a history hidden by no
      longer serving old receipts, falls below it;
    * its ε is above every earlier one: each round of DP-SGD spends more, so a sender whose
      ε falls or stands has restarted its budget;
    * its ε is at least what its own DP-SGD records in this task (these receipts' noise,
      sample rates and steps, :func:`composed_epsilon`) compose to, by its accountant at its
      δ: a sender may carry a budget from other tasks, so more is fine; less understates
      what it spent.

    Raises :class:`ReceiptError` saying which. What it cannot see: a sender that lies about
    its data size from the first round on, in ``numSamples`` and its rate alike (which also
    raises its weight and pay: docs/fairness.md)."""
    spent = receipt.epsilon_spent
    if spent is None or receipt.accountant not in ACCOUNTANTS:
        return  # check_receipt refuses these
    rate, sigma = receipt.sample_rate, receipt.noise_multiplier
    if claimed is not None:
        if claimed < 1:
            raise ReceiptError(f"its submission claims {claimed} samples; DP-SGD samples at "
                               "min(batch, n) / n of at least one")
        changed = sorted({c for c in earlier_claims if c != claimed})
        if changed:
            raise ReceiptError(f"its submission claims {claimed} samples, its earlier ones "
                               f"{', '.join(map(str, changed))}: a participant's data, and "
                               "its DP sample rate, stay the same within a task")
        if batch_size is not None:
            expected = min(batch_size, claimed) / claimed
            if not math.isclose(rate, expected, rel_tol=1e-9):
                raise ReceiptError(f"its privacy receipt's sample rate is {rate:.6g}; batches "
                                   f"of {batch_size} from its {claimed} claimed samples give "
                                   f"{expected:.6g}")
    before = [r for r in earlier if r.round < receipt.round and r.epsilon_spent is not None]
    other = sorted({r.noise_multiplier for r in before if r.noise_multiplier != sigma})
    if other:
        raise ReceiptError(f"its privacy receipt's noise multiplier is {sigma:.6g}, its earlier "
                           f"ones' {', '.join(f'{x:.6g}' for x in other)}: a participant "
                           "calibrates it once per task")
    if steps_floor is not None and receipt.steps < steps_floor:
        raise ReceiptError(
            f"its privacy receipt counts {receipt.steps} DP-SGD steps; the rounds it submitted "
            f"in had it run {steps_floor}")
    if before:
        last_spent = max(before, key=lambda r: r.epsilon_spent)
        if spent <= last_spent.epsilon_spent:
            raise ReceiptError(
                f"its privacy receipt records ε = {spent:.6g}, no more than the "
                f"{last_spent.epsilon_spent:.6g} its receipt of round {last_spent.round} "
                "recorded: every round of DP-SGD spends more, so a sender's ε only grows")
    with _numbers_checked():
        floor = composed_epsilon([*before, receipt], receipt.delta, receipt.accountant)
    if spent < floor * (1 - COMPOSITION_RTOL):
        raise ReceiptError(
            f"its privacy receipt records ε = {spent:.4g}, but its DP-SGD records in this "
            f"task (this receipt and {len(before)} before it) compose to ε = {floor:.4g} by "
            f"{receipt.accountant}: it understates what its sender spent")


def length_checked(plan: PrivacyPlan | None) -> bool:
    """Whether :func:`check_update_length` applies to ``plan``'s updates: the task asked for
    it (:attr:`~fl_agent.privacy.plan.DPPlan.length_check`, off by default) at example level
    without pruning (error feedback carries earlier rounds' residual), HE (the aggregator
    cannot see the update) or a watermark (its hinge is not clipped)."""
    return (plan is not None and plan.dp is not None and plan.dp.level == "example"
            and plan.dp.length_check and plan.prune is None and plan.he is None
            and plan.watermark is None)


def check_update_length(receipt: PrivacyReceipt, length: float, *, dp: DPPlan, rounds: int,
                        base_steps: int, steps: int, lr: float, momentum: float,
                        claimed: int, params: int) -> None:
    """Refuses an update (``length``: its delta's L2 norm, ``params`` entries) that its
    receipt, checked by :func:`check_receipt` and :func:`check_history`, does not describe:

    * the receipt's noise multiplier at its sample rate over the task's ``rounds`` ×
      ``base_steps`` spends less than the task's ε minus :data:`BUDGET_SLACK` by both
      accountants (every participant calibrates its noise to spend the budget, by PRV or,
      where PRV's range ends or its saved budget says so, by RDP, whose ε is the larger; a
      larger noise would widen the band below);
    * ``length`` lies outside :func:`~fl_agent.privacy.dp_length.length_band` for this round's
      ``steps`` at the task's ``lr``, ``momentum`` and clip on ``claimed`` samples.

    Raises :class:`ReceiptError` saying which, also for numbers no accountant or quantile
    can take."""
    from fl_agent.privacy.dp_length import TAIL, length_band

    sigma, rate = receipt.noise_multiplier, receipt.sample_rate
    if sigma is None or rate is None or receipt.accountant not in ACCOUNTANTS:
        raise ReceiptError("its privacy receipt's DP-SGD record is incomplete")  # see above
    with _numbers_checked():
        spends = max(_task_epsilon(sigma, rate, rounds * base_steps, dp.delta, accountant)
                     for accountant in ACCOUNTANTS)
        band = length_band(params=params, steps=steps, lr=lr, momentum=momentum,
                           clip=dp.clip, noise_multiplier=sigma, sample_rate=rate,
                           samples=claimed)
    if spends < dp.epsilon - BUDGET_SLACK:
        raise ReceiptError(
            f"its privacy receipt's noise multiplier {sigma:.6g} at rate {rate:.6g} would spend "
            f"only ε = {spends:.4g} of the task's {dp.epsilon:g} over its {rounds} rounds of "
            f"{base_steps} steps: a participant calibrates its noise to spend the budget "
            "(fl_agent.privacy.local), and more noise than that would excuse a longer update")
    if not band.holds(length):
        raise ReceiptError(
            f"its update is {length:.4g} long; DP-SGD with its receipt's noise (σ {sigma:.4g}, "
            f"rate {rate:.4g}, {steps} steps at lr {lr:g}, clip {dp.clip:g}) gives "
            f"{band.low:.4g} to {band.high:.4g} (outside that with probability below "
            f"{3 * TAIL:.0e}): the update is not what its receipt describes, "
            + ("longer: scaled" if length > band.high else "shorter: its noise was not added"))


@contextlib.contextmanager
def _numbers_checked() -> Iterator[None]:
    """Arithmetic on a receipt's numbers that fails (an overflow, a division by zero, a
    count no quantile takes) as the receipt's fault: a :class:`ReceiptError`, so that the
    aggregator refuses that update and judges the others."""
    try:
        yield
    except ReceiptError:
        raise
    except (ConfigError, ArithmeticError, TypeError, ValueError) as err:
        raise ReceiptError(f"its privacy receipt's numbers cannot be checked "
                           f"({type(err).__name__}: {err})") from err


@functools.lru_cache(maxsize=1024)
def _task_epsilon(sigma: float, rate: float, steps: int, delta: float, accountant: str) -> float:
    """ε of ``steps`` steps at ``sigma`` and ``rate`` (cached: the same for every round of a
    sender, and PRV takes about 0.3 s)."""
    from fl_agent.privacy.accounting import PrivacyStep, epsilon_spent

    return epsilon_spent([PrivacyStep.build(sigma, rate, steps)], delta, accountant)


__all__ = ["ACCOUNTANTS", "BUDGET_SLACK", "COMPOSITION_RTOL", "MAX_RECEIPT_BYTES",
           "ReceiptError", "check_history", "check_receipt", "check_update_length",
           "composed_epsilon", "length_checked", "read_receipt"]
