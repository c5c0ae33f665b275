"""A study's question is written once, in its registration (``Study.question`` in
src/depthlab/studies/NAME.py): experiments/NAME/README.md quotes it verbatim in its
"## The question" section, and ``python analysis/NAME.py --help`` shows it as the
command's description."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depthlab.studies import STUDIES
from depthlab.studies.common import main

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(STUDIES.names())
SECTION = re.compile(r"^## The question\n(.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def question_section(name: str) -> str:
    """The text under "## The question" in experiments/NAME/README.md (empty if none)."""
    text = (ROOT / "experiments" / name / "README.md").read_text(encoding="utf-8")
    found = SECTION.search(text)
    return found.group(1) if found else ""


@pytest.mark.parametrize("name", NAMES)
def test_readme_quotes_the_registered_question_verbatim(name: str) -> None:
    question = STUDIES[name].question
    assert question.strip() and question in question_section(name), name
    assert f"> {question}\n" in question_section(name)  # as a quote of its own


@pytest.mark.parametrize("name", NAMES)
def test_analysis_help_shows_the_registered_question(
    name: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(name, ["--help"])
    assert exit_.value.code == 0
    shown = "".join(capsys.readouterr().out.split())  # argparse wraps it, at hyphens too
    assert "".join(STUDIES[name].question.split()) in shown
    assert f"analysis/{name}.py" in shown
