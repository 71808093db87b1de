"""Fixtures for the contract tests, run by ``ape test`` on a private anvil.

Role fixtures are named after what the account does. Contracts are deployed once per session
through :func:`fl_agent.chain.deployment.deploy_contracts`, the same code the deploy script runs;
ape reverts the chain to a snapshot after every test, so each test starts from that state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fl_agent.chain.deployment import BlacklistPolicy, deploy_contracts

UNIT = 10**18
CID_MODEL = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
CID_SPEC = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CID_WORKLOAD = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
CID_UPDATE = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CID_NEW_MODEL = "bafkreiabltrd5zm73pvi7plq25pef3hm7jxhbi3kv4hapegrkfpkqtkbme"
#: The policy every test runs with: 3 rejections within 100 blocks blacklist.
POLICY = BlacklistPolicy(alpha_bps=2_000, max_rejections=3, window_blocks=100)


@pytest.fixture(scope="session")
def owner(accounts):
    """Deployer, governance, task creator and pauser."""
    return accounts[0]


@pytest.fixture(scope="session")
def aggregator(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def trainers(accounts):
    """Five participants that register and train honestly unless a test says otherwise."""
    return [accounts[i] for i in range(2, 7)]


@pytest.fixture(scope="session")
def buyer(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def attacker(accounts):
    return accounts[8]


@pytest.fixture(scope="session")
def stranger(accounts):
    """An address that never registers or gets a role."""
    return accounts[9]


@pytest.fixture(scope="session")
def deployed(owner, project):
    _record, instances = deploy_contracts(owner, project, policy=POLICY)
    return instances


@pytest.fixture(scope="session")
def token(deployed):
    return deployed["FairToken"]


@pytest.fixture(scope="session")
def registry(deployed):
    return deployed["ParticipantRegistry"]


@pytest.fixture(scope="session")
def ledger(deployed):
    return deployed["TaskLedger"]


@pytest.fixture(scope="session")
def marketplace(deployed):
    return deployed["ModelMarketplace"]


def task_config(aggregator, **overrides):
    """A valid TaskConfig as a dict; keyword arguments replace fields."""
    config = {
        "modelCid": CID_MODEL,
        "specCid": CID_SPEC,
        "metric": "accuracy",
        "aggregator": aggregator.address,
        "rounds": 2,
        "minParticipants": 2,
        "submissionWindow": 20,
        "trainingMode": 1,
        "rewardPerRound": 1_000 * UNIT,
    }
    config.update(overrides)
    return config


def round_result(new_cid=CID_NEW_MODEL, contributors=(), scores=(), rejected=(), millis=1234):
    """A RoundResult tuple in ABI order."""
    return (
        new_cid,
        [getattr(a, "address", a) for a in contributors],
        list(scores),
        [getattr(a, "address", a) for a in rejected],
        millis,
    )


@dataclass
class TaskFactory:
    """Builds tasks in a chosen state so that each test starts where it needs to."""

    ledger: object
    registry: object
    owner: object
    aggregator: object

    def register(self, *participants, cid=CID_SPEC):
        for p in participants:
            if not self.registry.participant(p).registered:
                self.registry.register(cid, sender=p)

    def create(self, **overrides):
        tx = self.ledger.createTask(task_config(self.aggregator, **overrides), sender=self.owner)
        return tx.return_value if tx.return_value else self.ledger.taskCount()

    def joined(self, participants, **overrides):
        """A task that ``participants`` registered for and joined."""
        self.register(*participants)
        task_id = self.create(**overrides)
        for p in participants:
            self.ledger.join(task_id, sender=p)
        return task_id

    def started(self, participants, **overrides):
        """A task with round 1 open."""
        task_id = self.joined(participants, **overrides)
        self.ledger.startRound(task_id, CID_MODEL, CID_WORKLOAD, sender=self.aggregator)
        return task_id

    def submitted(self, participants, **overrides):
        """A task with round 1 open and an update from every participant."""
        task_id = self.started(participants, **overrides)
        for i, p in enumerate(participants):
            self.ledger.submitUpdate(task_id, 1, f"{CID_UPDATE}{i}", 100 + i, 5_000, sender=p)
        return task_id

    def completed(self, participants, scores=None, **overrides):
        """A one-round task, finalized with ``participants`` as contributors."""
        overrides.setdefault("rounds", 1)
        task_id = self.submitted(participants, **overrides)
        scores = scores or [10_000 // len(participants)] * len(participants)
        self.ledger.finalizeRound(
            task_id, 1, round_result(contributors=participants, scores=scores), sender=self.aggregator
        )
        return task_id


@pytest.fixture
def tasks(ledger, registry, owner, aggregator):
    return TaskFactory(ledger, registry, owner, aggregator)
