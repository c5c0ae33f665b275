"""Finite width (Hanin 2018; Hanin & Nica 2019): at criticality the *mean* gradient is
depth-independent, but its seed-to-seed spread grows linearly in beta = sum_j 1/n_j.

The net: ReLU with He's init (sigma_w2 = 2, sigma_b2 = 0: chi = 1 at every layer), depth H
hidden layers of width n, so beta = H / n; one sample per net (batch_size = 1), at step 0.

Theory. Going back one hidden layer, ||delta^l||^2 / ||delta^{l+1}||^2 = (2/n) chi^2_K with
K ~ Bin(n, 1/2) active units: mean 1, variance 5/n. So over the H steps from the output to
layer 1, with steps independent (the gradient-independence approximation),

    Var_seeds[ln(||delta^1|| / ||delta^L||)] = H v(n) / 4,
    v(n) = E_K[psi_1(K / 2)] + Var_K[psi(K / 2)]   (K ~ Bin(n, 1/2) given K > 0)

(psi the digamma, psi_1 the trigamma function: log chi^2_k has mean psi(k/2) + ln 2 and
variance psi_1(k/2)). For large n, v(n) -> 5 / n: Hanin's linear growth, 5/4 beta. The
forward lengths behave alike: Var[ln q^H] = (5 (H - 1) + 2) / n + Var[ln q^1], about 5 beta
(q^H = mean_i (z_i^H)^2 at the last hidden layer).

Measured, per run: ln(delta_norm at layer 1 / delta_norm at layer L) and ln q^H from
preact_mean and preact_std at layer H (q = std^2 + mean^2), at step 0. Reduction: per
(depth, width) cell the variance over seeds (ddof 1); the slope of that variance against beta
(least squares with an intercept); and the pooled ratio of measured to predicted variance
(sum over cells of measured / sum of H v(n) / 4). Intervals: 95% percentile intervals of a
bootstrap over each cell's seeds. Nets with a non-finite log (a layer with no active unit
kills the gradient: probability about H 2^-n) are counted apart, as ``dead``.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import special, stats

from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

HANIN_SLOPE = 5 / 4  # Var[ln(||delta^1|| / ||delta^L||)] per unit of beta, large width
FORWARD_SLOPE = 5.0  # Var[ln q^H] per unit of beta, large width
SLOPE_RANGE = (1.0, 1.5)  # criterion 1: the slope's interval overlaps 5/4 +- 20%
RATIO_RANGE = (0.85, 1.15)  # criterion 2: the pooled measured / predicted overlaps 1 +- 15%
NEEDED = ("delta_norm", "preact_mean", "preact_std")  # the delta and preacts probes
MIN_SEEDS = 16
MIN_BETAS = 3
RESAMPLES = 1000


def step_variance(width: int) -> float:
    """v(n) = Var[ln((2/n) chi^2_K)], K ~ Bin(n, 1/2) given K > 0: the variance that one
    backward step through a critical ReLU layer of ``width`` units adds to ln ||delta||^2."""
    k = np.arange(1, width + 1)
    p = stats.binom.pmf(k, width, 0.5)
    p = p / p.sum()
    mean = special.digamma(k / 2)
    return float(
        np.sum(p * special.polygamma(1, k / 2)) + np.sum(p * mean**2) - np.sum(p * mean) ** 2
    )


def predicted_variance(depth: int, width: int) -> float:
    """Var_seeds[ln(||delta^1|| / ||delta^L||)] = depth v(width) / 4."""
    return depth * step_variance(width) / 4


def spread_table(sweep: Sweep) -> pd.DataFrame:
    """One row per run at step 0: depth, width, beta = depth / width, ``log_delta_ratio`` =
    ln(||delta^1|| / ||delta^L||), ``log_q`` = ln q^H at the last hidden layer. Empty
    without step-0 records of the ``delta`` and ``preacts`` probes."""
    if sweep.metrics.empty:
        return pd.DataFrame()
    frame = sweep.frame(["depth", "width"])
    frame = frame[frame["step"] == 0]
    if not set(NEEDED) <= set(frame["metric"]):
        return pd.DataFrame()
    wide = frame.pivot_table(
        index=["run_id", "depth", "width"], columns=["metric", "layer"], values="value"
    )
    rows = []
    for (run_id, depth, width), values in wide.iterrows():
        delta = values["delta_norm"]
        q = values["preact_std"][depth] ** 2 + values["preact_mean"][depth] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(delta[1] / delta[depth + 1])
        rows.append(
            {
                "run_id": run_id,
                "depth": int(depth),
                "width": int(width),
                "beta": depth / width,
                "log_delta_ratio": float(ratio),
                "log_q": float(np.log(q)),
            }
        )
    return pd.DataFrame(rows)


def cell_spreads(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (depth, width): seeds, dead nets, the variances over seeds of
    log_delta_ratio and log_q, and the predictions depth v(width) / 4 and 5/4 beta."""
    rows = []
    for (depth, width), runs in table.groupby(["depth", "width"]):
        alive = runs[np.isfinite(runs["log_delta_ratio"]) & np.isfinite(runs["log_q"])]
        rows.append(
            {
                "depth": depth,
                "width": width,
                "beta": depth / width,
                "seeds": len(alive),
                "dead": len(runs) - len(alive),
                "var_delta": float(alive["log_delta_ratio"].var(ddof=1)),
                "var_q": float(alive["log_q"].var(ddof=1)),
                "predicted": predicted_variance(depth, width),
                "hanin": HANIN_SLOPE * depth / width,
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Growth:
    """Var[ln(||delta^1|| / ||delta^L||)] = intercept + slope beta, the pooled measured /
    predicted ratio, and the forward slope of Var[ln q^H], with 95% intervals."""

    slope: float
    slope_low: float
    slope_high: float
    intercept: float
    ratio: float
    ratio_low: float
    ratio_high: float
    forward_slope: float
    forward_low: float
    forward_high: float
    betas: int


def _fit(
    beta: np.ndarray, var_delta: np.ndarray, var_q: np.ndarray, predicted: np.ndarray
) -> tuple[float, float, float, float]:
    """(slope, intercept) of var_delta on beta, the pooled ratio, and var_q's slope."""
    slope, intercept = np.polyfit(beta, var_delta, 1)
    forward = np.polyfit(beta, var_q, 1)[0]
    return float(slope), float(intercept), float(var_delta.sum() / predicted.sum()), float(forward)


def growth(table: pd.DataFrame, resamples: int = RESAMPLES, seed: int = 0) -> Growth | None:
    """The fits over every cell, bootstrapped over each cell's seeds (None with fewer than
    two values of beta)."""
    table = table[np.isfinite(table["log_delta_ratio"]) & np.isfinite(table["log_q"])]
    cells = cell_spreads(table)
    if cells["beta"].nunique() < 2:
        return None
    beta, predicted = cells["beta"].to_numpy(), cells["predicted"].to_numpy()
    point = _fit(beta, cells["var_delta"].to_numpy(), cells["var_q"].to_numpy(), predicted)
    groups = [
        runs[["log_delta_ratio", "log_q"]].to_numpy()
        for _, runs in table.groupby(["depth", "width"])
    ]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        spreads = np.array([g[rng.integers(0, len(g), len(g))].var(axis=0, ddof=1) for g in groups])
        draws.append(_fit(beta, spreads[:, 0], spreads[:, 1], predicted))
    low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return Growth(
        slope=point[0],
        slope_low=low[0],
        slope_high=high[0],
        intercept=point[1],
        ratio=point[2],
        ratio_low=low[2],
        ratio_high=high[2],
        forward_slope=point[3],
        forward_low=low[3],
        forward_high=high[3],
        betas=int(cells["beta"].nunique()),
    )


def spread_figure(table: pd.DataFrame, fit: Growth | None) -> plt.Figure:
    """Left: the variance over seeds of ln(||delta^1|| / ||delta^L||) against beta = depth /
    width, one point per cell (colour: width, marker: depth), with Hanin's 5/4 beta, each
    cell's finite-width prediction depth v(n) / 4 (crosses) and the fit. Right: the same for
    ln q^H, with 5 beta."""
    cells = cell_spreads(table[np.isfinite(table["log_delta_ratio"])])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    widths = sorted(cells["width"].unique())
    colours = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths))), strict=True))
    markers = dict(zip(sorted(cells["depth"].unique()), "osD^v<>p", strict=False))
    beta = np.linspace(0, cells["beta"].max() * 1.05, 50)
    for ax, column, slope, name in (
        (axes[0], "var_delta", HANIN_SLOPE, r"Var$[\ln(\|\delta^1\| / \|\delta^L\|)]$"),
        (axes[1], "var_q", FORWARD_SLOPE, r"Var$[\ln q^H]$"),
    ):
        for row in cells.itertuples():
            ax.scatter(
                row.beta,
                getattr(row, column),
                color=colours[row.width],
                marker=markers.get(row.depth, "o"),
                edgecolor="k",
                s=36,
                zorder=3,
            )
        ax.plot(beta, slope * beta, "r-", lw=1.5, label=f"Hanin, large width: {slope:g} beta")
        ax.set_xlabel(r"$\beta = \sum_j 1/n_j$ = depth / width")
        ax.set_ylabel(name + " over seeds")
    axes[0].scatter(
        cells["beta"],
        cells["predicted"],
        marker="x",
        color="red",
        s=30,
        label="finite width: depth v(n) / 4",
        zorder=4,
    )
    if fit is not None:
        axes[0].plot(
            beta,
            fit.intercept + fit.slope * beta,
            "k--",
            lw=1,
            label=f"fit: slope {fit.slope:.2f} ({fit.slope_low:.2f}-{fit.slope_high:.2f})",
        )
    for w, colour in colours.items():
        axes[1].scatter([], [], color=colour, edgecolor="k", label=f"width {w}")
    for d, marker in markers.items():
        axes[1].scatter([], [], color="white", edgecolor="k", marker=marker, label=f"depth {d}")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7, ncol=2)
    axes[0].set_title("backward: the gradient ratio's spread over seeds")
    axes[1].set_title("forward: the last hidden layer's length")
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = spread_table(sweep)
    return {"spread": spread_figure(table, growth(table))}


def verdict(sweep: Sweep) -> Verdict:
    """The verdict of :func:`judge` on the sweep's spread table."""
    return judge(spread_table(sweep))


def judge(table: pd.DataFrame) -> Verdict:
    """Reproduced when both hold:

    1. Hanin's linear growth: the 95% interval of the slope of Var[ln(||delta^1|| /
       ||delta^L||)] against beta overlaps SLOPE_RANGE (5/4 within 20%);
    2. the finite-width prediction in numbers: the 95% interval of the pooled measured /
       predicted variance (depth v(n) / 4) overlaps RATIO_RANGE (1 within 15%).

    Not reproduced when either fails; undecided with fewer than MIN_SEEDS seeds in a cell or
    fewer than MIN_BETAS values of beta."""
    if table.empty:
        return Verdict(
            "finite_width",
            None,
            "the sweep has no step-0 records of the delta and preacts probes; run "
            "+experiment=finite_width.",
            {},
        )
    cells = cell_spreads(table)
    fit = growth(table)
    numbers = {
        "cells": float(len(cells)),
        "min_seeds": float(cells["seeds"].min()),
        "dead_nets": float(cells["dead"].sum()),
        "hanin_slope": HANIN_SLOPE,
    }
    if fit is not None:
        numbers |= {k: float(getattr(fit, k)) for k in Growth.__dataclass_fields__}
    if numbers["min_seeds"] < MIN_SEEDS or fit is None or fit.betas < MIN_BETAS:
        return Verdict(
            "finite_width",
            None,
            f"{int(numbers['min_seeds'])} seeds in the smallest cell and "
            f"{fit.betas if fit else cells['beta'].nunique()} values of beta (needs "
            f"{MIN_SEEDS} and {MIN_BETAS}); run +experiment=finite_width.",
            numbers,
        )
    linear = fit.slope_low <= SLOPE_RANGE[1] and fit.slope_high >= SLOPE_RANGE[0]
    in_numbers = fit.ratio_low <= RATIO_RANGE[1] and fit.ratio_high >= RATIO_RANGE[0]
    text = (
        f"over {len(cells)} (depth, width) cells, beta = depth / width from "
        f"{cells['beta'].min():.3g} to {cells['beta'].max():.3g}, at least "
        f"{int(numbers['min_seeds'])} seeds each: Var[ln(||delta^1|| / ||delta^L||)] grows "
        f"with slope {fit.slope:.3f} (95% {fit.slope_low:.3f}-{fit.slope_high:.3f}; Hanin, "
        f"large width: {HANIN_SLOPE}) and intercept {fit.intercept:.3f}; measured / "
        f"predicted at finite width (depth v(n) / 4) = {fit.ratio:.3f} (95% "
        f"{fit.ratio_low:.3f}-{fit.ratio_high:.3f}); forward, Var[ln q^H] grows with slope "
        f"{fit.forward_slope:.2f} (95% {fit.forward_low:.2f}-{fit.forward_high:.2f}; about "
        f"{FORWARD_SLOPE:g}); {int(numbers['dead_nets'])} net(s) had a layer with no active "
        "unit."
    )
    return Verdict("finite_width", bool(linear and in_numbers), text, numbers)


STUDIES.register("finite_width")(
    Study(
        "finite_width",
        "At criticality, does the seed-to-seed spread of ln(||delta^1|| / ||delta^L||) grow "
        "linearly in sum_j 1/n_j = depth / width, with Hanin's slope 5/4 for ReLU?",
        "Hanin 2018; Hanin & Nica 2019",
        figures,
        verdict,
    )
)
