"""Reading run records back: ``load_sweep`` and pure DataFrame transforms."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from depthlab.records import METRICS_DIR, RUN_FILE, RUN_SCHEMA, read_metrics, read_run

# run.parquet columns that describe the machine or what a key resolved to, not the config.
ENVIRONMENT_COLUMNS = ("device_name", "threads", "denormals_flushed", "path")
DERIVED_SUFFIXES = ("_version", "_resolved")


@dataclass
class Sweep:
    """The records of a folder of runs.

    ``runs``: one row per run (run.parquet, plus ``path``, the run folder relative to the
    sweep). ``metrics``: the tidy rows of every run. ``problems``: files that could not be
    read, each with the reason; they are skipped, never silently.
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
        """Metric rows joined with run columns (default: the swept keys and ``status``)."""
        keys = [*self.swept_keys(), "status"] if keys is None else keys
        # a key the metrics already carry (seed: per replica) is taken from the metrics
        keys = [k for k in dict.fromkeys(keys) if k not in self.metrics.columns]
        return self.metrics.merge(self.runs[["run_id", *keys]], on="run_id", how="left")


def load_sweep(path: Path | str, metrics: bool = True) -> Sweep:
    """Read every run under ``path`` (any depth), skipping and naming unreadable files."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no sweep folder at {root}")
    runs, frames, problems = [], [], []
    for run_file in sorted(root.rglob(RUN_FILE), key=_natural_key):
        run_dir = run_file.parent
        if any(part.startswith(".") for part in run_dir.relative_to(root).parts):
            continue  # records set aside by a later run in the same folder
        try:
            row = read_run(run_dir)
        except Exception as exc:  # a corrupt or truncated file is named, not fatal
            problems.append(f"{run_file}: {type(exc).__name__}: {exc}")
            continue
        row["path"] = str(run_dir.relative_to(root))
        runs.append(row)
        if metrics and (run_dir / METRICS_DIR).exists():
            try:
                frames.append(read_metrics(run_dir))
            except Exception as exc:
                problems.append(f"{run_dir / METRICS_DIR}: {type(exc).__name__}: {exc}")
    runs_df = pd.DataFrame(runs)
    metrics_df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Sweep(root, runs_df, metrics_df, problems)


def _natural_key(path: Path) -> tuple:
    """Sort job folders 0, 1, 2, ..., 10 rather than 0, 1, 10, 2."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts)
