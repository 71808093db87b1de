"""Machine learning for FairFL: model specs, weights on the wire, data, training, metrics.

Everything here is pure computation (no chain, no IPFS): agents wire it to I/O.

* :mod:`.models`   — :class:`ModelSpec`, :func:`build_model` and the flat float32 vector.
* :mod:`.weights`  — safetensors encoding, strict decoding (:class:`WeightsError`).
* :mod:`.data`     — :class:`Dataset`, :func:`load_dataset`, :func:`split_dataset`,
  :func:`partition`.
* :mod:`.training` — :func:`train_local`, :func:`evaluate`, :func:`predict`.
* :mod:`.metrics`  — the metric registry.
"""

from __future__ import annotations

from fl_agent.learning.data import (
    BUILTIN_DATASETS,
    PARTITION_SCHEMES,
    DataError,
    Dataset,
    DatasetSplits,
    label_counts,
    load_dataset,
    partition,
    split_dataset,
)
from fl_agent.learning.metrics import (
    METRICS,
    Metric,
    MetricRegistry,
    classification_report,
    get_metric,
    register_metric,
)
from fl_agent.learning.models import (
    ARCHITECTURES,
    ModelSpec,
    ParamSlot,
    build_model,
    check_seed,
    init_params,
    input_layer,
    model_from_vector,
    param_count,
    param_layout,
    params_to_vector,
    vector_to_params,
)
from fl_agent.learning.training import (
    GradientHook,
    TrainResult,
    as_model_input,
    evaluate,
    predict,
    predict_proba,
    train_local,
    validation_loss,
    validation_scores,
)
from fl_agent.learning.weights import (
    WeightsError,
    decode_weights,
    encode_weights,
    max_weights_bytes,
)

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_DATASETS",
    "METRICS",
    "PARTITION_SCHEMES",
    "DataError",
    "Dataset",
    "DatasetSplits",
    "GradientHook",
    "Metric",
    "MetricRegistry",
    "ModelSpec",
    "ParamSlot",
    "TrainResult",
    "WeightsError",
    "as_model_input",
    "build_model",
    "check_seed",
    "classification_report",
    "decode_weights",
    "encode_weights",
    "evaluate",
    "get_metric",
    "init_params",
    "input_layer",
    "label_counts",
    "load_dataset",
    "max_weights_bytes",
    "model_from_vector",
    "param_count",
    "param_layout",
    "params_to_vector",
    "partition",
    "predict",
    "predict_proba",
    "register_metric",
    "split_dataset",
    "train_local",
    "validation_loss",
    "validation_scores",
    "vector_to_params",
]
