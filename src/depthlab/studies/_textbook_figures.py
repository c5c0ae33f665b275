"""The textbook study's figures: lr sensitivity of the two losses, the slowdown on badly
wrong samples, depthlab's loss against the NumPy reference's, and test accuracy curves.
Tables in, figures out: the numbers are computed by :mod:`._textbook_grid` and
:mod:`._textbook_reference`."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab.results import Sweep
from depthlab.studies._textbook_grid import network_rows
from depthlab.studies._textbook_reference import TWIN_HORIZON

COLORS = {"squared": "tab:red", "cross_entropy": "tab:blue"}
NIELSEN_LR = {"squared": 3.0, "cross_entropy": 0.5}  # his tuned eta, ch. 1 and ch. 3


def lr_panel(ax: plt.Axes, table: pd.DataFrame, best: dict[str, float]) -> None:
    """Final test accuracy against lr per loss: one dot per seed, the mean over seeds as a
    line, each loss's best lr starred and Nielsen's tuned lr marked on the axis."""
    rng = np.random.default_rng(0)
    for loss, part in table.groupby("loss"):
        color = COLORS.get(loss, "0.3")
        jitter = np.exp(rng.uniform(-0.06, 0.06, len(part)))
        ax.plot(part["lr"] * jitter, part["final"], ".", color=color, alpha=0.35, ms=4)
        means = part.groupby("lr")["final"].mean()
        ax.plot(means.index, means.values, "-", color=color, lw=1.8, label=loss)
        if loss in best:
            ax.plot(best[loss], means[best[loss]], "*", color=color, ms=13, mec="k", mew=0.6)
        if loss in NIELSEN_LR:
            ax.axvline(NIELSEN_LR[loss], color=color, ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("learning rate (dotted: Nielsen's tuned eta)")
    ax.set_ylabel("final test accuracy (dots: seeds)")
    ax.set_title("one lr grid for both losses; star: best mean", fontsize=9)
    ax.legend(fontsize=8, loc="lower center")


def badly_wrong_panel(ax: plt.Axes, curves: pd.DataFrame) -> None:
    """Training accuracy on the badly wrong samples S (dashed) and on the rest (solid)
    against step at each loss's best lr: mean over seeds, band from the lowest to the
    highest seed."""
    for (loss, which), part in curves.groupby(["loss", "which"]):
        stats = part.groupby("step")["accuracy"].agg(["mean", "min", "max"])
        color, style = COLORS.get(loss, "0.3"), "--" if which == "S" else "-"
        label = f"{loss}, {'S (own output saturated wrong at init)' if which == 'S' else 'rest'}"
        ax.plot(stats.index, stats["mean"], style, color=color, lw=1.6, label=label)
        ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.1, lw=0)
    ax.set_xlabel("step (mini-batch of 10)")
    ax.set_ylabel("training accuracy")
    ax.set_title("the squared loss learns its badly wrong samples last", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def reference_curves(refs: pd.DataFrame, references: dict) -> pd.DataFrame:
    """Long table (run_id, loss, seed, step, which in {S, rest}, accuracy) of the reference
    runs' training accuracy on S and on the rest."""
    frames = []
    for row in refs.itertuples():
        curve = references[row.run_id].curve
        for which, column in (("S", "acc_badly_wrong"), ("rest", "acc_rest")):
            frames.append(
                curve[["step", column]]
                .rename(columns={column: "accuracy"})
                .assign(run_id=row.run_id, loss=row.loss, seed=row.seed, which=which)
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summary_figure(table: pd.DataFrame, best: dict, curves: pd.DataFrame) -> plt.Figure:
    """Left: lr sensitivity of both losses; right: the slowdown on badly wrong samples."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    lr_panel(left, table, best)
    if not curves.empty:
        badly_wrong_panel(right, curves)
    fig.suptitle("the textbook net (64-30-10 sigmoid, N(0, 1) init) on the 8x8 digits")
    fig.tight_layout()
    return fig


def agreement_figure(sweep: Sweep, refs: pd.DataFrame, references: dict) -> plt.Figure:
    """Training loss against step for each loss's first seed at its best lr: depthlab (line)
    and the reference (circles); dotted, the first evaluation where the twin reference has
    departed (beyond it rounding is amplified)."""
    firsts = refs.sort_values("seed").groupby("loss").head(1)
    recorded = network_rows(sweep, "loss")
    fig, axes = plt.subplots(1, max(1, len(firsts)), figsize=(10, 3.6), squeeze=False)
    for ax, row in zip(axes[0], firsts.itertuples(), strict=False):
        ref = references[row.run_id].curve
        mine = recorded[recorded["run_id"] == row.run_id].sort_values("step")
        ax.plot(mine["step"], mine["value"], "-", lw=2, label="depthlab (PyTorch)")
        ax.plot(ref["step"], ref["loss"], "o", ms=4, mfc="none", label="NumPy reference")
        departed = ref[ref["twin_gap"] > TWIN_HORIZON]
        if len(departed):
            ax.axvline(departed["step"].iloc[0], color="0.4", ls=":", label="twin departs")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss J")
        ax.set_title(f"{row.loss}, lr {row.lr:g}, seed {row.seed}", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("depthlab against the textbook recursion")
    fig.tight_layout()
    return fig


def accuracy_figure(sweep: Sweep, table: pd.DataFrame, best: dict) -> plt.Figure:
    """Test accuracy against step at each loss's best lr: one thin line per seed, the mean
    over seeds thick."""
    rows = network_rows(sweep, "test_accuracy")
    at_best = table[table["lr"] == table["loss"].map(best)]
    fig, ax = plt.subplots(figsize=(6, 4))
    for loss, runs in at_best.groupby("loss"):
        part = rows[rows["run_id"].isin(runs["run_id"])]
        color = COLORS.get(loss, "0.3")
        for _, run in part.groupby("run_id"):
            ax.plot(run["step"], run["value"], "-", color=color, lw=0.6, alpha=0.4)
        mean = part.groupby("step")["value"].mean()
        ax.plot(mean.index, mean.values, "-", color=color, lw=2, label=f"{loss}, lr {best[loss]:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy at each loss's best lr (thin: seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
