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

Accounting (what each participant's budget has spent, and the noise that spends a task's
budget exactly) is in :mod:`fl_agent.privacy.accounting`; this module re-exports it.

What is Opacus's: per-example gradients (``GradSampleModule``), per-example clipping, the sum,
the noise and the division (``DPOptimizer.pre_step``, after which ``gradient_hook`` runs),
the Poisson sampler (``UniformWithReplacementSampler``), the accountants
(``RDPAccountant``, ``PRVAccountant``, used by :mod:`~fl_agent.privacy.accounting`).
Written here, and why:

* the loop: like :func:`~fl_agent.learning.training.train_local` it runs exactly ``steps``
  steps from a flat vector. ``PrivacyEngine.make_private`` is not used because it sets the
  sample rate to ``1 / len(data_loader)`` (for 58 examples and batches of 32: 1/2, not
  32/58) and its Poisson loader draws from torch's global generator unless ``secure_mode``,
  so a seeded run would need global state;
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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from pydantic import BaseModel, Field, ValidationError
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
from fl_agent.privacy.accounting import (
    ACCOUNTANTS,
    FROZEN,
    PRV_RANGE,
    AccountantKind,
    Finite,
    PrivacyBudget,
    PrivacyStep,
    PrivacyUnit,
    config_error,
    epsilon_spent,
    noise_for_budget,
)

__all__ = ["ACCOUNTANTS", "PRV_RANGE", "AccountantKind", "DPFedAvgInfo", "DPSGDSettings",
           "DPTrainResult", "PrivacyBudget", "PrivacyStep", "PrivacyUnit", "dp_fedavg",
           "epsilon_spent", "noise_for_budget", "train_local_dp"]

# --------------------------------------------------------------------------------- DP-SGD


class DPSGDSettings(BaseModel):
    """DP-SGD's knobs, checked once (``ConfigError`` on a bad value)."""

    model_config = FROZEN

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
            raise config_error("DP-SGD settings", err) from err


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
