"""Every registered data set: seeded, split, standardised, on the requested device and dtype;
its arrays checked (one line naming the file and the array) and its sizes known beforehand."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import good_arrays

import depthlab.data
import depthlab.dataset_npz
from depthlab.config import check_option
from depthlab.data import (
    CLASSIFICATION,
    DATASETS,
    MNIST1D,
    NPZ,
    Data,
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
    real = depthlab.dataset_npz._read_npz
    monkeypatch.setattr(
        depthlab.dataset_npz, "_read_npz", lambda path: reads.append(path) or real(path)
    )
    depthlab.dataset_npz._npz_arrays.cache_clear()
    data = npz_of(tmp_path, CLASSIFICATION)
    for _ in range(3):
        data.check()
    first = data.arrays()
    assert data.sizes() == (15, 6, 37, 11)
    assert len(reads) == 1 and data.arrays() is first
    np.savez(data.path, **good_arrays(np.random.default_rng(3)))
    data.check()
    assert len(reads) == 2 and data.sizes() == (4, 3, 50, 20)
