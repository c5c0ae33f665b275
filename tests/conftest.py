"""Shared fixtures: small, fast configurations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # figures render off-screen in tests

from depthlab.config import Config
from depthlab.data import Teacher


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated data sets are cached in a folder of this test session (subprocesses
    inherit it), never in the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["DEPTHLAB_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture
def tiny() -> Config:
    """A configuration that trains in well under a second."""
    return Config(
        depth=2,
        width=16,
        steps=20,
        eval_every=10,
        batch_size=32,
        data=Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64),
    )


@pytest.fixture(scope="session")
def quick_sweep(tmp_path_factory: pytest.TempPathFactory):
    """``quick_sweep("vanishing")``: the folder of ``+experiment=vanishing_quick``, run once
    per test session (a subprocess, as a user runs it) and shared by every test that asks."""
    import subprocess
    import sys

    made: dict[str, Path] = {}

    def run(study: str) -> Path:
        if study not in made:
            folder = tmp_path_factory.mktemp(f"quick_{study}")
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "depthlab.run",
                    "-m",
                    f"+experiment={study}_quick",
                    f"hydra.sweep.dir={folder}",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            made[study] = folder
        return made[study]

    return run
