"""Registered data sets: the ``data`` config group.

Every data set is generated locally or shipped with a package (nothing is downloaded).
Each option is a dataclass whose fields are its parameters and whose ``arrays()`` returns
NumPy arrays; :func:`load_data` then standardises the inputs with the training set's
per-feature mean and standard deviation and puts tensors on the run's device and dtype.
Data are seeded by the data set's own ``seed`` field, not the run's ``seed``, so every
seed of a sweep trains on the same data and only the network's draw changes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from depthlab.activations import ACTIVATIONS
from depthlab.cache import cached_arrays
from depthlab.errors import ConfigError
from depthlab.registry import Registry

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class Arrays:
    """A train/test split as NumPy arrays: x (N, d); y (N,) class labels or (N, k) targets."""

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

    def task(self) -> str:
        """``classification`` or ``regression`` (known before any data are made)."""
        return CLASSIFICATION

    def check(self, key: str = "data") -> None:
        """Raise ConfigError for a parameter out of range."""


DATASETS: Registry[type[Data]] = Registry("data")


def _require_count(key: str, value: int, minimum: int = 1) -> None:
    if not (isinstance(value, int) and value >= minimum):
        raise ConfigError(key, value, f"an integer >= {minimum}")


def _require_seed(key: str, value: int) -> None:
    """Data seeds feed NumPy and scikit-learn generators, which take 0..2^32-1."""
    if not (isinstance(value, int) and 0 <= value < 2**32):
        raise ConfigError(key, value, "an integer in 0..4294967295")


def _require_fraction(key: str, value: float) -> None:
    if not (math.isfinite(value) and 0 < value < 1):
        raise ConfigError(key, value, "a number strictly between 0 and 1")


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

    def check(self, key: str = "data") -> None:
        _require_seed(f"{key}.seed", self.seed)
        _require_count(f"{key}.num_samples", self.num_samples, 20)
        _require_fraction(f"{key}.train_split", self.train_split)
        num_train = int(self.num_samples * self.train_split)
        if not 2 <= num_train <= self.num_samples - 2:
            raise ConfigError(
                f"{key}.train_split",
                self.train_split,
                "a fraction leaving >= 2 training and >= 2 test samples",
            )


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
        return Arrays(x_tr, y_tr, x_te, y_te, CLASSIFICATION, 10)

    def check(self, key: str = "data") -> None:
        _require_seed(f"{key}.seed", self.seed)
        _require_fraction(f"{key}.test_fraction", self.test_fraction)


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

    def check(self, key: str = "data") -> None:
        _require_seed(f"{key}.seed", self.seed)
        _require_count(f"{key}.num_train", self.num_train, 2)
        _require_count(f"{key}.num_test", self.num_test)
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ConfigError(f"{key}.noise", self.noise, "a finite number >= 0")


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

    def check(self, key: str = "data") -> None:
        if self.task_type not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"{key}.task_type", self.task_type, (CLASSIFICATION, REGRESSION))
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"{key}.activation", self.activation, ACTIVATIONS.names())
        _require_seed(f"{key}.seed", self.seed)
        for field in ("in_dim", "depth", "width", "num_train", "num_test"):
            _require_count(f"{key}.{field}", getattr(self, field), 0 if field == "depth" else 1)
        _require_count(
            f"{key}.num_outputs", self.num_outputs, 2 if self.task_type == CLASSIFICATION else 1
        )
        for field in ("sigma_w2", "sigma_b2", "noise"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{key}.{field}", value, "a finite number >= 0")


@DATASETS.register_option
@dataclass
class NPZ(Data):
    """Your own data from a NumPy .npz file with arrays x_train, y_train, x_test, y_test.

    Inputs are flattened to (N, d). Integer targets of shape (N,) make a classification
    task with max(label) + 1 classes; float targets (N,) or (N, k) a regression task.
    """

    name: str = "npz"
    path: str = ""
    task_type: str = CLASSIFICATION

    def task(self) -> str:
        return self.task_type

    def arrays(self) -> Arrays:
        with np.load(Path(self.path).expanduser(), allow_pickle=False) as f:
            x_tr, y_tr, x_te, y_te = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
        if self.task_type == CLASSIFICATION:
            y_tr, y_te = y_tr.astype(np.int64), y_te.astype(np.int64)
            return Arrays(
                x_tr, y_tr, x_te, y_te, CLASSIFICATION, int(max(y_tr.max(), y_te.max())) + 1
            )
        y_tr, y_te = y_tr.reshape(len(y_tr), -1), y_te.reshape(len(y_te), -1)
        return Arrays(x_tr, y_tr, x_te, y_te, REGRESSION, y_tr.shape[1])

    def check(self, key: str = "data") -> None:
        if self.task_type not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"{key}.task_type", self.task_type, (CLASSIFICATION, REGRESSION))
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(
                f"{key}.path",
                self.path or "''",
                "an existing .npz file with x_train, y_train, x_test, y_test",
                "no such file",
            )


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale every input feature to mean 0, std 1 over the training set.

    Features that are constant on the training set are only centred (their std counts as 1).
    """
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def load_data(data: Data, device: torch.device, dtype: torch.dtype) -> DataSet:
    """Make ``data``'s arrays, standardise the inputs, and put tensors on ``device``."""
    a = data.arrays()
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
