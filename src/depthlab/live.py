"""A live view of runs in TensorBoard, written beside their records (``logger=tensorboard``).

The parquet records stay the source of truth; the view is a convenience for watching a
long run or a sweep while it trains (``tensorboard --logdir outputs/``). Each run writes
event files into its own folder, ``RUN_FOLDER/tensorboard/``, so TensorBoard shows one run
per run folder (``seed=S`` folders of replicas included). Tags:

- ``network/METRIC``: network-level figures (``batch_loss``, ``loss``, ``test_accuracy``,
  network-level probe values), one scalar per step;
- ``METRIC/lNNN`` (``delta_norm/l003``): a per-layer figure of layer l = 1..L, zero-padded
  so TensorBoard sorts layers in order (``lNNN_NAME`` when the layer has a name);
- ``act/lNNN``, ``delta/lNNN``: histograms of a layer's values at probed steps.

TensorBoard stores scalars as float32. NaN and inf are kept as scalars, so a diverging run
shows as one. ``torch.utils.tensorboard`` is imported only when a view is opened, so
depthlab imports (and runs with ``logger=none``) without the ``tensorboard`` package.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthlab.errors import ConfigError
from depthlab.records import LIVE_DIR  # event files go to RUN_FOLDER/tensorboard/

LOGGERS = ("none", "tensorboard")
NETWORK_TAG = "network"
WRITER_MODULE = "torch.utils.tensorboard"
INSTALL = "pip install 'depthlab[tensorboard]'"
# equal-width buckets between a layer's least and greatest value (TensorBoard redraws them
# into its own ~30); SummaryWriter.add_histogram's default is ~1500 buckets over +-1e12
HISTOGRAM_BINS = 64


def check_logger(name: str, key: str = "logger") -> None:
    """Raise ConfigError for a ``name`` not in :data:`LOGGERS`, and for ``tensorboard`` when
    the tensorboard package cannot be imported (one line saying how to install it)."""
    if name not in LOGGERS:
        raise ConfigError(key, name, LOGGERS, "unknown value")
    if name == "tensorboard":
        try:
            importlib.import_module(WRITER_MODULE)
        except ImportError as exc:
            raise ConfigError(
                key, name, f"none, or {INSTALL}", "the tensorboard package is not installed"
            ) from exc


def layer_tag(l: int, name: str | None = None) -> str:
    """``l003`` or ``l003_fc2``: the layer's number zero-padded to three digits (depth is at
    most 1000, so L <= 1001 sorts in order up to l999), then its name when it has one."""
    return f"l{l:03d}" if not name else f"l{l:03d}_{name}"


def finite_values(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Each tensor's values, flattened, as float64 on the host (one copy for all of them),
    with the non-finite ones (NaN, +-inf) left out."""
    if not tensors:
        return []
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    values = flat.cpu().numpy()
    ends = np.cumsum([t.numel() for t in tensors])[:-1]
    return [v[np.isfinite(v)] for v in np.split(values, ends)]


class TensorBoardView:
    """One run's event files, ``run_folder/tensorboard/`` (a ``SummaryWriter``)."""

    def __init__(self, run_folder: Path | str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(run_folder) / LIVE_DIR
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Network-level figures at ``step``: tag ``network/METRIC`` for each of ``values``
        (NaN and inf kept)."""
        for metric, value in values.items():
            self.writer.add_scalar(f"{NETWORK_TAG}/{metric}", float(value), int(step))

    def layer_scalars(
        self,
        step: int,
        metric: str,
        values: Sequence[float],
        names: Sequence[str] | None = None,
    ) -> None:
        """One value per layer l = 1..L (``values[l-1]``) at ``step``: tag
        ``METRIC/lNNN`` (NaN and inf kept)."""
        for l, value in enumerate(values, start=1):
            tag = layer_tag(l, names[l - 1] if names else None)
            self.writer.add_scalar(f"{metric}/{tag}", float(value), int(step))

    def layer_histograms(
        self,
        step: int,
        metric: str,
        tensors: Sequence[torch.Tensor],
        names: Sequence[str] | None = None,
    ) -> None:
        """One histogram per layer l = 1..L of every value of ``tensors[l-1]`` (any shape)
        at ``step``: tag ``METRIC/lNNN``, :data:`HISTOGRAM_BINS` equal-width buckets from
        the least to the greatest value, with the exact count, sum and sum of squares. The
        values go to the host as float64 once per call. Non-finite values are left out
        (TensorBoard's histogram cannot bin them), so a histogram counts a layer's finite
        values; a layer with none gets no histogram at that step (its scalars, NaN
        included, say why)."""
        for l, values in enumerate(finite_values(tensors), start=1):
            if values.size:
                tag = layer_tag(l, names[l - 1] if names else None)
                self.histogram(f"{metric}/{tag}", step, values)

    def histogram(self, tag: str, step: int, values: np.ndarray) -> None:
        """One histogram of finite 1-D ``values``. Written from its sums (add_histogram_raw)
        rather than by add_histogram, whose float64 dot product waits on BLAS threads."""
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        self.writer.add_histogram_raw(
            tag,
            min=float(values.min()),
            max=float(values.max()),
            num=int(values.size),
            sum=float(values.sum()),
            sum_squares=float(np.einsum("i,i->", values, values)),
            bucket_limits=edges.tolist(),  # right edges; the first bucket is empty, so
            bucket_counts=[0, *counts.tolist()],  # the least value is a limit too
            global_step=int(step),
        )

    def flush(self) -> None:
        """Write what waits to the event file now."""
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def open_view(logger: str, run_folder: Path | str) -> TensorBoardView | None:
    """The view a ``logger`` value asks for: None for ``none`` (nothing imported, nothing
    written), a :class:`TensorBoardView` on ``run_folder`` for ``tensorboard``."""
    check_logger(logger)
    return None if logger == "none" else TensorBoardView(run_folder)


def show_pass(
    view: TensorBoardView,
    step: int,
    activations: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None],
    batch_size: int,
    names: Sequence[str] | None = None,
) -> None:
    """Histograms per layer of one run's probed pass: its a^l (``act``) and per-sample
    deltas B dJ/dz^l (``delta``; ``grads`` are of the batch-mean loss), the latter only
    when every layer has its gradient."""
    view.layer_histograms(step, "act", activations, names)
    if all(g is not None for g in grads):
        view.layer_histograms(step, "delta", [g * batch_size for g in grads], names)


def as_scalars(metric: str) -> bool:
    """Whether the view shows a probe metric as scalars: all but the bins of the histogram
    probe (``delta_hist_*``, 141 a layer), which the ``delta`` histograms show already."""
    return not metric.startswith("delta_hist_")


def log_probe_values(
    view: TensorBoardView,
    step: int,
    rows: Mapping[str, Any],
    names: Sequence[str] | None = None,
) -> None:
    """One run's probe values at ``step`` ({metric: values by layer}, as recorded): without
    layer ``names`` a row of one value is network-level (a scalar ``network/METRIC``) and a
    longer one per layer; with them every row is per layer. The histogram probe's bins are
    left out (:func:`as_scalars`)."""
    network = {}
    for metric, row in rows.items():
        if not as_scalars(metric):
            continue
        if names is None and len(row) == 1:
            network[metric] = float(row[0])
        else:
            view.layer_scalars(step, metric, row, names)
    if network:
        view.scalars(step, network)
