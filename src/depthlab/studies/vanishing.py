"""Vanishing gradients (Glorot & Bengio 2010; the classic sigmoid derivation).

Measured: at step 0, the slope of ln ||delta^l|| against l over the hidden layers, per run.
Theory: mean-field's per-layer ratio chi_l = ||delta^l||^2 / ||delta^{l+1}||^2 predicts the
slope -1/2 mean_l ln chi_l. Also the update ratio ||dW^l|| / ||W^l|| of the first layer
against the top hidden layer, averaged over the probed steps after step 0.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab import plots
from depthlab.frames import at_step, log_slope, metric_rows, ordered, profile_rows
from depthlab.plots import theory_scatter
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

KEYS = ["activation", "init", "depth", "status"]
SATURATING = ("sigmoid", "tanh")


def slopes(sweep: Sweep) -> pd.DataFrame:
    """One row per run: measured and predicted slope of ln ||delta^l|| over the hidden layers
    at step 0 (per layer, towards the output), and ||delta^1|| / ||delta^L||."""
    delta = at_step(metric_rows(sweep, "delta_norm", KEYS), 0)
    predicted = at_step(metric_rows(sweep, "predicted_delta_ratio", KEYS), 0)
    rows = []
    for run_id, run in delta.groupby("run_id"):
        run = run.sort_values("layer")
        hidden = run[run["layer"] < run["layer"].max()]
        ratios = predicted[predicted["run_id"] == run_id]["value"].to_numpy(float)
        rows.append(
            {
                "run_id": run_id,
                **run.iloc[0][KEYS].to_dict(),
                "measured_slope": log_slope(hidden["layer"], hidden["value"]),
                "predicted_slope": -0.5 * np.log(ratios).mean() if len(ratios) else np.nan,
                "ratio_first_to_output": run["value"].iloc[0] / run["value"].iloc[-1],
            }
        )
    return pd.DataFrame(rows)


def update_gap(sweep: Sweep) -> pd.DataFrame:
    """Per run: mean over probed steps > 0 of update_ratio at layer 1 and at layer L-1."""
    rows = metric_rows(sweep, "update_ratio", KEYS)
    rows = rows[rows["step"] > 0]
    out = []
    for run_id, run in rows.groupby("run_id"):
        top = run["layer"].max() - 1
        first = run[run["layer"] == 1]["value"].mean()
        last = run[run["layer"] == top]["value"].mean()
        out.append({"run_id": run_id, **run.iloc[0][KEYS].to_dict(), "first": first, "top": last})
    return pd.DataFrame(out)


def profile_figure(sweep: Sweep) -> plt.Figure:
    """||delta^l|| against l at step 0: rows activation, columns init, one line per depth,
    mean-field theory dashed (anchored at the measured output layer;
    :func:`depthlab.plots.draw_delta_profile`)."""
    delta, theory = profile_rows(sweep, 0, KEYS)
    acts, inits = sorted(delta["activation"].unique()), sorted(delta["init"].unique())
    fig, axes = plt.subplots(
        len(acts),
        len(inits),
        figsize=(3.6 * len(inits), 2.8 * len(acts)),
        squeeze=False,
        sharex=True,
    )
    colors = plots.palette(delta["depth"])
    for (i, act), (j, init) in ((a, b) for a in enumerate(acts) for b in enumerate(inits)):
        ax = axes[i][j]
        cell = delta[(delta["activation"] == act) & (delta["init"] == init)]
        plots.draw_delta_profile(
            ax, cell, theory, "depth", colors, label=lambda run: f"depth {run['depth'].iloc[0]}"
        )
        ax.set_title(f"{act}, {init}", fontsize=9)
        if i == len(acts) - 1:
            ax.set_xlabel("layer l")
        if j == 0:
            ax.set_ylabel(r"$\|\delta^l\|$ at step 0")
    pairs = [ax.get_legend_handles_labels() for ax in axes.ravel()]
    handles = {t: h for hs, ts in pairs for h, t in zip(hs, ts, strict=True)}
    labels = [f"depth {d}" for d in ordered(delta["depth"]) if f"depth {d}" in handles]
    axes[0][-1].legend([handles[t] for t in labels], labels, fontsize=7)
    fig.suptitle("backprop error by layer at initialisation (dashed: mean-field theory)")
    fig.tight_layout()
    return fig


def slope_figure(table: pd.DataFrame) -> plt.Figure:
    """Measured against predicted per-layer slope of ln ||delta^l||, with the identity line."""
    labels = {
        "xlabel": r"theory: $-\frac{1}{2}\,\overline{\ln\chi}$ per layer",
        "ylabel": r"measured slope of $\ln\|\delta^l\|$",
        "title": "per-layer growth of the backprop error",
    }
    return theory_scatter(
        table,
        "predicted_slope",
        "measured_slope",
        labels,
        hue="activation",
        style="init",
        size="depth",
    )


def update_figure(sweep: Sweep) -> plt.Figure:
    """Update ratio ||dW^l|| / ||W^l|| against layer at the last step, deepest runs."""
    rows = at_step(metric_rows(sweep, "update_ratio", KEYS), "last")
    deep = rows[rows["depth"] == rows["depth"].max()]
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(deep, x="layer", y="value", hue="activation", style="init", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel(r"$\|\Delta W^l\| / \|W^l\|$ (last step)")
    ax.set_title(f"how far each layer moves per step, depth {deep['depth'].max()}")
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    figs = {"delta_profiles": profile_figure(sweep), "slopes": slope_figure(slopes(sweep))}
    if not metric_rows(sweep, "update_ratio").empty:
        figs["update_ratio"] = update_figure(sweep)
    return figs


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when (1) the measured slopes match theory's (median relative error < 15%,
    over runs of depth >= 10 with a prediction), (2) a saturating activation with PyTorch's
    default init loses 1000x in ||delta|| by depth 30, and (3) the first layer of the deepest
    such net moves at least 100x less per step than its top hidden layer (or not at all:
    an update below float64 rounding leaves the weights exactly unchanged)."""
    table = slopes(sweep)
    deep = table[(table["depth"] >= 10) & table["predicted_slope"].notna()]
    rel = (deep["measured_slope"] - deep["predicted_slope"]).abs() / deep["predicted_slope"].abs()
    classic = table[table["activation"].isin(SATURATING) & (table["init"] == "torch_default")]
    at30 = classic[classic["depth"] >= 30]
    gaps = update_gap(sweep)
    gaps = gaps[gaps["activation"].isin(SATURATING) & (gaps["init"] == "torch_default")]
    gaps = gaps[gaps["depth"] == gaps["depth"].max()] if len(gaps) else gaps
    ratio = gaps["top"] / gaps["first"]
    frozen = int((gaps["first"] == 0).sum())  # the update is below float64 rounding
    numbers = {
        "slope_rel_error_median": float(rel.median()) if len(rel) else np.nan,
        "ratio_first_to_output_depth30_max": float(at30["ratio_first_to_output"].max())
        if len(at30)
        else np.nan,
        "update_gap_min": float(ratio[np.isfinite(ratio)].min())
        if np.isfinite(ratio).any()
        else np.nan,
        "frozen_first_layers": frozen,
    }
    if len(rel) == 0 or len(at30) == 0 or len(gaps) == 0:
        return Verdict(
            "vanishing",
            None,
            "the sweep lacks depth >= 30 runs with "
            "sigmoid/tanh and torch_default init; run +experiment=vanishing.",
            numbers,
        )
    moved = ratio[np.isfinite(ratio)]
    ok = (
        numbers["slope_rel_error_median"] < 0.15
        and numbers["ratio_first_to_output_depth30_max"] < 1e-3
        and bool((moved > 100).all())
    )
    depth = int(gaps["depth"].max())
    still = (
        f"{frozen} of {len(gaps)} first layers do not change at all (their update is below "
        "float64 rounding)"
        if frozen
        else "no first layer is frozen"
    )
    gap = (
        f"; the others move {numbers['update_gap_min']:.3g}x or more less than their top layer"
        if len(moved)
        else ""
    )
    text = (
        f"the per-layer slope of ln||delta^l|| matches mean-field theory to a median "
        f"{numbers['slope_rel_error_median']:.1%} over {len(rel)} runs of depth >= 10; "
        f"sigmoid/tanh with PyTorch's default init at depth >= 30 keep at most "
        f"{numbers['ratio_first_to_output_depth30_max']:.2g} of the output's ||delta|| at "
        f"layer 1; at depth {depth}, {still}{gap}."
    )
    return Verdict("vanishing", ok, text, numbers)


STUDIES.register("vanishing")(
    Study(
        "vanishing",
        "Does ||delta^l|| fall geometrically towards the input at the rate chi that "
        "mean-field theory predicts, so that the first layers barely learn?",
        "Glorot & Bengio 2010; the classic sigmoid backprop derivation",
        figures,
        verdict,
    )
)
