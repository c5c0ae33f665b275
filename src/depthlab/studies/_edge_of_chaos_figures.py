"""The edge-of-chaos study's figures: the trainability heat map on sigma_w2 x depth with
the paper's 6 xi_c and the fitted c xi_c, and L_max against xi_c on log-log axes. The
theory line is drawn from :func:`depthlab.theory.xi_c` on a grid dense near the critical
sigma_w2, where xi_c diverges."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.ticker import NullFormatter

from depthlab import theory
from depthlab.studies._edge_of_chaos_depths import CHANCE, PAPER_CONSTANT, depth_limits
from depthlab.studies._edge_of_chaos_fit import Fit

LINE_POINTS = 24  # sigma_w2 values of the drawn theory line


def theory_line(
    activation: str, sigma_b2: float, sigma_w2: np.ndarray | list[float]
) -> pd.DataFrame:
    """Columns sigma_w2, xi_c, trainable_depth = 6 xi_c (inf at the critical sigma_w2)."""
    w = np.asarray(sigma_w2, dtype=float)
    xi = np.array([theory.xi_c(activation, s, sigma_b2) for s in w])
    return pd.DataFrame({"sigma_w2": w, "xi_c": xi, "trainable_depth": PAPER_CONSTANT * xi})


def line_grid(sigma_w2: np.ndarray, activation: str, sigma_b2: float) -> np.ndarray:
    """A log-spaced sigma_w2 grid over the swept range, with points 2% and 0.2% either side
    of the critical sigma_w2 (where xi_c is infinite)."""
    low, high = float(np.min(sigma_w2)) / 1.15, float(np.max(sigma_w2)) * 1.15
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    grid = np.geomspace(low, high, LINE_POINTS)
    return np.unique(np.r_[grid, critical * np.array([0.98, 0.998, 1.002, 1.02])])


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted grid values: midpoints (geometric when ``log``)."""
    v = np.log(values) if log else np.asarray(values, float)
    if len(v) == 1:
        edges = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.r_[2 * v[0] - mid[0], mid, 2 * v[-1] - mid[-1]]
    return np.exp(edges) if log else edges


def _spread(limits: pd.DataFrame) -> np.ndarray:
    """Error bars from L_max down to L_low and up to L_high (0 where rounding crosses)."""
    below = limits["L_max"] - limits["L_low"]
    above = limits["L_high"] - limits["L_max"]
    return np.clip(np.array([below, above], dtype=float), 0, None)


def heatmap_figure(table: pd.DataFrame, fit: Fit | None = None) -> plt.Figure:
    """Mean final training accuracy over seeds on sigma_w2 x depth (log depth), as in the
    paper's figure, with 6 xi_c (red), the fitted c xi_c and its 95% bounds (orange), each
    sigma_w2's L_max with its range over seeds (black), and the critical sigma_w2."""
    activation, sigma_b2 = table["activation"].iloc[0], float(table["sigma_b2"].iloc[0])
    w, d = np.sort(table["sigma_w2"].unique()), np.sort(table["depth"].unique())
    grid = table.pivot_table(index="depth", columns="sigma_w2", values="final_accuracy")
    grid = grid.reindex(index=d, columns=w)
    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    norm = Normalize(CHANCE, max(0.3, float(np.nanmax(grid.to_numpy()))))
    mesh = ax.pcolormesh(
        _edges(w, False), _edges(d, True), grid.to_numpy(), cmap="viridis", norm=norm
    )
    fig.colorbar(mesh, ax=ax, label="final training accuracy, mean over seeds (chance 0.1)")
    line = theory_line(activation, sigma_b2, line_grid(w, activation, sigma_b2))
    ax.plot(line["sigma_w2"], line["trainable_depth"], "r-", lw=2, label=r"paper: $6\,\xi_c$")
    if fit is not None:
        label = rf"fit: ${fit.c:.1f}\,\xi_c$ (95%: {fit.c_low:.1f}-{fit.c_high:.1f})"
        ax.plot(line["sigma_w2"], fit.c * line["xi_c"], "--", color="orange", lw=1.5, label=label)
        for bound in (fit.c_low, fit.c_high):
            ax.plot(line["sigma_w2"], bound * line["xi_c"], ":", color="orange", lw=1)
    limits = depth_limits(table)
    shown = limits[limits["censored"] == ""]
    ax.errorbar(
        shown["sigma_w2"],
        shown["L_max"],
        yerr=_spread(shown),
        fmt="o",
        color="black",
        mfc="white",
        ms=4,
        capsize=2,
        label=r"$L_{max}$ (range over seeds)",
    )
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    ax.axvline(critical, color="red", ls=":", lw=1, label=rf"$\chi_1 = 1$ ({critical:.3f})")
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


def scaling_figure(table: pd.DataFrame, fit: Fit | None = None) -> plt.Figure:
    """L_max against xi_c (log-log), with the paper's 6 xi_c and the fitted c xi_c: theory
    puts every sigma_w2 on one line through the origin."""
    limits = depth_limits(table)
    fig, ax = plt.subplots(figsize=(6, 4.4))
    for mark, style in (("", "o"), ("above", "^"), ("below", "v")):
        part = limits[limits["censored"] == mark]
        if part.empty:
            continue
        label = {
            "": r"$L_{max}$ (range over seeds)",
            "above": "censored: trains at every depth",
            "below": "censored: trains at none",
        }[mark]
        ax.errorbar(
            part["xi_c"],
            part["L_max"],
            yerr=_spread(part),
            fmt=style,
            capsize=2,
            label=label,
        )
        for row in part.itertuples():
            ax.annotate(
                f"{row.sigma_w2:g}",
                (row.xi_c, row.L_max),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    finite = limits["xi_c"][np.isfinite(limits["xi_c"])]
    xs = np.geomspace(finite.min() / 1.5, finite.max() * 1.5, 50)
    ax.plot(xs, PAPER_CONSTANT * xs, "r-", label=r"paper: $6\,\xi_c$")
    if fit is not None:
        ax.plot(xs, fit.c * xs, "k--", label=rf"fit: ${fit.c:.1f}\,\xi_c$")
        ax.fill_between(xs, fit.c_low * xs, fit.c_high * xs, color="grey", alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\xi_c(\sigma_w^2)$ (mean-field theory)")
    ax.set_ylabel(r"trainable depth $L_{max}$")
    ax.set_title(r"trainable depth against the correlation depth scale")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
