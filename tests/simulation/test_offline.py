"""The offline harness (fl_agent.simulation.offline) with rules the chain tests do not run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fl_agent.simulation.offline import aggregator_strategy, federation, run_offline
from fl_agent.simulation.runner import SimulationConfig


def test_fltrust_runs_with_the_aggregators_validation_split_as_its_root_data():
    """FLTrust needs a server update; the aggregator trains one from the global model on its
    own validation split (no oracle): it must turn label flippers away, and no honest
    client."""
    config = SimulationConfig(clients=10, attack="label_flip", seed=1, aggregator="fltrust",
                              rounds=2, steps=10)
    fed = federation(config)
    assert callable(aggregator_strategy(fed).server_update)
    run = run_offline(fed, blacklist=False)
    malicious = {i for i, c in enumerate(fed.clients) if c.malicious}
    for r in run.rounds:
        rejected = set(r.submitted) - {r.submitted[j] for j in r.decision.accepted}
        assert rejected and rejected <= malicious, (r.round, rejected, malicious)



@pytest.mark.parametrize("attack", ["alie", "ipm"])
def test_colluders_train_honestly_then_all_submit_one_crafted_update(attack):
    config = SimulationConfig(clients=8, malicious=0.25, attack=attack, seed=2, rounds=1,
                              steps=5)
    fed = federation(config)
    bad = [c for c in fed.clients if c.malicious]
    assert len(bad) == 2
    g = np.zeros(10, np.float32)
    calls = []

    def trainer(global_vector, X, y, seed, round_number):
        calls.append((seed, round_number))
        return global_vector + float(seed % 7) + 1.0
    from fl_agent.simulation.attacks import Attack, collude
    from fl_agent.simulation.runner import Collusion

    colluders = [(c.X, c.y, c.seed) for c in bad]
    collusion = Collusion(Attack(attack), colluders, trainer, config.clients)
    first = collusion.crafted(g, g)
    assert np.array_equal(collusion.crafted(g, g + 5), first)  # one crafted update per round
    assert calls == [(c.seed, 1) for c in bad]
    honest = np.stack([g + float(c.seed % 7) + 1.0 for c in bad])
    assert np.array_equal(first, collude(Attack(attack), g, honest, num_clients=8))
    collusion.crafted(g + 1, g)  # a new global model: a new round
    assert calls[-1][1] == 2
    # Wired into the federation: every colluder's poison is the shared collusion.
    assert all(c.poison is not None for c in bad)
    assert len({c.poison.__self__ for c in bad}) == 1


@pytest.fixture(scope="module")
def eight_clients():
    """Digits, 8 honest clients, 3 rounds, Shapley scoring (the default), the rule on chain;
    the subject is the client with the most data."""
    fed = federation(SimulationConfig(clients=8, attack="none", seed=4, rounds=3))
    assert fed.config.scoring == "shapley"
    subject = max(range(8), key=lambda i: len(fed.clients[i].y))
    return fed, subject, run_offline(fed)


def _share(run, accounts):
    earned = run.earned()
    return earned[accounts].sum() / earned.sum()


def test_claiming_a_million_samples_buys_nothing(eight_clients):
    """The subject has more data than the others' median, so its inflated claim is capped
    to what it would count anyway: the run is the honest run, bit for bit."""
    from benchmarks.claims import scenario

    fed, subject, honest = eight_clients
    clients, mine = scenario(fed, "claims 1e6", subject)
    assert clients[subject].claimed_samples == 10**6
    lied = run_offline(fed, clients)
    assert _share(lied, mine) == _share(honest, [subject])
    np.testing.assert_array_equal(lied.params, honest.params)


def test_three_accounts_on_the_same_data_earn_what_one_would(eight_clients):
    """Three accounts training on the subject's data (each with its own seed, so their
    updates differ) are grouped as copies: together they earn within 2 % of the subject's
    honest share, and the model is no worse. Under the rule before issue 11 the same
    accounts took 24.5 % against 19.7 %."""
    from benchmarks.claims import scenario

    fed, subject, honest = eight_clients
    clients, mine = scenario(fed, "sybil copies", subject)
    assert len(mine) == 3
    run = run_offline(fed, clients)
    assert _share(run, mine) <= 1.02 * _share(honest, [subject])
    assert run.test_accuracy >= honest.test_accuracy - 0.01


def test_an_account_that_copies_anothers_data_does_not_earn_double(eight_clients):
    """A newcomer trains on a copy of the subject's data (with its own seed): the two are
    grouped as copies, so together they earn what the subject alone did (within 2 %), not
    twice that, and the copier takes at most about half."""
    from dataclasses import replace

    fed, subject, honest = eight_clients
    copier = replace(fed.clients[subject], seed=fed.clients[subject].seed + 500)
    run = run_offline(fed, [*fed.clients, copier])
    alone = _share(honest, [subject])
    assert _share(run, [subject, 8]) <= 1.02 * alone
    assert _share(run, [8]) <= 0.6 * alone


def test_the_harness_sees_what_the_old_rule_paid_for_a_lie(eight_clients):
    """The control: the rule before issue 11, on the same clients, pays the liar more than
    twice its honest share."""
    from benchmarks.claims import decide_before, scenario

    fed, subject, _ = eight_clients
    honest = run_offline(fed, decide=decide_before)
    clients, mine = scenario(fed, "claims 1e6", subject)
    assert _share(run_offline(fed, clients, decide=decide_before), mine) > \
        2 * _share(honest, [subject])


@pytest.mark.parametrize("window_rounds, blacklisted", [(4, (0,)), (2, ())])
def test_blacklisting_counts_blocks_as_the_registry_does(window_rounds, blacklisted):
    """Client 0 is rejected in rounds 1, 3 and 5. Each round spends 2 + 4 blocks, and the
    registry's window is window_rounds x (4 clients + 4) blocks from the first rejection:
    32 blocks hold all three rejections (blacklisted after round 5, as on chain, where
    the sliding window of 4 rounds would not); 16 blocks hold two."""
    from fl_agent.aggregation.rounds import RoundDecision

    config = SimulationConfig(clients=4, attack="none", seed=1, rounds=6, steps=1,
                              window_rounds=window_rounds)
    fed = federation(config)

    def decide(strategy, global_params, updates, claims, *, round_number, **_):
        accepted = tuple(j for j in range(len(updates)) if j or round_number % 2 == 0)
        return RoundDecision(global_params, accepted, {}, np.zeros(len(updates)),
                             (0,) * len(updates))

    run = run_offline(fed, decide=decide, strategy=aggregator_strategy(fed))
    assert run.blacklisted == blacklisted
    assert len(run.rounds[-1].submitted) == 4 - len(blacklisted)


def test_held_back_updates_do_not_count_towards_a_ban():
    """Client 0 is turned away every round: as ``validation`` three rejections ban it, as
    ``held_back`` none does (ParticipantRegistry does not count them either)."""
    from types import MappingProxyType

    from fl_agent.aggregation.rounds import RoundDecision

    for reason, blacklisted in (("validation", (0,)), ("held_back", ())):
        def decide(strategy, global_params, updates, claims, *, reason=reason, **_):
            return RoundDecision(global_params, tuple(range(1, len(updates))),
                                 MappingProxyType({0: reason}), np.zeros(len(updates)),
                                 (0,) * len(updates))

        fed = federation(SimulationConfig(clients=4, attack="none", seed=1, rounds=5, steps=1))
        run = run_offline(fed, decide=decide, strategy=aggregator_strategy(fed))
        assert run.blacklisted == blacklisted


class _Listener:
    """A hook that sends its honest update and keeps what run_offline tells it: ``told``,
    each round's (verdict, ban_next), and ``reasons``, each round's reason (None: used)."""

    def __init__(self) -> None:
        self.told: list[tuple[str, bool]] = []
        self.reasons: list[str | None] = []

    def __call__(self, global_vector, trained):
        return trained

    def observe(self, verdict, *, ban_next, reason):
        self.told.append((verdict, ban_next))
        self.reasons.append(reason)

    @property
    def standing(self) -> list[bool]:
        """Each round's ban_next alone."""
        return [ban_next for _, ban_next in self.told]


def test_an_attacker_that_reads_its_standing_is_told_it_as_the_registry_keeps_it():
    """run_offline tells a hook with ``observe`` its verdict (accepted, held back, or
    rejected for any counted reason) and whether one more rejection would ban it. Client 1
    is rejected in rounds 1-3 and banned, so rounds spend 5 blocks from round 4 on. Client 0
    is rejected in rounds 3 (block 18, which opens its window of 4 x (4 + 4) = 32 blocks)
    and 4: a third rejection bans it while the next round's block (its round's + 5) is
    below 50, so up to round 8 (block 43); round 9's (48 + 5) is past it."""
    from dataclasses import replace
    from types import MappingProxyType

    from fl_agent.aggregation.rounds import RoundDecision

    listener = _Listener()
    told = listener.told

    turned = {2: {0: "held_back"}, 3: {0: "validation"}, 4: {0: "free_rider"}}

    def decide(strategy, global_params, updates, claims, *, round_number, **_):
        reasons = dict(turned.get(round_number, {}))
        if round_number <= 3:
            reasons[1] = "validation"
        return RoundDecision(global_params, tuple(j for j in range(len(updates))
                                                  if j not in reasons),
                             MappingProxyType(reasons), np.zeros(len(updates)),
                             (0,) * len(updates))

    fed = federation(SimulationConfig(clients=4, attack="none", seed=1, rounds=9, steps=1))
    clients = [replace(fed.clients[0], poison=listener), *fed.clients[1:]]
    run = run_offline(fed, clients, decide=decide, strategy=aggregator_strategy(fed))
    assert run.blacklisted == (1,)
    assert told == [("accepted", False), ("held_back", False), ("rejected", False),
                    ("rejected", True), *[("accepted", True)] * 4, ("accepted", False)]
    assert listener.reasons == [None, "held_back", "validation", "free_rider", *[None] * 5]
    told.clear()  # without blacklisting nothing bans, and nobody is told otherwise
    run = run_offline(fed, clients, decide=decide, strategy=aggregator_strategy(fed),
                      blacklist=False)
    assert run.blacklisted == () and len(told) == 9 and not any(b for _, b in told)


@pytest.mark.parametrize("clients, max_rejections, window_rounds, seed", [
    (6, 2, 1, 0), (6, 2, 2, 1), (6, 3, 1, 2), (5, 3, 2, 3), (7, 2, 1, 4), (4, 1, 1, 5)])
def test_the_standing_an_attacker_is_told_predicts_the_ban_its_next_rejection_brings(
        clients, max_rejections, window_rounds, seed):
    """Whenever client 0 is rejected in the round after one, it is banned exactly when it
    was told that one more rejection would ban it: clients are rejected at random (so
    others are banned in the same rounds, and windows close on either side of a round)."""
    from dataclasses import replace
    from types import MappingProxyType

    from fl_agent.aggregation.rounds import RoundDecision

    listener = _Listener()
    rejected_in: dict[int, set[int]] = {}
    run_seed = [0]

    def decide(strategy, global_params, updates, claims, *, round_number, **_):
        rng = np.random.default_rng(1000 * run_seed[0] + round_number)
        turned = {j for j in range(len(updates)) if rng.random() < 0.45}
        rejected_in[round_number] = turned  # the listener, while it submits, is row 0
        return RoundDecision(global_params, tuple(j for j in range(len(updates))
                                                  if j not in turned),
                             MappingProxyType({j: "validation" for j in turned}),
                             np.zeros(len(updates)), (0,) * len(updates))

    checked = 0
    for run_seed[0] in range(10 * seed, 10 * seed + 6):
        fed = federation(SimulationConfig(clients=clients, attack="none", seed=seed,
                                          rounds=12, steps=1, max_rejections=max_rejections,
                                          window_rounds=window_rounds))
        listener.told.clear()
        members = [replace(fed.clients[0], poison=listener), *fed.clients[1:]]
        run = run_offline(fed, members, decide=decide, strategy=aggregator_strategy(fed))
        told = listener.standing
        rounds = [r.round for r in run.rounds if 0 in r.submitted]
        banned = 0 in run.blacklisted
        assert len(told) == len(rounds) - banned  # not told in the round it is banned
        for number, ban_next in zip(rounds, told, strict=False):
            following = number + 1
            if following > fed.config.rounds or 0 not in rejected_in[following]:
                continue  # no rejection next round: nothing to predict
            assert (banned and rounds[-1] == following) == ban_next, (run_seed, number)
            checked += 1
    assert checked >= 4


def test_the_standing_counts_the_next_rounds_blocks_after_this_rounds_bans():
    """5 clients, a window of 2 x (5 + 4) = 18 blocks, a ban at 2 rejections; client 1
    is banned in round 3 (7 blocks a round before, 6 after) and client 3 in round 9 (5
    after). Client 0, the listener, is rejected in round 3 (block 21: its window's last
    block is 38) and in round 7 (block 45: to 62). Told after round 5 (block 33): the next
    round's block is 39, past the window, so one more rejection would not ban it. Told after
    round 9 (block 57, client 3 banned in it): the next round's is 57 + 3 + 2 = 62, inside,
    so it would. Counting the next round's blocks before this round's bans, ignoring bans,
    or keeping a window open one block too long each tells a different story."""
    from dataclasses import replace
    from types import MappingProxyType

    from fl_agent.aggregation.rounds import RoundDecision

    listener = _Listener()
    rejected = {1: {2}, 2: {1}, 3: {0, 1}, 4: {4}, 7: {0}, 8: {3}, 9: {3}, 10: {2}}

    def decide(strategy, global_params, updates, claims, *, round_number, **_):
        turned = [j for j, i in enumerate(submitted_in[round_number])
                  if i in rejected.get(round_number, ())]
        return RoundDecision(global_params, tuple(j for j in range(len(updates))
                                                  if j not in turned),
                             MappingProxyType({j: "validation" for j in turned}),
                             np.zeros(len(updates)), (0,) * len(updates))

    fed = federation(SimulationConfig(clients=5, attack="none", seed=1, rounds=10, steps=1,
                                      max_rejections=2, window_rounds=2))
    banned_by = {3: {1}, 9: {3}}
    gone: set[int] = set()
    submitted_in = {}
    for number in range(1, 11):
        submitted_in[number] = [i for i in range(5) if i not in gone]
        gone |= banned_by.get(number, set())
    members = [replace(fed.clients[0], poison=listener), *fed.clients[1:]]
    run = run_offline(fed, members, decide=decide, strategy=aggregator_strategy(fed))
    assert run.blacklisted == (1, 3)
    assert [r.submitted for r in run.rounds] == [tuple(submitted_in[n]) for n in range(1, 11)]
    assert listener.standing == [False, False, True, True, False, False, True, True, True,
                                 False]


def test_a_run_goes_on_when_every_client_is_blacklisted():
    """A rule can reject everyone (FLAME and Multi-Krum did, in the sweep), and the
    blacklist then takes everyone: the rounds after that have no submissions and leave the
    model as it was, instead of crashing the run."""
    from types import MappingProxyType

    from fl_agent.aggregation.rounds import RoundDecision

    def reject_all(strategy, params, updates, claims, **_):
        n = len(updates)
        return RoundDecision(params, (), MappingProxyType({i: "test" for i in range(n)}),
                             np.zeros(n), (0,) * n)

    fed = federation(SimulationConfig(clients=4, attack="none", seed=4, rounds=3,
                                      max_rejections=1))
    run = run_offline(fed, decide=reject_all)
    assert len(run.rounds) == 3 and set(run.blacklisted) == {0, 1, 2, 3}
    assert [r.submitted for r in run.rounds[1:]] == [(), ()]
    assert run.test_accuracy == run.rounds[0].test_accuracy
    np.testing.assert_array_equal(run.params, run.rounds[0].decision.params)


def test_the_simulation_waits_out_a_node_slow_to_answer_and_nothing_else():
    """The in-process simulation retries a step that failed on a transient error (as the
    agents' service loop does) with a growing pause, and lets any other error through."""
    from fl_agent.simulation.runner import patiently

    outcomes: list[BaseException | str] = [TimeoutError("slow"), ConnectionError("down"), "ok"]
    waits: list[float] = []

    def step() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert patiently(step, sleep=waits.append) == "ok" and waits == [1.0, 2.0]
    with pytest.raises(ValueError):
        patiently(lambda: (_ for _ in ()).throw(ValueError("a bug")), sleep=waits.append)
    assert waits == [1.0, 2.0]  # a bug is not waited on
    with pytest.raises(TimeoutError):
        patiently(lambda: (_ for _ in ()).throw(TimeoutError("always")), attempts=3,
                  sleep=waits.append)
    assert waits == [1.0, 2.0, 1.0, 2.0]


def test_a_task_that_prunes_screens_each_senders_latest_two_rounds():
    """The aggregator's rule for a task that prunes adds up two rounds in FairFL's trigger
    screen (a plain task's screens the update alone), and the offline harness gives the rule
    what each sender sent in its round before: its update minus that round's model, input
    layer only; nothing in round 1 or for a client blacklisted since. Against the updates
    the harness itself recorded, round by round."""
    from fl_agent.agents.task_rule import PRUNE_TRIGGER_ROUNDS
    from fl_agent.chain.records import TrainingMode
    from fl_agent.privacy.plan import build_plan
    from fl_agent.simulation.offline import decide_as_on_chain

    config = SimulationConfig(clients=5, seed=3, rounds=3, steps=5)
    fed = federation(config)
    assert aggregator_strategy(fed).trigger_rounds == 1
    strategy = aggregator_strategy(fed, build_plan(TrainingMode.PRUNING, prune_ratio=0.9))
    assert strategy.trigger_rounds == PRUNE_TRIGGER_ROUNDS == 2
    offset, units, features = strategy.input_layer
    width = offset + units * features
    seen = []

    def decide(strategy, global_params, updates, claims, **options):
        seen.append((np.array(global_params), np.array(updates), options.get("earlier")))
        return decide_as_on_chain(strategy, global_params, updates, claims, **options)

    run = run_offline(fed, decide=decide, strategy=strategy)
    assert len(seen) == 3
    np.testing.assert_array_equal(seen[0][2], np.zeros((5, width)))
    for (g, updates, _), (_, _, earlier), before, now in zip(
            seen, seen[1:], run.rounds, run.rounds[1:], strict=False):
        sent = {i: updates[j, :width].astype(np.float64) - g[:width]
                for j, i in enumerate(before.submitted)}
        expected = np.array([sent.get(i, np.zeros(width)) for i in now.submitted])
        np.testing.assert_allclose(earlier, expected, rtol=0, atol=1e-12)
        assert np.abs(earlier).sum() > 0
    # With the NOISE check over two rounds (rule R52) the harness keeps whole deltas.
    whole = []
    run = run_offline(fed, strategy=dataclasses.replace(strategy, noise_rounds=2),
                      decide=lambda s, g, u, c, **o: whole.append((np.array(g), np.array(u),
                                                                   o["earlier"]))
                      or decide_as_on_chain(s, g, u, c, **o))
    (g, updates, _), (_, _, earlier) = whole[0], whole[1]
    assert earlier.shape == updates.shape and run.rounds[0].submitted == run.rounds[1].submitted
    np.testing.assert_allclose(earlier, updates.astype(np.float64) - g, rtol=0, atol=1e-12)
    # A plain task's rule is never given earlier rounds.
    plain = []
    run_offline(federation(SimulationConfig(clients=5, seed=3, rounds=2, steps=5)),
                decide=lambda s, g, u, c, **o: plain.append("earlier" in o)
                or decide_as_on_chain(s, g, u, c, **o))
    assert plain == [False, False]
