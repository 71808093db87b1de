"""Workload balancing: how many local steps each participant runs next round.

The paper lets the platform "balance the workload among devices according to their
performance". Here performance is throughput measured from what participants report on
chain: a participant assigned ``steps`` mini-batches of ``batch_size`` that reports
``training_millis`` processed ``steps * batch_size / (training_millis / 1000)`` examples per
second. The round lasts as long as its slowest participant, so the aggregator gives each
participant a step count proportional to its throughput, scaled so that the *median*
participant keeps the task's base steps: a device twice as fast as the median trains twice
as many steps, one half as fast half as many, and all finish at about the same time.
Assignments are clamped to ``[min_ratio, max_ratio] * base_steps``: a slow device still
contributes a real update (a tiny one would look like a free rider), and a fast one cannot
drift far from the global model. Participants never measured get the base steps.

Timing noise must not move work around: a run shorter than ``min_millis`` (50 ms) is too
coarse a measurement to tell devices apart (the ledger records whole milliseconds, and a
small model's round takes a few), so it counts as unmeasured; and a device within
``dead_band`` (20 %) of the median speed keeps the base steps. Small simulated federations
on one machine therefore train with the base steps throughout, and their results do not
depend on the machine's load, unless the simulation gives its clients device speeds
(``fl-agent simulate --device-spread``): then each reports the time its device would
take, and the assignment follows.

The assignment is a JSON document the aggregator stores in IPFS and names in
``startRound``, so it is recorded with the round.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fl_agent.documents import parse_json
from fl_agent.errors import ConfigError

FORMAT = "fairfl-workload/1"


@dataclass(frozen=True)
class Measurement:
    """One participant's last reported training run."""

    steps: int
    batch_size: int
    training_millis: int

    @property
    def throughput(self) -> float:
        """Examples per second (infinite when the reported time is 0 ms)."""
        examples = self.steps * self.batch_size
        return math.inf if self.training_millis <= 0 else examples * 1000 / self.training_millis


def assign_steps(participants: list[str], measurements: Mapping[str, Measurement],
                 base_steps: int, *, min_ratio: float = 0.5, max_ratio: float = 2.0,
                 min_millis: int = 50, dead_band: float = 0.2) -> dict[str, int]:
    """Steps for each of ``participants`` (see the module docstring)."""
    if not 0 <= dead_band < 1:
        raise ConfigError(f"dead_band must be in [0, 1), got {dead_band!r}")
    measurements = {p: m for p, m in measurements.items() if m.training_millis >= min_millis}
    if isinstance(base_steps, bool) or not isinstance(base_steps, int) or base_steps < 1:
        raise ConfigError(f"base_steps must be an integer >= 1, got {base_steps!r}")
    if not 0 < min_ratio <= 1 <= max_ratio or not math.isfinite(max_ratio):
        raise ConfigError(f"need 0 < min_ratio <= 1 <= max_ratio, got {min_ratio}, {max_ratio}")
    speeds = {p: measurements[p].throughput for p in participants if p in measurements}
    finite = sorted(s for s in speeds.values() if math.isfinite(s) and s > 0)
    low, high = max(1, math.ceil(base_steps * min_ratio)), max(1, int(base_steps * max_ratio))
    if not finite:
        return dict.fromkeys(participants, base_steps)
    median = finite[len(finite) // 2] if len(finite) % 2 else \
        (finite[len(finite) // 2 - 1] + finite[len(finite) // 2]) / 2
    steps = {}
    for p in participants:
        speed = speeds.get(p)
        if speed is None:
            steps[p] = base_steps
        elif abs(speed / median - 1) <= dead_band:
            steps[p] = base_steps
        else:
            wanted = base_steps * (speed / median) if math.isfinite(speed) else high
            steps[p] = int(min(high, max(low, round(wanted))))
    return steps


@dataclass(frozen=True)
class Workload:
    """The steps assigned for one round, keyed by lower-case address, and how the round's
    models are protected: the keyring that hands members the task key of ``key_epoch``
    (a CID) and the aggregator's X25519 key that updates are sealed to (see
    :mod:`fl_agent.crypto.envelopes`). The aggregator signs all of it by naming the
    document in ``startRound``."""

    round: int
    batch_size: int
    steps: Mapping[str, int]
    default_steps: int
    keyring: str | None = None
    key_epoch: int = 0
    aggregator_key: bytes | None = None
    #: The aggregator's commitment to its validation data (SHA-256 hex, see
    #: :func:`fl_agent.agents.evidence.validation_digest`), made when the round opens, before
    #: any update is seen; the round's evidence must name the same.
    validation_sha256: str | None = None

    def steps_for(self, address: str) -> int:
        return int(self.steps.get(address.lower(), self.default_steps))

    def to_json(self) -> bytes:
        doc: dict[str, object] = {
            "format": FORMAT, "round": self.round, "batch_size": self.batch_size,
            "default_steps": self.default_steps,
            "steps": {k.lower(): int(v) for k, v in sorted(self.steps.items())}}
        if self.keyring is not None:
            doc["access"] = {"keyring": self.keyring, "key_epoch": self.key_epoch,
                             "aggregator_key": (self.aggregator_key or b"").hex()}
        if self.validation_sha256 is not None:
            doc["validation_sha256"] = self.validation_sha256
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Workload:
        try:
            doc = parse_json(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
            steps = {str(k).lower(): int(v) for k, v in dict(doc["steps"]).items()}
            access = doc.get("access")
            keyring, epoch, aggregator_key = None, 0, None
            if access is not None:
                keyring, epoch = str(access["keyring"]), int(access["key_epoch"])
                aggregator_key = bytes.fromhex(str(access["aggregator_key"]))
                if len(aggregator_key) != 32 or epoch < 1:
                    raise ValueError("access names a malformed aggregator key or epoch")
            digest = doc.get("validation_sha256")
            if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
                raise ValueError("validation_sha256 is not a SHA-256 in hex")
            workload = cls(int(doc["round"]), int(doc["batch_size"]), steps,
                           int(doc["default_steps"]), keyring, epoch, aggregator_key,
                           None if digest is None else str(digest))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(f"not a workload document: {err}") from err
        if workload.default_steps < 1 or workload.batch_size < 1 or \
                any(v < 1 for v in steps.values()):
            raise ConfigError("a workload document must assign at least one step each")
        return workload
