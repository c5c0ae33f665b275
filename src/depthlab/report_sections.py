"""The sections of a report, built from a sweep: configuration, runs, runs not ok, the
studies found in it, and the generic figures that its keys and metrics make meaningful. A
figure, table or study that fails leaves an error note in its place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab import frames, plots
from depthlab.records import STATUSES
from depthlab.report_html import (
    FigureOutput,
    StudyPart,
    closing_new_figures,
    esc,
    failure,
    figure_html,
    html_list,
    html_table,
    note,
    text_of,
)
from depthlab.results import Sweep
from depthlab.summary import config_keys, footnoted, summary_keys, summary_table
from depthlab.tables import cell_text, is_missing

if TYPE_CHECKING:  # the studies are imported when a report is made, not with this module
    from depthlab.studies import Study

HEATMAP_RUNS = 6


@dataclass(frozen=True)
class GenericFigure:
    """A generic figure: ``missing(sweep)`` says why it does not apply (None: it does)."""

    name: str
    caption: str
    missing: Callable[[Sweep], str | None]
    draw: Callable[[Sweep], plt.Figure]


def config_tables(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(keys with one value wherever they apply, with that value; keys that vary where
    they apply, with their values in numeric order: no 'nan' for runs they do not apply
    to, which the value list says as '(n/a for some runs)')."""
    swept, constant = summary_keys(sweep)
    fixed = pd.DataFrame({"key": list(constant), "value": list(constant.values())})
    values = []
    for key in swept:
        column = sweep.runs[key]
        given = column[column.notna()]
        text = ", ".join(cell_text(v) or '""' for v in frames.ordered(given))
        values.append(text + (" (n/a for some runs)" if len(given) < len(column) else ""))
    return fixed, pd.DataFrame({"key": swept, "values": values})


def run_line(run: pd.Series, keys: list[str]) -> str:
    """One not-ok run as text: its folder, run_id, swept keys and what happened."""
    where = f"{run.get('path', '')} ({run['run_id']})"
    settings = ", ".join(f"{k}={text_of(run[k])}" for k in keys if not is_missing(run[k]))
    status = run["status"]
    if status == "diverged":
        step = run.get("diverged_step")
        what = f"diverged at step {int(step)}" if pd.notna(step) else "diverged"
    elif status == "failed":
        what = f"failed: {run.get('error') or '(no error recorded)'}"
    else:
        what = f"{status} (unfinished, or killed)"
    return f"{where}{': ' + settings if settings else ''}: {what}"


def not_ok(sweep: Sweep) -> list[str]:
    """One line per run whose status is not ``ok`` (see :func:`run_line`)."""
    keys = [k for k in summary_keys(sweep)[0] if k != "depth" or "depth" in sweep.swept_keys()]
    bad = sweep.runs[sweep.runs["status"] != "ok"]
    return [run_line(run, keys) for _, run in bad.iterrows()]


def status_counts(sweep: Sweep) -> str:
    """'N runs: 3 ok, 1 diverged' in the order of the statuses."""
    counts = sweep.runs["status"].value_counts()
    known = [s for s in (*STATUSES[1:], STATUSES[0]) if s in counts]
    other = [s for s in counts.index if s not in known]
    parts = [f"{counts[s]} {s}" for s in (*known, *other)]
    return f"{len(sweep.runs)} runs: {', '.join(parts)}"


def study_part(sweep: Sweep, entry: Study, out: FigureOutput) -> StudyPart:
    """The verdict and figures of one study on its runs of ``sweep``; what fails is
    replaced by an error note."""
    from depthlab.studies import runs_of

    name = entry.name
    part = StudyPart(name, entry.question, entry.anchor)
    own = runs_of(sweep, name)
    with closing_new_figures():
        try:
            verdict = entry.verdict(own)
            part.label, part.text = verdict.label, verdict.text
            part.numbers = dict(verdict.numbers)
        except Exception as exc:
            part.label, part.text = "no verdict", f"the verdict failed: {failure(exc)}"
        part.figures = study_figures(own, name, entry.figures, out)
    return part


def study_figures(
    sweep: Sweep, name: str, make: Callable[[Sweep], dict], out: FigureOutput
) -> list[str]:
    """The HTML of every figure ``make(sweep)`` returns, or one error note if it fails."""
    try:
        made = make(sweep)
    except Exception as exc:
        return [note(f"figures of {name}", exc)]
    return [figure_html(f"{name}/{key}", lambda f=fig: f, out=out) for key, fig in made.items()]


def study_parts(sweep: Sweep, out: FigureOutput) -> tuple[list[StudyPart], str | None]:
    """The parts of every registered study present in the sweep, and an error text when
    the studies cannot be imported (their modules are loaded only now)."""
    try:
        from depthlab.studies import STUDIES, studies_in

        names = studies_in(sweep)
    except Exception as exc:
        return [], f"the studies could not be loaded: {failure(exc)}"
    return [study_part(sweep, STUDIES[name], out) for name in names], None


def metric_steps(sweep: Sweep, metric: str, layer: int | None = None) -> set[int]:
    """The steps that record ``metric`` (at ``layer`` when given)."""
    if sweep.metrics.empty:
        return set()
    rows = sweep.metrics[sweep.metrics["metric"] == metric]
    if layer is not None:
        rows = rows[rows["layer"] == layer]
    return set(rows["step"].unique())


def _no_delta_at_0(sweep: Sweep) -> str | None:
    return None if 0 in metric_steps(sweep, "delta_norm") else "no delta_norm at step 0"


def _few_delta_steps(sweep: Sweep) -> str | None:
    n = len(metric_steps(sweep, "delta_norm"))
    return None if n >= 2 else f"delta_norm probed at {n} step(s); a heat map needs 2"


def _few_loss_steps(sweep: Sweep) -> str | None:
    n = len(metric_steps(sweep, frames.training_loss_metric(sweep), layer=0))
    return None if n >= 2 else f"the training loss is recorded at {n} step(s)"


def _depth_not_swept(sweep: Sweep) -> str | None:
    if "depth" not in sweep.swept_keys():
        return "depth is not swept"
    losses = sweep.runs["final_loss"].astype(float)
    return None if np.isfinite(losses).any() else "no run has a final loss"


def _no_prediction(sweep: Sweep) -> str | None:
    if frames.delta_ratios(sweep).empty:
        return "no predicted_delta_ratio beside delta_norm at step 0 (theory does not apply)"
    return None


def generic_figures() -> list[GenericFigure]:
    """The generic figures, in report order (looked up in :mod:`depthlab.plots` now)."""
    return [
        GenericFigure(
            "delta_profile",
            "||delta^l|| by layer at step 0, mean-field theory dashed",
            _no_delta_at_0,
            plots.delta_profile,
        ),
        GenericFigure(
            "delta_heatmap",
            f"log10 ||delta^l|| over layer and probed step, up to {HEATMAP_RUNS} runs",
            _few_delta_steps,
            lambda s: plots.delta_heatmap(s, HEATMAP_RUNS),
        ),
        GenericFigure(
            "loss_curves", "training loss against step", _few_loss_steps, plots.loss_curves
        ),
        GenericFigure(
            "loss_vs_depth",
            "final training loss against depth",
            _depth_not_swept,
            plots.loss_vs_depth,
        ),
        GenericFigure(
            "delta_ratio_check",
            "measured against predicted ||delta^l||^2 / ||delta^{l+1}||^2 at step 0",
            _no_prediction,
            plots.delta_ratio_check,
        ),
    ]


def ratio_table(sweep: Sweep) -> pd.DataFrame:
    """Per run with a prediction: its swept keys, the number of (layer, seed) points and
    the median over them of measured / predicted ||delta^l||^2 / ||delta^{l+1}||^2
    at step 0."""
    ratios = frames.delta_ratios(sweep)
    per_run = ratios.groupby("run_id")["ratio"].agg(points="size", median_ratio="median")
    keys = summary_keys(sweep)[0]
    table = sweep.runs[["run_id", *keys]].merge(per_run.reset_index(), on="run_id")
    return table.rename(columns={"median_ratio": "median measured/predicted"})


def generic_html(sweep: Sweep, out: FigureOutput) -> str:
    """Every generic figure that applies (with the ratio table after its figure), then the
    list of those left out and why."""
    parts, skipped = [], []
    for item in generic_figures():
        try:
            reason = item.missing(sweep)
        except Exception as exc:
            parts.append(note(f"checking figure {item.name}", exc))
            continue
        if reason:
            skipped.append(f"{item.name}: {reason}")
            continue
        parts.append(figure_html(item.name, lambda i=item: i.draw(sweep), item.caption, out))
        if item.name == "delta_ratio_check":
            keys = config_keys(sweep)
            parts.append(table_or_note("ratio table", lambda: ratio_table(sweep), keys))
    return "".join(parts) + "<h3>Not drawn</h3>" + html_list(skipped)


def table_or_note(name: str, make: Callable[[], pd.DataFrame], keys: list[str]) -> str:
    """``make()`` as an HTML table (``keys``: its columns that may not apply to a run), or
    an error note if it fails."""
    try:
        return html_table(make(), keys)
    except Exception as exc:
        return note(name, exc)


def runs_html(sweep: Sweep) -> str:
    """The run table: each run's folder, then :func:`depthlab.summary.summary_table`, with a
    note for each figure it cannot show saying why (:func:`depthlab.summary.footnoted`)."""
    table, notes = footnoted(sweep, summary_table(sweep))
    table.insert(0, "run", sweep.runs["path"] if "path" in sweep.runs else sweep.runs["run_id"])
    listed = "".join(f'<p class="muted">{esc(n)}</p>' for n in notes)
    return html_table(table, summary_keys(sweep)[0]) + listed


def config_html(sweep: Sweep) -> str:
    """The constant keys with their value, then the swept keys with their values."""
    fixed, swept = config_tables(sweep)
    return (
        "<h3>Swept keys</h3>"
        + (html_table(swept) if len(swept) else '<p class="muted">none</p>')
        + "<h3>Constant keys</h3>"
        + html_table(fixed)
    )
