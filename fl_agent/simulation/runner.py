"""``fl-agent simulate``: the whole system on one machine, for real.

A local anvil runs the real contracts (a private one on a free port, or any ape network
given with ``network``); the embedded content store (or Kubo) holds every model. One
aggregator and ``clients`` participants, each with its own account and its own shard of the
data, run the same agents as ``fl-agent aggregate`` and ``fl-agent train``: the aggregator
opens each round with a workload assignment, every participant trains with PyTorch, uploads
safetensors and submits on chain, and the aggregator aggregates with the chosen strategy,
scores, pays and finalizes. A share of the participants are attackers (see
:mod:`fl_agent.simulation.attacks`). The run ends with rewards claimed, and returns the
report (:mod:`fl_agent.simulation.report`) whose numbers all come from the agents and the
chain.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fl_agent.aggregation import STRATEGIES
from fl_agent.errors import ChainError, ConfigError
from fl_agent.learning.data import (
    BUILTIN_DATASETS,
    PARTITION_SCHEMES,
    load_dataset,
    partition,
    split_dataset,
)
from fl_agent.simulation.attacks import (
    ATTACKS,
    COLLUDING_ATTACKS,
    MODEL_ATTACKS,
    Attack,
    Trigger,
    collude,
    noisy_free_ride,
    poison_data,
    poison_update,
)

FLT = 10**18

#: Blocks one round takes on an auto-mining chain: start, one submission per client,
#: finalize, and some slack for joins.
BLOCKS_PER_ROUND_SLACK = 4


class SimulationConfig(BaseModel):
    """Every knob of a simulation; the report repeats it under ``config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = "digits"
    model: Literal["mlp", "cnn", "logreg"] | None = None
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
    #: Simulated device speeds: 1 (the default) reports the wall clock, the same for every
    #: client on one machine; above 1, client speeds spread log-uniformly over a range of
    #: that ratio (see :func:`device_speeds`) and each reports the time its device would take.
    device_spread: float = Field(1.0, ge=1.0, le=100.0)

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
        return self

    @classmethod
    def build(cls, **fields: Any) -> SimulationConfig:
        try:
            return cls(**fields)
        except ValidationError as err:
            raise ConfigError(f"invalid simulation settings: {err}") from err

    @property
    def num_malicious(self) -> int:
        return math.floor(self.malicious * self.clients + 1e-9) if self.attack != "none" else 0

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


#: What a model-poisoning attacker does to its trained vector, given the global model.
Poison = Callable[[np.ndarray, np.ndarray], np.ndarray]


def backdoor_trigger(config: SimulationConfig, feature_shape: tuple[int, ...],
                     train_X: np.ndarray) -> Trigger | None:
    """The backdoor's trigger (a corner patch at the largest value the training data takes
    there), or None for another attack."""
    if config.attack != "backdoor":
        return None
    corner = Trigger.corner(feature_shape)
    return Trigger(corner.features, float(train_X[:, list(corner.features)].max()))


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


#: Simulated training time of one local step on a device of speed 1, in milliseconds.
STEP_MILLIS = 10.0


def device_speeds(config: SimulationConfig) -> list[float] | None:
    """Each client's simulated device speed (1 is the reference device), log-uniform over
    ``[spread**-0.5, spread**0.5]`` and seeded; None when ``device_spread`` is 1."""
    if config.device_spread <= 1.0:
        return None
    u = np.random.default_rng(config.seed + 11).uniform(-0.5, 0.5, size=config.clients)
    return [float(config.device_spread ** x) for x in u]


def task_document(config: SimulationConfig, spec: Any, data: Any) -> Any:
    """The task document a simulation publishes (model, data, training and aggregation)."""
    from fl_agent.learning.task_doc import AggregationPlan, TaskDocument, TrainingPlan

    return TaskDocument.build(
        model=spec, data=data,
        training=TrainingPlan(steps=config.steps, batch_size=config.batch_size, lr=config.lr),
        aggregation=AggregationPlan(strategy=config.aggregator, scoring=config.scoring,
                                    permutations=config.permutations))


def client_seed(config: SimulationConfig, plan: ClientPlan) -> int:
    """The client's training seed (its rounds derive theirs from it)."""
    return config.seed * 1000 + plan.index


#: Honest local training for a colluding attacker: (global, raw X, y, client seed, round)
#: -> trained vector, as the participant itself would train.
Trainer = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], np.ndarray]


def client_data(config: SimulationConfig, plans: list[ClientPlan], train: Any,
                num_classes: int, trigger: Trigger | None, trainer: Trainer | None = None
                ) -> list[tuple[ClientPlan, np.ndarray, np.ndarray, Poison | None]]:
    """Each client's training data as it trains on it (poisoned for a data attacker) and,
    for a model attacker, what it does to its update (seeded per client). Colluding
    attackers share one :class:`Collusion`, which needs ``trainer``."""
    attack = Attack(config.attack)
    out = []
    colluders: list[tuple[np.ndarray, np.ndarray, int]] = []
    collusion = None
    if config.attack in COLLUDING_ATTACKS:
        if trainer is None:
            raise ConfigError(f"{config.attack} needs a trainer for the colluders")
        collusion = Collusion(attack, colluders, trainer, config.clients)
    for plan in plans:
        X, y = train.X[plan.rows], train.y[plan.rows]
        rng = np.random.default_rng(client_seed(config, plan))
        poison: Poison | None = None
        if plan.malicious:
            X, y = poison_data(attack, X, y, num_classes, trigger=trigger, rng=rng)
            if collusion is not None:
                colluders.append((X, y, client_seed(config, plan)))
                poison = collusion.crafted
            elif config.attack in MODEL_ATTACKS:
                poison = _poisoner(attack, rng)
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
        self._round, self._key, self._crafted = 0, b"", np.zeros(0, np.float32)

    def crafted(self, global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        key = np.ascontiguousarray(global_vector, dtype=np.float32).tobytes()
        if key != self._key:
            self._round += 1
            honest = np.stack([self.trainer(global_vector, X, y, seed, self._round)
                               for X, y, seed in self.colluders])
            self._key = key
            self._crafted = collude(self.attack, global_vector, honest,
                                    num_clients=self.num_clients)
        return self._crafted


def _poisoner(attack: Attack, rng: np.random.Generator) -> Poison:
    seen: list[np.ndarray] = []  # noisy_free_rider: the last two global models it saw

    def poison(global_vector: np.ndarray, trained: np.ndarray) -> np.ndarray:
        if attack.name == "noisy_free_rider":
            if not seen or not np.array_equal(seen[-1], global_vector):
                seen[:] = [*seen[-1:], np.array(global_vector, dtype=np.float64)]
            return noisy_free_ride(global_vector, seen[0] if len(seen) == 2 else None, rng=rng)
        return poison_update(attack, global_vector, trained, rng=rng)
    return poison


@contextmanager
def simulation_chain(network: str | None, workdir: Path, accounts: int) -> Iterator[str]:
    """Connects ape to ``network``, or to a private anvil started (and stopped) here."""
    from ape import networks

    from fl_agent.chain.node import LocalChain, free_port

    if network:
        with networks.parse_network_choice(network):
            yield network
        return
    node = LocalChain(workdir / "chain", "127.0.0.1", free_port())
    node.reset()
    node.start(accounts=accounts)
    try:
        with networks.parse_network_choice(node.url):
            yield node.url
    finally:
        node.stop()


def run_simulation(config: SimulationConfig, *, workdir: Path, network: str | None = None,
                   deployments: Path | None = None, store: Any = None,
                   keys_dir: Path | None = None,
                   on_round: Callable[[dict[str, Any]], None] | None = None,
                   log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Runs the simulation and returns the report (see :mod:`fl_agent.simulation.report`).
    With ``list_price`` the final model is listed by the task's creator (the deployer),
    whose content key goes to ``keys_dir`` (default ``workdir/keys``)."""
    import torch

    from fl_agent.agents import AggregatorAgent, ParticipantAgent, RoundOutcome
    from fl_agent.agents.access import member_key
    from fl_agent.chain.client import FairFL, load_project
    from fl_agent.chain.deployment import BlacklistPolicy, deploy_contracts, save_deployment
    from fl_agent.chain.node import dev_account
    from fl_agent.chain.records import TaskSpec, TrainingMode
    from fl_agent.crypto.sealing import public_bytes
    from fl_agent.learning.models import ModelSpec, init_params
    from fl_agent.learning.task_doc import (
        AccessPlan,
        DataSpec,
    )
    from fl_agent.learning.weights import encode_weights
    from fl_agent.simulation.report import ReportBuilder
    from fl_agent.storage.store import LocalStore

    torch.set_num_threads(1)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # The agents' event cursors belong to the chain of one run; a rerun starts afresh.
    shutil.rmtree(workdir / "agents", ignore_errors=True)
    store = store or LocalStore(workdir / "store")
    started = time.perf_counter()

    # -- data ----------------------------------------------------------------------------
    dataset = load_dataset(config.dataset)
    splits = split_dataset(dataset, validation_fraction=config.validation_fraction,
                           test_fraction=config.test_fraction, seed=config.seed,
                           standardize=False)
    spec = ModelSpec.for_features(config.model_name, dataset.feature_shape, dataset.num_classes)
    document = task_document(config, spec, DataSpec.describe(dataset, splits.train.X))
    clients = plan_clients(config, splits.train.y)
    attack = Attack(config.attack)
    trigger = backdoor_trigger(config, dataset.feature_shape, splits.train.X)

    # -- chain ---------------------------------------------------------------------------
    with simulation_chain(network, workdir, accounts=config.clients + 3) as network_name:
        from ape import chain

        people = [dev_account(i) for i in range(config.clients + 2)]
        unfunded = [str(a.address) for a in people if int(a.balance) == 0]
        if unfunded:
            raise ConfigError(
                f"{len(unfunded)} of the {len(people)} test accounts the simulation needs "
                f"hold no ETH on {network_name} (first: {unfunded[0]}). Simulate on a "
                "development chain that funds them: the default private anvil, or "
                "`fl-agent chain up` (30 accounts, so at most 28 clients).")
        deployer, aggregator_account = people[0], people[1]
        blocks_per_round = config.clients + BLOCKS_PER_ROUND_SLACK
        policy = BlacklistPolicy(max_rejections=config.max_rejections,
                                 window_blocks=config.window_rounds * blocks_per_round)
        first_block = int(chain.blocks.height) + 1
        record, _ = deploy_contracts(deployer, load_project(), policy=policy)
        save_deployment(record, deployments or workdir / "deployments")
        fairfl = FairFL(record)
        log(f"contracts deployed on {network_name}: ledger {record.address('TaskLedger')}")
        # The creator (the deployer here) lists the final model, so it must read it too.
        document = document.model_copy(update={"access": AccessPlan(
            creator_key=public_bytes(member_key(fairfl, deployer)).hex())})

        model_cid = store.add(encode_weights(spec, init_params(spec, config.seed)))
        spec_cid = store.add(document.to_json())
        task_id, _ = fairfl.ledger.create_task(TaskSpec(
            model_cid=model_cid, spec_cid=spec_cid, metric="accuracy",
            aggregator=aggregator_account.address, rounds=config.rounds,
            min_participants=max(1, config.clients // 2),
            submission_window=blocks_per_round * 2, training_mode=TrainingMode.PLAIN,
            reward_per_round=config.reward_per_round), sender=deployer)

        participants: list[ParticipantAgent] = []
        malicious: dict[str, bool] = {}
        speeds = device_speeds(config)
        for plan, X, y, poison in client_data(config, clients, splits.train,
                                              dataset.num_classes, trigger,
                                              colluder_trainer(config, spec, document.data)):
            hook = None if poison is None else _hook(poison)
            agent = ParticipantAgent(fairfl, store, people[2 + plan.index], task_id, X, y,
                                     workdir / "agents", seed=client_seed(config, plan),
                                     update_hook=hook,
                                     train=not (plan.malicious and not attack.trains),
                                     device_millis_per_step=None if speeds is None
                                     else STEP_MILLIS / speeds[plan.index])
            agent.join()
            participants.append(agent)
            malicious[agent.address] = plan.malicious

        aggregator = AggregatorAgent(fairfl, store, aggregator_account, task_id,
                                     splits.validation.X, splits.validation.y,
                                     workdir / "agents")
        builder = ReportBuilder(config, spec, document, malicious, splits.test, trigger)

        while not aggregator.finished:
            opened = aggregator.step()
            if opened is None:
                raise ConfigError("the aggregator cannot open a round: too few participants")
            for agent in participants:
                if not agent.finished:
                    agent.step()
            outcome = aggregator.step()
            waited = 0
            while not isinstance(outcome, RoundOutcome):
                # Some participant did not submit (it skipped the round): let the
                # submission window run out, then finalize with what arrived.
                if waited > 2 * config.rounds + 10:
                    raise ChainError("the round's submission window never closed: the chain "
                                     "is not producing blocks")
                _let_blocks_pass(blocks_per_round)
                waited += 1
                outcome = aggregator.step()
            row = builder.add_round(outcome)
            if on_round is not None:
                on_round(row)

        for agent in participants:
            if fairfl.ledger.claimable(task_id, agent.address) > 0 and \
                    not fairfl.registry.is_blacklisted(agent.address):
                fairfl.ledger.claim_rewards(task_id, sender=agent.account)
        listed = None
        if config.list_price is not None:
            from fl_agent.market.listing import list_task_model

            listed = list_task_model(fairfl, store, task_id, config.list_price,
                                     seller=deployer, keys_dir=keys_dir or workdir / "keys")
        report = builder.finish(fairfl, task_id, network_name, record, first_block,
                                int(chain.blocks.height), listed,
                                seconds=time.perf_counter() - started)
    return report


def _hook(poison: Poison) -> Callable[[np.ndarray, Any], np.ndarray]:
    def hook(global_vector: np.ndarray, result: Any) -> np.ndarray:
        return poison(global_vector, result.vector)
    return hook


def _let_blocks_pass(blocks: int) -> None:
    """Mines ``blocks`` on a development chain (ape's test provider, or anvil reached by URL,
    whose generic provider does not implement ``mine``); elsewhere waits a block time."""
    from ape import chain

    try:
        chain.mine(blocks)
        return
    except Exception:  # noqa: BLE001 - ape raises several types when a provider cannot mine
        pass
    try:
        chain.provider.make_request("anvil_mine", [blocks])
    except Exception:  # noqa: BLE001 - not anvil: a real chain makes its own blocks
        time.sleep(12)
