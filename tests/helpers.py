"""Small helpers shared by the tests (imported as ``helpers``; pytest puts tests/ on the path)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from depthlab.config import Config
from depthlab.data import CLASSIFICATION, Data, Teacher
from depthlab.inits import Gaussian
from depthlab.optimizers import Momentum
from depthlab.probes.schedule import MinimalProbes


def good_arrays(rng: np.random.Generator, task: str = CLASSIFICATION) -> dict[str, np.ndarray]:
    """The four arrays of a valid .npz data set: 50 training and 20 test samples of 4
    features, with 3 classes (classification) or 2 target columns (regression)."""
    y_train, y_test = rng.integers(0, 3, 50), rng.integers(0, 3, 20)
    if task != CLASSIFICATION:
        y_train, y_test = rng.normal(size=(50, 2)), rng.normal(size=(20, 2))
    return {
        "x_train": rng.normal(size=(50, 4)),
        "y_train": y_train,
        "x_test": rng.normal(size=(20, 4)),
        "y_test": y_test,
    }


def per_layer(frame: pd.DataFrame, metric: str, seed: int = 0) -> np.ndarray:
    """One metric's values ordered by layer, for one seed (replica)."""
    rows = frame[(frame["metric"] == metric) & (frame["seed"] == seed)].sort_values("layer")
    return rows["value"].to_numpy()


def at_init(data: Data, num_train: int, depth: int, width: int, sigma_w2: float = 1.5) -> Config:
    """A tanh net measured at initialisation only, full batch, float64, minimal probes."""
    return Config(
        depth=depth,
        width=width,
        activation="tanh",
        data=data,
        batch_size=num_train,
        steps=0,
        dtype="float64",
        init=Gaussian(sigma_w2=sigma_w2, sigma_b2=0.05),
        probes=MinimalProbes(),
    )


def relu_momentum(**keys) -> Config:
    """A depth-4, width-16 ReLU net (sigma_w2 = 2) trained by momentum SGD for 60 steps on a
    small teacher task: the base of the batched-group tests (``keys`` override)."""
    base = {
        "depth": 4,
        "width": 16,
        "activation": "relu",
        "init": Gaussian(sigma_w2=2.0),
        "optimizer": Momentum(momentum=0.9),
        "lr": 0.05,
        "steps": 60,
        "eval_every": 20,
        "batch_size": 32,
        "data": Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64),
    }
    return Config(**{**base, **keys})


def hold(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock for ``seconds`` (ready when it prints)."""
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from depthlab import locks
        with locks.locked([Path({str(folder)!r})]):
            print("held", flush=True)
            time.sleep({seconds})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process
