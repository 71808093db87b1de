"""The task document: everything a participant needs to train for a task, stored in IPFS.

A task on chain names its initial model (``modelCid``) and this document (``specCid``). It
holds the model spec (checked again when weights are decoded), the shape of the data and the
standardisation every participant applies to its own features (mean and scale published by
the task creator, so that all clients feed the model the same units without sharing data),
the local training plan, how the aggregator aggregates and scores, the privacy modes
(:mod:`fl_agent.privacy.plan`) and the creator's key
(so that it can read, and sell, the task's encrypted models). Canonical JSON, so equal
documents have equal CIDs.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fl_agent.documents import Document
from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec, param_count
from fl_agent.privacy.plan import PrivacyPlan

FORMAT = "fairfl-task/1"


class DataSpec(BaseModel):
    """The features participants hold and how they standardise them."""

    # NaN or infinite statistics would turn every participant's data into NaN.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1)
    num_features: int = Field(ge=1)
    num_classes: int = Field(ge=2)
    feature_shape: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> DataSpec:
        for name in ("mean", "scale"):
            values = getattr(self, name)
            if values is not None and len(values) != self.num_features:
                raise ValueError(f"{name} has {len(values)} values for {self.num_features} "
                                 "features")
        if (self.mean is None) != (self.scale is None):
            raise ValueError("give both mean and scale, or neither")
        if self.scale is not None and any(not s > 0 for s in self.scale):
            raise ValueError("every scale must be > 0")
        return self

    @classmethod
    def describe(cls, dataset: Any, reference: np.ndarray | None = None) -> DataSpec:
        """The spec of ``dataset`` (a :class:`~fl_agent.learning.data.Dataset`), with the
        mean and scale of ``reference`` features (default: the dataset's own); a constant
        feature gets scale 1."""
        X = np.asarray(dataset.X if reference is None else reference, dtype=np.float64)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(name=dataset.name, num_features=dataset.num_features,
                   num_classes=dataset.num_classes, feature_shape=dataset.feature_shape,
                   class_names=tuple(dataset.class_names),
                   mean=tuple(float(v) for v in X.mean(axis=0)),
                   scale=tuple(float(v) for v in scale))

    def standardize(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean) / scale`` when the task publishes them, else ``X`` as float32."""
        array = np.asarray(X, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self.num_features:
            raise ConfigError(f"the task expects {self.num_features} features per example, "
                              f"the data has shape {array.shape}")
        if self.mean is None or self.scale is None:
            return array
        return ((array - np.asarray(self.mean, np.float32))
                / np.asarray(self.scale, np.float32)).astype(np.float32)


class TrainingPlan(BaseModel):
    """Local SGD settings; ``steps`` is the base workload before balancing."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    steps: int = Field(20, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)


class AggregationPlan(BaseModel):
    """The aggregator's rule (``fl_agent.aggregation.get_strategy``) and scoring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "fairfl"
    options: dict[str, Any] = Field(default_factory=dict)
    scoring: Literal["loo", "shapley"] = "shapley"
    #: Random orders the Shapley sampler averages; a round of n players is scored exactly
    #: instead when its 2^n sets are no more than the sampler's most (``2^n <= permutations
    #: * n``: up to 8 players at 40), see fl_agent.aggregation.scoring.shapley_values.
    permutations: int = Field(40, ge=1)
    #: Share of each round's budget paid by data size among accepted updates; the rest
    #: goes by contribution score (see fl_agent.aggregation.scoring.blend_with_samples).
    base_share: float = Field(0.5, ge=0, le=1)


class AccessPlan(BaseModel):
    """Who may read the task's models besides its members: the creator, who lists the final
    model for sale, publishes its X25519 member key here (hex, see
    :mod:`fl_agent.crypto.wallet_keys`) so that the aggregator seals the task key to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    creator_key: str = Field(pattern=r"^[0-9a-f]{64}$")


class TaskDocument(Document):
    KIND = "FairFL task document"

    format: Literal["fairfl-task/1"] = FORMAT
    model: ModelSpec
    data: DataSpec
    training: TrainingPlan = TrainingPlan()
    aggregation: AggregationPlan = AggregationPlan()
    access: AccessPlan | None = None
    #: The privacy modes every participant and the aggregator apply (None: plain).
    privacy: PrivacyPlan | None = None

    @model_validator(mode="after")
    def _fits(self) -> TaskDocument:
        if self.model.num_features != self.data.num_features:
            raise ValueError(f"the model takes {self.model.num_features} features, the data "
                             f"has {self.data.num_features}")
        if self.model.num_classes != self.data.num_classes:
            raise ValueError(f"the model has {self.model.num_classes} classes, the data "
                             f"{self.data.num_classes}")
        return self

    @classmethod
    def build(cls, **fields: Any) -> TaskDocument:
        """Validates ``fields`` (raises :class:`ConfigError` with pydantic's reasons) for a new
        task. A new FairFL task with watermarks records in its rule options that FairFL's
        NOISE check is off (``chance_z`` = √d, a chance level of 1): each participant's mark
        is a direction no other update shares, and the check took marked honest updates for
        noise (docs/privacy-watermark.md). Recorded, not applied by the aggregator's code, so
        that a task keeps the rule it was created with, and its audits and reruns with it: a
        document made before 2026-12-05 carries none and keeps the check.

        Likewise a new FairFL task with example-level DP and the gate's noise control records
        ``sequential: true`` unless its options set ``sequential`` or turn the control off: each
        sender is judged on its noise tests summed over its rounds, which kept honest DP updates'
        FPR under 0.05 wherever the gate decided (docs/privacy-dp.md, "The sequential test ..., the
        default since 2026-12-05", with what it costs). With the sequential test (by default or
        named), unless the options set ``max_norm_ratio``, the document records ``max_norm_ratio:
        null``: step 1 turns no update away for its length, which in a DP task is mostly its
        sender's noise (attackers who shorten the round's median length made the noisiest honest
        client an outlier; the combination's clip still bounds a long update). A DP document made
        before carries neither and keeps the single-round control and the length outliers.

        Every new FairFL task records ``copies_once: true`` unless its options set it (rules
        R49 and R49a, 2026-12-06): a group of exact copies is one row of the round's median
        direction and one value of its similarity medians, so that colluders who submit one
        crafted update (ALIE, min-max) do not vote once per account. Colluders who add even
        1 % of noise of their own are not copies and are not stopped by it (docs/held-out.md).
        A document made before carries none and keeps every copy's vote.

        Every new FairFL task without the DP noise control records ``held_back: true`` unless
        its options set it (rule R50, 2026-12-06): an update the gate turns away only because
        the similarity scaling took its slack, and whose cost is within the full tolerance, is
        held back, which the registry does not count towards a ban. A DP task with the noise
        control cannot run it (its verdicts are the control's); asking for both is an error
        here. A document made before carries none and keeps counting every rejection."""
        try:
            document = cls(**fields)
        except ValidationError as err:
            raise ConfigError(f"invalid task document: {err}") from err
        options = dict(document.aggregation.options)
        privacy = document.privacy
        if document.aggregation.strategy == "fairfl":
            options.setdefault("copies_once", True)
            controlled = privacy is not None and privacy.dp is not None \
                and privacy.dp.level == "example" and options.get("noise_control", True)
            if controlled and options.get("held_back"):
                raise ConfigError("held_back does not apply to a task with example-level DP "
                                  "and the gate's noise control (its verdicts are the "
                                  "control's): drop the option, or set noise_control false")
            if not controlled:
                options.setdefault("held_back", True)
        if document.aggregation.strategy == "fairfl" and privacy is not None:
            if privacy.watermark is not None and "chance_z" not in options:
                from fl_agent.aggregation.clustering import chance_z_off

                options["chance_z"] = chance_z_off(param_count(document.model))
            if privacy.dp is not None and privacy.dp.level == "example":
                if options.get("noise_control", True) and "sequential" not in options:
                    options["sequential"] = True
                if options.get("sequential") and "max_norm_ratio" not in options:
                    options["max_norm_ratio"] = None
        if options != document.aggregation.options:
            document = document.model_copy(update={"aggregation": document.aggregation
                                                   .model_copy(update={"options": options})})
        return document
