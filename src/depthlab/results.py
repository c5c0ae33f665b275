"""Reading run records back: ``load_sweep`` and pure DataFrame transforms.

``load_sweep`` reads a sweep in three passes and never builds a frame per run: one walk of
the folder tree finds the run folders (links to folders are not followed, so no loop is
walked and no run read twice); each ``run.parquet`` (one row) is read and validated on its
own, and a run whose run_id an earlier folder already holds (a copied folder) is left out;
and the metrics part files of all runs are read by ONE ``pyarrow.dataset`` scan with the
explicit ``METRICS_SCHEMA``, the metric selection pushed into the scan and
``run_id``/``metric`` read dictionary-encoded. Only regular files reach the scan: what each
entry is (file, folder, link, loop) is taken from the folder listings, which cost no read
per file (a ``stat`` per link). The rules of ``records.validate_metrics`` are then checked
on the scanned table as a whole, the rows of any file that breaks them are dropped (the
file named in ``problems``), and the table becomes one pandas frame. Files are looked at
one by one only when the one scan fails (a damaged file). Nothing on disk stops a load:
every entry that cannot be read or is left out is named in ``problems``. Work is spread
over ``pyarrow.cpu_count()`` threads, which follows ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from depthlab.errors import ConfigError
from depthlab.records import (
    METRIC_NAME,
    METRICS_DIR,
    METRICS_SCHEMA,
    NETWORK_LAYER,
    RUN_FILE,
    RUN_SCHEMA,
    validate_run,
)

# run.parquet columns that describe the machine or what a key resolved to, not the config.
# how and where runs ran, not what they are (never a swept key)
ENVIRONMENT_COLUMNS = ("device_name", "denormals_flushed", "batched_runs", "path")
DERIVED_SUFFIXES = ("_version", "_resolved")

# METRICS_SCHEMA as scanned: the two string columns dictionary-encoded (a part file holds
# one run_id and a few metric names), plus the index of the part file each row came from.
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_ENCODED = ("run_id", "metric")
SCAN_SCHEMA = pa.schema(
    [pa.field(f.name, _DICTIONARY) if f.name in _ENCODED else f for f in METRICS_SCHEMA]
)
_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=_ENCODED))
_FILE = "file"
_PART_GLOB = re.compile(r"^part-.*\.parquet$")


@dataclass
class Sweep:
    """The records of a folder of runs.

    ``runs``: one row per run (run.parquet, plus ``path``, the run folder relative to the
    sweep), in the natural order of the folders. ``metrics``: the tidy rows of every run
    (or of the selected metrics) with the columns and types of ``METRICS_SCHEMA`` (plain
    strings, not categoricals), in run order, then part file, then row. ``problems``: what
    was skipped, never silently: every file or folder that could not be read or is left out
    (a copy of a run, a link to a folder), one line each: the path, then why.
    """

    root: Path
    runs: pd.DataFrame
    metrics: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    def config_columns(self) -> list[str]:
        """Columns of ``runs`` that hold configuration keys."""
        skip = set(RUN_SCHEMA.names) | set(ENVIRONMENT_COLUMNS)
        return [c for c in self.runs.columns if c not in skip and not c.endswith(DERIVED_SUFFIXES)]

    def swept_keys(self) -> list[str]:
        """Configuration keys whose value differs between runs."""
        return [
            c for c in self.config_columns() if self.runs[c].astype(str).nunique(dropna=False) > 1
        ]

    def frame(self, keys: list[str] | None = None) -> pd.DataFrame:
        """Metric rows joined with run columns (default: the swept keys and ``status``; any
        column of ``runs`` may be asked for), plus ``layers_from_output`` = L - l, the
        layer's distance from the output layer L = depth + 1 (0 at the output, L - 1 at the
        first hidden layer; NaN for network-level rows, layer 0), which aligns nets of
        different depths at their output. ConfigError for a key ``runs`` does not have."""
        keys = [*self.swept_keys(), "status"] if keys is None else keys
        # a key the metrics already carry (seed: per replica) is taken from the metrics
        keys = [k for k in dict.fromkeys(keys) if k not in self.metrics.columns]
        for key in keys:
            if key not in self.runs.columns:
                raise ConfigError("keys", key, list(self.runs.columns), "not a run column")
        frame = self.metrics.merge(self.runs[["run_id", *keys]], on="run_id", how="left")
        if "depth" in self.runs.columns:
            depth = frame["run_id"].map(self.runs.set_index("run_id")["depth"]).astype(float)
            distance = depth + 1 - frame["layer"].astype(float)
            frame["layers_from_output"] = distance.where(frame["layer"] > 0)
        return frame


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
    frame = _empty_metrics() if names == [] else read_metric_rows(folders, run_ids, names, problems)
    return Sweep(root, runs, frame, problems)


def _selection(metrics: bool | str | Sequence[str]) -> list[str] | None:
    """The metric names to read: None for all, [] for none."""
    if metrics is True:
        return None
    if metrics is False:
        return []
    return [metrics] if isinstance(metrics, str) else list(metrics)


def run_folders(root: Path, problems: list[str] | None = None) -> list[Path]:
    """The folders under ``root`` (``root`` included) that hold a run.parquet file (or a
    link to one), in natural order. Hidden folders and the contents of metrics folders are
    not searched, and links to folders are not followed. Named in ``problems`` (in natural
    order): each folder that cannot be listed, link to a folder, link that cannot be
    followed (a loop, a link to nothing), and run.parquet that is not a file. Only the
    listings are read: the kind of an entry that is no link comes with its folder's
    listing."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = [e for e in listing if not e.name.startswith(".")]
        except OSError as exc:  # unreadable, or gone since its parent was listed
            skipped.append((folder, f"the folder cannot be listed: {_why(exc)}"))
            continue
        for entry in entries:
            if entry.name == METRICS_DIR:
                continue
            path = Path(entry.path)
            try:
                kind = _kind(entry)
            except OSError as exc:
                skipped.append((path, f"a link that cannot be followed: {_why(exc)}"))
                continue
            if entry.name == RUN_FILE:
                if kind == _REGULAR:
                    found.append(folder)
                else:
                    skipped.append((path, f"{kind}, not a run file: the run is not read"))
            elif kind == _FOLDER:
                pending.append(path)
            elif kind == _LINKED_FOLDER:
                skipped.append((path, f"{kind}: not followed"))
    problems = [] if problems is None else problems
    skipped.sort(key=lambda item: _natural_key(item[0].relative_to(root)))
    problems += [f"{path}: {reason}" for path, reason in skipped]
    return sorted(found, key=lambda folder: _natural_key(folder.relative_to(root)))


_REGULAR, _FOLDER, _LINKED_FOLDER = "a file", "a folder", "a link to a folder"


def _kind(entry: os.DirEntry) -> str:
    """What a listed entry is: ``_REGULAR`` (a regular file or a link to one), ``_FOLDER``,
    ``_LINKED_FOLDER``, or another kind in words. Only a link costs a look (``stat``),
    which raises OSError for a loop, a link to nothing or an unreadable target."""
    if entry.is_file(follow_symlinks=False):
        return _REGULAR
    if entry.is_dir(follow_symlinks=False):
        return _FOLDER
    if entry.is_symlink():
        mode = entry.stat().st_mode
        if stat.S_ISREG(mode):
            return _REGULAR
        if stat.S_ISDIR(mode):
            return _LINKED_FOLDER
        return "a link to a special file (a pipe, socket or device)"
    return "a special file (a pipe, socket or device)"


def _why(exc: OSError) -> str:
    """An OS error in plain words, e.g. 'Permission denied' or 'Too many levels of symbolic
    links' (pyarrow's errors carry the errno, but a longer text)."""
    return os.strerror(exc.errno) if exc.errno else f"{type(exc).__name__}: {exc}"


def _natural_key(path: Path) -> tuple:
    """Sort folders 0, 1, 2, ..., 10 (not 0, 1, 10, 2), and seed=2 before seed=10: digit
    runs compare as numbers, and a folder named by a number comes before one named by text."""
    return tuple(
        tuple(
            (0, int(piece), piece) if piece.isdecimal() else (1, 0, piece)
            for piece in re.split(r"(\d+)", part)
            if piece
        )
        for part in path.parts
    )


def read_run_rows(root: Path, folders: list[Path], problems: list[str]) -> list[dict[str, Any]]:
    """The validated run.parquet row of each folder as a dict with ``path`` (relative to
    ``root``) added; unreadable files are named in ``problems`` and their runs left out.
    Files are read in a thread pool of ``pyarrow.cpu_count()`` threads."""
    files = [folder / RUN_FILE for folder in folders]
    rows = []
    for file, result in zip(files, _map(_read_run_file, files), strict=True):
        if isinstance(result, OSError) and result.errno:  # not allowed, and the like
            problems.append(f"{file}: the file cannot be read: {_why(result)}")
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


def read_metric_rows(
    folders: list[Path], run_ids: list[str], names: list[str] | None, problems: list[str]
) -> pd.DataFrame:
    """The metric rows of the runs in ``folders`` (whose run.parquet says ``run_ids``),
    only of metrics ``names`` unless None, as one frame. A part file that is unreadable,
    has another schema, or breaks a rule of ``records.validate_metrics`` (including rows of
    another run) is named in ``problems`` and contributes no rows."""
    files, owners = part_files(folders, problems)
    table, bad = scan_metrics(files, names)
    table = table.unify_dictionaries()
    bad = {**check_metrics(table, run_ids, owners), **bad}
    problems += [f"{files[i]}: {reason}" for i, reason in sorted(bad.items())]
    if bad:
        table = table.filter(pc.invert(pc.is_in(table[_FILE], pa.array(list(bad), pa.int32()))))
    columns = {name: table[name] for name in METRICS_SCHEMA.names}
    del table  # the columns are now held by ``columns`` only, which _to_frame empties
    return _to_frame(columns)


def part_files(
    folders: list[Path], problems: list[str] | None = None
) -> tuple[list[Path], np.ndarray]:
    """Every ``metrics.parquet/part-*.parquet`` of the run ``folders`` that is a regular
    file (or a link to one), in run order then by name, and for each the index of its run
    in ``folders``. Named in ``problems``: a metrics.parquet that is not a folder or cannot
    be listed (a missing one is a run that has not flushed yet), and each part that is not
    a file (a folder, a loop of links). Only the listings are read, and a ``stat`` of each
    link, so that nothing but files reaches the scan."""
    problems = [] if problems is None else problems
    files, owners = [], []
    for index, folder in enumerate(folders):
        parts = _listed_parts(folder / METRICS_DIR, problems)
        files += parts
        owners += [index] * len(parts)
    return files, np.array(owners, dtype=np.int32)


def _listed_parts(metrics: Path, problems: list[str]) -> list[Path]:
    """The part files of one metrics folder, by name; what is wrong is named in
    ``problems``."""
    try:
        with os.scandir(metrics) as listing:
            entries = sorted((e for e in listing if _PART_GLOB.match(e.name)), key=_name)
    except FileNotFoundError:
        if os.path.islink(metrics):
            problems.append(f"{metrics}: a link to nothing: no metrics read")
        return []  # otherwise a run that has not flushed yet
    except NotADirectoryError:
        problems.append(f"{metrics}: not a folder of part files: no metrics read")
        return []
    except OSError as exc:
        problems.append(f"{metrics}: the folder cannot be listed: {_why(exc)}")
        return []
    parts = []
    for entry in entries:
        try:
            kind = _kind(entry)
        except OSError as exc:
            problems.append(f"{entry.path}: a link that cannot be followed: {_why(exc)}")
            continue
        if kind == _REGULAR:
            parts.append(Path(entry.path))
        else:
            problems.append(f"{entry.path}: {kind}, not a part file: not read")
    return parts


def _name(entry: os.DirEntry) -> str:
    return entry.name


def scan_metrics(files: list[Path], names: list[str] | None) -> tuple[pa.Table, dict[int, str]]:
    """All rows of ``files`` (of metrics ``names`` unless None) in one scan, as SCAN_SCHEMA
    plus ``file`` (the index in ``files``); and the files to drop, with the reason: those
    whose own schema is not METRICS_SCHEMA (the scan would cast or null-fill them), and
    those that cannot be read. Only when the one scan fails is any file looked at alone:
    first every footer, and the files whose footer reads are scanned again at once; should
    that fail too (a file damaged inside), each file is scanned on its own."""
    try:
        return _scan_all(files, names)
    except (pa.ArrowException, OSError):
        pass
    readable, bad = _footers(files)
    try:
        table, more = _scan_all([files[i] for i in readable], names)
    except (pa.ArrowException, OSError):
        return _scan_each(files, names)
    index = pa.array(readable, pa.int32())  # positions among the readable files -> in files
    table = table.set_column(len(SCAN_SCHEMA), _FILE, pc.take(index, table[_FILE]))
    return table, {**bad, **{readable[i]: reason for i, reason in more.items()}}


def _scan_all(files: list[Path], names: list[str] | None) -> tuple[pa.Table, dict[int, str]]:
    dataset = _dataset(files)
    return _scan(dataset, names), _schema_problems(dataset)


def _footers(files: list[Path]) -> tuple[list[int], dict[int, str]]:
    """The indices of the files whose footer (and so schema) reads, and the error of each
    of the others."""
    readable, bad = [], {}
    for index, fragment in enumerate(_dataset(files).get_fragments()):
        try:
            _ = fragment.physical_schema
        except Exception as exc:  # whatever the file holds, it is named, not fatal
            bad[index] = f"{type(exc).__name__}: {exc}"
        else:
            readable.append(index)
    return readable, bad


def _dataset(files: list[Path]) -> ds.FileSystemDataset:
    return ds.dataset([str(f) for f in files], schema=SCAN_SCHEMA, format=_FORMAT)


def _scan(dataset: ds.FileSystemDataset, names: list[str] | None) -> pa.Table:
    """The rows of ``dataset`` (in file order) with the file index column ``file``."""
    where = None if names is None else pc.field("metric").isin(names)
    table = dataset.to_table(columns=[*SCAN_SCHEMA.names, "__fragment_index"], filter=where)
    return table.rename_columns([*SCAN_SCHEMA.names, _FILE])


def _schema_problems(dataset: ds.FileSystemDataset) -> dict[int, str]:
    """Files of ``dataset`` whose schema differs from METRICS_SCHEMA (the footers are
    already cached by the scan, so this reads nothing more)."""
    bad = {}
    for index, fragment in enumerate(dataset.get_fragments()):
        schema = fragment.physical_schema
        if not schema.equals(SCAN_SCHEMA):
            bad[index] = f"SchemaError: metrics schema differs: {_schema_difference(schema)}"
    return bad


def _schema_difference(schema: pa.Schema) -> str:
    """How ``schema`` (as scanned) differs from METRICS_SCHEMA, in words."""
    have = {f.name: f for f in schema}
    want = {f.name: f for f in SCAN_SCHEMA}
    words = [f"lacks {name!r}" for name in want if name not in have]
    words += [f"extra column {name!r}" for name in have if name not in want]
    words += [
        f"{_field_text(have[name])} instead of {_field_text(want[name])}"
        for name in want
        if name in have and not have[name].equals(want[name])
    ]
    return "; ".join(words) or f"columns in the order {schema.names}"


def _field_text(f: pa.Field) -> str:
    kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
    return f"{f.name}: {kind}{'' if f.nullable else ' not null'}"


def _scan_each(files: list[Path], names: list[str] | None) -> tuple[pa.Table, dict[int, str]]:
    """The slow path of :func:`scan_metrics`: each file checked and scanned on its own."""
    tables, bad = [SCAN_SCHEMA.append(pa.field(_FILE, pa.int32())).empty_table()], {}
    for index, file in enumerate(files):
        dataset = _dataset([file])
        try:
            problem = _schema_problems(dataset)
            table = None if problem else _scan(dataset, names)
        except Exception as exc:  # whatever the file holds, it is named, not fatal
            bad[index] = f"{type(exc).__name__}: {exc}"
            continue
        if problem:
            bad[index] = problem[0]
            continue
        column = pa.array(np.full(table.num_rows, index, dtype=np.int32))
        tables.append(table.set_column(len(SCAN_SCHEMA), _FILE, column))
    return pa.concat_tables(tables), bad


def check_metrics(table: pa.Table, run_ids: list[str], owners: np.ndarray) -> dict[int, str]:
    """The files (``file`` index) with rows that break the rules of
    ``records.validate_metrics``, each with the first rule broken: no nulls, step >= 0,
    layer >= NETWORK_LAYER, snake_case metric names, and the run_id of the run folder the
    file lies in (``run_ids[owners[file]]``). Vectorised over the whole table, whose
    dictionary columns must share one dictionary (``Table.unify_dictionaries``)."""
    checks = [(pc.is_null(table[c]), f"null values in {c!r}") for c in _with_nulls(table)]
    if _below(table["step"], 0):
        checks.append((pc.less(table["step"], 0), "negative step"))
    if _below(table["layer"], NETWORK_LAYER):
        checks.append((pc.less(table["layer"], NETWORK_LAYER), f"layer below {NETWORK_LAYER}"))
    metric, names = _codes(table["metric"])
    wrong = [i for i, name in enumerate(names) if not METRIC_NAME.match(name)]
    if wrong:
        reason = f"metric names not snake_case: {[names[i] for i in wrong]}"
        checks.append((pc.is_in(metric, pa.array(wrong, pa.int32())), reason))
    bad: dict[int, str] = {}
    for rows, reason in checks:
        for index in _files_of(table, rows):
            bad.setdefault(index, f"SchemaError: {reason}")
    for index in _files_of(table, _foreign_rows(table, run_ids, owners)):
        bad.setdefault(index, f"SchemaError: rows of another run than {run_ids[owners[index]]}")
    return bad


def _files_of(table: pa.Table, rows: pa.ChunkedArray) -> list[int]:
    """The ``file`` indices of the rows flagged in ``rows`` (a null flag counts)."""
    return pc.unique(pc.filter(table[_FILE], pc.fill_null(rows, True))).to_pylist()


def _below(column: pa.ChunkedArray, floor: int) -> bool:
    lowest = pc.min(column).as_py()
    return lowest is not None and lowest < floor


def _foreign_rows(table: pa.Table, run_ids: list[str], owners: np.ndarray) -> pa.ChunkedArray:
    """Per row: whether its run_id differs from the run_id of the run its file lies in
    (compared as numbers: each distinct run_id is numbered once)."""
    number = {run_id: i for i, run_id in enumerate(dict.fromkeys(run_ids))}
    codes, ids = _codes(table["run_id"])
    of_code = pa.array([number.get(run_id) for run_id in ids], pa.int32())
    of_file = np.array([number[run_id] for run_id in run_ids], dtype=np.int32)[owners]
    actual = pc.take(of_code, codes)
    expected = pc.take(pa.array(of_file, pa.int32()), table[_FILE])
    return pc.fill_null(pc.not_equal(actual, expected), True)


def _codes(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list[str]]:
    """The indices and the dictionary of a dictionary column whose chunks share one."""
    if column.num_chunks == 0:
        return pa.chunked_array([pa.array([], pa.int32())]), []
    indices = pa.chunked_array([chunk.indices for chunk in column.chunks], pa.int32())
    return indices, column.chunk(0).dictionary.to_pylist()


def _with_nulls(table: pa.Table) -> list[str]:
    return [name for name in SCAN_SCHEMA.names if table[name].null_count]


def _to_frame(columns: dict[str, pa.ChunkedArray]) -> pd.DataFrame:
    """The scanned columns as one METRICS_SCHEMA frame: first the numbers (each chunked
    column concatenated into one numpy array), then ``run_id`` and ``metric``, each decoded
    into one contiguous ``large_string`` array (what pandas' string dtype stores, so pandas
    takes it as it is). Empties ``columns``, and hands the memory of converted columns back
    before decoding, so that the Arrow copy and the frame overlap little. Columns are
    converted in ``pyarrow.cpu_count()`` threads."""
    numbers = [n for n in METRICS_SCHEMA.names if n not in _ENCODED]
    frame = pd.DataFrame(index=pd.RangeIndex(len(columns["value"])))
    converted = _map(_to_pandas, [columns.pop(n) for n in numbers])
    for name, series in zip(numbers, converted, strict=True):
        frame[name] = series
    pa.default_memory_pool().release_unused()
    decoded = _map(_strings, [columns.pop(n) for n in _ENCODED])
    for name, strings in zip(_ENCODED, decoded, strict=True):
        frame.insert(METRICS_SCHEMA.names.index(name), name, strings.to_pandas())
    return frame


def _map(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``function`` of each item, in a pool of ``pyarrow.cpu_count()`` threads when that is
    more than one (pyarrow releases the GIL)."""
    threads = min(pa.cpu_count(), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))


def _to_pandas(column: pa.ChunkedArray) -> pd.Series:
    return column.to_pandas()


def _strings(column: pa.ChunkedArray) -> pa.Array:
    """A dictionary column (one dictionary, see :func:`_codes`) as plain strings."""
    indices, names = _codes(column)
    dictionary = pa.array(names, pa.large_string())
    encoded = pa.DictionaryArray.from_arrays(pa.concat_arrays(indices.chunks), dictionary)
    return encoded.cast(pa.large_string())  # sized exactly at once: faster than pc.take


def _empty_metrics() -> pd.DataFrame:
    return METRICS_SCHEMA.empty_table().to_pandas()
