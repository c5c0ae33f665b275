"""``depthlab studies`` as text: every study in a table, or one study's files.

The question and anchor come from each study's registration (``depthlab.studies``), the
times from its presets' headers (:mod:`depthlab.console.catalogue`).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from depthlab.console.catalogue import QUICK, duration_text, expected_seconds, parts_of

RUN = "python -m depthlab.run -m +experiment="


@dataclass(frozen=True)
class StudyRow:
    """One line of the list: a registered study and its presets' expected times (s)."""

    name: str
    question: str
    anchor: str
    quick_s: float | None
    full_s: float | None

    @property
    def command(self) -> str:
        return f"{RUN}{self.name}"


def study_rows() -> list[StudyRow]:
    """Every registered study, by name."""
    from depthlab.studies import STUDIES

    return [
        StudyRow(
            name,
            study.question,
            study.anchor,
            expected_seconds(name + QUICK),
            expected_seconds(name),
        )
        for name, study in sorted(STUDIES.items())
    ]


def studies_text(markdown: bool = False, width: int | None = None) -> str:
    """The list of studies: a Markdown table, or for a terminal of ``width`` columns (default:
    the terminal's) one block per study: name and times, then the question, the anchor and
    the command, wrapped."""
    rows = study_rows()
    if markdown:
        lines = [
            "| study | question | anchor | quick | full | command |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.name} | {_cell(r.question)} | {_cell(r.anchor)} | "
            f"{duration_text(r.quick_s)} | {duration_text(r.full_s)} | `{r.command}` |"
            for r in rows
        ]
        return "\n".join(lines)
    width = width or min(100, shutil.get_terminal_size((100, 24)).columns)
    indent = " " * 4
    intro = (
        f"{len(rows)} studies, with the expected wall time of each on a 2-core CPU: quick "
        "(+experiment=NAME_quick, a miniature) and full (+experiment=NAME). Run one, then "
        "read its figures and verdict:"
    )
    lines = [
        *textwrap.wrap(intro, width),
        f"{indent}{RUN}NAME_quick hydra.sweep.dir=DIR",
        f"{indent}python analysis/NAME.py DIR",
        "A study's files: depthlab studies NAME",
        "",
    ]
    for r in rows:
        lines.append(
            f"{r.name}  (quick {duration_text(r.quick_s)}, full {duration_text(r.full_s)})"
        )
        lines += textwrap.wrap(r.question, width, initial_indent=indent, subsequent_indent=indent)
        lines += textwrap.wrap(
            f"anchor: {r.anchor}", width, initial_indent=indent, subsequent_indent=indent * 2
        )
        lines += [f"{indent}{r.command}", ""]
    return "\n".join(lines).rstrip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def parts_text(name: str) -> str:
    """One study's question, anchor, times and files (paths relative to the working folder
    when below it); raises the registry's ConfigError for an unknown name."""
    from depthlab.studies import STUDIES

    study = STUDIES[name]
    parts = parts_of(name)
    quick, full = expected_seconds(name + QUICK), expected_seconds(name)
    lines = [
        f"{name}: {study.question}",
        f"anchor: {study.anchor}",
        f"quick: {RUN}{name}{QUICK}  (about {duration_text(quick)})",
        f"full:  {RUN}{name}  (about {duration_text(full)})",
        f"then:  python analysis/{name}.py SWEEP_DIR  (figures and verdict)",
        "",
    ]
    lines += [f"{label:<9} {_shown(path)}" for label, path in parts.rows()]
    return "\n".join(lines)


def _shown(path: Path | None) -> str:
    if path is None:
        return "-"
    here = Path.cwd()
    return os.path.relpath(path, here) if path.is_relative_to(here) else str(path)
