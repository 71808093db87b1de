"""Rules R53 and R53b's decisions: honest participants who take back an update the
aggregator did not use (``--take-back``, B; R53b: only after a NOISE refusal or a hold-back,
``--take-back-after noise``) against today's error feedback (A), in a task that prunes, from
``benchmarks.privacy_sparse`` runs (docs/data/sparse_take_back_rules_2026-12-06.md and
sparse_take_back_noise_rules_2026-12-07.md, each written before its runs).

Reads ``<dir>/<tag>_<attack>_<A|B>.json`` for the attacks ``none``, ``gaussian`` and
``gaussian-every-2`` (each made by ``python -m benchmarks.privacy_sparse --methods topk-tensor
--strategies fairfl --ratios 0.5,0.9,0.99 --attack ATTACK [--take-back]``), prints the
figures each criterion reads and the verdict:

    python -m benchmarks.take_back docs/data --tag sparse_take_back_tuning_2026-12-06
    python -m benchmarks.take_back docs/data --tag sparse_take_back_noise_tuning_2026-12-07 \
        --after noise --a-tag sparse_take_back_tuning_2026-12-06
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.noise_rounds import ATTACKS, Rows, _honest, _mean, paired

#: The criteria's margins, fixed in the rule file before the runs.
CLEAN_ACCURACY_MARGIN = 0.003
ATTACKED_ACCURACY_MARGIN = 0.005
TPR_MARGIN = 0.02
#: What A and B must share (beyond the seeds and ratios, which :func:`figures` pairs).
SAME = ("method", "trigger_rounds", "noise_rounds")


def figures(runs: Mapping[str, tuple[Rows, Rows]]) -> dict[str, Any]:
    """What each criterion reads, per attack and ratio, for A and B (``runs``: attack ->
    (A's rows, B's rows))."""
    return paired(runs, lambda attack, rows: {
        "accuracy": _mean(rows, "accuracy"), "honest_rejections": _honest(rows),
        "would_blacklist": sum(len(r["honest_would_be_blacklisted"]) for r in rows),
        "tpr_attack_rounds": _mean(rows, "tpr_attack_rounds") if attack != "none" else None})


def verdict(measured: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether B meets every criterion of the rule, and a line per criterion and ratio."""
    lines, ok = [], True

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok &= passed
        lines.append(f"{'pass' if passed else 'FAIL'}  {text}")

    for ratio, sides in measured["none"].items():
        a, b = sides["A"], sides["B"]
        check(b["honest_rejections"] <= a["honest_rejections"],
              f"1. clean {ratio:g}: honest rejections {b['honest_rejections']} (B) against "
              f"{a['honest_rejections']} (A)")
        check(b["would_blacklist"] <= a["would_blacklist"],
              f"1. clean {ratio:g}: honest clients the registry would blacklist "
              f"{b['would_blacklist']} (B) against {a['would_blacklist']} (A)")
        check(b["accuracy"] >= a["accuracy"] - CLEAN_ACCURACY_MARGIN - 1e-12,
              f"2. clean {ratio:g}: mean accuracy {b['accuracy']:.4f} (B) against "
              f"{a['accuracy']:.4f} (A)")
    for attack in ATTACKS[1:]:
        for ratio, sides in measured[attack].items():
            a, b = sides["A"], sides["B"]
            check(b["tpr_attack_rounds"] >= a["tpr_attack_rounds"] - TPR_MARGIN - 1e-12,
                  f"3. {attack} {ratio:g}: TPR in its attack rounds "
                  f"{b['tpr_attack_rounds']:.4f} (B) against {a['tpr_attack_rounds']:.4f} (A)")
            check(b["accuracy"] >= a["accuracy"] - ATTACKED_ACCURACY_MARGIN - 1e-12,
                  f"3. {attack} {ratio:g}: mean accuracy {b['accuracy']:.4f} (B) against "
                  f"{a['accuracy']:.4f} (A)")
    return ok, lines


def load(folder: Path, tag: str, after: str = "any", a_tag: str | None = None
         ) -> dict[str, tuple[Rows, Rows]]:
    """The runs of ``folder``/``tag``_<attack>_<A|B>.json (module docstring); B's must take
    back after ``after`` ("any": whatever was not used, rule R53; "noise": only NOISE
    refusals and hold-backs, rule R53b); A's are read under ``a_tag`` when given."""
    def rows(attack: str, side: str) -> Rows:
        path = folder / f"{a_tag or tag if side == 'A' else tag}_{attack}_{side}.json"
        runs: Rows = json.loads(path.read_text())["runs"]
        if any(bool(r.get("take_back")) != (side == "B") for r in runs):
            raise ValueError(f"{path} holds runs that {'do not ' if side == 'B' else ''}"
                             "take back unused updates")
        if side == "B" and any(r.get("take_back_after", "any") != after for r in runs):
            raise ValueError(f"{path} holds runs that take back after another verdict than "
                             f"{after!r}")
        for row in runs:
            if row.get("attack") != attack or row.get("strategy") != "fairfl" \
                    or row.get("bare_attacks"):
                raise ValueError(f"{path} holds a run other than FairFL under {attack} with "
                                 "attackers sending through their residual")
        return runs

    out = {attack: (rows(attack, "A"), rows(attack, "B")) for attack in ATTACKS}
    for attack, (a, b) in out.items():
        settings = {tuple(r.get(key) for key in SAME) for r in (*a, *b)}
        if len(settings) > 1:
            raise ValueError(f"{attack}: A and B ran different settings {sorted(settings)}")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the runs' JSON files are")
    parser.add_argument("--tag", required=True, help="the files' common prefix")
    parser.add_argument("--a-tag", help="the A files' prefix, when it is not --tag's")
    parser.add_argument("--after", choices=("any", "noise"), default="any",
                        help="what B takes back after: any verdict but accepted (R53), or "
                             "only NOISE refusals and hold-backs (R53b)")
    args = parser.parse_args(argv)
    try:
        measured = figures(load(args.folder, args.tag, args.after, args.a_tag))
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"cannot read the runs: {err}")
    ok, lines = verdict(measured)
    print("\n".join(lines))
    rule = "R53" if args.after == "any" else "R53b"
    print(f"\nB (take back unused updates, after {args.after}) "
          f"{'meets' if ok else 'does not meet'} rule {rule}'s criteria")


if __name__ == "__main__":
    main()
