"""The code base stays ruff clean (the style the project agreed on, checked in CI)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extra)")
    folders = ["src", "tests", "benchmarks", "analysis"]  # analysis/ holds notebooks too
    for command in (["check"], ["format", "--check"]):
        proc = subprocess.run([ruff, *command, *folders], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
