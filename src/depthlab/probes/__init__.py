"""Per-layer measurements of a network: registered probes, presets, and ``measure``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from depthlab.losses import LOSSES
from depthlab.model import MLP
from depthlab.probes.base import PRESETS, PROBES, UPDATES, ProbeInput, probe_names
from depthlab.probes.capture import Capture, LayerTensors
from depthlab.probes.layer_stats import update_ratio  # importing registers the probes
from depthlab.records import METRICS_SCHEMA

__all__ = [
    "PRESETS",
    "PROBES",
    "UPDATES",
    "Capture",
    "LayerTensors",
    "ProbeInput",
    "compute",
    "measure",
    "probe_names",
    "update_ratio",
]


def compute(model: MLP, tensors: LayerTensors, names: list[str]) -> dict[str, torch.Tensor]:
    """Run the probes ``names`` on one captured pass: {metric: (R, L) float64 tensor}."""
    values: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in names:
            values.update(PROBES[name](ProbeInput(model, tensors)))
    return values


def to_frame(
    values: dict[str, torch.Tensor], step: int = 0, run_id: str = "", seeds: list[int] | None = None
) -> pd.DataFrame:
    """Probe values as tidy rows ``run_id, seed, step, layer, metric, value`` (one host copy)."""
    metrics = list(values)
    stacked = torch.stack([values[m] for m in metrics]).cpu().numpy()  # (M, R, L)
    m, r, l = stacked.shape
    seeds = list(range(r)) if seeds is None else seeds
    frame = pd.DataFrame(
        {
            "run_id": run_id,
            "seed": np.repeat(np.asarray(seeds, dtype=np.int64)[None, :, None], l, 2)
            .repeat(m, 0)
            .ravel(),
            "step": np.int64(step),
            "layer": np.tile(np.arange(1, l + 1, dtype=np.int32), m * r),
            "metric": np.repeat(metrics, r * l),
            "value": stacked.ravel(),
        }
    )
    return frame[METRICS_SCHEMA.names]


def measure(
    model: MLP,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    task: str,
    probes: str | list[str] = "default",
) -> pd.DataFrame:
    """The probes of ``model`` on one batch, without training: one forward and backward pass
    of the batch-mean ``loss`` (parameter gradients are overwritten, weights untouched).
    Returns the tidy frame that run records hold (step 0, seed = replica index)."""
    names = probe_names(probes)
    model.zero_grad(set_to_none=True)
    with Capture(model) as capture:
        LOSSES[loss](model(x), y, task).sum().backward()
    return to_frame(compute(model, capture.tensors, names))
