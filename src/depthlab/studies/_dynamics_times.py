"""The dynamics study's measurement: the steps to criterion T of each run, and per cell
(activation, init, depth, seed) the best learning rate of the grid.

T is the first step at which the training loss (the whole training set, evaluated every
``eval_every`` steps) is at or below ``CRITERION[activation]``, placed by linear
interpolation between that evaluation and the one before: with losses J_{i-1} > c >= J_i
at steps t_{i-1}, t_i, T = t_{i-1} + (J_{i-1} - c) / (J_{i-1} - J_i) (t_i - t_{i-1}). A run
that never gets there, or diverges first, is censored: T = inf, known only to exceed its
last step. Per cell, T* = min over lr of T, and the lrs whose T <= SENSITIVITY T*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from depthlab.frames import network_curve
from depthlab.results import Sweep

KEYS = ["activation", "init", "depth", "lr", "seed", "steps", "data", "status"]
CELL = ["activation", "init", "depth", "seed"]
# Training-loss criteria on MNIST-1D, fixed from the pilot before the grid. linear: 0.1
# above the best linear classifier's loss (1.60 at every depth of the pilot), reached within
# 50-150 steps. tanh: 1.40, below anything a linear map reaches, so it needs the tanh.
CRITERION = {"linear": 1.70, "tanh": 1.40}
DATA = "mnist1d"  # the criteria hold for this data set only
SENSITIVITY = 2.0  # an lr is "good" when its T is within this factor of the cell's best
INIT_ORDER = ["orthogonal", "gaussian"]


def steps_to(steps: np.ndarray, losses: np.ndarray, criterion: float) -> float:
    """The first step with loss <= criterion, interpolated linearly in loss between that
    evaluation and the previous one; inf when no evaluation before a non-finite one gets
    there (censored)."""
    for i, loss in enumerate(losses):
        if not np.isfinite(loss):
            return float("inf")
        if loss <= criterion:
            if i == 0:
                return float(steps[0])
            before, after = losses[i - 1], loss
            fraction = (before - criterion) / (before - after)
            return float(steps[i - 1] + fraction * (steps[i] - steps[i - 1]))
    return float("inf")


def times(sweep: Sweep) -> pd.DataFrame:
    """One row per run of an activation with a criterion: its keys, ``criterion`` and
    ``time`` T (inf when censored)."""
    curves = network_curve(sweep, "loss", KEYS)
    curves = curves[curves["activation"].isin(list(CRITERION))]
    rows = []
    for run_id, run in curves.groupby("run_id", sort=False):
        first = run.iloc[0]
        criterion = CRITERION[first["activation"]]
        time = steps_to(run["step"].to_numpy(), run["value"].to_numpy(float), criterion)
        rows.append(
            {"run_id": run_id, **first[KEYS].to_dict(), "criterion": criterion, "time": time}
        )
    return pd.DataFrame(rows, columns=["run_id", *KEYS, "criterion", "time"])


def best(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell (activation, init, depth, seed): ``best_time`` T* = min over lr of T, the
    ``best_lr``, the good lr range ``lr_low``..``lr_high`` (T <= SENSITIVITY T*), the grid's
    ``lr_count`` and ``at_edge`` (the best lr is the grid's smallest or largest)."""
    rows = []
    for cell, runs in table.groupby(CELL):
        runs = runs.sort_values("lr")
        fastest = runs["time"].min()
        good = runs[runs["time"] <= SENSITIVITY * fastest] if np.isfinite(fastest) else runs[:0]
        best_lr = runs.loc[runs["time"].idxmin(), "lr"] if np.isfinite(fastest) else np.nan
        rows.append(
            {
                **dict(zip(CELL, cell, strict=True)),
                "best_time": fastest,
                "best_lr": best_lr,
                "lr_low": good["lr"].min() if len(good) else np.nan,
                "lr_high": good["lr"].max() if len(good) else np.nan,
                "lr_count": len(runs),
                "at_edge": len(runs) > 1 and best_lr in (runs["lr"].min(), runs["lr"].max()),
                "steps": runs["steps"].max(),
            }
        )
    return pd.DataFrame(rows)


def summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (activation, init, depth): the median T* over seeds, its range (low, high), the
    seeds and how many were censored."""
    grouped = cells.groupby(["activation", "init", "depth"])["best_time"]
    table = grouped.agg(median="median", low="min", high="max", seeds="count")
    table["censored"] = grouped.agg(lambda t: int(np.isinf(t).sum()))
    return table.reset_index()
