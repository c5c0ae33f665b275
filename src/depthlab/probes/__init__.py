"""Per-layer measurements of a network: registered probes, presets, and ``measure``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from depthlab.data import CLASSIFICATION, REGRESSION
from depthlab.errors import ConfigError
from depthlab.losses import LOSSES
from depthlab.model import MLP
from depthlab.probes import curvature, jacobian, layer_stats  # noqa: F401  (register probes)
from depthlab.probes.base import PROBES, Probe, ProbeInput, presets, probe_names, register_probe
from depthlab.probes.capture import Capture, LayerTensors, Objective, batch_objective
from depthlab.records import METRICS_SCHEMA
from depthlab.sequential import from_sequential

TASKS = (CLASSIFICATION, REGRESSION)

__all__ = [
    "PROBES",
    "Capture",
    "LayerTensors",
    "Probe",
    "ProbeInput",
    "batch_objective",
    "compute",
    "host_arrays",
    "host_rows",
    "measure",
    "note_run_figures",
    "presets",
    "probe_names",
    "register_probe",
    "row_layers",
    "weights_before_update",
]


def compute(
    model: MLP,
    tensors: LayerTensors,
    names: list[str],
    objective: Objective | None = None,
    before: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Run the probes ``names`` on one captured pass: {metric: (R, L) float64 tensor}.
    ``objective(net)`` recomputes the pass's per-replica losses through ``net`` (curvature,
    and delta where the run's dtype underflows: see ``depthlab.probes.layer_stats``).
    Without ``before`` the probes around the update are left out; with it (the weights
    before the update, the model after it) only they run."""
    values: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name in names:
            probe = PROBES[name]
            if probe.around_update == (before is not None):
                values.update(probe.measure(ProbeInput(model, tensors, objective, before)))
    return values


def weights_before_update(model: MLP, names: list[str]) -> list[torch.Tensor] | None:
    """Copies of every W^l when one of ``names`` measures around the update, else None."""
    if not any(PROBES[name].around_update for name in names):
        return None
    return [model.layer(l).linear.weight.detach().clone() for l in range(1, model.num_layers + 1)]


def host_arrays(values: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Every replica's probe values on the host, in one copy: {metric: (R, n) array}.
    A row of length n = L is per layer (1..L); of length 1, network-level (layer 0)."""
    if not values:
        return {}
    flat = torch.cat(list(values.values()), dim=1).cpu().numpy()
    ends = np.cumsum([v.shape[1] for v in values.values()])[:-1]
    return dict(zip(values, np.split(flat, ends, axis=1), strict=True))


def host_rows(values: dict[str, torch.Tensor], replica: int = 0) -> dict[str, np.ndarray]:
    """One replica's probe values on the host: {metric: values by layer}."""
    return {metric: array[replica] for metric, array in host_arrays(values).items()}


def row_layers(row: np.ndarray) -> np.ndarray:
    """The layer numbers of a host row: 1..L, or the network sentinel 0."""
    return np.arange(1, len(row) + 1, dtype=np.int32) if len(row) > 1 else np.zeros(1, np.int32)


def note_run_figures(final: dict, step: int, rows: dict[str, np.ndarray]) -> None:
    """Update a run row's ``final`` fields from its probe values at ``step`` ({metric: values
    by layer}): ``delta_ratio_initial`` and ``delta_ratio_final``, ||delta^1|| / ||delta^L||
    at the first and the latest probed step, and where a pass first broke
    (``nonfinite_step``, ``nonfinite_layer``: :func:`first_nonfinite_layer`)."""
    if "delta_norm" in rows:
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero last delta: inf, NaN
            ratio = float(rows["delta_norm"][0] / rows["delta_norm"][-1])
        final.setdefault("delta_ratio_initial", ratio)  # the first probed step: 0
        final["delta_ratio_final"] = ratio
    layer = first_nonfinite_layer(rows.get("preact_nonfinite"), rows.get("delta_nonfinite"))
    if layer is not None and "nonfinite_step" not in final:
        final.update(nonfinite_step=step, nonfinite_layer=layer)


def first_nonfinite_layer(preact: np.ndarray | None, delta: np.ndarray | None) -> int | None:
    """Where a pass first breaks: the lowest layer with a NaN/inf pre-activation (forward
    order), else the highest layer with a NaN/inf delta (backward order), else None."""
    forward = np.flatnonzero(preact) if preact is not None else []
    if len(forward):
        return int(forward[0]) + 1
    backward = np.flatnonzero(delta) if delta is not None else []
    return int(backward[-1]) + 1 if len(backward) else None


def to_frame(
    values: dict[str, torch.Tensor], step: int = 0, run_id: str = "", seeds: list[int] | None = None
) -> pd.DataFrame:
    """Probe values as tidy rows ``run_id, seed, step, layer, metric, value``."""
    replicas = next(iter(values.values())).shape[0]
    seeds = list(range(replicas)) if seeds is None else seeds
    parts = []
    for r in range(replicas):
        for metric, row in host_rows(values, r).items():
            parts.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "seed": np.int64(seeds[r]),
                        "step": np.int64(step),
                        "layer": row_layers(row),
                        "metric": metric,
                        "value": row,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)[METRICS_SCHEMA.names]


def measure(
    model: MLP | torch.nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    task: str,
    probes: str | list[str] = "default",
) -> pd.DataFrame:
    """The probes of ``model`` on one batch, without training: one forward and backward pass
    of the batch-mean ``loss`` (parameter gradients are overwritten, weights untouched).
    Returns the tidy frame that run records hold (step 0, seed = replica index).

    ``model`` is depthlab's :class:`MLP`, or a plain ``nn.Sequential`` of ``nn.Linear`` layers
    and activation modules, measured through a copy of its weights (exactly what is
    accepted: :mod:`depthlab.sequential`; a one-line TypeError otherwise)."""
    if task not in TASKS:
        raise ConfigError("task", task, list(TASKS), "unknown task")
    if isinstance(model, torch.nn.Sequential):
        model = from_sequential(model)
    elif not isinstance(model, MLP):
        raise TypeError(
            f"measure takes depthlab's MLP or an nn.Sequential of nn.Linear layers and "
            f"activations, not {type(model).__name__}"
        )
    names = probe_names(probes)
    model.zero_grad(set_to_none=True)
    objective = batch_objective(lambda out, target: LOSSES[loss](out, target, task), x, y)
    with Capture(model) as capture:
        objective(model).sum().backward()
    return to_frame(compute(model, capture.tensors, names, objective))
