"""Checking that a FairFL round's verdicts follow from the figures its evidence records,
under the task's rule: the second of the three questions :mod:`fl_agent.agents.audit` asks of
a round's evidence, answered by anyone, with no update and no data.

:func:`replay_screens` decides the norm screen, the trigger screen, the chance test, the
DBSCAN radius and clusters and the similarity test again from the recorded figures, and the
gate's verdicts from its recorded steps (and the updates it held back from their recorded
slack). That the figures are what the updates and the validation data give is what only the
rerun checks (:func:`fl_agent.agents.audit.compare_rerun`). Split from
:mod:`fl_agent.agents.audit` along that seam; hand-written, as the rule it replays is.
"""

from __future__ import annotations

import math
from typing import Any

from fl_agent.agents.evidence import RoundEvidence, same_rule

#: Relative tolerance for floats recomputed from the figures here, and by a rerun
#: (:mod:`fl_agent.agents.audit`: scores, figures, validation): the same code on the same
#: inputs, but BLAS may sum in another order on another machine.
RTOL = 1e-6


#: Evidence formats from before the rule's figures were recorded.
WITHOUT_FIGURES = ("fairfl-round-evidence/1", "fairfl-round-evidence/2",
                    "fairfl-round-evidence/3")
#: Reasons decided before a rule sees an update (it could not be read, or is not usable).
_BEFORE_THE_RULE = ("invalid_update", "non_finite", "no_samples")


def replay_screens(evidence: RoundEvidence, rule: dict[str, Any] | None = None,
                   dimension: int | None = None) -> tuple[list[str], int]:
    """FairFL's decision taken again from the figures its evidence records (anyone can:
    no update, no data): the norm screen, the trigger screen, the chance test, the DBSCAN
    radius and clusters and the similarity test, and, from the gate's recorded steps, who
    it let through. ``rule`` is the task's rule as the task document makes it (else the
    evidence's own, unchecked) and ``dimension`` the model's parameter count, from which the
    chance level is recomputed. Returns the differences from the evidence's verdicts and the
    number of verdicts decided again (the gate's from its recorded steps).

    What this shows is that the verdicts follow from the figures under the task's rule.
    That the figures are what the updates and the validation data give (each update's
    norm, trigger excess, similarity to the others and to the round's median direction, the
    gate's per-example scores) is what only the rerun checks
    (:func:`fl_agent.agents.audit.compare_rerun`)."""
    if evidence.rule.get("name") != "fairfl" and (rule or {}).get("name") != "fairfl":
        return [], 0
    problems: list[str] = []
    if rule is not None and evidence.rule and not same_rule(evidence.rule, rule):
        problems.append(f"the evidence names the rule {evidence.rule}, but the task's "
                        f"document makes it {rule}")
    figures = evidence.rule_figures
    if not figures:
        if evidence.format in WITHOUT_FIGURES:
            return problems, 0  # made before the figures were recorded
        return [*problems, "the evidence of a FairFL round records no figures"], 0
    try:
        found, decided = _replay(evidence, figures, (rule or evidence.rule)["options"],
                                 dimension)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        return [*problems, f"the evidence's figures are malformed: {err!r}"], 0
    return problems + found, decided


def _held_back(evidence: RoundEvidence, figures: dict[str, Any], options: dict[str, Any],
               expected: dict[int, str], reached: list[int], reference: dict[int, float],
               voters: list[int]) -> list[str]:
    """Step 5c of FairFL's replay: moves the ``validation`` verdicts in ``expected`` that the
    recorded ``held_back`` rows hold back, and names rows that do not fit the rule (a
    slack the recorded similarities do not give, an update not tested that had to be).
    The margins themselves need the validation data: a rerun checks them."""
    import numpy as np

    from fl_agent.aggregation.gate import gate_tolerances

    rows = {int(row[0]): row for row in figures.get("held_back") or []}
    if not options.get("held_back"):
        return ["the figures hold updates held back, which the task's rule does not do"] \
            if rows else []
    problems: list[str] = []
    turned = [i for i in reached if expected.get(i) == "validation"]
    if sorted(set(rows) - set(turned)):
        problems.append(f"updates {sorted(set(rows) - set(turned))} are recorded as tested for "
                        "holding back, but the gate did not turn them away")
    tolerance = float(options["tolerance"])
    median = float(np.median([reference[i] for i in voters]))
    sims = np.array([reference[i] for i in turned])
    slack = gate_tolerances(sims, median, tolerance, options["full_tolerance_at"],
                            options.get("min_tolerance", 0.0))
    for i, given in zip(turned, slack, strict=True):
        row = rows.get(i)
        if row is None:
            if given < tolerance:
                problems.append(f"{evidence.verdicts[i].participant}: turned away with a slack "
                                f"of {given:.4g}, below the full {tolerance}, but not tested "
                                "for holding back")
            continue
        recorded, margin = float(row[1]), float(row[2])
        if not close_enough(recorded, float(given)):
            problems.append(f"{evidence.verdicts[i].participant}: the similarities give a slack "
                            f"of {given:.4g}, the evidence says {recorded}")
        if recorded < tolerance and margin >= 0:
            expected[i] = "held_back"
    return problems


def _replay(evidence: RoundEvidence, figures: dict[str, Any], options: dict[str, Any],
            dimension: int | None) -> tuple[list[str], int]:
    import numpy as np

    from fl_agent.aggregation.clustering import (
        chance_similarity,
        data_driven_eps,
        dbscan_labels,
        similarity_outliers,
    )
    from fl_agent.aggregation.fairfl import _MAX_CHANCE
    from fl_agent.aggregation.gate import sequential_out
    from fl_agent.aggregation.rounds import EXACT_COPIES, close_groups, first_of_groups

    problems: list[str] = []
    reasons = {i: (v.reason or "").split(":", 1)[0] for i, v in enumerate(evidence.verdicts)
               if not v.accepted}
    indices = [int(i) for i in figures["indices"]]
    unseen = [i for i in range(len(evidence.verdicts))
              if i not in indices and reasons.get(i) not in _BEFORE_THE_RULE]
    if unseen:
        problems.append(f"updates {unseen} are missing from the rule's figures but were not "
                        "rejected as unreadable")
    expected: dict[int, str] = {}

    # 1. Norms against the median of those that moved.
    norms = np.asarray(figures["norms"], dtype=float)
    if norms.shape != (len(indices),):
        raise ValueError(f"{norms.size} norms for {len(indices)} updates")
    unchanged = norms <= float(figures["unchanged_below"])
    median = float(np.median(norms[~unchanged])) if (~unchanged).any() else 0.0
    free = unchanged | (norms < options["free_rider_ratio"] * median)
    ratio = options["max_norm_ratio"]
    long = ~free & (norms > (np.inf if ratio is None else ratio * median))
    expected.update({indices[k]: "free_rider" for k in np.flatnonzero(free)})
    expected.update({indices[k]: "norm_outlier" for k in np.flatnonzero(long)})
    # 1b. The trigger screen runs on exactly those that passed, if there are enough of them.
    passed = [i for i in indices if i not in expected]
    screens = options.get("input_layer") is not None and options["trigger_share"] > 0 \
        and len(passed) >= options["min_samples"]
    trigger = figures.get("trigger")
    if screens != (trigger is not None) or \
            (trigger is not None and [int(i) for i in trigger["indices"]] != passed):
        problems.append("the trigger screen's figures are not of the updates that passed the "
                        f"norm screen ({passed}, screened: {screens})")
    elif trigger is not None:
        excess = [float(x) for x in trigger["excess"]]
        if len(excess) != len(passed):
            raise ValueError(f"{len(excess)} trigger figures for {len(passed)} updates")
        if "summed" in trigger:  # over several rounds: each excess is the larger of the two
            alone, summed = ([float(x) for x in trigger[k]] for k in ("alone", "summed"))
            if len(alone) != len(passed) or len(summed) != len(passed):
                raise ValueError(f"{len(alone)} and {len(summed)} trigger figures (alone, "
                                 f"summed) for {len(passed)} updates")
            problems.extend(
                f"{evidence.verdicts[i].participant}: its trigger excess {x} is not the larger of "
                f"{a} (alone) and {b} (over {trigger.get('rounds')} rounds)"
                for i, x, a, b in zip(passed, excess, alone, summed, strict=True)
                if x != max(a, b))
        expected.update({i: "trigger" for i, x in zip(passed, excess, strict=True)
                         if x >= options["trigger_share"]})
    passed = [i for i in passed if i not in expected]
    candidates = [int(i) for i in figures.get("candidates", [])]
    if candidates != passed:
        problems.append(f"the figures' similarities are of updates {candidates}, but "
                        f"{passed} passed the norm and trigger screens")
    elif candidates:
        # 2. Agreement beyond chance with some other update.
        similarity = _cosines(figures["similarity"], len(candidates), "the similarity matrix")
        chance = float(figures["chance"])
        if dimension is not None:
            derived = chance_similarity(dimension, options["chance_z"])
            if not close_enough(chance, derived):
                problems.append(f"the chance level for {dimension} parameters is {derived}, "
                                f"the evidence says {chance}")
            chance = derived
        if len(candidates) > 1 and chance <= _MAX_CHANCE:
            tested = similarity
            noise = figures.get("noise")
            rounds = int(options.get("noise_rounds", 1))
            if rounds > 1 and evidence.round > 1 and noise is None:
                problems.append(f"the rule tests noise over {rounds} rounds, but the evidence "
                                "records no sums' cosines for it")
            elif noise is not None and (rounds <= 1 or evidence.round <= 1
                                        or noise.get("rounds") != rounds):
                problems.append("the figures hold a noise test over "
                                f"{noise.get('rounds')} rounds, which the task's rule does not "
                                f"run in round {evidence.round}; replayed without it")
            elif noise is not None:  # over several rounds: the sums' cosines, checked alike
                # (a sum of length 0 has cosine 0 with itself: gram_cosines)
                tested = _cosines(noise["similarity"], len(candidates), "the noise test's "
                                  "cosines", zero_diagonal=True)
                if len(noise.get("earlier_cids", candidates)) != len(candidates):
                    problems.append("the noise test's sums name the earlier updates of "
                                    f"{len(noise['earlier_cids'])} updates, not of the "
                                    f"{len(candidates)} it tested")
            correlated = (tested - 3.0 * np.eye(len(candidates))).max(axis=1) > chance
        else:
            correlated = np.ones(len(candidates), dtype=bool)
        expected.update({candidates[k]: "noise" for k in np.flatnonzero(~correlated)})
        pool = np.flatnonzero(correlated)
        if pool.size:
            # 3. DBSCAN at the data-driven radius; 4. the similarity test.
            block = similarity[np.ix_(pool, pool)]
            cap = 1.0 - chance if chance <= _MAX_CHANCE else 2.0
            eps = data_driven_eps(np.clip(1.0 - block, 0.0, 2.0), options["min_samples"],
                                  options["eps_scale"], cap) if options.get("eps") is None \
                else min(float(options["eps"]), cap)
            if not close_enough(eps, figures.get("eps")):
                problems.append(f"the DBSCAN radius from the similarities is {eps}, the "
                                f"evidence says {figures.get('eps')}")
            labels = dbscan_labels(block, eps, options["min_samples"]).tolist()
            if labels != figures.get("labels"):
                problems.append(f"the clusters from the similarities are {labels}, the "
                                f"evidence says {figures.get('labels')}")
            reference = np.asarray(figures["reference_similarity"], dtype=float)
            if reference.shape != (len(candidates),):
                raise ValueError(f"{reference.size} similarities to the round's direction for "
                                 f"{len(candidates)} updates")
            # With copies_once a copy group gives one value to the median and spread.
            voters = first_of_groups(close_groups(similarity, EXACT_COPIES), pool) \
                if options.get("copies_once") else pool
            if options.get("copies_once") and \
                    [candidates[k] for k in voters] != figures.get("voters"):
                problems.append(f"the copy groups from the similarities leave updates "
                                f"{[candidates[k] for k in voters]} to stand for the round, the "
                                f"evidence says {figures.get('voters')}")
            dissimilar = similarity_outliers(reference[pool], options["similarity_z"],
                                             options["min_std"], basis=reference[voters])
            expected.update({candidates[pool[k]]: "dissimilar"
                             for k in np.flatnonzero(dissimilar)})
            # 5. The gate's recorded steps decide who of those that reached it got in.
            reached = sorted(candidates[pool[k]] for k in np.flatnonzero(~dissimilar))
            steps = figures.get("gate", [])
            walked = sorted(int(i) for step in steps for i in step["members"])
            if walked != reached:
                problems.append(f"the gate walked updates {walked}, but {reached} reached it")
            kept = {int(i) for step in steps for i in step["kept"]}
            let_in = (kept - {int(i) for i in figures.get("dropped", [])}) \
                | {int(i) for i in figures.get("rescued", [])}
            expected.update({i: "validation" for i in reached if i not in let_in})
            # 5b. The sequential test (a DP task's option): the sums recorded with z-scores.
            rows = {int(row[0]): row for row in figures.get("sequential") or []}
            if options.get("sequential") and options.get("noise_control"):
                if sorted(rows) != reached:
                    problems.append(f"the sequential test scored updates {sorted(rows)}, but "
                                    f"{reached} reached the gate")
                out = [i for i, (_, z, total, count) in rows.items()
                       if sequential_out(np.array([float(total)]), np.array([float(count)]),
                                         np.array([float(z)]), options["tolerance"])[0]]
                expected.update({i: "validation" for i in out if i in reached})
            elif rows:
                problems.append("the figures hold a sequential test the task's rule does "
                                "not run")
            # 5c. Held back (rule R50): turned away with less than the full slack, and within
            # the full tolerance (the margin only a rerun with the validation data checks).
            problems += _held_back(evidence, figures, options, expected, reached,
                                   {candidates[k]: float(reference[k]) for k in range(len(
                                       candidates))}, [candidates[k] for k in voters])
    for i in indices:
        actual = reasons.get(i)
        if actual != expected.get(i):
            problems.append(f"{evidence.verdicts[i].participant}: the figures say "
                            f"{expected.get(i) or 'accepted'}, the evidence says "
                            f"{actual or 'accepted'}")
    return problems, len(indices)


def _cosines(values: Any, n: int, what: str, zero_diagonal: bool = False) -> Any:
    """A recorded ``n x n`` matrix of cosines: symmetric, 1 on its diagonal (or 0, for a
    vector of length 0, with ``zero_diagonal``); raises ValueError naming ``what``."""
    import numpy as np

    matrix = np.asarray(values, dtype=float)
    diagonal = np.diag(matrix) if matrix.shape == (n, n) else np.zeros(0)
    ones = np.isclose(diagonal, 1.0) | (zero_diagonal & np.isclose(diagonal, 0.0))
    if matrix.shape != (n, n) or not np.allclose(matrix, matrix.T) or not ones.all():
        raise ValueError(f"{what} is not a symmetric matrix of cosines with 1 on its "
                         f"diagonal, of shape {(n, n)}")
    return matrix


def close_enough(a: float | None, b: float | None) -> bool:
    """``a`` and ``b`` equal to :data:`RTOL` (relative and absolute), or both None."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=RTOL)


__all__ = ["RTOL", "WITHOUT_FIGURES", "close_enough", "replay_screens"]
