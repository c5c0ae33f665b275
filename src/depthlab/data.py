"""Registered data sets: the ``data`` config group.

Every data set is generated locally or shipped with a package (nothing is downloaded).
Each option is a dataclass whose fields are its parameters and whose ``arrays()`` returns
NumPy arrays; :func:`load_data` checks them (:func:`check_arrays`: one ``DataError`` line
naming the data set or file, the array and what is wrong), standardises the inputs with the
training set's per-feature mean and standard deviation and puts tensors on the run's device
and dtype. ``check()`` refuses bad parameters before any work (a ConfigError); for ``npz``
that includes reading and checking the file, once per process per file version.
``sizes()`` gives the arrays' shapes from the config alone, for memory estimates.
Data are seeded by the data set's own ``seed`` field, not the run's ``seed``, so every
seed of a sweep trains on the same data and only the network's draw changes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import itertools
import math
import random
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from depthlab.activations import ACTIVATIONS
from depthlab.cache import cached_arrays
from depthlab.errors import ConfigError
from depthlab.registry import Registry

CLASSIFICATION = "classification"
REGRESSION = "regression"
MAX_INPUT = 1e150  # inputs whose squares still fit float64 (standardising squares them)
NUMERIC_KINDS = "biuf"  # NumPy dtype kinds: bool, signed and unsigned integers, floats
MNIST1D_CLASSES = 10
DIGITS_SAMPLES, DIGITS_CLASSES = 1797, 10
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Arrays:
    """A train/test split as NumPy arrays: x (N, d); y (N,) class labels or (N, k) targets.

    ``num_outputs``: the network's outputs (classes, or target columns); 0 before
    :func:`check_arrays` means "from the data" (max label + 1, or the target columns).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    num_outputs: int


@dataclass(frozen=True)
class DataSet:
    """Tensors of one data set on the run's device; inputs standardised with training statistics.

    Classification targets are int64 labels (N,); regression targets are (N, num_outputs).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str
    num_outputs: int

    @property
    def num_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def num_train(self) -> int:
        return self.x_train.shape[0]


@dataclass
class Data:
    """Base of every data set option; ``name`` is its option in the ``data`` group."""

    name: str = "data"
    standardize: bool = True

    def arrays(self) -> Arrays:
        raise NotImplementedError

    def sizes(self) -> tuple[int, int, int, int]:
        """(num_inputs, num_outputs, num_train, num_test) of ``arrays()``, known from the
        parameters alone: no data are made (for memory estimates before any work)."""
        raise NotImplementedError

    def making_bytes(self) -> int:
        """About the memory that making the arrays takes beyond the arrays themselves
        (0 for data that are read or cheap to make)."""
        return 0

    def task(self) -> str:
        """``classification`` or ``regression`` (known before any data are made)."""
        return CLASSIFICATION

    def source(self) -> str:
        """What DataError messages name as the data's origin."""
        return f"data={self.name}"

    def check(self, key: str = "data") -> None:
        """Raise ConfigError for a rule beyond the ranges of the numbers (``depthlab.limits``)."""


DATASETS: Registry[type[Data]] = Registry("data")


class DataError(ValueError):
    """Arrays breaking a rule of :func:`check_arrays`, as one line: ``source: array problem``.

    A ValueError, not a ConfigError: at training time the fault is in the data (a file's
    contents, or a generator's bug), not in a key's value. ``NPZ.check`` turns it into a
    ConfigError on ``data.path``, so a bad file is refused with the command line.
    """

    def __init__(self, source: str, array: str, problem: str) -> None:
        self.source, self.array, self.problem = source, array, problem
        self.detail = f"{array} {problem}" if array else problem
        super().__init__(f"{source}: {self.detail}")


def check_arrays(arrays: Arrays, source: str) -> Arrays:
    """``arrays`` checked, with inputs flattened to (N, d), class labels int64 and regression
    targets (N, k); DataError naming ``source``, the array and the first broken rule.

    Inputs: numeric (bool, int or float), non-empty, finite, as many features in both splits.
    Targets: one per input row; class labels as :func:`_check_labels` says, at most one
    class per training sample (K = max label + 1 <= N_train, so a stray label of 10^9 never
    builds a 10^9-wide output layer), within ``num_outputs`` when it is set, and at least two
    classes among the training labels; regression targets as :func:`_check_targets` says,
    as many columns in both splits (and ``num_outputs`` of them when it is set).
    """
    x_train = _check_inputs(arrays.x_train, "x_train", source)
    x_test = _check_inputs(arrays.x_test, "x_test", source)
    if x_test.shape[1] != x_train.shape[1]:
        raise DataError(
            source, "x_test", f"has {x_test.shape[1]} features, x_train {x_train.shape[1]}"
        )
    if arrays.task == CLASSIFICATION:
        y_train, y_test, num_outputs = _check_classes(arrays, len(x_train), len(x_test), source)
    else:
        y_train, y_test, num_outputs = _check_regression(arrays, len(x_train), len(x_test), source)
    return replace(
        arrays,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_outputs=num_outputs,
    )


def _check_numeric(a: np.ndarray, name: str, source: str) -> None:
    """Bool, integer or float: no object, string, complex, date or structured dtypes."""
    if a.dtype.kind not in NUMERIC_KINDS:
        raise DataError(source, name, f"has dtype {a.dtype}, not bool, integer or float")


def _check_finite(a: np.ndarray, name: str, source: str) -> None:
    """No NaN and no infinity."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        row = int(np.argmin(np.isfinite(a).reshape(len(a), -1).all(axis=1)))
        raise DataError(source, name, f"has {nan} NaN and {inf} infinite values (first row {row})")


def _check_inputs(x: np.ndarray, name: str, source: str) -> np.ndarray:
    """Inputs: numeric, at least 1-D, non-empty (samples and features), finite and at most
    ``MAX_INPUT`` in size; returned flattened to (N, d)."""
    _check_numeric(x, name, source)
    if x.ndim == 0 or x.size == 0:
        raise DataError(source, name, f"has no samples or no features (shape {x.shape})")
    x = x.reshape(len(x), -1)
    _check_finite(x, name, source)
    if x.dtype.kind == "f" and np.abs(x).max() > MAX_INPUT:
        row = int(np.argmax(np.abs(x).max(axis=1)))
        raise DataError(
            source,
            name,
            f"has |value| {np.abs(x[row]).max():.3g} (row {row}), above {MAX_INPUT:g}: "
            "its square overflows, and standardising would turn the inputs into 0",
        )
    return x


def _check_rows(y: np.ndarray, name: str, rows: int, source: str) -> None:
    """One target per input row."""
    if len(y) != rows:
        raise DataError(source, name, f"has {len(y)} rows, x{name[1:]} {rows}")


def _check_labels(y: np.ndarray, name: str, rows: int, source: str) -> None:
    """Class labels: numeric, 1-D, one per input row, whole numbers >= 0. Floats count when
    every value is integral (2.0); 1.5 is refused, never truncated."""
    _check_numeric(y, name, source)
    if y.ndim != 1:
        raise DataError(source, name, f"has shape {y.shape}: class labels are 1-D")
    _check_rows(y, name, rows, source)
    if y.dtype.kind == "f":
        bad = ~(np.isfinite(y) & (y == np.floor(y)))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(source, name, f"has label {y[row]} (row {row}), not a whole number")
    if y.min() < 0:
        row = int(np.argmin(y))
        raise DataError(source, name, f"has label {y[row]:g} (row {row}), below 0")


def _check_classes(
    arrays: Arrays, num_train: int, num_test: int, source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(y_train, y_test as int64, the class count) of a classification split."""
    _check_labels(arrays.y_train, "y_train", num_train, source)
    _check_labels(arrays.y_test, "y_test", num_test, source)
    for name, y in (("y_train", arrays.y_train), ("y_test", arrays.y_test)):
        top = int(y.max())
        if top >= num_train:
            raise DataError(
                source,
                name,
                f"has label {top}: {top + 1} classes for {num_train} training samples "
                "(at most one class per training sample)",
            )
        if arrays.num_outputs and top >= arrays.num_outputs:
            raise DataError(source, name, f"has label {top}, num_outputs {arrays.num_outputs}")
    y_train = arrays.y_train.astype(np.int64, copy=False)
    y_test = arrays.y_test.astype(np.int64, copy=False)
    if y_train.min() == y_train.max():
        raise DataError(source, "y_train", f"has one class only (label {y_train[0]})")
    return y_train, y_test, arrays.num_outputs or int(max(y_train.max(), y_test.max())) + 1


def _check_targets(y: np.ndarray, name: str, rows: int, source: str) -> np.ndarray:
    """Regression targets: numeric, finite, 1-D or 2-D, one row per input row; returned as
    (N, k)."""
    _check_numeric(y, name, source)
    if y.ndim not in (1, 2):
        raise DataError(source, name, f"has shape {y.shape}: targets are (N,) or (N, k)")
    _check_rows(y, name, rows, source)
    if y.size == 0:
        raise DataError(source, name, f"is empty (shape {y.shape})")
    _check_finite(y, name, source)
    return y.reshape(rows, -1)


def _check_regression(
    arrays: Arrays, num_train: int, num_test: int, source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(y_train, y_test as (N, k), k) of a regression split."""
    y_train = _check_targets(arrays.y_train, "y_train", num_train, source)
    y_test = _check_targets(arrays.y_test, "y_test", num_test, source)
    if y_test.shape[1] != y_train.shape[1]:
        raise DataError(
            source, "y_test", f"has {y_test.shape[1]} target columns, y_train {y_train.shape[1]}"
        )
    if arrays.num_outputs and y_train.shape[1] != arrays.num_outputs:
        raise DataError(
            source, "y_train", f"has {y_train.shape[1]} columns for {arrays.num_outputs} outputs"
        )
    return y_train, y_test, y_train.shape[1]


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(seed: int, num_samples: int, train_split: float) -> Arrays:
    """MNIST-1D's split, made once per machine (an on-disk cache keyed by the parameters and
    the mnist1d version) and once per process (in memory)."""
    key = {
        "seed": seed,
        "num_samples": num_samples,
        "train_split": train_split,
        "mnist1d": importlib.metadata.version("mnist1d"),
    }
    raw = cached_arrays("mnist1d", key, lambda: _make_mnist1d(seed, num_samples, train_split))
    arrays = Arrays(raw["x"], raw["y"], raw["x_test"], raw["y_test"], CLASSIFICATION, 10)
    for a in (arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test):
        a.setflags(write=False)  # cached: shared between runs of one process
    return arrays


def _make_mnist1d(seed: int, num_samples: int, train_split: float) -> dict[str, np.ndarray]:
    import mnist1d.data

    # make_dataset reseeds Python's and NumPy's global generators: put them back afterwards.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        args = mnist1d.data.get_dataset_args()
        args.seed, args.num_samples, args.train_split = seed, num_samples, train_split
        raw = mnist1d.data.make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}


def _mnist1d_split(num_samples: int, train_split: float) -> tuple[int, int]:
    """(num_train, num_test) as mnist1d.data.make_dataset splits: num_samples // 10 samples
    per class, the first int(total * train_split) of them for training."""
    total = num_samples // MNIST1D_CLASSES * MNIST1D_CLASSES
    num_train = int(total * train_split)
    return num_train, total - num_train


@DATASETS.register_option
@dataclass
class MNIST1D(Data):
    """MNIST-1D (Greydanus & Kobak 2020): 40-dim signals of 10 digit templates, generated offline.

    Defaults as in the mnist1d package: 5000 samples, 4000 train / 1000 test, seed 42.
    """

    name: str = "mnist1d"
    seed: int = 42
    num_samples: int = 5000
    train_split: float = 0.8

    def arrays(self) -> Arrays:
        return _mnist1d_arrays(self.seed, self.num_samples, self.train_split)

    def sizes(self) -> tuple[int, int, int, int]:
        length = 40  # mnist1d's final_seq_length
        return length, MNIST1D_CLASSES, *_mnist1d_split(self.num_samples, self.train_split)

    def check(self, key: str = "data") -> None:
        """Besides the ranges: at least one training sample per class and a test set."""
        num_train, num_test = _mnist1d_split(self.num_samples, self.train_split)
        if num_train < MNIST1D_CLASSES or num_test < 1:
            raise ConfigError(
                f"{key}.train_split",
                self.train_split,
                f"a fraction leaving >= {MNIST1D_CLASSES} training samples (one per class) "
                "and >= 1 test sample",
                f"{num_train} training and {num_test} test samples",
            )


def _digits_split(test_fraction: float) -> tuple[int, int]:
    """(num_train, num_test) of the digits as scikit-learn's train_test_split cuts them."""
    num_test = math.ceil(test_fraction * DIGITS_SAMPLES)
    return DIGITS_SAMPLES - num_test, num_test


@DATASETS.register_option
@dataclass
class Digits(Data):
    """scikit-learn's shipped 8x8 digits: 1797 images (64 pixels, values 0..16), 10 classes.

    A stratified split with ``test_fraction`` of the images held out.
    """

    name: str = "digits"
    test_fraction: float = 0.25
    seed: int = 0

    def arrays(self) -> Arrays:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=self.test_fraction, random_state=self.seed, stratify=y
        )
        return Arrays(x_tr, y_tr, x_te, y_te, CLASSIFICATION, DIGITS_CLASSES)

    def sizes(self) -> tuple[int, int, int, int]:
        return 8 * 8, DIGITS_CLASSES, *_digits_split(self.test_fraction)

    def check(self, key: str = "data") -> None:
        """Besides the ranges: a stratified split needs one image per class in each split."""
        num_train, num_test = _digits_split(self.test_fraction)
        if min(num_train, num_test) < DIGITS_CLASSES:
            raise ConfigError(
                f"{key}.test_fraction",
                self.test_fraction,
                f"a fraction leaving >= {DIGITS_CLASSES} of the {DIGITS_SAMPLES} images "
                "(one per class) in each split",
                f"{num_train} training and {num_test} test images",
            )


@DATASETS.register_option
@dataclass
class Quadratic(Data):
    """The classic regression demo: y = x^2 + noise * U(0, 1).

    Training inputs are ``num_train`` evenly spaced points of [-1, 1] (100 in the classic
    demo); test inputs are ``num_test`` uniform draws of [-1, 1] with fresh noise.
    """

    name: str = "quadratic"
    num_train: int = 100
    num_test: int = 100
    noise: float = 0.2
    seed: int = 0

    def task(self) -> str:
        return REGRESSION

    def arrays(self) -> Arrays:
        rng = np.random.default_rng(self.seed)
        x_train = np.linspace(-1.0, 1.0, self.num_train)
        x_test = rng.uniform(-1.0, 1.0, self.num_test)

        def target(x: np.ndarray) -> np.ndarray:
            return x**2 + self.noise * rng.uniform(0.0, 1.0, x.shape)

        y_train, y_test = target(x_train), target(x_test)
        return Arrays(
            x_train[:, None], y_train[:, None], x_test[:, None], y_test[:, None], REGRESSION, 1
        )

    def sizes(self) -> tuple[int, int, int, int]:
        return 1, 1, self.num_train, self.num_test

    def check(self, key: str = "data") -> None:
        if self.num_train < 2:
            raise ConfigError(f"{key}.num_train", self.num_train, "an integer >= 2")


@DATASETS.register_option
@dataclass
class Teacher(Data):
    """A random teacher network labels Gaussian inputs x ~ N(0, I_in_dim).

    The teacher is an MLP with ``depth`` hidden layers of ``width`` units, activation
    ``activation``, weights N(0, sigma_w2 / fan_in) and biases N(0, sigma_b2). Classification:
    the label is the argmax of its ``num_outputs`` outputs. Regression: the targets are its
    outputs plus ``noise`` * N(0, 1).
    """

    name: str = "teacher"
    task_type: str = CLASSIFICATION
    in_dim: int = 20
    num_outputs: int = 10
    depth: int = 2
    width: int = 64
    activation: str = "tanh"
    sigma_w2: float = 1.5
    sigma_b2: float = 0.05
    num_train: int = 2000
    num_test: int = 500
    noise: float = 0.0
    seed: int = 0

    def task(self) -> str:
        return self.task_type

    def arrays(self) -> Arrays:
        rng = np.random.default_rng(self.seed)
        phi = ACTIVATIONS[self.activation].phi
        widths = [self.in_dim] + [self.width] * self.depth + [self.num_outputs]
        layers = [
            (
                rng.normal(0, math.sqrt(self.sigma_w2 / n_in), (n_out, n_in)),
                rng.normal(0, math.sqrt(self.sigma_b2), n_out),
            )
            for n_in, n_out in itertools.pairwise(widths)
        ]

        def teacher(x: np.ndarray) -> np.ndarray:
            for i, (w, b) in enumerate(layers):
                x = x @ w.T + b
                x = phi(x) if i < len(layers) - 1 else x
            return x

        x_train = rng.standard_normal((self.num_train, self.in_dim))
        x_test = rng.standard_normal((self.num_test, self.in_dim))
        f_train, f_test = teacher(x_train), teacher(x_test)
        if self.task_type == CLASSIFICATION:
            return Arrays(
                x_train,
                f_train.argmax(1),
                x_test,
                f_test.argmax(1),
                CLASSIFICATION,
                self.num_outputs,
            )
        y_train = f_train + self.noise * rng.standard_normal(f_train.shape)
        y_test = f_test + self.noise * rng.standard_normal(f_test.shape)
        return Arrays(x_train, y_train, x_test, y_test, REGRESSION, self.num_outputs)

    def sizes(self) -> tuple[int, int, int, int]:
        return self.in_dim, self.num_outputs, self.num_train, self.num_test

    def making_bytes(self) -> int:
        """The teacher's float64 weights, and two layers' outputs of every sample at once."""
        widths = [self.in_dim] + [self.width] * self.depth + [self.num_outputs]
        weights = sum(i * o + o for i, o in itertools.pairwise(widths))
        return 8 * (weights + 2 * (self.num_train + self.num_test) * max(widths))

    def check(self, key: str = "data") -> None:
        """Besides the ranges: classification needs a training sample per class (the class
        count may not exceed the training samples; see check_arrays)."""
        if self.task_type not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"{key}.task_type", self.task_type, (CLASSIFICATION, REGRESSION))
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"{key}.activation", self.activation, ACTIVATIONS.names())
        if self.task_type == CLASSIFICATION and self.num_outputs < 2:
            raise ConfigError(
                f"{key}.num_outputs", self.num_outputs, "an integer >= 2 for classification"
            )
        if self.task_type == CLASSIFICATION and self.num_train < self.num_outputs:
            raise ConfigError(
                f"{key}.num_train",
                self.num_train,
                f"an integer >= num_outputs ({self.num_outputs}) for classification",
                "fewer training samples than classes",
            )


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _read_npz(path: str) -> list[np.ndarray]:
    """x_train, y_train, x_test, y_test of the .npz file ``path``, read without unpickling;
    DataError for a file that is not a zip archive, lacks one of them, or whose array cannot
    be read."""
    if not zipfile.is_zipfile(path):
        raise DataError(path, "", "is not an .npz file (not a zip archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged archive: BadZipFile, OSError, ValueError, ...
        raise DataError(path, "", f"cannot be read as .npz ({_one_line(exc)})") from exc
    with npz:
        missing = [k for k in NPZ_KEYS if k not in npz.files]
        if missing:
            has = ", ".join(npz.files) or "no arrays"
            raise DataError(path, "", f"lacks {', '.join(missing)} (the file has {has})")
        return [_read_member(npz, k, path) for k in NPZ_KEYS]


def _read_member(npz: np.lib.npyio.NpzFile, key: str, path: str) -> np.ndarray:
    """The array ``key`` of an open .npz file; DataError when it cannot be read without
    unpickling (an object array) or is not a .npy array at all."""
    try:
        a = npz[key]
    except Exception as exc:  # ValueError for object arrays, damaged data, ...
        raise DataError(path, key, f"cannot be read ({_one_line(exc)})") from exc
    if not isinstance(a, np.ndarray):  # NpzFile hands back a member without .npy magic as bytes
        raise DataError(path, key, "cannot be read (not a .npy array)")
    return a


@functools.lru_cache(maxsize=4)
def _npz_arrays(path: str, size: int, mtime_ns: int, task: str) -> Arrays:
    """The checked arrays of the .npz file ``path``, read once per process per file version:
    ``size`` and ``mtime_ns`` are part of the cache key, so a rewritten file is read again."""
    x_tr, y_tr, x_te, y_te = _read_npz(path)
    arrays = check_arrays(Arrays(x_tr, y_tr, x_te, y_te, task, 0), path)
    for a in (arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test):
        a.setflags(write=False)  # cached: shared between runs of one process
    return arrays


@DATASETS.register_option
@dataclass
class NPZ(Data):
    """Your own data from a NumPy .npz file with arrays x_train, y_train, x_test, y_test.

    Inputs are flattened to (N, d). Classification: labels (N,) of whole numbers >= 0
    (integers, or floats such as 2.0), max(label) + 1 classes. Regression: targets (N,) or
    (N, k). The file is read and checked (:func:`check_arrays`) once per process per file
    version, at ``check()``; ``arrays()`` and ``sizes()`` reuse what was read.
    """

    name: str = "npz"
    path: str = ""
    task_type: str = CLASSIFICATION

    def task(self) -> str:
        return self.task_type

    def source(self) -> str:
        return str(Path(self.path).expanduser().resolve())

    def arrays(self) -> Arrays:
        path = self.source()
        stat = Path(path).stat()
        return _npz_arrays(path, stat.st_size, stat.st_mtime_ns, self.task_type)

    def sizes(self) -> tuple[int, int, int, int]:
        a = self.arrays()
        return a.x_train.shape[1], a.num_outputs, len(a.x_train), len(a.x_test)

    def check(self, key: str = "data") -> None:
        """Besides the task type: an existing file whose arrays pass check_arrays."""
        if self.task_type not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"{key}.task_type", self.task_type, (CLASSIFICATION, REGRESSION))
        allowed = "an existing .npz file with x_train, y_train, x_test, y_test"
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(f"{key}.path", self.path or "''", allowed, "no such file")
        try:
            self.arrays()
        except DataError as err:
            raise ConfigError(f"{key}.path", self.source(), allowed, err.detail) from None


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale every input feature to mean 0, std 1 over the training set.

    Features that are constant on the training set are only centred (their std counts as 1).
    """
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def load_data(data: Data, device: torch.device, dtype: torch.dtype) -> DataSet:
    """Make and check ``data``'s arrays (:func:`check_arrays`), standardise the inputs, and
    put tensors on ``device``."""
    a = check_arrays(data.arrays(), data.source())
    x_train, x_test = np.asarray(a.x_train, float), np.asarray(a.x_test, float)
    if data.standardize:
        x_train, x_test = standardize(x_train, x_test)

    def inputs(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(x, dtype=dtype, device=device)

    def targets(y: np.ndarray) -> torch.Tensor:
        if a.task == CLASSIFICATION:
            return torch.tensor(np.asarray(y, dtype=np.int64), device=device)
        return torch.tensor(np.asarray(y, dtype=float), dtype=dtype, device=device)

    return DataSet(
        inputs(x_train),
        targets(a.y_train),
        inputs(x_test),
        targets(a.y_test),
        a.task,
        a.num_outputs,
    )
