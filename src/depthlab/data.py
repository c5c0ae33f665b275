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

The options live one per module (``dataset_mnist1d``, ``dataset_digits``,
``datasets_synthetic``, ``dataset_npz``) on the base and registry of ``dataset_registry``;
the arrays' rules in ``data_arrays``. This module registers them all and is the public
import path of every name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from depthlab.data_arrays import (
    CLASSIFICATION,
    MAX_INPUT,
    NUMERIC_KINDS,
    REGRESSION,
    Arrays,
    DataError,
    check_arrays,
)
from depthlab.dataset_digits import DIGITS_CLASSES, DIGITS_SAMPLES, Digits
from depthlab.dataset_mnist1d import MNIST1D, MNIST1D_CLASSES
from depthlab.dataset_npz import NPZ, NPZ_KEYS
from depthlab.dataset_registry import DATASETS, Data
from depthlab.datasets_synthetic import Quadratic, Teacher

__all__ = [
    "CLASSIFICATION",
    "DATASETS",
    "DIGITS_CLASSES",
    "DIGITS_SAMPLES",
    "MAX_INPUT",
    "MNIST1D",
    "MNIST1D_CLASSES",
    "NPZ",
    "NPZ_KEYS",
    "NUMERIC_KINDS",
    "REGRESSION",
    "Arrays",
    "Data",
    "DataError",
    "DataSet",
    "Digits",
    "Quadratic",
    "Teacher",
    "check_arrays",
    "load_data",
    "standardize",
]


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
