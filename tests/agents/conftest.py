"""A private anvil for the agent and simulation tests, and a fresh FairFL per test.

Plain pytest tests (``-p no:ape_test``): ape connects to this anvil by URL, the same way
``fl-agent --network http://...`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fl_agent.chain.node import LocalChain, free_port


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node = LocalChain(tmp_path_factory.mktemp("anvil"), "127.0.0.1", free_port())
    node.start(accounts=16)
    try:
        yield node.url
    finally:
        node.stop()


@pytest.fixture
def connected(anvil_url: str) -> Iterator[str]:
    from ape import networks

    with networks.parse_network_choice(anvil_url):
        yield anvil_url


@dataclass
class World:
    """A fresh deployment, a store, accounts and a task document on the test chain."""

    fairfl: Any
    store: Any
    accounts: list[Any]
    tmp: Path
    document: Any
    splits: Any

    @property
    def aggregator(self) -> Any:
        return self.accounts[1]

    def create_task(self, rounds: int = 2, min_participants: int = 2, window: int = 30,
                    seed: int = 0, document: Any = None) -> int:
        """A task on ``document`` (default: the world's plain one); its training mode is the
        document's privacy plan's."""
        from fl_agent.chain.records import TaskSpec, TrainingMode
        from fl_agent.learning.models import init_params
        from fl_agent.learning.weights import encode_weights

        document = document or self.document
        model_cid = self.store.add(encode_weights(document.model,
                                                  init_params(document.model, seed)))
        mode = document.privacy.mode() if document.privacy else TrainingMode.PLAIN
        task_id, _ = self.fairfl.ledger.create_task(TaskSpec(
            model_cid=model_cid, spec_cid=self.store.add(document.to_json()),
            metric="accuracy", aggregator=self.aggregator.address, rounds=rounds,
            min_participants=min_participants, submission_window=window,
            training_mode=mode, reward_per_round=100 * 10**18),
            sender=self.accounts[0])
        return task_id

    def shard(self, index: int, count: int = 4) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array_split(np.arange(len(self.splits.train.y)), count)[index]
        return self.splits.train.X[rows], self.splits.train.y[rows]

    def participant(self, task_id: int, index: int, **kwargs: Any) -> Any:
        from fl_agent.agents import ParticipantAgent

        X, y = self.shard(index)
        agent = ParticipantAgent(self.fairfl, self.store, self.accounts[2 + index], task_id,
                                 X, y, self.tmp / "agents", seed=index, **kwargs)
        agent.join()
        return agent

    def bare_members(self, task_id: int, accounts: list[Any]) -> list[Any]:
        """``accounts`` registered and joined to the task with no agent behind them (the
        test submits for them, as a cheat or a sybil would)."""
        for account in accounts:
            self.fairfl.registry.register(self.store.add(b"{}"), sender=account)
            self.fairfl.ledger.join(task_id, sender=account)
        return accounts

    def aggregator_agent(self, task_id: int, **kwargs: Any) -> Any:
        from fl_agent.agents import AggregatorAgent

        return AggregatorAgent(self.fairfl, self.store, self.aggregator, task_id,
                               self.splits.validation.X, self.splits.validation.y,
                               self.tmp / "agents", **kwargs)

    def he_task(self, holder: Any, rounds: int, min_participants: int,
                epsilon: float | None = None) -> int:
        """A homomorphic FLTrust task under ``holder``'s key pair (its secret context in
        ``tmp/keys``), created by accounts[0], which holds the key; with ``epsilon`` a
        ``dp+he`` task (DP-SGD at that budget, then encryption); the world's document
        becomes the task's."""
        from fl_agent.agents.keyholder import create_context
        from fl_agent.learning.task_doc import AggregationPlan
        from fl_agent.privacy.plan import DPPlan, PrivacyPlan

        plan = create_context(self.store, self.tmp / "keys", self.accounts[0].address,
                              holder=holder)
        self.document = self.document.model_copy(update={
            "aggregation": AggregationPlan(strategy="fltrust"),
            "privacy": PrivacyPlan(he=plan, dp=None if epsilon is None
                                   else DPPlan(epsilon=epsilon))})
        return self.create_task(rounds=rounds, min_participants=min_participants, window=30)

    def cli_env(self, network: str) -> dict[str, str]:
        """The environment in which ``fl-agent`` runs on this world's deployment and store,
        on the node at ``network``."""
        from fl_agent.chain.deployment import save_deployment

        deployments = self.tmp / "deployments"
        if not deployments.exists():
            save_deployment(self.fairfl.deployment, deployments)
        return {"FAIRFL_HOME": str(self.tmp), "FAIRFL_DEPLOYMENTS": str(deployments),
                "FAIRFL_NETWORK": network, "COLUMNS": "200"}

    def cli(self, *args: str) -> Any:
        """``fl-agent ARGS`` run in this process (click's runner) on this world's deployment;
        its result (``exit_code``, ``output``)."""
        from ape import chain
        from click.testing import CliRunner

        from fl_agent.cli import main

        return CliRunner().invoke(main, list(args), env=self.cli_env(chain.provider.uri))

    def key_holder_agent(self, task_id: int) -> Any:
        """The key holder agent of a task made by :meth:`he_task`."""
        from fl_agent.agents.keyholder import KeyHolderAgent

        return KeyHolderAgent(self.fairfl, self.store, self.accounts[0], task_id,
                              self.tmp / "keys", self.tmp / "agents")


def build_world(tmp_path: Path) -> World:
    """A fresh deployment on the network ape is connected to, with a store in ``tmp_path``."""
    from fl_agent.chain.client import FairFL, load_project
    from fl_agent.chain.deployment import deploy_contracts
    from fl_agent.chain.node import dev_account
    from fl_agent.learning import ModelSpec, load_dataset, split_dataset
    from fl_agent.learning.task_doc import DataSpec, TaskDocument, TrainingPlan
    from fl_agent.storage.store import LocalStore

    accounts = [dev_account(i) for i in range(10)]
    record, _ = deploy_contracts(accounts[0], load_project())
    dataset = load_dataset("digits")
    splits = split_dataset(dataset, seed=0, standardize=False)
    document = TaskDocument.build(
        model=ModelSpec.for_features("logreg", dataset.feature_shape, dataset.num_classes),
        data=DataSpec.describe(dataset, splits.train.X),
        training=TrainingPlan(steps=5, batch_size=16, lr=0.1))
    return World(FairFL(record), LocalStore(tmp_path / "store"), accounts, tmp_path,
                 document, splits)


@pytest.fixture(scope="session")
def holder() -> Any:
    """One CKKS key pair for the homomorphic tests (each task's context is put in its own
    world's store, see :meth:`World.he_task`)."""
    from fl_agent.privacy.he import KeyHolder

    return KeyHolder.create()


@pytest.fixture
def world(connected: str, tmp_path: Path) -> World:
    return build_world(tmp_path)


@pytest.fixture(scope="session")
def world_builder() -> Callable[[Path], World]:
    """:func:`build_world`, for a test that runs its own node."""
    return build_world
