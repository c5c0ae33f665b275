"""The degradation problem (He et al. 2016): plain against residual nets over depth.

Measured per run: the final training loss J (on the whole training set) and, at step 0,
||delta^1|| / ||delta^L||. Reduction: the median over seeds per (residual, norm, depth); a
diverged run counts as an infinite loss. The plain curve "turns upward" at the depth of its
minimum when the deepest plain net ends at least 10% above that minimum. With batchnorm the
gradients are healthy and the rise is degradation proper; without normalisation a small
||delta^1|| / ||delta^L|| says vanishing gradients take part in it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

RISE = 1.10  # the deepest plain net ends this much above the plain minimum: it degrades


def final_losses(sweep: Sweep) -> pd.DataFrame:
    """One row per run: residual, norm, depth, seed, status, final loss (inf if diverged)
    and ||delta^1|| / ||delta^L|| at step 0."""
    runs = sweep.runs
    loss = runs["final_loss"].where(runs["status"] == "ok", np.inf).astype(float)
    return pd.DataFrame(
        {
            "residual": runs["residual"].astype(bool),
            "norm": runs["norm"],
            "depth": runs["depth"].astype(int),
            "seed": runs["seed"],
            "status": runs["status"],
            "final_loss": loss,
            "delta_ratio_initial": runs["delta_ratio_initial"].astype(float),
        }
    )


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median final loss and ||delta^1||/||delta^L|| over seeds per (norm, residual, depth)."""
    return (
        table.groupby(["norm", "residual", "depth"], as_index=False)[
            ["final_loss", "delta_ratio_initial"]
        ]
        .median()
        .sort_values(["norm", "residual", "depth"])
    )


def turn(curve: pd.DataFrame) -> dict[str, float]:
    """Of one median loss-against-depth curve: the depth of its minimum, the minimum, the
    deepest depth's loss and whether that is at least RISE times the minimum."""
    curve = curve.sort_values("depth")
    best = curve.loc[curve["final_loss"].idxmin()]
    deepest = curve.iloc[-1]
    return {
        "best_depth": int(best["depth"]),
        "best_loss": float(best["final_loss"]),
        "deepest_depth": int(deepest["depth"]),
        "deepest_loss": float(deepest["final_loss"]),
        "rises": bool(deepest["final_loss"] >= RISE * best["final_loss"]),
    }


def _by_depth(table: pd.DataFrame, column: str, ylabel: str, title: str) -> plt.Figure:
    norms = sorted(table["norm"].unique())
    fig, axes = plt.subplots(1, len(norms), figsize=(5.2 * len(norms), 4), squeeze=False)
    for ax, norm in zip(axes[0], norms, strict=True):
        part = table[table["norm"] == norm].replace([np.inf], np.nan)
        part = part.assign(net=np.where(part["residual"], "residual", "plain"))
        sns.lineplot(
            part,
            x="depth",
            y=column,
            hue="net",
            hue_order=["plain", "residual"],
            estimator="median",
            errorbar=("pi", 100),
            marker="o",
            ax=ax,
        )
        sns.scatterplot(
            part,
            x="depth",
            y=column,
            hue="net",
            hue_order=["plain", "residual"],
            legend=False,
            alpha=0.35,
            s=15,
            ax=ax,
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"norm={norm}")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_figure(table: pd.DataFrame) -> plt.Figure:
    """Final training loss against depth, plain vs residual, one panel per norm: median
    over seeds with the min-max band and every seed as a dot (diverged runs left out)."""
    return _by_depth(
        table,
        "final_loss",
        "final training loss",
        "the degradation problem: training loss against depth",
    )


def gradient_figure(table: pd.DataFrame) -> plt.Figure:
    """||delta^1|| / ||delta^L|| at step 0 against depth, as in :func:`loss_figure`."""
    return _by_depth(
        table,
        "delta_ratio_initial",
        r"$\|\delta^1\| / \|\delta^L\|$ at step 0",
        "gradients at initialisation: vanishing or healthy?",
    )


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = final_losses(sweep)
    return {"loss_by_depth": loss_figure(table), "gradient_by_depth": gradient_figure(table)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when, with batchnorm (the paper's setting), the plain curve turns upward
    (its deepest net ends >= 10% above its minimum) while the residual net at that depth ends
    below the plain one and does not rise by as much. Without normalisation the same numbers
    are reported, with the plain nets' ||delta^1||/||delta^L||."""
    table = final_losses(sweep)
    curves = medians(table)
    numbers: dict[str, float] = {"diverged_runs": int((table["status"] == "diverged").sum())}
    parts = []
    reproduced = None
    for norm, curve in curves.groupby("norm"):
        plain = curve[~curve["residual"]]
        residual = curve[curve["residual"]]
        if plain["depth"].nunique() < 3 or residual.empty:
            continue
        p, r = turn(plain), turn(residual)
        deep = plain["depth"].max()
        ratio = float(plain[plain["depth"] == deep]["delta_ratio_initial"].iloc[0])
        numbers |= {f"{norm}_plain_{k}": v for k, v in p.items()}
        numbers |= {f"{norm}_residual_{k}": v for k, v in r.items()}
        numbers[f"{norm}_plain_delta_ratio_deepest"] = ratio
        shape = (
            f"plain nets' loss is lowest at depth {p['best_depth']} ({p['best_loss']:.3f}) and "
            f"{'rises' if p['rises'] else 'does not rise'} to {p['deepest_loss']:.3f} at depth "
            f"{p['deepest_depth']}; residual nets end at {r['deepest_loss']:.3f} there (best "
            f"{r['best_loss']:.3f} at depth {r['best_depth']}); plain ||delta^1||/||delta^L|| "
            f"at depth {deep}: {ratio:.2g}"
        )
        parts.append(f"norm={norm}: {shape}")
        if norm == "batchnorm":
            reproduced = (
                p["rises"]
                and r["deepest_loss"] < p["deepest_loss"]
                and r["deepest_loss"] / r["best_loss"] < p["deepest_loss"] / p["best_loss"]
            )
    if not parts:
        return Verdict(
            "degradation",
            None,
            "the sweep needs plain and residual nets over "
            "three or more depths; run +experiment=degradation.",
            numbers,
        )
    text = "; ".join(parts) + f". {numbers['diverged_runs']} runs diverged."
    return Verdict("degradation", reproduced, text, numbers)


STUDIES.register("degradation")(
    Study(
        "degradation",
        "Past some depth, does a plain net's training loss rise with depth while a residual "
        "net's does not, with healthy gradients (batchnorm) and without?",
        "He, Zhang, Ren & Sun 2016, Deep Residual Learning (Fig. 1, Fig. 4)",
        figures,
        verdict,
    )
)
