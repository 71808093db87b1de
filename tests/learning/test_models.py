"""Model specs: validated JSON documents; models and the flat vector they exchange."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fl_agent.errors import ConfigError
from fl_agent.learning.models import (
    ModelSpec,
    apply_model,
    build_model,
    init_params,
    input_layer,
    model_from_vector,
    param_count,
    param_layout,
    params_to_vector,
    vector_to_params,
)

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(64,))
TANH = ModelSpec(name="mlp_tanh", input_shape=(64,), num_classes=10, hidden=(64,))
CNN = ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10)
LOGREG = ModelSpec(name="logreg", input_shape=(30,), num_classes=2)
SPECS = [MLP, TANH, CNN, LOGREG]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_round_trips_through_json(spec):
    text = spec.to_json()
    assert ModelSpec.from_json(text) == spec
    assert ModelSpec.from_json(text.encode()) == spec
    assert json.loads(text)["name"] == spec.name


def test_json_is_canonical_and_hash_names_the_spec():
    same = ModelSpec(hidden=(64,), num_classes=10, input_shape=(64,), name="mlp")
    assert same.to_json() == MLP.to_json()
    assert same.to_json() == ('{"hidden":[64],"input_shape":[64],"name":"mlp",'
                              '"num_classes":10,"spec_version":1}')
    assert same.sha256() == MLP.sha256()
    assert ModelSpec(name="mlp", input_shape=(64,), num_classes=9).sha256() != MLP.sha256()


def test_hidden_defaults_per_architecture():
    assert ModelSpec(name="mlp", input_shape=(4,), num_classes=2).hidden == (64,)
    assert ModelSpec(name="mlp_tanh", input_shape=(4,), num_classes=2).hidden == (64,)
    assert CNN.hidden == (16, 32)
    assert LOGREG.hidden == ()


@pytest.mark.parametrize("fields", [
    {"name": "resnet", "input_shape": (64,), "num_classes": 10},
    {"name": "mlp", "input_shape": (64,), "num_classes": 1},
    {"name": "mlp", "input_shape": (64,), "num_classes": True},
    {"name": "mlp", "input_shape": (64,), "num_classes": 10, "hidden": ()},
    {"name": "mlp_tanh", "input_shape": (64,), "num_classes": 10, "hidden": ()},
    {"name": "mlp", "input_shape": (), "num_classes": 10},
    {"name": "mlp", "input_shape": (0,), "num_classes": 10},
    {"name": "mlp", "input_shape": (64,), "num_classes": 10, "hidden": (0,)},
    {"name": "logreg", "input_shape": (64,), "num_classes": 10, "hidden": (8,)},
    {"name": "cnn", "input_shape": (64,), "num_classes": 10},
    {"name": "cnn", "input_shape": (1, 1, 8), "num_classes": 10},
    {"name": "cnn", "input_shape": (1, 8, 8), "num_classes": 10, "hidden": ()},
    {"name": "mlp", "input_shape": (64,), "num_classes": 10, "dropout": 0.5},
])
def test_invalid_specs_are_config_errors(fields):
    with pytest.raises(ConfigError, match="invalid model spec"):
        ModelSpec(**fields)


@pytest.mark.parametrize("text", [
    "not json",
    '{"name":"mlp","input_shape":[64],"num_classes":10,"spec_version":2}',
    '{"name":"mlp","input_shape":["64"],"num_classes":10}',
    '{"name":"mlp","input_shape":[64],"num_classes":10,"extra":1}',
])
def test_invalid_spec_documents_are_config_errors(text):
    with pytest.raises(ConfigError, match="invalid model spec document"):
        ModelSpec.from_json(text)


def test_spec_for_features():
    assert ModelSpec.for_features("mlp", (1, 8, 8), 10) == MLP
    assert ModelSpec.for_features("cnn", (8, 8), 10) == CNN
    assert ModelSpec.for_features("cnn", (1, 8, 8), 10, hidden=(4,)).hidden == (4,)
    assert ModelSpec.for_features("logreg", (30,), 2) == LOGREG
    with pytest.raises(ConfigError):
        ModelSpec.for_features("cnn", (64,), 10)


def test_param_count_matches_the_architecture():
    assert param_count(MLP) == 64 * 64 + 64 + 64 * 10 + 10
    assert param_count(LOGREG) == 30 * 2 + 2
    conv = (1 * 9 + 1) * 16 + (16 * 9 + 1) * 32
    assert param_count(CNN) == conv + 32 * 4 * 4 * 10 + 10


def test_the_tanh_mlp_is_the_mlp_with_tanh_in_place_of_relu():
    """Same layers, parameters, layout and initialisation; only the activation differs, so
    the same vector gives other outputs."""
    assert param_layout(TANH) == param_layout(MLP)
    assert np.array_equal(init_params(TANH, seed=5), init_params(MLP, seed=5))
    assert TANH.sha256() != MLP.sha256()
    tanh, relu = build_model(TANH, seed=5), build_model(MLP, seed=5)
    assert [type(m) for m in tanh] == [nn.Flatten, nn.Linear, nn.Tanh, nn.Linear]
    assert [type(m) for m in relu] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    x = torch.randn(7, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden = tanh.fc1(x)
        expected = tanh.out(torch.tanh(hidden))
        assert torch.allclose(tanh(x), expected)
        assert not torch.allclose(tanh(x), relu(x))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_layout_names_every_slice_of_the_vector(spec):
    model = build_model(spec, seed=3)
    vector = params_to_vector(model)
    state = model.state_dict()
    layout = param_layout(spec)
    assert [slot.name for slot in layout] == list(state)
    offset = 0
    for slot in layout:
        assert slot.offset == offset
        np.testing.assert_array_equal(
            vector[slot.offset:slot.offset + slot.size].reshape(slot.shape), state[slot.name])
        offset += slot.size
    assert offset == vector.size == param_count(spec)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_vector_round_trip_is_exact(spec):
    vector = init_params(spec, seed=1)
    assert vector.dtype == np.float32
    model = build_model(spec, seed=2)
    assert not np.array_equal(params_to_vector(model), vector)
    vector_to_params(model, vector)
    assert params_to_vector(model).tobytes() == vector.tobytes()
    x = torch.randn(5, *spec.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), build_model(spec, seed=1)(x))
        assert model(x).shape == (5, spec.num_classes)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_init_draws_torchs_default_initialisation_from_the_seed(spec):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        expected = params_to_vector(_torch_default(spec))
    assert init_params(spec, seed=5).tobytes() == expected.tobytes()


def _torch_default(spec):
    """The same architecture written out with torch's layers, initialised by torch."""
    if spec.name == "logreg":
        return nn.Sequential(OrderedDict(flatten=nn.Flatten(), linear=nn.Linear(30, 2)))
    if spec.name == "mlp":
        return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(64, 64),
                                         relu1=nn.ReLU(), out=nn.Linear(64, 10)))
    if spec.name == "mlp_tanh":
        return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(64, 64),
                                         tanh1=nn.Tanh(), out=nn.Linear(64, 10)))
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, spec.hidden[0], 3, padding=1), relu1=nn.ReLU(),
        conv2=nn.Conv2d(spec.hidden[0], spec.hidden[1], 3, padding=1), relu2=nn.ReLU(),
        pool=nn.MaxPool2d(2), flatten=nn.Flatten(),
        out=nn.Linear(spec.hidden[1] * 16, 10)))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_model_from_a_vector_and_the_functional_forward_are_the_built_model(spec):
    vector = init_params(spec, seed=3)
    built = build_model(spec, seed=3).eval()
    x = torch.randn(7, *spec.input_shape, generator=torch.Generator().manual_seed(1))
    from_vector = model_from_vector(spec, vector)
    assert params_to_vector(from_vector).tobytes() == vector.tobytes()
    assert all(p.requires_grad for p in from_vector.parameters())  # it can be trained
    with torch.no_grad():
        assert torch.equal(from_vector(x), built(x))
    assert torch.equal(apply_model(spec, vector, x), built(x).detach())
    other = init_params(spec, seed=4)  # the per-thread template keeps no state between calls
    assert torch.equal(apply_model(spec, other, x), build_model(spec, seed=4).eval()(x).detach())
    assert torch.equal(apply_model(spec, vector, x), built(x).detach())
    with pytest.raises(ConfigError, match="parameter vector"):
        apply_model(spec, vector[:-1], x)


def test_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = init_params(MLP, seed=7)
    assert torch.equal(torch.rand(3), expected)
    assert init_params(MLP, seed=7).tobytes() == first.tobytes()
    assert not np.array_equal(init_params(MLP, seed=8), first)


def test_params_to_vector_returns_a_copy():
    model = build_model(LOGREG)
    vector = params_to_vector(model)
    vector[:] = 0
    assert np.any(params_to_vector(model) != 0)


@pytest.mark.parametrize("bad", [
    np.zeros(param_count(MLP) - 1, np.float32),
    np.zeros(param_count(MLP) + 1, np.float32),
    np.zeros((1, param_count(MLP)), np.float32),
    np.zeros(param_count(MLP), np.int64),
    np.full(param_count(MLP), np.nan, np.float32),
], ids=["short", "long", "2d", "int", "nan"])
def test_bad_vectors_are_rejected(bad):
    model = build_model(MLP)
    before = params_to_vector(model)
    with pytest.raises(ConfigError, match="parameter vector"):
        vector_to_params(model, bad)
    assert params_to_vector(model).tobytes() == before.tobytes()
    with pytest.raises(ConfigError):
        model_from_vector(MLP, bad)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(width=st.integers(1, 20), depth=st.integers(1, 3), classes=st.integers(2, 12),
       features=st.integers(1, 50))
def test_any_mlp_spec_round_trips_and_counts(width, depth, classes, features):
    spec = ModelSpec(name="mlp", input_shape=(features,), num_classes=classes,
                     hidden=(width,) * depth)
    assert ModelSpec.from_json(spec.to_json()) == spec
    expected = (features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * classes
    assert param_count(spec) == expected == init_params(spec, 0).size


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_seeds_are_checked(seed):
    with pytest.raises(ConfigError, match="seed"):
        init_params(MLP, seed)


def test_largest_seed_is_accepted():
    assert init_params(LOGREG, 2**32 - 1).size == param_count(LOGREG)


@pytest.mark.parametrize(("name", "hidden", "units"), [("mlp", (32, 16), 32), ("logreg", (), 3)])
def test_input_layer_has_one_column_per_input_feature(name, hidden, units):
    spec = ModelSpec(name=name, input_shape=(2, 5), num_classes=3, hidden=hidden)
    assert input_layer(spec) == (0, units, 10)
    offset, rows, features = input_layer(spec)
    model = build_model(spec, seed=4)
    block = params_to_vector(model)[offset:offset + rows * features].reshape(rows, features)
    first = next(model.parameters())  # the dense layer that reads the flattened input
    assert np.array_equal(block, first.detach().numpy())
    # column j moves with input feature j: only it changes the output when it is zeroed
    x = torch.zeros(1, 2, 5)
    x[0, 1, 2] = 1.0
    with torch.no_grad():
        before = model(x)
        first[:, 7] = 0.0  # feature (1, 2) flattened
        assert not torch.equal(model(x), before)
        first[:, 3] = 0.0
        after = model(x)
        first[:, 3] = 1.0
        assert torch.equal(model(x), after)


def test_a_cnn_has_no_input_layer():
    assert input_layer(ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10)) is None
