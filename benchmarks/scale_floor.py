"""Rule R63's candidate, not adopted: a floor under the standardisation's scales
(docs/data/scale_floor_rules_2026-12-07.md, docs/privacy-dp.md). No feature that varies gets
a scale below a share ``f`` of the median scale of the features that vary (a constant one
keeps 1; the means stay), so that a feature the data hardly ever moves does not put one
example's value tens of standard deviations out.

Kept in the benchmarks, as rule R55's length cap is, so that the product carries no option
no task takes: ``benchmarks.privacy_dp --scale-floor`` and ``benchmarks.held_out
--scale-floor`` apply it to the simulation's federation (:func:`with_scale_floor`), every
client, the validation and test splits and the clean baseline alike. Hand-written (numpy):
no library floors a scaler's scales.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np


def floored_scales(train_X: Any, scale: Any, share: float) -> tuple[float, ...]:
    """``scale`` (one per feature, of the training split ``train_X``) with no feature that
    varies there below ``share`` times the median of those features' standard deviations;
    ``share`` 0 leaves it as it is."""
    from fl_agent.errors import ConfigError

    if isinstance(share, bool) or not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
        raise ConfigError(f"scale_floor must be a share from 0 to 1, got {share!r}")
    out = np.asarray(scale, dtype=np.float64)
    std = np.asarray(train_X, dtype=np.float64).std(axis=0)
    varies = std > 0
    if share > 0 and varies.any():
        out = np.where(varies, np.maximum(out, share * float(np.median(std[varies]))), out)
    return tuple(float(v) for v in out)


def with_scale_floor(fed: Any, share: float) -> Any:
    """The simulation's federation ``fed`` standardised with floored scales (``share`` 0:
    ``fed`` itself). Colluders train through a trainer the simulation built with its own
    standardisation, so their attacks are refused."""
    from fl_agent.errors import ConfigError
    from fl_agent.simulation.attacks import COLLUDING_ATTACKS

    if not share:
        return fed
    if fed.config.attack in COLLUDING_ATTACKS:
        raise ConfigError(f"{fed.config.attack} attackers train with the simulation's "
                          "standardisation: run them without --scale-floor")
    scale = floored_scales(fed.splits.train.X, fed.data.scale, share)
    return replace(fed, data=fed.data.model_copy(update={"scale": scale}))
