"""Dead ReLU units against the learning rate (ReLU folklore; CS231n, makemore part 3).

Measured: ``dead_frac``, the fraction of a layer's units whose ReLU is off (phi'(z) = 0) on
every sample of the probed batch, per hidden layer l = 1..L-1 (the output layer has no
ReLU), at every probed step. Reductions: per run and step, the mean over hidden layers;
per run, that mean at the last probed step ("final") and at step 0 (the same network for
every lr of one seed, so final - initial is what training did); per lr, the mean over the
seeds whose run ended ``ok``. A diverged run's weights are not finite, so it has no final
dead fraction: it is counted per lr instead.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.studies.common import at_step, metric_rows

KEYS = ["lr", "depth", "status", "steps"]  # run columns; metric rows carry their own seed
MIN_LRS = 3  # learning rates with surviving runs needed to call a trend
MIN_SEEDS = 2  # seeds per learning rate needed for a band
MIN_STEPS = 200  # units die over training: a few dozen steps say little
MIN_RISE = 0.05  # the largest surviving lr's dead fraction above the rest and its step 0


def hidden_dead(sweep: Sweep) -> pd.DataFrame:
    """dead_frac rows of the hidden layers (l < L), with lr, status and seed."""
    rows = metric_rows(sweep, "dead_frac", KEYS)
    top = rows.groupby("run_id")["layer"].transform("max")
    return rows[rows["layer"] < top]


def dead_curves(sweep: Sweep) -> pd.DataFrame:
    """Per run and probed step: dead_frac averaged over the hidden layers (NaN-free)."""
    rows = hidden_dead(sweep).dropna(subset=["value"])
    keys = ["run_id", "seed", *KEYS, "step"]
    return rows.groupby(keys, as_index=False)["value"].mean().rename(columns={"value": "dead"})


def final_dead(sweep: Sweep) -> pd.DataFrame:
    """Per run: mean hidden dead_frac at step 0 and at the last probed step (NaN for runs
    that did not end ``ok``), and the change final - initial."""
    curves = dead_curves(sweep)
    first = at_step(curves, "first").set_index("run_id")["dead"]
    last = at_step(curves, "last").set_index("run_id")
    out = last[["seed", *KEYS, "step"]].copy()
    out["initial"] = first
    out["final"] = last["dead"].where(last["status"] == "ok")
    out["change"] = out["final"] - out["initial"]
    return out.reset_index()


def per_lr(table: pd.DataFrame) -> pd.DataFrame:
    """Per lr: runs, diverged runs, and over the ``ok`` runs the mean, min and max final
    dead fraction and the mean change from step 0."""
    groups = table.groupby("lr")
    out = pd.DataFrame(
        {
            "runs": groups.size(),
            "ok": groups["final"].count(),
            "diverged": groups["status"].apply(lambda s: int((s == "diverged").sum())),
            "final_mean": groups["final"].mean(),
            "final_min": groups["final"].min(),
            "final_max": groups["final"].max(),
            "change_mean": groups["change"].mean(),
        }
    )
    return out.reset_index()


def curve_figure(sweep: Sweep) -> plt.Figure:
    """Mean hidden dead_frac against step, one line per lr: mean over the seeds, band from
    their min to max; diverged runs stop at their last probed step."""
    curves = dead_curves(sweep)
    lrs = sorted(curves["lr"].unique())
    colors = dict(zip(lrs, sns.color_palette("rocket_r", len(lrs) + 1)[1:], strict=True))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for lr, rows in curves.groupby("lr"):
        runs = rows["run_id"].nunique()
        diverged = rows[rows["status"] == "diverged"]["run_id"].nunique()
        band = rows.groupby("step")["dead"].agg(["mean", "min", "max"])
        label = f"lr={lr:g}" + (f" ({diverged}/{runs} diverged)" if diverged else "")
        ax.plot(band.index, band["mean"], "o-", ms=2, color=colors[lr], label=label)
        ax.fill_between(band.index, band["min"], band["max"], color=colors[lr], alpha=0.2)
    ax.set(xlabel="SGD step", ylabel="dead fraction (mean over hidden layers)")
    ax.set_ylim(bottom=0)
    depth = int(curves["depth"].max())
    ax.set_title(f"dead ReLU units over training, depth {depth} (band: seed min..max)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def layer_figure(sweep: Sweep) -> plt.Figure:
    """Heat map of dead_frac, hidden layer x lr, at the last probed step (mean over ``ok``
    seeds), beside the networks at step 0; lrs whose runs all diverged are blank."""
    rows = hidden_dead(sweep)
    start = at_step(rows, 0).groupby("layer")["value"].mean().rename("step 0")
    last = at_step(rows, "last")
    last = last[last["status"] == "ok"]
    grid = last.pivot_table(index="layer", columns="lr", values="value", aggfunc="mean")
    lrs = sorted(rows["lr"].unique())
    grid = grid.reindex(columns=lrs)
    grid.columns = [
        f"lr={lr:g}" + ("\ndiverged" if lr not in set(last["lr"]) else "") for lr in lrs
    ]
    grid = pd.concat([start, grid], axis=1)
    fig, ax = plt.subplots(figsize=(0.8 * grid.shape[1] + 2.2, 0.32 * len(grid) + 1.8))
    sns.heatmap(
        grid, annot=True, fmt=".2f", cmap="magma_r", vmin=0, vmax=1, ax=ax, annot_kws={"size": 7}
    )
    ax.invert_yaxis()
    ax.set(xlabel="at initialisation | learning rate (end of training)", ylabel="hidden layer l")
    ax.set_title("dead fraction per layer (blank: every seed diverged)", fontsize=10)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """Named figures: dead_over_training (per lr) and dead_by_layer (layer x lr)."""
    return {"dead_over_training": curve_figure(sweep), "dead_by_layer": layer_figure(sweep)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when large learning rates leave the most units dead: over the runs that
    did not diverge, the largest lr's mean final dead fraction exceeds that of every smaller
    lr by >= 0.05 and its own value at step 0 by >= 0.05 (training killed units, rather
    than failing to revive those dead at initialisation). Spearman's rho of lr and final
    dead fraction and whether the per-lr means are monotone are reported, not required:
    at small lr the units dead at initialisation (deep ReLU layers; Lu et al. 2019) stay
    dead, so the dependence need not be monotone. Undecided with fewer than 3 learning
    rates with surviving runs, fewer than 2 seeds per lr, or runs shorter than MIN_STEPS."""
    table = final_dead(sweep)
    lrs = per_lr(table)
    alive = lrs[lrs["ok"] > 0]
    numbers = _numbers(table, lrs)
    text = _text(lrs, numbers)
    if len(alive) < MIN_LRS or lrs["runs"].min() < MIN_SEEDS or table["steps"].min() < MIN_STEPS:
        return Verdict(
            "dead_units",
            None,
            f"the sweep lacks {MIN_LRS} learning rates with surviving runs, {MIN_SEEDS} seeds "
            f"each, trained >= {MIN_STEPS} steps; run +experiment=dead_units. {text}",
            numbers,
        )
    ok = numbers["top_lr_margin"] >= MIN_RISE and numbers["top_lr_change"] >= MIN_RISE
    return Verdict("dead_units", bool(ok), text, numbers)


def _numbers(table: pd.DataFrame, lrs: pd.DataFrame) -> dict[str, float]:
    """Per lr: mean final dead fraction, change from step 0, diverged runs; over the
    surviving runs: Spearman's rho, monotonicity, and the largest surviving lr's margin over
    every smaller lr and over its own step 0."""
    ok = table.dropna(subset=["final"])
    alive = lrs[lrs["ok"] > 0]
    rho = stats.spearmanr(ok["lr"], ok["final"]).statistic if ok["lr"].nunique() > 1 else np.nan
    numbers = {"spearman_rho": float(rho), "diverged_runs": float(lrs["diverged"].sum())}
    for _, row in lrs.iterrows():
        numbers[f"final_dead_lr{row['lr']:g}"] = float(row["final_mean"])
        numbers[f"change_lr{row['lr']:g}"] = float(row["change_mean"])
        numbers[f"diverged_lr{row['lr']:g}"] = float(row["diverged"])
    means = alive["final_mean"].to_numpy(float)
    numbers["monotone"] = float(bool(np.all(np.diff(means) >= 0))) if len(means) > 1 else np.nan
    numbers["top_lr"] = float(alive["lr"].iloc[-1]) if len(alive) else np.nan
    numbers["top_lr_margin"] = float(means[-1] - means[:-1].max()) if len(means) > 1 else np.nan
    numbers["top_lr_change"] = float(alive["change_mean"].iloc[-1]) if len(alive) else np.nan
    return numbers


def _text(lrs: pd.DataFrame, n: dict[str, float]) -> str:
    """The verdict's sentence: per lr the final dead fraction (seed range), its change from
    step 0 and the diverged runs; then the trend."""
    parts = []
    for _, row in lrs.iterrows():
        runs, diverged = int(row["runs"]), int(row["diverged"])
        if row["ok"] == 0:
            parts.append(f"lr={row['lr']:g}: all {runs} runs diverged")
            continue
        part = (
            f"lr={row['lr']:g}: {row['final_mean']:.3f} ({row['final_min']:.3f}.."
            f"{row['final_max']:.3f}; {row['change_mean']:+.3f} from step 0)"
        )
        parts.append(part + (f", {diverged} of {runs} diverged" if diverged else ""))
    shape = {1.0: "monotone", 0.0: "not monotone"}.get(n["monotone"], "undetermined")
    return (
        "final dead fraction of the hidden units (mean over layers and surviving seeds): "
        + "; ".join(parts)
        + f". Over the surviving runs the per-lr means are {shape} in lr, Spearman rho = "
        f"{n['spearman_rho']:.2f}; the largest surviving lr ({n['top_lr']:g}) is "
        f"{n['top_lr_margin']:+.3f} above every smaller lr and {n['top_lr_change']:+.3f} "
        f"from its step 0."
    )


STUDIES.register("dead_units")(
    Study(
        "dead_units",
        "Do larger SGD learning rates leave more ReLU units dead (off on every input), and "
        "in which layers?",
        "ReLU folklore (Karpathy, CS231n; makemore part 3); Lu et al. 2019 (dying ReLU)",
        figures,
        verdict,
    )
)
