"""Synthetic data sets made from their seed: the quadratic regression demo and a random
teacher network."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from depthlab.activations import ACTIVATIONS
from depthlab.data_arrays import CLASSIFICATION, REGRESSION, Arrays
from depthlab.dataset_registry import DATASETS, Data
from depthlab.errors import ConfigError


@DATASETS.register_option
@dataclass
class Quadratic(Data):
    """The classic regression demo: y = x^2 + noise * U(0, 1).

    Training inputs are ``num_train`` evenly spaced points of [-1, 1] (100 in the classic
    demo); test inputs are ``num_test`` uniform draws of [-1, 1] with fresh noise.
    """

    name: str = "quadratic"
    num_train: int = 100  # training samples
    num_test: int = 100  # test samples
    noise: float = 0.2  # noise added to the targets: y = x^2 + noise * U(0, 1)
    seed: int = 0  # the data set's own draw and split (apart from the network's seed)

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
    task_type: str = CLASSIFICATION  # classification or regression
    in_dim: int = 20  # input features
    num_outputs: int = 10  # outputs (classes, or regression targets)
    depth: int = 2  # the teacher network's hidden layers
    width: int = 64  # the teacher network's units per hidden layer
    activation: str = "tanh"  # the teacher network's activation
    sigma_w2: float = 1.5  # the teacher's weight variance times fan_in
    sigma_b2: float = 0.05  # the teacher's bias variance
    num_train: int = 2000  # training samples
    num_test: int = 500  # test samples
    noise: float = 0.0  # noise added to the targets (regression): noise * N(0, 1)
    seed: int = 0  # the data set's own draw and split (apart from the network's seed)

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
