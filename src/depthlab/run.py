"""``python -m depthlab.run [-m] key=value ...``: the Hydra app that trains MLPs.

Compose, check, train: every job of the command line is checked before anything runs
(``depthlab.cli``), then each job trains one configuration (``depthlab.train``) into its
Hydra folder. A failed run is recorded and the sweep goes on; a summary table follows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from depthlab import group_jobs, locks
from depthlab.cli import EXIT_BUSY, EXIT_FAILED, EXIT_USAGE, check_command_line, run_folder
from depthlab.config import register_configs, to_config
from depthlab.console.key_help import register_key_help
from depthlab.data import DataError
from depthlab.errors import ConfigError
from depthlab.records import RecordsWriteError
from depthlab.resume import set_aside_other_config
from depthlab.train import Member, train, train_group

log = logging.getLogger(__name__)
register_configs()
register_key_help()  # the key table of --help (conf/config.yaml's hydra.help.template)


@hydra.main(config_path="pkg://depthlab.conf", config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float | None:
    """One job: train ``cfg`` into Hydra's output folder, or, in a batched sweep's group job
    (``DEPTHLAB_BATCH`` set), the group's members into theirs. Returns the mean final
    training loss of the runs (None when training failed)."""
    hydra_cfg = HydraConfig.get()
    if os.environ.get(group_jobs.BATCH_ENV) is not None:
        return train_batch(Path(hydra_cfg.runtime.output_dir), f"{hydra_cfg.job.name}.log")
    label = " ".join(hydra_cfg.overrides.task)
    try:
        with stopping_on_refusal():
            result = train(to_config(cfg), hydra_cfg.runtime.output_dir, label=label)
    except Exception:
        log.exception("run failed (%s)", label or "defaults")
        if hydra_cfg.mode.name == "RUN":
            sys.exit(EXIT_FAILED)
        return None  # a sweep goes on with its next run
    lines = result_lines(label, result.rows, result.run_dir)
    for line in lines:
        log.info(line)
    return float(sum(row["final_loss"] for row in result.rows) / len(result.rows))


def train_batch(folder: Path, log_name: str) -> float | None:
    """The group job of a batched sweep: write each member's Hydra files, train the members
    as batched models, and log each member's result in the group's log and its own."""
    specs = group_jobs.read_manifest(folder)
    with stopping_on_refusal():
        configs = [group_jobs.member_config(spec) for spec in specs]
    members = [
        Member(cfg, Path(spec["dir"]), " ".join(spec["overrides"]))
        for spec, cfg in zip(specs, configs, strict=True)
    ]
    label = f"{folder.name}: {sum(c.replicas for c in configs)} runs"
    failed = False
    try:
        with (
            stopping_on_refusal(),
            locks.locked([m.run_dir for m in members], configs[0].lock_timeout),
        ):
            for spec in specs:  # the members' Hydra files, once their folders are ours
                group_jobs.write_hydra_files(spec)
            train_group(members, label=label, locked=True)
    except Exception:
        log.exception("batch %s failed", folder.name)
        failed = True
    losses = []
    for spec, member in zip(specs, members, strict=True):
        rows = group_jobs.member_results(spec, member.cfg)
        lines = [f"trained in batch {folder.name} of {len(specs)} jobs (its log: {folder})"]
        lines += result_lines(member.label, rows, member.run_dir)
        group_jobs.log_member(spec, log_name, lines)
        for line in lines[1:]:
            log.info(line)
        losses += [row["final_loss"] for row in rows if row.get("final_loss") is not None]
    return None if failed or not losses else float(sum(losses) / len(losses))


@contextlib.contextmanager
def stopping_on_refusal() -> Iterator[None]:
    """Turn what stops a job, and the sweep it belongs to, into one line on stderr and an
    exit status: a refused config or a data set that fails its checks (2), a run folder
    another process writes (3), records that cannot be written (1: a full disk or a
    read-only folder stops every later run too). Other exceptions pass through: the run
    failed, a sweep goes on."""
    try:
        yield
    except (ConfigError, DataError) as exc:
        _stop(exc, EXIT_USAGE)
    except locks.FolderLockedError as exc:
        _stop(exc, EXIT_BUSY)
    except RecordsWriteError as exc:
        _stop(exc, EXIT_FAILED)


def _stop(exc: Exception, status: int) -> None:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(status)


def result_lines(label: str, rows: list[dict], run_dir: Path) -> list[str]:
    """One line per run: its label (and seed), status, final losses, time and folder."""
    return [
        "{}{}: {}, loss {:.4g}, test loss {:.4g}, {:.1f} s -> {}".format(
            label or "defaults",
            f" (seed {row['seed']})" if len(rows) > 1 else "",
            row["status"],
            _number(row.get("final_loss")),
            _number(row.get("final_test_loss")),
            _number(row.get("wall_time_s")),
            run_dir,
        )
        for row in rows
    ]


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def main() -> None:
    """Check the whole command line, then hand it to Hydra.

    Flushing denormals is a per-thread flag that torch's worker threads copy when they
    start, so when every job asks the same it is set here, before any parallel op.
    """
    configs = check_command_line(sys.argv[1:])
    folder = run_folder(sys.argv[1:]) if configs else None
    if folder is not None:  # before Hydra writes its files over another run's
        with stopping_on_refusal():
            set_aside_other_config(folder, configs[0])
    # A log file on a full disk: drop the lines it cannot take rather than print a
    # traceback for each (the error that stops the run is printed on its own line).
    logging.raiseExceptions = False
    if configs and all(cfg.flush_denormal for cfg in configs):
        torch.set_flush_denormal(True)
    app()


if __name__ == "__main__":
    main()
