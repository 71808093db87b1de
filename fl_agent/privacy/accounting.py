"""Privacy accounting: the (ε, δ) each participant has spent across rounds and tasks, and the
noise that spends a task's budget exactly. Pure computation over Opacus's accountants.

:class:`PrivacyBudget` is a small JSON record a participant keeps across rounds
and tasks: target ε, δ, the accountant (Opacus's ``"rdp"`` or ``"prv"``), what one unit of
privacy is (``"example"`` or ``"participant"``) and the history of ``(noise_multiplier,
sample_rate, steps)`` it has spent. :meth:`PrivacyBudget.spent` asks the accountant for ε
over that history; :meth:`PrivacyBudget.would_exceed` tells a participant, before it trains,
that one more round would take it past its target, so it stops submitting.
:func:`noise_for_budget` calibrates the noise multiplier so that a task's ``R`` rounds of
``S`` steps spend exactly the budget (to Opacus's search tolerance). For DP-FedAvg the same
record, with ``unit="participant"``, holds one step per round at sample rate
``participants / members`` (:meth:`~fl_agent.privacy.dp.DPFedAvgInfo.privacy_step`).

What is Opacus's: the accountants (``RDPAccountant``, ``PRVAccountant``) and the noise
calibration (``get_noise_multiplier``). Written here: the budget record, because Opacus's
accountants keep their history in an object not meant to be stored; the record keeps the
same ``(σ, q, steps)`` triples in a pydantic model and gives them to a fresh accountant each
time.

Split from :mod:`fl_agent.privacy.dp` (DP-SGD and DP-FedAvg), which re-exports it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Annotated, Literal

import numpy as np
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fl_agent.errors import ConfigError

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
#: The pydantic settings of every record here and in :mod:`fl_agent.privacy.dp`: immutable,
#: and no field it does not name.
FROZEN = ConfigDict(frozen=True, extra="forbid")


def config_error(what: str, err: ValidationError) -> ConfigError:
    """A pydantic validation error as the :class:`ConfigError` a caller handles."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                         for e in err.errors())
    return ConfigError(f"invalid {what}: {problems}")


class PrivacyStep(BaseModel):
    """``steps`` applications of the sampled Gaussian mechanism at one noise and sample rate
    (an entry of Opacus's accountant history)."""

    model_config = FROZEN

    noise_multiplier: Finite = Field(ge=0)  # 0: no noise, no privacy (ε is infinite)
    sample_rate: Finite = Field(gt=0, le=1)
    steps: int = Field(strict=True, ge=1)

    @classmethod
    def build(cls, noise_multiplier: float, sample_rate: float, steps: int) -> PrivacyStep:
        try:
            return cls(noise_multiplier=noise_multiplier, sample_rate=sample_rate,
                       steps=int(steps) if isinstance(steps, np.integer) else steps)
        except ValidationError as err:
            raise config_error("privacy step", err) from err


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
    entries = tuple((float(s.noise_multiplier), float(s.sample_rate), int(s.steps))
                    for s in history)
    delta = float(delta)  # the memo's key: a numpy float32 must not stand for a float
    bound = _epsilon("rdp", entries, delta)
    if accountant == "rdp" or bound > PRV_RANGE:
        return bound
    return _epsilon("prv", entries, delta)


@lru_cache(maxsize=1024)
def _epsilon(accountant: str, entries: tuple[tuple[float, float, int], ...],
             delta: float) -> float:
    """ε of ``entries`` by a fresh accountant. Memoised: a pure function of its arguments,
    asked for the same history more than once (a participant's receipt, then its next
    round's budget check; an aggregator reading each sender's record), and PRV's answer
    takes about 0.3 s."""
    counter = create_accountant(mechanism=accountant)
    counter.history = list(entries)
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
    # the memo's key, as plain numbers (a numpy float32 hashes like the float it equals)
    key = (float(target_epsilon), float(delta), float(sample_rate), int(total_steps))
    tolerance = float(epsilon_tolerance)
    if accountant == "prv":
        # epsilon_spent reports the RDP bound where RDP exceeds PRV_RANGE, so the noise must
        # be calibrated by the rule that will check it: by PRV unless that noise is in the
        # RDP range, then by RDP (calibrating PRV there would also take minutes and GBs).
        if target_epsilon <= PRV_RANGE:
            sigma = _noise_for(*key, "prv", tolerance)
            step = PrivacyStep.build(sigma, sample_rate, total_steps)
            if epsilon_spent([step], delta, "prv") <= target_epsilon:
                return sigma
        return _noise_for(*key, "rdp", tolerance)
    return _noise_for(*key, accountant, tolerance)


@lru_cache(maxsize=256)
def _noise_for(target_epsilon: float, delta: float, sample_rate: float, total_steps: int,
               accountant: str, epsilon_tolerance: float) -> float:
    """Opacus's bisection, memoised (a pure function of its arguments; by PRV it takes
    seconds, and participants with the same shard size ask the same question)."""
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

    model_config = FROZEN

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
            raise config_error("privacy budget", err) from err

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
            raise config_error("privacy budget record", err) from err


__all__ = ["ACCOUNTANTS", "FROZEN", "PRV_RANGE", "AccountantKind", "Finite", "PrivacyBudget",
           "PrivacyStep", "PrivacyUnit", "config_error", "epsilon_spent", "noise_for_budget"]
