"""Learning speed against depth (Saxe, McClelland & Ganguli 2014; Pennington, Schoenholz &
Ganguli 2017).

Measured, per run: the steps to criterion T, the first step at which the training loss
(the whole training set, evaluated every ``eval_every`` steps) is at or below
``CRITERION[activation]``, placed by linear interpolation between that evaluation and the
one before. A run that never gets there, or diverges first, is censored: T = inf, known
only to exceed its last step. Reductions: per cell (activation, init, depth, seed), the best
learning rate of the grid and T* = min over lr of T, with the lr range whose T is within
``SENSITIVITY`` times T* (how much the outcome depends on the lr). Per (activation, init,
depth): the median of T* over seeds and its range.

Claims, with criteria fixed before the grid (a pilot at depths 8 and 32, one seed, set
only the two loss criteria):
1. Saxe: a deep linear net with orthogonal weights learns in a time independent of depth:
   its median T* varies by at most ``FLAT`` times over the depths.
2. Saxe: with scaled Gaussian weights (variance 1/n) the time grows with depth: at the
   deepest depth its T* is at least ``SLOWER`` times the orthogonal net's (medians), every
   seed of it slower than every orthogonal seed, and at least ``SLOWER`` times its own T*
   at the shallowest depth.
3. Pennington et al.: on the critical line, an orthogonal tanh net learns faster than a
   Gaussian one, by a factor that grows with depth: at the deepest depth the Gaussian T* is
   at least ``SLOWER`` times the orthogonal one (medians, every seed slower), and that
   factor exceeds the one at the shallowest depth.

Parts: :mod:`._dynamics_times` (T, T* and the lr ranges) and :mod:`._dynamics_figures`;
here the claims and the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab.results import Sweep
from depthlab.studies._dynamics_figures import loss_figure, sensitivity_figure, time_figure
from depthlab.studies._dynamics_times import CRITERION, DATA, INIT_ORDER, best, summary, times
from depthlab.studies.base import STUDIES, Study, Verdict

FLAT = 2.0  # claim 1: max / min over depths of the orthogonal linear net's median T*
SLOWER = 1.5  # claims 2 and 3: the Gaussian / orthogonal factor (and the depth growth)


@dataclass(frozen=True)
class Comparison:
    """Gaussian against orthogonal for one activation, at its shallowest and deepest depth
    with both inits: the factors median T*(Gaussian) / median T*(orthogonal) (inf when only
    the Gaussian runs are censored), the Gaussian's own growth T*(deep) / T*(shallow), and
    whether every Gaussian seed at the deepest depth is slower than every orthogonal one."""

    shallow: int
    deep: int
    factor_shallow: float
    factor_deep: float
    gaussian_growth: float
    separated: bool


def compare(per: pd.DataFrame, cells: pd.DataFrame, activation: str) -> Comparison | str:
    """The :class:`Comparison` for ``activation``, or the sentence saying why there is none
    (fewer than two depths 4x apart with both inits, one seed, or no init met the criterion)."""
    rows = per[per["activation"] == activation]
    by_init = [set(rows[rows["init"] == init]["depth"]) for init in INIT_ORDER]
    depths = sorted(by_init[0] & by_init[1])
    if len(depths) < 2 or depths[-1] < 4 * depths[0] or rows["seeds"].min() < 2:
        return f"{activation} nets need both inits at two depths 4x apart with 2+ seeds"
    median = rows.set_index(["init", "depth"])["median"]
    shallow, deep = depths[0], depths[-1]
    factors = [median["gaussian", d] / median["orthogonal", d] for d in (shallow, deep)]
    if not np.isfinite(median["orthogonal", shallow]) or not np.isfinite(
        median["orthogonal", deep]
    ):
        return f"orthogonal {activation} nets did not meet the criterion within their steps"
    deepest = cells[(cells["activation"] == activation) & (cells["depth"] == deep)]
    gaussian = deepest[deepest["init"] == "gaussian"]["best_time"]
    orthogonal = deepest[deepest["init"] == "orthogonal"]["best_time"]
    return Comparison(
        shallow,
        deep,
        float(factors[0]),
        float(factors[1]),
        float(median["gaussian", deep] / median["gaussian", shallow]),
        bool(gaussian.min() > orthogonal.max()),
    )


def _orthogonal_flat(per: pd.DataFrame) -> tuple[bool | None, str, dict[str, float]]:
    """Claim 1: the linear orthogonal net's median T* over depths varies by <= FLAT."""
    rows = per[(per["activation"] == "linear") & (per["init"] == "orthogonal")]
    if len(rows) < 2 or rows["depth"].max() < 4 * rows["depth"].min() or rows["seeds"].min() < 2:
        return None, "(1) needs linear orthogonal nets at two depths 4x apart, 2+ seeds", {}
    spread = float(rows["median"].max() / rows["median"].min())
    listed = ", ".join(
        f"{t:.0f} at depth {d}" for d, t in zip(rows["depth"], rows["median"], strict=True)
    )
    ok = bool(np.isfinite(spread) and spread <= FLAT)
    text = f"(1) orthogonal linear T*: {listed} steps; max/min {spread:.2f} (<= {FLAT:g})"
    return ok, text, {"linear_orthogonal_spread": spread}


def _gaussian_slower(found: Comparison | str) -> tuple[bool | None, str, dict[str, float]]:
    """Claim 2 on the linear comparison."""
    if isinstance(found, str):
        return None, f"(2) {found}", {}
    ok = found.factor_deep >= SLOWER and found.separated and found.gaussian_growth >= SLOWER
    text = (
        f"(2) Gaussian linear T* grows {_x(found.gaussian_growth)} from depth "
        f"{found.shallow} to {found.deep} (>= {SLOWER:g}x) and is {_x(found.factor_deep)} the "
        f"orthogonal one at depth {found.deep} (>= {SLOWER:g}x, every seed slower: "
        f"{_yes(found.separated)})"
    )
    return bool(ok), text, _numbers("linear", found)


def _tanh_speedup(found: Comparison | str) -> tuple[bool | None, str, dict[str, float]]:
    """Claim 3 on the tanh comparison."""
    if isinstance(found, str):
        return None, f"(3) {found}", {}
    ok = (
        found.factor_deep >= SLOWER and found.separated and found.factor_deep > found.factor_shallow
    )
    text = (
        f"(3) orthogonal tanh is {_x(found.factor_deep)} faster than Gaussian at depth "
        f"{found.deep} (>= {SLOWER:g}x, every seed: {_yes(found.separated)}) and "
        f"{_x(found.factor_shallow)} at depth {found.shallow} (the factor must grow)"
    )
    return bool(ok), text, _numbers("tanh", found)


def _x(factor: float) -> str:
    """A factor between two median T*, or why it has no finite value."""
    return f"{factor:.2f}x" if np.isfinite(factor) else "unbounded (median T* not reached)"


def _yes(flag: bool) -> str:
    """'yes' or 'no'."""
    return "yes" if flag else "no"


def _numbers(activation: str, found: Comparison) -> dict[str, float]:
    """The comparison's factors and growth, named by activation and depth."""
    return {
        f"{activation}_factor_depth{found.shallow}": found.factor_shallow,
        f"{activation}_factor_depth{found.deep}": found.factor_deep,
        f"{activation}_gaussian_growth": found.gaussian_growth,
    }


def _best_lrs(cells: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The median best lr per (activation, init, depth) as a sentence and numbers, with the
    count of cells whose best lr is at an end of the grid."""
    per = cells.groupby(["activation", "init", "depth"])["best_lr"].median()
    numbers = {f"{a}_{i}_depth{d}_best_lr": float(lr) for (a, i, d), lr in per.items()}
    parts = []
    for (activation, init), rows in per.groupby(level=[0, 1]):
        listed = "/".join(f"{lr:g}" for lr in rows)
        depths = "/".join(str(d) for d in rows.index.get_level_values(2))
        parts.append(f"{init} {activation} {listed} at depths {depths}")
    edge = int(cells["at_edge"].sum())
    text = (
        f"best lr (median over seeds): {'; '.join(parts)}; {edge} of {len(cells)} cells "
        "at an end of the lr grid"
    )
    return text, numbers | {"cells_at_lr_edge": float(edge)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when every claim the sweep can decide holds; undecided when it decides
    none. A sweep without tanh runs (the quick variant) decides claims 1 and 2 and says
    that claim 3 needs the full preset."""
    table = times(sweep)
    if table.empty:
        return Verdict(
            "dynamics", None, "no linear or tanh runs with a loss curve; run +experiment=dynamics."
        )
    if set(table["data"]) != {DATA}:
        return Verdict(
            "dynamics",
            None,
            f"the loss criteria are set for data={DATA}, not {sorted(set(table['data']))}.",
        )
    cells = best(table)
    per = summary(cells)
    claims = [
        _orthogonal_flat(per),
        _gaussian_slower(compare(per, cells, "linear")),
        _tanh_speedup(compare(per, cells, "tanh")),
    ]
    lrs, numbers = _best_lrs(cells)
    decided = [ok for ok, _, _ in claims if ok is not None]
    for _, _, found in claims:
        numbers |= found
    criteria = ", ".join(f"{a} {c:g}" for a, c in CRITERION.items())
    text = (
        f"steps to a training loss of ({criteria}) at each cell's best lr, T*, median over "
        f"seeds. {'; '.join(text for _, text, _ in claims)}. {lrs}."
    )
    if len(decided) < len(claims):
        text += " Undecided claims need the full preset (+experiment=dynamics)."
    return Verdict("dynamics", all(decided) if decided else None, text, numbers)


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """``steps_to_criterion`` (T* against depth), ``lr_sensitivity`` (T against lr) and
    ``loss`` (curves at the best lrs); none without linear or tanh loss curves."""
    table = times(sweep)
    if table.empty:
        return {}
    cells = best(table)
    return {
        "steps_to_criterion": time_figure(cells),
        "lr_sensitivity": sensitivity_figure(table),
        "loss": loss_figure(sweep, cells),
    }


STUDIES.register("dynamics")(
    Study(
        "dynamics",
        "Does a deep net on the critical line learn in a number of steps independent of depth "
        "with orthogonal weights, and more slowly with depth with Gaussian ones?",
        "Saxe, McClelland & Ganguli 2014; Pennington, Schoenholz & Ganguli 2017",
        figures,
        verdict,
    )
)
