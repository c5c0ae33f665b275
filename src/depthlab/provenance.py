"""What a run record says about how and where a run ran.

The run row starts with the config columns (as on the command line), what keys resolved
to (``*_resolved``), the denormal mode in effect, the machine and library versions.
Whether a folder holds a run's finished records is :mod:`depthlab.resume`.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import platform
from typing import Any

import torch

from depthlab.config import Config, resolve_loss
from depthlab.denormals import denormals_flushed
from depthlab.records import config_columns

VERSIONED = ("depthlab", "torch", "numpy", "hydra-core", "omegaconf", "pandas", "pyarrow")


def record_row(
    cfg: Config, device: torch.device, run_id: str, seed: int, batched_runs: int = 1
) -> dict[str, Any]:
    """The run.parquet row at the start: config columns (as on the command line, so
    ``device`` may say auto; ``seed`` the run's), what they resolved to (``device_resolved``,
    ``loss_resolved``, ``threads_resolved``), how many runs trained in its batched model
    (``batched_runs``), the denormal mode in effect, and the environment."""
    row: dict[str, Any] = {"run_id": run_id, **config_columns(cfg, seed)}
    row.update(
        loss_resolved=resolve_loss(cfg),
        device_resolved=str(device),
        device_name=(
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        denormals_flushed=denormals_flushed() if device.type == "cpu" else None,
        threads_resolved=torch.get_num_threads(),
        batched_runs=batched_runs,
        started_at=now(),
    )
    row.update(versions())
    return row


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str | None], ...]:
    found: dict[str, str | None] = {"python_version": platform.python_version()}
    found.update({f"{name.split('-')[0]}_version": _version(name) for name in VERSIONED})
    return tuple(found.items())


def versions() -> dict[str, str | None]:
    """``python_version`` and ``NAME_version`` of each VERSIONED library (None: missing),
    read once per process (package metadata takes milliseconds to read)."""
    return dict(_versions())


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
