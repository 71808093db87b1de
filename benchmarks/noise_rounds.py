"""Rule R52's decision: FairFL's NOISE check over a sender's last two rounds (``noise_rounds``
2, B) against the update alone (1, A) in a task that prunes, from ``benchmarks.privacy_sparse``
runs (docs/data/sparse_noise_rounds_rules_2026-12-06.md, written before the runs).

Reads ``<dir>/<tag>_<attack>_n<1|2>.json`` for the attacks ``none``, ``gaussian`` and
``gaussian-every-2`` (each made by ``python -m benchmarks.privacy_sparse --methods topk-tensor
--strategies fairfl --ratios 0.5,0.9,0.99 --attack ATTACK --noise-rounds N``), prints the
figures each criterion reads and the verdict:

    python -m benchmarks.noise_rounds docs/data --tag sparse_noise_rounds_tuning_2026-12-06
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ATTACKS = ("none", "gaussian", "gaussian-every-2")
#: The criteria's margins, fixed in the rule file before the runs.
HONEST_NOISE_CUT = 0.5  # clean at 0.99: B's honest NOISE rejections at most half of A's
TPR_MARGIN = 0.02  # gaussian: B's TPR at most this below A's
NOISE_ROUND_MARGIN = 0.05  # gaussian-every-2: B's TPR in its noise rounds at most this below
CLEAN_ACCURACY_MARGIN = 0.005
ATTACKED_ACCURACY_MARGIN = 0.01

Rows = Sequence[Mapping[str, Any]]


def _by_ratio(rows: Rows) -> dict[float, list[Mapping[str, Any]]]:
    out: dict[float, list[Mapping[str, Any]]] = {}
    for row in rows:
        out.setdefault(float(row["ratio"]), []).append(row)
    return out


def _mean(rows: Rows, key: str) -> float:
    return float(np.mean([float(r[key]) for r in rows]))


def _honest(rows: Rows, reason: str | None = None) -> int:
    """Honest rejections summed over the rows (of one reason, or of all)."""
    return sum(int(n) for r in rows for why, n in r["rejections_by_reason"].items()
               if reason is None or why == reason)


def paired(runs: Mapping[str, tuple[Rows, Rows]],
           side: Callable[[str, Rows], dict[str, Any]]) -> dict[str, Any]:
    """``side(attack, rows)`` for A's and B's rows of each attack and ratio (``runs``: attack
    -> (A's rows, B's rows)), with the seeds; refuses runs whose ratios or seeds differ."""
    out: dict[str, Any] = {}
    for attack, (a_rows, b_rows) in runs.items():
        a, b = _by_ratio(a_rows), _by_ratio(b_rows)
        if sorted(a) != sorted(b):
            raise ValueError(f"{attack}: A ran ratios {sorted(a)}, B {sorted(b)}")
        for ratio in sorted(a):
            seeds = sorted(int(r["seed"]) for r in a[ratio])
            if seeds != sorted(int(r["seed"]) for r in b[ratio]):
                raise ValueError(f"{attack} at {ratio}: A and B ran different seeds")
            out.setdefault(attack, {})[ratio] = {
                name: {"seeds": seeds, **side(attack, rows)}
                for name, rows in (("A", a[ratio]), ("B", b[ratio]))}
    return out


def figures(runs: Mapping[str, tuple[Rows, Rows]]) -> dict[str, Any]:
    """What each criterion reads, per attack and ratio, for A and B (``runs``: attack ->
    (A's rows, B's rows))."""
    return paired(runs, lambda attack, rows: {
        "accuracy": _mean(rows, "accuracy"), "honest_rejections": _honest(rows),
        "honest_noise": _honest(rows, "noise"),
        "tpr": _mean(rows, "tpr") if attack != "none" else None,
        "tpr_attack_rounds": _mean(rows, "tpr_attack_rounds") if attack != "none" else None})


def verdict(measured: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether B meets every criterion of the rule, and a line per criterion and ratio."""
    lines, ok = [], True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok &= passed
        lines.append(f"{'pass' if passed else 'FAIL'}  {text}")

    clean = measured["none"]
    a, b = clean[0.99]["A"]["honest_noise"], clean[0.99]["B"]["honest_noise"]
    check(b <= HONEST_NOISE_CUT * a, f"1. clean 0.99: honest NOISE rejections {b} (B) against "
          f"{a} (A), at most {HONEST_NOISE_CUT * a:g}")
    for ratio, sides in clean.items():
        a, b = sides["A"]["honest_rejections"], sides["B"]["honest_rejections"]
        check(b <= a, f"1. clean {ratio:g}: honest rejections {b} (B) against {a} (A)")
    for ratio, sides in measured["gaussian"].items():
        a, b = sides["A"]["tpr"], sides["B"]["tpr"]
        check(b >= a - TPR_MARGIN - 1e-12, f"2. gaussian {ratio:g}: TPR {b:.4f} (B) against "
              f"{a:.4f} (A)")
    for ratio, sides in measured["gaussian-every-2"].items():
        a, b = sides["A"]["tpr_attack_rounds"], sides["B"]["tpr_attack_rounds"]
        check(b >= a - NOISE_ROUND_MARGIN - 1e-12, f"3. gaussian-every-2 {ratio:g}: TPR in "
              f"its noise rounds {b:.4f} (B) against {a:.4f} (A)")
    for attack, sides_by_ratio in measured.items():
        margin = CLEAN_ACCURACY_MARGIN if attack == "none" else ATTACKED_ACCURACY_MARGIN
        for ratio, sides in sides_by_ratio.items():
            a, b = sides["A"]["accuracy"], sides["B"]["accuracy"]
            check(b >= a - margin - 1e-12, f"4. {attack} {ratio:g}: mean accuracy {b:.4f} (B) "
                  f"against {a:.4f} (A)")
    return ok, lines


def load(folder: Path, tag: str) -> dict[str, tuple[Rows, Rows]]:
    """The runs of ``folder``/``tag``_<attack>_n<1|2>.json (module docstring)."""
    def rows(attack: str, n: int) -> Rows:
        path = folder / f"{tag}_{attack}_n{n}.json"
        runs: Rows = json.loads(path.read_text())["runs"]
        if any(r.get("noise_rounds") != n for r in runs):
            raise ValueError(f"{path} holds runs with noise_rounds other than {n}")
        return runs
    return {attack: (rows(attack, 1), rows(attack, 2)) for attack in ATTACKS}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the runs' JSON files are")
    parser.add_argument("--tag", required=True, help="the files' common prefix")
    args = parser.parse_args(argv)
    try:
        measured = figures(load(args.folder, args.tag))
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"cannot read the runs: {err}")
    ok, lines = verdict(measured)
    print("\n".join(lines))
    print(f"\nB (noise_rounds 2) {'meets' if ok else 'does not meet'} rule R52's criteria")


if __name__ == "__main__":
    main()
