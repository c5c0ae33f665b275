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

Parts: :mod:`._edge_of_chaos_depths` (trained runs, L and L_max), :mod:`._edge_of_chaos_fit`
(the fit and its bootstrap) and :mod:`._edge_of_chaos_figures`; here the verdict.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab import theory
from depthlab.results import Sweep
from depthlab.studies._edge_of_chaos_depths import (
    CHANCE,
    PAPER_CONSTANT,
    TRAINED_ACCURACY,
    depth_limits,
    trainability,
)
from depthlab.studies._edge_of_chaos_figures import heatmap_figure, scaling_figure
from depthlab.studies._edge_of_chaos_fit import Fit, fit_constant
from depthlab.studies.base import STUDIES, Study, Verdict

CONSTANT_RANGE = (PAPER_CONSTANT / 2, PAPER_CONSTANT * 2)  # "about 6": within a factor 2
SLOPE_RANGE = (0.5, 2.0)  # L_max proportional to xi_c: the slope's interval inside this
MIN_POINTS = 4  # uncensored sigma_w2 values needed for a fit
MIN_SPAN = 2.0  # ... whose xi_c span at least this factor
MIN_SEEDS = 2


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """``trainability`` (the heat map with 6 xi_c and the fit) and ``scaling`` (L_max
    against xi_c)."""
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
