"""Whether a folder already holds a run's finished records (``resume``), and setting aside
the records of other runs so that nothing a user ran is overwritten or mixed.

A run whose folder holds finished records (``ok`` or ``diverged``) for the same config is
not trained again; keys that change only how a run is carried out (:data:`HOW_KEYS`) do not
make it another run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depthlab.config import Config, config_from_file
from depthlab.records import (
    METRICS_DIR,
    REPLICA_GLOB,
    RUN_PARTS,
    SUPERSEDED_DIR,
    RecordsWriteError,
    config_columns,
    read_run,
    set_aside,
    set_aside_previous,
)

HYDRA_DIR = ".hydra"  # Hydra's files of a job: its config, overrides and Hydra's own config
# Keys (and groups) that change how a run is carried out, not what it computes: a finished
# run counts as the same run whatever they were. Batched and captured steps compute what
# eager single runs compute (float64: to 1e-9; float32: docs/running.md, Batched sweeps);
# ``logger`` only adds a view beside the records (depthlab.live).
HOW_KEYS = (
    "resume",
    "threads",
    "flush_seconds",
    "cuda_graph",
    "batching",
    "lock_timeout",
    "logger",
)


def finished_rows(cfg: Config, folders: list[Path], seeds: list[int]) -> list[dict] | None:
    """The records of ``cfg`` already finished in its run ``folders`` (one per seed), when
    every one's run.parquet says ``ok`` or ``diverged`` (a result: training again would
    repeat it) for exactly this configuration; None when anything must run (again).
    A ``running`` record is a run that was killed; ``failed`` ones are retried, and so
    are finished rows whose metrics folder holds no part file."""
    rows = []
    for folder, seed in zip(folders, seeds, strict=True):
        try:
            row = read_run(folder)
        except Exception:  # missing, or not readable: it must run
            return None
        wanted = config_columns(cfg, seed)
        same = all(
            _plain(row.get(key)) == _plain(value)
            for key, value in wanted.items()
            if key.partition(".")[0] not in HOW_KEYS
        )
        if row["status"] not in ("ok", "diverged") or not same or not _has_parts(folder):
            return None
        rows.append(row)
    return rows


def _has_parts(folder: Path) -> bool:
    """Whether the run's metrics are there (at least its step-0 part file): a finished row
    whose metrics were deleted is no finished run."""
    return any((folder / METRICS_DIR).glob("part-*.parquet"))


def _plain(value: Any) -> Any:
    """Tuples as lists, as parquet gives them back."""
    return list(value) if isinstance(value, tuple) else value


def set_aside_stale(run_dir: Path) -> None:
    """Move the records of an earlier run in ``run_dir`` (and in its ``seed=S`` replica
    folders), with its live view's event files, into hidden ``.superseded`` folders, so a
    new run's folder holds only its own runs: never mixed, never deleted (see
    records.set_aside_previous)."""
    for folder in [run_dir, *sorted(run_dir.glob(REPLICA_GLOB))]:
        try:
            set_aside_previous(folder)
        except OSError as exc:
            raise RecordsWriteError(folder / SUPERSEDED_DIR, exc) from exc


def set_aside_other_config(run_dir: Path, cfg: Config) -> Path | None:
    """Before Hydra writes a job's files into ``run_dir``: when the folder holds a run of
    another configuration (its ``.hydra/config.yaml`` differs from ``cfg`` in a key other
    than :data:`HOW_KEYS`, or cannot be read), move everything of that run (Hydra's files,
    its log, its records and replica folders) into ``run_dir/.superseded/TIME/``, so that
    nothing of it is overwritten. A run of the same configuration stays for ``resume``.
    Returns where the files went (None when nothing moved)."""
    saved = run_dir / HYDRA_DIR / "config.yaml"
    if not saved.is_file():
        return None
    try:
        same = _key_columns(config_from_file(saved)) == _key_columns(cfg)
    except Exception:  # an unreadable or now invalid config: another run
        same = False
    if same:
        return None
    names = [HYDRA_DIR, *RUN_PARTS]
    names += sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".log"))
    names += sorted(p.name for p in run_dir.glob(REPLICA_GLOB))
    try:
        return set_aside(run_dir, names)
    except OSError as exc:
        raise RecordsWriteError(run_dir / SUPERSEDED_DIR, exc) from exc


def _key_columns(cfg: Config) -> dict[str, Any]:
    """The config columns that make a run what it is (all but :data:`HOW_KEYS`)."""
    return {
        key: _plain(value)
        for key, value in config_columns(cfg).items()
        if key.partition(".")[0] not in HOW_KEYS
    }
