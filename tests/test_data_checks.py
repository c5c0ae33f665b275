"""The data checks: every array that breaks a rule is refused in one line naming the file (or
data set), the array and the fault, at ``check()`` (a ConfigError) and at training (a
DataError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import good_arrays

from depthlab.data import (
    CLASSIFICATION,
    NPZ,
    Arrays,
    DataError,
    Teacher,
    check_arrays,
    load_data,
)
from depthlab.errors import ConfigError

CPU = torch.device("cpu")

# Data checks: every failure is one line naming the file (or data set), the array and the fault.


def with_nan(a: np.ndarray, value: float = np.nan) -> np.ndarray:
    """A float copy of ``a`` with ``value`` at row 3 (its first entry there)."""
    a = a.astype(float)
    a[(3,) + (0,) * (a.ndim - 1)] = value
    return a


def y_with(label: float, dtype: type = np.int64) -> np.ndarray:
    y = (np.arange(50) % 3).astype(dtype)
    y[7] = label
    return y


def as_object(a: np.ndarray) -> np.ndarray:
    return np.array(list(a), dtype=object)


# (what is wrong, the arrays changed (None: left out), the task, the array named, a phrase)
BAD_FILES = [
    ("negative label", {"y_train": y_with(-1)}, CLASSIFICATION, "y_train", "below 0"),
    ("label 10^9", {"y_test": y_with(10**9)[:20]}, CLASSIFICATION, "y_test", "1000000001 classes"),
    ("label 1.5", {"y_train": y_with(1.5, float)}, CLASSIFICATION, "y_train", "1.5 (row 7)"),
    ("NaN label", {"y_train": with_nan(y_with(0))}, CLASSIFICATION, "y_train", "whole"),
    ("one class", {"y_train": np.zeros(50, int)}, CLASSIFICATION, "y_train", "one class"),
    ("2-D labels", {"y_train": np.zeros((50, 1), int)}, CLASSIFICATION, "y_train", "1-D"),
    ("too few labels", {"y_train": y_with(1)[:49]}, CLASSIFICATION, "y_train", "49 rows"),
    ("too many targets", {"y_test": np.zeros((21, 2))}, "regression", "y_test", "21 rows"),
    ("features", {"x_test": np.zeros((20, 5))}, CLASSIFICATION, "x_test", "5 features"),
    ("target columns", {"y_test": np.zeros((20, 3))}, "regression", "y_test", "3 target"),
    ("object x", {"x_train": as_object(np.zeros(50))}, CLASSIFICATION, "x_train", "Object"),
    ("string y", {"y_train": np.array(["a", "b"] * 25)}, CLASSIFICATION, "y_train", "dtype <U1"),
    ("complex x", {"x_test": np.zeros((20, 4), complex)}, CLASSIFICATION, "x_test", "complex"),
    ("missing", {"y_test": None, "x_test": None}, CLASSIFICATION, "x_test, y_test", "lacks"),
    ("empty x", {"x_test": np.zeros((0, 4)), "y_test": y_with(1)[:0]}, "regression", "x_test", ""),
    ("no features", {"x_train": np.zeros((50, 0))}, CLASSIFICATION, "x_train", "no features"),
    ("empty targets", {"y_train": np.zeros((50, 0))}, "regression", "y_train", "empty"),
    ("NaN input", {"x_train": with_nan(np.ones((50, 4)))}, CLASSIFICATION, "x_train", "1 NaN"),
    ("inf input", {"x_test": with_nan(np.ones((20, 4)), np.inf)}, "regression", "x_test", "inf"),
    ("NaN target", {"y_train": with_nan(np.ones((50, 2)))}, "regression", "y_train", "NaN"),
    ("inf target", {"y_test": with_nan(np.ones(20), -np.inf)}, "regression", "y_test", "inf"),
]


def assert_one_line(message: str, *names: str) -> None:
    assert "\n" not in message, message
    for name in names:
        assert name in message, (name, message)


@pytest.mark.parametrize(
    ("changes", "task", "array", "phrase"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_a_bad_npz_file_is_refused_at_check_in_one_line(
    tmp_path: Path, changes: dict, task: str, array: str, phrase: str
) -> None:
    arrays = good_arrays(np.random.default_rng(0), task) | changes
    path = tmp_path / "bad.npz"
    np.savez(path, labels=np.zeros(3), **{k: v for k, v in arrays.items() if v is not None})
    data = NPZ(path=str(path), task_type=task)
    with pytest.raises(ConfigError) as err:
        data.check()
    assert err.value.key == "data.path"
    assert_one_line(str(err.value), str(path), array, phrase)
    with pytest.raises(DataError) as at_training:
        load_data(data, CPU, torch.float32)
    assert_one_line(str(at_training.value), str(path), array, phrase)


def test_missing_arrays_are_named_with_what_the_file_has(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(ConfigError) as err:
        NPZ(path=str(path)).check()
    assert "lacks y_train, x_test, y_test (the file has x_train, labels)" in str(err.value)


@pytest.mark.parametrize("content", [b"x_train,y_train\n1,2\n", b"", b"PK\x03\x04broken"])
def test_a_file_that_is_not_npz_is_refused_in_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        NPZ(path=str(path)).check()
    assert_one_line(str(err.value), str(path), ".npz")


def test_a_damaged_array_is_named(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "damaged.npz"
    arrays = good_arrays(np.random.default_rng(0))
    np.savez(path, **{k: v for k, v in arrays.items() if k != "x_test"})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("x_test.npy", b"not an array")
    with pytest.raises(ConfigError) as err:
        NPZ(path=str(path)).check()
    assert_one_line(str(err.value), str(path), "x_test cannot be read (not a .npy array)")


def test_a_npy_file_is_not_an_npz_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="not a zip archive"):
        NPZ(path=str(path)).check()


def test_integral_float_labels_are_cast_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "float_labels.npz"
    arrays = good_arrays(np.random.default_rng(1))
    y_train = arrays["y_train"].astype(float)
    np.savez(path, **(arrays | {"y_train": y_train}))
    data = NPZ(path=str(path))
    data.check()
    ds = load_data(data, CPU, torch.float32)
    assert ds.y_train.dtype == torch.int64
    np.testing.assert_array_equal(ds.y_train.numpy(), y_train)
    assert ds.num_outputs == 3


def test_check_arrays_names_a_generated_data_set() -> None:
    a = Teacher(num_train=64, num_test=16).arrays()
    bad = Arrays(with_nan(a.x_train), a.y_train, a.x_test, a.y_test, a.task, a.num_outputs)
    with pytest.raises(DataError) as err:
        check_arrays(bad, Teacher().source())
    assert str(err.value) == "data=teacher: x_train has 1 NaN and 0 infinite values (first row 3)"
    wide = Arrays(a.x_train, a.y_train, a.x_test, a.y_test + 10, a.task, a.num_outputs)
    with pytest.raises(DataError, match=r"y_test has label 1[0-9], num_outputs 10"):
        check_arrays(wide, "teacher")


def test_inputs_whose_squares_overflow_are_refused() -> None:
    x = np.ones((20, 3))
    x[7, 1] = 1e300
    y = np.arange(20) % 2
    with pytest.raises(DataError, match=r"^here: x_train has \|value\| 1e\+300 \(row 7\)"):
        check_arrays(Arrays(x, y, np.ones((5, 3)), y[:5], "classification", 0), "here")
