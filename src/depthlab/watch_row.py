"""The run row of a model recorded by ``depthlab.watch``, and the checks on its arguments.

The row holds the storage contract's core columns (:data:`depthlab.records.RUN_SCHEMA`),
what watch found (``model``, ``num_layers``, ``layer_names`` as a JSON list, layer l being
entry l-1, ``skipped_layers``), its schedule (``probes``, ``every``, ``log_points``,
``steps``), the user's ``config`` as columns, and where it ran (device, library versions).
"""

from __future__ import annotations

import json
import platform
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from depthlab.errors import ConfigError
from depthlab.provenance import versions
from depthlab.records import config_column_names

# Columns watch writes itself: a user's config may not set them.
WATCH_COLUMNS = (
    "model",
    "num_layers",
    "layer_names",
    "skipped_layers",
    "probes",
    "every",
    "log_points",
    "steps",
    "seed",
    "device_resolved",
    "final_batch_loss",
)
SCALARS = (str, int, float, bool, type(None))


def check_counts(**counts: int | None) -> None:
    """ConfigError unless each count is an int >= 0 (``steps``: None or >= 1)."""
    for key, value in counts.items():
        if value is None and key == "steps":
            continue
        low = 1 if key == "steps" else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(key, value, f"an integer >= {low}")


def check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's run-row columns, checked: names watch writes itself, names the run row's
    contract keeps for itself or a reader adds (``records.config_column_names``: status,
    path, sweep, ``*_version``, ...) and values that are not one number, string, bool or
    None (a NumPy scalar is taken as its value) are a ConfigError, before anything is
    written."""
    checked: dict[str, Any] = {}
    for key, value in dict(config or {}).items():
        mine = isinstance(key, str) and key not in WATCH_COLUMNS
        if not mine or config_column_names([key]) != [key]:  # the row's or a reader's
            raise ConfigError("config", key, "names other than the run row's own", "taken")
        value = value.item() if isinstance(value, np.generic) else value
        if not isinstance(value, SCALARS):
            allowed = "one number, string, bool or None per key"
            raise ConfigError(f"config.{key}", value, allowed, "not a scalar")
        checked[key] = value
    return checked


def probes_text(probes: str | Sequence[str]) -> str:
    """The ``probes`` column: a preset name, or the names joined by commas."""
    return probes if isinstance(probes, str) else ",".join(probes)


def layer_columns(layers: Sequence[Any], skipped: list[str]) -> dict[str, Any]:
    """``num_layers``, ``layer_names`` (JSON) and ``skipped_layers`` of the watched layers
    (objects with a ``name``) and the left-out entries."""
    return {
        "num_layers": len(layers),
        "layer_names": json.dumps([layer.name for layer in layers]),
        "skipped_layers": "; ".join(skipped),
    }


def run_row(
    model: nn.Module,
    layers: Sequence[Any],
    skipped: list[str],
    columns: Mapping[str, Any],
    started_at: str,
) -> dict[str, Any]:
    """The row written at the first step (``status`` is added by the writer)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return {
        "run_id": uuid.uuid4().hex[:12],
        "model": type(model).__name__,
        **layer_columns(layers, skipped),
        **columns,
        "device_resolved": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        "started_at": started_at,
        **versions(),
    }
