"""What a simulation is: its settings, its clients' shards and seeds, its devices' speeds and
the task document it publishes. Shared by the run on chain (:mod:`.runner`) and the run
without it (:mod:`.offline`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fl_agent.aggregation import STRATEGIES
from fl_agent.errors import ConfigError
from fl_agent.learning.data import BUILTIN_DATASETS, PARTITION_SCHEMES, partition
from fl_agent.simulation import DEFAULT_DEVICE_SPREAD
from fl_agent.simulation.attacks import ATTACKS, COLLUDING_ATTACKS

FLT = 10**18

#: Blocks one round takes on an auto-mining chain: start, one submission per client,
#: finalize, and some slack for joins.
BLOCKS_PER_ROUND_SLACK = 4


class SimulationConfig(BaseModel):
    """Every knob of a simulation; the report repeats it under ``config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = "digits"
    model: Literal["mlp", "mlp_tanh", "cnn", "logreg"] | None = None
    clients: int = Field(20, ge=2, le=200)
    malicious: float = Field(0.3, ge=0.0, lt=1.0)
    attack: str = "label_flip"
    partition: str = "dirichlet"
    alpha: float = Field(0.5, gt=0)
    rounds: int = Field(20, ge=1, le=1000)
    aggregator: str = "fairfl"
    steps: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.05, gt=0)
    scoring: Literal["loo", "shapley"] = "shapley"
    permutations: int = Field(40, ge=1)
    seed: int = Field(1, ge=0)
    reward_per_round: int = Field(100 * FLT, gt=0)
    max_rejections: int = Field(3, ge=1)
    window_rounds: int = Field(4, ge=1)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    list_price: int | None = Field(None, ge=0)
    #: Simulated device speeds: client speeds spread log-uniformly over a range of this
    #: ratio (see :func:`device_speeds`; the default 4 puts the fastest device at most four
    #: times as fast as the slowest, as between phones of a few generations) and each
    #: reports the time its device would take, so workload balancing acts. 1 reports the
    #: wall clock instead, the same for every client on one machine.
    device_spread: float = Field(DEFAULT_DEVICE_SPREAD, ge=1.0, le=100.0)
    #: The backdoor's trigger: a 2x2 patch in the image's bottom-right corner or its centre,
    #: set to the largest value the training data takes there (``in_range``) or to twice the
    #: largest value it takes anywhere (``out_of_range``).
    trigger_position: Literal["corner", "centre"] = "corner"
    trigger_value: Literal["in_range", "out_of_range"] = "in_range"
    #: Share of a backdoor attacker's examples that carry the trigger.
    poison_fraction: float = Field(0.5, gt=0.0, le=1.0)
    #: How many times its own (honest) delta a ``sign_flip`` attacker sends, reversed: 1
    #: flips it; more also boosts it, the sign flip scaled as in model replacement.
    flip_scale: float = Field(1.0, gt=0.0, le=1000.0)
    #: Attackers attack in rounds f, f + k, f + 2k, ... (``attack_from`` f, ``attack_every``
    #: k) and train honestly in the other rounds: k = 2 attacks every other round, to stay
    #: below a blacklist threshold; f > 1 is honest first, to build a record (credit) the
    #: rule may weigh, and attacks from round f on (:meth:`attacks_in`).
    attack_every: int = Field(1, ge=1, le=100)
    #: Colluders (alie, ipm, minmax) each add their own Gaussian noise of this many times
    #: the crafted delta's length to the update they submit, every round, so that their
    #: copies no longer look alike (0: identical copies, as in the papers). Rule R49's
    #: adaptive attackers use 0.5 (``alie-jitter``) and 0.01 (``alie-jitter-1%``).
    collusion_jitter: float = Field(0.0, ge=0.0, le=10.0)
    attack_from: int = Field(1, ge=1, le=10_000)
    #: Privacy modes (``plain``, or ``dp``, ``prune``, ``he``, ``watermark`` joined by ``+``)
    #: and their settings: see :func:`fl_agent.privacy.plan.build_plan`.
    mode: str = "plain"
    epsilon: float | None = Field(None, gt=0)
    delta: float = Field(1e-5, gt=0, lt=1)
    dp_level: Literal["example", "participant"] = "example"
    dp_length_check: bool = False
    prune_ratio: float | None = Field(None, gt=0, lt=1)
    #: The aggregation rule's options, as ``fl-agent task create --rule-option`` writes them
    #: into the task document (checked by :func:`fl_agent.cli.tasks.rule_options_of`).
    rule_options: dict[str, bool | int | float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> SimulationConfig:
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {', '.join(ATTACKS)}")
        if self.aggregator not in STRATEGIES:
            raise ValueError(f"aggregator must be one of {', '.join(STRATEGIES)}")
        if self.partition not in PARTITION_SCHEMES:
            raise ValueError(f"partition must be one of {', '.join(PARTITION_SCHEMES)}")
        if self.dataset not in BUILTIN_DATASETS and not Path(self.dataset).is_file():
            raise ValueError(f"dataset must be one of {', '.join(BUILTIN_DATASETS)} or a "
                             "CSV/NPZ file")
        if self.attack != "none" and self.attack_from > self.rounds:
            raise ValueError(f"the attackers attack from round {self.attack_from}, after the "
                             f"last of {self.rounds}: they would never attack")
        if self.collusion_jitter and self.attack not in COLLUDING_ATTACKS:
            raise ValueError(f"collusion_jitter makes colluders' copies differ; attack is "
                             f"{self.attack!r}, not one of {', '.join(sorted(COLLUDING_ATTACKS))}")
        if self.flip_scale != 1.0 and self.attack != "sign_flip":
            raise ValueError(f"flip_scale scales a sign flipper's update; attack is "
                             f"{self.attack!r}, not sign_flip")
        modes = self.training_mode  # raises for an unknown mode
        if self.dp_length_check and (modes != type(modes).DP or self.dp_level != "example"):
            raise ValueError("dp_length_check holds DP-SGD updates to their receipts: it needs "
                             "mode dp alone at dp_level example")
        return self

    @property
    def rule(self) -> str:
        """The aggregation rule that runs: FLTrust's under mode he (the only rule on
        ciphertexts, whatever :attr:`aggregator` says), else :attr:`aggregator`."""
        from fl_agent.chain.records import TrainingMode

        return "fltrust" if TrainingMode.HOMOMORPHIC in self.training_mode else self.aggregator

    @property
    def training_mode(self) -> Any:
        """:attr:`mode` as the ledger's ``TrainingMode`` bitmask."""
        from fl_agent.chain.records import TrainingMode

        return TrainingMode.parse(self.mode)

    @classmethod
    def build(cls, **fields: Any) -> SimulationConfig:
        try:
            return cls(**fields)
        except ValidationError as err:
            raise ConfigError(f"invalid simulation settings: {err}") from err

    def attacks_in(self, round_number: int) -> bool:
        """Whether the attackers attack in round ``round_number`` (from 1)."""
        return round_number >= self.attack_from \
            and (round_number - self.attack_from) % self.attack_every == 0

    @property
    def attacks_sometimes(self) -> bool:
        """Whether the attackers train honestly in some rounds."""
        return self.attack_every > 1 or self.attack_from > 1

    @property
    def num_malicious(self) -> int:
        return math.floor(self.malicious * self.clients + 1e-9) if self.attack != "none" else 0

    @property
    def quorum(self) -> int:
        """The simulated task's ``minParticipants``, the accepted updates a round needs: a
        quarter of the clients, so that no model is the average of fewer; one under Krum,
        which by design takes a single update a round."""
        return 1 if self.aggregator == "krum" else max(1, self.clients // 4)

    @property
    def model_name(self) -> str:
        return self.model or ("mlp" if self.dataset == "digits" else "logreg")


@dataclass(frozen=True)
class ClientPlan:
    index: int
    malicious: bool
    rows: np.ndarray


def plan_clients(config: SimulationConfig, labels: np.ndarray) -> list[ClientPlan]:
    """Each client's rows of the training data and whether it attacks (seeded)."""
    parts = partition(labels, config.clients, config.partition, alpha=config.alpha,
                      seed=config.seed, min_samples=config.batch_size // 2 or 1)
    rng = np.random.default_rng(config.seed + 7)
    bad = set(rng.choice(config.clients, size=config.num_malicious, replace=False).tolist())
    return [ClientPlan(i, i in bad, parts[i]) for i in range(config.clients)]


#: Simulated training time of one local step on a device of speed 1, in milliseconds.
STEP_MILLIS = 10.0


def device_speeds(config: SimulationConfig) -> list[float] | None:
    """Each client's simulated device speed (1 is the reference device), log-uniform over
    ``[spread**-0.5, spread**0.5]`` and seeded; None when ``device_spread`` is 1."""
    if config.device_spread <= 1.0:
        return None
    u = np.random.default_rng(config.seed + 11).uniform(-0.5, 0.5, size=config.clients)
    return [float(config.device_spread ** x) for x in u]


def task_document(config: SimulationConfig, spec: Any, data: Any, he: Any = None) -> Any:
    """The task document a simulation publishes (model, data, training, aggregation and the
    privacy plan; ``he`` is the key holder's :class:`~fl_agent.privacy.plan.HEPlan`)."""
    from fl_agent.learning.task_doc import AggregationPlan, TaskDocument, TrainingPlan
    from fl_agent.privacy.plan import build_plan

    return TaskDocument.build(
        model=spec, data=data,
        training=TrainingPlan(steps=config.steps, batch_size=config.batch_size, lr=config.lr),
        aggregation=AggregationPlan(strategy=config.aggregator, scoring=config.scoring,
                                    permutations=config.permutations,
                                    options=dict(config.rule_options)),
        privacy=build_plan(config.training_mode, epsilon=config.epsilon, delta=config.delta,
                           dp_level=config.dp_level, prune_ratio=config.prune_ratio, he=he,
                           dp_length_check=config.dp_length_check))


def client_seed(config: SimulationConfig, plan: ClientPlan) -> int:
    """The client's training seed (its rounds derive theirs from it)."""
    return config.seed * 1000 + plan.index


#: Named variants of the attacks (benchmarks run them by these names): the backdoor's
#: trigger moved to where digits really have ink, set out of range, or stamped on fewer
#: examples; attackers that attack every other round to stay under the blacklist (or, with
#: Gaussian noise, to have an honest round added to each noise round by a screen that sums a
#: sender's last two); ALIE's colluders each adding their own noise, so that their copies no
#: longer look alike.
ATTACK_VARIANTS: dict[str, dict[str, Any]] = {
    "backdoor-centre": {"attack": "backdoor", "trigger_position": "centre"},
    "backdoor-out-of-range": {"attack": "backdoor", "trigger_value": "out_of_range"},
    "backdoor-centre-10%": {"attack": "backdoor", "trigger_position": "centre",
                            "poison_fraction": 0.1},
    "backdoor-centre-20%": {"attack": "backdoor", "trigger_position": "centre",
                            "poison_fraction": 0.2},
    "label_flip-every-2": {"attack": "label_flip", "attack_every": 2},
    "sign_flip-every-2": {"attack": "sign_flip", "attack_every": 2},
    "alie-every-2": {"attack": "alie", "attack_every": 2},
    "gaussian-every-2": {"attack": "gaussian", "attack_every": 2},
    "alie-jitter": {"attack": "alie", "collusion_jitter": 0.5},
    "alie-jitter-1%": {"attack": "alie", "collusion_jitter": 0.01},
}


def attack_settings(name: str) -> dict[str, Any]:
    """The :class:`SimulationConfig` fields of an attack (``label_flip``) or of a named
    variant (:data:`ATTACK_VARIANTS`), either optionally with ``-from-F``: honest until
    round F, attacking from then on (``sign_flip-from-11``: a late attacker, which meets a
    converged model with a clean record)."""
    base, sep, first = name.rpartition("-from-")
    if sep and base:
        if "-from-" in base or base == "none" or not (first.isascii() and first.isdecimal()) \
                or first.startswith("0") or int(first) > 10_000:
            raise ConfigError(f"attack {name!r}: an attack's -from- takes a round from 1 to "
                              f"10000 without leading zeros, as in sign_flip-from-11")
        return {**attack_settings(base), "attack_from": int(first)}
    if name in ATTACKS:
        return {"attack": name}
    if name in ATTACK_VARIANTS:
        return dict(ATTACK_VARIANTS[name])
    raise ConfigError(f"unknown attack {name!r}; use one of {', '.join(ATTACKS)} or a "
                      f"variant: {', '.join(ATTACK_VARIANTS)}, either followed by -from-F "
                      f"(attacking from round F)")
