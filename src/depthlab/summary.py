"""The table printed after a sweep (and after a single run): for people, so only
the keys that vary and apply (see :mod:`depthlab.tables`), the others in one line above,
numbers in three significant figures, at most 100 characters wide."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from depthlab.records import RUN_FILE, SWEEP_COLUMN, read_run
from depthlab.results import Sweep, load_sweep
from depthlab.tables import constant_line, is_missing, key_split, text_table

FIGURE_COLUMNS = {
    "final_loss": "loss",
    "final_accuracy": "acc",
    "final_test_loss": "test_loss",
    "final_test_accuracy": "test_acc",
    "delta_ratio_initial": "d1/dL@0",
    "delta_ratio_final": "d1/dL@end",
    "wall_time_s": "time_s",
}


# how a run is carried out, not what it measures: left out of the terminal's "same for
# every run" line (the report's configuration lists them)
OPERATIONAL = (
    "threads",
    "logger",
    "resume",
    "lock_timeout",
    "flush_seconds",
    "flush_denormal",
    "compile",
    "cuda_graph",
    "batching",
    "replicas",
    "device",
    "probes",
    "study",
    "eval_every",
)


def config_keys(sweep: Sweep) -> list[str]:
    """The keys a run table may show: ``sweep`` (when several sweeps are loaded as one),
    then the configuration columns."""
    keys = [k for k in sweep.config_columns() if k != SWEEP_COLUMN]
    return ([SWEEP_COLUMN] if SWEEP_COLUMN in sweep.runs else []) + keys


def summary_keys(sweep: Sweep) -> tuple[list[str], dict[str, str]]:
    """(the keys that vary where they apply, the others with their one value): see
    :func:`depthlab.tables.key_split`. A single run shows its depth."""
    varying, constant = key_split(sweep.runs, config_keys(sweep))
    if not varying and "depth" in sweep.runs:
        varying = ["depth"]
        constant.pop("depth", None)
    return varying, constant


def summary_table(sweep: Sweep) -> pd.DataFrame:
    """One line per run: the keys that vary and apply (blank where a key does not apply to
    the run), status, final train/test loss and accuracy, delta ratios, wall time."""
    runs = sweep.runs
    if runs.empty:
        return pd.DataFrame()
    keys, _ = summary_keys(sweep)
    table = runs[keys].astype(object).where(runs[keys].notna(), "")
    table["status"] = [
        f"diverged@{int(s)}" if st == "diverged" and pd.notna(s) else st
        for st, s in zip(runs["status"], runs["diverged_step"], strict=False)
    ]
    for column, title in FIGURE_COLUMNS.items():
        if column in runs and runs[column].notna().any():
            # a swept key may share a title (loss=squared,...): the figure takes the full name
            table[column if title in table else title] = runs[column]
    return table


def why_missing(run: pd.Series, column: str) -> str:
    """In words, why the run's figure ``column`` (a FIGURE_COLUMNS key) was not measured."""
    status = run.get("status")
    if status == "failed":
        return "the run failed (its error is in its run.parquet)"
    if status == "running":
        return "the run did not finish (killed, or still running)"
    if column.endswith("accuracy"):
        return "a regression task has no accuracy"
    if column.startswith("delta_ratio"):
        if str(run.get("probes")) == "none":
            return "no probes ran (probes=none)"
        if not is_missing(run.get("nonfinite_step")):
            step, layer = int(run["nonfinite_step"]), int(run["nonfinite_layer"])
            return f"a probed pass was not finite (step {step}, layer {layer})"
        return "a delta is below even float64's range (delta_underflow = 1), or no delta probe"
    if status == "diverged":
        return "the run diverged"
    return "not recorded"


def footnoted(sweep: Sweep, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``table`` (from :func:`summary_table`) with every missing figure marked 'nan [n]',
    and the notes [n] saying why (:func:`why_missing`), one per distinct reason."""
    table, notes = table.copy(), []
    titles = {t: c for c, t in FIGURE_COLUMNS.items()} | {c: c for c in FIGURE_COLUMNS}
    keys = summary_keys(sweep)[0]
    for name in table.columns:
        column = titles.get(name)
        if column is None or name in keys:
            continue
        for index in table.index[table[name].isna()]:
            reason = why_missing(sweep.runs.loc[index], column)
            if reason not in notes:
                notes.append(reason)
            table[name] = table[name].astype(object)
            table.loc[index, name] = f"nan [{notes.index(reason) + 1}]"
    return table, [f"[{n}] {reason}" for n, reason in enumerate(notes, start=1)]


def report_command(sweep_dir: Path | str) -> str:
    """The line that tells how to make the HTML report of a sweep (depthlab.report)."""
    return f"report: python -m depthlab.report {shlex.quote(str(Path(sweep_dir).resolve()))}"


def format_summary(sweep: Sweep, report: bool = False) -> str:
    """The keys the same for every run (one wrapped line, less the :data:`OPERATIONAL`
    ones), the summary table as text (at most 100 characters wide) with a note for each
    missing figure saying why, any files not read, the command that makes the sweep's
    report (``report``) and, last, the folder."""
    table, notes = footnoted(sweep, summary_table(sweep))
    keys, constant = summary_keys(sweep)
    shown = {k: v for k, v in constant.items() if k.split(".")[0] not in OPERATIONAL}
    lines = [constant_line(shown)] if len(sweep.runs) > 1 and shown else []
    lines.append(text_table(table, keys))
    lines += notes
    lines += [f"not read: {p}" for p in sweep.problems]
    if report:
        lines.append(report_command(sweep.root))
    lines.append(f"records: {sweep.root.resolve()}")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Hydra callback: prints the summary table and the report command after a multirun
    (exit status 1 if any run failed), and a single run's table (a line per replica) after it."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = load_sweep(Path(config.hydra.sweep.dir), metrics=False)
        print(format_summary(sweep, report=True), flush=True)
        if not sweep.runs.empty and (sweep.runs["status"] == "failed").any():
            sys.exit(1)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir)
        if (run_dir / RUN_FILE).exists():
            sweep = Sweep(run_dir, pd.DataFrame([read_run(run_dir)]), pd.DataFrame())
        else:  # replicas: one run folder per seed inside the job's
            sweep = load_sweep(run_dir, metrics=False)
        if not sweep.runs.empty:
            print(format_summary(sweep), flush=True)
