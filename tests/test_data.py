"""Every registered data set: seeded, split, standardised, on the requested device and dtype;
its arrays checked (one line naming the file and the array) and its sizes known beforehand."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import depthlab.data
from depthlab.config import check_option
from depthlab.data import (
    CLASSIFICATION,
    DATASETS,
    MNIST1D,
    NPZ,
    Arrays,
    Data,
    DataError,
    Digits,
    Quadratic,
    Teacher,
    check_arrays,
    load_data,
)
from depthlab.errors import ConfigError

CPU = torch.device("cpu")


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(50, 4, 4)),
        y_train=rng.integers(0, 3, 50),
        x_test=rng.normal(size=(20, 4, 4)),
        y_test=rng.integers(0, 3, 20),
    )
    return path


def make(name: str, npz_path: Path) -> Data:
    return NPZ(path=str(npz_path)) if name == "npz" else DATASETS[name]()


@pytest.mark.parametrize("name", DATASETS.names())
def test_split_shapes_and_standardisation(name: str, npz_file: Path) -> None:
    data = make(name, npz_file)
    data.check()
    ds = load_data(data, torch.device("cpu"), torch.float64)
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float64
    assert ds.x_train.shape[1] == ds.x_test.shape[1] and len(ds.x_test) > 0
    assert len(ds.y_train) == len(ds.x_train) and len(ds.y_test) == len(ds.x_test)
    assert ds.task == data.task()
    if ds.task == CLASSIFICATION:
        assert ds.y_train.dtype == torch.int64
        assert int(ds.y_train.max()) < ds.num_outputs and int(ds.y_train.min()) >= 0
    else:
        assert ds.y_train.shape == (len(ds.x_train), ds.num_outputs)
    std = ds.x_train.std(0, unbiased=False)
    varying = std > 0
    np.testing.assert_allclose(ds.x_train.mean(0).numpy(), 0, atol=1e-10)
    np.testing.assert_allclose(std[varying].numpy(), 1, rtol=1e-10)


@pytest.mark.parametrize("name", DATASETS.names())
def test_reproducible(name: str, npz_file: Path) -> None:
    a, b = make(name, npz_file).arrays(), make(name, npz_file).arrays()
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n != "npz"])
def test_data_seed_changes_the_data(name: str) -> None:
    cls = DATASETS[name]
    a, b = cls().arrays(), cls(seed=cls().seed + 1).arrays()
    assert not np.array_equal(a.x_test, b.x_test) or not np.array_equal(a.y_train, b.y_train)


def test_mnist1d_is_the_standard_split_and_leaves_global_rngs_alone() -> None:
    random.seed(7)
    np.random.seed(7)
    before = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    arrays = DATASETS["mnist1d"]().arrays()
    assert (random.random(), np.random.random()) == before
    assert arrays.x_train.shape == (4000, 40) and arrays.x_test.shape == (1000, 40)
    assert set(np.unique(arrays.y_train)) == set(range(10))


def test_quadratic_is_the_classic_demo() -> None:
    a = Quadratic().arrays()
    np.testing.assert_allclose(a.x_train[:, 0], np.linspace(-1, 1, 100))
    for x, y in ((a.x_train, a.y_train), (a.x_test, a.y_test)):
        residual = y[:, 0] - x[:, 0] ** 2
        assert residual.min() >= 0 and residual.max() <= 0.2
        assert residual.std() == pytest.approx(0.2 / np.sqrt(12), rel=0.25)  # U(0, 0.2)


def test_teacher_classes_are_learnable_by_the_teacher_family() -> None:
    """A depth-0 teacher is a linear classifier: its labels are linearly separable."""
    from sklearn.linear_model import LogisticRegression

    a = Teacher(depth=0, num_train=1000).arrays()
    clf = LogisticRegression(C=1e4, max_iter=5000).fit(a.x_train, a.y_train)
    assert clf.score(a.x_train, a.y_train) > 0.97


def test_teacher_regression_without_noise_is_a_function_of_x() -> None:
    a = Teacher(task_type="regression", num_outputs=2, noise=0.0).arrays()
    b = Teacher(task_type="regression", num_outputs=2, noise=0.5).arrays()
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert np.std(a.y_train - b.y_train) == pytest.approx(0.5, rel=0.1)


def test_standardize_off_keeps_raw_inputs() -> None:
    ds = load_data(Quadratic(standardize=False), torch.device("cpu"), torch.float32)
    assert ds.x_train.min().item() == -1.0 and ds.x_train.max().item() == 1.0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (Teacher(task_type="ranking"), "data.task_type"),
        (Teacher(activation="nope"), "data.activation"),
        (Teacher(num_train=0), "data.num_train"),
        (Quadratic(noise=-1.0), "data.noise"),
        (DATASETS["digits"](test_fraction=1.5), "data.test_fraction"),
        (Digits(test_fraction=0.999), "data.test_fraction"),
        (MNIST1D(num_samples=20, train_split=0.4), "data.train_split"),
        (MNIST1D(num_samples=29, train_split=0.45), "data.train_split"),  # 9 of 20 made
        (Teacher(num_train=5), "data.num_train"),
        (NPZ(path="/no/such/file.npz"), "data.path"),
    ],
)
def test_bad_parameters_name_the_key(data: Data, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_option(data, "data")  # its limits, then its own rules
    assert err.value.key == key


# Data checks: every failure is one line naming the file (or data set), the array and the fault.


def good_arrays(rng: np.random.Generator, task: str = CLASSIFICATION) -> dict[str, np.ndarray]:
    y_train, y_test = rng.integers(0, 3, 50), rng.integers(0, 3, 20)
    if task != CLASSIFICATION:
        y_train, y_test = rng.normal(size=(50, 2)), rng.normal(size=(20, 2))
    return {
        "x_train": rng.normal(size=(50, 4)),
        "y_train": y_train,
        "x_test": rng.normal(size=(20, 4)),
        "y_test": y_test,
    }


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


GENERATED = [
    *(DATASETS[name]() for name in DATASETS.names() if name != "npz"),
    Teacher(task_type="regression", num_outputs=3),
    Teacher(num_train=10, num_test=1),
    Digits(test_fraction=0.6),
    MNIST1D(num_samples=25, train_split=0.7),
]


@pytest.mark.parametrize("data", GENERATED, ids=repr)
def test_every_generated_data_set_passes_check_arrays(data: Data) -> None:
    data.check()
    a = data.arrays()
    checked = check_arrays(a, data.source())
    for field in ("x_train", "x_test"):
        np.testing.assert_array_equal(getattr(checked, field), getattr(a, field))
    assert checked.num_outputs == a.num_outputs


def npz_of(tmp_path: Path, task: str) -> NPZ:
    """An .npz option with image-shaped inputs and, for regression, 1-D targets."""
    rng = np.random.default_rng(2)
    path = tmp_path / f"{task}.npz"
    y = {"y_train": rng.normal(size=37), "y_test": rng.normal(size=11)}
    if task == CLASSIFICATION:
        y = {"y_train": np.arange(37) % 4, "y_test": np.arange(11) % 6}
    np.savez(path, x_train=rng.normal(size=(37, 3, 5)), x_test=rng.normal(size=(11, 3, 5)), **y)
    return NPZ(path=str(path), task_type=task)


SIZED = [
    *DATASETS.names(),
    Teacher(task_type="regression", num_outputs=3, in_dim=7, num_train=30, num_test=9),
    Digits(test_fraction=0.3),
    Quadratic(num_train=17, num_test=5),
    MNIST1D(num_samples=25, train_split=0.7),
    MNIST1D(num_samples=133, train_split=0.35),
    "npz-regression",
]


@pytest.mark.parametrize("option", SIZED, ids=str)
def test_sizes_match_the_arrays_without_making_them(option: str | Data, tmp_path: Path) -> None:
    if option == "npz":
        data: Data = npz_of(tmp_path, CLASSIFICATION)
    elif option == "npz-regression":
        data = npz_of(tmp_path, "regression")
    else:
        data = DATASETS[option]() if isinstance(option, str) else option
    sizes = data.sizes()
    ds = load_data(data, CPU, torch.float32)
    assert sizes == (ds.num_inputs, ds.num_outputs, ds.num_train, len(ds.x_test))


def test_npz_sizes_are_the_files_shapes(tmp_path: Path) -> None:
    assert npz_of(tmp_path, CLASSIFICATION).sizes() == (15, 6, 37, 11)
    assert npz_of(tmp_path, "regression").sizes() == (15, 1, 37, 11)


def test_mnist1d_sizes_follow_make_dataset_not_num_samples() -> None:
    """make_dataset makes num_samples // 10 samples per class, then splits."""
    data = MNIST1D(num_samples=29, train_split=0.5)
    assert data.sizes() == (40, 10, 10, 10)
    a = data.arrays()
    assert (len(a.x_train), len(a.x_test)) == (10, 10)


def test_digits_check_refuses_exactly_the_fractions_sklearn_cannot_split() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    assert len(x) == depthlab.data.DIGITS_SAMPLES
    for fraction in (9 / 1797, 10 / 1797, 0.1, 0.99, 1787 / 1797, 1788 / 1797, 0.999):
        data = Digits(test_fraction=fraction)
        try:
            _, x_test, _, _ = train_test_split(x, y, test_size=fraction, random_state=0, stratify=y)
        except ValueError:
            with pytest.raises(ConfigError, match="one per class"):
                data.check()
        else:
            data.check()
            assert data.sizes()[3] == len(x_test)


def test_npz_file_is_read_once_per_version(tmp_path: Path, monkeypatch) -> None:
    reads = []
    real = depthlab.data._read_npz
    monkeypatch.setattr(depthlab.data, "_read_npz", lambda path: reads.append(path) or real(path))
    depthlab.data._npz_arrays.cache_clear()
    data = npz_of(tmp_path, CLASSIFICATION)
    for _ in range(3):
        data.check()
    first = data.arrays()
    assert data.sizes() == (15, 6, 37, 11)
    assert len(reads) == 1 and data.arrays() is first
    np.savez(data.path, **good_arrays(np.random.default_rng(3)))
    data.check()
    assert len(reads) == 2 and data.sizes() == (4, 3, 50, 20)


def test_inputs_whose_squares_overflow_are_refused() -> None:
    from depthlab.data import Arrays, DataError, check_arrays

    x = np.ones((20, 3))
    x[7, 1] = 1e300
    y = np.arange(20) % 2
    with pytest.raises(DataError, match=r"^here: x_train has \|value\| 1e\+300 \(row 7\)"):
        check_arrays(Arrays(x, y, np.ones((5, 3)), y[:5], "classification", 0), "here")
