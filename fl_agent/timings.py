"""Stopwatches: how long each part of an agent's step took, for the load benchmark.

``FAIRFL_TIMINGS=path fl-agent train ...`` appends one JSON line to ``path`` per timed step
(a participant's round, the aggregator's opening or finalizing of a round): the step's
name, its labels (task, round, participant), when it started (Unix time, so that records
of several processes on one machine line up) and its laps in milliseconds, in order. The
load benchmark (``benchmarks/load.py``) gives every agent process its own file. Unset, a
stopwatch only reads the clock.

Written by hand: the profilers measure functions, not the named phases of a step that
cross them (fetch, train, upload, submit), and OpenTelemetry would be a dependency and a
collector for a dozen lines.
"""

from __future__ import annotations

import json
import os
import time

#: The environment variable naming the JSON-lines file; unset: nothing is written.
TIMINGS_ENV = "FAIRFL_TIMINGS"


class Stopwatch:
    """Laps of one step: each :meth:`lap` ends the phase running since the previous one."""

    def __init__(self, step: str, **labels: object) -> None:
        self.step = step
        self.labels = labels
        self.started = time.time()
        self.laps_ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps_ms[name] = round((now - self._last) * 1000, 3)
        self._last = now

    def done(self, name: str) -> None:
        """Ends the last phase and appends the step's record to ``$FAIRFL_TIMINGS``."""
        self.lap(name)
        path = os.environ.get(TIMINGS_ENV)
        if not path:
            return
        line = json.dumps({"step": self.step, **self.labels, "started": self.started,
                           "laps_ms": self.laps_ms}) + "\n"
        # One write() in append mode: lines of processes sharing a file do not interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
