"""The degradation problem (He et al. 2016): plain against residual nets over depth, with
healthy gradients at initialisation and long enough training to compare reachable error.

Measured per run: the final training loss J on the whole training set (a diverged run: inf)
and ||delta^1|| / ||delta^L|| at step 0. Reductions: per cell (norm, residual, depth, seed)
the reachable loss L* = min over the learning-rate grid of J, with that best lr; per seed
the plain nets' *rise* L*(deepest) - min over the shallower depths of L*; per seed the
residual net's advantage L*_plain(deepest) - L*_residual(deepest). Means over seeds with
Student-t 95% intervals (seeds pair the depths and the two nets: a seed fixes the data order
and, for the layers the nets share, the draws).

Claims, with criteria fixed after a one-seed pilot (depth 4, 16, 64; 2000 steps) and before
the grid, judged per norm arm:
0. healthy gradients: every plain run's ||delta^1|| / ||delta^L|| at step 0 lies within a
   factor HEALTHY of 1. An arm that fails this is reported, not judged: its rise mixes
   degradation with vanishing or exploding gradients (batch-normalised MLPs explode at
   initialisation, ||delta^1|| / ||delta^L|| = 1.2e5 at depth 64 in an earlier sweep).
1. plain nets degrade: the rise's interval lies above MIN_GAP.
2. residual nets do not: their advantage's interval lies above MIN_GAP, and their own rise
   (deepest against the shallower depths) has an interval upper end below MIN_GAP.
Undecided with fewer than MIN_SEEDS paired seeds, three depths, MIN_LRS learning rates or
MIN_STEPS steps (400 steps measure speed, not reachable error).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.frames import t_interval
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

HEALTHY = 10.0  # claim 0: ||delta^1|| / ||delta^L|| at step 0 within [1/10, 10]
MIN_GAP = 0.1  # claims 1 and 2: a rise or an advantage of 0.1 nats of training loss
MIN_SEEDS, MIN_DEPTHS, MIN_LRS = 3, 3, 3
MIN_STEPS = 1000
CELL = ["norm", "residual", "depth", "seed"]


def final_losses(sweep: Sweep) -> pd.DataFrame:
    """One row per run: residual, norm, depth, lr, seed, steps, status, final loss (inf if
    diverged) and ||delta^1|| / ||delta^L|| at step 0."""
    runs = sweep.runs
    loss = runs["final_loss"].where(runs["status"] == "ok", np.inf).astype(float)
    return pd.DataFrame(
        {
            "residual": runs["residual"].astype(bool),
            "norm": runs["norm"],
            "depth": runs["depth"].astype(int),
            "lr": runs["lr"].astype(float),
            "seed": runs["seed"],
            "steps": runs["steps"].astype(int),
            "status": runs["status"],
            "final_loss": loss,
            "delta_ratio_initial": runs["delta_ratio_initial"].astype(float),
        }
    )


def reachable(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell (norm, residual, depth, seed): ``final_loss`` = L*, the smallest final loss
    over the lr grid, its ``best_lr``, ``at_edge`` (the best lr is the grid's smallest or
    largest) and ``delta_ratio_initial`` (the same for every lr: the init does not see it)."""
    rows = []
    for cell, runs in table.groupby(CELL):
        best = runs.loc[runs["final_loss"].idxmin()]
        lrs = runs["lr"]
        rows.append(
            {
                **dict(zip(CELL, cell, strict=True)),
                "final_loss": float(best["final_loss"]),
                "best_lr": float(best["lr"]),
                "at_edge": len(lrs) > 1 and best["lr"] in (lrs.min(), lrs.max()),
                "lrs": len(lrs),
                "delta_ratio_initial": float(runs["delta_ratio_initial"].median()),
            }
        )
    return pd.DataFrame(rows)


def medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds of L* and of ||delta^1|| / ||delta^L|| per (norm, residual, depth)."""
    cells = reachable(table)
    columns = ["final_loss", "delta_ratio_initial"]
    grouped = cells.groupby(["norm", "residual", "depth"], as_index=False)[columns]
    return grouped.median().sort_values(["norm", "residual", "depth"])


def rise(cells: pd.DataFrame) -> pd.Series:
    """Per seed, of one net's L* against depth: L*(deepest) - min over shallower depths."""
    wide = cells.pivot_table(index="seed", columns="depth", values="final_loss").dropna()
    if wide.shape[1] < 2:
        return pd.Series(dtype=float)
    return wide.iloc[:, -1] - wide.iloc[:, :-1].min(axis=1)


def judge_arm(cells: pd.DataFrame) -> tuple[bool | None, dict[str, float]]:
    """Claims 0-2 on one norm arm's cells (:func:`reachable`): the verdict (None when the
    gradients are not healthy: the arm is described, not judged) and its numbers."""
    plain, residual = cells[~cells["residual"]], cells[cells["residual"]]
    deepest = int(plain["depth"].max())
    ratios = plain["delta_ratio_initial"]
    healthy = bool(((ratios >= 1 / HEALTHY) & (ratios <= HEALTHY)).all())
    at_deep = cells[cells["depth"] == deepest].pivot_table(
        index="seed", columns="residual", values="final_loss"
    )
    advantage = (at_deep.get(False) - at_deep.get(True)).dropna() if at_deep.shape[1] == 2 else []
    n = {"deepest": float(deepest), "healthy": float(healthy)}
    n |= {"delta_ratio_min": float(ratios.min()), "delta_ratio_max": float(ratios.max())}
    for name, values in (
        ("plain_rise", rise(plain)),
        ("residual_rise", rise(residual)),
        ("advantage", np.asarray(advantage, float)),
    ):
        mean, low, high = t_interval(np.asarray(values, float))
        n |= {name: mean, f"{name}_low": low, f"{name}_high": high, f"{name}_seeds": len(values)}
    for net, part in (("plain", plain), ("residual", residual)):
        per_depth = part.groupby("depth")["final_loss"].median()
        n |= {f"{net}_depth{d}": float(v) for d, v in per_depth.items()}
    n["cells_at_lr_edge"] = float(cells["at_edge"].sum())
    if not healthy:
        return None, n
    residual_holds = n["advantage_low"] > MIN_GAP and n["residual_rise_high"] < MIN_GAP
    return bool(n["plain_rise_low"] > MIN_GAP and residual_holds), n


def _problem(table: pd.DataFrame, cells: pd.DataFrame) -> str:
    """Why the sweep cannot be judged ('' when it can)."""
    if cells.empty or cells["residual"].nunique() < 2:
        return "the sweep needs plain and residual nets"
    seeds = cells.groupby(["norm", "residual", "depth"])["seed"].nunique().min()
    needs = [
        (cells["depth"].nunique() < MIN_DEPTHS, f"{MIN_DEPTHS} depths"),
        (seeds < MIN_SEEDS, f"{MIN_SEEDS} seeds per cell"),
        (cells["lrs"].min() < MIN_LRS, f"{MIN_LRS} learning rates per cell"),
        (table["steps"].min() < MIN_STEPS, f"{MIN_STEPS} steps (reachable error, not speed)"),
    ]
    missing = [what for lacking, what in needs if lacking]
    return "the verdict needs " + ", ".join(missing) if missing else ""


def _arm_text(norm: str, n: dict[str, float], ok: bool | None) -> str:
    """One norm arm's sentence."""
    d = int(n["deepest"])
    grads = (
        f"plain ||delta^1||/||delta^L|| at step 0 {n['delta_ratio_min']:.2g}-"
        f"{n['delta_ratio_max']:.2g} ({'healthy' if n['healthy'] else 'NOT healthy'}: within "
        f"{HEALTHY:g}x of 1)"
    )
    plain = ", ".join(
        f"{k.split('depth')[1]}: {v:.3g}" for k, v in n.items() if k.startswith("plain_depth")
    )
    res = ", ".join(
        f"{k.split('depth')[1]}: {v:.3g}" for k, v in n.items() if k.startswith("residual_depth")
    )
    text = (
        f"norm={norm}: {grads}; reachable training loss L* (median over seeds, best lr) by "
        f"depth, plain {plain}; residual {res}; plain rise at depth {d} {n['plain_rise']:+.3f} "
        f"[{n['plain_rise_low']:+.3f}, {n['plain_rise_high']:+.3f}] (needs > {MIN_GAP}); "
        f"residual advantage there {n['advantage']:+.3f} [{n['advantage_low']:+.3f}, "
        f"{n['advantage_high']:+.3f}] (needs > {MIN_GAP}), residual rise "
        f"{n['residual_rise']:+.3f} [{n['residual_rise_low']:+.3f}, "
        f"{n['residual_rise_high']:+.3f}] (needs upper end < {MIN_GAP}); "
        f"{n['cells_at_lr_edge']:.0f} cells' best lr at an end of the grid"
    )
    verdict = {True: "reproduced", False: "not reproduced", None: "not judged"}[ok]
    return f"{text} -> {verdict}"


def verdict(sweep: Sweep) -> Verdict:
    """Claims 0-2 per norm arm (see the module docstring). Reproduced when every judged arm
    reproduces; undecided when the sweep cannot be judged or no arm has healthy gradients."""
    table = final_losses(sweep)
    cells = reachable(table) if len(table) else pd.DataFrame()
    numbers: dict[str, float] = {"diverged_runs": float((table["status"] == "diverged").sum())}
    problem = _problem(table, cells)
    if problem:
        grads = table[~table["residual"]]["delta_ratio_initial"] if len(table) else table
        seen = f" (plain ||delta^1||/||delta^L|| at step 0: {grads.min():.2g}-{grads.max():.2g})"
        text = f"{problem}; run +experiment=degradation." + (seen if len(grads) else "")
        return Verdict("degradation", None, text, numbers)
    parts, judged = [], []
    for norm, arm in cells.groupby("norm"):
        ok, n = judge_arm(arm)
        numbers |= {f"{norm}_{k}": v for k, v in n.items()}
        parts.append(_arm_text(norm, n, ok))
        if ok is not None:
            judged.append(ok)
    text = "; ".join(parts) + f". {numbers['diverged_runs']:.0f} runs diverged."
    return Verdict("degradation", all(judged) if judged else None, text, numbers)


def _by_depth(cells: pd.DataFrame, column: str, ylabel: str, title: str) -> plt.Figure:
    """``column`` against depth, plain vs residual, one panel per norm: the median over
    seeds with the min-max band and every seed as a dot (infinite values left out)."""
    norms = sorted(cells["norm"].unique())
    fig, axes = plt.subplots(1, len(norms), figsize=(max(7.0, 5.2 * len(norms)), 4), squeeze=False)
    for ax, norm in zip(axes[0], norms, strict=True):
        part = cells[cells["norm"] == norm].replace([np.inf], np.nan)
        part = part.assign(net=np.where(part["residual"], "residual", "plain"))
        style = {"x": "depth", "y": column, "hue": "net", "hue_order": ["plain", "residual"]}
        sns.lineplot(part, **style, estimator="median", errorbar=("pi", 100), marker="o", ax=ax)
        sns.scatterplot(part, **style, legend=False, alpha=0.35, s=15, ax=ax)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(
            sorted(part["depth"].unique()), [str(d) for d in sorted(part["depth"].unique())]
        )
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set(xlabel="depth (hidden layers)", ylabel=ylabel, title=f"norm={norm}")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """loss_by_depth: L* (best lr per seed) against depth; gradient_by_depth: ||delta^1|| /
    ||delta^L|| at step 0 against depth."""
    cells = reachable(final_losses(sweep))
    return {
        "loss_by_depth": _by_depth(
            cells,
            "final_loss",
            "reachable training loss L* (best lr)",
            "the degradation problem: reachable training loss against depth",
        ),
        "gradient_by_depth": _by_depth(
            cells,
            "delta_ratio_initial",
            r"$\|\delta^1\| / \|\delta^L\|$ at step 0",
            "gradients at initialisation: healthy?",
        ),
    }


STUDIES.register("degradation")(
    Study(
        "degradation",
        "With healthy gradients at initialisation and training long enough to compare "
        "reachable error, does a plain net's training loss rise with depth past some point "
        "while a residual net's does not?",
        "He, Zhang, Ren & Sun 2016, Deep Residual Learning (Fig. 1, Fig. 4)",
        figures,
        verdict,
    )
)
