"""Datasets: bundled ones, user CSV and NPZ files, and seeded standardized splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from fl_agent.errors import ConfigError, FairFLError
from fl_agent.learning.data import DataError, Dataset, load_dataset, split_dataset


@pytest.mark.parametrize("name, n, features, shape, classes", [
    ("digits", 1797, 64, (1, 8, 8), 10),
    ("breast_cancer", 569, 30, (30,), 2),
    ("wine", 178, 13, (13,), 3),
])
def test_builtin_datasets(name, n, features, shape, classes):
    data = load_dataset(name)
    assert (len(data), data.num_features, data.feature_shape, data.num_classes) == \
        (n, features, shape, classes)
    assert data.X.dtype == np.float32 and data.y.dtype == np.int64
    assert set(np.unique(data.y)) == set(range(classes))
    assert len(data.class_names) == classes


def test_builtin_values_are_sklearns():
    np.testing.assert_array_equal(load_dataset("digits").X, load_digits().data.astype(np.float32))
    np.testing.assert_array_equal(load_dataset("breast_cancer").y, load_breast_cancer().target)
    assert load_dataset("breast_cancer").class_names == ("malignant", "benign")


def test_dataset_arrays_are_read_only():
    data = load_dataset("wine")
    with pytest.raises(ValueError):
        data.X[0, 0] = 1.0


def test_subset_keeps_the_label_space():
    data = load_dataset("wine")
    part = data.subset([0, 5, 2])
    np.testing.assert_array_equal(part.X, data.X[[0, 5, 2]])
    assert part.num_classes == 3 and part.class_names == data.class_names


@pytest.mark.parametrize("fields, message", [
    ({"X": np.zeros((3, 2)), "y": np.array([0, 1, 2])}, "labels must lie in 0..1"),
    ({"X": np.zeros((3, 2)), "y": np.array([0, 1])}, "one label per row"),
    ({"X": np.zeros(3), "y": np.array([0, 1, 1])}, "X must be 2-D"),
    ({"X": np.zeros((3, 2)), "y": np.array([0.0, 1.0, 1.0])}, "labels must be integers"),
    ({"X": np.array([[np.nan, 0]] * 3), "y": np.array([0, 1, 1])}, "NaN"),
    ({"X": np.zeros((3, 3)), "y": np.array([0, 1, 1])}, "feature_shape"),
    ({"X": np.zeros((3, 2)), "y": np.array([0, 1, 1]), "num_classes": 1}, "at least 2"),
    ({"X": np.zeros((3, 2)), "y": np.array([0, 1, 1]), "class_names": ("a",)}, "class names"),
])
def test_dataset_validates(fields, message):
    args = {"name": "t", "num_classes": 2, "feature_shape": (2,), **fields}
    with pytest.raises(DataError, match=message):
        Dataset(**args)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match="digits, breast_cancer, wine"):
        load_dataset("mnist")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_label_last(tmp_path):
    data = load_dataset(write(tmp_path, "a,b,target\n1,2,0\n3.5,-4,1\n\n5,6e1,1\n"))
    np.testing.assert_array_equal(data.X, [[1, 2], [3.5, -4], [5, 60]])
    np.testing.assert_array_equal(data.y, [0, 1, 1])
    assert data.num_classes == 2 and data.feature_shape == (2,)


def test_csv_with_a_label_column_and_text_labels(tmp_path):
    path = write(tmp_path, "x1,Label,x2\n1,cat,2\n3,dog,4\n5,cat,6\n7,bird,8\n")
    data = load_dataset(path)
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert data.class_names == ("bird", "cat", "dog")
    np.testing.assert_array_equal(data.y, [1, 2, 1, 0])


def test_csv_label_space_can_be_fixed_by_the_task(tmp_path):
    path = write(tmp_path, "x,label\n1,cat\n2,cat\n")
    data = load_dataset(path, class_names=["cat", "dog", "emu"])
    assert data.num_classes == 3
    np.testing.assert_array_equal(data.y, [0, 0])
    numbers = load_dataset(write(tmp_path, "x,label\n1,3\n2,3\n", "n.csv"), num_classes=5)
    assert numbers.num_classes == 5
    np.testing.assert_array_equal(numbers.y, [3, 3])


@pytest.mark.parametrize("text, message", [
    ("a,b,label\n1,x,0\n2,3,1\n", r"line 2, column 'b': 'x' is not a number"),
    ("a,b,label\n1,2,0\n2,,1\n", r"line 3, column 'b': is empty"),
    ("a,b,label\n1,2,0\n2,3\n", "line 3: expected 3 columns"),
    ("a,b,label\n1,2,0\n2,3,\n", "line 3: the label is empty"),
    ("a,b,label\n1,nan,0\n2,3,1\n", "not a finite number"),
    ("1,2,0\n2,3,1\n", "first row must name the columns"),
    ("a,b,label\n", "at least one example"),
    ("", "at least one example"),
    ("label\n0\n1\n", "at least one feature column"),
    ("a,label\n1,0\n2,0\n", "needs at least 2 classes"),
    ("a,label\n1,-1\n2,0\n", "integer labels must be >= 0"),
])
def test_bad_csv_is_a_clear_data_error(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(write(tmp_path, text))
    assert isinstance(caught.value, FairFLError) and isinstance(caught.value, ValueError)


def test_csv_labels_outside_the_class_names(tmp_path):
    with pytest.raises(DataError, match=r"\['emu'\] are not among the class names"):
        load_dataset(write(tmp_path, "x,label\n1,cat\n2,emu\n"), class_names=["cat", "dog"])


def test_npz_tabular_and_images(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "t.npz", X=X, y=y)
    data = load_dataset(tmp_path / "t.npz")
    np.testing.assert_array_equal(data.X, X.astype(np.float32))
    assert data.num_classes == 3 and data.feature_shape == (4,)
    images = rng.integers(0, 255, size=(5, 2, 3, 3))
    np.savez(tmp_path / "i.npz", X=images, y=np.arange(5), extra=np.zeros(2))
    data = load_dataset(str(tmp_path / "i.npz"))
    assert data.feature_shape == (2, 3, 3) and data.X.shape == (5, 18)
    np.testing.assert_array_equal(data.X[1], images[1].reshape(-1))


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((3, 2))}, r"missing \['y'\]"),
    ({"X": np.zeros((3, 2)), "y": np.array([0.5, 1, 0])}, "integer or text class labels"),
    ({"X": np.zeros((3, 2)), "y": np.array([0, 1])}, "one label per example"),
    ({"X": np.zeros(3), "y": np.array([0, 1, 0])}, "X must be a numeric array"),
    ({"X": np.array([[None, 1]] * 3, dtype=object), "y": np.array([0, 1, 0])},
     "not a readable .npz"),
])
def test_bad_npz(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path / "bad.npz")


def test_corrupt_npz(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"PK not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(tmp_path / "c.npz")


def test_split_is_seeded_disjoint_and_stratified():
    data = load_dataset("digits")
    splits = split_dataset(data, validation_fraction=0.2, test_fraction=0.2, seed=4,
                           standardize=False)
    again = split_dataset(data, validation_fraction=0.2, test_fraction=0.2, seed=4,
                          standardize=False)
    other = split_dataset(data, validation_fraction=0.2, test_fraction=0.2, seed=5,
                          standardize=False)
    assert np.array_equal(splits.test.X, again.test.X)
    assert not np.array_equal(splits.test.X, other.test.X)
    sizes = [len(splits.train), len(splits.validation), len(splits.test)]
    assert sum(sizes) == len(data) and abs(sizes[2] - 0.2 * len(data)) <= 1
    rows = np.concatenate([part.X for part in (splits.train, splits.validation, splits.test)])
    assert len(np.unique(rows, axis=0)) == len(np.unique(data.X, axis=0))
    for part in (splits.train, splits.validation, splits.test):
        share = np.bincount(part.y, minlength=10) / len(part)
        assert np.abs(share - np.bincount(data.y) / len(data)).max() < 0.02


def test_standardization_is_fitted_on_train_only():
    data = load_dataset("breast_cancer")
    raw = split_dataset(data, seed=1, standardize=False)
    splits = split_dataset(data, seed=1)
    np.testing.assert_allclose(splits.scaler.mean_, raw.train.X.astype(np.float64).mean(axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(splits.train.X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(splits.train.X.std(axis=0), 1, atol=1e-3)
    expected = (raw.test.X - splits.scaler.mean_) / splits.scaler.scale_
    np.testing.assert_allclose(splits.test.X, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(splits.test.X.mean(axis=0)).max() > 1e-3  # not refitted on test
    assert raw.scaler is None


def test_split_without_validation():
    splits = split_dataset(load_dataset("wine"), validation_fraction=0, test_fraction=0.25)
    assert len(splits.validation) == 0 and len(splits.train) + len(splits.test) == 178


@pytest.mark.parametrize("kwargs", [
    {"test_fraction": 0},
    {"test_fraction": 1},
    {"validation_fraction": -0.1},
    {"validation_fraction": 0.5, "test_fraction": 0.5},
    {"test_fraction": 0.01},  # too few test rows to hold every wine class
    {"seed": 2**32},
])
def test_bad_split_arguments(kwargs):
    with pytest.raises(ConfigError):
        split_dataset(load_dataset("wine"), **kwargs)
