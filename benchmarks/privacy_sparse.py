"""Sparse updates (the "pruning" training mode) under the robust rule: bytes, accuracy and
honest updates rejected, for top-k with error feedback and for magnitude pruning.

Offline (:mod:`fl_agent.simulation.offline`: the simulation's data, shards, device speeds,
training and the aggregator's round decision, without the chain), digits, MLP, 20 honest
clients (no attack unless ``--attack``), Dirichlet α = 0.5, 15 rounds, leave-one-out
scoring (the reward shares play no part here), blacklisting off by default so that every
client submits in every round and each round counts (``--blacklist``: the registry's rule,
as on chain; then the screens' statistics below are not recorded). Each client sends its
update through the wire (:mod:`fl_agent.privacy.sparse`): :class:`Sparsifier` with its
residual kept as safetensors bytes between rounds, :func:`encode_delta`; the aggregator
decodes it with :func:`decode_sparse` and gives :func:`densify`'s full vector to the
strategy, unchanged.
Ratio 0 is the dense baseline: plain weights (:func:`encode_weights`), no sparsifier.

Methods: ``topk`` (top-k of the update over the whole vector, error feedback), ``topk-tensor``
(the same per tensor: each layer keeps the same fraction), ``magnitude`` (the local model
with its smallest weights zeroed, sent as its remaining weights; no residual).
Strategies: ``fairfl`` configured as the aggregator agent does for a task that prunes
(:func:`~fl_agent.simulation.offline.aggregator_strategy`: validation gate, trigger screen
over each sender's last two rounds; over the update alone for the dense baseline, a plain
task; ``--trigger-rounds`` sets it) and ``fedavg``.

Two variants of what clients do, each measured once and written up in the docs:
``--take-back`` (rule R53, not adopted): an honest client told that its update was not used
adds it back into its residual (``--take-back-after noise``, rule R53b, not shipped: only
after a NOISE refusal or a hold-back); ``--bare-attacks``: an attacker's poisoned rounds go out
sparsified alone, without its residual, which they leave untouched.

Per run: bytes per update (mean of the encoded documents), final test accuracy, the honest
false-positive rate (rejected honest submissions over honest submissions) with the
rejections by reason and round, and the honest clients the registry would have blacklisted
(``max_rejections`` within its window, replayed on the record). To say *which* check
rejects what, every round also records, for every update, the statistics of two of
FairFL's screens, recomputed here on all the round's deltas (FairFL computes them on the
updates that passed the earlier steps, nearly all of them): the NOISE check's largest
cosine to another clipped delta, and the trigger screen's excess with the number of input
features the update's input-layer change touches. The same statistics on the sum of each
client's last 2, 3 and 5 deltas measure the proposed fix, an aggregator that screens what
a participant sent over a few rounds (docs/privacy-sparse.md).

The constants (methods, ratios, rounds, clients) were chosen on seeds 1-3; the table in
the docs is on seeds 11-13, used for nothing else.

    python -m benchmarks.privacy_sparse                     # seeds 11-13, the published table
    python -m benchmarks.privacy_sparse --seeds 1,2,3 \\
        --json reports/bench/privacy_sparse_tuning.json \\
        --plot reports/bench/privacy_sparse_tuning.png      # the tuning runs
    python -m benchmarks.privacy_sparse --seeds 1 --ratios 0,0.99 --methods topk --rounds 3
    python -m benchmarks.privacy_sparse --attack backdoor --blacklist --strategies fairfl \
        --ratios 0,0.9,0.99 --methods topk,topk-tensor     # the backdoor, as on chain
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import machine, progress_bar, publish

EVALUATION_SEEDS = (11, 12, 13)
METHODS = ("topk", "topk-tensor", "magnitude")
STRATEGIES = ("fairfl", "fedavg")
RATIOS = (0.0, 0.5, 0.9, 0.99)
#: Windows (rounds) over which each client's deltas are summed for the proposed screens; 1
#: is the update alone, what FairFL screens now.
WINDOWS = (1, 2, 3, 5)
#: The window the table shows (chosen on seeds 1-3).
SHOWN_WINDOW = 3


def _sparsifier(method: str, ratio: float, spec: Any) -> Any:
    from fl_agent.privacy.sparse import Sparsifier

    if method == "topk":
        return Sparsifier(ratio)
    if method == "topk-tensor":
        return Sparsifier(ratio, scope="tensor", spec=spec)
    return Sparsifier(ratio, method="magnitude")


#: What ``--take-back-after`` can name: any update not used, or only those the NOISE check
#: refused or the gate held back (rule R53b; the trigger screen refuses a taken-back update
#: again, rule R53).
TAKE_BACK_AFTER = {"any": None, "noise": frozenset({"noise", "held_back"})}


def _on_the_wire(client: Any, spec: Any, sparsifier: Any, sizes: list[int],
                 take_back: bool = False, bare_attacks: bool = False,
                 take_back_after: str = "any") -> Any:
    """``client`` sending its update as a sparse delta: the participant's side (sparsify,
    residual kept as bytes, encode) and the aggregator's (decode, densify). An attacker's
    poison runs first: it sparsifies like everyone else. With ``take_back`` an honest client
    that learns its update was not used (rejected or held back; with ``take_back_after``
    "noise", only for those reasons, :data:`TAKE_BACK_AFTER`) adds it back into its residual
    (:func:`~fl_agent.privacy.sparse.take_back`); an attacker keeps what it did.
    The run tells each client its verdict through ``observe``, forwarded to a poison that
    listens for it. With ``bare_attacks`` an attacker's poisoned rounds (those whose poison
    changed the trained vector) are sparsified alone: no residual goes out with them, and
    none of them stays behind in the residual, which carries its honest rounds only."""
    from fl_agent.privacy.sparse import (
        decode_sparse,
        decode_state,
        densify,
        encode_delta,
        encode_state,
    )
    from fl_agent.privacy.sparse import take_back as take_back_into

    kept: dict[str, bytes | None] = {"state": None, "sent": None}
    poison = client.poison
    restores = take_back and not client.malicious and sparsifier.keeps_state
    reasons = TAKE_BACK_AFTER[take_back_after]

    def send(global_params: np.ndarray, trained: np.ndarray) -> np.ndarray:
        poisoned = trained if poison is None else poison(global_params, trained)
        if bare_attacks and not np.array_equal(poisoned, trained):
            delta, _ = sparsifier.sparsify(global_params, poisoned, None)
        else:
            state = None if kept["state"] is None else decode_state(kept["state"], spec)
            delta, state = sparsifier.sparsify(global_params, poisoned, state)
            kept["state"] = None if state is None else encode_state(spec, state)
        data = encode_delta(spec, delta)
        kept["sent"] = data
        sizes.append(len(data))
        return densify(decode_sparse(data, spec), global_params)

    def observe(verdict: str, *, ban_next: bool, reason: str | None = None) -> None:
        listens = getattr(poison, "observe", None)
        if listens is not None:
            listens(verdict, ban_next=ban_next, reason=reason)
        if restores and verdict != "accepted" and kept["sent"] is not None \
                and (reasons is None or reason in reasons):
            state = decode_state(kept["state"], spec) if kept["state"] is not None else None
            kept["state"] = encode_state(spec, take_back_into(
                state, decode_sparse(kept["sent"], spec)))
        kept["sent"] = None

    send.observe = observe  # type: ignore[attr-defined]
    return replace(client, poison=send)


def screen_statistics(deltas: np.ndarray, input_layer: tuple[int, int, int] | None
                      ) -> dict[str, list[float]]:
    """Per delta: the NOISE check's largest cosine to another clipped delta; the trigger
    screen's excess and the input features its input-layer change touches."""
    from sklearn.metrics.pairwise import cosine_similarity

    from fl_agent.aggregation.base import clip_norms, row_norms
    from fl_agent.aggregation.trigger_screen import trigger_excess

    clipped = clip_norms(deltas, 2.0 * float(np.median(row_norms(deltas))))
    pairwise = cosine_similarity(clipped)
    np.fill_diagonal(pairwise, -np.inf)
    out = {"max_pair_cosine": pairwise.max(axis=1).tolist()}
    if input_layer is not None:
        offset, units, features = input_layer
        block = deltas[:, offset:offset + units * features].reshape(-1, units, features)
        out["trigger_excess"] = trigger_excess(deltas, input_layer).tolist()
        out["input_features"] = (np.abs(block).sum(axis=1) > 0).sum(axis=1).tolist()
    return out


class Windows:
    """Each client's deltas of the last rounds, for the screens on their sums (the proposed
    fix: an aggregator that remembers what each participant sent)."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.sizes = sizes
        self.history: list[np.ndarray] = []

    def statistics(self, deltas: np.ndarray, input_layer: tuple[int, int, int] | None
                   ) -> dict[int, dict[str, list[float]]]:
        """The screens' statistics on the sums of each client's last ``w`` deltas, for each
        window size ``w``. Every client submits in every round (blacklisting is off), so
        row ``j`` is client ``j`` in every round."""
        self.history.append(deltas)
        return {w: screen_statistics(np.sum(self.history[-w:], axis=0), input_layer)
                for w in self.sizes}


def would_blacklist(run: Any, clients: int, window_rounds: int, max_rejections: int,
                    slack: int) -> list[int]:
    """The clients the registry would have blacklisted, replaying its tumbling window on
    the run's rejections (as :func:`~fl_agent.simulation.offline.run_offline` does with
    blacklisting on; here nobody is removed)."""
    window = window_rounds * (clients + slack)
    opened: dict[int, tuple[int, int]] = {}
    block, out = 0, set()
    for r in run.rounds:
        block += len(r.submitted) + 2
        uncounted = {r.submitted[j] for j in r.decision.accepted}
        uncounted |= {r.submitted[j] for j, why in r.decision.reasons.items()
                      if why == "held_back"}  # the registry does not count these either
        for i in r.submitted:
            if i not in uncounted:
                start, count = opened.get(i, (block, 0))
                if count == 0 or block >= start + window:
                    start, count = block, 0
                opened[i] = (start, count + 1)
                if count + 1 >= max_rejections:
                    out.add(i)
    return sorted(out)


def attack_round_tpr(rounds: Any, bad: set[int], attacks_in: Callable[[int], bool]
                     ) -> float | None:
    """The share of the attackers' (``bad``) submissions turned away, over the rounds they
    attack in (``attacks_in``: all of them unless the attack is intermittent, -every-N or
    -from-F); None without any."""
    sent = turned_away = 0
    for r in rounds:
        if not attacks_in(r.round):
            continue
        accepted = {r.submitted[j] for j in r.decision.accepted}
        for i in r.submitted:
            if i in bad:
                sent += 1
                turned_away += i not in accepted
    return turned_away / sent if sent else None


def measure_run(seed: int, method: str, ratio: float, strategy_name: str, *, clients: int,
                rounds: int, attack: str, blacklist: bool = False,
                trigger_rounds: int | None = None, noise_rounds: int | None = None,
                take_back: bool = False, bare_attacks: bool = False,
                take_back_after: str = "any") -> dict[str, Any]:
    import dataclasses

    from benchmarks.rule_alone import attack_rate
    from fl_agent.aggregation import get_strategy
    from fl_agent.aggregation.clustering import chance_similarity
    from fl_agent.chain.records import TrainingMode
    from fl_agent.learning.models import input_layer, param_count
    from fl_agent.learning.weights import encode_weights
    from fl_agent.privacy.plan import build_plan
    from fl_agent.simulation.config import (
        BLOCKS_PER_ROUND_SLACK,
        SimulationConfig,
        attack_settings,
    )
    from fl_agent.simulation.offline import (
        aggregator_strategy,
        decide_as_on_chain,
        federation,
        run_offline,
    )

    settings = {"attack": "none", "malicious": 0.0} if attack == "none" \
        else attack_settings(attack)
    config = SimulationConfig(seed=seed, rounds=rounds, clients=clients, scoring="loo",
                              **settings)
    fed = federation(config)
    spec = fed.spec
    if strategy_name == "fairfl":  # as the aggregator runs a task that prunes (or a plain one)
        plan = build_plan(TrainingMode.PRUNING, prune_ratio=ratio) if ratio > 0 else None
        strategy = aggregator_strategy(fed, plan)  # imports the agents: only when needed
        if trigger_rounds is not None:
            strategy = dataclasses.replace(strategy, trigger_rounds=trigger_rounds)
        if noise_rounds is not None:
            strategy = dataclasses.replace(strategy, noise_rounds=noise_rounds)
        screened = strategy.input_layer
    else:
        strategy = get_strategy(strategy_name)
        screened = input_layer(spec)  # what the aggregator screens on image data
    sizes: list[int] = []
    members = list(fed.clients)
    if ratio > 0:
        sparsifier = _sparsifier(method, ratio, spec)
        members = [_on_the_wire(c, spec, sparsifier, sizes, take_back, bare_attacks,
                                take_back_after) for c in members]
    statistics: list[dict[int, dict[str, list[float]]]] = []
    windows = Windows(WINDOWS)

    def decide(strategy: Any, global_params: np.ndarray, updates: np.ndarray,
               claims: np.ndarray, **options: Any) -> Any:
        if ratio == 0:
            sizes.extend(len(encode_weights(spec, u)) for u in updates)
        if not blacklist:  # rows are clients only while nobody is blacklisted
            deltas = updates.astype(np.float64) - np.asarray(global_params, dtype=np.float64)
            statistics.append(windows.statistics(deltas, screened))
        return decide_as_on_chain(strategy, global_params, updates, claims, **options)

    run = run_offline(fed, members, blacklist=blacklist, decide=decide, strategy=strategy)
    if blacklist:
        statistics = [{} for _ in run.rounds]
    bad = {i for i, c in enumerate(fed.clients) if c.malicious}
    chance = chance_similarity(param_count(spec), 4.0)
    trigger_share = 0.2  # FairFL's default, which the aggregator uses
    reasons: Counter[str] = Counter()
    by_round, rejected_honest = [], []
    honest = flagged = attacks = 0
    below_chance: Counter[int] = Counter()  # window -> honest updates the NOISE check hits
    piled: Counter[int] = Counter()  # window -> honest updates the trigger screen hits
    bad_below: Counter[int] = Counter()  # the same for the attackers' updates
    bad_piled: Counter[int] = Counter()
    for r, by_window in zip(run.rounds, statistics, strict=True):
        accepted = {r.submitted[j] for j in r.decision.accepted}
        count = 0
        for j, i in enumerate(r.submitted):
            for w, stats in by_window.items():
                noise = stats["max_pair_cosine"][j] <= chance
                pile = stats.get("trigger_excess", [0.0] * (j + 1))[j] >= trigger_share
                (bad_below if i in bad else below_chance)[w] += noise
                (bad_piled if i in bad else piled)[w] += pile
            if i in bad:
                attacks += 1
                continue
            honest += 1
            if i not in accepted:
                flagged += 1
                count += 1
                reason = str(r.decision.reasons[j])
                reasons[reason] += 1
                rejected_honest.append({"round": r.round, "client": i, "reason": reason,
                                        **{k: round(float(v[j]), 4)
                                           for k, v in by_window.get(1, {}).items()}})
        by_round.append(count)
    blacklisted = would_blacklist(run, clients, config.window_rounds, config.max_rejections,
                                  BLOCKS_PER_ROUND_SLACK)
    return {
        "seed": seed, "method": "dense" if ratio == 0 else method, "ratio": ratio,
        "strategy": strategy_name, "attack": attack, "blacklist": blacklist,
        "trigger_rounds": getattr(strategy, "trigger_rounds", None),
        "accuracy": run.test_accuracy,
        "bytes_per_update": float(np.mean(sizes)), "dense_bytes": len(encode_weights(
            spec, np.zeros(param_count(spec), dtype=np.float32))),
        "params": param_count(spec),
        "fpr": flagged / honest if honest else 0.0, "honest_submissions": honest,
        "tpr": attack_round_tpr(run.rounds, bad, lambda _: True),
        # The same over the rounds the attackers attack in (all of them unless the attack
        # is intermittent: -every-N, -from-F).
        "tpr_attack_rounds": attack_round_tpr(run.rounds, bad, config.attacks_in),
        "noise_rounds": getattr(strategy, "noise_rounds", None),
        "take_back": take_back,
        "take_back_after": take_back_after if take_back else None,
        "bare_attacks": bare_attacks,
        "attack_success": attack_rate(fed, run),
        "rejections_by_reason": dict(sorted(reasons.items())),
        "honest_rejections_by_round": by_round,
        "honest_would_be_blacklisted": [i for i in blacklisted if i not in bad],
        "chance": chance,
        # Share of honest updates each screen would hit, on the update itself (window 1)
        # and on the sum of the client's last w updates (the proposed fix).
        # (not measured with blacklisting on)
        "honest_noise_by_window": {w: below_chance[w] / honest if honest else 0.0
                                   for w in WINDOWS} if not blacklist else None,
        "honest_trigger_by_window": {w: piled[w] / honest if honest else 0.0
                                     for w in WINDOWS} if not blacklist else None,
        "malicious_noise_by_window": {w: bad_below[w] / attacks for w in WINDOWS}
        if attacks and not blacklist else None,
        "malicious_trigger_by_window": {w: bad_piled[w] / attacks for w in WINDOWS}
        if attacks and not blacklist else None,
        "rejected_honest": rejected_honest,
    }


def _mean_range(values: list[float], fmt: str) -> str:
    low, high, mean = min(values), max(values), float(np.mean(values))
    return format(mean, fmt) if low == high else \
        f"{format(mean, fmt)} ({format(low, fmt)}-{format(high, fmt)})"


def markdown(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    header = ["method", "ratio", "bytes / update (× dense)"]
    attacked = any(r["tpr"] is not None for r in rows)
    for s in strategies:
        header += [f"accuracy {s}", f"honest FPR {s}"] + ([f"TPR {s}"] if attacked else [])
    succeeded = any(r.get("attack_success") is not None for r in rows)
    if succeeded:
        header += [f"attack success {s}" for s in strategies]
    header += ["FairFL rejections by reason", "would be blacklisted (FairFL)",
               f"NOISE hits: now / over {SHOWN_WINDOW} rounds",
               f"trigger hits: now / over {SHOWN_WINDOW} rounds"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method, ratio in dict.fromkeys((r["method"], r["ratio"]) for r in rows):
        got = [r for r in rows if r["method"] == method and r["ratio"] == ratio]
        size = float(np.mean([r["bytes_per_update"] for r in got]))
        cells = [method, f"{ratio:g}", f"{size:,.0f} ({size / got[0]['dense_bytes']:.3f})"]
        for s in strategies:
            mine = [r for r in got if r["strategy"] == s]
            cells += [_mean_range([r["accuracy"] for r in mine], ".3f") if mine else "–",
                      _mean_range([r["fpr"] for r in mine], ".3f") if mine else "–"]
            if attacked:
                cells.append(_mean_range([r["tpr"] for r in mine], ".3f") if mine else "–")
        if succeeded:
            for s in strategies:
                rates = [r["attack_success"] for r in got if r["strategy"] == s
                         and r.get("attack_success") is not None]
                cells.append(_mean_range(rates, ".3f") if rates else "–")
        fair = [r for r in got if r["strategy"] == "fairfl"]
        reasons: Counter[str] = Counter()
        for r in fair:
            reasons.update(r["rejections_by_reason"])
        cells.append(", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none")
        cells.append(str(sum(len(r["honest_would_be_blacklisted"]) for r in fair)))
        for key in ("honest_noise_by_window", "honest_trigger_by_window"):
            if any(r[key] is None for r in got):  # blacklisting on: not measured
                cells.append("–")
                continue
            now = np.mean([r[key][1] for r in got])
            summed = np.mean([r[key][SHOWN_WINDOW] for r in got])
            cells.append(f"{now:.3f} / {summed:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    submissions = rows[0]["honest_submissions"] if rows else 0
    return "\n".join(lines) + (
        f"\n\nseeds {', '.join(map(str, seeds))}; mean (range) over seeds; FPR over "
        f"{submissions} honest submissions per run; reasons and blacklists summed over seeds; "
        "'hits' are the shares of honest updates (both strategies' runs) whose largest "
        "cosine to another update is within chance (NOISE) or whose trigger excess reaches "
        f"0.2, computed on the update alone (now) and on the sum of each client's last "
        f"{SHOWN_WINDOW} updates (the proposed fix)")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = sorted({r["ratio"] for r in rows})
    positions = {ratio: i for i, ratio in enumerate(ratios)}
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    fig, (fpr_ax, acc_ax, size_ax) = plt.subplots(1, 3, figsize=(15, 4.5))
    for method in methods:
        def at(ratio: float, strategy: str | None = None, method: str = method
               ) -> list[dict[str, Any]]:
            return [r for r in rows if r["ratio"] == ratio
                    and (r["method"] == method or r["ratio"] == 0)
                    and (strategy is None or r["strategy"] == strategy)]

        sizes = [(positions[ratio], at(ratio)) for ratio in ratios if at(ratio)]
        color = f"C{METHODS.index(method)}"
        size_ax.plot([x for x, _ in sizes],
                     [np.mean([r["bytes_per_update"] for r in got]) / 1000 for _, got in sizes],
                     "-o", color=color, label=method)
        for strategy, style in (("fairfl", "-o"), ("fedavg", ":s")):
            points = [(positions[ratio], at(ratio, strategy)) for ratio in ratios
                      if at(ratio, strategy)]
            if not points:
                continue
            xs = [x for x, _ in points]
            label = f"{method}, {strategy}"
            acc_ax.plot(xs, [np.mean([r["accuracy"] for r in got]) for _, got in points],
                        style, color=color, label=label)
            if strategy == "fairfl":
                fpr_ax.plot(xs, [np.mean([r["fpr"] for r in got]) for _, got in points],
                            style, color=color, label=label)
    for ax in (fpr_ax, acc_ax, size_ax):
        ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
        ax.set_xlabel("fraction of entries dropped (0: dense weights)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    seeds = ", ".join(map(str, sorted({r["seed"] for r in rows})))
    fpr_ax.set(ylabel="honest updates rejected", title=f"FairFL's honest FPR (seeds {seeds})")
    acc_ax.set(ylabel="final test accuracy", title="Accuracy, FairFL and FedAvg")
    size_ax.set(ylabel="kB per update", yscale="log", title="Bytes on the wire")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _names(allowed: tuple[str, ...]) -> Callable[[click.Context, click.Parameter, str],
                                                   list[str]]:
    def check(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise click.BadParameter(f"use some of {', '.join(allowed)}; got {value!r}")
        return names
    return check


def _help(text: str) -> str:
    """The module docstring as terminal text: Sphinx roles and double backticks dropped."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
    return text.replace("\n\n    python -m", "\n\n\b\n    python -m", 1)  # \b: keep lines


@click.command(help=_help(__doc__ or ""), context_settings={"max_content_width": 100})
@click.option("--seeds", default=",".join(map(str, EVALUATION_SEEDS)), show_default=True,
              help="comma-separated seeds (the default ones are the evaluation seeds)")
@click.option("--ratios", default=",".join(f"{r:g}" for r in RATIOS), show_default=True,
              help="fractions of entries dropped; 0 is the dense baseline")
@click.option("--methods", default=",".join(METHODS), show_default=True,
              callback=_names(METHODS), help="sparsification methods")
@click.option("--strategies", default=",".join(STRATEGIES), show_default=True,
              callback=_names(STRATEGIES), help="aggregation strategies")
@click.option("--clients", default=20, show_default=True, type=click.IntRange(2, 200))
@click.option("--rounds", default=15, show_default=True, type=click.IntRange(1, 1000))
@click.option("--attack", default="none", show_default=True,
              help="an attack of fl-agent bench (30 % malicious); 'none': every client honest")
@click.option("--blacklist/--no-blacklist", default=False, show_default=True,
              help="blacklist after the registry's rejections, as on chain (off: every client "
                   "submits in every round, and the screens' statistics are recorded)")
@click.option("--trigger-rounds", type=click.IntRange(1, 20), default=None,
              help="rounds FairFL's trigger screen adds up (default: what the aggregator uses, "
                   "2 for a task that prunes, 1 for the dense baseline)")
@click.option("--noise-rounds", type=click.IntRange(1, 20), default=None,
              help="rounds FairFL's NOISE check adds up (default: what the aggregator uses; "
                   "above 1 it must equal the trigger screen's when that is above 1)")
@click.option("--take-back/--no-take-back", default=False, show_default=True,
              help="honest clients add an update the aggregator did not use (rejected or "
                   "held back) back into their residual, to send it again later (top-k)")
@click.option("--take-back-after", type=click.Choice(sorted(TAKE_BACK_AFTER)), default="any",
              show_default=True,
              help="with --take-back: take back any update not used, or only those the NOISE "
                   "check refused or the gate held back")
@click.option("--bare-attacks/--attacks-with-residual", default=False, show_default=True,
              help="an attacker's poisoned rounds go out sparsified alone, without its "
                   "residual and leaving none behind (default: through the same error "
                   "feedback as its honest rounds); for attacks that poison the update")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              default=Path("reports/bench/privacy_sparse.json"), show_default=True)
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              default=Path("docs/plots/privacy_sparse.png"), show_default=True)
def main(seeds: str, ratios: str, methods: list[str], strategies: list[str], clients: int,
         rounds: int, attack: str, blacklist: bool, trigger_rounds: int | None,
         noise_rounds: int | None, take_back: bool, take_back_after: str, bare_attacks: bool,
         json_path: Path, plot_path: Path) -> None:
    import torch

    from fl_agent.errors import ConfigError
    from fl_agent.simulation.attacks import COLLUDING_ATTACKS, MODEL_ATTACKS
    from fl_agent.simulation.config import attack_settings

    torch.set_num_threads(1)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        ratio_list = _floats(ratios)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    if not seed_list or not ratio_list or any(not 0 <= r < 1 for r in ratio_list):
        raise click.BadParameter("need seeds, and ratios in [0, 1)")
    if attack != "none":
        try:
            settings = attack_settings(attack)
        except ConfigError as err:
            raise click.BadParameter(str(err), param_hint="--attack") from err
        if bare_attacks and settings["attack"] not in MODEL_ATTACKS | COLLUDING_ATTACKS:
            raise click.BadParameter(
                f"{attack} poisons the attackers' data, not their update, so there is no "
                "poisoned round to send bare", param_hint="--bare-attacks")
    elif bare_attacks:
        raise click.BadParameter("needs an --attack whose attackers poison their update",
                                 param_hint="--bare-attacks")
    if take_back_after != "any" and not take_back:
        raise click.BadParameter("says what --take-back takes back: add --take-back",
                                 param_hint="--take-back-after")
    plan = [(seed, method, ratio, strategy) for seed in seed_list for ratio in ratio_list
            for method in (["dense"] if ratio == 0 else methods) for strategy in strategies]
    started = time.time()
    about = machine()
    rows = []
    with progress_bar() as progress:
        task = progress.add_task("runs", total=len(plan))
        for seed, method, ratio, strategy in plan:
            progress.update(task, description=f"seed {seed} {method} {ratio:g} {strategy}")
            row = measure_run(seed, method, ratio, strategy, clients=clients, rounds=rounds,
                              attack=attack, blacklist=blacklist, trigger_rounds=trigger_rounds,
                              noise_rounds=noise_rounds, take_back=take_back,
                              bare_attacks=bare_attacks, take_back_after=take_back_after)
            rows.append(row)
            progress.console.print(
                f"seed {seed} {row['method']:11} {ratio:<4g} {strategy:6} accuracy "
                f"{row['accuracy']:.3f} FPR {row['fpr']:.3f} "
                f"{row['bytes_per_update']:,.0f} B/update {row['rejections_by_reason']}")
            progress.advance(task)
    result = {"settings": {"seeds": seed_list, "ratios": ratio_list, "methods": methods,
                           "strategies": strategies, "clients": clients, "rounds": rounds,
                           "attack": attack, "scoring": "loo", "blacklist": blacklist,
                           "trigger_rounds": trigger_rounds, "noise_rounds": noise_rounds,
                           "take_back": take_back, "take_back_after": take_back_after,
                           "bare_attacks": bare_attacks},
              "machine": about, "wall_s": round(time.time() - started, 1), "runs": rows}
    publish(result, json_path, markdown(rows))
    plot(rows, plot_path)
    print(f"plot: {plot_path}")


if __name__ == "__main__":
    main()
