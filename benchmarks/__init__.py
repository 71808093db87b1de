"""Benchmarks behind the figures in the docs; each module runs with ``python -m``."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def comma_numbers(kind: type, valid: Callable[[Any], bool] = lambda x: x > 0,
                  requirement: str = "positive numbers"
                  ) -> Callable[[Any, Any, str], list[Any]]:
    """A click callback reading an option's comma-separated numbers of type ``kind``
    (blank parts ignored); it refuses none, a part that is not a number, or one that fails
    ``valid`` (saying the ``requirement``)."""
    import click

    def parse(ctx: Any, param: Any, value: str) -> list[Any]:
        try:
            out = [kind(x) for x in value.split(",") if x.strip()]
        except ValueError as err:
            raise click.BadParameter(f"comma-separated numbers, got {value!r}") from err
        if not out or not all(math.isfinite(x) and valid(x) for x in out):
            raise click.BadParameter(f"{requirement}, got {value!r}")
        return out
    return parse


def publish(result: Any, path: Path, table: str) -> None:
    """Writes ``result`` as JSON to ``path`` and prints the Markdown ``table``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    print(f"\nwritten to {path}")


def percentiles(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """``n``, ``p50``, ``p90``, ``p99``, ``max`` (and ``min``, ``mean``) of ``values``, with
    numpy's linear interpolation; empty for no values."""
    import numpy as np

    if not len(values):
        return {}
    data = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(data, [50, 90, 99])
    return {"n": int(data.size), "min": round(float(data.min()), digits),
            "mean": round(float(data.mean()), digits), "p50": round(float(p50), digits),
            "p90": round(float(p90), digits), "p99": round(float(p99), digits),
            "max": round(float(data.max()), digits)}


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on, and how busy it was when it started."""
    import psutil

    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), "") if cpuinfo.exists() else ""
    return {"cores": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": cpu or platform.processor(), "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **source_version()}


def source_version() -> dict[str, Any]:
    """The commit the benchmark ran at and whether the tree held changes beyond it (None
    outside a git checkout), so that a published figure names the code that made it."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent.parent,
                                  capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "uncommitted_changes": None if status is None else bool(status)}


def stop_process(proc: subprocess.Popen) -> None:
    """Stops a process the benchmark started (and only it): terminate, then kill after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def versions(*packages: str) -> dict[str, str | None]:
    """The installed versions of ``packages`` and of anvil (None: not installed)."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    anvil = shutil.which("anvil")
    found["anvil"] = subprocess.run([anvil, "--version"], capture_output=True, text=True
                                    ).stdout.strip().splitlines()[0] if anvil else None
    return found


def progress_bar() -> Any:
    """The benchmarks' progress display: description, bar, done of total, time elapsed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn())

