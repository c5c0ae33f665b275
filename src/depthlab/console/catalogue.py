"""Where each study lives, found from its name alone, and how long its presets take.

A study ``NAME`` is spread over a fixed set of places, each named after it:

    conf/experiment/NAME.yaml            its preset (NAME_quick.yaml: the miniature;
                                         NAME_full.yaml, if any: a longer GPU form)
    src/depthlab/studies/NAME.py         its registration (question, anchor), figures, verdict
    analysis/NAME.py                     the user's entry point: figures and verdict of a sweep
    analysis/NAME.ipynb                  a notebook, for some studies
    experiments/NAME/README.md           the write-up: the claim, the figure, measured numbers
    tests/test_study_NAME.py             its tests

The question and the anchor are read from the registration (``depthlab.studies.STUDIES``),
the expected times from each preset's own header line ``# expected time: 12 s`` (a 2-core
CPU), so each is written once. The parts outside the package (analysis/, experiments/,
tests/) exist in a repository checkout (an editable install), not in an installed wheel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import depthlab

EXPECTED_TIME = re.compile(r"^#\s*expected time:\s*([\d,.]+)\s*(s|min|h)\b", re.MULTILINE)
UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}
QUICK, FULL = "_quick", "_full"


def preset_file(preset: str) -> Path:
    """The shipped preset ``conf/experiment/PRESET.yaml`` (it may not exist)."""
    return Path(str(resources.files("depthlab.conf").joinpath("experiment", f"{preset}.yaml")))


def expected_seconds(preset: str) -> float | None:
    """The wall time a preset's header states (``# expected time: 3.5 min``) on a 2-core CPU,
    in seconds; None when the preset states none."""
    path = preset_file(preset)
    match = EXPECTED_TIME.search(path.read_text()) if path.is_file() else None
    if match is None:
        return None
    return float(match.group(1).replace(",", "")) * UNIT_SECONDS[match.group(2)]


def duration_text(seconds: float | None) -> str:
    """``12 s``, ``3.5 min``, ``1.2 h``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min" if seconds < 600 else f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def repository_root() -> Path | None:
    """The checkout that holds the package (editable install): the folder with
    ``pyproject.toml`` and ``experiments/`` two levels above ``src/depthlab``; None for an
    installed wheel."""
    root = Path(depthlab.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "experiments").is_dir() else None


@dataclass(frozen=True)
class StudyParts:
    """Every file of one study, found from its name. ``None``: absent (no notebook, or a
    part outside the package in an installed wheel)."""

    name: str
    presets: tuple[Path, ...]  # NAME.yaml, NAME_quick.yaml, NAME_full.yaml where present
    module: Path
    analysis: Path | None
    notebook: Path | None
    readme: Path | None
    test: Path | None

    def rows(self) -> list[tuple[str, Path | None]]:
        """(label, path) per part, in the order a reader goes through them."""
        return [
            *[("preset", p) for p in self.presets],
            ("module", self.module),
            ("analysis", self.analysis),
            ("notebook", self.notebook),
            ("readme", self.readme),
            ("test", self.test),
        ]


def parts_of(name: str) -> StudyParts:
    """The parts of study ``name`` (a registered study: the caller checks)."""
    import importlib

    module = importlib.import_module(f"depthlab.studies.{name}")
    root = repository_root()

    def existing(relative: str) -> Path | None:
        path = root / relative if root else None
        return path if path is not None and path.exists() else None

    presets = [preset_file(name + suffix) for suffix in ("", QUICK, FULL)]
    return StudyParts(
        name=name,
        presets=tuple(p for p in presets if p.is_file()),
        module=Path(str(module.__file__)),
        analysis=existing(f"analysis/{name}.py"),
        notebook=existing(f"analysis/{name}.ipynb"),
        readme=existing(f"experiments/{name}/README.md"),
        test=existing(f"tests/test_study_{name}.py"),
    )
