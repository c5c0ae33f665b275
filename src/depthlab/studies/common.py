"""What is about studies as such: retraining a recorded run, writing a study's figures,
and the command line of the ``analysis/`` scripts. The transforms the studies reduce with
live in :mod:`depthlab.frames`, the figure helpers in :mod:`depthlab.plots`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

from depthlab.config import Config, config_from_file
from depthlab.results import Sweep, load_sweep
from depthlab.studies.base import STUDIES, Verdict, runs_of
from depthlab.train import RunResult, train

FORMATS = ("png", "svg", "pdf")


def run_config(sweep: Sweep, run_id: str) -> Config:
    """The typed configuration of one run, from its job's ``.hydra/config.yaml``: for a
    replica of a batched job (a ``seed=S`` folder inside the job's) the run of its own
    seed, ``seed=S replicas=1``, which records the same."""
    row = sweep.runs.set_index("run_id").loc[run_id]
    folder = sweep.run_folder(row)
    job = folder if (folder / ".hydra").is_dir() else folder.parent
    cfg = config_from_file(job / ".hydra" / "config.yaml")
    return dataclasses.replace(cfg, seed=int(row["seed"]), replicas=1)


def retrain(sweep: Sweep, run_id: str) -> RunResult:
    """Train a recorded run again from its ``.hydra/config.yaml`` (into a temporary folder)
    to get its model back; the records are what is kept, not weights. Runs are
    deterministic, so the rerun must end at the recorded final loss (checked)."""
    row = sweep.runs.set_index("run_id").loc[run_id]
    cfg = run_config(sweep, run_id)
    with tempfile.TemporaryDirectory() as folder:
        result = train(cfg, folder)
    recorded, again = row["final_loss"], result.row["final_loss"]
    if not np.isclose(recorded, again, rtol=1e-9, equal_nan=True):
        raise RuntimeError(f"run {run_id} retrained to loss {again}, recorded {recorded}")
    return result


def save_figures(figures: dict, out: Path, fmt: str = "png") -> list[Path]:
    """Write each figure as out/NAME.FMT (png at 150 dpi, or svg, pdf) and close it; the
    paths written."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=150, format=fmt)
        plt.close(fig)
        paths.append(path)
    return paths


def analyse(
    study: str, sweep_dir: Path | str, out: Path | str | None = None, fmt: str = "png"
) -> Verdict:
    """Load a sweep, write the study's figures as FMT files (default folder:
    SWEEP_DIR/analysis/STUDY/) and return its verdict."""
    sweep = runs_of(load_sweep(sweep_dir), study)
    if sweep.runs.empty:
        raise ValueError(f"no runs of study {study!r} in {sweep_dir}")
    entry = STUDIES[study]
    out = Path(out) if out is not None else Path(sweep_dir) / "analysis" / study
    save_figures(entry.figures(sweep), out, fmt)
    return entry.verdict(sweep)


def main(study: str, argv: list[str] | None = None) -> int:
    """Command line of ``analysis/STUDY.py SWEEP_DIR [--out DIR]``: figures and a verdict."""
    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(
        prog=f"analysis/{study}.py",
        description=STUDIES[study].question,
        epilog=f"Writes the figures and prints the verdict of +experiment={study}'s sweep.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, default=None, help="figure folder")
    parser.add_argument("--format", choices=FORMATS, default="png", help="figure files")
    args = parser.parse_args(argv)
    try:
        verdict = analyse(study, args.sweep_dir, args.out, args.format)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: SWEEP_DIR={args.sweep_dir}: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.sweep_dir / "analysis" / study
    print(f"figures: {out}")
    print(verdict)
    return 0
