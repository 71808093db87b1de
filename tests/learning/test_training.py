"""Local training: real SGD that learns, exactly the steps asked, bit-for-bit reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from fl_agent.errors import ConfigError
from fl_agent.learning.data import load_dataset, split_dataset
from fl_agent.learning.metrics import get_metric
from fl_agent.learning.models import ModelSpec, init_params, model_from_vector, param_count
from fl_agent.learning.training import evaluate, predict, predict_proba, train_local

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10)
CNN = ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10)


def test_mlp_learns_digits(digits):
    start = init_params(MLP, seed=0)
    before = evaluate(MLP, start, digits.test.X, digits.test.y)
    result = train_local(MLP, start, digits.train.X, digits.train.y, 100, seed=0)
    after = evaluate(MLP, result.vector, digits.test.X, digits.test.y)
    assert before < 0.3
    assert after > 0.8
    assert evaluate(MLP, result.vector, digits.validation.X, digits.validation.y) > 0.8


def test_training_is_bit_for_bit_deterministic(digits):
    start = init_params(MLP, seed=1)
    runs = [train_local(MLP, start, digits.train.X, digits.train.y, 30, seed=7) for _ in range(2)]
    assert runs[0].vector.tobytes() == runs[1].vector.tobytes()
    assert runs[0].loss == runs[1].loss
    other = train_local(MLP, start, digits.train.X, digits.train.y, 30, seed=8)
    assert other.vector.tobytes() != runs[0].vector.tobytes()


def test_result_record(digits):
    start = init_params(MLP, seed=0)
    kept = start.copy()
    result = train_local(MLP, start, digits.train.X, digits.train.y, 5, seed=0)
    assert np.array_equal(start, kept)  # the global vector is not touched
    assert result.vector.dtype == np.float32 and result.vector.shape == (param_count(MLP),)
    assert result.num_samples == len(digits.train) and result.steps == 5
    assert result.train_millis >= 0 and 0 < result.loss < 5
    assert not np.array_equal(result.vector, start)


def test_cnn_learns_digits(digits):
    result = train_local(CNN, init_params(CNN, seed=0), digits.train.X, digits.train.y, 60,
                         seed=0)
    assert evaluate(CNN, result.vector, digits.test.X, digits.test.y) > 0.75


@pytest.mark.parametrize("name, threshold", [("breast_cancer", 0.9), ("wine", 0.9)])
def test_logreg_learns_tabular_data(name, threshold):
    data = load_dataset(name)
    splits = split_dataset(data, seed=0)
    spec = ModelSpec.for_features("logreg", data.feature_shape, data.num_classes)
    start = init_params(spec, seed=0)
    result = train_local(spec, start, splits.train.X, splits.train.y, 60, seed=0)
    assert evaluate(spec, start, splits.test.X, splits.test.y) < threshold
    assert evaluate(spec, result.vector, splits.test.X, splits.test.y) > threshold
    assert evaluate(spec, result.vector, splits.test.X, splits.test.y, "f1_macro") > 0.85


def test_hook_sees_every_step_before_the_update(digits):
    seen: list[int] = []

    def freeze(step, parameters):
        seen.append(step)
        for parameter in parameters:
            parameter.grad.zero_()

    start = init_params(MLP, seed=0)
    result = train_local(MLP, start, digits.train.X, digits.train.y, 13, seed=0,
                         gradient_hook=freeze)
    assert seen == list(range(13))
    assert result.vector.tobytes() == start.tobytes()


def test_one_full_batch_step_is_plain_gradient_descent():
    data = split_dataset(load_dataset("wine"), seed=0).train
    spec = ModelSpec.for_features("logreg", data.feature_shape, data.num_classes)
    start = init_params(spec, seed=0)
    result = train_local(spec, start, data.X, data.y, 1, seed=0, batch_size=10_000, lr=0.5)
    model = model_from_vector(spec, start)
    loss = torch.nn.functional.cross_entropy(model(torch.tensor(data.X)), torch.tensor(data.y))
    loss.backward()
    expected = np.concatenate([(p - 0.5 * p.grad).detach().numpy().ravel()
                               for p in model.parameters()])
    np.testing.assert_allclose(result.vector, expected, rtol=1e-5, atol=1e-6)
    assert result.loss == pytest.approx(float(loss.detach()), rel=1e-5)


def test_images_may_come_flat_or_shaped(digits):
    start = init_params(CNN, seed=0)
    flat = train_local(CNN, start, digits.train.X[:64], digits.train.y[:64], 3, seed=0)
    shaped = train_local(CNN, start, digits.train.X[:64].reshape(-1, 1, 8, 8),
                         digits.train.y[:64], 3, seed=0)
    assert flat.vector.tobytes() == shaped.vector.tobytes()


def test_predictions(digits):
    result = train_local(MLP, init_params(MLP, 0), digits.train.X, digits.train.y, 50, seed=0)
    labels = predict(MLP, result.vector, digits.test.X)
    assert labels.dtype == np.int64 and labels.shape == (len(digits.test),)
    probabilities = predict_proba(MLP, result.vector, digits.test.X)
    assert probabilities.shape == (len(digits.test), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)
    assert evaluate(MLP, result.vector, digits.test.X, digits.test.y, "f1_macro") == \
        pytest.approx(f1_score(digits.test.y, labels, average="macro"))
    assert evaluate(MLP, result.vector, digits.test.X, digits.test.y, get_metric("accuracy")) \
        == pytest.approx(np.mean(labels == digits.test.y))


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0}, "lr"),
    ({"lr": float("inf")}, "lr"),
    ({"momentum": -0.1}, "momentum"),
    ({"seed": -1}, "seed"),
    ({"X": np.zeros((10, 63), np.float32)}, "takes X of shape"),
    ({"X": np.full((10, 64), np.nan, np.float32)}, "NaN"),
    ({"X": np.zeros((0, 64), np.float32), "y": np.zeros(0, np.int64)}, "empty"),
    ({"y": np.full(10, 10)}, "labels must lie in 0..9"),
    ({"y": np.zeros(9, np.int64)}, "y must be 10 integer labels"),
    ({"y": np.zeros(10)}, "integer labels"),
    ({"global_vector": np.zeros(5, np.float32)}, "parameter vector"),
])
def test_bad_arguments(change, message):
    args = {"global_vector": init_params(MLP, 0), "X": np.zeros((10, 64), np.float32),
            "y": np.zeros(10, np.int64), "steps": 1, "seed": 0, **change}
    with pytest.raises(ConfigError, match=message):
        train_local(MLP, args.pop("global_vector"), args.pop("X"), args.pop("y"),
                    args.pop("steps"), **args)


def test_unknown_metric_in_evaluate(digits):
    with pytest.raises(ConfigError, match="known metrics"):
        evaluate(MLP, init_params(MLP, 0), digits.test.X, digits.test.y, "auc")
