"""Saturation of the top hidden layer (Glorot & Bengio 2010, Figs. 2 and 3).

Measured: for each hidden layer l = 1..depth of a sigmoid net, at every probed step t,

    m^l(t) = mean over batch and units of a^l,   s^l(t) = std over batch and units of a^l,

(``act_mean``, ``act_std``), the distribution of a^l at five quantiles (``act_q02`` ..
``act_q98``: continuous, where the saturated fraction, pairs with a^l within 0.03 of 0 or 1,
is a threshold count that jumps on a collapsed distribution). Reductions per run: the top
hidden layer's minimum mean min_t m^depth(t), the first step it is reached, and the first
step at which m^depth falls halfway from its start towards 0; whether and when it escapes
(first step after the minimum at which the mean is ESCAPE_FACTOR times the minimum: a
pinned layer's mean drifts by far less); whether it recovered (won back half of its drop
by the last step); its last mean; and, for the lower layers 1..depth-1, each one's mean
averaged over time, its last mean and its largest saturated fraction.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.frames import metric_rows
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

KEYS = ["depth", "status"]  # the metric rows carry the run's seed
STATS = {"act_mean": "mean", "act_std": "std", "saturation": "saturated"}
QUANTILE_STATS = {"act_q02": "q02", "act_q16": "q16", "act_q50": "q50", "act_q84": "q84",
                  "act_q98": "q98"}  # fmt: skip
MIN_STEPS = 1000  # a sweep shorter than this cannot show the dip and what follows
LOW_MEAN = 0.1  # "towards 0": the top layer's mean gets at least this low
FAST_STEPS = 500  # "within a few hundred updates": halfway down by then
LOWER_FLOOR = 0.4  # lower layers stay near or above 0.5: time-averaged mean >= this
LOWER_SATURATED = 0.1  # and at most this fraction of their units saturated at any step
ESCAPE_FACTOR = 5.0  # escaped: the top mean rises to this multiple of its minimum after it
ESCAPE_STEPS = 30_000  # Glorot & Bengio: depth 4 escapes slowly, depth 5 not at all; a
# sweep shorter than this cannot tell the two apart (escapes seen at 20-24k updates)


def layer_stats(sweep: Sweep) -> pd.DataFrame:
    """Tidy rows (run_id, depth, status, seed, layer, step, mean, std, saturated) for the
    hidden layers 1..depth (the output layer, depth + 1, is left out)."""
    frames = []
    present = set(sweep.metrics["metric"]) if not sweep.metrics.empty else set()
    wanted = STATS | {k: v for k, v in QUANTILE_STATS.items() if k in present}
    for metric, column in wanted.items():
        rows = metric_rows(sweep, metric, KEYS).rename(columns={"value": column})
        frames.append(
            rows.drop(columns="metric").set_index([*KEYS, "seed", "run_id", "step", "layer"])
        )
    if frames[0].empty:
        return pd.DataFrame(columns=["run_id", *KEYS, "seed", "layer", "step", *STATS.values()])
    table = pd.concat(frames, axis=1).reset_index()
    hidden = table[table["layer"] <= table["depth"]]
    return hidden.sort_values(["run_id", "layer", "step"]).reset_index(drop=True)


def top_layer_dip(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run: the top hidden layer's mean at the start, its minimum and the first
    step it is reached, the first step halfway down (start / 2), its last value, whether it
    recovered (last >= min + (start - min) / 2), its largest saturated fraction, and the
    lower layers' summary (:func:`lower_layers`)."""
    rows = []
    for run_id, run in table.groupby("run_id"):
        depth = int(run["depth"].iloc[0])
        top = run[run["layer"] == depth].sort_values("step")
        start, low = float(top["mean"].iloc[0]), float(top["mean"].min())
        halfway = top[top["mean"] <= start / 2]
        last = float(top["mean"].iloc[-1])
        bottom = int(top.loc[top["mean"].idxmin(), "step"])
        after = top[(top["step"] > bottom) & (top["mean"] >= ESCAPE_FACTOR * low)]
        rows.append(
            {
                "run_id": run_id,
                "depth": depth,
                "seed": run["seed"].iloc[0],
                "start_mean": start,
                "min_mean": low,
                "min_step": bottom,
                "halfway_step": int(halfway["step"].iloc[0]) if len(halfway) else np.nan,
                "last_mean": last,
                "last_step": int(top["step"].iloc[-1]),
                "recovered": bool(last >= low + (start - low) / 2),
                "escape_step": int(after["step"].iloc[0]) if len(after) else np.nan,
                "top_saturated_max": float(top["saturated"].max()),
                **lower_layers(run[run["layer"] < depth]),
            }
        )
    return pd.DataFrame(rows)


def lower_layers(rows: pd.DataFrame) -> dict[str, float | str]:
    """The layers below the top: their time-averaged mean (averaged over layers, and the
    lowest layer's), their means at the last step (layer 1 first) and the largest saturated
    fraction of any of them at any step."""
    if rows.empty:
        return {
            "lower_mean": np.nan,
            "lower_lowest": np.nan,
            "lower_last": "",
            "lower_saturated_max": 0.0,
        }
    means = rows.groupby("layer")["mean"].mean()
    last = rows[rows["step"] == rows["step"].max()].sort_values("layer")["mean"]
    return {
        "lower_mean": float(means.mean()),
        "lower_lowest": float(means.min()),
        "lower_last": ", ".join(f"{m:.2f}" for m in last),
        "lower_saturated_max": float(rows["saturated"].max()),
    }


def _layer_colors(depth: int) -> dict[int, tuple]:
    """One colour per hidden layer 1..depth, the top layer darkest in every panel."""
    return dict(zip(range(1, depth + 1), sns.color_palette("viridis_r", depth), strict=True))


LayerDrawing = Callable[[plt.Axes, pd.DataFrame, tuple, str], None]


def _layer_panels(
    table: pd.DataFrame, title: str, ylabel: str, draw: LayerDrawing, half: bool = True
) -> plt.Figure:
    """A grid of panels, one row per seed and one column per depth, in which ``draw(ax,
    rows, colour, label)`` draws each hidden layer's rows against step (the top layer
    darkest); ``half`` marks 0.5, where an unsaturated sigmoid sits."""
    depths, seeds = sorted(table["depth"].unique()), sorted(table["seed"].unique())
    fig, axes = plt.subplots(
        len(seeds),
        len(depths),
        figsize=(4.6 * len(depths), 3.0 * len(seeds)),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    fig.suptitle(title, fontsize=10)
    for (i, seed), (j, depth) in ((a, b) for a in enumerate(seeds) for b in enumerate(depths)):
        ax = axes[i][j]
        cell = table[(table["seed"] == seed) & (table["depth"] == depth)]
        for layer, rows in cell.groupby("layer"):
            top = " (top)" if layer == depth else ""
            draw(ax, rows, _layer_colors(depth)[layer], f"layer {layer}{top}")
        if half:
            ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{depth} hidden layers, seed {seed}", fontsize=9)
        if i == len(seeds) - 1:
            ax.set_xlabel("update (mini-batch of 10)")
        if j == 0:
            ax.set_ylabel(ylabel)
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def _mean_and_std(ax: plt.Axes, rows: pd.DataFrame, color: tuple, label: str) -> None:
    ax.plot(rows["step"], rows["mean"], color=color, lw=1.3, label=label)
    low, high = rows["mean"] - rows["std"], rows["mean"] + rows["std"]
    ax.fill_between(rows["step"], low, high, color=color, alpha=0.2, lw=0)


def _saturated(ax: plt.Axes, rows: pd.DataFrame, color: tuple, label: str) -> None:
    ax.plot(rows["step"], rows["saturated"], color=color, label=label)


def _quantiles(ax: plt.Axes, rows: pd.DataFrame, color: tuple, label: str) -> None:
    ax.plot(rows["step"], rows["q50"], color=color, lw=1.2, label=label)
    ax.fill_between(rows["step"], rows["q16"], rows["q84"], color=color, alpha=0.3, lw=0)
    ax.fill_between(rows["step"], rows["q02"], rows["q98"], color=color, alpha=0.1, lw=0)


def activation_figure(table: pd.DataFrame) -> plt.Figure:
    """Glorot & Bengio's Fig. 2: each hidden layer's mean activation against step, with a
    band of +-1 std over batch and units; rows seed, columns depth."""
    title = "sigmoid activation by hidden layer: mean, band +-1 std"
    return _layer_panels(table, title, "activation mean +- std", _mean_and_std)


def saturation_figure(table: pd.DataFrame) -> plt.Figure:
    """The fraction of (sample, unit) pairs within 0.03 of 0 or 1, per hidden layer,
    against step; rows seed, columns depth."""
    title = "saturated fraction by hidden layer (a within 0.03 of 0 or 1)"
    return _layer_panels(table, title, "saturated fraction", _saturated, half=False)


def distribution_figure(table: pd.DataFrame) -> plt.Figure:
    """Glorot & Bengio's Fig. 3 for the sigmoid: each hidden layer's distribution of
    activations against step, as its median with the 16-84% band (dark) and the 2-98% band
    (light); rows seed, columns depth."""
    title = "sigmoid activations by hidden layer: median, 16-84% and 2-98% of (sample, unit)"
    return _layer_panels(table, title, "activation quantiles", _quantiles)


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = layer_stats(sweep)
    made = {"activations": activation_figure(table), "saturated": saturation_figure(table)}
    if "q50" in table:
        made["distribution"] = distribution_figure(table)
    return made


def verdict(sweep: Sweep) -> Verdict:
    """Glorot & Bengio's four claims, over the runs of depth 4 and 5 (both present, each
    trained >= MIN_STEPS updates):

    1. in every run the top hidden layer's mean falls at least halfway from its start
       towards 0 within FAST_STEPS updates and reaches LOW_MEAN or less;
    2. in every run the lower layers stay unsaturated near or above 0.5 (their means sit
       above 0.5 in the paper's figure): each one's time-averaged mean >= LOWER_FLOOR and at
       most LOWER_SATURATED of its units saturated at any step;
    3. depth 4 escapes slowly: in at least half of its runs the top mean rises to
       ESCAPE_FACTOR times its minimum after reaching it (``escape_step``);
    4. depth 5 never does: no depth-5 run escapes.

    Claims 3 and 4 need runs of at least ESCAPE_STEPS updates. A shorter sweep is judged on
    claims 1 and 2 alone, and its text says that the escape was not tested."""
    dips = top_layer_dip(layer_stats(sweep))
    numbers = {}
    for depth, rows in dips.groupby("depth"):
        numbers |= {
            f"depth{depth}_min_mean_max": float(rows["min_mean"].max()),
            f"depth{depth}_min_step_median": float(rows["min_step"].median()),
            f"depth{depth}_halfway_step_max": float(rows["halfway_step"].max()),
            f"depth{depth}_last_mean_median": float(rows["last_mean"].median()),
            f"depth{depth}_escaped_runs": float(rows["escape_step"].notna().sum()),
            f"depth{depth}_escape_step_median": float(rows["escape_step"].median()),
            f"depth{depth}_runs": float(len(rows)),
            f"depth{depth}_lower_mean_median": float(rows["lower_mean"].median()),
            f"depth{depth}_lower_lowest_min": float(rows["lower_lowest"].min()),
            f"depth{depth}_lower_saturated_max": float(rows["lower_saturated_max"].max()),
            f"depth{depth}_top_saturated_max": float(rows["top_saturated_max"].max()),
        }
    if not ({4, 5} <= set(dips["depth"]) if len(dips) else False) or (
        dips["last_step"].min() < MIN_STEPS
    ):
        return Verdict(
            "saturation",
            None,
            f"the sweep lacks sigmoid runs of depth 4 and 5 trained >= {MIN_STEPS} updates; "
            "run +experiment=saturation.",
            numbers,
        )
    fast = dips["halfway_step"].le(FAST_STEPS).all() and dips["min_mean"].le(LOW_MEAN).all()
    lower = (dips["lower_lowest"] >= LOWER_FLOOR).all() and (
        dips["lower_saturated_max"] <= LOWER_SATURATED
    ).all()
    if dips["last_step"].min() < ESCAPE_STEPS:
        untested = (
            f" Claims 3 and 4 (depth 4 escapes, depth 5 does not) were not tested: the runs "
            f"end at {int(dips['last_step'].min())} updates, fewer than {ESCAPE_STEPS}; run "
            "+experiment=saturation."
        )
        return Verdict("saturation", bool(fast and lower), _text(dips) + untested, numbers)
    escaped = dips.groupby("depth")["escape_step"].apply(lambda e: e.notna().mean())
    escapes = escaped[4] >= 0.5 and escaped[5] == 0
    return Verdict("saturation", bool(fast and lower and escapes), _text(dips), numbers)


def _text(dips: pd.DataFrame) -> str:
    """The verdict's sentence per depth, with the numbers."""
    parts = []
    for depth, rows in dips.groupby("depth"):
        runs = "; ".join(
            f"seed {r.seed}: min {r.min_mean:.3f} at update {r.min_step}, halfway by "
            f"{r.halfway_step:.0f}, "
            + (f"escaped at {r.escape_step:.0f}" if np.isfinite(r.escape_step) else "no escape")
            + f", last {r.last_mean:.3f} at {r.last_step}, lower layers end at {r.lower_last} "
            f"(layer 1 first), at most {r.lower_saturated_max:.2f} saturated"
            for r in rows.itertuples()
        )
        parts.append(
            f"depth {depth}: {runs}; top layer saturated fraction up to "
            f"{rows['top_saturated_max'].max():.2f}"
        )
    return (
        f"top hidden layer mean (start about 0.5) against lower layers; criteria: (1) halfway "
        f"to 0 within {FAST_STEPS} updates and minimum <= {LOW_MEAN}, (2) lower layers' means "
        f">= {LOWER_FLOOR} with <= {LOWER_SATURATED} saturated, (3) half of the depth-4 runs "
        f"escape (the top mean rises to {ESCAPE_FACTOR:g}x its minimum), (4) no depth-5 run does. "
        + ". ".join(parts)
        + "."
    )


STUDIES.register("saturation")(
    Study(
        "saturation",
        "Does the top hidden layer of a deep sigmoid net saturate at 0 early in training while "
        "the lower layers stay near 0.5, escape slowly at depth 4 and stay pinned at depth 5?",
        "Glorot & Bengio 2010, Figs. 2 and 3",
        figures,
        verdict,
    )
)
