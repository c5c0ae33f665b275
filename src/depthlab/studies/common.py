"""Transforms shared by the studies: picking steps and layers out of a sweep's tidy frame,
fitting per-layer slopes, intervals over seeds, and the command line of the ``analysis/``
scripts."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from scipy import stats

from depthlab.config import Config, config_from_file
from depthlab.results import Sweep, load_sweep
from depthlab.studies.base import STUDIES, Verdict, runs_of
from depthlab.train import RunResult, train

NETWORK_LAYER = 0


def metric_rows(sweep: Sweep, metric: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Rows of one metric joined with the run columns ``keys`` (default: swept keys, status)."""
    if sweep.metrics.empty:
        return pd.DataFrame(columns=["run_id", "step", "layer", "value"])
    frame = sweep.frame(keys)
    return frame[frame["metric"] == metric].copy()


def at_step(rows: pd.DataFrame, step: int | str) -> pd.DataFrame:
    """Rows at ``step`` (an int), or at each run's ``"first"`` / ``"last"`` recorded step."""
    if isinstance(step, int):
        return rows[rows["step"] == step]
    pick = rows.groupby("run_id")["step"].transform("min" if step == "first" else "max")
    return rows[rows["step"] == pick]


def network_curve(
    sweep: Sweep, metric: str = "loss", keys: list[str] | None = None
) -> pd.DataFrame:
    """A network-level metric (layer 0) against step, one curve per run."""
    rows = metric_rows(sweep, metric, keys)
    return rows[rows["layer"] == NETWORK_LAYER].sort_values(["run_id", "step"])


def log_slope(layers: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ln(value) against layer, over the finite positive values
    (nan when fewer than two remain): the per-layer growth rate of a geometric profile."""
    layers, values = np.asarray(layers, float), np.asarray(values, float)
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(layers[ok], np.log(values[ok]), 1)[0])


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): mean +- t_{0.975, m-1} s / sqrt(m) over m values (NaN ends for
    fewer than two). Where a value is infinite (a run that diverged, counted as an infinite
    loss), no t-interval holds it: the values' own range (min, max) instead."""
    values = np.asarray(values, float)
    mean = float(values.mean()) if len(values) else math.nan
    if np.isinf(values).any():
        return mean, float(values.min()), float(values.max())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def run_config(sweep: Sweep, run_id: str) -> Config:
    """The typed configuration of one run, from its job's ``.hydra/config.yaml``: for a
    replica of a batched job (a ``seed=S`` folder inside the job's) the run of its own
    seed, ``seed=S replicas=1``, which records the same."""
    row = sweep.runs.set_index("run_id").loc[run_id]
    folder = sweep.root / row["path"]
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


def theory_scatter(
    table: pd.DataFrame, predicted: str, measured: str, labels: dict[str, str], **styles: str
):
    """Measured against predicted, one point per run, with the identity line dotted.
    ``labels``: xlabel, ylabel, title; ``styles``: seaborn's hue, style, size columns."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5, 4.5))
    sns.scatterplot(table, x=predicted, y=measured, ax=ax, **styles)
    lim = np.nanmax(np.abs(table[[predicted, measured]].to_numpy(float))) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(labels["xlabel"])
    ax.set_ylabel(labels["ylabel"])
    ax.set_title(labels["title"])
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig


def span_decades(ax, decades: float = 1.0) -> None:
    """Widen a log y axis to at least ``decades`` decades around its data, so that nearly
    constant profiles read as flat rather than as noise magnified to fill the axis."""
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10**decades:
        middle = np.sqrt(low * high)
        ax.set_ylim(middle / 10 ** (decades / 2), middle * 10 ** (decades / 2))


def group_label(row: pd.Series, keys: list[str]) -> str:
    """'key=value, key=value' for a run's values of ``keys``."""
    return ", ".join(f"{k}={row[k]}" for k in keys)


def save_figures(figures: dict, out: Path) -> list[Path]:
    """Write each figure as out/NAME.png (150 dpi) and close it; the paths written."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=150)
        plt.close(fig)
        paths.append(path)
    return paths


def analyse(study: str, sweep_dir: Path | str, out: Path | str | None = None) -> Verdict:
    """Load a sweep, write the study's figures (default: SWEEP_DIR/analysis/STUDY/) and
    return its verdict."""
    sweep = runs_of(load_sweep(sweep_dir), study)
    if sweep.runs.empty:
        raise ValueError(f"no runs of study {study!r} in {sweep_dir}")
    entry = STUDIES[study]
    out = Path(out) if out is not None else Path(sweep_dir) / "analysis" / study
    save_figures(entry.figures(sweep), out)
    return entry.verdict(sweep)


def main(study: str, argv: list[str] | None = None) -> int:
    """Command line of ``analysis/STUDY.py SWEEP_DIR [--out DIR]``: figures and a verdict."""
    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(
        prog=f"analysis/{study}.py",
        description=f"Figures and verdict of the {study} study (+experiment={study}).",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, default=None, help="figure folder")
    args = parser.parse_args(argv)
    try:
        verdict = analyse(study, args.sweep_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: SWEEP_DIR={args.sweep_dir}: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.sweep_dir / "analysis" / study
    print(f"figures: {out}")
    print(verdict)
    return 0
