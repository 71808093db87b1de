"""How many threads the pure functions that split their work may use."""

from __future__ import annotations

import os


def worker_threads(limit: int = 4) -> int:
    """The cores this process may run on (its CPU affinity on Linux, the machine's count
    elsewhere), at most ``limit``: hashing and medians split their work this many ways."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(limit, cores))
