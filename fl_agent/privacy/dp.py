"""Differential privacy as pure computation: DP-SGD local training (example level), a privacy
budget each participant carries across rounds, and DP-FedAvg at the aggregator (participant
level).

Two guarantees, for two different units of privacy:

* **Example level**, :func:`train_local_dp`: DP-SGD (Abadi et al., 2016) on the participant's
  own device. Each of the ``steps`` steps draws a Poisson sample of the local data (each of
  the ``n`` examples independently, with probability ``q = min(batch_size, n) / n``), clips
  every example's gradient to L2 norm ``max_grad_norm`` (``C``), sums them, adds
  ``N(0, (noise_multiplier * C)**2)`` to every coordinate and divides by the expected batch
  ``q * n``. The submitted update is then (ε, δ)-DP with respect to adding or removing one of
  the participant's examples, with ε from its :class:`PrivacyBudget`. Whoever sees the update
  (the aggregator, a data buyer, anyone who reads the global model) sees post-processing of
  it. Poisson sampling is what the RDP and PRV accountants assume, so it is used here, not
  the shuffled batches of :func:`~fl_agent.learning.training.train_local`.
* **Participant level**, :func:`dp_fedavg`: DP-FedAvg (McMahan et al., 2018, "Learning
  differentially private recurrent language models"). The aggregator clips each update's
  delta to ``clip_norm`` (``C``), sums the clipped deltas, adds ``N(0, (noise_multiplier *
  C)**2)`` per coordinate and divides by the number of updates ``n``: a uniform average with
  noise of standard deviation ``noise_multiplier * C / n``. Replacing one participant's
  update by the zero update moves the sum by at most ``C``, so the global model is DP with
  respect to everything a participant's data did to it (zero-out adjacency, Kairouz et al.,
  2021); ``n`` is public, since every submission is on chain, and so is *whether* someone
  took part, which no noise here hides. The guarantee holds towards those who see the
  global model, not towards the aggregator, which sees the raw updates. Uniform weights,
  because with sample-count weights one participant's influence would be ``C * w_i /
  sum(w)``: the sensitivity would grow with the largest claim (claims are unverifiable, see
  :mod:`fl_agent.aggregation.rounds`), and the weights, how much data each participant
  holds, would be one more thing the noise must hide.

``gradient_hook(step, parameters)`` is called after the private gradient is formed (clipped,
summed, noised, divided) and before the optimizer step, with each ``parameter.grad`` holding
it. A hook that adds a term which does not depend on the training data, such as the
watermark of :func:`fl_agent.privacy.watermark.embed_hook`, is post-processing of a private
quantity and costs no privacy; a hook that reads the data would void the guarantee.

Accounting. :class:`PrivacyBudget` is a small JSON record a participant keeps across rounds
and tasks: target ε, δ, the accountant (Opacus's ``"rdp"`` or ``"prv"``), what one unit of
privacy is (``"example"`` or ``"participant"``) and the history of ``(noise_multiplier,
sample_rate, steps)`` it has spent. :meth:`PrivacyBudget.spent` asks the accountant for ε
over that history; :meth:`PrivacyBudget.would_exceed` tells a participant, before it trains,
that one more round would take it past its target, so it stops submitting.
:func:`noise_for_budget` calibrates the noise multiplier so that a task's ``R`` rounds of
``S`` steps spend exactly the budget (to Opacus's search tolerance). For DP-FedAvg the same
record, with ``unit="participant"``, holds one step per round at sample rate
``participants / members`` (:meth:`DPFedAvgInfo.privacy_step`).

What is Opacus's: per-example gradients (``GradSampleModule``), per-example clipping, the sum,
the noise and the division (``DPOptimizer.pre_step``, after which ``gradient_hook`` runs),
the Poisson sampler (``UniformWithReplacementSampler``), the accountants
(``RDPAccountant``, ``PRVAccountant``) and the noise calibration (``get_noise_multiplier``).
Written here, and why:

* the loop: like :func:`~fl_agent.learning.training.train_local` it runs exactly ``steps``
  steps from a flat vector. ``PrivacyEngine.make_private`` is not used because it sets the
  sample rate to ``1 / len(data_loader)`` (for 58 examples and batches of 32: 1/2, not
  32/58) and its Poisson loader draws from torch's global generator unless ``secure_mode``,
  so a seeded run would need global state;
* the budget record: Opacus's accountants keep their history in an object not meant to be
  stored; the record keeps the same ``(σ, q, steps)`` triples in a pydantic model and gives
  them to a fresh accountant each time;
* DP-FedAvg: clipping and Gaussian noise on flat update vectors are a few lines of numpy (as
  in Flower's ``common/differential_privacy.py``); Opacus works on per-example gradients
  inside one model, not on participants' updates.

Limits. ``seed`` makes runs reproducible, but noise from a generator whose seed an attacker
can guess can be subtracted: a 32-bit seed can be searched. In deployment pass ``seed=None``
(64 bits from :mod:`secrets` per generator). Opacus's ``secure_mode`` (a CSPRNG, and noise
robust to floating-point attacks on Gaussian sampling) needs ``torchcsprng``, which is not a
dependency. The accountants assume that the sample rate and noise are fixed in advance, not
chosen after looking at the data. :meth:`DPFedAvgInfo.privacy_step`'s rate
``participants / members`` amplifies privacy only if the members who take part are drawn at
random (Poisson) by something they do not control; participants who choose to take part are
not a sample, and then ``members`` should be the participants (rate 1, no amplification). What
the robust rules of :mod:`fl_agent.aggregation` do with noisy updates is measured in
``docs/privacy-dp.md``.
"""

from __future__ import annotations

import math
import secrets
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from opacus import GradSampleModule
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from fl_agent.aggregation.base import clip_norms, prepare_round, row_norms
from fl_agent.errors import ConfigError
from fl_agent.learning.models import (
    ModelSpec,
    check_seed,
    check_vector,
    model_from_vector,
    param_count,
    params_to_vector,
)
from fl_agent.learning.training import GradientHook, TrainResult, as_model_input

__all__ = ["ACCOUNTANTS", "PRV_RANGE", "AccountantKind", "DPFedAvgInfo", "DPSGDSettings",
           "DPTrainResult", "PrivacyBudget", "PrivacyStep", "PrivacyUnit", "dp_fedavg",
           "epsilon_spent", "noise_for_budget", "train_local_dp"]

AccountantKind = Literal["rdp", "prv"]
PrivacyUnit = Literal["example", "participant"]

#: The accountants a budget may name (Opacus's; its ``"gdp"`` is only asymptotic).
ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")

#: Beyond this ε (by RDP), a ``"prv"`` budget reports the RDP bound: Opacus's PRV
#: accountant discretises the privacy loss on a grid that grows with ε (for σ = 0.3, q = 1
#: and 1000 steps it ran for minutes; with less noise it asks for terabytes), and any budget
#: is long spent there. The RDP value is a valid upper bound.
PRV_RANGE = 64.0

Finite = Annotated[float, Field(allow_inf_nan=False)]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _config_error(what: str, err: ValidationError) -> ConfigError:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                         for e in err.errors())
    return ConfigError(f"invalid {what}: {problems}")


# ------------------------------------------------------------------------------- accounting


class PrivacyStep(BaseModel):
    """``steps`` applications of the sampled Gaussian mechanism at one noise and sample rate
    (an entry of Opacus's accountant history)."""

    model_config = _FROZEN

    noise_multiplier: Finite = Field(ge=0)  # 0: no noise, no privacy (ε is infinite)
    sample_rate: Finite = Field(gt=0, le=1)
    steps: int = Field(strict=True, ge=1)

    @classmethod
    def build(cls, noise_multiplier: float, sample_rate: float, steps: int) -> PrivacyStep:
        try:
            return cls(noise_multiplier=noise_multiplier, sample_rate=sample_rate,
                       steps=int(steps) if isinstance(steps, np.integer) else steps)
        except ValidationError as err:
            raise _config_error("privacy step", err) from err


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise ConfigError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, "
                          f"got {accountant!r}")


def _check_delta(delta: float) -> None:
    if isinstance(delta, bool) or not isinstance(delta, int | float | np.floating) \
            or not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta!r}")


def epsilon_spent(history: Sequence[PrivacyStep], delta: float,
                  accountant: AccountantKind = "rdp") -> float:
    """ε after ``history`` at ``delta``, by Opacus's ``accountant``: 0 for no history,
    infinite if any step had no noise, the RDP bound above :data:`PRV_RANGE`."""
    _check_accountant(accountant)
    _check_delta(delta)
    if not history:
        return 0.0
    if any(step.noise_multiplier == 0 for step in history):
        return math.inf
    entries = [(s.noise_multiplier, s.sample_rate, s.steps) for s in history]
    bound = _epsilon("rdp", entries, delta)
    if accountant == "rdp" or bound > PRV_RANGE:
        return bound
    return _epsilon("prv", entries, delta)


def _epsilon(accountant: str, entries: list[tuple[float, float, int]], delta: float) -> float:
    counter = create_accountant(mechanism=accountant)
    counter.history = entries
    with _quiet_accountant():
        return float(counter.get_epsilon(delta=delta))


@contextmanager
def _quiet_accountant() -> Iterator[None]:
    """Opacus's warnings that say nothing about the answer, silenced:

    * "Optimal order is the largest/smallest alpha": a bisection tries noise far from the
      answer, where RDP's best order is at the end of Opacus's range; only the final ε
      matters;
    * numpy's "divide by zero encountered in log" from PRV at a sample rate of 1 (DP-FedAvg
      over every member): it computes the threshold ``log(1 - q)``, which is ``-inf`` there,
      and the comparison with it still gives the right mask.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        warnings.filterwarnings("ignore", message="divide by zero encountered in log",
                                category=RuntimeWarning,
                                module=r"opacus\.accountants\.analysis\.prv\.prvs")
        yield


def noise_for_budget(target_epsilon: float, delta: float, sample_rate: float, total_steps: int,
                     accountant: AccountantKind = "rdp", *,
                     epsilon_tolerance: float = 0.01) -> float:
    """The noise multiplier with which ``total_steps`` steps at ``sample_rate`` spend
    ``target_epsilon`` at ``delta``: ε lands in ``[target - epsilon_tolerance, target]``
    (Opacus's ``get_noise_multiplier``, a bisection on the accountant). For a task of ``R``
    rounds of ``S`` local steps, ``total_steps = R * S``."""
    _check_accountant(accountant)
    _check_delta(delta)
    PrivacyStep.build(1.0, sample_rate, total_steps)  # checks the rate and the step count
    for name, value in (("target_epsilon", target_epsilon),
                        ("epsilon_tolerance", epsilon_tolerance)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating) \
                or not 0 < value < math.inf:
            raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    if epsilon_tolerance >= target_epsilon:
        raise ConfigError(f"epsilon_tolerance ({epsilon_tolerance}) must be below "
                          f"target_epsilon ({target_epsilon})")
    if accountant == "prv":
        # epsilon_spent reports the RDP bound where RDP exceeds PRV_RANGE, so the noise must
        # be calibrated by the rule that will check it: by PRV unless that noise is in the
        # RDP range, then by RDP (calibrating PRV there would also take minutes and GBs).
        if target_epsilon <= PRV_RANGE:
            sigma = _noise_for(target_epsilon, delta, sample_rate, total_steps, "prv",
                               epsilon_tolerance)
            step = PrivacyStep.build(sigma, sample_rate, total_steps)
            if epsilon_spent([step], delta, "prv") <= target_epsilon:
                return sigma
        return _noise_for(target_epsilon, delta, sample_rate, total_steps, "rdp",
                          epsilon_tolerance)
    return _noise_for(target_epsilon, delta, sample_rate, total_steps, accountant,
                      epsilon_tolerance)


def _noise_for(target_epsilon: float, delta: float, sample_rate: float, total_steps: int,
               accountant: str, epsilon_tolerance: float) -> float:
    try:
        with _quiet_accountant():
            return float(get_noise_multiplier(target_epsilon=float(target_epsilon),
                                              target_delta=float(delta),
                                              sample_rate=float(sample_rate),
                                              steps=int(total_steps), accountant=accountant,
                                              epsilon_tolerance=float(epsilon_tolerance)))
    except ValueError as err:  # "The privacy budget is too low."
        raise ConfigError(f"no noise multiplier reaches ε={target_epsilon} at δ={delta} "
                          f"with {total_steps} steps at rate {sample_rate}: {err}") from err


class PrivacyBudget(BaseModel):
    """One participant's (or, for DP-FedAvg, one federation's) privacy budget and what it has
    spent: a frozen, JSON-serialisable record; :meth:`record` returns the updated copy."""

    model_config = _FROZEN

    target_epsilon: Finite = Field(gt=0)
    delta: Finite = Field(gt=0, lt=1)
    accountant: AccountantKind = "rdp"
    unit: PrivacyUnit = "example"
    history: tuple[PrivacyStep, ...] = ()

    @classmethod
    def build(cls, target_epsilon: float, delta: float, accountant: str = "rdp",
              unit: str = "example") -> PrivacyBudget:
        """A fresh budget; a bad value raises :class:`ConfigError`."""
        try:
            return cls(target_epsilon=target_epsilon, delta=delta, accountant=accountant,
                       unit=unit)
        except ValidationError as err:
            raise _config_error("privacy budget", err) from err

    def spent(self, delta: float | None = None) -> float:
        """ε spent so far at ``delta`` (default: the budget's)."""
        return epsilon_spent(self.history, self.delta if delta is None else delta,
                             self.accountant)

    def remaining(self) -> float:
        """``target_epsilon`` minus what is spent at the budget's δ (negative if over)."""
        return self.target_epsilon - self.spent()

    def record(self, noise_multiplier: float, sample_rate: float, steps: int) -> PrivacyBudget:
        """The budget after ``steps`` more steps; a step equal in noise and rate to the last
        one extends it, so a task's rounds make one entry."""
        step = PrivacyStep.build(noise_multiplier, sample_rate, steps)
        history = list(self.history)
        if history and (history[-1].noise_multiplier, history[-1].sample_rate) == \
                (step.noise_multiplier, step.sample_rate):
            step = step.model_copy(update={"steps": history.pop().steps + step.steps})
        return self.model_copy(update={"history": (*history, step)})

    def record_step(self, step: PrivacyStep) -> PrivacyBudget:
        """:meth:`record` for a :class:`PrivacyStep` (e.g. ``DPTrainResult.privacy``)."""
        return self.record(step.noise_multiplier, step.sample_rate, step.steps)

    def would_exceed(self, noise_multiplier: float, sample_rate: float, steps: int) -> bool:
        """Whether ``steps`` more steps would take the spent ε above the target: the
        participant should then not train or submit."""
        spent = self.record(noise_multiplier, sample_rate, steps).spent()
        return not spent <= self.target_epsilon  # NaN from an accountant: refuse, not allow

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> PrivacyBudget:
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            raise _config_error("privacy budget record", err) from err


# --------------------------------------------------------------------------------- DP-SGD


class DPSGDSettings(BaseModel):
    """DP-SGD's knobs, checked once (``ConfigError`` on a bad value)."""

    model_config = _FROZEN

    batch_size: int = Field(strict=True, ge=1)  # the expected batch (q = batch_size / n)
    lr: Finite = Field(gt=0)
    momentum: Finite = Field(ge=0)
    noise_multiplier: Finite = Field(ge=0)  # 0 clips but gives no privacy
    max_grad_norm: Finite = Field(gt=0)

    @classmethod
    def build(cls, **values: object) -> DPSGDSettings:
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise _config_error("DP-SGD settings", err) from err


@dataclass(frozen=True, eq=False)
class DPTrainResult(TrainResult):
    """A :class:`~fl_agent.learning.training.TrainResult` plus what the run spent:
    ``privacy`` goes into the participant's budget (:meth:`PrivacyBudget.record_step`).
    ``batch_sizes`` are the Poisson batches drawn (their mean is about ``q * n``); ``loss``
    is the mean loss over the non-empty ones."""

    privacy: PrivacyStep
    max_grad_norm: float
    batch_sizes: tuple[int, ...]


def _labels(spec: ModelSpec, y: ArrayLike, n: int) -> torch.Tensor:
    labels = np.asarray(y)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"y must be {n} integer labels, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= spec.num_classes:
        raise ConfigError(f"labels must lie in 0..{spec.num_classes - 1}, "
                          f"got {labels.min()}..{labels.max()}")
    return torch.from_numpy(labels.astype(np.int64))


def _generators(seed: int | None) -> tuple[torch.Generator, torch.Generator]:
    """Independent generators for the sampling and for the noise."""
    if seed is None:
        states = [secrets.randbits(64) for _ in range(2)]
    else:
        states = [int(s) for s in np.random.SeedSequence(check_seed(seed))
                  .generate_state(2, dtype=np.uint64)]
    return torch.Generator().manual_seed(states[0]), torch.Generator().manual_seed(states[1])


def train_local_dp(spec: ModelSpec, global_vector: np.ndarray, X: np.ndarray, y: np.ndarray,
                   steps: int, *, seed: int | None, batch_size: int = 32, lr: float = 0.05,
                   momentum: float = 0.0, noise_multiplier: float, max_grad_norm: float,
                   gradient_hook: GradientHook | None = None) -> DPTrainResult:
    """``steps`` DP-SGD steps on ``(X, y)`` from ``global_vector`` (see the module
    docstring); the same seed gives the same vector on the same torch build and thread
    count. ``seed=None`` draws fresh randomness (what a deployment should do)."""
    if seed is not None:
        seed = check_seed(seed)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    settings = DPSGDSettings.build(batch_size=batch_size, lr=lr, momentum=momentum,
                                   noise_multiplier=noise_multiplier,
                                   max_grad_norm=max_grad_norm)
    inputs = as_model_input(spec, X)
    n = inputs.shape[0]
    if n == 0:
        raise ConfigError("cannot train on an empty dataset")
    labels = _labels(spec, y, n)
    expected_batch = min(settings.batch_size, n)
    sample_rate = expected_batch / n

    model = model_from_vector(spec, check_vector(global_vector, param_count(spec)))
    model.train()
    parameters = list(model.parameters())
    per_example = GradSampleModule(model)  # per-example gradients through module hooks
    sampling, noise = _generators(seed)
    optimizer = DPOptimizer(
        torch.optim.SGD(parameters, lr=settings.lr, momentum=settings.momentum),
        noise_multiplier=settings.noise_multiplier, max_grad_norm=settings.max_grad_norm,
        expected_batch_size=expected_batch, loss_reduction="mean", generator=noise)
    batches = UniformWithReplacementSampler(num_samples=n, sample_rate=sample_rate,
                                            generator=sampling, steps=int(steps))
    loss_fn = nn.CrossEntropyLoss()

    started = time.perf_counter()
    losses, sizes = [], []
    with warnings.catch_warnings():
        # The inputs need no gradient; torch warns that its full backward hooks (Opacus's)
        # then fire on the module outputs, which is what per-example gradients need.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for step, rows in enumerate(batches):
            index = torch.as_tensor(rows, dtype=torch.long)
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(per_example(inputs[index]), labels[index])
            loss.backward()  # an empty batch gives NaN here and no per-example gradient
            optimizer.pre_step()  # clip each example's gradient, sum, add noise, divide
            if gradient_hook is not None:
                gradient_hook(step, parameters)
            optimizer.original_optimizer.step()
            sizes.append(len(rows))
            if rows:
                losses.append(float(loss.detach()))
    millis = round((time.perf_counter() - started) * 1000)
    per_example.to_standard_module()  # removes Opacus's hooks and attributes

    return DPTrainResult(
        vector=params_to_vector(model), num_samples=n, steps=int(steps), train_millis=millis,
        loss=float(np.mean(losses)) if losses else math.nan,
        privacy=PrivacyStep.build(settings.noise_multiplier, sample_rate, int(steps)),
        max_grad_norm=settings.max_grad_norm, batch_sizes=tuple(sizes))


# ------------------------------------------------------------------------------- DP-FedAvg


@dataclass(frozen=True)
class DPFedAvgInfo:
    """What one DP-FedAvg round did: ``norms`` are the deltas' lengths before clipping,
    ``clipped`` the updates that were scaled down, ``noise_std`` the per-coordinate standard
    deviation of the noise on the average (``noise_multiplier * clip_norm / participants``)."""

    participants: int
    clip_norm: float
    noise_multiplier: float
    noise_std: float
    norms: tuple[float, ...]
    clipped: tuple[int, ...]

    def privacy_step(self, members: int) -> PrivacyStep:
        """This round for the participant-level budget: one step at sample rate
        ``participants / members`` (pass ``members=participants`` unless the participants
        were drawn at random; see the module docstring)."""
        if isinstance(members, bool) or not isinstance(members, int | np.integer) \
                or members < self.participants:
            raise ConfigError(f"members must be an integer >= the {self.participants} "
                              f"participants, got {members!r}")
        return PrivacyStep.build(self.noise_multiplier, self.participants / int(members), 1)


def dp_fedavg(global_params: ArrayLike, updates: ArrayLike | Sequence[ArrayLike],
              clip_norm: float, noise_multiplier: float, seed: int | None
              ) -> tuple[NDArray[np.floating], DPFedAvgInfo]:
    """DP-FedAvg's aggregate of full-vector ``updates``: clip every delta to ``clip_norm``,
    average with uniform weights, add ``N(0, (noise_multiplier * clip_norm / n)**2)`` per
    coordinate. The new global model keeps the dtype of ``global_params`` (see
    :mod:`fl_agent.aggregation.base`); a malformed round, or an update holding NaN or Inf
    (screen those before: dropping one here would change ``n``), raises
    :class:`ConfigError`. ``seed=None`` draws fresh noise."""
    for name, value, low_ok in (("clip_norm", clip_norm, False),
                                ("noise_multiplier", noise_multiplier, True)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating) \
                or not math.isfinite(value) or not (value >= 0 if low_ok else value > 0):
            raise ConfigError(f"{name} must be a finite number {'>= 0' if low_ok else '> 0'}, "
                              f"got {value!r}")
    if seed is not None:
        seed = check_seed(seed)
    try:
        n = len(updates)
    except TypeError as err:
        raise ConfigError(f"updates must be a list or an (n, d) array: {err}") from err
    rnd = prepare_round(global_params, updates, np.ones(n))
    if rnd.valid.size < rnd.n:
        bad = sorted(i for i in range(rnd.n) if i not in set(rnd.valid.tolist()))
        raise ConfigError(f"updates {bad} hold NaN or Inf; leave them out before DP-FedAvg")
    deltas = rnd.updates - rnd.global_params
    norms = row_norms(deltas)
    clipped = clip_norms(deltas, float(clip_norm))
    rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
    noisy_sum = clipped.sum(axis=0) + rng.normal(0.0, noise_multiplier * clip_norm,
                                                 size=deltas.shape[1])
    params = (rnd.global_params + noisy_sum / n).astype(rnd.dtype)
    info = DPFedAvgInfo(participants=n, clip_norm=float(clip_norm),
                        noise_multiplier=float(noise_multiplier),
                        noise_std=float(noise_multiplier * clip_norm / n),
                        norms=tuple(float(x) for x in norms),
                        clipped=tuple(int(i) for i in np.flatnonzero(norms > clip_norm)))
    return params, info
