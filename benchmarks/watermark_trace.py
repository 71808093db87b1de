"""Why FairFL's norm screen refuses a small watermarking client: each update's length with
and without its mark, round by round.

Offline, the federation of `benchmarks.privacy_watermark` (20 honest clients, digits, MLP,
Dirichlet α = 0.5, 40-bit keys, the module's margin, strength and reach, and `--length-cap`),
decided by a watermark task's FairFL rule as on chain. In every round each client trains
twice from the same global model with the same batches: with its mark (the update it
submits) and without (its training's own update). Per client and round: the length of the
submitted delta, of the unmarked delta, of their difference (the mark's part, roughly), the
round's median submitted length and the rule's reason if it refused the update.

Prints the refused updates with those lengths and a count by reason; writes every row to
`--json`. Nothing is chosen from it; rule R55's file cites its figures.

    python -m benchmarks.watermark_trace --seed 1 --rounds 60
    python -m benchmarks.watermark_trace --seed 1 --rounds 60 --length-cap 1
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
import numpy as np


def trace(seed_number: int, rounds: int, length_cap: float | None) -> list[dict]:
    """One row per client and round (see the module docstring)."""
    from benchmarks.privacy_watermark import Seed, Settings
    from benchmarks.watermark_cap import marking
    from fl_agent.learning.models import init_params
    from fl_agent.learning.training import evaluate, round_seed, train_local, validation_scores
    from fl_agent.privacy import watermark
    from fl_agent.simulation.offline import decide_as_on_chain

    seed = Seed(seed_number, rounds, lambda: None)
    settings = Settings(bits=40, margin=watermark.DEFAULT_MARGIN,
                        strength=watermark.DEFAULT_STRENGTH, reach=watermark.DEFAULT_REACH,
                        length_cap=length_cap, rounds=rounds)
    fed, spec = seed.fed, seed.spec
    config = fed.config
    X_val = fed.data.standardize(fed.splits.validation.X)
    y_val = np.asarray(fed.splits.validation.y, dtype=np.int64)
    shards = [(fed.data.standardize(c.X), np.asarray(c.y, dtype=np.int64)) for c in fed.clients]
    claims = np.array([len(c.y) for c in fed.clients], dtype=np.float64)
    keys = seed.keys(settings)
    params = init_params(spec, config.seed)
    rows: list[dict] = []
    for number in range(1, rounds + 1):
        marked, plain = [], []
        for client, (X, y), key in zip(fed.clients, shards, keys, strict=True):
            hook = marking(spec, key, settings.strength, settings.margin, settings.reach,
                           config.lr, length_cap)
            same = {"seed": round_seed(client.seed, number), "batch_size": config.batch_size,
                    "lr": config.lr}
            marked.append(train_local(spec, params, X, y, config.steps, gradient_hook=hook,
                                      **same).vector)
            plain.append(train_local(spec, params, X, y, config.steps, **same).vector)
        updates = np.stack(marked)
        decision = decide_as_on_chain(
            seed.fairfl_marked, params, updates, claims,
            gate=lambda v: validation_scores(spec, v, X_val, y_val, "loss"),
            score=lambda v: evaluate(spec, v, X_val, y_val, "accuracy"),
            scoring="loo", round_number=number)
        submitted = np.linalg.norm(updates - params, axis=1)
        unmarked = np.linalg.norm(np.stack(plain) - params, axis=1)
        median = float(np.median(submitted))
        for i in range(len(fed.clients)):
            refused = i not in decision.accepted
            rows.append({"round": number, "client": i, "share": seed.shares[i],
                         "submitted": float(submitted[i]), "unmarked": float(unmarked[i]),
                         "mark": float(np.linalg.norm(marked[i] - plain[i])),
                         "median": median,
                         "reason": str(decision.reasons.get(i, "refused")) if refused else None})
        params = np.asarray(decision.params, dtype=np.float32)
    return rows


@click.command(help=__doc__)
@click.option("--seed", "seed_number", type=int, default=1, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=60, show_default=True)
@click.option("--length-cap", type=click.FloatRange(0, min_open=True), default=None,
              help="rule R55's candidate, not adopted (benchmarks.watermark_cap; default: "
              "none)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/bench/watermark_trace.json"), show_default=True)
def main(seed_number: int, rounds: int, length_cap: float | None, json_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    rows = trace(seed_number, rounds, length_cap)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"seed": seed_number, "rounds": rounds,
                                     "length_cap": length_cap, "rows": rows}, indent=1))
    refused = [r for r in rows if r["reason"]]
    reasons = Counter(r["reason"].split(":")[0] for r in refused)
    print(f"seed {seed_number}, {rounds} rounds, length cap {length_cap}: refused "
          f"{len(refused)} of {len(rows)} ({dict(reasons) or 'none'})")
    for r in refused:
        print(f"  round {r['round']:3d} client {r['client']:2d} ({100 * r['share']:.1f} %): "
              f"{r['reason'].split(':')[0]}; length {r['submitted']:.3f} (unmarked "
              f"{r['unmarked']:.3f}, mark {r['mark']:.3f}), round median {r['median']:.3f}")
    print(f"written to {json_path}")


if __name__ == "__main__":
    main()
