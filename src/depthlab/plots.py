"""One function per figure: a tidy frame in, a matplotlib Figure out. Drawing only: what
the figures show is computed in :mod:`depthlab.frames`.

Runs are told apart by every key that tells them apart (:func:`depthlab.frames.split_keys`):
colour by the first, line style or marker by the second, one panel per value of the rest.
Legends list numbers by value (3, 10, 100); few values get a categorical palette (tab10),
so neighbouring values never look alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from depthlab import frames
from depthlab.facets import Split, facet_axes, run_title, split_of
from depthlab.records import NETWORK_LAYER
from depthlab.results import Sweep

UNDERFLOW_LABEL = "delta underflowed (below float range), zero or not finite"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", (0, (5, 1)), ":", "-.", (0, (3, 1, 1, 1, 1, 1)))
CATEGORICAL = 10  # up to this many values: tab10; more: a continuous viridis


def palette(values: Iterable) -> dict[str, tuple]:
    """One colour per distinct value (keyed by its text), in :func:`frames.ordered` order:
    tab10's distinct colours for up to 10 values, viridis beyond."""
    keys = [str(v) for v in frames.ordered(values)]
    name = "tab10" if len(keys) <= CATEGORICAL else "viridis"
    return dict(zip(keys, sns.color_palette(name, len(keys)), strict=True))


def cycle(values: Iterable, styles: tuple) -> dict[str, object]:
    """One style (marker or line style) per distinct value, in ordered order, repeating."""
    keys = [str(v) for v in frames.ordered(values)]
    return {k: styles[i % len(styles)] for i, k in enumerate(keys)}


def span_decades(ax: plt.Axes, decades: float = 1.0) -> None:
    """Widen a log y axis to at least ``decades`` decades around its data, so that nearly
    constant profiles read as flat rather than as noise magnified to fill the axis."""
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10**decades:
        middle = np.sqrt(low * high)
        ax.set_ylim(middle / 10 ** (decades / 2), middle * 10 ** (decades / 2))


def draw_delta_profile(
    ax: plt.Axes,
    measured: pd.DataFrame,
    predicted: pd.DataFrame,
    hue: str,
    colors: dict[str, tuple] | None = None,
    label: Callable[[pd.DataFrame], str] | None = None,
    marker: Callable[[pd.DataFrame], str] | None = None,
) -> None:
    """THE delta-profile drawing, on ``ax``: per run of ``measured`` (``delta_norm`` rows of
    one step, several seeds of a run drawn as one line each), ||delta^l|| against l solid,
    coloured by the run's ``hue`` (``colors``: value text -> colour, default
    :func:`palette`), and, where ``predicted`` holds the run's ``predicted_log_delta_norm``,
    mean-field theory dashed in the same colour, anchored at the measured output layer
    (:func:`frames.anchored_theory`). Runs are drawn in :func:`frames.ordered` order of
    ``hue``, so the legend lists numbers by value. Log y axis, at least two decades."""
    colors = colors or palette(measured[hue])
    label = label or (lambda run: str(run[hue].iloc[0]))
    by = ["run_id", "seed"] if "seed" in measured else ["run_id"]
    runs = sorted(measured.groupby(by), key=lambda item: frames.sort_key(item[1][hue].iloc[0]))
    for _, run in runs:
        run = run.sort_values("layer")
        color = colors[str(run[hue].iloc[0])]
        style = marker(run) if marker else "o"
        ax.plot(
            run["layer"], run["value"], marker=style, ms=3.5, lw=1, color=color, label=label(run)
        )
        mine = predicted[predicted["run_id"] == run["run_id"].iloc[0]]
        if "seed" in mine and "seed" in run:
            mine = mine[mine["seed"] == run["seed"].iloc[0]]
        theory = frames.anchored_theory(run, mine)
        if len(theory):
            ax.plot(theory["layer"], theory["value"], "--", lw=0.9, color=color)
    ax.set_yscale("log")
    span_decades(ax, 2)


def delta_profile(sweep: Sweep, step: int = 0, hue: str | None = None) -> plt.Figure:
    """Measured ||delta^l|| against layer l (log scale) for every run of a sweep at ``step``,
    mean-field theory's prediction dashed over each run that has one (anchored at the run's
    measured output layer); colour by ``hue`` (default: the first key that tells runs
    apart), marker by the second, one panel per value of the others."""
    split = split_of(sweep, hue)
    measured, predicted = frames.profile_rows(sweep, step, split.keys)
    fig, panels = facet_axes(measured, split.facets, width=6.5)
    colors = palette(measured[split.hue])
    markers = cycle(measured[split.style], MARKERS) if split.style else {}
    for ax, cell in panels:
        draw_delta_profile(
            ax,
            cell,
            predicted,
            split.hue,
            colors,
            marker=(lambda run: markers[str(run[split.style].iloc[0])]) if split.style else None,
        )
        ax.set_xlabel("layer l (L = output)")
        ax.set_ylabel(r"$\|\delta^l\|$ (RMS over the batch)")
    legends(top_right(panels), split, colors, {k: dict(marker=m) for k, m in markers.items()})
    theory = " (dashed: mean-field theory)" if len(predicted) else ""
    fig.suptitle(f"backprop error by layer at step {step}{theory}")
    return fig


def legends(ax: plt.Axes, split: Split, colors: dict[str, tuple], styles: dict[str, dict]) -> None:
    """The hue legend (``ax.get_legend()``; its entries in ``colors``' order) outside the
    axes on the right, and, when a second key styles the lines, a style legend below it
    (black, one entry per value): legends never hide data."""
    if styles:  # drawn as an extra artist, so that ax.get_legend() is the hue legend
        handles = [Line2D([], [], color="k", **kw) for kw in styles.values()]
        second = _side_legend(ax, handles, list(styles), split.style, "lower left", 0)
        ax.add_artist(second)
        second.set_clip_on(False)  # add_artist clips to the axes; the legend is outside
    handles = [Line2D([], [], color=c, marker="o", ms=4) for c in colors.values()]
    _side_legend(ax, handles, list(colors), split.hue, "upper left", 1)


def _side_legend(
    ax: plt.Axes, handles: list, keys: list[str], title: str | None, loc: str, y: float
):
    """A small legend just right of the axes, its ``loc`` corner at height ``y`` (axes units)."""
    labels = [_label(k) for k in keys]
    return ax.legend(handles, labels, title=title, fontsize=7, loc=loc, bbox_to_anchor=(1.01, y))


def _label(text: str) -> str:
    """A legend entry: a key that does not apply to a run (NaN) reads 'n/a'."""
    return "n/a" if text in ("nan", "None", "<NA>") else text


def top_right(panels: list[tuple[plt.Axes, pd.DataFrame]]) -> plt.Axes:
    """The last panel of the first row (of at most three): where the legends go."""
    return panels[min(3, len(panels)) - 1][0]


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


def _log_axis_if_wide(ax: plt.Axes, values: Iterable[float], axis: str = "y") -> None:
    """Make ``axis`` logarithmic when the finite positive ``values`` span more than a decade."""
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def delta_heatmap(sweep: Sweep, max_runs: int = 6) -> plt.Figure:
    """log10 ||delta^l|| over layer (y, output layer at the top) and probed step (x, probed
    steps equally spaced, labelled with their step) for the first ``max_runs`` runs of the
    sweep that have the ``delta_norm`` metric, one panel per run, on one colour scale.
    Reduction: the mean of ``delta_norm`` over a run's seeds at each (step, layer); cells
    where it is zero (underflowed or exactly zero), non-finite or not probed are grey,
    labelled so in a legend below the panels."""
    delta = frames.metric(sweep, "delta_norm")
    runs = sweep.runs[sweep.runs["run_id"].isin(set(delta["run_id"]))]
    shown = runs.head(max_runs)
    grids = [frames.delta_grid(delta[delta["run_id"] == run_id]) for run_id in shown["run_id"]]
    values = np.concatenate([g.to_numpy().ravel() for g in grids])
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    cols = min(3, len(grids))
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.4), squeeze=False, layout="constrained"
    )
    cmap = plt.get_cmap("magma").with_extremes(bad="lightgrey")
    keys = frames.split_keys(sweep)
    for ax, grid, (_, run) in zip(axes.ravel(), grids, shown.iterrows(), strict=False):
        mesh = _heat_panel(ax, grid, cmap, low, high)
        ax.set_title(run_title(run, keys), fontsize=7)
    for ax in axes.ravel()[len(grids) :]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes, label=r"$\log_{10}\|\delta^l\|$ (mean over seeds)")
    if not np.isfinite(values).all():
        patch = Patch(facecolor="lightgrey", edgecolor="grey", label=UNDERFLOW_LABEL)
        fig.legend(handles=[patch], loc="outside lower center", fontsize=8, frameon=False)
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
    evaluation; ``batch_loss``, each step's batch, for runs that record no ``loss``, such
    as models recorded by ``depthlab.watch``: :func:`frames.training_loss_metric`) against
    step, one line per run: colour by ``hue`` (default: the first key that tells runs
    apart), line style by the second, a panel per value of the rest. Reduction: the mean
    over a run's seeds at each step; non-finite losses are dropped, and a diverged run ends
    in an x at its last finite loss. Log y when losses span a decade."""
    split = split_of(sweep, hue)
    metric = frames.training_loss_metric(sweep)
    loss = frames.metric(sweep, metric)
    loss = loss[(loss["layer"] == NETWORK_LAYER) & np.isfinite(loss["value"].astype(float))]
    loss = loss.merge(sweep.runs[["run_id", *split.keys, "status"]], on="run_id", how="left")
    loss = loss.loc[:, ~loss.columns.duplicated()]
    colors = palette(loss[split.hue])
    styles = cycle(loss[split.style], LINESTYLES) if split.style else {}
    fig, panels = facet_axes(loss, split.facets)
    for ax, cell in panels:
        for _, run in cell.groupby("run_id"):
            curve = run.groupby("step")["value"].mean()
            color, label = colors[str(run[split.hue].iloc[0])], str(run[split.hue].iloc[0])
            ls = styles[str(run[split.style].iloc[0])] if split.style else "-"
            ax.plot(
                curve.index, curve.to_numpy(), "o", ls=ls, ms=3, lw=1.2, color=color, label=label
            )
            if run["status"].iloc[0] == "diverged":
                ax.plot(curve.index[-1], curve.iloc[-1], "x", ms=8, mew=2, color=color)
        _log_axis_if_wide(ax, loss["value"])
        ax.set_xlabel("step")
        ax.set_ylabel(
            "training loss (whole training set)" if metric == "loss" else "loss of each batch"
        )
    legends(top_right(panels), split, colors, {k: dict(ls=s) for k, s in styles.items()})
    fig.suptitle("training loss per run (x: diverged after its last finite loss)")
    return fig


def loss_vs_depth(sweep: Sweep, hue: str | None = None) -> plt.Figure:
    """Final training loss (each run's ``final_loss``) against depth: one faint marker per
    run and, per value of ``hue`` (default: the first key other than depth that tells runs
    apart, e.g. residual) and of the second such key (line style), a line through the
    median over its runs at each depth; a panel per value of the rest. Runs without a final
    loss (diverged, failed) are red x's along the top edge. Log x when the depths span more
    than a decade, log y when the losses do."""
    split = split_of(sweep, hue, skip=("seed", "depth"), fallback=None)
    runs = sweep.runs.assign(group=sweep.runs[split.hue].astype(str) if split.hue else "all runs")
    colors = palette(runs[split.hue] if split.hue else ["all runs"])
    styles = cycle(runs[split.style], LINESTYLES) if split.style else {}
    fig, panels = facet_axes(runs, split.facets, width=6.5)
    for ax, cell in panels:
        ok = cell[np.isfinite(cell["final_loss"].astype(float))]
        groups = ["group", split.style] if split.style else ["group"]
        for names, line in ok.groupby(groups):
            group = names[0]
            ls = styles[str(names[1])] if split.style else "-"
            median = line.groupby("depth")["final_loss"].median()
            ax.plot(median.index, median.to_numpy(), "o", ls=ls, color=colors[group], label=group)
            ax.plot(line["depth"], line["final_loss"], ".", alpha=0.4, color=colors[group])
        lost = cell[~cell.index.isin(ok.index)]
        if len(lost):
            edge = ax.get_xaxis_transform()  # x in data, y in axes fraction
            ax.plot(lost["depth"], [0.97] * len(lost), "x", color="red", transform=edge)
        _log_axis_if_wide(ax, runs["depth"], axis="x")
        _log_axis_if_wide(ax, ok["final_loss"])
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("final training loss")
    split = Split(split.hue or "", split.style, split.facets, split.keys)
    legends(top_right(panels), split, colors, {k: dict(ls=s) for k, s in styles.items()})
    fig.suptitle("final training loss against depth (median; x at top: no final loss)")
    return fig


def delta_ratio_check(sweep: Sweep, step: int = 0, hue: str | None = None) -> plt.Figure:
    """Measured against predicted per-layer ratio ||delta^l||^2 / ||delta^{l+1}||^2 at
    ``step`` (see :func:`frames.delta_ratios`), one point per run, seed and layer: colour by
    ``hue`` (default: the first key that tells runs apart), marker by the second; log-log
    with the identity line dotted."""
    split = split_of(sweep, hue)
    table = frames.delta_ratios(sweep, step)
    table["hue"] = frames.of_runs(sweep, table["run_id"], split.hue).astype(str)
    table["style"] = (
        frames.of_runs(sweep, table["run_id"], split.style).astype(str) if split.style else ""
    )
    colors = palette(frames.of_runs(sweep, table["run_id"], split.hue))
    markers = (
        cycle(frames.of_runs(sweep, table["run_id"], split.style), MARKERS) if split.style else {}
    )
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for (label, style), cell in table.groupby(["hue", "style"]):
        mark = markers.get(style, "o")
        ax.scatter(
            cell["predicted"], cell["measured"], s=12, alpha=0.7, color=colors[label], marker=mark
        )
    values = table[["measured", "predicted"]].to_numpy(float)
    low, high = values.min() / 1.5, values.max() * 1.5
    ax.plot([low, high], [low, high], "k:", lw=1)
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high))
    _log_ticks(ax, high / low)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(r"predicted $\chi(q^l)$ (mean-field)")
    ax.set_ylabel(r"measured $\|\delta^l\|^2 / \|\delta^{l+1}\|^2$")
    ax.set_title(f"per-layer backprop ratio at step {step} (dotted: equal)")
    legends(ax, split, colors, {k: dict(marker=m, ls="") for k, m in markers.items()})
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


def theory_scatter(
    table: pd.DataFrame, predicted: str, measured: str, labels: dict[str, str], **styles: str
) -> plt.Figure:
    """Measured against predicted, one point per run, with the identity line dotted.
    ``labels``: xlabel, ylabel, title; ``styles``: seaborn's hue, style, size columns
    (a numeric hue gets the categorical palette of :func:`palette`, in numeric order)."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    hue = styles.get("hue")
    if hue:
        styles = {**styles, "palette": palette(table[hue]), "hue_order": list(palette(table[hue]))}
        table = table.assign(**{hue: table[hue].astype(str)})
    sns.scatterplot(table, x=predicted, y=measured, ax=ax, **styles)
    lim = np.nanmax(np.abs(table[[predicted, measured]].to_numpy(float))) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(labels["xlabel"])
    ax.set_ylabel(labels["ylabel"])
    ax.set_title(labels["title"])
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig
