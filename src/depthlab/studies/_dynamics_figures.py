"""The dynamics study's figures: T* against depth (Saxe et al.'s Fig. 6 style), T against
lr (the sensitivity to the learning rate) and the loss curves at each cell's best lr.
Tables in (:mod:`._dynamics_times`), figures out."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.frames import network_curve
from depthlab.results import Sweep
from depthlab.studies._dynamics_times import CRITERION, INIT_ORDER, KEYS


def _palette() -> dict[str, tuple]:
    """One colour per init: tab10's blue for orthogonal, red for Gaussian."""
    colors = sns.color_palette("tab10")
    return {"orthogonal": colors[0], "gaussian": colors[3]}


def time_figure(cells: pd.DataFrame) -> plt.Figure:
    """T* against depth per activation (log-log): seeds as points, medians joined, censored
    cells as triangles at their run's last step (Saxe et al.'s Fig. 6 style)."""
    activations = sorted(cells["activation"].unique())
    fig, axes = plt.subplots(
        1, len(activations), figsize=(4.6 * len(activations), 4), squeeze=False
    )
    palette = _palette()
    for ax, activation in zip(axes[0], activations, strict=True):
        rows = cells[cells["activation"] == activation]
        for init in INIT_ORDER:
            mine = rows[rows["init"] == init]
            if mine.empty:
                continue
            finite = mine[np.isfinite(mine["best_time"])]
            censored = mine[~np.isfinite(mine["best_time"])]
            ax.scatter(finite["depth"], finite["best_time"], color=palette[init], s=14, alpha=0.6)
            ax.scatter(censored["depth"], censored["steps"], color=palette[init], marker="^", s=30)
            median = mine.groupby("depth")["best_time"].median()
            ax.plot(median.index, median.to_numpy(), color=palette[init], marker="o", label=init)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(
            sorted(rows["depth"].unique()), [str(d) for d in sorted(rows["depth"].unique())]
        )
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel(f"steps to training loss {CRITERION[activation]:g} at the best lr")
        ax.set_title(f"{activation}, on the critical line")
        ax.legend(fontsize=8, title="▲: not reached", title_fontsize=7)
    fig.tight_layout()
    return fig


def sensitivity_figure(table: pd.DataFrame) -> plt.Figure:
    """T against lr, median over seeds, one panel per (activation, depth); lrs that never met
    the criterion are drawn at the run's last step with an open marker."""
    panels = table[["activation", "depth"]].drop_duplicates().sort_values(["activation", "depth"])
    activations = sorted(panels["activation"].unique())
    columns = panels.groupby("activation").size().max()
    fig, axes = plt.subplots(
        len(activations), columns, figsize=(3.2 * columns, 2.8 * len(activations)), squeeze=False
    )
    palette = _palette()
    for r, activation in enumerate(activations):
        depths = sorted(panels[panels["activation"] == activation]["depth"])
        for c in range(columns):
            ax = axes[r][c]
            if c >= len(depths):
                ax.axis("off")
                continue
            rows = table[(table["activation"] == activation) & (table["depth"] == depths[c])]
            for init in INIT_ORDER:
                mine = rows[rows["init"] == init]
                if mine.empty:
                    continue
                median = mine.groupby("lr")["time"].median()
                ceiling = mine["steps"].max()
                shown = median.where(np.isfinite(median), ceiling)
                ax.plot(shown.index, shown.to_numpy(), color=palette[init], label=init)
                open_ = ~np.isfinite(median)
                ax.scatter(shown.index[~open_], shown[~open_], color=palette[init], s=14)
                ax.scatter(
                    shown.index[open_],
                    shown[open_],
                    facecolor="none",
                    edgecolor=palette[init],
                    s=24,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{activation}, depth {depths[c]}", fontsize=9)
            ax.set_xlabel("learning rate")
            ax.set_ylabel("steps to criterion")
        axes[r][0].legend(fontsize=7, title="open: not reached", title_fontsize=6)
    fig.suptitle("learning-rate sensitivity (median over seeds)")
    fig.tight_layout()
    return fig


def loss_figure(sweep: Sweep, cells: pd.DataFrame) -> plt.Figure:
    """Training loss against step at each cell's best lr (the first seed), per activation;
    colour: depth, line style: init; the dotted line is the criterion."""
    curves = network_curve(sweep, "loss", KEYS)
    activations = sorted(cells["activation"].unique())
    fig, axes = plt.subplots(
        1, len(activations), figsize=(4.6 * len(activations), 3.8), squeeze=False
    )
    depths = sorted(cells["depth"].unique())
    colors = dict(zip(depths, sns.color_palette("viridis", len(depths)), strict=True))
    styles = {"orthogonal": "-", "gaussian": "--"}
    for ax, activation in zip(axes[0], activations, strict=True):
        chosen = cells[(cells["activation"] == activation) & np.isfinite(cells["best_lr"])]
        chosen = chosen[chosen["seed"] == chosen["seed"].min()]
        for row in chosen.itertuples():
            run = curves[
                (curves["activation"] == activation)
                & (curves["init"] == row.init)
                & (curves["depth"] == row.depth)
                & (curves["seed"] == row.seed)
                & (curves["lr"] == row.best_lr)
            ]
            ax.plot(
                run["step"],
                run["value"],
                color=colors[row.depth],
                ls=styles[row.init],
                lw=1.2,
                label=f"{row.init}, depth {row.depth}",
            )
        ax.axhline(CRITERION[activation], color="grey", ls=":", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{activation} at each net's best lr")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
