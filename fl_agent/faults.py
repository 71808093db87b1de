"""Failpoints: named places where a test can make an agent process die, as a crash would.

``FAIRFL_FAILPOINT=aggregator:model-uploaded fl-agent aggregate ...`` kills the aggregator
with SIGKILL the moment it reaches :func:`failpoint` ``("aggregator:model-uploaded")``: no
``finally`` block, no flush, exactly what a power cut or the OOM killer leaves behind. The
fault tests (``tests/agents/test_faults.py``) restart the process and check that nothing was
lost or done twice. Unset, a failpoint costs one dictionary lookup.

Written by hand: the ``fail``-style crates of Rust have no Python counterpart worth a
dependency for five lines.
"""

from __future__ import annotations

import os
import signal

#: Every failpoint, where it sits, and what a crash there leaves behind.
FAILPOINTS = {
    "participant:uploaded": "the update is in the store, not yet submitted on chain",
    "participant:submitted": "the update is on chain, the event not yet acknowledged",
    "aggregator:fetched": "every update of the round was fetched, opened and judged",
    "aggregator:model-uploaded": "the new global model is in the store",
    "aggregator:before-finalize": "the evidence is in the store; finalizeRound not yet sent",
}


def failpoint(name: str) -> None:
    """Dies here with SIGKILL if ``FAIRFL_FAILPOINT`` names this point."""
    if name not in FAILPOINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(FAILPOINTS)}")
    if os.environ.get("FAIRFL_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
