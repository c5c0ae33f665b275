"""One self-contained HTML report of a sweep, and a short Markdown summary beside it.

``python -m depthlab.report SWEEP_DIR [--out FILE.html]`` writes ``SWEEP_DIR/report.html``
(or FILE.html) and ``report.md`` (FILE.md) and prints both paths. The HTML holds the
configuration (constant and swept keys), the run table, the runs that did not finish ``ok``,
unreadable files, every registered study found in the sweep (question, anchor, verdict,
figures) and the generic figures that the sweep's keys and metrics make meaningful. Figures
are embedded as base64 PNG, nothing is loaded from elsewhere, and every string taken from
the records is HTML-escaped. A figure or a study that fails leaves an error note in its
place; it never stops the report.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import io
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab import plots
from depthlab.records import STATUSES
from depthlab.results import Sweep, load_sweep
from depthlab.summary import summary_table

if TYPE_CHECKING:  # the studies are imported when a report is made, not with this module
    from depthlab.studies import Study

DPI = 100
HEATMAP_RUNS = 6
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #a00; font-family: monospace; white-space: pre-wrap; }
.muted { color: #666; }
.reproduced { color: #070; font-weight: bold; }
.not-reproduced { color: #a00; font-weight: bold; }
.undecided { color: #a60; font-weight: bold; }
"""
# No scripts, styles only inline, images only data: URIs; a browser enforces it.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class GenericFigure:
    """A generic figure: ``missing(sweep)`` says why it does not apply (None: it does)."""

    name: str
    caption: str
    missing: Callable[[Sweep], str | None]
    draw: Callable[[Sweep], plt.Figure]


@dataclass
class StudyPart:
    """What the report shows of one study: its verdict (or why there is none), figures."""

    name: str
    question: str = ""
    anchor: str = ""
    label: str = ""
    text: str = ""
    numbers: dict[str, float] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)  # HTML: images or error notes


def esc(value: object) -> str:
    """``value`` as escaped HTML text (see :func:`text_of`)."""
    return html.escape(text_of(value))


# The ASCII punctuation that CommonMark or GitHub's Markdown gives a meaning to anywhere in
# a line (links, images, emphasis, code, tables, strike-through, math, headings' closing
# marks, and the ":", "." and "@" of autolinks), and what means something only where a line
# (or a list item's text) begins: a list, quote or heading underline.
MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]()#!|~$^:.@])")
MARKDOWN_START = re.compile(r"^([-+=>])")


def md(value: object) -> str:
    """``value`` (see :func:`text_of`) as Markdown that renders as the same plain text, on
    one line: line breaks become spaces, the ends are stripped (no indented code block),
    the punctuation Markdown gives a meaning to is backslash-escaped, and & and < become
    entities (Markdown renders HTML). So no text from the records renders as a link,
    image, emphasis, heading, list, quote, table or tag, wherever in a line it stands."""
    text = " ".join(text_of(value).splitlines()).strip()
    text = MARKDOWN_START.sub(r"\\\1", MARKDOWN_INLINE.sub(r"\\\1", text))
    return text.replace("&", "&amp;").replace("<", "&lt;")


def md_link(text: str, target: str) -> str:
    """A Markdown link to the relative file ``target``: the text escaped by :func:`md`, the
    target percent-encoded (no space, parenthesis or bracket is left to end it early)."""
    return f"[{md(text)}]({urllib.parse.quote(target)})"


def text_of(value: object) -> str:
    """A value as text: floats to 4 significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def failure(exc: BaseException) -> str:
    """'Type: message' of an exception, one line, at most 500 characters."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}"[:500]


def note(what: str, exc: BaseException) -> str:
    """An escaped error note that stands in for something that failed."""
    return f'<p class="note">{esc(what)} failed: {esc(failure(exc))}</p>'


def html_table(frame: pd.DataFrame) -> str:
    """``frame`` (without its index) as an HTML table, every header and cell escaped."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False, name=None)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_list(items: list[str], empty: str = "none") -> str:
    """Escaped items as a bullet list, or ``empty`` in grey."""
    if not items:
        return f'<p class="muted">{esc(empty)}</p>'
    return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


@contextmanager
def closing_new_figures() -> Iterator[None]:
    """Close every pyplot figure opened inside the block, also when it raises."""
    before = set(plt.get_fignums())
    try:
        yield
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


def png_base64(fig: plt.Figure) -> str:
    """The figure as a base64 PNG at :data:`DPI`; the figure is closed."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_html(name: str, draw: Callable[[], plt.Figure], caption: str = "") -> str:
    """An embedded <figure> of what ``draw()`` returns, or an error note if it fails."""
    with closing_new_figures():
        try:
            data = png_base64(draw())
        except Exception as exc:  # one figure must never stop the report
            return note(f"figure {name}", exc)
    text = f"{name}: {caption}" if caption else name
    return (
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(text)}</figcaption></figure>"
    )


def config_tables(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(keys constant across the sweep with their value, swept keys with their values)."""
    swept = sweep.swept_keys()
    constant = [c for c in sweep.config_columns() if c not in swept]
    fixed = pd.DataFrame({"key": constant, "value": [sweep.runs[c].iloc[0] for c in constant]})
    values = [", ".join(text_of(v) or '""' for v in plots.ordered(sweep.runs[k])) for k in swept]
    return fixed, pd.DataFrame({"key": swept, "values": values})


def run_line(run: pd.Series, keys: list[str]) -> str:
    """One not-ok run as text: its folder, run_id, swept keys and what happened."""
    where = f"{run.get('path', '')} ({run['run_id']})"
    settings = ", ".join(f"{k}={text_of(run[k])}" for k in keys)
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
    keys = sweep.swept_keys()
    bad = sweep.runs[sweep.runs["status"] != "ok"]
    return [run_line(run, keys) for _, run in bad.iterrows()]


def status_counts(sweep: Sweep) -> str:
    """'N runs: 3 ok, 1 diverged' in the order of the statuses."""
    counts = sweep.runs["status"].value_counts()
    known = [s for s in (*STATUSES[1:], STATUSES[0]) if s in counts]
    other = [s for s in counts.index if s not in known]
    parts = [f"{counts[s]} {s}" for s in (*known, *other)]
    return f"{len(sweep.runs)} runs: {', '.join(parts)}"


def study_part(sweep: Sweep, entry: Study) -> StudyPart:
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
        part.figures = study_figures(own, name, entry.figures)
    return part


def study_figures(sweep: Sweep, name: str, make: Callable[[Sweep], dict]) -> list[str]:
    """The HTML of every figure ``make(sweep)`` returns, or one error note if it fails."""
    try:
        made = make(sweep)
    except Exception as exc:
        return [note(f"figures of {name}", exc)]
    return [figure_html(f"{name}/{key}", lambda f=fig: f) for key, fig in made.items()]


def study_parts(sweep: Sweep) -> tuple[list[StudyPart], str | None]:
    """The parts of every registered study present in the sweep, and an error text when
    the studies cannot be imported (their modules are loaded only now)."""
    try:
        from depthlab.studies import STUDIES, studies_in

        names = studies_in(sweep)
    except Exception as exc:
        return [], f"the studies could not be loaded: {failure(exc)}"
    return [study_part(sweep, STUDIES[name]) for name in names], None


def study_html(part: StudyPart) -> str:
    """One study's section: question, anchor, verdict, numbers and figures."""
    css = part.label.replace(" ", "-")
    numbers = pd.DataFrame({"number": list(part.numbers), "value": list(part.numbers.values())})
    return (
        f'<section><h3 id="study-{esc(part.name)}">{esc(part.name)}</h3>'
        f"<p><b>Question.</b> {esc(part.question)}</p>"
        f"<p><b>Anchor.</b> {esc(part.anchor)}</p>"
        f'<p><b>Verdict:</b> <span class="{esc(css)}">{esc(part.label)}</span>. '
        f"{esc(part.text)}</p>"
        + (html_table(numbers) if part.numbers else "")
        + "".join(part.figures)
        + "</section>"
    )


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
    n = len(metric_steps(sweep, "loss", layer=0))
    return None if n >= 2 else f"the training loss is recorded at {n} step(s)"


def _depth_not_swept(sweep: Sweep) -> str | None:
    if "depth" not in sweep.swept_keys():
        return "depth is not swept"
    losses = sweep.runs["final_loss"].astype(float)
    return None if np.isfinite(losses).any() else "no run has a final loss"


def _no_prediction(sweep: Sweep) -> str | None:
    if plots.delta_ratios(sweep).empty:
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
    ratios = plots.delta_ratios(sweep)
    per_run = ratios.groupby("run_id")["ratio"].agg(points="size", median_ratio="median")
    keys = [k for k in sweep.swept_keys() if k != "run_id"]
    table = sweep.runs[["run_id", *keys]].merge(per_run.reset_index(), on="run_id")
    return table.rename(columns={"median_ratio": "median measured/predicted"})


def generic_html(sweep: Sweep) -> str:
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
        parts.append(figure_html(item.name, lambda i=item: i.draw(sweep), item.caption))
        if item.name == "delta_ratio_check":
            parts.append(table_or_note("ratio table", lambda: ratio_table(sweep)))
    return "".join(parts) + "<h3>Not drawn</h3>" + html_list(skipped)


def table_or_note(name: str, make: Callable[[], pd.DataFrame]) -> str:
    """``make()`` as an HTML table, or an error note if it fails."""
    try:
        return html_table(make())
    except Exception as exc:
        return note(name, exc)


def runs_html(sweep: Sweep) -> str:
    """The run table: each run's folder, then :func:`depthlab.summary.summary_table`."""
    table = summary_table(sweep)
    table.insert(0, "run", sweep.runs["path"] if "path" in sweep.runs else sweep.runs["run_id"])
    return html_table(table)


def config_html(sweep: Sweep) -> str:
    """The constant keys with their value, then the swept keys with their values."""
    fixed, swept = config_tables(sweep)
    return (
        "<h3>Swept keys</h3>"
        + (html_table(swept) if len(swept) else '<p class="muted">none</p>')
        + "<h3>Constant keys</h3>"
        + html_table(fixed)
    )


def render_html(sweep: Sweep, studies: list[StudyPart], studies_error: str | None) -> str:
    """The whole report as one HTML document."""
    name = sweep.root.resolve().name
    sections = [
        ("config", "Configuration", lambda: config_html(sweep)),
        ("runs", "Runs", lambda: runs_html(sweep)),
        ("not-ok", "Diverged, failed and unfinished runs", lambda: html_list(not_ok(sweep))),
        ("unreadable", "Files not read", lambda: html_list(sweep.problems)),
        ("studies", "Studies", lambda: studies_body(studies, studies_error)),
        ("figures", "Figures", lambda: generic_html(sweep)),
    ]
    nav = " · ".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<h2 id="{key}">{esc(title)}</h2>{section_or_note(title, make)}'
        for key, title, make in sections
    )
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>depthlab report: {esc(name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>depthlab report: {esc(name)}</h1>"
        f'<p class="muted">{esc(sweep.root.resolve())} · {esc(status_counts(sweep))} · '
        f"made {esc(stamp)}</p><p>{nav}</p>{body}</body></html>\n"
    )


def section_or_note(title: str, make: Callable[[], str]) -> str:
    """A section's HTML, or an error note if building it fails."""
    try:
        return make()
    except Exception as exc:
        return note(title, exc)


def studies_body(studies: list[StudyPart], error: str | None) -> str:
    """Every study's section, or why there are none."""
    if error:
        return f'<p class="note">{esc(error)}</p>'
    if not studies:
        return '<p class="muted">no registered study in this sweep (its study column)</p>'
    return "".join(study_html(part) for part in studies)


def render_markdown(
    sweep: Sweep, studies: list[StudyPart], studies_error: str | None, html_name: str
) -> str:
    """The short summary: title, verdicts, counts by status, not-ok runs, what was not read
    (``sweep.problems``), and a link to the HTML file. Text from the records is escaped by
    :func:`md`, so that none of it renders as Markdown or HTML."""
    lines = [f"# depthlab report: {md(sweep.root.resolve().name)}", ""]
    lines += [md(str(sweep.root.resolve())), "", "## Verdicts", ""]
    lines += [f"- {md(p.name)}: {md(p.label)}. {md(p.text)}" for p in studies]
    if studies_error or not studies:
        lines.append(f"- {md(studies_error or 'no registered study in this sweep')}")
    lines += ["", "## Runs", "", md(status_counts(sweep)), ""]
    lines += [f"- {md(line)}" for line in not_ok(sweep)]
    lines += [f"- not read: {md(p)}" for p in sweep.problems]
    lines += ["", f"Full report: {md_link(html_name, html_name)}", ""]
    return "\n".join(lines)


def write_report(sweep: Sweep, out: Path | str | None = None) -> tuple[Path, Path]:
    """Write the HTML report (default ``SWEEP_DIR/report.html``) and the Markdown summary
    beside it (same name, ``.md``); return both paths."""
    html_path = Path(out) if out is not None else sweep.root / "report.html"
    md_path = html_path.with_suffix(".md")
    studies, error = study_parts(sweep)
    page = render_html(sweep, studies, error)
    summary = render_markdown(sweep, studies, error, html_path.name)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text(summary, encoding="utf-8")
    return html_path, md_path


def load(sweep_dir: Path) -> Sweep:
    """The sweep at ``sweep_dir``; ValueError when it holds no readable run."""
    sweep = load_sweep(sweep_dir)
    if sweep.runs.empty:
        count = len(sweep.problems)
        why = f"; {count} not read, the first: {sweep.problems[0]}" if count else ""
        raise ValueError(f"no runs in this folder (no readable run.parquet){why}")
    return sweep


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m depthlab.report SWEEP_DIR [--out FILE.html]``."""
    parser = argparse.ArgumentParser(
        prog="python -m depthlab.report",
        description="One self-contained HTML report of a sweep, and a Markdown summary.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, help="the HTML file (default SWEEP_DIR/report.html)")
    args = parser.parse_args(argv)
    try:
        if args.out is not None and args.out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out {args.out} must end in .html")
        sweep = load(args.sweep_dir)
    except (OSError, ValueError) as exc:
        print(f"error: SWEEP_DIR={args.sweep_dir}: {exc}", file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    try:
        html_path, md_path = write_report(sweep, args.out)
    except OSError as exc:  # a read-only folder, a full disk
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return 1
    print(f"report: {html_path}")
    print(f"summary: {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
