"""Saddle points (the seed's problem 5; Dauphin et al. 2014): negative curvature over training.

Measured: at each probed step t, the largest and the most negative eigenvalue of the Hessian
of the probed batch's loss with respect to all parameters, lambda_max(t) and lambda_min(t)
(``hessian_max``, ``hessian_min``, by Lanczos; depthlab.probes.curvature), for a shallow and
a deep tanh net with several restarts. Reduction per step: the relative size of the
negative curvature

    r(t) = max(-lambda_min(t), 0) / lambda_max(t)     (0 when no eigenvalue is negative),

and per run: r early, the mean of r over the probed steps t <= EARLY; r late, at the last
step; whether lambda_min < 0 early; and the training loss at the first and last step.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from depthlab.frames import metric_rows, network_curve
from depthlab.plots import span_decades
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

KEYS = ["depth", "lr", "status"]  # the metric rows carry the run's seed
EARLY = 50  # steps <= EARLY are "early"
MIN_STEPS = 4 * EARLY  # a sweep shorter than this has no "late" distinct from early
SIGNIFICANT = 0.01  # a negative eigenvalue counts when |lambda_min| >= 1% of lambda_max
SHRINK_SHARE = 0.75  # "shrinks": late r < early r in at least this share of a depth's runs
RUN_COLUMNS = [
    "run_id",
    "depth",
    "seed",
    "early_ratio",
    "late_ratio",
    "early_lambda_min",
    "early_lambda_max",
    "late_lambda_min",
    "late_lambda_max",
    "last_step",
    "negative_early",
    "negative_late",
]


def eigenvalues(sweep: Sweep) -> pd.DataFrame:
    """Tidy rows (run_id, depth, lr, seed, step, lambda_max, lambda_min, ratio = r(t))."""
    frames = []
    for metric, column in (("hessian_max", "lambda_max"), ("hessian_min", "lambda_min")):
        rows = metric_rows(sweep, metric, KEYS).rename(columns={"value": column})
        frames.append(rows.set_index(["run_id", "depth", "lr", "seed", "step"])[[column]])
    if frames[0].empty:
        return pd.DataFrame(
            columns=["run_id", "depth", "lr", "seed", "step", "lambda_max", "ratio"]
        )
    table = pd.concat(frames, axis=1).reset_index()
    table["ratio"] = (-table["lambda_min"]).clip(lower=0) / table["lambda_max"]
    return table.sort_values(["run_id", "step"]).reset_index(drop=True)


def early_late(table: pd.DataFrame, losses: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run: r early (mean over steps <= EARLY), r late (last step), lambda_min
    and lambda_max early (means over steps <= EARLY) and late (last step), whether a
    significant negative eigenvalue (r >= SIGNIFICANT) shows early and at the last step, and
    (from ``losses``, a network_curve of the loss) the first and last training loss."""
    rows = []
    for run_id, run in table.groupby("run_id"):
        early = run[run["step"] <= EARLY]
        last = run[run["step"] == run["step"].max()].iloc[0]
        rows.append(
            {
                "run_id": run_id,
                "depth": int(run["depth"].iloc[0]),
                "seed": int(run["seed"].iloc[0]),
                "early_ratio": float(early["ratio"].mean()),
                "late_ratio": float(last["ratio"]),
                "early_lambda_min": float(early["lambda_min"].mean()),
                "early_lambda_max": float(early["lambda_max"].mean()),
                "late_lambda_min": float(last["lambda_min"]),
                "late_lambda_max": float(last["lambda_max"]),
                "last_step": int(last["step"]),
                "negative_early": bool((early["ratio"] >= SIGNIFICANT).any()),
                "negative_late": bool(last["ratio"] >= SIGNIFICANT),
            }
        )
    out = pd.DataFrame(rows, columns=RUN_COLUMNS)
    if losses is not None:
        by_run = losses.groupby("run_id")["value"]
        out["first_loss"] = out["run_id"].map(by_run.first())
        out["last_loss"] = out["run_id"].map(by_run.last())
    return out


def _depth_colors(table: pd.DataFrame) -> dict[int, tuple]:
    depths = sorted(table["depth"].unique())
    return dict(zip(depths, sns.color_palette("deep", len(depths)), strict=True))


def eigenvalue_figure(table: pd.DataFrame, losses: pd.DataFrame) -> plt.Figure:
    """Top row: lambda_max (solid) and lambda_min (dashed) against step, one line per
    restart, one column per depth, with 2 / lr (the stability limit of plain SGD) where
    lambda_max comes near it (a symlog axis where lambda_max dwarfs lambda_min); bottom row:
    the training loss of the same runs."""
    depths = sorted(table["depth"].unique())
    fig, axes = plt.subplots(
        2, len(depths), figsize=(4.8 * len(depths), 5.6), squeeze=False, sharex=True
    )
    colors = sns.color_palette("tab10")
    for j, depth in enumerate(depths):
        top, bottom = axes[0][j], axes[1][j]
        cell = table[table["depth"] == depth]
        for k, (seed, run) in enumerate(cell.groupby("seed")):
            top.plot(run["step"], run["lambda_max"], "-", color=colors[k], label=f"seed {seed}")
            top.plot(run["step"], run["lambda_min"], "--", color=colors[k])
            loss = losses[losses["run_id"] == run["run_id"].iloc[0]]
            bottom.plot(loss["step"], loss["value"], "o-", ms=3, color=colors[k])
        top.axhline(0, color="black", lw=0.6)
        if cell["lambda_max"].max() > 10 * cell["lambda_min"].abs().max():
            top.set_yscale("symlog", linthresh=1.0)  # keep lambda_min readable beside it
        edge = 2 / float(cell["lr"].iloc[0])  # plain SGD is unstable along curvature > 2 / lr
        if cell["lambda_max"].max() > edge / 4:
            top.axhline(edge, color="grey", ls=":", lw=1, label="2 / lr")
        top.axvspan(0, min(EARLY, cell["step"].max()), color="grey", alpha=0.12, lw=0)
        top.set_title(f"depth {depth}: " + r"$\lambda_{max}$ (solid), $\lambda_{min}$ (dashed)")
        bottom.set_xlabel("step")
        top.legend(fontsize=7)
    axes[0][0].set_ylabel("Hessian eigenvalue")
    axes[1][0].set_ylabel("training loss")
    fig.suptitle("extreme Hessian eigenvalues of the batch loss (shaded: early)", fontsize=10)
    fig.tight_layout()
    return fig


def ratio_figure(table: pd.DataFrame) -> plt.Figure:
    """r(t) = max(-lambda_min, 0) / lambda_max against step (log), one line per run,
    coloured by depth; zeros (no negative eigenvalue) drawn at the axis floor."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = _depth_colors(table)
    positive = table["ratio"][table["ratio"] > 0]
    floor = float(positive.min()) / 2 if len(positive) else 1e-4
    for _, run in table.groupby("run_id"):
        depth = int(run["depth"].iloc[0])
        seed = int(run["seed"].iloc[0])
        label = f"depth {depth}" if seed == table[table["depth"] == depth]["seed"].min() else None
        ax.plot(
            run["step"],
            run["ratio"].clip(lower=floor),
            "o-",
            ms=2,
            color=colors[depth],
            label=label,
        )
    ax.axvspan(0, min(EARLY, table["step"].max()), color="grey", alpha=0.12, lw=0)
    ax.set_yscale("log")
    span_decades(ax, 2)
    ax.set_xlabel("step")
    ax.set_ylabel(r"$|\lambda_{min}| / \lambda_{max}$ (negative part)")
    ax.set_title("relative size of the negative curvature (shaded: early window)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = eigenvalues(sweep)
    losses = network_curve(sweep, "loss", KEYS)
    return {"eigenvalues": eigenvalue_figure(table, losses), "ratio": ratio_figure(table)}


def depth_numbers(runs: pd.DataFrame) -> dict[str, float]:
    """Per depth (keys depth{D}_...): medians over restarts of r, lambda_min and lambda_max
    early and late and of the last loss; the shares of runs whose r shrank and with a
    significant negative eigenvalue early and at the end."""
    numbers = {}
    medians = ["early_ratio", "late_ratio", "early_lambda_max", "late_lambda_max"]
    medians += ["early_lambda_min", "late_lambda_min", "last_loss"]
    for depth, rows in runs.groupby("depth"):
        numbers |= {f"depth{depth}_{c}_median": float(rows[c].median()) for c in medians}
        numbers |= {
            f"depth{depth}_shrunk_share": float((rows["late_ratio"] < rows["early_ratio"]).mean()),
            f"depth{depth}_negative_early_share": float(rows["negative_early"].mean()),
            f"depth{depth}_negative_late_share": float(rows["negative_late"].mean()),
        }
    return numbers


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced (the textbook saddle story) when every run shows a significant negative
    eigenvalue early (r >= SIGNIFICANT at some step <= EARLY) and, at each depth, r at the
    last step is below its early mean in at least SHRINK_SHARE of the runs. Undecided
    without both a shallow and a deep depth trained at least MIN_STEPS steps."""
    runs = early_late(eigenvalues(sweep), network_curve(sweep, "loss", KEYS))
    numbers = depth_numbers(runs)
    if len(runs) == 0 or runs["depth"].nunique() < 2 or runs["last_step"].min() < MIN_STEPS:
        return Verdict(
            "curvature",
            None,
            f"the sweep lacks a shallow and a deep depth trained >= {MIN_STEPS} steps; run "
            "+experiment=curvature.",
            numbers,
        )
    negative = bool(runs["negative_early"].all())
    shrinks = all(numbers[f"depth{d}_shrunk_share"] >= SHRINK_SHARE for d in runs["depth"].unique())
    return Verdict("curvature", negative and shrinks, _text(runs, numbers), numbers)


def _text(runs: pd.DataFrame, numbers: dict[str, float]) -> str:
    """The verdict's sentence, per depth, with the numbers, saying whether r moved because
    |lambda_min| shrank or because lambda_max grew."""
    parts = []
    for depth, rows in runs.groupby("depth"):
        n = {
            k.removeprefix(f"depth{depth}_"): v
            for k, v in numbers.items()
            if k.startswith(f"depth{depth}_")
        }
        shrunk = int((rows["late_ratio"] < rows["early_ratio"]).sum())
        low = abs(n["late_lambda_min_median"]) / abs(n["early_lambda_min_median"])
        high = n["late_lambda_max_median"] / n["early_lambda_max_median"]
        parts.append(
            f"depth {depth}: a negative eigenvalue of >= {SIGNIFICANT:g} lambda_max early in "
            f"{rows['negative_early'].sum()}/{len(rows)} runs and still at step "
            f"{rows['last_step'].max()} in {rows['negative_late'].sum()}/{len(rows)}; median "
            f"r = |lambda_min|/lambda_max {n['early_ratio_median']:.3g} at steps <= {EARLY}, "
            f"{n['late_ratio_median']:.3g} at the end (smaller in {shrunk}/{len(rows)} runs); "
            f"median lambda_min {n['early_lambda_min_median']:.3g} -> "
            f"{n['late_lambda_min_median']:.3g} (x{low:.2g} in size), lambda_max "
            f"{n['early_lambda_max_median']:.3g} -> {n['late_lambda_max_median']:.3g} "
            f"(x{high:.2g}); loss {rows['first_loss'].median():.3g} -> "
            f"{rows['last_loss'].median():.3g}"
        )
    return "; ".join(parts) + "."


STUDIES.register("curvature")(
    Study(
        "curvature",
        "Does early training sit near saddles (negative Hessian eigenvalues comparable to the "
        "positive ones), with the negative curvature shrinking relative to the positive later, "
        "and does depth change it?",
        "Dauphin et al. 2014; the seed's problem 5",
        figures,
        verdict,
    )
)
