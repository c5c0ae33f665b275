"""MNIST-1D (Greydanus & Kobak 2020), generated offline by the ``mnist1d`` package and
cached: made once per machine (on disk, keyed by its parameters and the package version)
and once per process (in memory)."""

from __future__ import annotations

import functools
import importlib.metadata
import random
from dataclasses import dataclass

import numpy as np

from depthlab.cache import cached_arrays
from depthlab.data_arrays import CLASSIFICATION, Arrays
from depthlab.dataset_registry import DATASETS, Data
from depthlab.errors import ConfigError

MNIST1D_CLASSES = 10


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
    seed: int = 42  # the data set's own draw and split (apart from the network's seed)
    num_samples: int = 5000  # samples generated, before the train/test split
    train_split: float = 0.8  # fraction of the samples used for training

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
