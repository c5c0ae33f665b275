"""Pure transforms of a sweep's records: tidy frames in, frames, arrays or numbers out.

Nothing here draws (no matplotlib): :mod:`depthlab.plots` draws what these compute, and the
studies and the report reduce with them. Rows are the tidy metric rows of
:class:`depthlab.results.Sweep` (``run_id, seed, step, layer, metric, value``), joined with
run columns where asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from depthlab.records import NETWORK_LAYER, SWEEP_COLUMN
from depthlab.results import Sweep

METRIC_COLUMNS = ["run_id", "seed", "step", "layer", "metric", "value"]


def ordered(values: Iterable) -> list:
    """The distinct values (distinct as text), numbers first by value, then the rest by
    text: 3, 10, 100, not '10', '100', '3'."""
    distinct: dict[str, object] = {}
    for value in values:
        distinct.setdefault(str(value), value)
    return sorted(distinct.values(), key=sort_key)


def sort_key(value: object) -> tuple[int, float, str]:
    """Numbers (not NaN) by value before everything else by its text."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not pd.isna(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def metric(sweep: Sweep, name: str) -> pd.DataFrame:
    """The tidy rows of one metric (an empty frame when the sweep has no metrics)."""
    if sweep.metrics.empty:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return sweep.metrics[sweep.metrics["metric"] == name]


def training_loss_metric(sweep: Sweep) -> str:
    """The sweep's training-loss curve: ``loss`` (the whole training set, at evaluations)
    where runs record it, else ``batch_loss`` (each step's batch: all that a model recorded
    by ``depthlab.watch`` has)."""
    return "batch_loss" if metric(sweep, "loss").empty else "loss"


def of_runs(sweep: Sweep, run_ids: pd.Series, column: str) -> pd.Series:
    """The value of the run column ``column`` for each of ``run_ids`` (aligned with them)."""
    if column == "run_id":
        return run_ids
    return run_ids.map(sweep.runs.set_index("run_id")[column])


def metric_rows(sweep: Sweep, name: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Rows of one metric joined with the run columns ``keys`` (default: swept keys, status)."""
    if sweep.metrics.empty:
        return pd.DataFrame(columns=["run_id", "step", "layer", "value"])
    frame = sweep.frame(keys)
    return frame[frame["metric"] == name].copy()


def at_step(rows: pd.DataFrame, step: int | str) -> pd.DataFrame:
    """Rows at ``step`` (an int), or at each run's ``"first"`` / ``"last"`` recorded step."""
    if isinstance(step, int):
        return rows[rows["step"] == step]
    pick = rows.groupby("run_id")["step"].transform("min" if step == "first" else "max")
    return rows[rows["step"] == pick]


def network_curve(sweep: Sweep, name: str = "loss", keys: list[str] | None = None) -> pd.DataFrame:
    """A network-level metric (layer 0) against step, one curve per run."""
    rows = metric_rows(sweep, name, keys)
    return rows[rows["layer"] == NETWORK_LAYER].sort_values(["run_id", "step"])


def log_slope(layers: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ln(value) against layer, over the finite positive values
    (nan when fewer than two remain): the per-layer growth rate of a geometric profile."""
    layers, values = np.asarray(layers, float), np.asarray(values, float)
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(layers[ok], np.log(values[ok]), 1)[0])


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): mean +- t_{0.975, m-1} s / sqrt(m) over m values (NaN ends for
    fewer than two). Where a value is infinite (a run that diverged, counted as an infinite
    loss), no t-interval holds it: the values' own range (min, max) instead."""
    values = np.asarray(values, float)
    mean = float(values.mean()) if len(values) else math.nan
    if np.isinf(values).any():
        return mean, float(values.min()), float(values.max())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def group_label(row: pd.Series, keys: list[str]) -> str:
    """'key=value, key=value' for a run's values of ``keys``."""
    return ", ".join(f"{k}={row[k]}" for k in keys)


def delta_grid(rows: pd.DataFrame) -> pd.DataFrame:
    """log10 of delta_norm, layers (rows, every layer from 1 to the last) by probed steps
    (columns): the mean over seeds; zero or non-finite values become NaN."""
    grid = rows.pivot_table(index="layer", columns="step", values="value", aggfunc="mean")
    grid = grid.reindex(range(1, int(grid.index.max()) + 1))
    values = grid.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logged = np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)
    return pd.DataFrame(logged, index=grid.index, columns=grid.columns)


def delta_ratios(sweep: Sweep, step: int = 0) -> pd.DataFrame:
    """Per run, seed and layer l = 1..L-1 at ``step``: ``measured`` = ||delta^l||^2 /
    ||delta^{l+1}||^2 (from ``delta_norm``), ``predicted`` = mean-field's chi(q^l) (the
    ``predicted_delta_ratio`` metric, logged at step 0 for plain nets) and ``ratio`` =
    measured / predicted. Layers where either is not finite and positive are dropped."""
    columns = ["run_id", "seed", "layer", "value"]
    delta = metric(sweep, "delta_norm")
    delta = delta[delta["step"] == step][columns]
    above = delta.assign(layer=delta["layer"] - 1).rename(columns={"value": "above"})
    pairs = delta.merge(above, on=["run_id", "seed", "layer"])
    pred = metric(sweep, "predicted_delta_ratio")
    pred = pred[pred["step"] == step][columns].rename(columns={"value": "predicted"})
    out = pairs.merge(pred, on=["run_id", "seed", "layer"])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out["measured"] = (out["value"].astype(float) / out["above"].astype(float)) ** 2
    out = out[["run_id", "seed", "layer", "measured", "predicted"]]
    good = np.isfinite(out[["measured", "predicted"]]).all(axis=1)
    out = out[good & (out["measured"] > 0) & (out["predicted"] > 0)]
    return out.assign(ratio=out["measured"] / out["predicted"]).reset_index(drop=True)


def profile_rows(
    sweep: Sweep, step: int | str = 0, keys: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measured, predicted) rows of the delta profile at ``step`` (an int, or each run's
    ``"first"``/``"last"``), joined with the run columns ``keys``: ``delta_norm``
    (||delta^l||, RMS over the batch of the per-sample L2 norm of dJ/dz^l) and
    ``predicted_log_delta_norm`` (mean-field's ln ||delta^l|| - ln ||delta^L||)."""
    measured = at_step(metric_rows(sweep, "delta_norm", keys), step)
    predicted = at_step(metric_rows(sweep, "predicted_log_delta_norm", keys), step)
    return measured, predicted


def anchored_theory(measured: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """Theory's ||delta^l|| for one run: ||delta^L|| as measured (the output layer, the
    last of ``measured``) times exp(predicted ln ||delta^l|| - ln ||delta^L||); columns
    ``layer`` and ``value``, by layer. Empty when there is no prediction."""
    if predicted.empty or measured.empty:
        return pd.DataFrame(columns=["layer", "value"])
    anchor = measured.sort_values("layer")["value"].iloc[-1]
    rows = predicted.sort_values("layer")
    return pd.DataFrame(
        {"layer": rows["layer"].to_numpy(), "value": anchor * np.exp(rows["value"].to_numpy())}
    )


def varies(column: pd.Series) -> bool:
    """Whether a key's values differ between the runs it applies to (is set for): a key
    such as ``init.nonlinearity``, set to relu for Kaiming runs and NaN for the others,
    does not vary (it only follows ``init``)."""
    given = column[column.map(lambda v: not (pd.api.types.is_scalar(v) and pd.isna(v)))]
    return given.astype(str).nunique() > 1


def split_keys(sweep: Sweep, skip: tuple[str, ...] = ("seed",)) -> list[str]:
    """The keys that tell runs apart, in the order figures use them (hue, line style, then
    facets): ``sweep`` first when several sweeps are loaded as one, then every swept key
    that :func:`varies`, but ``skip`` (seeds are drawn as lines of the same hue and style)
    and those that follow from one key before them (one value per value of that key:
    ``steps`` set per sweep when two sweeps are compared), which split nothing new."""
    runs = sweep.runs
    keys = [k for k in sweep.swept_keys() if k not in skip and k != SWEEP_COLUMN]
    if SWEEP_COLUMN in runs and runs[SWEEP_COLUMN].nunique() > 1:
        keys.insert(0, SWEEP_COLUMN)
    text = runs.astype(str)  # lists and NaN compare as text
    kept: list[str] = []
    for key in keys:
        if not varies(runs[key]):
            continue
        by = (text.groupby(other, dropna=False)[key] for other in kept)
        if any((values.nunique(dropna=False) <= 1).all() for values in by):
            continue
        kept.append(key)
    return kept
