"""A real FairFL history for the app tests: agents train, the model is sold, the ledger shows it.

The simulation (the same agents as `fl-agent train` / `aggregate`) runs a task on the test
anvil: 5 participants (ape test accounts 2-6, one of them flipping its labels) for 3 rounds,
aggregator account 1, creator and seller account 0, which lists the final model for 50 FLT
(its content key in ``home/keys``, the store in ``home/store``: what the key agent and the
app use). Then: buyer account 7 gets FLT; account 11 registers and governance blacklists it
with an evidence CID; a second task stays open in round 1 with one update submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FLT = 10**18
PRICE = 50 * FLT
BUYER, SECOND_BUYER, BANNED = 7, 10, 11


@dataclass(frozen=True)
class Story:
    owner: str
    aggregator: str
    trainers: tuple[str, ...]
    attacker: str
    banned: str
    buyer: str
    completed_task: int
    open_task: int
    model_id: int
    final_model_cid: str
    encrypted_cid: str
    #: The final model's plaintext (safetensors), read back as the creator: what a buyer
    #: must end up with.
    weights: bytes
    #: The two trainers that join the open task (the first two the completed task did not
    #: blacklist), the first of them with its update submitted.
    open_members: tuple[str, str]
    #: The final model's score on the aggregator's validation split, as the simulation's
    #: report has it (what a listing must show).
    validation: float
    #: What each trainer earned in the completed task (base units), by address.
    earned: dict[str, int]
    home: Path


def populate(url: str, home: Path, deployments: Path) -> Story:
    from ape import networks

    from fl_agent.agents import AggregatorAgent, ParticipantAgent
    from fl_agent.agents.access import member_key
    from fl_agent.agents.participant import load_task_document, read_task_model_bytes
    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import dev_account
    from fl_agent.chain.records import TaskSpec, TrainingMode
    from fl_agent.learning import load_dataset, split_dataset
    from fl_agent.learning.models import init_params
    from fl_agent.learning.weights import encode_weights
    from fl_agent.simulation.runner import SimulationConfig, run_simulation
    from fl_agent.storage.store import LocalStore

    store = LocalStore(home / "store")
    config = SimulationConfig.build(clients=5, malicious=0.2, attack="label_flip", rounds=3,
                                    steps=10, permutations=10, seed=3, list_price=PRICE,
                                    scoring="loo")
    report = run_simulation(config, workdir=home / "simulation", network=url,
                            deployments=deployments, store=store, keys_dir=home / "keys")

    with networks.parse_network_choice(url):
        fairfl = FairFL(load_deployment(url, deployments))
        owner, aggregator = dev_account(0), dev_account(1)
        token = fairfl.token
        token.contract.grantRole(token.contract.MINTER_ROLE(), owner, sender=owner)
        for index in (BUYER, SECOND_BUYER):
            token.mint(dev_account(index).address, 1_000 * FLT, sender=owner)
        banned = dev_account(BANNED)
        fairfl.registry.register(store.add(b'{"format":"fairfl-participant/2"}'), sender=banned)
        fairfl.registry.blacklist(banned.address, store.add(b'{"why":"sybil of account 6"}'),
                                  sender=owner)

        done = 1
        task = fairfl.ledger.task(done)
        document = load_task_document(store, task.spec_cid)
        weights = read_task_model_bytes(fairfl, store, done, owner.address,
                                        member_key(fairfl, owner), document)

        # A second task, left open in round 1 with one of two updates submitted.
        model_cid = store.add(encode_weights(document.model, init_params(document.model, 0)))
        open_task, _ = fairfl.ledger.create_task(TaskSpec(
            model_cid=model_cid, spec_cid=task.spec_cid, metric="f1_macro",
            aggregator=aggregator.address, rounds=3, min_participants=2,
            submission_window=10_000, training_mode=TrainingMode.PLAIN,
            reward_per_round=100 * FLT), sender=owner)
        splits = split_dataset(load_dataset("digits"), seed=0, standardize=False)
        agents = []
        # In five clients FairFL's similarity screen can turn a small honest client away
        # three times (seed 3: the 100-example client), and a blacklisted one cannot join.
        usable = [i for i in range(2, 7)
                  if not fairfl.registry.participant(dev_account(i).address).blacklisted]
        for index in usable[:2]:
            agent = ParticipantAgent(fairfl, store, dev_account(index), open_task,
                                     splits.train.X[:200], splits.train.y[:200],
                                     home / "agents", seed=index)
            agent.join()
            agents.append(agent)
        AggregatorAgent(fairfl, store, aggregator, open_task, splits.validation.X,
                        splits.validation.y, home / "agents").step()
        agents[0].step()

        listing = fairfl.marketplace.listing(report["listing"]["model_id"])
        return Story(
            owner=owner.address, aggregator=aggregator.address,
            trainers=tuple(dev_account(i).address for i in range(2, 7)),
            attacker=report["malicious"][0], banned=banned.address,
            buyer=dev_account(BUYER).address, completed_task=done, open_task=open_task,
            model_id=listing.model_id, final_model_cid=fairfl.ledger.task(done).global_model_cid,
            encrypted_cid=listing.encrypted_cid, weights=weights,
            open_members=(agents[0].address, agents[1].address),
            validation=float(report["rounds"][-1]["validation"]),
            earned=fairfl.ledger.contributions(done), home=home)
