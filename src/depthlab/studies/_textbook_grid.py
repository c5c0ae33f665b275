"""The textbook sweep as a grid of learning rates: per-run test accuracies, each loss's best
lr, and 95% bootstrap intervals over seeds paired across the two losses.

A seed fixes the initial weights and the batch order, so seed s of the squared loss and
seed s of cross-entropy start from the same net: differences are taken per seed (paired)
and a bootstrap resamples whole seeds, the same resample serving both losses. Where a
number depends on which lr is best (the final-accuracy difference, the lr ratio), each
resample picks its best lrs again, so the interval includes that selection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from depthlab.results import Sweep

LOSSES = ("squared", "cross_entropy")
CHANCE = 0.1  # the accuracy a run without a final accuracy (diverged, failed) is given
MIN_SEEDS = 3  # paired seeds needed for an interval
MIN_LRS = 3  # claim (4) needs a grid with an interior best lr for each loss
RESAMPLES = 2000


def network_rows(sweep: Sweep, metric: str) -> pd.DataFrame:
    """The rows (run_id, step, value) of a network-level metric (layer 0), sorted by step;
    empty, with those columns, when the sweep has none."""
    rows = sweep.metrics
    if rows.empty or "metric" not in rows:
        return pd.DataFrame(columns=["run_id", "step", "value"])
    rows = rows[(rows["metric"] == metric) & (rows["layer"] == 0)]
    return rows[["run_id", "step", "value"]].sort_values(["run_id", "step"])


def lr_table(sweep: Sweep) -> pd.DataFrame:
    """One row per run: run_id, loss, lr, seed, ``final`` test accuracy (CHANCE where there
    is none), ``early`` test accuracy at the run's first evaluation after step 0 and that
    ``early_step``. Empty without the run columns."""
    columns = ["run_id", "loss", "lr", "seed", "final", "early", "early_step"]
    needed = {"run_id", "loss_resolved", "lr", "seed", "final_test_accuracy"}
    if sweep.runs.empty or not needed <= set(sweep.runs.columns):
        return pd.DataFrame(columns=columns)
    table = sweep.runs[list(needed)].rename(
        columns={"loss_resolved": "loss", "final_test_accuracy": "final"}
    )
    rows = network_rows(sweep, "test_accuracy")
    rows = rows[rows["step"] > 0].groupby("run_id").first()
    table["early"] = table["run_id"].map(rows["value"])
    table["early_step"] = table["run_id"].map(rows["step"])
    table[["final", "early"]] = table[["final", "early"]].astype(float).fillna(CHANCE)
    return table[columns].reset_index(drop=True)


def best_lrs(table: pd.DataFrame) -> dict[str, float]:
    """Each loss's lr with the highest mean final test accuracy over its seeds (the smaller
    lr on a tie)."""
    means = table.groupby(["loss", "lr"])["final"].mean()
    return {loss: float(part.idxmax()[1]) for loss, part in means.groupby(level="loss")}


def paired(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """``value`` with one row per seed and one column per (loss, lr), keeping the seeds that
    have every column (the pairs a bootstrap over seeds may resample)."""
    return table.pivot_table(index="seed", columns=["loss", "lr"], values=value).dropna()


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """The mean of ``values`` (one per seed, non-finite ones dropped) and its 95% percentile
    bootstrap interval: RESAMPLES resamples of the seeds with replacement, the 2.5th and
    97.5th percentiles of their means. NaN for all three without a finite value."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(axis=1)
    return float(values.mean()), *map(float, np.percentile(means, [2.5, 97.5]))


def selection_bootstrap(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Resamples of seeds (paired across losses): in each, both losses' best lrs picked
    again from the resampled mean final accuracies, ``difference`` = CE - squared at those
    and ``ratio`` = best squared lr / best CE lr. One row per resample."""
    wide = paired(table, "final")
    if len(wide) < MIN_SEEDS:
        return pd.DataFrame(columns=["difference", "ratio"])
    means = wide.to_numpy()[rng.integers(0, len(wide), (RESAMPLES, len(wide)))].mean(axis=1)
    picked = {}
    for loss in LOSSES:
        cols = np.flatnonzero(wide.columns.get_level_values("loss") == loss)
        best = cols[np.argmax(means[:, cols], axis=1)]
        picked[loss] = (means[np.arange(RESAMPLES), best], wide.columns[best].get_level_values(1))
    return pd.DataFrame(
        {
            "difference": picked["cross_entropy"][0] - picked["squared"][0],
            "ratio": np.asarray(picked["squared"][1]) / np.asarray(picked["cross_entropy"][1]),
        }
    )


def paired_difference(rows: pd.DataFrame, value: pd.Series) -> pd.Series:
    """Per seed s, value(cross_entropy, s) - value(squared, s), over the seeds with both:
    ``value`` is indexed like ``rows``, which give each value's seed and loss (a seed with
    several rows of one loss is averaged). Empty without both losses."""
    wide = pd.DataFrame({"seed": rows["seed"], "loss": rows["loss"], "v": value}).pivot_table(
        index="seed", columns="loss", values="v"
    )
    if not set(LOSSES) <= set(wide.columns):
        return pd.Series(dtype=float)
    return (wide["cross_entropy"] - wide["squared"]).dropna()


def final_difference(
    table: pd.DataFrame, best: dict[str, float], rng: np.random.Generator
) -> dict[str, float]:
    """CE - squared final test accuracy at the best lrs (mean over paired seeds) and the
    best-lr ratio squared / CE, each with its selection-bootstrap interval."""
    wide = paired(table, "final")
    point = wide[("cross_entropy", best["cross_entropy"])] - wide[("squared", best["squared"])]
    boot = selection_bootstrap(table, rng)
    numbers = {
        "final_difference": float(point.mean()),
        "lr_ratio": best["squared"] / best["cross_entropy"],
    }
    for name, column in (("final_difference", "difference"), ("lr_ratio", "ratio")):
        low, high = np.percentile(boot[column], [2.5, 97.5]) if len(boot) else (np.nan,) * 2
        numbers |= {f"{name}_low": float(low), f"{name}_high": float(high)}
    return numbers


def grid_problem(table: pd.DataFrame, best: dict[str, float]) -> str:
    """Why claim (4) cannot be judged on this grid ('' when it can): the two losses must
    share one grid of at least MIN_LRS lrs, with each loss's best lr inside it."""
    grids = {loss: sorted(part["lr"].unique()) for loss, part in table.groupby("loss")}
    if grids["squared"] != grids["cross_entropy"]:
        return "the two losses were swept over different learning rates (no equal budget)"
    grid = grids["squared"]
    if len(grid) < MIN_LRS:
        return f"the sweep has {len(grid)} learning rate(s) per loss, fewer than {MIN_LRS}"
    edge = [loss for loss in LOSSES if best[loss] in (grid[0], grid[-1])]
    if edge:
        return f"the best lr of {', '.join(edge)} lies on the edge of the grid {grid}"
    return ""
