"""Ownership watermarks (:mod:`fl_agent.privacy.watermark`) in a 20-client federation.

Offline, digits, MLP, 20 honest clients, Dirichlet α = 0.5 (`--partition iid`: equal
shards), 20 rounds of 20 local steps, equal devices (no workload balancing), the
simulation's shards and seeds
(:func:`fl_agent.simulation.offline.federation`). Every client holds its own key and trains
with :func:`~fl_agent.privacy.watermark.embed_hook` (the settings' margin, strength and
reach, and the federation's lr, as the participant agent passes them). The round loop is a
plain one (:func:`~fl_agent.simulation.offline.decide_as_on_chain`; leave-one-out scoring,
as the score does not change the aggregate; every client in every round, unlike
:func:`run_offline`, whose blacklisting ``benchmarks.held_out --watermark`` measures).

On the final global model of a FedAvg run, per seed and per bit count of ``--bits``:

* every client's key: bits matched and the verdict, as trained, after **fine-tuning**
  (``--fine-tune-steps`` SGD steps on the validation split, which no client trained on,
  without the hook) and after **pruning** (half of every weight tensor, smallest magnitudes
  first: torch's ``l1_unstructured``), and after **permuting** the hidden units (the same
  function, weights in another order), with each client's share of the FedAvg weight;
* ``--wrong-keys`` keys nobody embedded: bits matched and the verdict;
* test accuracy against the same run without watermarks.

And FairFL's rule (``aggregator_strategy``) on the same federation: a plain task's rule
without watermarks, a watermark task's rule (no NOISE check) with them, and, with them, the
plain rule a watermark task ran before 2026-12-05 (with the default bit count if `--bits`
has it, else the largest given): the share of
honest submissions it rejects (all clients are honest, so every rejection is a false
positive), the clients it rejects three times or more (the registry blacklists at three
within four rounds; nobody is removed here) and the verdicts on its final model. ``--tune``
runs a watermark task's rule.

``--tune`` runs a grid instead (``--bits`` x ``--margins`` x ``--strengths`` x ``--layers`` x
``--reaches`` x ``--share-caps``): per setting, the verdicts on FedAvg's and FairFL's models
and FairFL's false positives. The defaults of the module were chosen this way on the tuning
seeds 1-3 (and checked under attack with ``benchmarks.held_out --watermark`` on seeds 1-5).

Writes ``reports/bench/privacy_watermark.json`` (``privacy_watermark_tuning.json`` with
``--tune``; settings, machine, every figure), a plot (``docs/plots/privacy_watermark.png``)
and prints the tables docs/privacy-watermark.md quotes.

    python -m benchmarks.privacy_watermark                       # evaluation seeds 11-13
    python -m benchmarks.privacy_watermark --tune --seeds 1,2,3 --bits 32 --margins 0.05 \\
        --strengths 2 --reaches none,0.15,0.25,0.35,0.5   # the grid the defaults come from
    python -m benchmarks.privacy_watermark --seeds 11 --rounds 2 --bits 32 --no-fairfl
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import machine, progress_bar, publish

EVALUATION_SEEDS = (11, 12, 13)
TUNING_SEEDS = (1, 2, 3)
#: Fine-tuning steps and pruned shares of the robustness curves.
CURVE_STEPS = (100, 300, 1000, 3000)
CURVE_PRUNE = (0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class Settings:
    bits: int
    margin: float
    strength: float
    layer: str | None = None
    reach: float | None = None
    share_cap: float | None = None
    length_cap: float | None = None
    rounds: int = 20
    fine_tune_steps: int = 300
    prune: float = 0.5
    wrong_keys: int = 20


def mean_weight(claims: Sequence[float], accepted: Sequence[int]) -> float | None:
    """The mean weight of a round's ``accepted`` updates: their ``claims``, each capped at
    the median of the round's other submitted claims
    (:func:`fl_agent.aggregation.rounds.capped_claims`). The aggregator caps among the
    accepted updates only and merges copies, so its weights can differ when updates are
    rejected. None when nothing was accepted. What a participant could read from the chain
    (the round's ``UpdateSubmitted`` claims and ``RoundFinalized`` contributors); for
    :func:`reach_for`."""
    from fl_agent.aggregation.rounds import capped_claims

    if not len(accepted):
        return None
    return float(np.mean(capped_claims(np.asarray(claims, dtype=np.float64))[list(accepted)]))


def reach_for(reach: float | None, weight: float, mean: float | None,
              share_cap: float | None) -> float | None:
    """Rule R43's candidate, **tried on the tuning seeds and not adopted**
    (docs/privacy-watermark.md, "A reach that grows as the share shrinks"): a participant
    whose update weighs ``weight`` (its samples), when the round before accepted updates of
    ``mean`` weight on average (:func:`mean_weight`), pushes
    ``reach * min(share_cap, max(1, mean / weight))`` (FedAvg passes a move on in proportion
    to its weight). Without a cap, a mean (round 1) or a reach: the reach as it is."""
    if reach is None or share_cap is None or mean is None:
        return reach
    if not (weight > 0 and mean > 0 and share_cap >= 1):
        raise ValueError(f"weights must be positive and the share cap at least 1, got "
                         f"weight={weight!r}, mean={mean!r}, share_cap={share_cap!r}")
    return reach * min(share_cap, max(1.0, mean / weight))


def bench_key(seed: int, client: int, bits: int, layer: str | None) -> Any:
    """A reproducible key per seed and client. Real participants use
    ``WatermarkKey.generate``; the benchmark derives them so that a run can be repeated."""
    from fl_agent.privacy.watermark import WatermarkKey

    secret = hashlib.sha256(f"fairfl-bench-watermark/{seed}/{client}".encode()).digest()
    return WatermarkKey(secret, bits, layer)


def setup(seed: int, rounds: int, partition: str = "dirichlet") -> Any:
    from fl_agent.simulation.config import SimulationConfig
    from fl_agent.simulation.offline import federation

    return federation(SimulationConfig(attack="none", malicious=0.0, seed=seed, rounds=rounds,
                                       device_spread=1.0, partition=partition))


def federated_run(fed: Any, strategy: Any, hooks: Callable[[float | None], list[Any]],
                  rounds: int, advance: Callable[[], Any] | None = None
                  ) -> tuple[np.ndarray, list[Any]]:
    """The offline round loop: ``hooks(mean)`` gives each round's gradient hook (or None) per
    client, given the mean weight of the updates the round before accepted (None in round
    1; :func:`mean_weight`). Returns the final global vector and each round's decision."""
    from fl_agent.learning.models import init_params
    from fl_agent.learning.training import evaluate, round_seed, train_local, validation_scores
    from fl_agent.simulation.offline import decide_as_on_chain

    config, spec = fed.config, fed.spec
    X_val = fed.data.standardize(fed.splits.validation.X)
    y_val = np.asarray(fed.splits.validation.y, dtype=np.int64)
    shards = [(fed.data.standardize(c.X), np.asarray(c.y, dtype=np.int64)) for c in fed.clients]
    claims = np.array([len(c.y) for c in fed.clients], dtype=np.float64)
    params = init_params(spec, config.seed)
    decisions: list[Any] = []
    for number in range(1, rounds + 1):
        mean = mean_weight(claims, decisions[-1].accepted) if decisions else None
        updates = np.stack([
            train_local(spec, params, X, y, config.steps,
                        seed=round_seed(client.seed, number), batch_size=config.batch_size,
                        lr=config.lr, gradient_hook=hook).vector
            for client, (X, y), hook in zip(fed.clients, shards, hooks(mean), strict=True)])
        decision = decide_as_on_chain(
            strategy, params, updates, claims,
            gate=lambda v: validation_scores(spec, v, X_val, y_val, "loss"),
            score=lambda v: evaluate(spec, v, X_val, y_val, "accuracy"),
            scoring="loo", round_number=number)
        params = np.asarray(decision.params, dtype=np.float32)
        decisions.append(decision)
        if advance is not None:
            advance()
    return params, decisions


def fine_tune(fed: Any, vector: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` plain SGD steps (no hook) on the validation split, which no client saw."""
    from fl_agent.learning.training import train_local

    X = fed.data.standardize(fed.splits.validation.X)
    y = np.asarray(fed.splits.validation.y, dtype=np.int64)
    return train_local(fed.spec, vector, X, y, steps, seed=fed.config.seed,
                       batch_size=fed.config.batch_size, lr=fed.config.lr).vector


def prune(spec: Any, vector: np.ndarray, amount: float) -> np.ndarray:
    """Zeroes the ``amount`` smallest-magnitude entries of every weight tensor (torch's
    ``l1_unstructured`` per layer; biases are kept)."""
    import torch
    from torch.nn.utils import prune as torch_prune

    from fl_agent.learning.models import model_from_vector, param_layout

    model = model_from_vector(spec, vector)
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is not None and weight.dim() >= 2:
            torch_prune.l1_unstructured(module, "weight", amount=amount)
            torch_prune.remove(module, "weight")
    # remove() registers the weight anew, after the bias: read it back in the spec's order.
    state = model.state_dict()
    return torch.cat([state[slot.name].reshape(-1) for slot in param_layout(spec)]).numpy()


def permute_hidden(spec: Any, vector: np.ndarray, seed: int) -> np.ndarray:
    """The same function with the MLP's first hidden units in another order (rows of
    ``fc1.weight`` and ``fc1.bias``, columns of the next weight): an attack on any watermark
    tied to weight positions, which costs the thief nothing."""
    from fl_agent.learning.models import param_layout

    slots = {slot.name: slot for slot in param_layout(spec)}
    following = "fc2.weight" if "fc2.weight" in slots else "out.weight"
    order = np.random.default_rng(seed).permutation(slots["fc1.weight"].shape[0])
    permuted = np.array(vector, dtype=np.float32, copy=True)

    def view(name: str) -> np.ndarray:
        slot = slots[name]
        return permuted[slot.offset:slot.offset + slot.size].reshape(slot.shape)

    view("fc1.weight")[:] = view("fc1.weight")[order].copy()
    view("fc1.bias")[:] = view("fc1.bias")[order].copy()
    view(following)[:] = view(following)[:, order].copy()
    return permuted


def verdicts(spec: Any, vector: np.ndarray, keys: list[Any]) -> dict[str, Any]:
    """How many of ``keys`` verify on ``vector``, their match rates and the largest tail."""
    from fl_agent.privacy.watermark import verify

    results = [verify(spec, vector, key) for key in keys]
    rates = [r.match_rate for r in results]
    return {"verified": sum(r.verified for r in results), "keys": len(keys),
            "match_90": sum(r.match_rate >= 0.9 for r in results),
            "match_rate_min": round(min(rates), 4),
            "match_rate_mean": round(float(np.mean(rates)), 4),
            "match_rate_max": round(max(rates), 4),
            "p_value_max": max(r.p_value for r in results),
            "match_rates": [round(r, 4) for r in rates],
            "verified_each": [r.verified for r in results]}


def rejections(fed: Any, decisions: list[Any]) -> dict[str, Any]:
    """Honest submissions rejected (every client is honest), the reasons, and the clients
    rejected ``max_rejections`` times or more (what the registry counts to blacklist)."""
    n = len(fed.clients)
    per_client = np.zeros(n, dtype=int)
    reasons: dict[str, int] = {}
    for decision in decisions:
        for i in set(range(n)) - set(decision.accepted):
            per_client[i] += 1
            reason = decision.reasons.get(i, "rejected").split(":")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
    return {"fpr": round(float(per_client.sum()) / (n * len(decisions)), 4),
            "rejected": int(per_client.sum()), "submissions": n * len(decisions),
            "reasons": reasons, "rejected_per_client": per_client.tolist(),
            "clients_rejected_3_or_more": int(np.sum(per_client >= fed.config.max_rejections))}


class Seed:
    """One seed's federation, with the runs the measurements share cached."""

    def __init__(self, seed: int, rounds: int, advance: Callable[[], Any],
                 partition: str = "dirichlet") -> None:
        from fl_agent.aggregation import get_strategy
        from fl_agent.learning.training import evaluate
        from fl_agent.simulation.offline import aggregator_strategy

        self.seed, self.rounds, self.advance = seed, rounds, advance
        self.fed = setup(seed, rounds, partition)
        self.spec = self.fed.spec
        self.n = len(self.fed.clients)
        X_test = self.fed.data.standardize(self.fed.splits.test.X)
        y_test = np.asarray(self.fed.splits.test.y, dtype=np.int64)
        self.accuracy = lambda v: round(evaluate(self.spec, v, X_test, y_test, "accuracy"), 4)
        samples = np.array([len(c.y) for c in self.fed.clients], dtype=float)
        self.shares = (samples / samples.sum()).round(4).tolist()
        self.fedavg = get_strategy("fedavg")
        from fl_agent.chain.records import TrainingMode
        from fl_agent.privacy.plan import build_plan

        self.fairfl = aggregator_strategy(self.fed)  # a plain task's rule
        #: A watermark task's rule, as its aggregator runs it (no NOISE check since
        #: 2026-12-05), and the plain rule it ran before, kept to show the difference.
        self.fairfl_marked = aggregator_strategy(self.fed, build_plan(TrainingMode.WATERMARK))

    def run(self, strategy: Any, settings: Settings | None) -> tuple[np.ndarray, list[Any]]:
        from benchmarks.watermark_cap import marking

        def hooks(mean: float | None) -> list[Any]:
            if settings is None:
                return [None] * self.n
            return [marking(self.spec, key, settings.strength, settings.margin,
                            reach_for(settings.reach, len(client.y), mean, settings.share_cap),
                            None if settings.reach is None else self.fed.config.lr,
                            settings.length_cap)
                    for key, client in zip(self.keys(settings), self.fed.clients, strict=True)]

        return federated_run(self.fed, strategy, hooks, self.rounds, self.advance)

    def keys(self, settings: Settings, wrong: bool = False) -> list[Any]:
        return [bench_key(self.seed, (1000 if wrong else 0) + i, settings.bits, settings.layer)
                for i in range(settings.wrong_keys if wrong else self.n)]


def watermarked_model(seed: Seed, settings: Settings, marked: np.ndarray,
                      curves: bool) -> dict[str, Any]:
    """The verdicts on a watermarked FedAvg model, fine-tuned, pruned, and with wrong keys."""
    keys = seed.keys(settings)
    tuned = fine_tune(seed.fed, marked, settings.fine_tune_steps)
    pruned = prune(seed.spec, marked, settings.prune)
    shuffled = permute_hidden(seed.spec, marked, seed.seed)
    row = {"accuracy": seed.accuracy(marked),
           "trained": verdicts(seed.spec, marked, keys),
           "fine_tuned": {**verdicts(seed.spec, tuned, keys), "accuracy": seed.accuracy(tuned)},
           "pruned": {**verdicts(seed.spec, pruned, keys), "accuracy": seed.accuracy(pruned)},
           "permuted": {**verdicts(seed.spec, shuffled, keys),
                        "accuracy": seed.accuracy(shuffled)},
           "wrong_keys": verdicts(seed.spec, marked, seed.keys(settings, wrong=True))}
    if curves:
        row["curves"] = {
            "fine_tune_steps": {str(s): verdicts(seed.spec, fine_tune(seed.fed, marked, s),
                                                 keys)["match_rate_mean"] for s in CURVE_STEPS},
            "prune_fraction": {str(f): verdicts(seed.spec, prune(seed.spec, marked, f),
                                                keys)["match_rate_mean"] for f in CURVE_PRUNE}}
    return row


def evaluate_seed(seed: Seed, bits_list: list[int], base: Settings,
                  fairfl: bool) -> dict[str, Any]:
    started = time.perf_counter()
    plain, _ = seed.run(seed.fedavg, None)
    row: dict[str, Any] = {"seed": seed.seed, "shares": seed.shares,
                           "accuracy_without": seed.accuracy(plain),
                           "wrong_keys_on_plain": verdicts(seed.spec, plain,
                                                           seed.keys(base, wrong=True)),
                           "by_bits": {}}
    for bits in bits_list:
        settings = Settings(**{**asdict(base), "bits": bits})
        marked, _ = seed.run(seed.fedavg, settings)
        result = watermarked_model(seed, settings, marked, curves=True)
        result["accuracy_cost_points"] = round(100 * (row["accuracy_without"]
                                                      - result["accuracy"]), 2)
        row["by_bits"][str(bits)] = result
    if fairfl:
        without, plain_decisions = seed.run(seed.fairfl, None)
        marked, marked_decisions = seed.run(seed.fairfl_marked, base)
        checked, checked_decisions = seed.run(seed.fairfl, base)
        row["fairfl"] = {"bits": base.bits,
                         "without": {**rejections(seed.fed, plain_decisions),
                                     "accuracy": seed.accuracy(without)},
                         "with": {**rejections(seed.fed, marked_decisions),
                                  "accuracy": seed.accuracy(marked),
                                  **verdicts(seed.spec, marked, seed.keys(base))},
                         "with_noise_check": {**rejections(seed.fed, checked_decisions),
                                              "accuracy": seed.accuracy(checked),
                                              **verdicts(seed.spec, checked, seed.keys(base))}}
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def tune_seed(seed: Seed, grid: list[Settings]) -> dict[str, Any]:
    started = time.perf_counter()
    plain, _ = seed.run(seed.fedavg, None)
    _, plain_decisions = seed.run(seed.fairfl, None)
    row: dict[str, Any] = {"seed": seed.seed, "shares": seed.shares,
                           "accuracy_without": seed.accuracy(plain),
                           "fairfl_without": rejections(seed.fed, plain_decisions),
                           "grid": []}
    for settings in grid:
        marked, _ = seed.run(seed.fedavg, settings)
        result = watermarked_model(seed, settings, marked, curves=False)
        robust, decisions = seed.run(seed.fairfl_marked, settings)
        row["grid"].append({"settings": asdict(settings), **result,
                            "accuracy_cost_points": round(100 * (row["accuracy_without"]
                                                                 - result["accuracy"]), 2),
                            "fairfl": {**rejections(seed.fed, decisions),
                                       "accuracy": seed.accuracy(robust),
                                       **verdicts(seed.spec, robust, seed.keys(settings))}})
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def _verified(block: dict[str, Any]) -> str:
    return f"{block['verified']}/{block['keys']} ({block['match_rate_min']:.2f})"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| bits | seed | accuracy with / without | verified as trained (lowest match) | "
             "after fine-tuning | after pruning | after permuting hidden units | wrong keys "
             "verified (highest match) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for bits in rows[0]["by_bits"]:
        for r in rows:
            b = r["by_bits"][bits]
            lines.append(f"| {bits} | {r['seed']} | {b['accuracy']:.3f} / "
                         f"{r['accuracy_without']:.3f} | {_verified(b['trained'])} | "
                         f"{_verified(b['fine_tuned'])} | {_verified(b['pruned'])} | "
                         f"{_verified(b['permuted'])} | "
                         f"{b['wrong_keys']['verified']}/{b['wrong_keys']['keys']} "
                         f"({b['wrong_keys']['match_rate_max']:.2f}) |")
    if all("fairfl" in r for r in rows):
        lines += ["", "| seed | rule | FairFL FPR without / with watermarks | rejected with "
                  "watermarks (reasons) | clients rejected ≥ 3 times | accuracy without / "
                  "with | verified on FairFL's model |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            f = r["fairfl"]
            for rule, w in (("watermark task's (no NOISE check)", f["with"]),
                            ("with the NOISE check (before)", f["with_noise_check"])):
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(w["reasons"].items()))
                lines.append(
                    f"| {r['seed']} | {rule} | {f['without']['fpr']:.3f} / {w['fpr']:.3f} | "
                    f"{w['rejected']}/{w['submissions']} ({reasons or 'none'}) | "
                    f"{f['without']['clients_rejected_3_or_more']} / "
                    f"{w['clients_rejected_3_or_more']} | {f['without']['accuracy']:.3f} / "
                    f"{w['accuracy']:.3f} | {_verified(w)} |")
    return "\n".join(lines)


def tuning_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| bits | margin γ | strength λ | layer | reach | share cap | length cap | "
             "verified (FedAvg, per seed) | "
             "after fine-tuning | after pruning | accuracy cost (points) | FairFL FPR "
             "(without: " + " / ".join(f"{r['fairfl_without']['fpr']:.3f}" for r in rows)
             + ") | clients rejected ≥ 3 times | verified on FairFL's model |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
             "| --- |"]
    for k, first in enumerate(rows[0]["grid"]):
        s = first["settings"]
        cells = [r["grid"][k] for r in rows]
        lines.append(
            f"| {s['bits']} | {s['margin']} | {s['strength']} | {s['layer'] or 'default'} | "
            f"{s.get('reach') or 'none'} | {s.get('share_cap') or 'none'} | "
            f"{s.get('length_cap') or 'none'} | "
            + " / ".join(str(c["trained"]["verified"]) for c in cells) + " | "
            + " / ".join(str(c["fine_tuned"]["verified"]) for c in cells) + " | "
            + " / ".join(str(c["pruned"]["verified"]) for c in cells) + " | "
            + " / ".join(f"{c['accuracy_cost_points']:+.1f}" for c in cells) + " | "
            + " / ".join(f"{c['fairfl']['fpr']:.3f}" for c in cells) + " | "
            + " / ".join(str(c["fairfl"]["clients_rejected_3_or_more"]) for c in cells) + " | "
            + " / ".join(str(c["fairfl"].get("verified", "-")) for c in cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], default_bits: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = list(rows[0]["by_bits"])
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.3))
    capacity, share, steps, pruning = axes
    states = (("trained", "as trained"), ("fine_tuned", "fine-tuned"), ("pruned", "pruned"),
              ("wrong_keys", "wrong keys"))
    x = np.arange(len(bits_list))
    for offset, (state, label) in enumerate(states):
        values = [[m for r in rows for m in r["by_bits"][b][state]["match_rates"]]
                  for b in bits_list]
        capacity.boxplot(values, positions=x + (offset - 1.5) * 0.18, widths=0.15,
                         patch_artist=True, boxprops={"facecolor": f"C{offset}"},
                         medianprops={"color": "black"}, flierprops={"ms": 2})
        capacity.plot([], [], "s", color=f"C{offset}", label=label)
    capacity.axhline(0.9, color="grey", ls="--", lw=1)
    capacity.set_xticks(x, bits_list)
    capacity.set(xlabel="signature bits per client (20 clients share fc1)",
                 ylabel="share of bits matched", title="Match rate per key", ylim=(0, 1.05))
    capacity.legend(fontsize=8, loc="lower left")
    key = str(default_bits) if str(default_bits) in bits_list else bits_list[-1]
    for offset, (state, label) in enumerate(states[:3]):
        shares = [s for r in rows for s in r["shares"]]
        rates = [m for r in rows for m in r["by_bits"][key][state]["match_rates"]]
        share.scatter(np.array(shares) * 100, rates, s=14, color=f"C{offset}", label=label,
                      alpha=0.7)
    share.axhline(0.9, color="grey", ls="--", lw=1)
    share.set(xlabel="client's share of the FedAvg weight (%)", ylabel="share of bits matched",
              title=f"{key} bits: match rate by client weight", ylim=(0.3, 1.05))
    share.legend(fontsize=8, loc="lower right")
    for b in bits_list:
        for r in rows:
            curve = r["by_bits"][b]["curves"]
            kw = {"color": f"C{bits_list.index(b)}", "alpha": 0.7,
                  "label": f"{b} bits" if r is rows[0] else None}
            steps.plot([int(s) for s in curve["fine_tune_steps"]],
                       list(curve["fine_tune_steps"].values()), "o-", **kw)
            pruning.plot([float(f) for f in curve["prune_fraction"]],
                         list(curve["prune_fraction"].values()), "o-", **kw)
    steps.set(xscale="log", xlabel="fine-tuning steps on held-out data",
              ylabel="mean match rate over clients", title="Fine-tuning", ylim=(0.4, 1.02))
    pruning.set(xlabel="share of each weight tensor pruned", ylabel="mean match rate over "
                "clients", title="Magnitude pruning", ylim=(0.4, 1.02))
    for ax in (steps, pruning):
        ax.axhline(0.9, color="grey", ls="--", lw=1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _numbers(kind: type, text: str) -> list[Any]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from err
    if not values:
        raise click.BadParameter("expected at least one value")
    return values


def _numbers_or_none(text: str | None, default: float | None) -> list[float | None]:
    """Comma-separated numbers, each of which may be 'none'; ``[default]`` if not given."""
    if not text:
        return [default]
    return [None if part.strip() == "none" else _numbers(float, part)[0]
            for part in text.split(",")]


@click.command(help="\n\n".join("\b\n" + paragraph  # \b: click keeps the lines as written
                                  for paragraph in __doc__.replace("``", "`").split("\n\n")))
@click.option("--seeds", default=",".join(map(str, EVALUATION_SEEDS)), show_default=True,
              help="comma-separated seeds (the defaults were tuned on 1,2,3)")
@click.option("--bits", "bits_text", default="16,32,40,64", show_default=True,
              help="signature bits per client, comma-separated (the capacity sweep)")
@click.option("--tune", is_flag=True, help="run the grid of --bits, --margins, --strengths "
              "and --layers instead of the evaluation")
@click.option("--margins", default=None, help="hinge margins γ, comma-separated (default: "
              "the module's DEFAULT_MARGIN)")
@click.option("--strengths", default=None, help="hinge weights λ, comma-separated (default: "
              "the module's DEFAULT_STRENGTH)")
@click.option("--layers", default="default", show_default=True,
              help="carrier parameters, comma-separated ('default': the largest weight)")
@click.option("--reaches", default=None,
              help="how far past the round's global margin a bit short of it is pushed, "
              "comma-separated; 'none': FedIPR's hinge, which stops at the local margin (see "
              "embed_hook; default: the module's DEFAULT_REACH)")
@click.option("--share-caps", default=None,
              help="rule R43's candidate, not adopted: how much further a participant below "
              "the round's mean weight pushes (at most this many times the reach; see "
              "reach_for), comma-separated; 'none' (the default): no further, as the task "
              "does")
@click.option("--length-caps", default=None,
              help="rule R55's candidate, not adopted: the mark's moves in a round at most "
              "this many times the rest of the update's (benchmarks.watermark_cap), "
              "comma-separated; 'none' (the default): no cap, as the task does")
@click.option("--rounds", type=click.IntRange(1), default=20, show_default=True)
@click.option("--fine-tune-steps", type=click.IntRange(1), default=300, show_default=True)
@click.option("--wrong-keys", type=click.IntRange(1), default=20, show_default=True)
@click.option("--partition", type=click.Choice(["dirichlet", "iid"]), default="dirichlet",
              show_default=True, help="the clients' shards: Dirichlet α = 0.5 label skew "
              "(unequal sizes), or iid (equal sizes, every label alike)")
@click.option("--fairfl/--no-fairfl", default=True, show_default=True,
              help="also run FairFL's rule with and without watermarks (its false positives)")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="where the results go (default: reports/bench/privacy_watermark.json, "
              "privacy_watermark_tuning.json with --tune)")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              default=Path("docs/plots/privacy_watermark.png"), show_default=True,
              help="the evaluation's plot (not drawn with --tune)")
def main(seeds: str, bits_text: str, tune: bool, margins: str | None, strengths: str | None,
         layers: str, reaches: str | None, share_caps: str | None,
         length_caps: str | None, rounds: int,
         fine_tune_steps: int, wrong_keys: int,
         partition: str, fairfl: bool, json_path: Path | None, plot_path: Path) -> None:
    import torch

    from fl_agent.privacy import watermark

    torch.set_num_threads(1)
    seed_list, bits_list = _numbers(int, seeds), _numbers(int, bits_text)
    for bits in bits_list:
        if not watermark.MIN_BITS <= bits <= watermark.MAX_BITS:
            raise click.BadParameter(f"bits must lie in [{watermark.MIN_BITS}, "
                                     f"{watermark.MAX_BITS}], got {bits}", param_hint="--bits")
    margin_list = _numbers(float, margins) if margins else [watermark.DEFAULT_MARGIN]
    strength_list = _numbers(float, strengths) if strengths else [watermark.DEFAULT_STRENGTH]
    if min(margin_list) <= 0 or min(strength_list) <= 0:
        raise click.BadParameter("margins and strengths must be positive")
    layer_list = [None if name == "default" else name for name in layers.split(",")]
    reach_list = _numbers_or_none(reaches, watermark.DEFAULT_REACH)
    if any(r is not None and r <= 0 for r in reach_list):
        raise click.BadParameter("reaches must be positive or 'none'", param_hint="--reaches")
    cap_list = _numbers_or_none(share_caps, None)
    if any(c is not None and c < 1 for c in cap_list):
        raise click.BadParameter("share caps must be at least 1 or 'none'",
                                 param_hint="--share-caps")
    length_cap_list = _numbers_or_none(length_caps, None)
    if any(c is not None and not 0 < c < float("inf") for c in length_cap_list):
        raise click.BadParameter("length caps must be positive or 'none'",
                                 param_hint="--length-caps")
    if any(c is not None for c in length_cap_list) and None in reach_list:
        raise click.BadParameter("a length cap needs a reach (not 'none')",
                                 param_hint="--length-caps")
    common = {"rounds": rounds, "fine_tune_steps": fine_tune_steps, "wrong_keys": wrong_keys}
    grid = [Settings(bits, margin, strength, layer, reach, cap, length_cap=length_cap, **common)
            for bits in bits_list for margin in margin_list for strength in strength_list
            for layer in layer_list for reach in reach_list for cap in cap_list
            for length_cap in length_cap_list]
    # FairFL's runs mark with the default bit count if the sweep has it, else its largest
    base = Settings(watermark.DEFAULT_BITS if watermark.DEFAULT_BITS in bits_list
                    else max(bits_list), margin_list[0], strength_list[0], layer_list[0],
                    reach_list[0], cap_list[0], length_cap=length_cap_list[0], **common)
    runs = 2 + 2 * len(grid) if tune else 1 + len(bits_list) + 3 * fairfl
    about = machine()
    rows = []
    with progress_bar() as progress:
        task = progress.add_task("federated rounds", total=len(seed_list) * runs * rounds)
        for number in seed_list:
            seed = Seed(number, rounds, lambda: progress.advance(task), partition)
            rows.append(tune_seed(seed, grid) if tune
                        else evaluate_seed(seed, bits_list, base, fairfl))
            progress.console.print(f"seed {number} done in {rows[-1]['seconds']} s")
    result = {"settings": {"tune": tune, "seeds": seed_list, "bits": bits_list,
                           "grid": [asdict(s) for s in grid], "default": asdict(base),
                           "alpha": watermark.ALPHA,
                           "match_rate_min": watermark.MATCH_RATE_MIN, "clients": 20,
                           "partition": partition,
                           "dataset": "digits", "model": "mlp"},
              "machine": about, "rows": rows}
    json_path = json_path or Path("reports/bench") / (
        "privacy_watermark_tuning.json" if tune else "privacy_watermark.json")
    if tune:
        publish(result, json_path, tuning_markdown(rows))
    else:
        plot(rows, base.bits, plot_path)
        publish(result, json_path, markdown(rows) + f"\n\nplot: {plot_path}")


if __name__ == "__main__":
    main()
