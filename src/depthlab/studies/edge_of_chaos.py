"""The edge of chaos (Schoenholz et al. 2017): how deep can a tanh net be and still train?

Theory: correlations between inputs survive about xi_c layers,

    xi_c = -1 / ln(sigma_w2 E[phi'(u_1) phi'(u_2)])   at the fixed point (q*, c*),

which diverges at the critical sigma_w2 (chi_1 = 1); the paper finds nets train up to about
L_max = 6 xi_c layers (depthlab.theory.xi_c).

Measured, per run of the (sigma_w2, depth, seed) grid at fixed sigma_b2: the final training
accuracy over the whole training set; a run has trained when it reaches TRAINED_ACCURACY
(twice chance on mnist1d's 10 classes) without diverging. Reductions:

- per (sigma_w2, seed), the trainable depth L: the geometric mean of the deepest depth that
  trained and the next depth of the grid (censored when the deepest depth of the grid
  trained, or none did);
- per sigma_w2, L_max: the geometric mean of L over seeds, with its range over seeds;
- the fit log L_max = log c + log xi_c over the sigma_w2 whose L_max is not censored, and the
  free fit log L_max = a + slope log xi_c; intervals are 95% percentile intervals of a
  two-level bootstrap (sigma_w2 values, then seeds within each), so they carry both the
  seeds' noise and the scatter of the points about the line.

The verdict's criteria are fixed in :func:`verdict`, before any grid was run.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.ticker import NullFormatter

from depthlab import theory
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.studies.common import network_curve

KEYS = ["activation", "init.sigma_w2", "init.sigma_b2", "depth", "seed", "status"]
CHANCE = 0.1  # mnist1d has 10 balanced classes
TRAINED_ACCURACY = 2 * CHANCE
PAPER_CONSTANT = 6.0  # Schoenholz et al.: nets train up to about 6 xi_c layers
CONSTANT_RANGE = (PAPER_CONSTANT / 2, PAPER_CONSTANT * 2)  # "about 6": within a factor 2
SLOPE_RANGE = (0.5, 2.0)  # L_max proportional to xi_c: the slope's interval inside this
MIN_POINTS = 4  # uncensored sigma_w2 values needed for a fit
MIN_SPAN = 2.0  # ... whose xi_c span at least this factor
MIN_SEEDS = 2
RESAMPLES = 2000
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


def trainability(sweep: Sweep) -> pd.DataFrame:
    """One row per run: sigma_w2, sigma_b2, depth, seed, final accuracy, loss drop, xi_c, the
    paper's trainable depth 6 xi_c, whether it trained and whether 6 xi_c predicts it."""
    runs = sweep.runs
    if runs.empty:
        return pd.DataFrame()
    first = network_curve(sweep, "loss", KEYS).groupby("run_id")["value"].first()
    table = runs[["run_id", *KEYS, "final_accuracy", "final_loss"]].copy()
    table = table.rename(columns={"init.sigma_w2": "sigma_w2", "init.sigma_b2": "sigma_b2"})
    table["loss_drop"] = 1 - table["final_loss"] / table["run_id"].map(first)
    cells = set(zip(table["activation"], table["sigma_w2"], table["sigma_b2"], strict=True))
    xi = {key: theory.xi_c(*key) for key in cells}
    keys = zip(table["activation"], table["sigma_w2"], table["sigma_b2"], strict=True)
    table["xi_c"] = [xi[key] for key in keys]
    table["trainable_depth"] = PAPER_CONSTANT * table["xi_c"]
    table["trained"] = (table["status"] == "ok") & (table["final_accuracy"] >= TRAINED_ACCURACY)
    table["predicted"] = table["depth"] < table["trainable_depth"]
    table["agrees"] = table["trained"] == table["predicted"]
    return table.sort_values(["sigma_w2", "depth", "seed"]).reset_index(drop=True)


def seed_depths(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (sigma_w2, seed): ``depth_limit`` L, the geometric mean of the deepest
    trained depth and the next depth of the grid, and ``censored``: 'above' when the
    deepest depth of the grid trained (L is a lower bound), 'below' when none did."""
    depths = np.sort(table["depth"].unique())
    rows = []
    for (sigma_w2, seed), runs in table.groupby(["sigma_w2", "seed"]):
        trained = set(runs.loc[runs["trained"], "depth"])
        deepest = max(trained) if trained else None
        if deepest is None:
            limit, censored = float(depths[0]), "below"
        elif deepest == depths[-1]:
            limit, censored = float(depths[-1]), "above"
        else:
            following = depths[np.searchsorted(depths, deepest) + 1]
            limit, censored = float(np.sqrt(deepest * following)), ""
        rows.append(
            {"sigma_w2": sigma_w2, "seed": seed, "depth_limit": limit, "censored": censored}
        )
    return pd.DataFrame(rows)


def depth_limits(table: pd.DataFrame) -> pd.DataFrame:
    """One row per sigma_w2: xi_c, ``L_max`` (geometric mean of the seeds' L), its range over
    seeds (``L_low``, ``L_high``), the number of seeds and ``censored`` (any seed's)."""
    per_seed = seed_depths(table)
    xi = table.groupby("sigma_w2")["xi_c"].first()
    rows = []
    for sigma_w2, seeds in per_seed.groupby("sigma_w2"):
        limits = seeds["depth_limit"].to_numpy()
        marks = set(seeds["censored"]) - {""}
        rows.append(
            {
                "sigma_w2": sigma_w2,
                "xi_c": xi[sigma_w2],
                "L_max": float(np.exp(np.log(limits).mean())),
                "L_low": float(limits.min()),
                "L_high": float(limits.max()),
                "seeds": len(limits),
                "censored": "above" if "above" in marks else ("below" if marks else ""),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Fit:
    """L_max = c xi_c (and the free slope of log L_max on log xi_c) with 95% intervals."""

    c: float
    c_low: float
    c_high: float
    slope: float
    slope_low: float
    slope_high: float
    points: int
    span: float  # max xi_c / min xi_c over the fitted points


def _constant_and_slope(log_xi: np.ndarray, log_limit: np.ndarray) -> tuple[float, float]:
    """c = exp(mean(log L - log xi)) and the least-squares slope of log L on log xi."""
    c = float(np.exp(np.mean(log_limit - log_xi)))
    slope = float(np.polyfit(log_xi, log_limit, 1)[0]) if np.ptp(log_xi) > 0 else np.nan
    return c, slope


def fit_constant(table: pd.DataFrame, resamples: int = RESAMPLES, seed: int = 0) -> Fit | None:
    """The fit over the sigma_w2 values whose L_max is not censored (None with fewer than
    two). Bootstrap: resample those sigma_w2 values, then each one's seeds, with replacement."""
    limits = depth_limits(table)
    fitted = limits[(limits["censored"] == "") & np.isfinite(limits["xi_c"])]
    if len(fitted) < 2:
        return None
    per_seed = seed_depths(table).groupby("sigma_w2")["depth_limit"]
    logs = [np.log(per_seed.get_group(s).to_numpy()) for s in fitted["sigma_w2"]]
    log_xi = np.log(fitted["xi_c"].to_numpy())
    c, slope = _constant_and_slope(log_xi, np.array([v.mean() for v in logs]))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        cells = rng.integers(0, len(logs), len(logs))
        means = np.array([rng.choice(logs[i], len(logs[i])).mean() for i in cells])
        draws.append(_constant_and_slope(log_xi[cells], means))
    c_draws, slope_draws = np.array(draws).T
    c_low, c_high = np.percentile(c_draws, [2.5, 97.5])
    slope_low, slope_high = np.nanpercentile(slope_draws, [2.5, 97.5])
    return Fit(
        c,
        float(c_low),
        float(c_high),
        slope,
        float(slope_low),
        float(slope_high),
        len(fitted),
        float(np.exp(np.ptp(log_xi))),
    )


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


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = trainability(sweep)
    fit = fit_constant(table)
    return {"trainability": heatmap_figure(table, fit), "scaling": scaling_figure(table, fit)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when both of the paper's claims hold in numbers:

    1. L_max is proportional to xi_c: the 95% interval of the free slope of log L_max on
       log xi_c lies inside SLOPE_RANGE (0.5 to 2) and contains 1;
    2. the constant is about the paper's 6: the 95% interval of c overlaps CONSTANT_RANGE
       (3 to 12, a factor 2 either way).

    Not reproduced when either fails. Undecided when the sweep cannot tell: fewer than
    MIN_SEEDS seeds per sigma_w2, or fewer than MIN_POINTS sigma_w2 values with an
    uncensored L_max, or those span less than a factor MIN_SPAN in xi_c. The critical
    cell's result at the deepest depth is reported beside it (the paper: deep nets train
    only near criticality)."""
    table = trainability(sweep)
    if table.empty:
        return Verdict("edge_of_chaos", None, "the sweep has no runs.", {})
    limits = depth_limits(table)
    fit = fit_constant(table)
    numbers = _numbers(table, limits, fit)
    seeds = int(limits["seeds"].min())
    if seeds < MIN_SEEDS or fit is None or fit.points < MIN_POINTS or fit.span < MIN_SPAN:
        return Verdict(
            "edge_of_chaos",
            None,
            f"cannot fit L_max = c xi_c: {seeds} seed(s) per sigma_w2 and "
            f"{int(numbers['points'])} sigma_w2 value(s) with an uncensored trainable depth "
            f"(needs {MIN_SEEDS} and {MIN_POINTS}, spanning a factor {MIN_SPAN:g} in xi_c); "
            "run +experiment=edge_of_chaos.",
            numbers,
        )
    proportional = SLOPE_RANGE[0] <= fit.slope_low <= 1 <= fit.slope_high <= SLOPE_RANGE[1]
    about_six = fit.c_low <= CONSTANT_RANGE[1] and fit.c_high >= CONSTANT_RANGE[0]
    return Verdict(
        "edge_of_chaos", bool(proportional and about_six), _text(limits, fit, numbers), numbers
    )


def _numbers(table: pd.DataFrame, limits: pd.DataFrame, fit: Fit | None) -> dict[str, float]:
    """The verdict's numbers: the fit, its size, and the critical cell at the deepest depth."""
    activation, sigma_b2 = table["activation"].iloc[0], float(table["sigma_b2"].iloc[0])
    critical = theory.critical_sigma_w2(activation, sigma_b2)
    nearest = limits["sigma_w2"].iloc[int(np.argmin(np.abs(limits["sigma_w2"] - critical)))]
    deepest = table["depth"].max()
    at_critical = table[(table["sigma_w2"] == nearest) & (table["depth"] == deepest)]
    numbers = {
        "runs": float(len(table)),
        "seeds": float(limits["seeds"].min()),
        "points": float(fit.points if fit else (limits["censored"] == "").sum()),
        "critical_sigma_w2": critical,
        "nearest_critical_sigma_w2": float(nearest),
        "deepest_depth": float(deepest),
        "critical_trained_at_deepest": float(at_critical["trained"].mean()),
        "fraction_on_side_of_6xi_c": float(table["agrees"].mean()),
        "accuracy_threshold": TRAINED_ACCURACY,
    }
    if fit is not None:
        numbers |= {k: float(getattr(fit, k)) for k in Fit.__dataclass_fields__}
    return numbers


def _text(limits: pd.DataFrame, fit: Fit, numbers: dict[str, float]) -> str:
    """The verdict's sentence: the constant and the slope with their intervals, each sigma_w2's
    L_max against 6 xi_c, and the critical cell."""
    cells = "; ".join(
        f"{r.sigma_w2:g}: {r.L_max:.0f}"
        + (" (censored)" if r.censored else "")
        + f" vs 6 xi_c {6 * r.xi_c:.0f}"
        for r in limits.itertuples()
    )
    return (
        f"a run has trained at final training accuracy >= {TRAINED_ACCURACY:.2f} (chance "
        f"{CHANCE}); over {fit.points} sigma_w2 values with an uncensored trainable depth "
        f"(xi_c spanning {fit.span:.1f}x), L_max = c xi_c with c = {fit.c:.2f} (95% "
        f"{fit.c_low:.2f}-{fit.c_high:.2f}; the paper: {PAPER_CONSTANT:g}), free slope "
        f"{fit.slope:.2f} (95% {fit.slope_low:.2f}-{fit.slope_high:.2f}; theory: 1). L_max "
        f"by sigma_w2: {cells}. At the critical sigma_w2 "
        f"({numbers['nearest_critical_sigma_w2']:g}) "
        f"{numbers['critical_trained_at_deepest']:.0%} of seeds trained at depth "
        f"{int(numbers['deepest_depth'])}."
    )


STUDIES.register("edge_of_chaos")(
    Study(
        "edge_of_chaos",
        "Is the trainable depth of tanh nets proportional to the correlation depth scale "
        "xi_c(sigma_w2), with L_max about 6 xi_c as Schoenholz et al. found?",
        "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017",
        figures,
        verdict,
    )
)
