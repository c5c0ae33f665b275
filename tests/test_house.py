"""The house rules, read off the source: short files, short functions, no import loops.

Code is read far more than it is written: no file of src/, tests/, benchmarks/ or analysis/
over 400 lines, no function over 60 lines, and depthlab's modules import one another
without a cycle (module-level imports; an import inside a function is a deliberate late
import and is not counted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("src", "tests", "benchmarks", "analysis")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
SOURCES = sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_sources_were_found() -> None:
    assert len(SOURCES) > 100 and ROOT / "src" / "depthlab" / "train.py" in SOURCES


def test_no_file_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in SOURCES
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert not long


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert not long


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The depthlab modules that ``path`` imports at module level (``from a import b`` counts
    a.b when that is a module, else a)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            }
    return found & modules


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (depth-first search), or []."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_loops() -> None:
    files = sorted((ROOT / "src").rglob("*.py"))
    modules = {module_name(p) for p in files}
    graph = {module_name(p): imports(p, modules) - {module_name(p)} for p in files}
    # a package's __init__ importing its own submodules is how registration works, and the
    # submodules importing the package's siblings is not a loop through it
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(f"{m}.")}
    assert len(graph) > 50
    assert cycle(graph) == []


@pytest.mark.parametrize(
    "graph,expected", [({"a": {"b"}, "b": {"a"}}, 3), ({"a": {"b"}, "b": set()}, 0)]
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: int) -> None:
    assert len(cycle(graph)) == expected
