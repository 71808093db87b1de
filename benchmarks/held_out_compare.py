"""Two sets of ``benchmarks.held_out`` rows side by side, attack by attack: what a rule
change did to the figures the adoption rules read (docs/data/*_rules_*.md).

    python -m benchmarks.held_out_compare --before B1.json,B2.json --after H1.json,H2.json

Each file is a ``held_out --json`` output, or a published data file with its runs under
named keys (``--before docs/data/x.json:key1+key2``). The rows are matched by attack and
seed; an attack or seed on one side only is an error, so that totals compare like with
like. Per attack: honest and malicious clients blacklisted (summed over seeds), the median
accuracy ratio to clean FedAvg, the highest attack success rate, the mean attackers' share
of the rewards, the lowest TPR; then the totals and the rows whose bans changed.
Arithmetic only: it runs nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def load(spec: str) -> list[dict[str, Any]]:
    """The rows of ``FILE`` or ``FILE:key+key`` (comma-separated for several files)."""
    rows: list[dict[str, Any]] = []
    for part in spec.split(","):
        path, _, keys = part.partition(":")
        data = json.loads(Path(path).read_text())
        if keys:
            for key in keys.split("+"):
                rows += data[key]["rows"]
        else:
            rows += data["rows"]
    return rows


def _by_attack(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        seeds = out.setdefault(row["attack"], {})
        if row["seed"] in seeds:
            raise ValueError(f"two rows for {row['attack']} on seed {row['seed']}")
        seeds[row["seed"]] = row
    return out


def summary(rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One attack's figures over its seeds."""
    values = list(rows.values())
    asr = [r["asr"] for r in values if r.get("asr") is not None]
    tpr = [r["tpr"] for r in values if r.get("tpr") is not None]
    return {"honest_banned": sum(r["benign_blacklisted"] for r in values),
            "attackers_banned": sum(r["malicious_blacklisted"] for r in values),
            "median_ratio": statistics.median(r["ratio"] for r in values),
            "max_asr": max(asr) if asr else None,
            "mean_reward": statistics.fmean(r["malicious_reward"] for r in values),
            "min_tpr": min(tpr) if tpr else None}


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    b, a = _by_attack(before), _by_attack(after)
    if b.keys() != a.keys():
        raise ValueError(f"attacks differ: {sorted(b.keys() ^ a.keys())}")
    table, changed = {}, []
    for attack in b:
        if b[attack].keys() != a[attack].keys():
            raise ValueError(f"{attack}: seeds differ ({sorted(b[attack])} against "
                             f"{sorted(a[attack])})")
        table[attack] = {"before": summary(b[attack]), "after": summary(a[attack])}
        for seed in b[attack]:
            x, y = b[attack][seed], a[attack][seed]
            if (x["benign_blacklisted"], x["malicious_blacklisted"]) != \
                    (y["benign_blacklisted"], y["malicious_blacklisted"]):
                changed.append({"attack": attack, "seed": seed,
                                "honest": [x["benign_blacklisted"], y["benign_blacklisted"]],
                                "attackers": [x["malicious_blacklisted"],
                                              y["malicious_blacklisted"]]})
    totals = {side: {"honest_banned": sum(t[side]["honest_banned"] for t in table.values()),
                     "attackers_banned": sum(t[side]["attackers_banned"]
                                             for t in table.values())}
              for side in ("before", "after")}
    return {"attacks": table, "totals": totals, "changed": changed}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any]) -> str:
    keys = ("honest_banned", "attackers_banned", "median_ratio", "max_asr", "mean_reward",
            "min_tpr")
    lines = ["| attack | " + " | ".join(f"{k} (before → after)" for k in keys) + " |",
             "| --- |" + " --- |" * len(keys)]
    for attack, sides in result["attacks"].items():
        cells = [f"{_fmt(sides['before'][k])} → {_fmt(sides['after'][k])}" for k in keys]
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    t = result["totals"]
    lines += ["", f"honest banned {t['before']['honest_banned']} → {t['after']['honest_banned']}, "
              f"attackers banned {t['before']['attackers_banned']} → "
              f"{t['after']['attackers_banned']}", ""]
    lines += [f"- {c['attack']} seed {c['seed']}: honest {c['honest'][0]} → {c['honest'][1]}, "
              f"attackers {c['attackers'][0]} → {c['attackers'][1]}" for c in result["changed"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.held_out_compare",
        description="Compare two sets of benchmarks.held_out rows attack by attack (the "
                    "figures a rule change's adoption rule reads). Runs nothing.")
    parser.add_argument("--before", required=True,
                        help="FILE[,FILE...]; a published data file as FILE:key[+key...]")
    parser.add_argument("--after", required=True, help="the same, for the other rule")
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison")
    args = parser.parse_args(argv)
    result = compare(load(args.before), load(args.after))
    print(markdown(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
