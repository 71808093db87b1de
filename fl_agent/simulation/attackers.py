"""Who attacks and how, client by client: the poisoned data an attacker trains on, the hook
that replaces its update, colluders sharing one crafted update, and attackers that attack
only in some rounds. The attacks themselves are pure functions in :mod:`.attacks`; the run
on chain (:mod:`.runner`) and the run without it (:mod:`.offline`) wire clients through
:func:`client_data`.

A hook sees only the global model it trains from and what it trained; it counts rounds by
the global models it sees (a round in which nothing was accepted keeps the model, and then
counts as the same round)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fl_agent.errors import ConfigError
from fl_agent.simulation.attacks import (
    COLLUDING_ATTACKS,
    DATA_ATTACKS,
    MODEL_ATTACKS,
    Attack,
    Trigger,
    collude,
    noisy_free_ride,
    poison_data,
    poison_update,
)
from fl_agent.simulation.config import ClientPlan, SimulationConfig, client_seed

#: What a model-poisoning attacker does to its trained vector, given the global model.
Poison = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Honest local training for a colluding attacker: (global, raw X, y, client seed, round)
#: -> trained vector, as the participant itself would train.
Trainer = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]


class RoundCounter:
    """Counts rounds from 1 by the global models a hook is shown: a new model, a new round."""

    def __init__(self) -> None:
        self._key, self.round = b"", 0

    def __call__(self, global_vector: np.ndarray) -> int:
        """The round ``global_vector`` belongs to (a new model starts the next one)."""
        key = np.ascontiguousarray(global_vector, dtype=np.float32).tobytes()
        if key != self._key:
            self._key, self.round = key, self.round + 1
        return self.round


def backdoor_trigger(config: SimulationConfig, feature_shape: tuple[int, ...],
                     train_X: np.ndarray) -> Trigger | None:
    """The backdoor's trigger (``config.trigger_position`` and ``trigger_value``), or None
    for another attack."""
    if config.attack != "backdoor":
        return None
    place = Trigger.corner if config.trigger_position == "corner" else Trigger.centre
    features = place(feature_shape).features
    X = np.asarray(train_X, dtype=np.float64)
    value = float(X[:, list(features)].max()) if config.trigger_value == "in_range" \
        else 2.0 * float(np.abs(X).max())
    return Trigger(features, value)


def colluder_trainer(config: SimulationConfig, spec: Any, data: Any) -> Trainer:
    """How a colluding attacker trains honestly: the participant's training, on the task's
    standardised features, with the base steps and its round's seed."""
    from fl_agent.learning.training import round_seed, train_local

    def train(global_vector: np.ndarray, X: np.ndarray, y: np.ndarray, seed: int,
              round_number: int) -> np.ndarray:
        return train_local(spec, global_vector, data.standardize(X), np.asarray(y),
                           config.steps, seed=round_seed(seed, round_number),
                           batch_size=config.batch_size, lr=config.lr).vector
    return train


def client_data(config: SimulationConfig, plans: list[ClientPlan], train: Any,
                num_classes: int, trigger: Trigger | None, trainer: Trainer | None = None
                ) -> list[tuple[ClientPlan, np.ndarray, np.ndarray, Poison | None]]:
    """Each client's training data as it trains on it (poisoned for a data attacker) and,
    for a model attacker, what it does to its update (seeded per client). Colluding
    attackers share one :class:`Collusion`, which needs ``trainer``, as does a data attacker
    that attacks only in some rounds (``config.attacks_sometimes``): it keeps its clean
    data, and in its attack rounds its hook trains on the poisoned copy instead."""
    attack = Attack(config.attack, poison_fraction=config.poison_fraction,
                    flip_scale=config.flip_scale)
    sometimes = config.attacks_sometimes
    if trainer is None and (config.attack in COLLUDING_ATTACKS
                            or (sometimes and config.attack in DATA_ATTACKS)):
        raise ConfigError(f"{config.attack} needs a trainer for the attackers")
    out = []
    colluders: list[tuple[np.ndarray, np.ndarray, int]] = []
    collusion = None
    if config.attack in COLLUDING_ATTACKS:
        assert trainer is not None
        collusion = Collusion(attack, colluders, trainer, config.clients)
    for plan in plans:
        X, y = train.X[plan.rows], train.y[plan.rows]
        seed = client_seed(config, plan)
        rng = np.random.default_rng(seed)
        poison: Poison | None = None
        if plan.malicious:
            X_bad, y_bad = poison_data(attack, X, y, num_classes, trigger=trigger, rng=rng)
            if collusion is not None:
                colluders.append((X_bad, y_bad, seed))
                poison = collusion.crafted if not config.collusion_jitter else \
                    jittered(collusion.crafted, config.collusion_jitter, rng)
            elif config.attack in MODEL_ATTACKS:
                poison = poisoner(attack, rng)
            elif sometimes and config.attack in DATA_ATTACKS:
                assert trainer is not None
                poison = _trains_on(trainer, X_bad, y_bad, seed)
            if sometimes and poison is not None:
                poison = Intermittent(poison, config.attack_every, config.attack_from)
            elif not sometimes:
                X, y = X_bad, y_bad
        out.append((plan, X, y, poison))
    return out


class Collusion:
    """The colluding attackers of one run: the first of them to submit in a round trains
    every colluder's honest update (with their own data and seeds) and crafts the update
    they all submit (:func:`~fl_agent.simulation.attacks.collude`)."""

    def __init__(self, attack: Attack, colluders: list[tuple[np.ndarray, np.ndarray, int]],
                 trainer: Trainer, num_clients: int) -> None:
        self.attack, self.colluders, self.trainer = attack, colluders, trainer
        self.num_clients = num_clients
        self._rounds, self._crafted_in = RoundCounter(), 0
        self._crafted = np.zeros(0, np.float32)

    def crafted(self, global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        number = self._rounds(global_vector)
        if number != self._crafted_in:
            honest = np.stack([self.trainer(global_vector, X, y, seed, number)
                               for X, y, seed in self.colluders])
            self._crafted_in = number
            self._crafted = collude(self.attack, global_vector, honest,
                                    num_clients=self.num_clients)
        return self._crafted


def jittered(crafted: Poison, jitter: float, rng: np.random.Generator) -> Poison:
    """A colluder's hook that submits the crafted update plus its own Gaussian noise of
    ``jitter`` times the crafted delta's length (drawn anew each round from ``rng``)."""

    def poison(global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        base = np.asarray(global_vector, dtype=np.float64)
        delta = np.asarray(crafted(global_vector, trained), dtype=np.float64) - base
        noise = rng.standard_normal(delta.shape)
        noise *= jitter * float(np.linalg.norm(delta)) / (float(np.linalg.norm(noise)) or 1.0)
        return (base + delta + noise).astype(np.float32)
    return poison


def poisoner(attack: Attack, rng: np.random.Generator) -> Poison:
    """A model attacker's hook: its update replaced by ``attack`` (seeded by ``rng``)."""
    seen: list[np.ndarray] = []  # noisy_free_rider: the last two global models it saw

    def poison(global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        if attack.name == "noisy_free_rider":
            if not seen or not np.array_equal(seen[-1], global_vector):
                seen[:] = [*seen[-1:], np.array(global_vector, dtype=np.float64)]
            return noisy_free_ride(global_vector, seen[0] if len(seen) == 2 else None, rng=rng)
        return poison_update(attack, global_vector, trained, rng=rng)
    return poison


def _trains_on(trainer: Trainer, X: np.ndarray, y: np.ndarray, seed: int) -> Poison:
    """A data attacker's hook: trains on its poisoned data instead (rounds counted from 1)."""
    rounds = RoundCounter()

    def poison(global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        return trainer(global_vector, X, y, seed, rounds(global_vector))
    return poison


class Intermittent:
    """An attacker that attacks in rounds ``first``, ``first + every``, ``first + 2 every``,
    ... and submits its honest update in the others: with ``every`` 2, so that it is rejected
    at most every other round (the registry blacklists ``max_rejections`` rejections within
    its window); with ``first`` > 1, honest first, so that a rule that weighs a sender's
    record sees a good one. ``poison`` is what it does in an attack round; it is called in
    every round, so that a hook that counts rounds by itself keeps count."""

    def __init__(self, poison: Poison, every: int, first: int = 1) -> None:
        if every < 1 or first < 1:
            raise ConfigError(f"every and first must be >= 1, got {every!r} and {first!r}")
        self.poison, self.every, self.first = poison, every, first
        self._rounds = RoundCounter()

    def __call__(self, global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        number = self._rounds(global_vector)
        attacked = self.poison(global_vector, trained)
        return attacked if number >= self.first and (number - self.first) % self.every == 0 \
            else np.asarray(trained, dtype=np.float32)


class Probing:
    """An attacker that knows the rule and reads its standing on chain (every verdict, and
    the registry's rejection count and window, are public): from round ``first`` on it sends
    the global model plus ``strength`` times the attack's delta (``poison``'s output minus
    the global model: for sign flips, ``-strength`` times its honest delta; for a data
    attack, its poisoned update boosted or shrunk), and adapts to each verdict:

    * accepted: ``strength`` times ``up`` (no ceiling: it probes above the plain attack);
    * held back (turned away, not counted): ``strength`` times ``held``;
    * rejected (counted towards a ban): ``strength`` times ``down``;

    never below ``floor``. While one more counted rejection would ban it
    (:meth:`observe`'s ``ban_next``), it sends its honest update instead, so its own attacks
    never ban it. Rounds are counted by the global models it is shown (a round that accepts
    nothing repeats the model and is counted once with the next). The offline harness
    (:func:`~fl_agent.simulation.offline.run_offline`) calls :meth:`observe` after each
    round. Rule R51a (docs/held-out.md) measures what it gains from FairFL's
    ``held_back``."""

    def __init__(self, poison: Poison, first: int, *, up: float, down: float, held: float,
                 floor: float = 0.2) -> None:
        if not (up >= 1.0 and 0.0 < down < 1.0 and 0.0 < held <= 1.0 and 0.0 < floor <= 1.0):
            raise ConfigError(f"up must be >= 1, down in (0, 1), held and floor in (0, 1], "
                              f"got {up!r}, {down!r}, {held!r} and {floor!r}")
        if first < 1:
            raise ConfigError(f"first must be >= 1, got {first!r}")
        self.poison, self.first = poison, first
        self.up, self.down, self.held, self.floor = up, down, held, floor
        self.strength = 1.0
        #: Each attack it sent: [round, strength, verdict] (verdict None until observed).
        self.sent: list[list[Any]] = []
        self._rounds, self._round = RoundCounter(), 0
        self._attacked = self._guarded = False

    def __call__(self, global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        number = self._round = self._rounds(global_vector)
        base = np.asarray(global_vector, dtype=np.float64)
        attack = np.asarray(self.poison(global_vector, trained), dtype=np.float64)
        self._attacked = number >= self.first and not self._guarded
        if not self._attacked:
            return np.asarray(trained, dtype=np.float32)
        self.sent.append([number, self.strength, None])
        return (base + self.strength * (attack - base)).astype(np.float32)

    def observe(self, verdict: str, *, ban_next: bool, reason: str | None = None) -> None:
        """The verdict on what it sent this round (``accepted``, ``held_back`` or
        ``rejected``), and whether one more counted rejection next round would ban it
        (``reason``, the rule's code for a turned-away update, is not used)."""
        factor = {"accepted": self.up, "held_back": self.held, "rejected": self.down}
        if verdict not in factor:
            raise ConfigError(f"unknown verdict {verdict!r}")
        self._guarded = ban_next
        if self._attacked:
            self.sent[-1][2] = verdict
            self.strength = max(self.floor, self.strength * factor[verdict])
