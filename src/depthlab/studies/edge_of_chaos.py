"""The edge of chaos (Schoenholz et al. 2017): which (sigma_w2, depth) nets train.

Measured: per run of the tanh grid at fixed sigma_b2, the final training accuracy (over
the whole training set) and the loss drop 1 - final_loss / initial loss; a run counts as
trained when its final accuracy is at least TRAINED_ACCURACY (twice chance on mnist1d's 10
classes) and it did not diverge. Theory: correlations survive about xi_c layers, with

    xi_c = -1 / ln(sigma_w2 E[phi'(u_1) phi'(u_2)])   at the fixed point (q*, c*),

so nets deeper than about 6 xi_c do not train (depthlab.theory.xi_c). Reduction: the
fraction of runs on the predicted side of the line depth = 6 xi_c(sigma_w2): trained below
it, untrained above it; also over the runs far from it (depth / 6 xi_c outside
[1 / FAR, FAR]).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.ticker import NullFormatter

from depthlab import theory
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.studies.common import network_curve

KEYS = ["activation", "init.sigma_w2", "init.sigma_b2", "depth", "status"]
CHANCE = 0.1  # mnist1d has 10 balanced classes
TRAINED_ACCURACY = 2 * CHANCE
FAR = 2.0  # "far above" / "well below": a factor of 2 in depth from the line
LINE_POINTS = 24  # sigma_w2 values of the drawn theory line
ALL_SHARE = 0.8  # reproduced: this share of all runs on the predicted side
FAR_SHARE = 0.9  # and this share of the runs far from the line


def theory_line(
    activation: str, sigma_b2: float, sigma_w2: np.ndarray | list[float]
) -> pd.DataFrame:
    """Columns sigma_w2, xi_c, trainable_depth = 6 xi_c (inf at the critical sigma_w2)."""
    w = np.asarray(sigma_w2, dtype=float)
    xi = np.array([theory.xi_c(activation, s, sigma_b2) for s in w])
    return pd.DataFrame({"sigma_w2": w, "xi_c": xi, "trainable_depth": 6 * xi})


def line_grid(sigma_w2: np.ndarray, activation: str, sigma_b2: float) -> np.ndarray:
    """A log-spaced sigma_w2 grid over the swept range, with two points 2% either side of
    the critical sigma_w2 (where 6 xi_c is far above any swept depth; at the critical
    point itself it is infinite)."""
    low, high = float(np.min(sigma_w2)) / 1.15, float(np.max(sigma_w2)) * 1.15
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    grid = np.geomspace(low, high, LINE_POINTS)
    return np.unique(np.r_[grid, critical * np.array([0.98, 1.02])])


def trainability(sweep: Sweep) -> pd.DataFrame:
    """One row per run: sigma_w2, sigma_b2, depth, final accuracy, loss drop, the predicted
    trainable depth 6 xi_c, whether it trained, whether theory says it should (depth <
    6 xi_c), and whether it is on the predicted side."""
    runs = sweep.runs
    if runs.empty:
        return pd.DataFrame()
    first = network_curve(sweep, "loss", KEYS).groupby("run_id")["value"].first()
    table = runs[["run_id", *KEYS, "final_accuracy", "final_loss"]].copy()
    table = table.rename(columns={"init.sigma_w2": "sigma_w2", "init.sigma_b2": "sigma_b2"})
    table["loss_drop"] = 1 - table["final_loss"] / table["run_id"].map(first)
    predicted = {
        key: 6 * theory.xi_c(key[0], key[1], key[2])
        for key in set(zip(table["activation"], table["sigma_w2"], table["sigma_b2"], strict=True))
    }
    table["trainable_depth"] = [
        predicted[key]
        for key in zip(table["activation"], table["sigma_w2"], table["sigma_b2"], strict=True)
    ]
    table["trained"] = (table["status"] == "ok") & (table["final_accuracy"] >= TRAINED_ACCURACY)
    table["predicted"] = table["depth"] < table["trainable_depth"]
    table["agrees"] = table["trained"] == table["predicted"]
    scaled = table["depth"] / table["trainable_depth"]
    table["far"] = (scaled > FAR) | (scaled < 1 / FAR)
    return table.sort_values(["sigma_w2", "depth"]).reset_index(drop=True)


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted grid values: midpoints (geometric when ``log``)."""
    v = np.log(values) if log else np.asarray(values, float)
    if len(v) == 1:
        edges = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.r_[2 * v[0] - mid[0], mid, 2 * v[-1] - mid[-1]]
    return np.exp(edges) if log else edges


def heatmap_figure(table: pd.DataFrame) -> plt.Figure:
    """Final training accuracy over sigma_w2 x depth (log depth), each cell annotated, with
    the theory line 6 xi_c(sigma_w2) and the critical sigma_w2 (chi_1 = 1) drawn over it."""
    activation, sigma_b2 = table["activation"].iloc[0], float(table["sigma_b2"].iloc[0])
    w, d = np.sort(table["sigma_w2"].unique()), np.sort(table["depth"].unique())
    grid = table.pivot_table(index="depth", columns="sigma_w2", values="final_accuracy")
    grid = grid.reindex(index=d, columns=w)
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    norm = Normalize(CHANCE, max(0.3, float(np.nanmax(grid.to_numpy()))))
    mesh = ax.pcolormesh(
        _edges(w, False), _edges(d, True), grid.to_numpy(), cmap="viridis", norm=norm
    )
    fig.colorbar(mesh, ax=ax, label="final training accuracy (chance 0.1)")
    for (depth, sw), acc in grid.stack().items():
        color = "white" if acc < norm.vmin + 0.5 * (norm.vmax - norm.vmin) else "black"
        ax.text(sw, depth, f"{acc:.2f}", ha="center", va="center", fontsize=7, color=color)
    line = theory_line(activation, sigma_b2, line_grid(w, activation, sigma_b2))
    ax.plot(line["sigma_w2"], line["trainable_depth"], "r-", lw=2, label=r"theory: $6\,\xi_c$")
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    ax.axvline(
        critical, color="red", ls=":", lw=1, label=rf"$\chi_1 = 1$ ($\sigma_w^2$={critical:.2f})"
    )
    ax.set_yscale("log")
    ax.set_ylim(_edges(d, True)[[0, -1]])
    ax.set_xlim(_edges(w, False)[[0, -1]])
    ax.set_yticks(d, [str(x) for x in d])
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel("depth (hidden layers)")
    ax.set_title(f"trainability of {activation} nets, $\\sigma_b^2$ = {sigma_b2:g}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.tight_layout()
    return fig


def collapse_figure(table: pd.DataFrame) -> plt.Figure:
    """Final training accuracy against depth / 6 xi_c (log): theory says every run left of
    1 trains and every run right of it does not, whatever its sigma_w2."""
    fig, ax = plt.subplots(figsize=(6, 4))
    scaled = (table["depth"] / table["trainable_depth"]).clip(lower=1e-3)
    points = ax.scatter(
        scaled, table["final_accuracy"], c=table["sigma_w2"], cmap="coolwarm", s=30, edgecolor="k"
    )
    fig.colorbar(points, ax=ax, label=r"$\sigma_w^2$")
    ax.axvline(1, color="red", lw=1.5, label=r"depth = $6\,\xi_c$")
    ax.axhline(TRAINED_ACCURACY, color="grey", ls="--", lw=1, label="trained threshold")
    ax.axhline(CHANCE, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel(r"depth / $6\,\xi_c(\sigma_w^2)$")
    ax.set_ylabel("final training accuracy")
    ax.set_title("trainability against depth in units of the theory's depth scale")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = trainability(sweep)
    return {"trainability": heatmap_figure(table), "collapse": collapse_figure(table)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when at least ALL_SHARE (80%) of all runs, and FAR_SHARE (90%) of the runs
    far from the line (depth more than FAR times above or below 6 xi_c), are on the
    predicted side: trained (final training accuracy >= TRAINED_ACCURACY, not diverged)
    below the line, untrained above it. Undecided without runs far from the line on both
    of its sides."""
    table = trainability(sweep)
    if table.empty:
        return Verdict("edge_of_chaos", None, "the sweep has no runs.", {})
    far = table[table["far"]]
    numbers = {
        "runs": float(len(table)),
        "fraction_predicted_side": float(table["agrees"].mean()),
        "far_runs": float(len(far)),
        "fraction_predicted_side_far": float(far["agrees"].mean()) if len(far) else np.nan,
        "accuracy_threshold": TRAINED_ACCURACY,
        "trained_above_line": float((table["trained"] & ~table["predicted"]).sum()),
        "untrained_below_line": float((~table["trained"] & table["predicted"]).sum()),
    }
    if len(far) == 0 or far["predicted"].all() or not far["predicted"].any():
        return Verdict(
            "edge_of_chaos",
            None,
            "the sweep lacks runs far above and far below the 6 xi_c line; run "
            "+experiment=edge_of_chaos.",
            numbers,
        )
    ok = (
        numbers["fraction_predicted_side"] >= ALL_SHARE
        and numbers["fraction_predicted_side_far"] >= FAR_SHARE
    )
    return Verdict("edge_of_chaos", ok, _text(table, numbers), numbers)


def _text(table: pd.DataFrame, numbers: dict[str, float]) -> str:
    """The verdict's sentence, naming the runs on the wrong side."""
    wrong = table[~table["agrees"]]
    listed = ", ".join(
        f"sigma_w2={r.sigma_w2:g} depth {r.depth} (acc {r.final_accuracy:.2f}, 6xi_c "
        f"{r.trainable_depth:.0f})"
        for r in wrong.itertuples()
    )
    return (
        f"a run counts as trained at final training accuracy >= {TRAINED_ACCURACY:.2f} "
        f"(chance {CHANCE}); {numbers['fraction_predicted_side']:.0%} of {len(table)} runs "
        f"are on the side of depth = 6 xi_c that theory predicts, "
        f"{numbers['fraction_predicted_side_far']:.0%} of the {int(numbers['far_runs'])} "
        f"runs more than {FAR:g}x from the line; {int(numbers['trained_above_line'])} trained "
        f"above it, {int(numbers['untrained_below_line'])} failed below it"
        + (f" (on the wrong side: {listed})" if listed else "")
        + "."
    )


STUDIES.register("edge_of_chaos")(
    Study(
        "edge_of_chaos",
        "Do tanh nets train only where depth < 6 xi_c(sigma_w2), with every depth trainable "
        "at the order-chaos boundary?",
        "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017",
        figures,
        verdict,
    )
)
