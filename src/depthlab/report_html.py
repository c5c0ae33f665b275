"""The HTML and Markdown of a report: escaping, tables, lists, embedded figures, a
study's section and the Markdown summary. Every string taken from the records is escaped
(HTML) or made inert (Markdown); figures are embedded as data URIs, nothing is loaded from
elsewhere."""

from __future__ import annotations

import base64
import html
import io
import re
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab.tables import cell_text, short_names

DPI = 100
FORMATS = ("png", "svg", "pdf")
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em;
       color: #222; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; white-space: normal; max-width: 9em; }
td { white-space: nowrap; }
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


def html_table(frame: pd.DataFrame, keys: list[str] | tuple[str, ...] = ()) -> str:
    """``frame`` (without its index) as an HTML table that scrolls sideways when wider
    than the page: headers shortened (:func:`depthlab.tables.short_names`, the full name
    as a tooltip), cells in three significant figures, blank where a ``keys`` column does
    not apply; every header and cell escaped."""
    names = short_names([str(c) for c in frame.columns])
    head = "".join(f'<th title="{esc(c)}">{esc(names[str(c)])}</th>' for c in frame.columns)
    blanks = ["" if c in keys else "nan" for c in frame.columns]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell_text(v, b))}</td>" for v, b in zip(row, blanks, strict=True)
        )
        + "</tr>"
        for row in frame.itertuples(index=False, name=None)
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table}</div>'


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


@dataclass(frozen=True)
class FigureOutput:
    """Where a report's figures go: embedded in the page (PNG at :data:`DPI`, or SVG when
    ``fmt`` is svg) and, when ``folder`` is set, also written there as NAME.FMT (png, svg
    or pdf; a '/' in a name becomes '-')."""

    fmt: str = "png"
    folder: Path | None = None

    def embed(self, name: str, fig: plt.Figure) -> str:
        """The figure as an <img> data URI (written to ``folder`` too); it is closed."""
        try:
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"{name.replace('/', '-')}.{self.fmt}"
                fig.savefig(path, format=self.fmt, dpi=DPI)
            kind = "svg" if self.fmt == "svg" else "png"
            buffer = io.BytesIO()
            fig.savefig(buffer, format=kind, dpi=DPI)
        finally:
            plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        mime = "image/svg+xml" if kind == "svg" else "image/png"
        return f'<img alt="{esc(name)}" src="data:{mime};base64,{data}">'


def figure_html(
    name: str, draw: Callable[[], plt.Figure], caption: str = "", out: FigureOutput | None = None
) -> str:
    """An embedded <figure> of what ``draw()`` returns, or an error note if it fails."""
    with closing_new_figures():
        try:
            image = (out or FigureOutput()).embed(name, draw())
        except Exception as exc:  # one figure must never stop the report
            return note(f"figure {name}", exc)
    text = f"{name}: {caption}" if caption else name
    return f"<figure>{image}<figcaption>{esc(text)}</figcaption></figure>"


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
