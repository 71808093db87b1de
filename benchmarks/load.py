"""Load: N participant agents, each its own process, run one task on a private anvil
(``make bench-load``).

The script starts its own anvil (N + 2 funded accounts), deploys FairFL, creates a task
with ``fl-agent task create`` (digits, logistic regression, a quorum of N/2 accepted
updates: :func:`quorum`), then starts N ``fl-agent train`` processes (participant i trains
on shard i/N of digits) and, once all of them have joined, ``fl-agent aggregate``, all on
one local store (``FAIRFL_HOME``), and waits until the task is completed, showing the
rounds finalized.

Afterwards it accounts for every submission from the chain alone: each participant's
``UpdateSubmitted`` in each round exactly once, and each of those exactly once among the
contributors or the rejected of the round's single ``RoundFinalized`` (a participant
blacklisted in round r is expected up to round r only). Then it splits the rounds' latency:

* training, per update: ``trainingMillis`` of ``UpdateSubmitted``;
* storage and chain, per update: the participant's own stopwatch (``FAIRFL_TIMINGS``, see
  :mod:`fl_agent.timings`): reading the workload, keyring and global model from the store
  and decrypting it, uploading the sealed update; the chain reads before training and
  ``submitUpdate`` from sending to its receipt;
* aggregation, per round: ``aggregationMillis`` of ``RoundFinalized`` (it includes fetching
  and opening the N updates, also shown on its own);
* the round, from the aggregator starting to open it to ``finalizeRound``'s receipt, along
  its critical path (the participant whose update was mined last, and the aggregator before
  and after it). "Set-up and sealing" is the participant's step outside ``trainingMillis``
  (building the model and optimizer, torch's one-time warm-up in round 1, encoding and
  sealing the update); "waiting" is what no stopwatch covers: the polling intervals and the
  queue for a core.

Each agent process holds about 0.4 GB of its own memory (torch, ape), so 51 of them nearly
fill a 24 GB machine: the agents are made the OOM killer's first choice, and the run stops
if available memory falls below ``MEMORY_FLOOR_GB`` (0.5 GB).

Writes ``reports/bench/load.json`` (settings, machine, every raw number), a plot beside it
(``load.png``: each round's critical path, stacked, and the spread of each component) and
prints the tables (``docs/load.md`` quotes them). Exits with 1 if a submission is
lost, duplicated or unaccounted for.

    python -m benchmarks.load                                     # 50 participants, 20 rounds
    python -m benchmarks.load --participants 3 --rounds 2 --poll-interval 0.5   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, percentiles, progress_bar, publish
from benchmarks import versions as shared_versions

#: Dev accounts: 0 deploys and creates the task, 1 aggregates, participant i is 2 + i.
CREATOR, AGGREGATOR, FIRST_PARTICIPANT = 0, 1, 2
#: Below this much available memory the run stops (its agents first, not the machine's
#: other jobs): 51 agent processes of about 0.4 GB each nearly fill a 24 GB machine.
MEMORY_FLOOR_GB = 0.5
#: The critical path's parts, in the order they are stacked.
CATEGORIES = ("waiting", "chain", "storage", "training", "set-up and sealing", "aggregation")


class RunStopped(RuntimeError):
    """The run was stopped before the task completed (memory, time, an agent died)."""


@dataclass(frozen=True)
class LoadSettings:
    participants: int = 50
    rounds: int = 20
    poll_interval: float = 2.0
    threads: int = 1
    window: int = 1000
    timeout: float = 3 * 3600.0
    block_time: int | None = None


# -- running the agents -------------------------------------------------------------------------
class AgentProcesses:
    """The ``fl-agent`` processes of one run, each with its own log and timings file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        for folder in ("logs", "timings"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        env = {**self.env, "FAIRFL_TIMINGS": str(self.workdir / "timings" / f"{name}.jsonl")}
        with self.log(name).open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "fl_agent.cli", *args], env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        _expendable(proc.pid)
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.log(name).read_text(errors="replace").splitlines()[-lines:])

    def failed(self) -> str | None:
        """The first process that exited with an error, if any."""
        for name, proc in self.procs.items():
            if proc.poll() not in (None, 0):
                return name
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def timings(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted((self.workdir / "timings").glob("*.jsonl")):
            records += [json.loads(line) for line in path.read_text().splitlines() if line]
        return records


def _expendable(pid: int) -> None:
    """Makes ``pid`` the first process the kernel's OOM killer takes, before any other job on
    the machine (raising one's own child's score needs no privilege)."""
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
    except OSError:
        pass


class ResourceSampler:
    """The machine's available memory (every call) and the agents' private memory (USS,
    every ``full_every`` calls: reading it costs ~10 ms per process), via psutil."""

    def __init__(self, full_every: int = 15) -> None:
        import psutil

        self.psutil = psutil
        self.full_every = full_every
        self.calls = 0
        self.peak_uss: dict[int, int] = {}
        self.peak_total = 0
        self.available = self.min_available = psutil.virtual_memory().available

    def sample(self, procs: list[subprocess.Popen]) -> None:
        self.available = self.psutil.virtual_memory().available
        self.min_available = min(self.min_available, self.available)
        self.calls += 1
        if self.calls % self.full_every != 1 and self.full_every > 1:
            return
        total = 0
        for proc in procs:
            try:
                uss = self.psutil.Process(proc.pid).memory_full_info().uss
            except self.psutil.Error:
                continue
            self.peak_uss[proc.pid] = max(self.peak_uss.get(proc.pid, 0), uss)
            total += uss
        self.peak_total = max(self.peak_total, total)


def run(settings: LoadSettings, workdir: Path) -> dict[str, Any]:
    """Runs the task to the end; returns the chain's records, the agents' timings and what
    the run cost."""
    import psutil
    from ape import networks

    from fl_agent.chain.client import FairFL, load_project
    from fl_agent.chain.deployment import deploy_contracts, save_deployment
    from fl_agent.chain.node import LocalChain, dev_account, free_port
    from fl_agent.cli.common import quiet_ape

    n = settings.participants
    node = LocalChain(workdir / "chain", "127.0.0.1", free_port())
    node.start(accounts=FIRST_PARTICIPANT + n, block_time=settings.block_time)
    threads = str(settings.threads)
    env = {**os.environ, "FAIRFL_HOME": str(workdir / "home"),
           "FAIRFL_DEPLOYMENTS": str(workdir / "deployments"), "FAIRFL_NETWORK": node.url,
           "COLUMNS": "200", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    env.pop("FAIRFL_FAILPOINT", None)
    agents = AgentProcesses(workdir, env)
    sampler = ResourceSampler()
    available_before = sampler.available
    clock: dict[str, float] = {}
    try:
        quiet_ape()
        with networks.parse_network_choice(node.url):
            record, _ = deploy_contracts(dev_account(CREATOR), load_project())
            save_deployment(record, workdir / "deployments")
            fairfl = FairFL(record)
            started = time.perf_counter()
            create = agents.start(
                "create", "task", "create", "--model", "logreg", "--dataset", "digits",
                "--rounds", str(settings.rounds), "--min-participants", str(quorum(n)),
                "--window", str(settings.window), "--account", f"TEST::{CREATOR}",
                "--aggregator", f"TEST::{AGGREGATOR}")
            if create.wait() != 0:
                raise RuntimeError(f"task create failed:\n{agents.tail('create')}")
            task_id = int(re.search(r"task (\d+) created", agents.log("create").read_text())[1])
            clock["create_task_s"] = time.perf_counter() - started
            before = resource.getrusage(resource.RUSAGE_CHILDREN)

            spawned = time.time()
            for i in range(n):
                agents.start(f"participant-{i:02d}", "train", "--task", str(task_id),
                             "--data", "digits", "--shard", f"{i}/{n}",
                             "--account", f"TEST::{FIRST_PARTICIPANT + i}",
                             "--poll-interval", str(settings.poll_interval))
            stopped = None
            with progress_bar() as progress:
                joined = progress.add_task("participants joined", total=n)
                rounds = progress.add_task("rounds finalized", total=settings.rounds)

                def show(task: Any) -> None:
                    progress.update(joined, completed=task.participant_count)
                    progress.update(rounds, completed=task.finalized_rounds)
                    if task.participant_count == n and "aggregator" not in agents.procs:
                        # Everyone holds the task key of round 1; the quorum stays below n,
                        # so an honest update turned away does not close a round.
                        agents.start("aggregator", "aggregate", "--task", str(task_id),
                                     "--validation", "digits", "--account",
                                     f"TEST::{AGGREGATOR}",
                                     "--poll-interval", str(settings.poll_interval))

                try:
                    watch(fairfl, task_id, agents, sampler, settings, show)
                except RunStopped as err:
                    stopped = str(err)
                    agents.stop()  # at once: the machine may be short of memory
            completed = time.time()
            exit_codes = {}
            for name, proc in agents.procs.items():
                try:
                    exit_codes[name] = proc.wait(timeout=120 + 10 * settings.poll_interval)
                except subprocess.TimeoutExpired:
                    exit_codes[name] = None  # still running after the task completed
            agents.stop()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            anvil = psutil.Process(node.pid()).cpu_times()
            chain = chain_records(fairfl, task_id)
            participants = [str(dev_account(FIRST_PARTICIPANT + i).address).lower()
                            for i in range(n)]
    finally:
        agents.stop()
        node.stop()
    agent_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    wall = completed - spawned
    return {
        "stopped": stopped, "task_id": task_id, "participants": participants, "chain": chain,
        "timings": agents.timings(), "exit_codes": exit_codes,
        "spawned": spawned, "completed": completed,
        "resources": {
            "agent_processes": n + 1,
            "agents_peak_uss_total_gb": round(sampler.peak_total / 2**30, 2),
            "agent_peak_uss_max_mb": round(max(sampler.peak_uss.values(), default=0) / 2**20),
            "agent_peak_uss_median_mb": round(float(np.median(list(sampler.peak_uss.values())))
                                              / 2**20) if sampler.peak_uss else 0,
            "available_memory_before_gb": round(available_before / 2**30, 2),
            "min_available_memory_gb": round(sampler.min_available / 2**30, 2),
            "agents_cpu_seconds": round(agent_cpu, 1),
            "anvil_cpu_seconds": round(anvil.user + anvil.system, 1),
            "cpu_busy_share": round((agent_cpu + anvil.user + anvil.system)
                                    / (wall * (os.cpu_count() or 1)), 3),
            "create_task_s": round(clock["create_task_s"], 1),
        },
    }


def quorum(participants: int) -> int:
    """The task's quorum (``minParticipants``, accepted updates a round needs): half of
    the participants, so that rejections of honest updates do not close rounds."""
    return max(1, participants // 2)


def watch(fairfl: Any, task_id: int, agents: AgentProcesses, sampler: ResourceSampler,
          settings: LoadSettings, show: Any) -> None:
    """Returns when the task is completed; raises :class:`RunStopped` when memory runs short,
    an agent dies or time runs out. ``show(task)`` reports progress."""
    from fl_agent.chain.records import TaskStatus

    deadline = time.monotonic() + settings.timeout
    while True:
        task = fairfl.ledger.task(task_id)
        show(task)
        running = [p for name, p in agents.procs.items() if name != "create"]
        if task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            return
        where = (f"{sum(p.poll() is None for p in running)} agent processes running, "
                 f"{task.participant_count} joined, {task.finalized_rounds} rounds finalized")
        sampler.sample(running)
        if sampler.available < MEMORY_FLOOR_GB * 2**30:
            raise RunStopped(f"out of memory: {sampler.available / 2**30:.2f} GB available "
                             f"({where}); the agents were stopped before the OOM killer had "
                             "to choose")
        if (name := agents.failed()) is not None:
            raise RunStopped(f"{name} exited with {agents.procs[name].returncode} before the "
                             f"task completed ({where}):\n{agents.tail(name)}")
        if time.monotonic() > deadline:
            raise RunStopped(f"the task did not complete in {settings.timeout:.0f} s ({where})")
        time.sleep(1.0)


def chain_records(fairfl: Any, task_id: int) -> dict[str, Any]:
    """What the chain holds about the task's rounds, as plain values."""
    from fl_agent.chain.records import RoundResult

    ledger = fairfl.ledger
    started = [{"round": int(log.round), "block": int(log.block_number)}
               for log in ledger.events("RoundStarted", taskId=task_id)]
    submitted = [{"round": int(log.round), "participant": str(log.participant).lower(),
                  "update_cid": str(log.updateCid), "samples": int(log.numSamples),
                  "training_ms": int(log.trainingMillis), "block": int(log.block_number)}
                 for log in ledger.events("UpdateSubmitted", taskId=task_id)]
    finalized = []
    for log in ledger.events("RoundFinalized", taskId=task_id):
        result = RoundResult.from_chain(log.result)
        finalized.append({"round": int(log.round), "block": int(log.block_number),
                          "contributors": [a.lower() for a in result.contributors],
                          "rejected": [a.lower() for a in result.rejected],
                          "reasons": list(result.reasons),
                          "aggregation_ms": int(result.aggregation_millis)})
    closed = [int(log.round) for log in ledger.events("RoundClosed", taskId=task_id)]
    blacklisted = {str(log.account).lower(): int(log.round)
                   for log in fairfl.registry.events("Blacklisted", taskId=task_id)}
    return {"started": started, "submitted": submitted, "finalized": finalized,
            "closed": closed, "blacklisted": blacklisted}


# -- accounting -------------------------------------------------------------------------------
def account(participants: list[str], rounds: int, chain: dict[str, Any]) -> dict[str, Any]:
    """Every submission the chain should hold in rounds 1..``rounds``, checked against what
    it holds. A participant blacklisted in round r owes rounds 1..r; every key below but the
    counts must be empty. Later rounds (one left open by a stopped run) are only counted."""
    barred = chain["blacklisted"]
    expected = {(r, p) for r in range(1, rounds + 1) for p in participants
                if barred.get(p, rounds) >= r}
    sent = Counter((s["round"], s["participant"]) for s in chain["submitted"]
                   if s["round"] <= rounds)
    settled = Counter((f["round"], p) for f in chain["finalized"]
                      for p in [*f["contributors"], *f["rejected"]])
    results = Counter(f["round"] for f in chain["finalized"])
    problems = {
        "lost": sorted(expected - set(sent)),
        "duplicated": sorted(k for k, count in sent.items() if count > 1),
        "unexpected": sorted(set(sent) - expected),
        "unaccounted": sorted(set(sent) - set(settled)),
        "accounted_twice": sorted(k for k, count in settled.items() if count > 1),
        "phantom": sorted(set(settled) - set(sent)),
        "rounds_not_finalized": [r for r in range(1, rounds + 1) if results[r] == 0],
        "rounds_finalized_twice": sorted(r for r, count in results.items() if count > 1),
        "rounds_closed_without_model": sorted(chain["closed"]),
    }
    return {
        "expected": len(expected), "submitted": sum(sent.values()),
        "accounted": sum(settled.values()),
        "accepted": sum(len(f["contributors"]) for f in chain["finalized"]),
        "rejected": sum(len(f["rejected"]) for f in chain["finalized"]),
        "blacklisted": barred,
        "in_later_rounds": sum(s["round"] > rounds for s in chain["submitted"]),
        **{key: [list(k) if isinstance(k, tuple) else k for k in v]
           for key, v in problems.items()},
        "complete": not any(problems.values()),
    }


# -- latency --------------------------------------------------------------------------------
def _end(record: dict[str, Any]) -> float:
    return record["started"] + sum(record["laps_ms"].values()) / 1000


def latency(chain: dict[str, Any], timings: list[dict[str, Any]]) -> dict[str, Any]:
    """Joins the chain's records with the agents' stopwatches: one row per update, one per
    round with its critical path, and the spread of every component (milliseconds)."""
    steps: dict[tuple[str, int, str], dict[str, Any]] = {}
    for record in timings:
        steps[record["step"], record["round"], str(record.get("participant", "")).lower()] = \
            record
    training = {(s["round"], s["participant"]): s["training_ms"] for s in chain["submitted"]}
    updates, by_round = [], {}
    for (step, number, who), record in sorted(steps.items()):
        opened = steps.get(("open", number, ""))
        if step != "participant" or opened is None or (number, who) not in training \
                or ("finalize", number, "") not in steps:
            continue  # only finalized rounds: a stopped run leaves one half done
        laps = record["laps_ms"]
        train_ms = training[number, who]
        row = {"round": number, "participant": who, "training_ms": train_ms,
               "setup_and_sealing_ms": round(max(0.0, laps["train_and_seal"] - train_ms), 3),
               **{f"{name}_ms": ms for name, ms in laps.items()},
               "storage_ms": round(laps["fetch"] + laps["upload"], 3),
               "chain_ms": round(laps["checks"] + laps["submit"], 3),
               "notice_ms": round((record["started"] - _end(opened)) * 1000, 3),
               "submitted_ms": round((_end(record) - _end(opened)) * 1000, 3),
               "end": _end(record)}
        updates.append(row)
        by_round.setdefault(number, []).append(row)
    aggregation = {f["round"]: f["aggregation_ms"] for f in chain["finalized"]}
    rounds = []
    for number, rows in sorted(by_round.items()):
        opened, final = steps[("open", number, "")], steps[("finalize", number, "")]
        last = max(rows, key=lambda row: row["end"])
        o, f = opened["laps_ms"], final["laps_ms"]
        path = {
            "waiting": last["notice_ms"] + (final["started"] - last["end"]) * 1000,
            "chain": o["readers"] + o["start_round"] + last["chain_ms"] + f["finalize"],
            "storage": o["workload"] + last["storage_ms"] + f["fetch"],
            "training": last["training_ms"],
            "set-up and sealing": last["setup_and_sealing_ms"],
            "aggregation": f["aggregate"],
        }
        rounds.append({
            "round": number, "updates": len(rows),
            "round_ms": round((_end(final) - opened["started"]) * 1000, 3),
            "open_ms": round(sum(o.values()), 3),
            "all_submitted_ms": round((last["end"] - _end(opened)) * 1000, 3),
            "aggregator_wait_ms": round((final["started"] - last["end"]) * 1000, 3),
            "aggregation_ms": aggregation.get(number),
            "aggregator_fetch_ms": f["fetch"], "finalize_tx_ms": f["finalize"],
            "critical_participant": last["participant"],
            "critical_path_ms": {k: round(v, 3) for k, v in path.items()},
        })
    for row in updates:
        del row["end"]

    def column(rows: list[dict[str, Any]], key: str) -> list[float]:
        return [row[key] for row in rows if row.get(key) is not None]

    per_update = {name: percentiles(column(updates, f"{name}_ms"))
                  for name in ("training", "storage", "chain", "fetch", "upload", "checks",
                               "submit", "setup_and_sealing", "notice", "submitted")}
    per_round = {name: percentiles(column(rounds, f"{name}_ms"))
                 for name in ("aggregation", "aggregator_fetch", "finalize_tx", "open",
                              "aggregator_wait", "all_submitted", "round")}
    path = {c: percentiles([r["critical_path_ms"][c] for r in rounds]) for c in CATEGORIES}
    return {"per_update": per_update, "per_round": per_round, "critical_path": path,
            "updates": updates, "rounds": rounds}


def in_blocks(chain: dict[str, Any], rounds: list[dict[str, Any]],
              block_time: float) -> dict[str, Any]:
    """Each round against the block time: the blocks from ``RoundStarted`` to
    ``RoundFinalized`` and the round's overhead in blocks, that is, its time (from the
    aggregator starting to open it to ``finalizeRound``'s receipt) less the critical path's
    training, and less training and aggregation. A round needs at least three blocks of
    waiting whatever its work: ``startRound``, the last ``submitUpdate`` and
    ``finalizeRound`` are each mined in a block after the one that carried what they
    answer."""
    started = {s["round"]: s["block"] for s in chain["started"]}
    finalized = {f["round"]: f["block"] for f in chain["finalized"]}
    block_ms, rows = block_time * 1000, []
    for r in rounds:
        path = r["critical_path_ms"]
        beyond_training = r["round_ms"] - path["training"]
        rows.append({
            "round": r["round"], "blocks": finalized[r["round"]] - started[r["round"]],
            "beyond_training_blocks": round(beyond_training / block_ms, 3),
            "beyond_training_and_aggregation_blocks":
                round((beyond_training - path["aggregation"]) / block_ms, 3),
        })
    return {"block_time_s": block_time, "rounds": rows,
            **{key: percentiles([row[key] for row in rows])
               for key in ("blocks", "beyond_training_blocks",
                           "beyond_training_and_aggregation_blocks")}}


# -- report -----------------------------------------------------------------------------------
def versions() -> dict[str, str | None]:
    """The versions that shape the figures: the learning, chain client and node."""
    return shared_versions("torch", "numpy", "eth-ape", "web3")


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def markdown(result: dict[str, Any]) -> str:
    lat, acc, res = result["latency_ms"], result["accounting"], result["resources"]
    s, wall = result["settings"], result["wall_s"]
    rows = [
        ("training (`trainingMillis`)", "update", lat["per_update"]["training"]),
        ("storage: read model, workload, keyring + upload update", "update",
         lat["per_update"]["storage"]),
        ("chain: reads before training + `submitUpdate` to receipt", "update",
         lat["per_update"]["chain"]),
        ("aggregation (`aggregationMillis`)", "round", lat["per_round"]["aggregation"]),
        ("  of which fetching and opening the updates", "round",
         lat["per_round"]["aggregator_fetch"]),
        ("`finalizeRound` to receipt", "round", lat["per_round"]["finalize_tx"]),
        ("opening a round (reads, workload, `startRound`)", "round", lat["per_round"]["open"]),
        ("round opened → participant starts on it", "update", lat["per_update"]["notice"]),
        ("round opened → update mined", "update", lat["per_update"]["submitted"]),
        ("round opened → last update mined", "round", lat["per_round"]["all_submitted"]),
        ("last update mined → aggregator starts", "round", lat["per_round"]["aggregator_wait"]),
        ("**round**: opening → `finalizeRound` mined", "round", lat["per_round"]["round"]),
    ]
    lines = ["| component (ms) | per | n | p50 | p90 | p99 | max |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, per, d in rows:
        if d.get("n"):
            lines.append(f"| {name} | {per} | {d['n']} | {_ms(d['p50'])} | {_ms(d['p90'])} | "
                         f"{_ms(d['p99'])} | {_ms(d['max'])} |")
    total = sum(lat["critical_path"][c].get("mean", 0) for c in CATEGORIES) or 1
    lines += ["", "| a round's critical path | mean ms | share |", "| --- | --- | --- |"]
    lines += [f"| {c} | {_ms(lat['critical_path'][c].get('mean', 0))} | "
              f"{lat['critical_path'][c].get('mean', 0) / total:.0%} |" for c in CATEGORIES]
    if (blocks := result.get("blocks")) is not None:
        lines += ["", f"| a round in blocks of {blocks['block_time_s']} s | n | p50 | p90 | max |",
                  "| --- | --- | --- | --- | --- |"]
        for key, name in (("blocks", "blocks from `RoundStarted` to `RoundFinalized`"),
                          ("beyond_training_blocks", "overhead beyond training"),
                          ("beyond_training_and_aggregation_blocks",
                           "overhead beyond training and aggregation")):
            d = blocks[key]
            lines.append(f"| {name} | {d['n']} | {d['p50']:.2f} | {d['p90']:.2f} | "
                         f"{d['max']:.2f} |")
    verdict = "every submission accounted for" if acc["complete"] else "**SUBMISSIONS MISSING**"
    if result["stopped"]:
        lines += ["", f"**Stopped before the task completed** ({result['stopped']}); the "
                  f"figures cover the {result['rounds_checked']} rounds finalized."]
    lines += [
        "",
        f"{s['participants']} participant processes + 1 aggregator, {s['rounds']} rounds, "
        f"poll interval {s['poll_interval']} s, {s['threads']} torch thread(s) per agent, "
        + (f"a block every {s['block_time']} s." if s.get("block_time")
           else "a block mined for each transaction."),
        f"Accounting, rounds 1-{result['rounds_checked']}: {acc['submitted']} of "
        f"{acc['expected']} submissions on chain, "
        f"{acc['accounted']} in the rounds' results ({acc['accepted']} accepted, "
        f"{acc['rejected']} rejected, {len(acc['blacklisted'])} blacklisted): {verdict}.",
        f"Wall time: {wall['rounds']:,.0f} s from the agents' start to "
        f"{'the stop' if result['stopped'] else 'the task completed'} "
        f"({wall['startup'] or 0:,.0f} s of it until round 1 opened), {wall['total']:,.0f} s "
        "in all.",
        f"Machine: {result['machine']['cores']} cores, {result['machine']['ram_gb']} GB; "
        f"{res['available_memory_before_gb']} GB available before the run, "
        f"{res['min_available_memory_gb']} GB at the lowest; the agents' private memory "
        f"peaked at {res['agents_peak_uss_total_gb']} GB together "
        f"({res['agent_peak_uss_median_mb']} MB median per process); CPU busy "
        f"{res['cpu_busy_share']:.0%} of the run (agents {res['agents_cpu_seconds']:,.0f} "
        f"CPU-s, anvil {res['anvil_cpu_seconds']:,.0f} CPU-s).",
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = result["latency_ms"]
    rounds = lat["rounds"]
    fig, (stack, box) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=(3, 2))
    numbers = [r["round"] for r in rounds]
    bottom = np.zeros(len(rounds))
    for category in CATEGORIES:
        heights = np.array([r["critical_path_ms"][category] for r in rounds]) / 1000
        stack.bar(numbers, heights, bottom=bottom, label=category)
        bottom += heights
    s = result["settings"]
    stack.set(xlabel="round", ylabel="seconds",
              title=f"Each round's critical path ({s['participants']} participant processes)")
    stack.legend(fontsize=8)
    parts = {"training": [u["training_ms"] for u in lat["updates"]],
             "storage": [u["storage_ms"] for u in lat["updates"]],
             "chain": [u["chain_ms"] for u in lat["updates"]],
             "opened →\nstarted": [max(1.0, u["notice_ms"]) for u in lat["updates"]],
             "aggregation\n(per round)": [r["aggregation_ms"] for r in rounds],
             "round": [r["round_ms"] for r in rounds]}
    box.boxplot(list(parts.values()), whis=(1, 99), showfliers=True, flierprops={"ms": 2})
    box.set_xticks(range(1, len(parts) + 1), list(parts), fontsize=8)
    box.set(yscale="log", ylabel="ms", title="Spread of each component (whiskers p1-p99)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="On a small machine the N + 1 agents spend most of their time waiting for a "
        "core: the figures say as much about the machine as about FairFL. The results of "
        "the last full run, and what they mean: docs/load.md.")
    parser.add_argument("--participants", type=int, default=50,
                        help="participant processes, each with its own account and shard "
                        "(default 50); the task needs all of them")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the task (default 20)")
    parser.add_argument("--poll-interval", type=float, default=2.0,
                        help="seconds between an agent's looks at the chain (default 2, as "
                        "`fl-agent train` and `aggregate`)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per agent (OMP_NUM_THREADS; default 1: many "
                        "processes share few cores)")
    parser.add_argument("--window", type=int, default=1000,
                        help="blocks a round stays open (default 1000: every submission mines "
                        "a block, so it must exceed the participants)")
    parser.add_argument("--block-time", type=int, default=None,
                        help="seconds between blocks (anvil --block-time; default: a block "
                        "for each transaction); the report then gives each round in blocks "
                        "and its overhead beyond training in blocks")
    parser.add_argument("--timeout", type=float, default=3 * 3600.0,
                        help="give up after this many seconds (default 3 h)")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/load.json"),
                        help="where the results go; the plot goes beside it (.png)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the chain, store, logs and timings here (default: a "
                        "temporary directory, removed)")
    args = parser.parse_args(argv)
    if args.participants < 1 or args.rounds < 1:
        parser.error("--participants and --rounds must be >= 1")
    if args.block_time is not None and args.block_time < 1:
        parser.error("--block-time must be >= 1 second")
    if args.block_time is None and args.window <= args.participants:
        parser.error("--window must exceed --participants (each submission mines a block)")
    settings = LoadSettings(participants=args.participants, rounds=args.rounds,
                            poll_interval=args.poll_interval, threads=args.threads,
                            window=args.window, timeout=args.timeout,
                            block_time=args.block_time)
    about = {**machine(), "versions": versions()}
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="fairfl-bench-load-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        raw = run(settings, workdir)
    checked = settings.rounds if raw["stopped"] is None else \
        len({f["round"] for f in raw["chain"]["finalized"]})
    opened = [t for t in raw["timings"] if t["step"] == "open" and t["round"] == 1]
    result = {
        "settings": asdict(settings), "machine": about,
        "stopped": raw["stopped"], "rounds_checked": checked,
        "wall_s": {"total": round(time.time() - began, 1),
                   "rounds": round(raw["completed"] - raw["spawned"], 1),
                   "startup": round(opened[0]["started"] - raw["spawned"], 1) if opened
                   else None},
        "resources": raw["resources"], "exit_codes": raw["exit_codes"],
        "accounting": account(raw["participants"], checked, raw["chain"]),
        "latency_ms": latency(raw["chain"], raw["timings"]),
        "chain": raw["chain"], "timings": raw["timings"],
    }
    if settings.block_time:
        result["blocks"] = in_blocks(raw["chain"], result["latency_ms"]["rounds"],
                                     settings.block_time)
    png = args.json.with_suffix(".png")
    publish(result, args.json, markdown(result))
    if result["latency_ms"]["rounds"]:
        plot(result, png)
        print(f"plot: {png}")
    if raw["stopped"]:
        sys.exit(f"error: stopped before the task completed: {raw['stopped']}")
    if not result["accounting"]["complete"]:
        sys.exit("error: submissions lost, duplicated or unaccounted for; see "
                 f"'accounting' in {args.json}")
    if any(code != 0 for code in raw["exit_codes"].values()):
        sys.exit(f"error: an agent did not exit cleanly: {raw['exit_codes']}")


if __name__ == "__main__":
    main()
