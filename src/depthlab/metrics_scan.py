"""Reading the metrics part files of many runs in ONE ``pyarrow.dataset`` scan, with the
explicit ``METRICS_SCHEMA``, the metric selection pushed into the scan and ``run_id`` /
``metric`` read dictionary-encoded; then the rules of ``records.validate_metrics`` checked
on the scanned table as a whole, the rows of any file that breaks them dropped (the file
named in ``problems``), and the table turned into one pandas frame. Files are looked at one
by one only when the one scan fails (a damaged file). Work is spread over
``pyarrow.cpu_count()`` threads, which follows ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from depthlab.records import METRIC_NAME, METRICS_SCHEMA, NETWORK_LAYER
from depthlab.sweep_files import in_threads, part_files

# METRICS_SCHEMA as scanned: the two string columns dictionary-encoded (a part file holds
# one run_id and a few metric names), plus the index of the part file each row came from.
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_ENCODED = ("run_id", "metric")
SCAN_SCHEMA = pa.schema(
    [pa.field(f.name, _DICTIONARY) if f.name in _ENCODED else f for f in METRICS_SCHEMA]
)
_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=_ENCODED))
_FILE = "file"


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
    converted = in_threads(_to_pandas, [columns.pop(n) for n in numbers])
    for name, series in zip(numbers, converted, strict=True):
        frame[name] = series
    pa.default_memory_pool().release_unused()
    decoded = in_threads(_strings, [columns.pop(n) for n in _ENCODED])
    for name, strings in zip(_ENCODED, decoded, strict=True):
        frame.insert(METRICS_SCHEMA.names.index(name), name, strings.to_pandas())
    return frame


def _to_pandas(column: pa.ChunkedArray) -> pd.Series:
    return column.to_pandas()


def _strings(column: pa.ChunkedArray) -> pa.Array:
    """A dictionary column (one dictionary, see :func:`_codes`) as plain strings."""
    indices, names = _codes(column)
    dictionary = pa.array(names, pa.large_string())
    encoded = pa.DictionaryArray.from_arrays(pa.concat_arrays(indices.chunks), dictionary)
    return encoded.cast(pa.large_string())  # sized exactly at once: faster than pc.take


def empty_metrics() -> pd.DataFrame:
    return METRICS_SCHEMA.empty_table().to_pandas()
