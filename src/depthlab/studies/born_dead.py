"""Born dead: narrow deep ReLU nets that are constant functions at initialisation (Lu, Shin,
Su & Karniadakis 2019, "Dying ReLU and initialization: theory and numerical examples").

Measured: ``dead_frac`` of the ``units`` probe at step 0, the fraction of a hidden layer's
units with phi'(u) = 0 (for ReLU, u <= 0) on every input the probe saw. The preset has
``steps: 0`` (no update; the run records the network at initialisation, as finite_width's
does) and ``batch_size`` >= the training set, so the step-0 probe sees every training input.

A net is born dead when some hidden layer has every unit dead on every training input: the
layers above it then get the same input for every sample and the net is a constant function
(Lu et al. call a net that is constant born dead; the converse, constant without a dead
layer, needs an exact cancellation of probability 0). The nets: width n, D hidden layers,
He normal weights, zero biases. The first d hidden layers of a net are a depth-d net with
the same distribution, so a net whose first fully dead layer is f is born dead at every
depth d >= f: one depth-20 job per width gives every depth 1..20, each net counted at every
depth (the proportions at different depths share their nets). Reduction per (width, d): the
proportion of nets born dead, with a Wilson 95% interval.

Criteria, fixed before the run: at width 2, (a) the depth-20 interval lies wholly above the
depth-2 one and (b) its low end is >= 0.9 ("dies in probability as depth grows"), with >=
100 nets at both depths. Lu et al.'s Monte Carlo values at width 2 are reported beside ours,
with whether each lies in our interval, not required: their inputs were not MNIST-1D's.
"""

from __future__ import annotations

import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.data import DATASETS
from depthlab.errors import ConfigError
from depthlab.frames import metric_rows
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95% intervals

# Lu et al. (2019), Monte Carlo at width 2 (He normal weights, zero biases): the probability
# that the net is born dead at 2, 5, 10 and 20 hidden layers.
LU_WIDTH = 2
LU_PROBABILITY = {2: 0.06, 5: 0.55, 10: 0.90, 20: 1.00}
SHALLOW, DEEP = 2, 20  # criterion (a): the depth-20 interval lies above the depth-2 one
NEAR_ONE = 0.9  # criterion (b): the depth-20 interval's low end
MIN_NETS = 100  # nets per depth for intervals no wider than about +-0.1


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n: centre (k + z^2/2) / (n + z^2),
    half-width z sqrt(k (n - k) / n + z^2 / 4) / (n + z^2); (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return max(0.0, centre - half), min(1.0, centre + half)


def training_set_size(run: pd.Series) -> float:
    """The number of training samples of a run's data set, from its ``data`` and ``data.*``
    columns (no data are made); NaN when they do not describe a registered data set."""
    try:
        option = DATASETS[run["data"]]
        names = {f.name for f in dataclasses.fields(option)} - {"name"}
        given = {k: run[f"data.{k}"] for k in names if pd.notna(run.get(f"data.{k}"))}
        return float(option(**given).sizes()[2])
    except (ConfigError, KeyError, TypeError, ValueError):
        return math.nan


def first_dead_layers(sweep: Sweep) -> pd.DataFrame:
    """One row per run with step-0 records: width, depth, seed, ``inputs`` (how many
    training samples its step-0 probe judged on: min(batch_size, training set)),
    ``whole_set`` (whether that is all of them) and ``first_dead``, the lowest hidden layer
    whose dead_frac is 1 (NaN when none is)."""
    rows = metric_rows(sweep, "dead_frac", ["depth", "width"])
    rows = rows[(rows["step"] == 0) & (rows["layer"] <= rows["depth"])]
    dead = rows[rows["value"] == 1].groupby("run_id")["layer"].min()
    runs = sweep.runs[sweep.runs["run_id"].isin(rows["run_id"])]
    out = runs[["run_id", "width", "depth", "seed", "batch_size"]].copy()
    size = runs.apply(training_set_size, axis=1) if len(runs) else pd.Series(dtype=float)
    out["inputs"] = np.minimum(out["batch_size"].astype(float), size)
    out["whole_set"] = out["batch_size"] >= size
    out["first_dead"] = out["run_id"].map(dead)
    return out.reset_index(drop=True)


def born_dead(first: pd.DataFrame) -> pd.DataFrame:
    """Per width and depth d = 1..(deepest net): ``nets`` (those with >= d hidden layers),
    ``dead`` (those whose first fully dead layer is <= d), the proportion ``p`` and its
    Wilson 95% interval ``low``..``high``."""
    rows = []
    for width, nets in first.groupby("width"):
        for d in range(1, int(nets["depth"].max()) + 1):
            deep_enough = nets[nets["depth"] >= d]
            n, k = len(deep_enough), int((deep_enough["first_dead"] <= d).sum())
            low, high = wilson(k, n)
            rows.append({"width": width, "depth": d, "nets": n, "dead": k, "p": k / n,
                         "low": low, "high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=["width", "depth", "nets", "dead", "p", "low", "high"])


def judge(table: pd.DataFrame, whole_set: bool = True) -> Verdict:
    """The verdict on :func:`born_dead`'s table: criteria (a) and (b) of the module's
    docstring at width LU_WIDTH. Undecided without MIN_NETS nets of that width at depths
    SHALLOW and DEEP, or when the step-0 probe did not see the whole training set."""
    numbers = _numbers(table)
    text = _text(table)
    cells = table.set_index(["width", "depth"])
    need = [(LU_WIDTH, SHALLOW), (LU_WIDTH, DEEP)]
    if not all(c in cells.index and cells.loc[c, "nets"] >= MIN_NETS for c in need):
        reason = f"the sweep lacks {MIN_NETS} nets of width {LU_WIDTH} with {DEEP} hidden layers"
        return Verdict("born_dead", None, f"{reason}; run +experiment=born_dead. {text}", numbers)
    if not whole_set:
        reason = "the step-0 probe did not see the whole training set (batch_size below it)"
        return Verdict("born_dead", None, f"{reason}. {text}", numbers)
    shallow, deep = cells.loc[(LU_WIDTH, SHALLOW)], cells.loc[(LU_WIDTH, DEEP)]
    numbers["deep_above_shallow"] = float(deep["low"] > shallow["high"])
    ok = bool(deep["low"] > shallow["high"] and deep["low"] >= NEAR_ONE)
    return Verdict("born_dead", ok, text, numbers)


def _numbers(table: pd.DataFrame) -> dict[str, float]:
    """p, low, high, nets per width at the depths of LU_PROBABILITY; at LU_WIDTH also Lu's
    value and whether it lies in our interval."""
    numbers: dict[str, float] = {}
    for row in table[table["depth"].isin(list(LU_PROBABILITY))].itertuples():
        key = f"born_dead_w{row.width}_d{row.depth}"
        numbers |= {key: row.p, f"{key}_low": row.low, f"{key}_high": row.high,
                    f"{key}_nets": float(row.nets)}  # fmt: skip
        if row.width == LU_WIDTH:
            lu = LU_PROBABILITY[row.depth]
            numbers[f"{key}_lu"] = lu
            numbers[f"{key}_lu_inside"] = float(row.low <= lu <= row.high)
    return numbers


def _text(table: pd.DataFrame) -> str:
    """The verdict's sentence: per width, the proportion at Lu's depths with intervals."""
    parts = []
    for width, rows in table[table["depth"].isin(list(LU_PROBABILITY))].groupby("width"):
        cells = []
        for r in rows.itertuples():
            lu = ""
            if width == LU_WIDTH:
                where = "in" if r.low <= LU_PROBABILITY[r.depth] <= r.high else "outside"
                lu = f"; Lu {LU_PROBABILITY[r.depth]:.2f}, {where}"
            cells.append(f"depth {r.depth}: {r.p:.3f} ({r.low:.3f}-{r.high:.3f}{lu})")
        parts.append(f"width {width} ({int(rows['nets'].max())} nets): " + ", ".join(cells))
    return (
        "born dead (some hidden layer dead on every training input at step 0), proportion "
        "of nets with Wilson 95% intervals: " + ("; ".join(parts) or "no nets") + f". "
        f"Criteria at width {LU_WIDTH}: the depth-{DEEP} interval above the depth-{SHALLOW} "
        f"one, its low end >= {NEAR_ONE}."
    )


def figure(sweep: Sweep) -> plt.Figure:
    """Proportion of nets born dead against depth, one line per width with its Wilson 95%
    band, and Lu et al.'s Monte Carlo values at width 2."""
    table = born_dead(first_dead_layers(sweep))
    widths = sorted(table["width"].unique())
    colors = dict(zip(widths, sns.color_palette("viridis", len(widths)), strict=True))
    fig, ax = plt.subplots(figsize=(6, 4))
    for width, rows in table.groupby("width"):
        label = f"width {width} ({int(rows['nets'].max())} nets)"
        ax.plot(rows["depth"], rows["p"], "o-", ms=3, color=colors[width], label=label)
        ax.fill_between(rows["depth"], rows["low"], rows["high"], color=colors[width], alpha=0.25)
    ax.plot(list(LU_PROBABILITY), list(LU_PROBABILITY.values()), "kx", ms=9, mew=2,
            label=f"Lu et al. 2019, width {LU_WIDTH}")  # fmt: skip
    ax.set(xlabel="hidden layers d", ylabel="proportion born dead", ylim=(-0.02, 1.02))
    ax.set_xticks(range(0, int(table["depth"].max()) + 1, 2) if len(table) else [])
    ax.set_title("ReLU nets born dead (He normal, zero bias; band: Wilson 95%)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """Named figures: born_dead (proportion against depth per width)."""
    return {"born_dead": figure(sweep)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when, at width 2, nets die in probability as depth grows (module
    docstring); undecided without 100 nets of width 2 and depth 20 judged on the whole
    training set."""
    first = first_dead_layers(sweep)
    return judge(born_dead(first), bool(len(first) and first["whole_set"].all()))


STUDIES.register("born_dead")(
    Study(
        "born_dead",
        "How likely is a narrow ReLU net to be born dead (a constant function at "
        "initialisation), and does that probability grow with depth?",
        "Lu, Shin, Su & Karniadakis 2019 (Dying ReLU and initialization)",
        figures,
        verdict,
    )
)
