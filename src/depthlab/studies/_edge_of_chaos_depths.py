"""The edge-of-chaos study's measurement: which runs trained, and the trainable depth per
seed and per sigma_w2.

A run has trained when it ends without diverging at a final training accuracy (the whole
training set) of at least TRAINED_ACCURACY, twice chance on mnist1d's 10 classes. With the
grid's depths d_1 < ... < d_n and d_k the deepest depth a seed trained at, its trainable
depth is L = sqrt(d_k d_{k+1}), the geometric midpoint of the step where training stops;
censored 'above' (L = d_n, a lower bound) when d_n trained, 'below' (L = d_1) when no depth
did. Per sigma_w2, L_max = exp(mean over seeds of log L), with the seeds' range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from depthlab import theory
from depthlab.frames import network_curve
from depthlab.results import Sweep

KEYS = ["activation", "init.sigma_w2", "init.sigma_b2", "depth", "seed", "status"]
CHANCE = 0.1  # mnist1d has 10 balanced classes
TRAINED_ACCURACY = 2 * CHANCE
PAPER_CONSTANT = 6.0  # Schoenholz et al.: nets train up to about 6 xi_c layers


def trainability(sweep: Sweep) -> pd.DataFrame:
    """One row per run: sigma_w2, sigma_b2, depth, seed, final accuracy, loss drop, xi_c, the
    paper's trainable depth 6 xi_c, whether it trained and whether 6 xi_c predicts it."""
    runs = sweep.runs
    if runs.empty:
        return pd.DataFrame()
    first = network_curve(sweep, "loss", KEYS).groupby("run_id")["value"].first()
    table = runs[["run_id", *KEYS, "final_accuracy", "final_loss"]].copy()
    table = table.rename(columns={"init.sigma_w2": "sigma_w2", "init.sigma_b2": "sigma_b2"})
    table["loss_drop"] = 1 - table["final_loss"] / table["run_id"].map(first)
    cells = set(zip(table["activation"], table["sigma_w2"], table["sigma_b2"], strict=True))
    xi = {key: theory.xi_c(*key) for key in cells}
    keys = zip(table["activation"], table["sigma_w2"], table["sigma_b2"], strict=True)
    table["xi_c"] = [xi[key] for key in keys]
    table["trainable_depth"] = PAPER_CONSTANT * table["xi_c"]
    table["trained"] = (table["status"] == "ok") & (table["final_accuracy"] >= TRAINED_ACCURACY)
    table["predicted"] = table["depth"] < table["trainable_depth"]
    table["agrees"] = table["trained"] == table["predicted"]
    return table.sort_values(["sigma_w2", "depth", "seed"]).reset_index(drop=True)


def seed_depths(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (sigma_w2, seed): ``depth_limit`` L, the geometric mean of the deepest
    trained depth and the next depth of the grid, and ``censored``: 'above' when the
    deepest depth of the grid trained (L is a lower bound), 'below' when none did."""
    depths = np.sort(table["depth"].unique())
    rows = []
    for (sigma_w2, seed), runs in table.groupby(["sigma_w2", "seed"]):
        trained = set(runs.loc[runs["trained"], "depth"])
        deepest = max(trained) if trained else None
        if deepest is None:
            limit, censored = float(depths[0]), "below"
        elif deepest == depths[-1]:
            limit, censored = float(depths[-1]), "above"
        else:
            following = depths[np.searchsorted(depths, deepest) + 1]
            limit, censored = float(np.sqrt(deepest * following)), ""
        rows.append(
            {"sigma_w2": sigma_w2, "seed": seed, "depth_limit": limit, "censored": censored}
        )
    return pd.DataFrame(rows)


def depth_limits(table: pd.DataFrame) -> pd.DataFrame:
    """One row per sigma_w2: xi_c, ``L_max`` (geometric mean of the seeds' L), its range over
    seeds (``L_low``, ``L_high``), the number of seeds and ``censored`` (any seed's)."""
    per_seed = seed_depths(table)
    xi = table.groupby("sigma_w2")["xi_c"].first()
    rows = []
    for sigma_w2, seeds in per_seed.groupby("sigma_w2"):
        limits = seeds["depth_limit"].to_numpy()
        marks = set(seeds["censored"]) - {""}
        rows.append(
            {
                "sigma_w2": sigma_w2,
                "xi_c": xi[sigma_w2],
                "L_max": float(np.exp(np.log(limits).mean())),
                "L_low": float(limits.min()),
                "L_high": float(limits.max()),
                "seeds": len(limits),
                "censored": "above" if "above" in marks else ("below" if marks else ""),
            }
        )
    return pd.DataFrame(rows)
