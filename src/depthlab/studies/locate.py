"""Find, or make, the sweep a study's notebook or script reads: ``sweep_for("vanishing")``.

The lookup order (the first that applies wins):

1. ``$DEPTHLAB_SWEEP``, when set: that folder, as given (relative to the working folder).
2. The newest *finished* sweep of the study under the repository's ``outputs/`` folder: of
   the preset ``NAME`` first (the full study), then, with ``quick=True``, of ``NAME_quick``.
3. A new sweep of the preset (``NAME_quick`` with ``quick=True``, else ``NAME``), made by
   ``python -m depthlab.run -m +experiment=PRESET hydra.sweep.dir=outputs/studies/PRESET``
   in a subprocess run in the repository root; a made sweep is found by step 2 next time,
   and one that was interrupted is resumed there (finished runs are not trained again).

The repository root is the nearest folder, from the working folder upwards, that holds
``conf/experiment`` or ``pyproject.toml``, so a notebook finds it whether Jupyter starts its
kernel in ``analysis/`` or at the top; outside any repository, the working folder itself.

A sweep folder is one holding Hydra's ``multirun.yaml`` (``python -m depthlab.run -m`` names
them ``outputs/sweeps/DATE/TIME`` unless ``hydra.sweep.dir`` says otherwise). It is a sweep of
PRESET when its task overrides name ``experiment=PRESET`` (with ``+`` or ``++``, beside any
other overrides), and it is finished when no process holds its lock and each job the sweep
expands to left a run folder whose records say anything but ``running``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from omegaconf import OmegaConf

from depthlab import locks
from depthlab.results import load_sweep

SWEEP_ENV = "DEPTHLAB_SWEEP"
SWEEP_FILE = "multirun.yaml"
ROOT_MARKERS = ("conf/experiment", "pyproject.toml")


def sweep_for(
    study: str,
    quick: bool = True,
    start: Path | str | None = None,
    say: Callable[[str], object] | None = print,
) -> Path:
    """The sweep folder of ``study`` (a preset name such as ``"vanishing"``): ``$DEPTHLAB_SWEEP``,
    else the newest finished sweep of the study under the repository's ``outputs/`` (the full
    preset's before the quick one's, which counts only with ``quick``), else a sweep of the
    quick (``quick``) or full preset made now. ``start``: where to look for the repository root
    (default: the working folder). ``say``: where the one line announcing a new sweep goes
    (None: nowhere). Raises RuntimeError, with the end of its error output, when making the
    sweep fails, and FileNotFoundError when ``$DEPTHLAB_SWEEP`` is no folder."""
    given = os.environ.get(SWEEP_ENV)
    if given:
        folder = Path(given)
        if not folder.is_dir():
            raise FileNotFoundError(f"{SWEEP_ENV}={given} is no folder")
        return folder
    root = project_folder(start)
    presets = [study, f"{study}_quick"] if quick else [study]
    for preset in presets:
        found = newest_finished_sweep(root / "outputs", preset)
        if found is not None:
            return found
    return make_sweep(root, presets[-1], say)


def project_folder(start: Path | str | None = None) -> Path:
    """The nearest folder from ``start`` (default: the working folder) upwards that holds
    ``conf/experiment`` or ``pyproject.toml``; ``start`` itself when none does."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return here


def newest_finished_sweep(outputs: Path, preset: str) -> Path | None:
    """The finished sweep of ``preset`` under ``outputs`` whose ``multirun.yaml`` was written
    last (None when there is none)."""
    candidates = [f for f in sweep_folders(outputs) if sweep_preset_matches(f, preset)]
    candidates.sort(key=lambda f: (f / SWEEP_FILE).stat().st_mtime, reverse=True)
    return next((f for f in candidates if is_finished(f)), None)


def sweep_folders(outputs: Path) -> Iterator[Path]:
    """Every folder under ``outputs`` holding a ``multirun.yaml``; the search does not enter
    a sweep folder, a run folder or a hidden folder (``.superseded``, ``.hydra``)."""
    if not outputs.is_dir():
        return
    for folder, subfolders, files in os.walk(outputs):
        if SWEEP_FILE in files:
            subfolders.clear()
            yield Path(folder)
        elif "run.parquet" in files:
            subfolders.clear()
        else:
            subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))


def sweep_preset_matches(folder: Path, preset: str) -> bool:
    """Whether the sweep in ``folder`` was launched with ``+experiment=preset``."""
    return f"experiment={preset}" in [o.lstrip("+") for o in _task_overrides(folder)]


def is_finished(folder: Path) -> bool:
    """No process holds the sweep's lock, and each of the jobs its ``multirun.yaml`` expands
    to left a run folder whose runs are all recorded as ok, diverged or failed."""
    try:
        if locks.holder_of(folder) is not None:
            return False
        expected = expected_jobs(folder)
    except Exception:  # an unreadable or foreign multirun.yaml: not a sweep to trust
        return False
    runs = load_sweep(folder, metrics=False).runs
    if runs.empty or (runs["status"] == "running").any():
        return False
    job_folders = {Path(p).parts[0] for p in runs["path"]}
    return len(job_folders) >= expected


def expected_jobs(folder: Path) -> int:
    """How many jobs the sweep in ``folder`` launches: its preset's sweeper parameters and its
    command line's overrides, expanded as Hydra's basic sweeper (and depthlab's) expands them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = OmegaConf.load(folder / SWEEP_FILE)
    params = OmegaConf.to_container(saved.hydra.sweeper.get("params") or {})
    preset = [f"{key}={value}" for key, value in params.items()]
    overrides = OverridesParser.create().parse_overrides([*preset, *_task_overrides(folder)])
    return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))


def _task_overrides(folder: Path) -> list[str]:
    try:
        saved = OmegaConf.load(folder / SWEEP_FILE)
        return [str(o) for o in saved.hydra.overrides.task]
    except Exception:  # unreadable, or not written by Hydra
        return []


def make_sweep(root: Path, preset: str, say: Callable[[str], object] | None = print) -> Path:
    """Run ``python -m depthlab.run -m +experiment=preset`` in ``root`` into
    ``outputs/studies/preset`` (resuming what an earlier, interrupted call left there) and
    return that folder."""
    folder = root / "outputs" / "studies" / preset
    command = [
        sys.executable,
        "-m",
        "depthlab.run",
        "-m",
        f"+experiment={preset}",
        f"hydra.sweep.dir={folder.relative_to(root)}",
    ]
    shown = " ".join(["python", *command[1:]])
    if say is not None:
        say(f"no finished {preset} sweep under outputs/ yet; making one: {shown}")
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shown} (in {root}) failed with exit status {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    return folder
