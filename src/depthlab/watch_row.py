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

import torch
from torch import nn

from depthlab.errors import ConfigError
from depthlab.provenance import versions
from depthlab.records import ENVIRONMENT_COLUMNS, RUN_SCHEMA

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
    """The user's run-row columns, checked: names watch writes itself and values that are
    not one number, string, bool or None are a ConfigError (before anything is written)."""
    config = dict(config or {})
    taken = {*RUN_SCHEMA.names, *ENVIRONMENT_COLUMNS, *WATCH_COLUMNS}
    for key, value in config.items():
        if not isinstance(key, str) or key in taken or key.endswith("_version"):
            raise ConfigError("config", key, "names other than the run row's own", "taken")
        if not isinstance(value, SCALARS):
            allowed = "one number, string, bool or None per key"
            raise ConfigError(f"config.{key}", value, allowed, "not a scalar")
    return config


def probes_text(probes: str | Sequence[str]) -> str:
    """The ``probes`` column: a preset name, or the names joined by commas."""
    return probes if isinstance(probes, str) else ",".join(probes)


def run_row(
    model: nn.Module,
    layer_names: list[str],
    skipped: list[str],
    columns: Mapping[str, Any],
    started_at: str,
) -> dict[str, Any]:
    """The row written when the first records come (``status`` is added by the writer)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return {
        "run_id": uuid.uuid4().hex[:12],
        "model": type(model).__name__,
        "num_layers": len(layer_names),
        "layer_names": json.dumps(layer_names),
        "skipped_layers": "; ".join(skipped),
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
