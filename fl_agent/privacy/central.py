"""The public record of participant-level DP (DP-FedAvg at the aggregator), one per round, and
its check.

In a task whose plan asks for ``dp`` at ``level="participant"``, the aggregator applies
:func:`fl_agent.privacy.dp.dp_fedavg` once per finalised round, with one noise multiplier
``σ`` calibrated so that the task's ``R`` rounds spend its ε (each round a step at sample
rate 1: participants who choose to take part are not a random sample). Each round's evidence
document (whose CID the round's ``RoundFinalized`` event names) carries a
:class:`DPFedAvgRecord`: the clip, σ, the noise's standard deviation on the average, how many
updates were averaged and clipped, how many times the mechanism has been applied in the task
(this round included) and the ε that this has spent, by the plan's accountant at its δ. So
the chain record of every aggregation says what it cost in privacy, as every example-level
update's receipt does (:mod:`fl_agent.privacy.receipts`).

:func:`record_problems` is what anyone can check from the record, the plan and the chain:

* the clip, δ and accountant are the plan's, and the count of applications is the number of
  rounds finalised so far (this one included), which the chain shows;
* the ε is what the accountant gives for that many applications at that σ, and σ is enough
  for all ``R`` rounds to stay within the budget (so no later round can need more);
* the noise's standard deviation is ``σ · clip / updates`` and ``updates`` is the number of
  updates the round accepted.

What it cannot check: that the noise was really drawn and added. It is drawn fresh
(``seed=None``), so a rerun cannot reproduce the model, and noise cannot be told from signal;
an aggregator that left it out would publish a record that lies, signed by its account.

Pure computation over :func:`fl_agent.privacy.accounting.epsilon_spent` (Opacus's
accountants); the rules are the task's own, so they are written here.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from fl_agent.privacy.accounting import FROZEN, Finite, PrivacyStep, epsilon_spent
from fl_agent.privacy.dp import DPFedAvgInfo
from fl_agent.privacy.plan import DPPlan

#: Relative tolerance when a reader recomputes ε and the noise's standard deviation (the
#: record is JSON: floats round-trip exactly, but another machine's accountant may differ in
#: its last digits).
RTOL = 1e-6


class DPFedAvgRecord(BaseModel):
    """One round's DP-FedAvg, as its evidence records it (see the module docstring)."""

    model_config = FROZEN

    clip: Finite = Field(gt=0)
    noise_multiplier: Finite = Field(ge=0)
    #: The noise's standard deviation per coordinate of the averaged update.
    noise_std: Finite = Field(ge=0)
    updates: int = Field(strict=True, ge=1)
    clipped: int = Field(strict=True, ge=0)
    #: How many rounds of the task have applied the mechanism, this one included.
    applications: int = Field(strict=True, ge=1)
    #: ε spent by those applications, at ``delta``, by ``accountant``.
    epsilon: float = Field(ge=0)
    delta: Finite = Field(gt=0, lt=1)
    accountant: str


def task_epsilon(noise_multiplier: float, applications: int, plan: DPPlan) -> float:
    """ε after ``applications`` rounds of DP-FedAvg at ``noise_multiplier`` (rate 1), by the
    plan's accountant at its δ."""
    return epsilon_spent([PrivacyStep.build(noise_multiplier, 1.0, applications)],
                         plan.delta, plan.accountant)


def record_round(info: DPFedAvgInfo, plan: DPPlan, applications: int) -> DPFedAvgRecord:
    """The record of a round whose DP-FedAvg did ``info``, the ``applications``-th in its
    task."""
    return DPFedAvgRecord(
        clip=info.clip_norm, noise_multiplier=info.noise_multiplier, noise_std=info.noise_std,
        updates=info.participants, clipped=len(info.clipped), applications=applications,
        epsilon=task_epsilon(info.noise_multiplier, applications, plan), delta=plan.delta,
        accountant=plan.accountant)


def record_problems(record: DPFedAvgRecord | None, plan: DPPlan, *, applications: int,
                    accepted: int, rounds: int) -> list[str]:
    """What is wrong with a finalised round's DP-FedAvg ``record`` (empty: nothing), for a
    task of ``rounds`` rounds whose plan is ``plan``, in which this round is the
    ``applications``-th finalised, with ``accepted`` updates accepted."""
    if record is None:
        return ["the round's evidence has no DP-FedAvg record: a participant-level dp task "
                "says what each aggregation cost in privacy"]
    problems = []
    for name, recorded, planned in (("clip", record.clip, plan.clip),
                                    ("delta", record.delta, plan.delta),
                                    ("accountant", record.accountant, plan.accountant)):
        if recorded != planned:
            problems.append(f"DP-FedAvg's {name} is {recorded!r}, the task's {planned!r}")
    if record.applications != applications:
        problems.append(f"DP-FedAvg counts {record.applications} application(s); the chain "
                        f"shows this is finalised round {applications} of the task")
    if record.updates != accepted:
        problems.append(f"DP-FedAvg averaged {record.updates} update(s); the round accepted "
                        f"{accepted}")
    if record.clipped > record.updates:
        problems.append(f"DP-FedAvg clipped {record.clipped} of {record.updates} updates")
    std = record.noise_multiplier * record.clip / record.updates
    if not math.isclose(record.noise_std, std, rel_tol=RTOL):
        problems.append(f"DP-FedAvg's noise std {record.noise_std:.6g} is not noise "
                        f"multiplier × clip / updates = {std:.6g}")
    if problems:
        return problems
    spent = task_epsilon(record.noise_multiplier, record.applications, plan)
    if not math.isclose(record.epsilon, spent, rel_tol=RTOL):
        problems.append(f"DP-FedAvg records ε = {record.epsilon:.6g}; {record.applications} "
                        f"application(s) at noise multiplier {record.noise_multiplier:.6g} "
                        f"spend {spent:.6g}")
    whole = task_epsilon(record.noise_multiplier, rounds, plan)
    if whole > plan.epsilon * (1 + RTOL):
        problems.append(f"DP-FedAvg's noise multiplier {record.noise_multiplier:.6g} spends "
                        f"ε = {whole:.4g} over the task's {rounds} rounds, above its budget "
                        f"of {plan.epsilon:g}")
    return problems
