"""The judge of rule R66's confirmation (docs/data/sequential_margin_rules_2026-12-07.md):
the candidate's runs (``fairfl-dp-seq-margin``) against today's rule's
(``fairfl-dp-seq-no-outliers``) on the same seeds, clause by clause.

Each run name (``honest_90-97``, ``sign_flip``, ...) has a file of today's rule,
``<today prefix>_<name>.json``, and one of the candidate, ``<candidate prefix>_<name>.json``.
Runs whose name starts with ``honest`` are the honest ones; the rest are attacks. Pure
reading of JSON: no run is made here.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

TODAY, CANDIDATE = "fairfl-dp-seq-no-outliers", "fairfl-dp-seq-margin"
#: The clauses' bounds, as the rule file fixed them before its runs.
FPR_MAX, HONEST_BANS_MAX, HONEST_ACCURACY_MIN = 0.05, 2, -0.005
ATTACK_ACCURACY_MEDIAN, ATTACK_ACCURACY_WORST, TPR_MEDIAN = -0.01, -0.03, -0.10
FEWER_ATTACKERS_BANNED, MORE_HONEST_BANNED, BELOW_HONEST = 2, 1, 0.02


def rows_of(path: Path, strategy: str) -> dict[int, dict[str, Any]]:
    """The ``strategy``'s ε = 8 rows of a benchmarks.privacy_dp file, by seed."""
    runs = json.loads(path.read_text())["runs"]
    return {run["seed"]: run for run in runs
            if run["strategy"] == strategy and run.get("epsilon") == 8.0}


@dataclass(frozen=True)
class Pair:
    """One run name's rows, today's and the candidate's, on the same seeds."""

    name: str
    today: dict[int, dict[str, Any]]
    candidate: dict[int, dict[str, Any]]

    def __post_init__(self) -> None:
        if set(self.today) != set(self.candidate) or not self.today:
            raise click.UsageError(f"{self.name}: the two rules ran seeds {sorted(self.today)} "
                                   f"and {sorted(self.candidate)}; C pairs the same seeds")

    def differences(self, key: str) -> list[float]:
        return [self.candidate[s][key] - self.today[s][key] for s in sorted(self.today)]


def bans(rows: dict[int, dict[str, Any]]) -> tuple[int, int]:
    """Honest clients and attackers the replayed registry would ban, summed over seeds."""
    honest = attackers = 0
    for run in rows.values():
        bad = set(run.get("malicious", ()))
        banned = set(run["would_blacklist"])
        honest += len(banned - bad)
        attackers += len(banned & bad)
    return honest, attackers


def judge(honest: Sequence[Pair], attacks: Sequence[Pair],
          honest_by_seed: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]
          ) -> dict[str, Any]:
    """Every clause's figures and verdict. ``honest_by_seed``: today's and the candidate's
    honest rows on the attack seeds, for C3's second part."""
    c1_fpr = max(run["fpr"] for p in honest for run in p.candidate.values())
    c1_bans = sum(bans(p.candidate)[0] for p in honest)
    c1_accuracy = statistics.median(d for p in honest for d in p.differences("accuracy"))
    c1 = {"highest_fpr": c1_fpr, "honest_bans": c1_bans, "median_accuracy_difference":
          c1_accuracy, "holds": c1_fpr <= FPR_MAX and c1_bans <= HONEST_BANS_MAX
          and c1_accuracy >= HONEST_ACCURACY_MIN}
    c2, c3 = {}, {}
    below = {"today": 0, "candidate": 0}
    for pair in attacks:
        accuracy, tpr = pair.differences("accuracy"), pair.differences("tpr")
        (today_honest, today_bad), (cand_honest, cand_bad) = bans(pair.today), bans(pair.candidate)
        fpr = max(run["fpr"] for run in pair.candidate.values())
        c2[pair.name] = {
            "median_accuracy_difference": statistics.median(accuracy),
            "worst_accuracy_difference": min(accuracy),
            "median_tpr_difference": statistics.median(tpr),
            "attackers_banned": [today_bad, cand_bad], "honest_banned": [today_honest,
                                                                        cand_honest],
            "highest_honest_fpr": fpr,
            "holds": statistics.median(accuracy) >= ATTACK_ACCURACY_MEDIAN
            and min(accuracy) >= ATTACK_ACCURACY_WORST
            and statistics.median(tpr) >= TPR_MEDIAN
            and cand_bad >= today_bad - FEWER_ATTACKERS_BANNED
            and cand_honest <= today_honest + MORE_HONEST_BANNED and fpr <= FPR_MAX}
        under_start = [s for s, run in sorted(pair.candidate.items())
                       if run["accuracy"] < run["start_accuracy"]]
        c3[pair.name] = under_start
        for who, rows, own in (("today", pair.today, honest_by_seed[0]),
                               ("candidate", pair.candidate, honest_by_seed[1])):
            below[who] += sum(run["accuracy"] < own[s]["accuracy"] - BELOW_HONEST
                              for s, run in rows.items())
    return {"C1": c1, "C2": c2,
            "C3": {"seeds_below_start": c3, "pairs_below_own_honest": below,
                   "holds": not any(c3.values()) and below["candidate"] <= below["today"]}}


@click.command()
@click.option("--today", "today_prefix", required=True,
              help="path prefix of today's rule's files (T1 and T2), e.g. "
                   "docs/data/sequential_margin_tuning_2026-12-07")
@click.option("--candidate", "candidate_prefix", required=True,
              help="path prefix of the candidate's files (C)")
@click.option("--names", default="honest_90-97,honest_98-105,honest_1-8,sign_flip,label_flip,"
              "gaussian,sign_flip_x0.5,sign_flip_every2_x2,sign_flip_from11_credit,"
              "sign_flip_fit", show_default=True)
@click.option("--attack-seeds-honest", default="honest_1-8", show_default=True,
              help="the honest run on the attack seeds (C3)")
def main(today_prefix: str, candidate_prefix: str, names: str, attack_seeds_honest: str) -> None:
    """Judge R66's confirmation: print each clause's figures and whether it holds."""
    pairs = []
    for name in names.split(","):
        paths = [Path(f"{prefix}_{name}.json") for prefix in (today_prefix, candidate_prefix)]
        for path in paths:
            if not path.is_file():
                raise click.UsageError(f"no file {path}")
        pairs.append(Pair(name, rows_of(paths[0], TODAY), rows_of(paths[1], CANDIDATE)))
    honest = [p for p in pairs if p.name.startswith("honest")]
    attacks = [p for p in pairs if not p.name.startswith("honest")]
    own = next(p for p in pairs if p.name == attack_seeds_honest)
    click.echo(json.dumps(judge(honest, attacks, (own.today, own.candidate)), indent=1))


if __name__ == "__main__":
    main()

__all__ = ["Pair", "bans", "judge", "rows_of"]
