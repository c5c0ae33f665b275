"""One function per figure: a tidy frame in, a matplotlib Figure out."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from depthlab.records import NETWORK_LAYER
from depthlab.results import Sweep


def delta_profile(sweep: Sweep, step: int = 0, hue: str | None = None) -> plt.Figure:
    """Measured ||delta^l|| against layer l (log scale) for every run of a sweep at ``step``,
    with mean-field theory's prediction dashed over each run that has one (anchored at the
    run's measured output layer). ``hue``: the key that colours runs (default: the first
    swept key)."""
    keys = sweep.swept_keys()
    hue = hue or (keys[0] if keys else "run_id")
    frame = sweep.frame([k for k in dict.fromkeys([hue, *keys]) if k != "run_id"])
    at = frame[frame["step"] == step]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    palette = dict(
        zip(
            [str(v) for v in ordered(at[hue])],
            sns.color_palette("viridis", at[hue].astype(str).nunique()),
            strict=True,
        )
    )
    for _, run in at.groupby("run_id"):
        label = str(run[hue].iloc[0])
        measured = run[run["metric"] == "delta_norm"].sort_values("layer")
        if measured.empty:
            continue
        color = palette[label]
        ax.plot(measured["layer"], measured["value"], "o-", ms=3, color=color, label=label)
        predicted = run[run["metric"] == "predicted_log_delta_norm"].sort_values("layer")
        if not predicted.empty:
            anchor = measured["value"].iloc[-1]  # ||delta^L|| as measured
            ax.plot(
                predicted["layer"], anchor * np.exp(predicted["value"]), "--", lw=1, color=color
            )
    ax.set_yscale("log")
    ax.set_xlabel("layer l (L = output)")
    ax.set_ylabel(r"$\|\delta^l\|$ (RMS over the batch)")
    ax.set_title(f"backprop error by layer at step {step} (dashed: mean-field theory)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), title=hue, fontsize=8)
    fig.tight_layout()
    return fig


def phase_diagram(frame: pd.DataFrame) -> plt.Figure:
    """chi_1 (log colour scale, the critical line chi_1 = 1 drawn) and the trainable depth
    6 xi_c over (sigma_w2, sigma_b2), from :func:`depthlab.theory.phase_diagram`."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    w = np.sort(frame["sigma_w2"].unique())
    b = np.sort(frame["sigma_b2"].unique())
    for ax, column, title in (
        (axes[0], "chi_1", r"$\chi_1$ (1: critical)"),
        (axes[1], "trainable_depth", r"$6\,\xi_c$ (trainable depth)"),
    ):
        grid = frame.pivot(index="sigma_b2", columns="sigma_w2", values=column).loc[b, w]
        values = np.log10(np.clip(grid.to_numpy(dtype=float), 1e-3, 1e4))
        mesh = ax.pcolormesh(w, b, values, shading="auto", cmap="magma")
        fig.colorbar(mesh, ax=ax, label=f"log10 {column}")
        chi = frame.pivot(index="sigma_b2", columns="sigma_w2", values="chi_1").loc[b, w]
        ax.contour(w, b, chi.to_numpy(dtype=float), levels=[1.0], colors="cyan", linewidths=1.5)
        ax.set_xlabel(r"$\sigma_w^2$")
        ax.set_title(title)
    axes[0].set_ylabel(r"$\sigma_b^2$")
    fig.tight_layout()
    return fig


def ordered(values: Iterable) -> list:
    """The distinct values (distinct as text), numbers first by value, then the rest by text."""
    distinct: dict[str, object] = {}
    for value in values:
        distinct.setdefault(str(value), value)
    return sorted(distinct.values(), key=_sort_key)


def _sort_key(value: object) -> tuple[int, float, str]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not pd.isna(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _palette(values: Iterable, name: str = "viridis") -> dict[str, tuple]:
    """One colour per distinct value (keyed by its text), in :func:`ordered` order."""
    keys = [str(v) for v in ordered(values)]
    return dict(zip(keys, sns.color_palette(name, len(keys)), strict=True))


def _hue(sweep: Sweep, hue: str | None, skip: tuple[str, ...] = ()) -> str:
    """``hue``, else the first swept key not in ``skip``, else ``run_id``."""
    if hue:
        return hue
    return next((k for k in sweep.swept_keys() if k not in skip), "run_id")


def _run_title(run: pd.Series, keys: list[str]) -> str:
    """'key=value, ...' of a run's swept keys that it has a value for (its run_id when there
    are none), wrapped."""
    given = [k for k in keys if not (pd.api.types.is_scalar(run[k]) and pd.isna(run[k]))]
    text = ", ".join(f"{k}={run[k]}" for k in given) or str(run["run_id"])
    return textwrap.fill(text, 44)


def _log_axis_if_wide(ax: plt.Axes, values: Iterable[float], axis: str = "y") -> None:
    """Make ``axis`` logarithmic when the finite positive ``values`` span more than a decade."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _of_runs(sweep: Sweep, run_ids: pd.Series, column: str) -> pd.Series:
    """The value of the run column ``column`` for each of ``run_ids`` (aligned with them)."""
    if column == "run_id":
        return run_ids
    return run_ids.map(sweep.runs.set_index("run_id")[column])


def _metric(sweep: Sweep, metric: str) -> pd.DataFrame:
    """The tidy rows of one metric (an empty frame when the sweep has no metrics)."""
    if sweep.metrics.empty:
        return pd.DataFrame(columns=["run_id", "seed", "step", "layer", "metric", "value"])
    return sweep.metrics[sweep.metrics["metric"] == metric]


def _delta_grid(rows: pd.DataFrame) -> pd.DataFrame:
    """log10 of delta_norm, layers (rows, every layer from 1 to the last) by probed steps
    (columns): the mean over seeds; zero or non-finite values become NaN."""
    grid = rows.pivot_table(index="layer", columns="step", values="value", aggfunc="mean")
    grid = grid.reindex(range(1, int(grid.index.max()) + 1))
    values = grid.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logged = np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)
    return pd.DataFrame(logged, index=grid.index, columns=grid.columns)


def delta_heatmap(sweep: Sweep, max_runs: int = 6) -> plt.Figure:
    """log10 ||delta^l|| over layer (y, output layer at the top) and probed step (x, probed
    steps equally spaced, labelled with their step) for the first ``max_runs`` runs of the
    sweep that have the ``delta_norm`` metric, one panel per run, on one colour scale.
    Reduction: the mean of ``delta_norm`` over a run's seeds at each (step, layer); cells
    where it is zero, non-finite or not probed are grey."""
    delta = _metric(sweep, "delta_norm")
    present = set(delta["run_id"])
    runs = sweep.runs[sweep.runs["run_id"].isin(present)]
    shown = runs.head(max_runs)
    grids = [_delta_grid(delta[delta["run_id"] == run_id]) for run_id in shown["run_id"]]
    finite = np.concatenate([g.to_numpy().ravel() for g in grids])
    finite = finite[np.isfinite(finite)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    cols = min(3, len(grids))
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, layout="constrained"
    )
    cmap = plt.get_cmap("magma").with_extremes(bad="lightgrey")
    keys = sweep.swept_keys()
    for ax, grid, (_, run) in zip(axes.ravel(), grids, shown.iterrows(), strict=False):
        mesh = _heat_panel(ax, grid, cmap, low, high)
        ax.set_title(_run_title(run, keys), fontsize=7)
    for ax in axes.ravel()[len(grids) :]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes, label=r"$\log_{10}\|\delta^l\|$ (mean over seeds)")
    fig.suptitle(f"backprop error by layer and step ({len(grids)} of {len(runs)} runs)")
    return fig


def _heat_panel(ax: plt.Axes, grid: pd.DataFrame, cmap, low: float, high: float):
    """One run's layer x step grid as a colour mesh; step ticks thinned to about six."""
    steps, layers = list(grid.columns), list(grid.index)
    mesh = ax.pcolormesh(
        np.arange(len(steps) + 1),
        np.arange(len(layers) + 1) + 0.5,
        np.ma.masked_invalid(grid.to_numpy()),
        cmap=cmap,
        vmin=low,
        vmax=high,
    )
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int))
    ax.set_xticks(ticks + 0.5, [str(steps[i]) for i in ticks], fontsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("probed step")
    ax.set_ylabel("layer l")
    return mesh


def loss_curves(sweep: Sweep, hue: str | None = None) -> plt.Figure:
    """Training loss (metric ``loss`` at layer 0: the whole training set, at every
    evaluation) against step, one line per run coloured by ``hue`` (default: the first swept
    key). Reduction: the mean over a run's seeds at each step; non-finite losses are
    dropped, and a diverged run ends in an x at its last finite loss. The y axis is
    logarithmic when the losses span more than a decade."""
    hue = _hue(sweep, hue)
    loss = _metric(sweep, "loss")
    loss = loss[(loss["layer"] == NETWORK_LAYER) & np.isfinite(loss["value"].astype(float))]
    loss = loss.assign(hue=_of_runs(sweep, loss["run_id"], hue))
    loss = loss.assign(status=_of_runs(sweep, loss["run_id"], "status"))
    palette = _palette(loss["hue"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, run in loss.groupby("run_id"):
        curve = run.groupby("step")["value"].mean()
        label = str(run["hue"].iloc[0])
        color = palette[label]
        ax.plot(curve.index, curve.to_numpy(), "o-", ms=3, lw=1.2, color=color, label=label)
        if run["status"].iloc[0] == "diverged":
            ax.plot(curve.index[-1], curve.iloc[-1], "x", ms=8, mew=2, color=color)
    _log_axis_if_wide(ax, loss["value"])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (whole training set)")
    ax.set_title("training loss per run (x: diverged after its last finite loss)")
    _legend(ax, hue, palette)
    fig.tight_layout()
    return fig


def _legend(ax: plt.Axes, title: str, palette: dict[str, tuple]) -> None:
    """A legend with one entry per label, in palette order."""
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    labels = [label for label in palette if label in handles]
    ax.legend([handles[label] for label in labels], labels, title=title, fontsize=7)


def loss_vs_depth(sweep: Sweep, hue: str | None = None) -> plt.Figure:
    """Final training loss (each run's ``final_loss``) against depth: one faint marker per
    run and, for each value of ``hue`` (default: the first swept key other than depth and
    seed, e.g. residual), a line through the median over its runs at each depth. Runs
    without a final loss (diverged, failed) are red x's along the top edge. Log x when the
    depths span more than a decade, log y when the losses do."""
    hue = hue or next((k for k in sweep.swept_keys() if k not in ("depth", "seed")), None)
    runs = sweep.runs.copy()
    runs["group"] = runs[hue].astype(str) if hue else "all runs"
    palette = _palette(runs[hue] if hue else ["all runs"])
    ok = runs[np.isfinite(runs["final_loss"].astype(float))]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for group, cell in ok.groupby("group"):
        median = cell.groupby("depth")["final_loss"].median()
        ax.plot(median.index, median.to_numpy(), "o-", color=palette[group], label=group)
        ax.plot(cell["depth"], cell["final_loss"], ".", alpha=0.4, color=palette[group])
    lost = runs[~runs.index.isin(ok.index)]
    if len(lost):
        edge = ax.get_xaxis_transform()  # x in data, y in axes fraction
        ax.plot(lost["depth"], [0.97] * len(lost), "x", color="red", transform=edge)
    _log_axis_if_wide(ax, runs["depth"], axis="x")
    _log_axis_if_wide(ax, ok["final_loss"])
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("final training loss")
    ax.set_title("final training loss against depth (median; x at top: no final loss)")
    _legend(ax, hue or "", palette)
    fig.tight_layout()
    return fig


def delta_ratios(sweep: Sweep, step: int = 0) -> pd.DataFrame:
    """Per run, seed and layer l = 1..L-1 at ``step``: ``measured`` = ||delta^l||^2 /
    ||delta^{l+1}||^2 (from ``delta_norm``), ``predicted`` = mean-field's chi(q^l) (the
    ``predicted_delta_ratio`` metric, logged at step 0 for plain nets) and ``ratio`` =
    measured / predicted. Layers where either is not finite and positive are dropped."""
    columns = ["run_id", "seed", "layer", "value"]
    delta = _metric(sweep, "delta_norm")
    delta = delta[delta["step"] == step][columns]
    above = delta.assign(layer=delta["layer"] - 1).rename(columns={"value": "above"})
    pairs = delta.merge(above, on=["run_id", "seed", "layer"])
    pred = _metric(sweep, "predicted_delta_ratio")
    pred = pred[pred["step"] == step][columns].rename(columns={"value": "predicted"})
    out = pairs.merge(pred, on=["run_id", "seed", "layer"])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out["measured"] = (out["value"].astype(float) / out["above"].astype(float)) ** 2
    out = out[["run_id", "seed", "layer", "measured", "predicted"]]
    good = np.isfinite(out[["measured", "predicted"]]).all(axis=1)
    out = out[good & (out["measured"] > 0) & (out["predicted"] > 0)]
    return out.assign(ratio=out["measured"] / out["predicted"]).reset_index(drop=True)


def delta_ratio_check(sweep: Sweep, step: int = 0, hue: str | None = None) -> plt.Figure:
    """Measured against predicted per-layer ratio ||delta^l||^2 / ||delta^{l+1}||^2 at
    ``step`` (see :func:`delta_ratios`), one point per run, seed and layer, coloured by
    ``hue`` (default: the first swept key), log-log with the identity line dotted."""
    hue = _hue(sweep, hue)
    table = delta_ratios(sweep, step)
    table["hue"] = _of_runs(sweep, table["run_id"], hue).astype(str)
    palette = _palette(_of_runs(sweep, table["run_id"], hue))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, color in palette.items():
        cell = table[table["hue"] == label]
        ax.scatter(cell["predicted"], cell["measured"], s=12, alpha=0.7, color=color, label=label)
    values = table[["measured", "predicted"]].to_numpy(float)
    low, high = values.min() / 1.5, values.max() * 1.5
    ax.plot([low, high], [low, high], "k:", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks(ax, high / low)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(r"predicted $\chi(q^l)$ (mean-field)")
    ax.set_ylabel(r"measured $\|\delta^l\|^2 / \|\delta^{l+1}\|^2$")
    ax.set_title(f"per-layer backprop ratio at step {step} (dotted: equal)")
    _legend(ax, hue, palette)
    fig.tight_layout()
    return fig


def _log_ticks(ax: plt.Axes, span: float) -> None:
    """Readable ticks on log-log axes that cover ``span`` (high / low): under two decades,
    plain numbers at 1, 2 and 5 times powers of ten; otherwise powers of ten only."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis in (ax.xaxis, ax.yaxis):
        if span < 100:
            axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
        else:
            axis.set_minor_formatter(NullFormatter())
