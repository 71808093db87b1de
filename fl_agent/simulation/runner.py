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

With ``mode`` ``he`` the task's creator (the deployer) is its key holder: its CKKS keys are
made here (the secret in ``keys_dir``), and a :class:`~fl_agent.agents.keyholder.
KeyHolderAgent` runs in this process beside the others, stepped whenever the aggregator waits
for a decryption. The aggregation rule is FLTrust, the only one that runs on ciphertexts.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fl_agent.chain.records import TxReceipt
from fl_agent.errors import ChainError, ConfigError, FairFLError
from fl_agent.learning.data import load_dataset, split_dataset
from fl_agent.simulation.attackers import (
    Collusion,
    Poison,
    backdoor_trigger,
    client_data,
    colluder_trainer,
)
from fl_agent.simulation.attacks import Attack
from fl_agent.simulation.config import (
    BLOCKS_PER_ROUND_SLACK,
    FLT,
    STEP_MILLIS,
    ClientPlan,
    SimulationConfig,
    client_seed,
    device_speeds,
    plan_clients,
    task_document,
)

# The simulation's settings and attackers live in .config and .attackers; these names stay
# importable from here, where the agents' wiring uses them.
__all__ = ["BLOCKS_PER_ROUND_SLACK", "FLT", "STEP_MILLIS", "ClientPlan", "Collusion",
           "SimulationConfig", "backdoor_trigger", "client_data", "client_seed",
           "colluder_trainer", "device_speeds", "plan_clients", "run_simulation",
           "simulation_chain", "task_document"]


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
    from fl_agent.chain.client import FairFL, chain_height, load_project
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
    from fl_agent.simulation.report import ReportBuilder, privacy_section
    from fl_agent.storage.store import LocalStore

    torch.set_num_threads(1)
    he = TrainingMode.HOMOMORPHIC in config.training_mode
    if config.rule != config.aggregator:
        log(f"mode he aggregates ciphertexts with FLTrust's rule, not {config.aggregator}")
        config = config.model_copy(update={"aggregator": config.rule})
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
    data_spec = DataSpec.describe(dataset, splits.train.X)
    # Checked before any chain work; an he plan exists only once its keys are made, below.
    document = None if he else task_document(config, spec, data_spec)
    clients = plan_clients(config, splits.train.y)
    attack = Attack(config.attack, flip_scale=config.flip_scale)
    trigger = backdoor_trigger(config, dataset.feature_shape, splits.train.X)

    # -- chain ---------------------------------------------------------------------------
    with simulation_chain(network, workdir, accounts=config.clients + 3) as network_name:

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
        first_block = chain_height() + 1
        record, _ = deploy_contracts(deployer, load_project(), policy=policy)
        save_deployment(record, deployments or workdir / "deployments")
        fairfl = FairFL(record)
        log(f"contracts deployed on {network_name}: ledger {record.address('TaskLedger')}")
        keys = Path(keys_dir or workdir / "keys")
        if document is None:
            from fl_agent.agents.keyholder import create_context

            he_plan = create_context(store, keys, deployer.address)
            log(f"CKKS keys made: context {he_plan.context_cid}, key holder {deployer.address}")
            document = task_document(config, spec, data_spec, he=he_plan)
        # The creator (the deployer here) lists the final model, so it must read it too.
        document = document.model_copy(update={"access": AccessPlan(
            creator_key=public_bytes(member_key(fairfl, deployer)).hex())})

        model_cid = store.add(encode_weights(spec, init_params(spec, config.seed)))
        spec_cid = store.add(document.to_json())
        task_id, _ = fairfl.ledger.create_task(TaskSpec(
            model_cid=model_cid, spec_cid=spec_cid, metric="accuracy",
            aggregator=aggregator_account.address, rounds=config.rounds,
            min_participants=config.quorum,
            submission_window=blocks_per_round * 2, training_mode=config.training_mode,
            reward_per_round=config.reward_per_round), sender=deployer)

        participants: list[ParticipantAgent] = []
        malicious: dict[str, bool] = {}
        speeds = device_speeds(config)
        for plan, X, y, poison in client_data(config, clients, splits.train,
                                              dataset.num_classes, trigger,
                                              colluder_trainer(config, spec, data_spec)):
            hook = None if poison is None else _hook(poison)
            agent = ParticipantAgent(fairfl, store, people[2 + plan.index], task_id, X, y,
                                     workdir / "agents", seed=client_seed(config, plan),
                                     update_hook=hook,
                                     train=not (plan.malicious and not attack.trains
                                                and not config.attacks_sometimes),
                                     device_millis_per_step=None if speeds is None
                                     else STEP_MILLIS / speeds[plan.index])
            agent.join()
            participants.append(agent)
            malicious[agent.address] = plan.malicious

        aggregator = AggregatorAgent(fairfl, store, aggregator_account, task_id,
                                     splits.validation.X, splits.validation.y,
                                     workdir / "agents")
        key_holder = None
        if he:
            from fl_agent.agents.keyholder import KeyHolderAgent

            key_holder = KeyHolderAgent(fairfl, store, deployer, task_id, keys,
                                        workdir / "agents")
        builder = ReportBuilder(config, spec, document, malicious, splits.test, trigger)

        closed = 0  # rounds closed without a model since the last finalized one
        while not aggregator.finished:
            opened = patiently(aggregator.step)
            if opened is None:
                raise ConfigError("the aggregator cannot open a round: too few participants")
            for agent in participants:
                if not agent.finished:
                    patiently(agent.step)
            outcome = patiently(aggregator.step)
            waited = 0
            while not isinstance(outcome, (RoundOutcome, TxReceipt)):
                if key_holder is not None and key_holder.step():
                    outcome = patiently(aggregator.step)  # a decryption answered: the round goes on
                    continue
                # Some participant did not submit (it skipped the round): let the
                # submission window run out, then finalize with what arrived.
                if waited > 2 * config.rounds + 10:
                    raise ChainError("the round's submission window never closed: the chain "
                                     "is not producing blocks")
                _let_blocks_pass(blocks_per_round)
                waited += 1
                outcome = patiently(aggregator.step)
            if not isinstance(outcome, RoundOutcome):
                # Closed short of its quorum; the next round opens on the same model.
                closed += 1
                if closed > config.rounds:
                    fairfl.ledger.cancel_task(task_id, sender=deployer)
                    raise FairFLError(
                        f"{closed} rounds in a row were closed without a model: each had fewer "
                        f"than the quorum of {config.quorum} accepted updates, so task "
                        f"{task_id} cannot finish and was cancelled (what it credited stays "
                        "claimable). The aggregator's log says why the updates were rejected.")
                continue
            closed = 0
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
                                     seller=deployer, keys_dir=keys)
        privacy = None
        if document.privacy is not None:
            privacy = privacy_section(
                fairfl, store, task_id, document, builder.final_params,
                {a.address: a.privacy.watermark_key for a in participants
                 if a.privacy is not None and a.privacy.watermark_key is not None})
        report = builder.finish(fairfl, task_id, network_name, record, first_block,
                                chain_height(), listed,
                                seconds=time.perf_counter() - started, privacy=privacy)
    return report


def _hook(poison: Poison) -> Callable[[np.ndarray, Any], np.ndarray]:
    def hook(global_vector: np.ndarray, result: Any) -> np.ndarray:
        return poison(global_vector, result.vector)
    return hook


def patiently(step: Callable[[], Any], attempts: int = 5,
              sleep: Callable[[float], None] = time.sleep) -> Any:
    """``step()``, tried again after 1, 2, 4 and 8 s while it fails on an error worth
    waiting out (:func:`fl_agent.retry.transient`: the private node slow to answer under
    load), as an agent's service loop would; any other error, or the last one, goes up."""
    from fl_agent.retry import transient

    for attempt in range(attempts):
        try:
            return step()
        except Exception as err:
            if attempt == attempts - 1 or not transient(err):
                raise
            sleep(2.0 ** attempt)
    raise AssertionError("unreachable")


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
