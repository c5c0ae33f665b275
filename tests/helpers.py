"""Small helpers shared by the tests (imported as ``helpers``; pytest puts tests/ on the path)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from depthlab.config import Config
from depthlab.data import Data
from depthlab.inits import Gaussian
from depthlab.probes.schedule import MinimalProbes


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
