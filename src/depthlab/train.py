"""Training runs: one configuration, or a group of them as one batched model.

The runs of a group (several seeds of one config with ``replicas``, and several configs
that differ only in per-run keys, see ``depthlab.grouping``) train as one model with a
leading replica dimension. Each run draws its own weights and batches, steps with its own
hyperparameters and logs only its own slice, on its own schedule, so its records are those
of the run trained alone (the loop and its step semantics: :mod:`depthlab.loop`). This
module decides what trains together, builds the model, and records how each run ended.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from depthlab import locks
from depthlab.config import DTYPES, Config, resolve_device, validate
from depthlab.data import DataSet, load_data
from depthlab.denormals import flush_denormal
from depthlab.grouping import check_batchable
from depthlab.live import open_view
from depthlab.loop import Run, TrainingLoop
from depthlab.model import MLP
from depthlab.predictions import theory_reason
from depthlab.provenance import now, record_row
from depthlab.records import RunRecorder, replica_folders, replica_seeds
from depthlab.resources import check_fits, device_bytes, run_bytes, split
from depthlab.resume import finished_rows, set_aside_stale
from depthlab.seeding import torch_generator
from depthlab.threads import resolve_threads, torch_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One configuration of a group to train: its config, its folder, its label in logs."""

    cfg: Config
    run_dir: Path
    label: str = ""


@dataclass(frozen=True)
class RunResult:
    """A finished configuration: its folder, its record rows (one per replica, in seed order)
    and the trained batched model (in memory only; the records are what is kept), in which
    its runs are the replicas ``indices``. ``model`` is None when the runs were skipped
    because the folder already held their finished records (``resume``)."""

    run_dir: Path
    rows: list[dict[str, Any]]
    model: MLP | None = None
    resumed: bool = False
    indices: tuple[int, ...] = ()

    @property
    def row(self) -> dict[str, Any]:
        """The record row of the first replica (the only one of an ordinary run)."""
        return self.rows[0]

    @property
    def status(self) -> str:
        """The first replica's status."""
        return self.row["status"]


def build_model(
    cfg: Config,
    data: DataSet,
    device: torch.device,
    dtype: torch.dtype,
    runs: Sequence[tuple[Config, int]] | None = None,
) -> MLP:
    """The configured MLP with one replica per run, replica r drawn on the CPU in float64
    with its own config's init from the ``init`` stream of its own seed, then moved to
    ``device`` and ``dtype`` (so float32 and float64 runs start from the same net).
    ``runs`` lists (config, seed) per replica; default: ``cfg``'s ``replicas`` seeds."""
    runs = list(runs) if runs is not None else [(cfg, s) for s in replica_seeds(cfg)]
    model = MLP(
        data.num_inputs,
        data.num_outputs,
        depth=cfg.depth,
        width=cfg.width,
        activation=cfg.activation,
        output_activation=cfg.output_activation,
        residual=cfg.residual,
        branch_scale=cfg.branch_scale,
        norm=cfg.norm,
        replicas=len(runs),
    )
    model.initialize_(
        [c.init for c, _ in runs],
        [torch_generator(seed, "init") for _, seed in runs],
        [c.branch_scale for c, _ in runs],
    )
    return model.to(device=device, dtype=dtype)


def train(cfg: Config, run_dir: Path | str, label: str = "") -> RunResult:
    """Train one configuration (``replicas`` seeds at once) and write its records into
    ``run_dir`` (one folder per replica when there are several, see ``records.replica_folders``).

    Validates first (ConfigError before anything is written). With ``resume`` a run whose
    folder already holds its finished records is not trained again; otherwise earlier
    records in the folder are set aside, never mixed in nor deleted. A diverging replica
    ends with status ``diverged`` and the others train on; any other exception (or an
    interrupt) is recorded as ``failed`` with its message and raised again.
    """
    return train_group([Member(cfg, Path(run_dir), label)])[0]


def train_group(
    members: Sequence[Member], label: str = "", locked: bool = False
) -> list[RunResult]:
    """Train several configurations as batched models, one result per member in order.

    The members must differ only in per-run keys (``depthlab.grouping``; ValueError
    otherwise). Each member keeps its own folder and records, equal to those of the member
    trained alone. Members whose finished records are already there are skipped
    (``resume``). The rest train as one batched model, or as several in turn when the
    memory estimate (``depthlab.resources``) of all of them exceeds ``batching.
    memory_fraction`` of the device's memory. A failed batched model's runs are recorded as
    ``failed``, the other batched models still train, and the first exception is raised.

    Nothing is written before every config is valid, fits its device
    (``resources.check_fits``) and every member's folder is locked for this process
    (``depthlab.locks``; FolderLockedError when another holds one past ``lock_timeout``), unless
    the caller holds the locks already (``locked``).
    """
    members = [Member(m.cfg, Path(m.run_dir), m.label) for m in members]
    for m in members:
        validate(m.cfg)
        check_fits(m.cfg)
    check_batchable([m.cfg for m in members])
    folders = [] if locked else [m.run_dir for m in members]
    with locks.locked(folders, members[0].cfg.lock_timeout):
        return _train_members(members, label)


def _train_members(members: list[Member], label: str) -> list[RunResult]:
    """train_group's work, once its folders are locked."""
    shared = members[0].cfg
    device, dtype = resolve_device(shared.device), DTYPES[shared.dtype]
    results: dict[int, RunResult] = {}
    todo = []
    for i, m in enumerate(members):
        seeds = replica_seeds(m.cfg)
        folders = replica_folders(m.run_dir, seeds)
        rows = finished_rows(m.cfg, folders, seeds) if m.cfg.resume else None
        if rows is not None:
            log.info("%s: finished before in %s, not run again", m.label or "run", m.run_dir)
            results[i] = RunResult(m.run_dir, rows, None, resumed=True)
        else:
            todo.append(i)
    if todo:
        data = load_data(shared.data, device, dtype)
        per_run = run_bytes(shared, data.num_inputs, data.num_outputs, data.num_train)
        total = device_bytes(device)
        capacity = None if total is None else int(total * shared.batching.memory())
        sizes = [members[i].cfg.replicas for i in todo]
        failure: BaseException | None = None
        for chunk in split(sizes, shared.batching.max_runs(), per_run, capacity):
            chosen = [todo[c] for c in chunk]
            try:
                trained = _train_batch([members[i] for i in chosen], data, device, dtype, label)
            except Exception as exc:  # recorded as failed; the other batches still train
                failure = failure or exc
                continue
            results.update(zip(chosen, trained, strict=True))
        if failure is not None:
            raise failure
    return [results[i] for i in range(len(members))]


def _train_batch(
    members: list[Member], data: DataSet, device: torch.device, dtype: torch.dtype, label: str
) -> list[RunResult]:
    """Train ``members`` as one batched model and finish every run's records."""
    shared = members[0].cfg
    for m in members:
        set_aside_stale(m.run_dir)
    total = sum(m.cfg.replicas for m in members)
    flops = 2 * total * min(shared.batch_size, data.num_train) * shared.width**2
    threads = resolve_threads(shared.threads, device, flops)  # idle cores unless set
    with flush_denormal(shared.flush_denormal and device.type == "cpu"), torch_threads(threads):
        start = time.perf_counter()
        runs: list[Run] = []
        if not label:
            label = members[0].label if len(members) == 1 else f"{total} runs batched"
        try:
            add_runs(runs, members, device)
            model = build_model(shared, data, device, dtype, [(r.cfg, r.seed) for r in runs])
            model, captured = TrainingLoop(shared, runs, model, data, label).run()
            rows = [
                run.recorder.finish(
                    "ok" if run.diverged_step is None else "diverged",
                    wall_time_s=run.final.pop("wall_time_s"),
                    finished_at=run.final.pop("finished_at"),
                    steps_done=run.steps_done,
                    diverged_step=run.diverged_step,
                    theory=theory_reason(shared) or "mean_field",
                    cuda_graph_resolved=captured,
                    **run.final,
                )
                for run in runs
            ]
        except BaseException as exc:
            record_failure(runs, exc, time.perf_counter() - start)
            raise
        finally:
            close_views(runs)
    return [
        RunResult(
            m.run_dir,
            [row for run, row in zip(runs, rows, strict=True) if run.member == k],
            model,
            indices=tuple(run.index for run in runs if run.member == k),
        )
        for k, m in enumerate(members)
    ]


def add_runs(runs: list[Run], members: list[Member], device: torch.device) -> None:
    """Append to ``runs`` one Run per replica of each member, in order: its record row and
    recorder in its own folder (``records.replica_folders``) and, with ``logger``, its live
    view there. Appended one by one, so a failure leaves the runs made so far to record."""
    total = sum(m.cfg.replicas for m in members)
    for k, m in enumerate(members):
        seeds = replica_seeds(m.cfg)
        for seed, folder in zip(seeds, replica_folders(m.run_dir, seeds), strict=True):
            row = record_row(m.cfg, device, uuid.uuid4().hex[:12], seed, total)
            run = Run(len(runs), k, m.cfg, seed, RunRecorder(folder, row, seed))
            runs.append(run)
            run.view = open_view(m.cfg.logger, folder)


def close_views(runs: list[Run]) -> None:
    """Close the live views of ``runs`` (their event files flushed), however they ended:
    every view is closed even when one cannot be (a full disk); then the first error."""
    with contextlib.ExitStack() as views:
        for run in runs:
            if run.view is not None:
                views.callback(run.view.close)


def record_failure(runs: list[Run], exc: BaseException, seconds: float) -> None:
    """Mark every run of a batched model that raised ``exc`` as ``failed`` with its message,
    and log one line per run saying what its records now say: ``failed``, or, where that
    could not be written (a full disk), that its run.parquet still says ``running``."""
    for run in runs:
        if run.recorder.written_status != "running":
            continue  # finished and written before the failure: its records stand
        try:
            run.recorder.finish(
                "failed",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                wall_time_s=seconds,
                finished_at=now(),
            )
        except Exception as failure:  # keep the original error the one raised
            log.error(
                "%s: could not record the failure (%s); its run.parquet still says running",
                run.recorder.run_dir,
                failure,
            )
        else:
            log.error("%s: its records say status=failed (%s)", run.recorder.run_dir, exc)
