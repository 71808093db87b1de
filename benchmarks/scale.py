"""Scale: how each rule's aggregation time and memory grow with clients and parameters, and
how fast the embedded store adds and gets content against the speed of hashing it.

**Aggregation.** A synthetic round per size: a global model of ``d`` float32 parameters and
``n`` updates, 70 % honest (a shared step plus noise) and 30 % sign-flipped. Each rule's
``aggregate`` is timed (wall clock, best of ``--repeat`` after a first call, which is timed
too and reported apart: it touches fresh memory) with its peak of traced memory
(``tracemalloc``, which numpy reports to). FairFL's validation gate reads a stand-in score
(each of 64 "examples" scores minus the squared distance to its own optimum on 4,096 fixed
coordinates), so the times are the rule's own work; the number of gate calls is reported,
and each costs one forward pass of the real model on the validation split. FLTrust's server
update is a stand-in step too. ``copy groups`` is the aggregator's other per-round pass
over the updates (:func:`fl_agent.aggregation.rounds.round_weights`: one pass a round, whose
Gram matrix the round's second call reuses). In a round decided by
:func:`~fl_agent.aggregation.rounds.decide_round` FairFL's similarities read that same Gram
matrix; here FairFL's ``aggregate`` makes its own, so the two rows count it twice.
Contribution scoring is not included: its cost is in ``benchmarks.fidelity``.

**Storage.** :class:`fl_agent.storage.local.LocalStore` ``add`` (CID, atomic write, fsync)
and ``get`` (read, CID check) of random bytes, 1 MB to 500 MB, against ``hashlib.sha256``
of the same bytes on the same machine: the ceiling, as both must hash every byte. The store
hashes a CID's leaves on every core, so the ceiling is also measured with one slice of the
bytes per core hashed at once.

    python -m benchmarks.scale
    python -m benchmarks.scale --clients 10,20 --params 10000 --storage-mb 1 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import machine, progress_bar, publish
from benchmarks.rule_alone import RULES
from fl_agent.aggregation import get_strategy
from fl_agent.aggregation.base import Strategy
from fl_agent.aggregation.rounds import round_weights
from fl_agent.cores import worker_threads
from fl_agent.storage.cid import CHUNK_SIZE, PARALLEL_CHUNKS, compute_cid

CLIENTS = (10, 50, 100, 200)
PARAMS = (10_000, 100_000, 1_000_000, 10_000_000)
#: Sizes above this many update values (n x d, 800 MB of float32) are skipped.
MAX_VALUES = 200_000_000
STORAGE_MB = (1, 10, 100, 500)
#: From this size on, ``LocalStore.add`` hashes and writes at once (its overlapped path).
OVERLAPPED_BYTES = PARALLEL_CHUNKS * CHUNK_SIZE
COPY_GROUPS = "copy groups"


def synthetic_round(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """The global model, ``n`` updates (the last 30 % sign-flipped), sample counts and the
    honest step direction."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(d, dtype=np.float32)
    step = rng.standard_normal(d, dtype=np.float32)
    step *= 0.5 / np.linalg.norm(step)  # a step of norm 0.5
    updates = np.empty((n, d), dtype=np.float32)
    bad = int(0.3 * n)
    for i in range(n):
        noise = rng.standard_normal(d, dtype=np.float32) * (0.8 * float(np.abs(step).mean()))
        delta = step + noise
        updates[i] = g - delta if i >= n - bad else g + delta
    samples = rng.integers(30, 120, size=n).astype(np.float64)
    return g, updates, samples, step


def stand_in_gate(g: np.ndarray, step: np.ndarray, seed: int = 1) -> Callable[[np.ndarray],
                                                                              np.ndarray]:
    rng = np.random.default_rng(seed)
    where = rng.choice(g.size, size=min(4096, g.size), replace=False)
    optima = (g[where] + step[where])[None, :] + rng.normal(
        scale=float(np.abs(step[where]).mean()), size=(64, where.size))

    def gate(params: np.ndarray) -> np.ndarray:
        return -np.square(optima - np.asarray(params, dtype=np.float64)[where]).sum(axis=1)

    return gate


def strategy_for(rule: str, g: np.ndarray, step: np.ndarray) -> Strategy:
    if rule == "fltrust":
        return get_strategy("fltrust", server_update=lambda params: params + step)
    return get_strategy(rule)


class _Counted:
    """A gate that counts its calls."""

    def __init__(self, gate: Callable[[np.ndarray], np.ndarray]) -> None:
        self.gate, self.calls = gate, 0

    def __call__(self, params: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.gate(params)


def _measured(work: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    """Best wall time of ``repeat`` calls, the traced memory peak of a first call, MiB, and
    that first call's wall time (with ``tracemalloc`` on; it is the one that touches memory
    the process has not used yet)."""
    tracemalloc.start()
    first = _timed(work)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best, peak, first


def aggregation(clients: Sequence[int], params: Sequence[int], rules: Sequence[str],
                repeat: int) -> list[dict[str, Any]]:
    sizes = [(n, d) for d in params for n in clients if n * d <= MAX_VALUES]
    rows = []
    with progress_bar() as bar:
        task = bar.add_task("aggregation", total=len(sizes) * (len(rules) + 1))
        for n, d in sizes:
            g, updates, samples, step = synthetic_round(n, d)
            gate = stand_in_gate(g, step)
            for rule in (*rules, COPY_GROUPS):
                counted = _Counted(gate)
                work: Callable[[], Any] = (
                    partial(round_weights, g, updates, samples) if rule == COPY_GROUPS else
                    partial(strategy_for(rule, g, step).aggregate, g, updates, samples,
                            evaluate=counted))
                seconds, peak, first = _measured(work, repeat)
                rows.append({"rule": rule, "clients": n, "params": d,
                             "seconds": round(seconds, 4), "first_seconds": round(first, 4),
                             "peak_mb": round(peak, 1),
                             "updates_mb": round(updates.nbytes / 2**20, 1),
                             "gate_calls": counted.calls // (repeat + 1)
                             if rule != COPY_GROUPS else None})
                bar.advance(task)
    return rows


def storage(sizes_mb: Sequence[int], repeat: int, folder: Path | None = None
            ) -> list[dict[str, Any]]:
    from fl_agent.storage.local import LocalStore

    rows = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        limit = max(sizes_mb) * 2**20 + 1
        for mb in sizes_mb:
            data = os.urandom(mb * 2**20)
            hashing = min(_timed(partial(hashlib.sha256, data)) for _ in range(repeat))
            parallel = min(_timed(partial(_hash_on_cores, data)) for _ in range(repeat))
            adds, gets = [], []
            for k in range(repeat):  # a fresh store each time: adding again is a no-op
                store = LocalStore(Path(tmp) / f"{mb}-{k}", max_bytes=limit)
                adds.append(_timed(partial(store.add, data)))
                gets.append(_timed(partial(store.get, store.add(data))))
            parts = None
            if len(data) < OVERLAPPED_BYTES:  # larger adds hash and write at once
                parts = _add_parts(data, Path(tmp) / f"{mb}-parts", repeat)
                parts["add"] = round(min(adds) * 1000, 3)
            rate = {name: round(mb / seconds, 1) for name, seconds in
                    (("sha256", hashing), ("sha256_all_cores", parallel), ("add", min(adds)),
                     ("get", min(gets)))}
            rows.append({"mb": mb, "mb_per_s": rate,
                         "add_share_of_ceiling": round(rate["add"] / rate["sha256"], 3),
                         "get_share_of_ceiling": round(rate["get"] / rate["sha256"], 3),
                         **({"add_parts_ms": parts} if parts else {}),
                         "add_share_of_all_cores": round(rate["add"] / rate["sha256_all_cores"],
                                                         3),
                         "get_share_of_all_cores": round(rate["get"] / rate["sha256_all_cores"],
                                                         3)})
    return rows


def _add_parts(data: bytes, folder: Path, repeat: int) -> dict[str, float]:
    """Milliseconds (best of ``repeat``) of what ``add`` does below :data:`OVERLAPPED_BYTES`,
    one after the other, apart: the CID, and the store's write (temporary file, write,
    fsync, rename); and, for reference only, the same write without the fsync, which the
    store never skips. (Larger adds hash while they write; and there, in our runs, a write
    without fsync took longer than the synced one, apparently waiting behind the earlier
    writes' data, so it is not measured.)"""
    from fl_agent.storage.local import _write_atomically  # the store's own write

    folder.mkdir(parents=True, exist_ok=True)

    def unsynced(path: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    cid = min(_timed(partial(compute_cid, data)) for _ in range(repeat))
    synced = min(_timed(partial(_write_atomically, folder / f"synced-{k}", data))
                 for k in range(repeat))
    plain = min(_timed(partial(unsynced, folder / f"plain-{k}")) for k in range(repeat))
    return {"cid": round(cid * 1000, 3), "write": round(synced * 1000, 3),
            "write_without_fsync": round(plain * 1000, 3)}


def _hash_on_cores(data: bytes) -> None:
    """sha256 of one slice of ``data`` per core, all at once: the ceiling for a CID, whose
    leaves the store hashes on every core (:mod:`fl_agent.storage.cid`)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = worker_threads()
    view, size = memoryview(data), -(-len(data) // workers)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda start: hashlib.sha256(view[start:start + size]).digest(),
                      range(0, len(data), size)))


def _timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def growth(rows: Sequence[dict[str, Any]], rule: str, axis: str) -> float | None:
    """The exponent of the time's growth along ``axis`` (``clients`` or ``params``) at the
    largest size of the other axis measured at two or more points: the slope of log time
    against log size."""
    other = "params" if axis == "clients" else "clients"
    mine = [r for r in rows if r["rule"] == rule]
    for fixed in sorted({r[other] for r in mine}, reverse=True):
        line = sorted((r[axis], r["seconds"]) for r in mine if r[other] == fixed)
        if len(line) >= 2 and all(s > 0 for _, s in line):
            x, y = np.log([p[0] for p in line]), np.log([p[1] for p in line])
            return round(float(np.polyfit(x, y, 1)[0]), 2)
    return None


def markdown(result: dict[str, Any]) -> str:
    rows = result["aggregation"]
    sizes = sorted({(r["clients"], r["params"]) for r in rows}, key=lambda s: (s[1], s[0]))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    lines = ["| rule | " + " | ".join(f"{n}×{d:,}" for n, d in sizes)
             + " | growth in clients | growth in params |",
             "| --- |" + " --- |" * (len(sizes) + 2)]
    for rule in rules:
        cells = {(r["clients"], r["params"]): r for r in rows if r["rule"] == rule}
        lines.append(f"| {rule} | " + " | ".join(
            f"{cells[s]['seconds']:.3g} s" if s in cells else "–" for s in sizes)
            + f" | {growth(rows, rule, 'clients')} | {growth(rows, rule, 'params')} |")
    lines += ["", "Peak of traced memory, MiB (updates: the float32 updates given to every rule):",
              "", "| rule | " + " | ".join(f"{n}×{d:,}" for n, d in sizes) + " |",
              "| --- |" + " --- |" * len(sizes)]
    updates = {(r["clients"], r["params"]): r["updates_mb"] for r in rows}
    lines.append("| updates | " + " | ".join(f"{updates[s]:,.0f}" for s in sizes) + " |")
    for rule in rules:
        cells = {(r["clients"], r["params"]): r for r in rows if r["rule"] == rule}
        lines.append(f"| {rule} | " + " | ".join(
            f"{cells[s]['peak_mb']:,.0f}" if s in cells else "–" for s in sizes) + " |")
    lines += ["", "| rule | size | first call (traced) | peak memory | updates | gate calls |",
              "| --- | --- | --- | --- | --- | --- |"]
    biggest = max(sizes, key=lambda s: s[0] * s[1])
    for r in rows:
        if (r["clients"], r["params"]) == biggest:
            lines.append(f"| {r['rule']} | {r['clients']}×{r['params']:,} | "
                         f"{r['first_seconds']:.3g} s | "
                         f"{r['peak_mb']:.0f} MiB | {r['updates_mb']:.0f} MiB | "
                         f"{'–' if r['gate_calls'] is None else r['gate_calls']} |")
    lines += ["", "| size | sha256 | sha256, all cores | add | get | add / sha256 | "
              "get / sha256 | add / all cores | get / all cores |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["storage"]:
        m = r["mb_per_s"]
        lines.append(f"| {r['mb']} MB | {m['sha256']:.0f} MB/s | {m['sha256_all_cores']:.0f} "
                     f"MB/s | {m['add']:.0f} MB/s | {m['get']:.0f} MB/s | "
                     f"{r['add_share_of_ceiling']:.2f} | {r['get_share_of_ceiling']:.2f} | "
                     f"{r['add_share_of_all_cores']:.2f} | {r['get_share_of_all_cores']:.2f} |")
    parted = [r for r in result["storage"] if "add_parts_ms" in r]
    if parted:
        lines += ["", "`add`'s parts below 8 MiB, where they run one after the other, ms "
                  "(best of each):", "",
                  "| size | add | CID | write (temporary file, fsync, rename) | the same write "
                  "without fsync (reference) |", "| --- | --- | --- | --- | --- |"]
        for r in parted:
            p = r["add_parts_ms"]
            lines.append(f"| {r['mb']} MB | {p['add']:.2f} | {p['cid']:.2f} | {p['write']:.2f} "
                         f"| {p['write_without_fsync']:.2f} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Log-log: each rule's time against the clients at the most parameters measured with
    two or more client counts, and against the parameters at the most clients, with the
    storage's add and get beside sha256; one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["aggregation"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, axis in zip(axes[:2], ("clients", "params"), strict=True):
        other = "params" if axis == "clients" else "clients"
        counts: dict[int, int] = {}
        for r in rows:
            counts[r[other]] = counts.get(r[other], 0) + (r["rule"] == rows[0]["rule"])
        fixed = max((v for v, n in counts.items() if n >= 2), default=None)
        if fixed is None:  # one size along this axis: nothing to draw
            ax.set_title(f"one {axis} count only")
            continue
        for rule in dict.fromkeys(r["rule"] for r in rows):
            line = sorted((r[axis], r["seconds"]) for r in rows
                          if r["rule"] == rule and r[other] == fixed)
            if line:
                ax.plot(*zip(*line, strict=True), marker="o", label=rule)
        ax.set(xscale="log", yscale="log", ylabel="seconds (best of the warm calls)",
               xlabel=axis, title=f"aggregation time against {axis} ({other} = {fixed:,})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    storage = result["storage"]
    if storage:
        sizes = [r["mb"] for r in storage]
        for key, label in (("sha256", "sha256 (the ceiling)"), ("add", "add"), ("get", "get"),
                           ("sha256_all_cores", "sha256 on all cores")):
            axes[2].plot(sizes, [r["mb_per_s"][key] for r in storage], marker="o", label=label)
        axes[2].set(xscale="log", xlabel="MB", ylabel="MB/s", title="the store")
        axes[2].legend(fontsize=7)
        axes[2].grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)))
    parser.add_argument("--params", default=",".join(map(str, PARAMS)))
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--storage-mb", default=",".join(map(str, STORAGE_MB)),
                        help="content sizes for the store, MB")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per measurement")
    parser.add_argument("--json", type=Path, default=Path("reports/bench/scale.json"))
    parser.add_argument("--report-only", action="store_true",
                        help="no measurement: print the tables of the JSON at --json (and "
                             "draw its plot)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="the growth plot (default: beside the JSON, .png)")
    args = parser.parse_args(argv)
    figure = args.plot or args.json.with_suffix(".png")
    if args.report_only:
        import json

        if not args.json.is_file():
            parser.error(f"--report-only prints a run's tables, and there is no run at "
                         f"{args.json}: give its JSON with --json")
        result = json.loads(args.json.read_text())
        print(markdown(result) + f"\n\nplot: {plot(result, figure)}")
        return
    rules = args.rules.split(",")
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        parser.error(f"unknown rule {unknown[0]!r}; use one of {', '.join(RULES)}")
    try:
        clients, params, sizes = _ints(args.clients), _ints(args.params), _ints(args.storage_mb)
    except ValueError:
        parser.error("--clients, --params and --storage-mb take comma-separated integers")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    result = {"machine": machine(), "threads": torch.get_num_threads(),
              "aggregation": aggregation(clients, params, rules, args.repeat),
              "storage": storage(sizes, args.repeat)}
    publish(result, args.json, markdown(result) + f"\n\nplot: {plot(result, figure)}")


if __name__ == "__main__":
    main()
