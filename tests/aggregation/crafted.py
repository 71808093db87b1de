"""Crafted rounds: no training, just vectors with a known structure.

A benign delta is ``step * (shared + group_strength * group_g + noise * e_i)`` with unit
vectors ``shared`` (what every client learns), ``group_g`` (what clients of data group ``g``
learn: ``groups > 1`` makes the round non-IID) and ``e_i`` (random, norm ~1).

The aggregator's validation split is data of its own, drawn like a client's but from the
whole population (every group): its optimum is ``global + step * (shared + group_strength *
mean_g group_g + noise * e_val)`` with noise ``e_val`` of its own, and ``evaluate(params)``
is minus the distance to that optimum (the loss of a quadratic model on that split). Nothing
in it is computed from the round's updates or from who attacks: the gate sees a noisy
estimate of the truth, as a real validation split is. ``benign_mean`` (the sample-weighted
mean of the benign updates) is the ground truth that tests measure the outcome against;
no strategy is given it.

Attacks (``ATTACKS``):

* ``sign_flip``: ``global - benign-like delta``;
* ``scaling``: ``global + 20 * benign-like delta``;
* ``gaussian``: ``global + N(0, s^2 I)`` with ``s`` such that its norm matches a benign one;
* ``free_rider``: ``global`` itself; ``lazy_rider``: ``global`` plus a delta 1000 times
  shorter than a benign one;
* ``collude``: every attacker sends the same malicious delta (``-0.5 shared + 0.87 b`` with a
  fixed unit ``b``, norm of a benign delta) plus 1 % noise: a tight colluding cluster;
* ``backdoor``: a benign-like delta plus a shared hidden component ``backdoor_strength * b``
  (default 0.3): the colluders point almost the same way as the benign clients (cosine ~0.93
  to the shared direction against ~0.97) and also, together, toward ``b``, which the
  validation target does not reward -- only the validation gate can tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXAMPLE_NOISE = 1.0  # how far an example's optimum lies from the split's, per coordinate,
# in steps

ATTACKS = ("sign_flip", "scaling", "gaussian", "free_rider", "lazy_rider", "label_flip", "collude",
           "backdoor")


@dataclass(frozen=True)
class CraftedRound:
    global_params: np.ndarray  # float32 (d,)
    updates: np.ndarray  # float32 (n, d)
    num_samples: np.ndarray  # int (n,)
    malicious: frozenset[int]
    benign_mean: np.ndarray  # float64 (d,), sample-weighted mean of the benign updates
    step: float  # norm of the shared part of a benign delta
    validation_optimum: np.ndarray  # float64 (d,), where the validation loss is lowest
    root_update: np.ndarray  # float32 (d,), the model FLTrust's server trains on it

    @property
    def benign(self) -> frozenset[int]:
        return frozenset(range(len(self.updates))) - self.malicious

    examples: np.ndarray  # float64 (m, d), each validation example's own optimum

    def evaluate(self, params: np.ndarray) -> float:
        """The aggregator's validation score: minus the distance to the validation split's
        optimum."""
        return -float(np.linalg.norm(np.asarray(params, dtype=np.float64)
                                     - self.validation_optimum))

    def gate_scores(self, params: np.ndarray) -> np.ndarray:
        """The same split, example by example, as FairFL's gate reads it: minus each
        example's squared distance to its own optimum (their mean is minus the squared
        distance to ``validation_optimum`` plus a constant)."""
        x = np.asarray(params, dtype=np.float64)
        return -np.square(self.examples - x).sum(axis=1)

    def distance(self, params: np.ndarray) -> float:
        """Distance to the benign mean (the ground truth), in units of a benign step."""
        return float(np.linalg.norm(np.asarray(params, dtype=np.float64) - self.benign_mean)
                     / self.step)


def _unit(rng: np.random.Generator, d: int) -> np.ndarray:
    v = rng.normal(size=d)
    return v / np.linalg.norm(v)


def crafted_round(seed: int, *, attack: str | tuple[str, ...] | None = None, n_benign: int = 14,
                  n_malicious: int = 6, d: int = 512, groups: int = 1,
                  group_strength: float = 0.8, noise: float = 0.25,
                  step: float = 0.05, backdoor_strength: float = 0.3,
                 examples: int = 256, example_noise: float = EXAMPLE_NOISE) -> CraftedRound:
    """A round of ``n_benign`` benign updates and ``n_malicious`` attackers (at shuffled
    positions) of ``attack``, or of the kinds of a tuple in turn; the global model has norm
    ~ sqrt(d)."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=d)
    shared = _unit(rng, d)
    group_dirs = [_unit(rng, d) for _ in range(groups)]
    hidden = _unit(rng, d)
    hidden -= (hidden @ shared) * shared
    hidden /= np.linalg.norm(hidden)

    def benign_delta(k: int) -> np.ndarray:
        part = shared + group_strength * group_dirs[k % groups]
        return step * (part + noise * rng.normal(size=d) / np.sqrt(d))

    n = n_benign + (n_malicious if attack else 0)
    order = rng.permutation(n)
    rows: list[np.ndarray] = [np.empty(0)] * n
    malicious: set[int] = set()
    benign_deltas = []
    for k in range(n_benign):
        delta = benign_delta(k)
        benign_deltas.append(delta)
        rows[int(order[k])] = g + delta
    typical = float(np.median([np.linalg.norm(x) for x in benign_deltas]))
    collude = step * (-0.5 * shared + 0.87 * hidden)
    collude *= typical / np.linalg.norm(collude)
    kinds = (attack,) if isinstance(attack, str) else tuple(attack or ())
    for j in range(n - n_benign):
        k = n_benign + j
        kind = kinds[j % len(kinds)]
        if kind == "sign_flip":
            row = g - benign_delta(k)
        elif kind == "scaling":
            row = g + 20 * benign_delta(k)
        elif kind == "gaussian":
            row = g + rng.normal(size=d) * typical / np.sqrt(d)
        elif kind == "free_rider":
            row = g.copy()
        elif kind == "lazy_rider":
            row = g + 1e-3 * typical * _unit(rng, d)
        elif kind == "label_flip":
            row = g + step * (shared - group_strength * group_dirs[0]
                              + noise * rng.normal(size=d) / np.sqrt(d))
        elif kind == "collude":
            row = g + collude + 0.01 * typical * _unit(rng, d)
        elif kind == "backdoor":
            row = g + benign_delta(k) + backdoor_strength * step * hidden
        else:
            raise ValueError(f"unknown attack {kind!r}")
        rows[int(order[k])] = row
        malicious.add(int(order[k]))
    num_samples = rng.integers(20, 120, size=n)
    updates = np.asarray(rows, dtype=np.float32)
    g32 = g.astype(np.float32)
    benign_idx = [i for i in range(n) if i not in malicious]
    benign_mean = np.average(updates[benign_idx].astype(np.float64), axis=0,
                             weights=num_samples[benign_idx])
    population = shared + group_strength * np.mean(group_dirs, axis=0)
    own = np.random.default_rng([seed, 1]).normal(size=d) / np.sqrt(d)
    validation_optimum = g + step * (population + noise * own)
    # FLTrust's server update: trained on the validation split as a client trains on its
    # shard, it lands on that split's optimum (as a benign update lands on its client's).
    root_update = validation_optimum.astype(np.float32)
    scatter = np.random.default_rng([seed, 2]).normal(size=(examples, d))
    scatter -= scatter.mean(axis=0)  # the examples' mean optimum is the split's
    return CraftedRound(g32, updates, num_samples, frozenset(malicious), benign_mean,
                        step, validation_optimum, root_update,
                        validation_optimum + step * example_noise * scatter)


def tolerance_sweep(seeds: range = range(100, 132),
                    tolerances: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0)) -> None:
    """How FairFL's gate tolerance trades benign losses against caught attackers on these
    rounds, IID and non-IID (how ``test_fairfl.CRAFTED`` was chosen; run on seeds no test
    uses)."""
    from fl_agent.aggregation import FairFL

    kinds = ((None, {"n_benign": 20}), ("sign_flip", {}), ("gaussian", {}), ("free_rider", {}),
             ("label_flip", {}), ("collude", {}), ("backdoor", {}),
             ("backdoor", {"backdoor_strength": 0.8}))
    for tolerance in tolerances:
        cells = []
        for attack, options in kinds:
            tp = fp = malicious = benign = 0
            worst = 0.0
            for groups in (1, 3):
                for seed in seeds:
                    r = crafted_round(seed, attack=attack, groups=groups, **options)
                    result = FairFL(tolerance=tolerance).aggregate(
                        r.global_params, r.updates, r.num_samples, r.gate_scores)
                    rejected = set(result.rejected)
                    tp += len(rejected & r.malicious)
                    fp += len(rejected - r.malicious)
                    malicious += len(r.malicious)
                    benign += len(r.benign)
                    worst = max(worst, r.distance(result.params))
            name = f"{attack} {options.get('backdoor_strength', '')}".strip()
            cells.append(f"{name}: TPR {tp / max(malicious, 1):.3f} FPR {fp}/{benign} "
                         f"worst distance {worst:.3f}")
        print(f"tolerance {tolerance}:\n  " + "\n  ".join(cells), flush=True)


if __name__ == "__main__":
    tolerance_sweep()
