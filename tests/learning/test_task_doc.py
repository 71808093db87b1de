"""The task document: validated, canonical, and the standardisation participants apply."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.errors import ConfigError
from fl_agent.learning import ModelSpec, load_dataset
from fl_agent.learning.task_doc import DataSpec, TaskDocument, TrainingPlan


@pytest.fixture
def digits():
    return load_dataset("digits")


def test_round_trip_is_canonical(digits):
    doc = TaskDocument.build(model=ModelSpec.for_features("mlp", (1, 8, 8), 10),
                             data=DataSpec.describe(digits), training=TrainingPlan(steps=7))
    again = TaskDocument.from_json(doc.to_json())
    assert again == doc and again.to_json() == doc.to_json()
    assert again.training.steps == 7 and again.aggregation.strategy == "fairfl"


def test_standardize_uses_the_published_mean_and_scale(digits):
    spec = DataSpec.describe(digits)
    Z = spec.standardize(digits.X)
    assert np.allclose(Z.mean(axis=0), 0, atol=1e-4)
    varying = np.asarray(spec.scale) != 1.0
    assert np.allclose(Z.std(axis=0)[varying], 1, atol=1e-3)
    assert spec.scale[0] == 1.0  # pixel 0 is always blank: a constant feature keeps scale 1
    with pytest.raises(ConfigError, match="64 features"):
        spec.standardize(np.zeros((3, 10)))


def test_a_model_that_does_not_fit_the_data_is_refused(digits):
    with pytest.raises(ConfigError, match="takes 30 features"):
        TaskDocument.build(model=ModelSpec(name="logreg", input_shape=(30,), num_classes=10),
                           data=DataSpec.describe(digits))
    with pytest.raises(ConfigError, match="3 classes"):
        TaskDocument.build(model=ModelSpec(name="logreg", input_shape=(64,), num_classes=3),
                           data=DataSpec.describe(digits))


@pytest.mark.parametrize("text", [b"{}", b"[]", b"nonsense", b'{"format": "fairfl-task/2"}'])
def test_documents_that_are_not_task_documents(text):
    with pytest.raises(ConfigError, match="not a valid FairFL task document"):
        TaskDocument.from_json(text)


def test_data_spec_checks_its_statistics():
    with pytest.raises(ValueError, match="both mean and scale"):
        DataSpec(name="x", num_features=2, num_classes=2, mean=(0.0, 0.0))
    with pytest.raises(ValueError, match="scale must be > 0"):
        DataSpec(name="x", num_features=2, num_classes=2, mean=(0.0, 0.0), scale=(1.0, 0.0))
    with pytest.raises(ValueError, match="3 values for 2"):
        DataSpec(name="x", num_features=2, num_classes=2, mean=(0.0,) * 3, scale=(1.0,) * 3)
    plain = DataSpec(name="x", num_features=2, num_classes=2)
    assert plain.standardize(np.ones((1, 2), np.float64)).dtype == np.float32
