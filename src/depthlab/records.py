"""Run records: the storage contract, its schemas, an incremental writer and validators.

A run directory holds

- ``run.parquet``: one row. ``run_id``, ``status`` (running | ok | diverged | failed), the
  final figures, timing, versions, and every config key as its own column, named as on the
  command line (``depth``, ``init`` for the chosen option, ``init.sigma_w2`` for its fields).
- ``metrics.parquet``: tidy long rows ``run_id, seed, step, layer, metric, value``. It is a
  parquet *data set*: a folder of part files, each complete on its own, written as the run
  goes (``pandas.read_parquet`` and ``pyarrow.dataset`` read the folder as one table). A
  killed run therefore keeps everything up to its last flush, and its ``run.parquet``
  still says ``running``: a run is complete only when ``status`` says so.

``step`` 0 is the network at initialisation, before any update; step t is after t updates.
``layer`` follows the derivation: 1..L, L the output layer; network-level values (loss,
accuracy) use ``NETWORK_LAYER`` = 0. A new metric adds rows, never columns. Files are
written to a temporary name and renamed, so no reader ever sees half a file.

Which columns of a run row are configuration keys (:func:`config_column_names`): all but
the core ``RUN_SCHEMA`` columns, how and where the run ran (``ENVIRONMENT_COLUMNS``), what
keys resolved to and library versions (``DERIVED_SUFFIXES``), and the labels a reader adds
(``path``, ``sweep``). Several seeds trained at once as replicas each get a complete run
folder ``RUN_DIR/seed=S`` (:func:`replica_folders`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RUN_FILE = "run.parquet"
METRICS_DIR = "metrics.parquet"
LIVE_DIR = "tensorboard"  # a live view's event files (depthlab.live), beside the records
# What a run leaves in its folder: set aside together when another run takes the folder.
RUN_PARTS = (RUN_FILE, METRICS_DIR, LIVE_DIR)
SUPERSEDED_DIR = ".superseded"
NETWORK_LAYER = 0
STATUSES = ("running", "ok", "diverged", "failed")
FINISHED = ("ok", "diverged", "failed")

METRICS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("seed", pa.int64()),
        ("step", pa.int64()),
        ("layer", pa.int32()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)

# Columns every run.parquet has (config columns come on top, one per key).
RUN_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("steps_done", pa.int64()),
        ("diverged_step", pa.int64()),
        ("final_loss", pa.float64()),
        ("final_accuracy", pa.float64()),
        ("final_test_loss", pa.float64()),
        ("final_test_accuracy", pa.float64()),
        ("delta_ratio_initial", pa.float64()),
        ("delta_ratio_final", pa.float64()),
        ("nonfinite_step", pa.int64()),
        ("nonfinite_layer", pa.int64()),
        ("theory", pa.string()),
        ("wall_time_s", pa.float64()),
        ("started_at", pa.string()),
        ("finished_at", pa.string()),
    ]
)

# Run-row columns that are no configuration key beside RUN_SCHEMA's: how and where the run
# ran, and (by suffix) what a key resolved to and the library versions.
ENVIRONMENT_COLUMNS = ("device_name", "denormals_flushed", "batched_runs")
DERIVED_SUFFIXES = ("_version", "_resolved")
# Configuration keys that change only what is shown while a run trains (a live view), never
# what it records: never a swept key of a sweep's tables and figures.
VIEW_KEYS = ("logger",)
# Columns a reader adds to the run rows: the run folder relative to its sweep (load_sweep),
# and the name of the sweep it belongs to (load_sweeps, several sweeps read as one).
PATH_COLUMN = "path"
SWEEP_COLUMN = "sweep"
# A replica's folder inside its configuration's run folder: ``seed=S``.
REPLICA_PREFIX = "seed="
REPLICA_GLOB = f"{REPLICA_PREFIX}*"

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A recorder writes a part file whenever this many rows wait in memory (about 30 MB), so
# a long run with rare evaluations never holds its records in memory.
MAX_BUFFERED_ROWS = 1 << 20


class SchemaError(ValueError):
    """A record that breaks the storage contract."""


class RecordsWriteError(OSError):
    """A record that could not be written (a full disk, a read-only or missing folder): one
    line naming the file and the system's reason."""

    def __init__(self, path: Path, cause: OSError) -> None:
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        super().__init__(cause.errno, reason)
        self.path = path

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.strerror}"


def _write_atomic(table: pa.Table, path: Path, **options: Any) -> None:
    """Write ``table`` to a temporary name beside ``path``, then rename it: readers see the
    old file or the new one, never half of one. A failed write leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp, **options)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise RecordsWriteError(path, exc) from exc


# Part files: lz4 decodes faster than zstd (a sweep of 1,000 runs reads about 1 s sooner)
# for about 5% more disk. run.parquet is one row: compression and dictionaries only cost.
METRICS_WRITE = {"compression": "lz4"}
RUN_WRITE = {"compression": "none", "use_dictionary": False}


def run_table(row: Mapping[str, Any]) -> pa.Table:
    """One run row as a table: the core columns typed by RUN_SCHEMA, the rest inferred."""
    arrays, names = [], []
    for f in RUN_SCHEMA:
        arrays.append(pa.array([row.get(f.name)], type=f.type))
        names.append(f.name)
    for key, value in row.items():
        if key not in RUN_SCHEMA.names:
            arrays.append(pa.array([value]))
            names.append(key)
    return pa.Table.from_arrays(arrays, names=names)


def config_columns(cfg: Any, seed: int | None = None) -> dict[str, Any]:
    """The run row's config columns, named as on the command line: a group gives its
    chosen option (``init``) and its fields (``init.sigma_w2``); ``seed`` is the run's
    (a replica's seed, default ``cfg.seed``). ``cfg``: a Config (typed loosely: config.py
    imports this module through the probes)."""
    row: dict[str, Any] = {}
    for key, value in asdict(cfg).items():
        if isinstance(value, dict):  # a group: its chosen option, then its fields
            row[key] = value.pop("name")
            row.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            row[key] = value
    row["seed"] = cfg.seed if seed is None else seed
    return row


def config_column_names(columns: Iterable[str]) -> list[str]:
    """The ``columns`` of run rows that hold configuration keys, in their order: all but
    ``RUN_SCHEMA``'s, ``ENVIRONMENT_COLUMNS``, those ending in ``DERIVED_SUFFIXES``, and the
    reader's ``path`` and ``sweep``."""
    skip = {*RUN_SCHEMA.names, *ENVIRONMENT_COLUMNS, PATH_COLUMN, SWEEP_COLUMN}
    return [c for c in columns if c not in skip and not c.endswith(DERIVED_SUFFIXES)]


def replica_seeds(cfg: Any) -> list[int]:
    """The seeds of a config's replicas: ``seed`` .. ``seed + replicas - 1``. Replica r is the
    same run as ``seed=seed+r replicas=1``: same draw, same batches, same records. (``cfg``:
    a Config, typed loosely because config.py imports this module through the probes.)"""
    return [cfg.seed + r for r in range(cfg.replicas)]


def replica_folders(run_dir: Path, seeds: Sequence[int]) -> list[Path]:
    """Where each seed's records go: ``run_dir`` itself for a single seed (an ordinary run),
    else one complete run folder per seed, ``run_dir/seed=S``."""
    if len(seeds) == 1:
        return [run_dir]
    return [run_dir / f"{REPLICA_PREFIX}{seed}" for seed in seeds]


def set_aside_previous(run_dir: Path) -> Path | None:
    """Move an earlier run's records (``RUN_PARTS``: its live view's event files too) out of
    ``run_dir`` into ``run_dir/.superseded/TIME/``.

    A new run in a folder that already holds records must neither mix its rows with the old
    ones nor delete them. Readers skip hidden folders, so set-aside records stay out of
    sweeps but remain on disk. Returns the folder they went to (None if there were none).
    """
    return set_aside(run_dir, list(RUN_PARTS))


def set_aside(folder: Path, names: list[str]) -> Path | None:
    """Move the entries ``names`` of ``folder`` that exist (files or folders) into
    ``folder/.superseded/TIME/``, keeping their names; the folder they went to, or None."""
    old = [folder / name for name in names if (folder / name).exists()]
    if not old:
        return None
    target = folder / SUPERSEDED_DIR / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    target.mkdir(parents=True)
    for path in old:
        os.replace(path, target / path.name)
    return target


class RunRecorder:
    """Writes one run's records incrementally (see the module docstring for the layout).

    ``log`` buffers rows in memory; ``flush`` writes them as a new part file (``log`` does
    too when ``MAX_BUFFERED_ROWS`` wait); ``finish`` flushes and rewrites ``run.parquet``
    with the final status and figures.
    """

    def __init__(self, run_dir: Path | str, row: Mapping[str, Any], seed: int) -> None:
        self.run_dir = Path(run_dir)
        self.metrics_dir = self.run_dir / METRICS_DIR
        try:
            set_aside_previous(self.run_dir)
            self.metrics_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordsWriteError(self.metrics_dir, exc) from exc
        self.row = {**row, "status": "running"}
        self.run_id = str(row["run_id"])
        self.seed = seed
        self._parts = 0
        self._last_flush = time.monotonic()
        self._clear()
        _write_atomic(run_table(self.row), self.run_dir / RUN_FILE, **RUN_WRITE)
        self.written_status = "running"  # what run.parquet on disk says

    def _clear(self) -> None:
        self._steps: list[np.ndarray] = []
        self._layers: list[np.ndarray] = []
        self._metrics: list[str] = []
        self._counts: list[int] = []
        self._values: list[np.ndarray] = []
        self._buffered = 0

    def log(
        self,
        step: int | np.ndarray,
        layer: int | np.ndarray,
        metric: str,
        value: float | np.ndarray,
    ) -> None:
        """Buffer one metric: scalars, or equal-length arrays of steps/layers/values."""
        values = np.asarray(value, dtype=np.float64).ravel()
        n = len(values)
        self._steps.append(np.broadcast_to(np.asarray(step, dtype=np.int64), (n,)))
        self._layers.append(np.broadcast_to(np.asarray(layer, dtype=np.int32), (n,)))
        self._metrics.append(metric)
        self._counts.append(n)
        self._values.append(values)
        self._buffered += n
        if self._buffered >= MAX_BUFFERED_ROWS:
            self.flush()

    def update_row(self, **fields: Any) -> None:
        """Set ``fields`` of the run row and rewrite run.parquet at once (still running)."""
        self.row.update(fields)
        _write_atomic(run_table(self.row), self.run_dir / RUN_FILE, **RUN_WRITE)

    def seconds_since_flush(self) -> float:
        return time.monotonic() - self._last_flush

    def flush(self) -> None:
        """Write the buffered rows as one new part file (nothing when the buffer is empty)."""
        self._last_flush = time.monotonic()
        if not self._values:
            return
        n = sum(self._counts)
        table = pa.Table.from_arrays(
            [
                pa.array(np.full(n, self.run_id, dtype=object), pa.string()),
                pa.array(np.full(n, self.seed, dtype=np.int64)),
                pa.array(np.concatenate(self._steps)),
                pa.array(np.concatenate(self._layers)),
                pa.array(
                    np.repeat(np.array(self._metrics, dtype=object), self._counts), pa.string()
                ),
                pa.array(np.concatenate(self._values)),
            ],
            schema=METRICS_SCHEMA,
        )
        _write_atomic(table, self.metrics_dir / f"part-{self._parts:05d}.parquet", **METRICS_WRITE)
        self._parts += 1
        self._clear()

    def finish(self, status: str, **fields: Any) -> dict[str, Any]:
        """Flush, then record ``status`` and the final ``fields`` in run.parquet. A run that
        ends ``failed`` is recorded so even when its last rows cannot be flushed (its error
        says why); any other status needs them on disk first."""
        if status not in FINISHED:
            raise ValueError(f"status must be one of {FINISHED}, not {status!r}")
        try:
            self.flush()
        except RecordsWriteError:
            if status != "failed":
                raise
            self._clear()
        self.row.update(fields, status=status)
        table = run_table(self.row)
        _write_atomic(table, self.run_dir / RUN_FILE, **RUN_WRITE)
        self.written_status = status
        return table.to_pylist()[0]


def validate_metrics(table: pa.Table, run_id: str | None = None) -> None:
    """Raise SchemaError unless ``table`` follows METRICS_SCHEMA exactly and its rules: no
    nulls, steps >= 0, layers >= NETWORK_LAYER, snake_case metric names, and (when given)
    every row belonging to ``run_id``."""
    if not table.schema.equals(METRICS_SCHEMA):
        raise SchemaError(f"metrics schema {table.schema} differs from {METRICS_SCHEMA}")
    nulls = [name for name in table.column_names if table.column(name).null_count]
    if nulls:
        raise SchemaError(f"null values in {nulls}")
    df = table.select(["run_id", "step", "layer", "metric"]).to_pandas()
    if (df["step"] < 0).any():
        raise SchemaError("negative step")
    if (df["layer"] < NETWORK_LAYER).any():
        raise SchemaError(f"layer below {NETWORK_LAYER}")
    bad = [m for m in df["metric"].unique() if not METRIC_NAME.match(str(m))]
    if bad:
        raise SchemaError(f"metric names not snake_case: {bad}")
    if run_id is not None and (df["run_id"] != run_id).any():
        raise SchemaError(f"rows of another run than {run_id}: {set(df['run_id']) - {run_id}}")


def validate_run(table: pa.Table) -> None:
    """Raise SchemaError unless ``table`` is one run row with the core columns and a status."""
    if table.num_rows != 1:
        raise SchemaError(f"run.parquet has {table.num_rows} rows, expected 1")
    schema = table.schema
    have = {name: schema.field(name).type for name in schema.names}
    for f in RUN_SCHEMA:
        if f.name not in have:
            raise SchemaError(f"run.parquet lacks column {f.name!r}")
        if not have[f.name].equals(f.type):
            raise SchemaError(f"run.parquet column {f.name!r} is {have[f.name]}, expected {f.type}")
    status = table.column("status")[0].as_py()
    if status not in STATUSES:
        raise SchemaError(f"status {status!r} is not one of {STATUSES}")


def read_run(run_dir: Path | str) -> dict[str, Any]:
    """The validated run row of ``run_dir`` as a dict."""
    table = pq.read_table(Path(run_dir) / RUN_FILE)
    validate_run(table)
    return table.to_pylist()[0]


def read_metrics(run_dir: Path | str) -> pd.DataFrame:
    """The metric rows of ``run_dir``: every flushed part file, each validated on its own
    (exact schema, no nulls, and the run_id of the folder's run.parquet)."""
    run_dir = Path(run_dir)
    run_id = read_run(run_dir)["run_id"] if (run_dir / RUN_FILE).exists() else None
    tables = []
    for part in sorted((run_dir / METRICS_DIR).glob("part-*.parquet")):
        table = pq.read_table(part)
        try:
            validate_metrics(table, run_id)
        except SchemaError as exc:
            raise SchemaError(f"{part.name}: {exc}") from None
        tables.append(table)
    return (
        pa.concat_tables(tables).to_pandas() if tables else METRICS_SCHEMA.empty_table().to_pandas()
    )
