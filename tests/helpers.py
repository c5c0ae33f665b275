"""Small helpers shared by the tests (imported as ``helpers``; pytest puts tests/ on the path).

Fake sweeps come from two helpers. :func:`memory_sweep` builds a ``Sweep`` in memory, for a
study's reduction on planted numbers (no folder, nothing to read). :func:`fake_sweep` writes
run folders through the real writer, for anything that reads folders (``load_sweep``, the
report, plots or notebooks that take a sweep directory, resume).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from depthlab.config import Config
from depthlab.data import CLASSIFICATION, Data, Teacher
from depthlab.inits import Gaussian
from depthlab.optimizers import Momentum
from depthlab.probes.schedule import MinimalProbes
from depthlab.records import METRICS_SCHEMA, RunRecorder, read_metrics
from depthlab.results import Sweep

Metric = tuple[int, int, str, float]  # step, layer, metric, value
Row = tuple[str, int, int, int, str, float]  # run_id, seed, step, layer, metric, value


def fake_run(
    folder: Path, row: Mapping[str, Any], metrics: Iterable[Metric] = (), status: str = "ok"
) -> list[Row]:
    """A run folder as depthlab writes one (by ``RunRecorder``): ``run.parquet`` holds
    ``row`` (it needs ``run_id``; its ``seed``, default 0, is also the metric rows' seed)
    and the ``metrics`` rows go in one part file per step (part k holds the k-th step met,
    in the order given). ``status`` ``running`` leaves the run as a killed one leaves it.
    Returns the metric rows as ``load_sweep`` reads them back."""
    seed = int(row.get("seed", 0))
    recorder = RunRecorder(folder, row, seed=seed)
    rows: list[Row] = []
    for step, layer, metric, value in metrics:
        if rows and step != rows[-1][2]:
            recorder.flush()
        recorder.log(step, layer, metric, value)
        rows.append((str(row["run_id"]), seed, step, layer, metric, float(value)))
    if status == "running":
        recorder.flush()
    else:
        recorder.finish(status)
    return rows


def fake_sweep(
    root: Path,
    runs: Iterable[Mapping[str, Any]],
    metrics: Mapping[str, Iterable[Metric]] | Iterable[Row] | None = None,
) -> list[Row]:
    """A sweep folder of fake runs, the one way tests build records on disk (read them back
    with ``load_sweep(root)``): each of ``runs`` is a run.parquet row written by
    :func:`fake_run` into ``root/FOLDER``, where the row's key ``folder`` names FOLDER
    (default: the run's position, 0, 1, ...) and ``status`` its end (default ``ok``).
    ``metrics``: each run's ``(step, layer, metric, value)`` rows by run_id, or tidy rows
    ``(run_id, seed, step, layer, metric, value)`` whose seed is their run's (``seed`` of
    its row, default 0). Returns every metric row written, in the order of ``runs``."""
    by_run = _by_run(metrics or {})
    rows: list[Row] = []
    for index, run in enumerate(runs):
        run = dict(run)
        folder = root / str(run.pop("folder", index))
        status = run.pop("status", "ok")
        seeds, own = by_run.get(run["run_id"], ((), []))
        if any(seed != run.get("seed", 0) for seed in seeds):
            raise ValueError(f"run {run['run_id']}: metric rows of seeds {set(seeds)}")
        rows += fake_run(folder, run, own, status)
    return rows


def _by_run(
    metrics: Mapping[str, Iterable[Metric]] | Iterable[Row],
) -> dict[str, tuple[list[int], list[Metric]]]:
    """The seeds and ``(step, layer, metric, value)`` rows of each run_id."""
    if isinstance(metrics, Mapping):
        return {run_id: ([], list(rows)) for run_id, rows in metrics.items()}
    by_run: dict[str, tuple[list[int], list[Metric]]] = {}
    for run_id, seed, *metric in metrics:
        seeds, rows = by_run.setdefault(run_id, ([], []))
        seeds.append(seed)
        rows.append(tuple(metric))
    return by_run


def metric_frame(rows: Iterable[Row]) -> pd.DataFrame:
    """Metric rows as ``load_sweep`` returns them: METRICS_SCHEMA's columns and types."""
    rows = list(rows)
    if not rows:
        return METRICS_SCHEMA.empty_table().to_pandas()
    columns = dict(zip(METRICS_SCHEMA.names, zip(*rows, strict=True), strict=True))
    return pa.table(columns, schema=METRICS_SCHEMA).to_pandas()


def memory_sweep(
    runs: Iterable[Mapping[str, Any]], metrics: Iterable[Row] = (), root: Path = Path(".")
) -> Sweep:
    """A sweep held in memory, as ``load_sweep`` would return it but without any folder:
    ``runs`` are the run.parquet rows (one dict per run; ``path`` only where it matters),
    ``metrics`` the tidy rows ``(run_id, seed, step, layer, metric, value)``, typed by
    :func:`metric_frame` as ``load_sweep`` types them. Use it to test a study's reduction on
    planted numbers; use :func:`fake_sweep` for anything that reads run folders."""
    return Sweep(root, pd.DataFrame(list(runs)), metric_frame(metrics))


def good_arrays(rng: np.random.Generator, task: str = CLASSIFICATION) -> dict[str, np.ndarray]:
    """The four arrays of a valid .npz data set: 50 training and 20 test samples of 4
    features, with 3 classes (classification) or 2 target columns (regression)."""
    y_train, y_test = rng.integers(0, 3, 50), rng.integers(0, 3, 20)
    if task != CLASSIFICATION:
        y_train, y_test = rng.normal(size=(50, 2)), rng.normal(size=(20, 2))
    return {
        "x_train": rng.normal(size=(50, 4)),
        "y_train": y_train,
        "x_test": rng.normal(size=(20, 4)),
        "y_test": y_test,
    }


def per_layer(frame: pd.DataFrame, metric: str, seed: int = 0) -> np.ndarray:
    """One metric's values ordered by layer, for one seed (replica)."""
    rows = frame[(frame["metric"] == metric) & (frame["seed"] == seed)].sort_values("layer")
    return rows["value"].to_numpy()


def at_init(data: Data, num_train: int, depth: int, width: int, sigma_w2: float = 1.5) -> Config:
    """A tanh net measured at initialisation only, full batch, float64, minimal probes."""
    return Config(
        depth=depth,
        width=width,
        activation="tanh",
        data=data,
        batch_size=num_train,
        steps=0,
        dtype="float64",
        init=Gaussian(sigma_w2=sigma_w2, sigma_b2=0.05),
        probes=MinimalProbes(),
    )


def relu_momentum(**keys) -> Config:
    """A depth-4, width-16 ReLU net (sigma_w2 = 2) trained by momentum SGD for 60 steps on a
    small teacher task: the base of the batched-group tests (``keys`` override)."""
    base = {
        "depth": 4,
        "width": 16,
        "activation": "relu",
        "init": Gaussian(sigma_w2=2.0),
        "optimizer": Momentum(momentum=0.9),
        "lr": 0.05,
        "steps": 60,
        "eval_every": 20,
        "batch_size": 32,
        "data": Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64),
    }
    return Config(**{**base, **keys})


def hold(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock for ``seconds`` (ready when it prints)."""
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from depthlab import locks
        with locks.locked([Path({str(folder)!r})]):
            print("held", flush=True)
            time.sleep({seconds})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def layer_values(folder: Path | str, metric: str, step: int = 0) -> np.ndarray:
    """The values of ``metric`` at ``step`` in one run folder's records, by layer (1..L)."""
    rows = read_metrics(folder)
    rows = rows[(rows.metric == metric) & (rows.step == step)].sort_values("layer")
    return rows["value"].to_numpy()
