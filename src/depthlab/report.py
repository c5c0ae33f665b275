"""One self-contained HTML report of a sweep (or of several side by side), and a short
Markdown summary beside it.

``python -m depthlab.report SWEEP_DIR [SWEEP_DIR ...] [--out FILE.html] [--format FMT]``
writes ``SWEEP_DIR/report.html`` (for several sweeps ``FIRST_SWEEP_DIR/compare.html``; or
FILE.html) and ``report.md`` (FILE.md) and prints both paths. Several sweeps are loaded as
one (:func:`depthlab.results.load_sweeps`): every run carries a ``sweep`` column (its folder's
name), which tables show and figures colour by. The HTML holds the configuration (the keys
that vary and apply, and those that do not), the run table, the runs that did not finish
``ok``, unreadable files, every registered study found in the sweep (question, anchor,
verdict, figures) and the generic figures that the sweep's keys and metrics make
meaningful. Figures are embedded (PNG, or SVG with ``--format svg``); with ``--format svg``
or ``pdf`` each is also written as a file into FILE_figures/ beside the report. Nothing is
loaded from elsewhere and every string taken from the records is escaped. A figure or a
study that fails leaves an error note in its place; it never stops the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import matplotlib

from depthlab import frames
from depthlab.report_html import (
    CSP,
    FORMATS,
    STYLE,
    FigureOutput,
    StudyPart,
    esc,
    html_list,
    md,
    md_link,
    section_or_note,
    studies_body,
)
from depthlab.report_sections import (
    config_html,
    generic_html,
    not_ok,
    runs_html,
    status_counts,
    study_parts,
)
from depthlab.results import Sweep, load_sweep, load_sweeps


def sweep_names(sweep: Sweep) -> list[str]:
    """The names of the sweeps in ``sweep`` (its ``sweep`` column, in order), or its
    folder's name."""
    if frames.SWEEP_COLUMN in sweep.runs:
        return list(dict.fromkeys(sweep.runs[frames.SWEEP_COLUMN].astype(str)))
    return [sweep.root.resolve().name]


def render_html(
    sweep: Sweep, studies: list[StudyPart], studies_error: str | None, out: FigureOutput
) -> str:
    """The whole report as one HTML document."""
    name = " vs ".join(sweep_names(sweep))
    sections = [
        ("config", "Configuration", lambda: config_html(sweep)),
        ("runs", "Runs", lambda: runs_html(sweep)),
        ("not-ok", "Diverged, failed and unfinished runs", lambda: html_list(not_ok(sweep))),
        ("unreadable", "Files not read", lambda: html_list(sweep.problems)),
        ("studies", "Studies", lambda: studies_body(studies, studies_error)),
        ("figures", "Figures", lambda: generic_html(sweep, out)),
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


def render_markdown(
    sweep: Sweep, studies: list[StudyPart], studies_error: str | None, html_name: str
) -> str:
    """The short summary: title, verdicts, counts by status, not-ok runs, what was not read
    (``sweep.problems``), and a link to the HTML file. Text from the records is escaped by
    :func:`depthlab.report_html.md`, so that none of it renders as Markdown or HTML."""
    lines = [f"# depthlab report: {md(' vs '.join(sweep_names(sweep)))}", ""]
    lines += [md(str(sweep.root.resolve())), "", "## Verdicts", ""]
    lines += [f"- {md(p.name)}: {md(p.label)}. {md(p.text)}" for p in studies]
    if studies_error or not studies:
        lines.append(f"- {md(studies_error or 'no registered study in this sweep')}")
    lines += ["", "## Runs", "", md(status_counts(sweep)), ""]
    lines += [f"- {md(line)}" for line in not_ok(sweep)]
    lines += [f"- not read: {md(p)}" for p in sweep.problems]
    lines += ["", f"Full report: {md_link(html_name, html_name)}", ""]
    return "\n".join(lines)


def write_report(
    sweep: Sweep, out: Path | str | None = None, fmt: str = "png"
) -> tuple[Path, Path]:
    """Write the HTML report (default ``SWEEP_DIR/report.html``) and the Markdown summary
    beside it (same name, ``.md``); return both paths. ``fmt`` svg or pdf: every figure
    also as a file in NAME_figures/ beside the HTML (svg also embedded as SVG)."""
    html_path = Path(out) if out is not None else sweep.root / "report.html"
    md_path = html_path.with_suffix(".md")
    folder = html_path.with_name(f"{html_path.stem}_figures") if fmt != "png" else None
    figures = FigureOutput(fmt, folder)
    studies, error = study_parts(sweep, figures)
    page = render_html(sweep, studies, error, figures)
    summary = render_markdown(sweep, studies, error, html_path.name)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text(summary, encoding="utf-8")
    return html_path, md_path


def load(sweep_dirs: list[Path]) -> Sweep:
    """The sweep at ``sweep_dirs[0]``, or all of them as one with a ``sweep`` column
    (:func:`depthlab.results.load_sweeps`); ValueError when a folder holds no readable
    run."""
    sweep = load_sweep(sweep_dirs[0]) if len(sweep_dirs) == 1 else load_sweeps(sweep_dirs)
    if sweep.runs.empty:
        count = len(sweep.problems)
        why = f"; {count} not read, the first: {sweep.problems[0]}" if count else ""
        raise ValueError(f"no runs in this folder (no readable run.parquet){why}")
    named = set(sweep_names(sweep))
    empty = [folder for name, folder in sweep.folders.items() if name not in named]
    if len(sweep_dirs) > 1 and empty:
        raise ValueError(f"no runs in {empty[0]} (no readable run.parquet)")
    return sweep


def parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    parse = argparse.ArgumentParser(
        prog="python -m depthlab.report",
        description="One self-contained HTML report of a sweep, or of several sweeps side "
        "by side (coloured by sweep), and a Markdown summary.",
    )
    parse.add_argument(
        "sweep_dirs", type=Path, nargs="+", metavar="SWEEP_DIR", help="a sweep folder"
    )
    parse.add_argument(
        "--out",
        type=Path,
        help="the HTML file (default SWEEP_DIR/report.html; FIRST_SWEEP_DIR/compare.html "
        "for several sweeps)",
    )
    parse.add_argument(
        "--format",
        choices=FORMATS,
        default="png",
        help="figures: png (embedded), svg (embedded as SVG and written to "
        "NAME_figures/), pdf (written to NAME_figures/; PNG embedded)",
    )
    return parse


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m depthlab.report SWEEP_DIR [SWEEP_DIR ...] [--out FILE.html]
    [--format png|svg|pdf]``."""
    args = parser().parse_args(argv)
    where = " ".join(str(d) for d in args.sweep_dirs)
    try:
        if args.out is not None and args.out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out {args.out} must end in .html")
        sweep = load(args.sweep_dirs)
    except (OSError, ValueError) as exc:
        print(f"error: SWEEP_DIR={where}: {exc}", file=sys.stderr)
        return 2
    out = args.out
    if out is None and len(args.sweep_dirs) > 1:
        out = args.sweep_dirs[0] / "compare.html"
    matplotlib.use("Agg")
    try:
        html_path, md_path = write_report(sweep, out, args.format)
    except OSError as exc:  # a read-only folder, a full disk
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return 1
    print(f"report: {html_path}")
    print(f"summary: {md_path}")
    if args.format != "png":
        print(f"figures: {html_path.with_name(html_path.stem + '_figures')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
