"""Reading run records back: ``load_sweep``, ``load_sweeps`` and the :class:`Sweep` they give.

``load_sweep`` reads a sweep in three passes and never builds a frame per run: one walk of
the folder tree finds the run folders (``depthlab.sweep_files``: links to folders are not
followed, so no loop is walked and no run read twice); each ``run.parquet`` (one row) is
read and validated on its own, and a run whose run_id an earlier folder already holds (a
copied folder) is left out; and the metrics part files of all runs are read by ONE
``pyarrow.dataset`` scan (``depthlab.metrics_scan``), which drops and names the files that
break the rules of ``records.validate_metrics``. Nothing on disk stops a load: every entry
that cannot be read or is left out is named in ``problems``. ``load_sweeps`` reads several
sweeps as one, each run labelled with its sweep's name, so that they compare in one frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from depthlab.errors import ConfigError
from depthlab.metrics_scan import empty_metrics, read_metric_rows
from depthlab.records import (
    PATH_COLUMN,
    RUN_FILE,
    RUN_SCHEMA,
    SWEEP_COLUMN,
    VIEW_KEYS,
    config_column_names,
    validate_run,
)
from depthlab.sweep_files import in_threads, os_reason, run_folders


@dataclass
class Sweep:
    """The records of a folder of runs, or of several sweeps read as one.

    ``runs``: one row per run (run.parquet, plus ``path``, the run folder relative to its
    sweep's folder, and for several sweeps ``sweep``, the sweep's name), in the natural
    order of the folders. ``metrics``: the tidy rows of every run (or of the selected
    metrics) with the columns and types of ``METRICS_SCHEMA`` (plain strings, not
    categoricals), in run order, then part file, then row. ``problems``: what was skipped,
    never silently: every file or folder that could not be read or is left out (a copy of
    a run, a link to a folder), one line each: the path, then why. ``folders``: each
    sweep's folder by its name, for several sweeps (``root`` is the first one's).
    """

    root: Path
    runs: pd.DataFrame
    metrics: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    folders: dict[str, Path] = field(default_factory=dict)

    def config_columns(self) -> list[str]:
        """Columns of ``runs`` that hold configuration keys (``records.config_column_names``)."""
        return config_column_names(self.runs.columns)

    def swept_keys(self) -> list[str]:
        """Configuration keys whose value differs between runs (less ``VIEW_KEYS``)."""
        return [
            c
            for c in self.config_columns()
            if c not in VIEW_KEYS and self.runs[c].astype(str).nunique(dropna=False) > 1
        ]

    def run_folder(self, run: pd.Series | dict[str, Any]) -> Path:
        """The folder of a row of ``runs``: its ``path`` in its sweep's folder."""
        sweep = run.get(SWEEP_COLUMN)
        root = self.folders.get(sweep, self.root) if isinstance(sweep, str) else self.root
        return root / run[PATH_COLUMN]

    def frame(self, keys: list[str] | None = None) -> pd.DataFrame:
        """Metric rows joined with run columns (default: the swept keys and ``status``; any
        column of ``runs`` may be asked for; ``sweep`` always where the runs have it), plus
        ``layers_from_output`` = L - l, the layer's distance from the output layer
        L (:meth:`num_layers`; 0 at the output, L - 1 at the first hidden layer; NaN for
        network-level rows, layer 0), which aligns nets of different depths at their output.
        ConfigError for a key ``runs`` does not have."""
        keys = [*self.swept_keys(), "status"] if keys is None else list(keys)
        if SWEEP_COLUMN in self.runs.columns:
            keys.insert(0, SWEEP_COLUMN)
        # a key the metrics already carry (seed: per replica) is taken from the metrics
        keys = [k for k in dict.fromkeys(keys) if k not in self.metrics.columns]
        for key in keys:
            if key not in self.runs.columns:
                raise ConfigError("keys", key, list(self.runs.columns), "not a run column")
        frame = self.metrics.merge(self.runs[["run_id", *keys]], on="run_id", how="left")
        layers = self.num_layers()
        if layers is not None:
            distance = frame["run_id"].map(layers) - frame["layer"].astype(float)
            frame["layers_from_output"] = distance.where(frame["layer"] > 0)
        return frame

    def num_layers(self) -> pd.Series | None:
        """L of each run by run_id: ``depth`` + 1 for depthlab's MLPs, ``num_layers`` for
        models recorded by ``depthlab.watch``; None when the runs have neither column."""
        runs = self.runs.set_index("run_id")
        found = None
        if "depth" in runs.columns:
            found = runs["depth"].astype(float) + 1
        if "num_layers" in runs.columns:
            watched = runs["num_layers"].astype(float)
            found = watched if found is None else watched.fillna(found)
        return found


def load_sweep(path: Path | str, metrics: bool | str | Sequence[str] = True) -> Sweep:
    """Read every run under ``path`` (any depth; hidden folders such as ``.superseded`` and
    ``.hydra`` are skipped), skipping and naming in ``problems`` whatever cannot be read.

    Nothing on disk makes it fail (only a ``path`` that is no folder): a folder that cannot
    be listed, a run.parquet or part file that is a folder, a loop of links or unreadable,
    and a metrics.parquet that is no folder are each named and skipped, and the rest is
    read. Links to files are followed; while searching for run folders, links to folders
    are not (a linked run folder, in the sweep or outside it, is named and not read), so no
    loop is walked and no run read twice; a metrics.parquet that links to a folder is read
    (only listed, never searched). Runs with the same run_id (a copied run folder): the
    first folder in the natural order is read, each later one is named and left out of
    ``runs`` and ``metrics``.

    ``metrics``: True reads every metric row, False none, and a metric name or a list of
    names only the rows of those metrics (the selection is applied while scanning, so rows
    of other metrics are never held in memory).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no sweep folder at {root}")
    problems: list[str] = []
    runs = pd.DataFrame(read_run_rows(root, run_folders(root, problems), problems))
    runs = drop_copies(root, runs, problems)
    names = _selection(metrics)
    folders = [root / p for p in runs["path"]] if len(runs) else []
    run_ids = list(runs["run_id"]) if len(runs) else []
    frame = empty_metrics() if names == [] else read_metric_rows(folders, run_ids, names, problems)
    return Sweep(root, runs, frame, problems)


def load_sweeps(
    paths: Sequence[Path | str],
    names: Sequence[str] | None = None,
    metrics: bool | str | Sequence[str] = True,
) -> Sweep:
    """Several sweeps read as one (each by :func:`load_sweep`, ``metrics`` as there), so that
    they compare in one frame: every run is labelled in a ``sweep`` column (the first of
    ``runs``; :meth:`Sweep.frame` carries it) with ``names[i]`` for ``paths[i]``, or by
    default its folder's name (where folders share a name, as many of the last parts of
    their paths as tell them apart: ``a/outputs``, ``b/outputs``).

    Runs and metric rows come in the order of ``paths``; ``problems`` are those of every
    sweep; ``folders`` maps each name to its folder, and ``root`` is the first folder. A
    run whose run_id an earlier sweep already holds (a copied run, or a folder given twice)
    is named in ``problems`` and left out with its rows, as load_sweep does within a sweep,
    so a run_id names one run of the whole. ConfigError for no paths, or for ``names`` that
    are not one distinct name per path."""
    folders = [Path(p) for p in paths]
    labels = _sweep_names(folders, names)
    runs, rows, problems = [], [], []
    holder: dict[str, str] = {}  # run_id -> the name of the sweep read for it
    for folder, label in zip(folders, labels, strict=True):
        sweep = load_sweep(folder, metrics)
        problems += sweep.problems
        if sweep.runs.empty:
            continue
        copies = sweep.runs["run_id"].isin(list(holder)).to_numpy()
        problems += [
            f"{folder / path}: run_id {run_id} also in sweep {holder[run_id]}: left out"
            for run_id, path in sweep.runs.loc[copies, ["run_id", PATH_COLUMN]].to_numpy()
        ]
        kept = sweep.runs[~copies]
        holder.update(dict.fromkeys(kept["run_id"], label))
        runs.append(kept.assign(**{SWEEP_COLUMN: label}))
        rows.append(sweep.metrics[sweep.metrics["run_id"].isin(kept["run_id"])])
    frame = pd.concat(runs, ignore_index=True) if runs else pd.DataFrame()
    if runs:
        frame.insert(0, SWEEP_COLUMN, frame.pop(SWEEP_COLUMN))
    table = pd.concat(rows, ignore_index=True) if rows else empty_metrics()
    return Sweep(folders[0], frame, table, problems, dict(zip(labels, folders, strict=True)))


def _sweep_names(folders: list[Path], names: Sequence[str] | None) -> list[str]:
    """The name of each sweep: ``names`` checked, or the shortest ends of the folders'
    paths that tell them apart (their names where those differ)."""
    if not folders:
        raise ConfigError("paths", "[]", "one sweep folder or more", "no sweep folder given")
    if names is not None:
        labels = [str(n) for n in names]
        if len(labels) != len(folders) or len(set(labels)) != len(labels):
            allowed = f"{len(folders)} distinct names, one per sweep folder"
            raise ConfigError("names", ",".join(labels), allowed)
        return labels
    parts = [folder.resolve().parts for folder in folders]
    for count in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-count:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    shown = ",".join(str(f) for f in folders)
    raise ConfigError("paths", shown, "distinct folders, or names given", "a folder twice")


def _selection(metrics: bool | str | Sequence[str]) -> list[str] | None:
    """The metric names to read: None for all, [] for none."""
    if metrics is True:
        return None
    if metrics is False:
        return []
    return [metrics] if isinstance(metrics, str) else list(metrics)


def read_run_rows(root: Path, folders: list[Path], problems: list[str]) -> list[dict[str, Any]]:
    """The validated run.parquet row of each folder as a dict with ``path`` (relative to
    ``root``) added; unreadable files are named in ``problems`` and their runs left out.
    Files are read in a thread pool of ``pyarrow.cpu_count()`` threads."""
    files = [folder / RUN_FILE for folder in folders]
    rows = []
    for file, result in zip(files, in_threads(_read_run_file, files), strict=True):
        if isinstance(result, OSError) and result.errno:  # not allowed, and the like
            problems.append(f"{file}: the file cannot be read: {os_reason(result)}")
        elif isinstance(result, Exception):  # a corrupt or truncated file is named, not fatal
            problems.append(f"{file}: {type(result).__name__}: {result}")
        else:
            rows.append({**result, "path": str(file.parent.relative_to(root))})
    return rows


def drop_copies(root: Path, runs: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """``runs`` less each run whose run_id an earlier row (the natural order of the folders)
    already has, e.g. a run folder copied within the sweep; each one left out is named in
    ``problems`` with the folder that is read instead."""
    if runs.empty:
        return runs
    copies = runs["run_id"].duplicated(keep="first").to_numpy()
    if not copies.any():
        return runs
    first = dict(zip(runs.loc[~copies, "run_id"], runs.loc[~copies, "path"], strict=True))
    problems += [
        f"{root / path}: run_id {run_id} also in folder {root / first[run_id]}: left out"
        for run_id, path in zip(runs.loc[copies, "run_id"], runs.loc[copies, "path"], strict=True)
    ]
    return runs[~copies].reset_index(drop=True)


def _read_run_file(file: Path) -> dict[str, Any] | Exception:
    """One run.parquet validated by ``records.validate_run``, as a dict (or the error)."""
    try:
        with pq.ParquetFile(file) as parquet:
            table = parquet.read(use_threads=False)
        core = set(RUN_SCHEMA.names) <= set(table.column_names)
        validate_run(table.select(RUN_SCHEMA.names) if core else table)  # same checks, faster
        return table.to_pylist()[0]
    except Exception as exc:
        return exc
