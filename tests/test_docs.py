"""The documentation cites only what exists and lists what the registries hold.

Read: README.md, docs/*.md and benchmarks/README.md. Every relative link (and its
``#anchor`` where it points into a Markdown file) and every ``path/like/this.py`` they
mention exists in the repository; README's two quick-start lines are there verbatim; the
presets table of docs/reference.md is ``depthlab.probes.presets()`` and its probes table
names every registered probe; the README's studies table has a row for every registered
study, linking to its experiments/NAME/README.md; no file cites the design notes that live
outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depthlab.console.catalogue import duration_text, expected_seconds
from depthlab.probes import PROBES, presets
from depthlab.studies import STUDIES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "reference.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
TWO_LINES = (
    "pip install -e . && python -m depthlab.run -m depth=3,10,100",
    'pip install -e ".[test]" && pytest',
)
# files inside a run folder, cited as such (not paths of the repository)
RUN_FOLDER_FILES = {".hydra/overrides.yaml", ".hydra/config.yaml"}
EXTENSIONS = "py|md|yaml|yml|sh|png|svg|ipynb|toml|cfg|txt"
PATH = re.compile(rf"(?<![\w/.$:~-])((?:[\w.-]+/)+[\w.-]+\.(?:{EXTENSIONS}))(?![\w/])")
PLACEHOLDER = re.compile(r"[A-Z]{3,}")  # NAME, FOLDER, SWEEP_DIR ... (README itself aside)
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def headings(path: Path) -> set[str]:
    """GitHub's anchors of the Markdown headings of ``path`` (fenced code left out)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors = set()
    for line in text.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            title = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def table_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``, as
    lists of stripped cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_relative_link_exists(doc: Path) -> None:
    missing = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in headings(path)):
            missing.append(target)
    assert not missing, f"{_doc_id(doc)}: links to nothing: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_cited_path_exists(doc: Path) -> None:
    """Paths are read from the repository's root, or from the document's folder."""
    cited = set(PATH.findall(doc.read_text(encoding="utf-8"))) - RUN_FOLDER_FILES
    cited = {p for p in cited if not PLACEHOLDER.search(p.replace("README", ""))}
    missing = sorted(p for p in cited if not (ROOT / p).exists() and not (doc.parent / p).exists())
    assert not missing, f"{_doc_id(doc)} cites files that do not exist: {missing}"


def test_the_path_pattern_finds_paths_and_skips_urls() -> None:
    text = "see `src/depthlab/train.py`, docs/reference.md and https://example.org/a/b.py"
    assert PATH.findall(text) == ["src/depthlab/train.py", "docs/reference.md"]


def test_readme_has_the_two_lines_verbatim() -> None:
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    for line in TWO_LINES:
        assert line in lines


def test_reference_presets_table_is_the_registry() -> None:
    rows = table_rows(REFERENCE.read_text(encoding="utf-8"), "| preset | probes |")
    table = {name.strip("`"): tuple(p.strip() for p in probes.split(",")) for name, probes in rows}
    assert table == presets()


def test_reference_probes_table_names_every_registered_probe() -> None:
    rows = table_rows(REFERENCE.read_text(encoding="utf-8"), "| probe | metrics |")
    assert sorted(row[0] for row in rows) == sorted(PROBES.names())


def test_readme_studies_table_has_every_study_with_its_readme() -> None:
    rows = table_rows(README.read_text(encoding="utf-8"), "| study | question |")
    firsts = [row[0] for row in rows]
    assert len(rows) == len(STUDIES) and len(STUDIES) > 0
    for name in STUDIES.names():
        link = f"[{name}](experiments/{name}/README.md)"
        assert link in firsts, f"no row for study {name}"
        assert (ROOT / "experiments" / name / "README.md").is_file()
        row = rows[firsts.index(link)]
        assert f"`+experiment={name}`" in row[3] and f"`+experiment={name}_quick`" in row[3]
        quick, full = (duration_text(expected_seconds(p)) for p in (f"{name}_quick", name))
        assert row[4] == f"{quick}, {full}", f"{name}: the presets state {quick}, {full}"


@pytest.mark.parametrize(
    "doc", [*DOCS, *sorted((ROOT / "experiments").glob("*/README.md"))], ids=_doc_id
)
def test_no_doc_cites_notes_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for name in ("phenomena.md", "environment.md", "../shared", "/work/shared"):
        assert name not in text, f"{_doc_id(doc)} cites {name}"


def test_benchmarks_readme_describes_every_script() -> None:
    text = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in (ROOT / "benchmarks").iterdir() if p.suffix in {".py", ".sh"})
    assert [name for name in scripts if f"`{name}`" not in text] == []


def test_layout_names_only_modules_that_exist() -> None:
    """The layout table of docs/reference.md names modules by file name within the folder of
    its row (``dataset_*.py`` stands for several)."""
    missing = []
    for folder, what in table_rows(REFERENCE.read_text(encoding="utf-8"), "| folder |"):
        for name in re.findall(r"`([\w*]+\.py)`", what):
            if PLACEHOLDER.search(name) or not folder.startswith("`src/"):
                continue
            if not list((ROOT / folder.strip("`")).glob(name)):
                missing.append(f"{folder.strip('`')}{name}")
    assert missing == []
