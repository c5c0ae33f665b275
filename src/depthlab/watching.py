"""``depthlab.watch``: depthlab's per-layer records for any PyTorch model, in your own loop.

    with depthlab.watch(model, "runs/mine") as watch:
        for x, y in batches:
            loss = loss_fn(model(x), y)  # a mean over the batch
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            watch.step(loss)

Step semantics are those of depthlab's own runs: step t is the model after t updates, and
step t's records describe the forward and backward pass of update t+1 (step 0: the first
batch, at initialisation); ``batch_loss`` at step t is that pass's loss. The probed steps
follow the ``probes`` group's schedule: step 0, every ``every`` steps, ``log_points``
log-spaced steps and the last step (these two need ``steps``, the number of updates).
What is recorded per layer and how it is reduced: :mod:`depthlab.watch_probes`; which
layers: :mod:`depthlab.watch_layers` (modules it cannot record are named in one logged
line and in the run row's ``skipped_layers``); how a pass is read: :mod:`depthlab.watch_capture`.

The records follow the storage contract of :mod:`depthlab.records` (``run.parquet``,
``metrics.parquet/``): ``load_sweep``, the plots and ``python -m depthlab.report`` read
them as they read depthlab's runs. The run row holds ``model`` (the class name),
``num_layers`` (L), ``layer_names`` (a JSON list: layer l is entry l-1) and the user's
``config`` as columns. A run that ends by an exception is recorded ``failed`` with its
error (the exception goes on); a non-finite loss makes it ``diverged`` at that step, and
the records go on as long as the loop does.
"""

from __future__ import annotations

import json
import logging
import platform
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from depthlab.errors import ConfigError
from depthlab.probes import host_rows
from depthlab.probes.schedule import ProbeSchedule, Steps
from depthlab.provenance import now, versions
from depthlab.records import NETWORK_LAYER, RunRecorder
from depthlab.watch_capture import PassCapture
from depthlab.watch_layers import WatchedLayer, candidates, custom_kind, kind_of, skipped
from depthlab.watch_probes import (
    AROUND_UPDATE,
    WATCH_PROBES,
    WatchInput,
    per_sample,
    watch_probe_names,
)

LOG = logging.getLogger("depthlab.watch")
CHECK_EVERY = 10  # steps between reading the batch losses back from the device
FLUSH_SECONDS = 10.0  # at most this long between record flushes (at probed steps), as runs
UNBOUNDED = 2**62  # the schedule's end when the number of steps is not known


def watch(
    model: nn.Module,
    folder: Path | str,
    *,
    probes: str | list[str] = "default",
    every: int = 50,
    log_points: int = 0,
    steps: int | None = None,
    layers: list[str] | None = None,
    logger: str = "none",
    config: Mapping[str, Any] | None = None,
) -> Watch:
    """Record ``model``'s layers while your loop trains it (a context manager; see the
    module docstring). ``folder``: the run folder; ``probes``: a preset or probe names, as
    the ``probes`` group; ``every``, ``log_points``: the schedule; ``steps``: the number
    of updates, when known (probes the last one; needed by ``log_points``); ``layers``:
    module names to record instead of every Linear/Conv1d/Conv2d; ``logger="tensorboard"``:
    a live view beside the records; ``config``: columns for the run row (what varies
    between your runs, e.g. ``{"residual": True}``)."""
    return Watch(model, folder, probes, every, log_points, steps, layers, logger, config)


class Watch:
    """The records of one model trained by the user's loop (use :func:`watch`)."""

    def __init__(
        self,
        model: nn.Module,
        folder: Path | str,
        probes: str | list[str],
        every: int,
        log_points: int,
        steps: int | None,
        layers: list[str] | None,
        logger: str,
        config: Mapping[str, Any] | None,
    ) -> None:
        _check_counts(every=every, log_points=log_points, steps=steps)
        if log_points and steps is None:
            raise ConfigError("log_points", log_points, "0 unless steps is given", "needs steps")
        from depthlab.live import check_logger

        check_logger(logger)
        self.model, self.folder, self.logger = model, Path(folder), logger
        self.probes = watch_probe_names(probes)
        self.config = {"probes": _spec(probes), "every": every, "log_points": log_points}
        self.config.update({"steps": steps, **(config or {})})
        schedule = ProbeSchedule(names=self.probes, every=every, log_points=log_points)
        last = steps - 1 if steps is not None else UNBOUNDED  # step t: the pass of update t+1
        self.schedule = schedule.steps(last) if self.probes else Steps(-1)
        self.found = candidates(model, layers)
        self.named = layers is not None
        self.layers: list[WatchedLayer] = []
        self.skipped: list[str] = []
        self.steps_done = 0
        self.recorder: RunRecorder | None = None
        self.view = None
        self.capture: PassCapture | None = None
        self.pending: list[torch.Tensor] = []
        self.diverged_step: int | None = None
        self.final: dict[str, Any] = {}
        self.start = time.perf_counter()
        self.started_at = now()

    def __enter__(self) -> Watch:
        self._arm(0)
        return self

    def step(self, loss: torch.Tensor | float) -> None:
        """After update t+1 (``optimizer.step()``): record step t (``loss``: that pass's
        batch-mean loss) and get ready for the next pass."""
        t = self.steps_done
        self.pending.append(torch.as_tensor(loss).detach().reshape(()).to(torch.float64))
        if self.capture is not None:
            capture, self.capture = self.capture, None
            capture.disarm()
            if capture.captured:
                self._measure(t, capture)
            else:
                LOG.warning("watch: step %d had no forward pass with gradients: not probed", t)
        self.steps_done = t + 1
        if self.steps_done % CHECK_EVERY == 0:
            self._read_losses()
        if self.steps_done in self.schedule:
            self._arm(self.steps_done)

    def __exit__(self, kind: type | None, error: BaseException | None, trace: object) -> None:
        if self.capture is not None:
            self.capture.disarm()
        status, fields = "ok", {}
        try:
            self._read_losses()
        except Exception as exc:  # a record that cannot be read back is the run's failure
            error = error or exc
        if error is not None:
            status, fields = "failed", {"error": f"{type(error).__name__}: {error}"}
        elif self.diverged_step is not None:
            status = "diverged"
        recorder = self._recorder()
        fields.update(
            self.final,
            steps_done=self.steps_done,
            diverged_step=self.diverged_step,
            wall_time_s=time.perf_counter() - self.start,
            finished_at=now(),
        )
        recorder.finish(status, **fields)
        if self.view is not None:
            self.view.close()

    # the parts

    def _arm(self, step: int) -> None:
        if self.layers:
            found = {x.name: (x.module, x.kind) for x in self.layers}
        else:  # the first pass finds the layers
            found = {
                n: (m, custom_kind(m) if self.named else kind_of(m)) for n, m in self.found.items()
            }
        keep = any(name in AROUND_UPDATE for name in self.probes)
        self.capture = PassCapture(self.model, found, keep_weights=keep).arm()

    def _measure(self, step: int, capture: PassCapture) -> None:
        if not self.layers:
            self._settle_layers(capture)
        names = [x.name for x in self.layers]
        if not names:
            return
        if not all(n in capture.calls for n in names):
            LOG.warning("watch: step %d's pass did not call every watched layer: not probed", step)
            return
        calls = [capture.calls[n] for n in names]
        grads = [capture.grads.get(n) for n in names]
        norms = capture.grad_norms
        after = [x.parameters()[0] for x in self.layers] if capture.keep_weights else None
        inputs = WatchInput(
            per_sample(calls, grads),
            calls,
            [g is not None for g in grads],
            [norms.get((n, "weight")) for n in names],
            [norms.get((n, "bias")) for n in names],
            after,
        )
        values: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name in self.probes:
                values.update(WATCH_PROBES[name](inputs))
        self._log(step, host_rows(values), inputs)

    def _settle_layers(self, capture: PassCapture) -> None:
        """After the first pass: the layers (called once, in call order) and what is left out."""
        reused = {n: r.calls for n, r in capture.calls.items() if r.calls > 1}
        self.layers = [
            WatchedLayer(n, *capture.layers[n]) for n in capture.order if n not in reused
        ]
        self.skipped = skipped(self.model, self.layers, capture.followed, reused)
        if not self.layers:
            LOG.warning(
                "watch: %s called no Linear, Conv1d or Conv2d once in its first pass: only "
                "batch_loss is recorded; name the layers to watch with layers=[...]",
                type(self.model).__name__,
            )
            self.schedule = Steps(-1)
        if self.skipped:
            LOG.warning(
                "watch: %d module(s) not recorded: %s", len(self.skipped), "; ".join(self.skipped)
            )

    def _log(self, step: int, rows: dict[str, np.ndarray], inputs: WatchInput) -> None:
        recorder = self._recorder()
        layer_numbers = np.arange(1, len(self.layers) + 1, dtype=np.int32)
        for metric, row in rows.items():
            recorder.log(step, layer_numbers, metric, row)
        if "delta_norm" in rows:
            ratio = float(rows["delta_norm"][0] / rows["delta_norm"][-1])
            self.final.setdefault("delta_ratio_initial", ratio)
            self.final["delta_ratio_final"] = ratio
        if self.view is not None:
            names = [x.name for x in self.layers]
            for metric, row in rows.items():
                self.view.layer_scalars(step, metric, row, names)
            self.view.layer_histograms(step, "act", [a[0] for a in inputs.tensors.outputs], names)
            b = inputs.tensors.batch_size
            self.view.layer_histograms(
                step, "delta", [g[0] * b for g in inputs.tensors.grads], names
            )
        if step == 0 or recorder.seconds_since_flush() > FLUSH_SECONDS:
            recorder.flush()

    def _recorder(self) -> RunRecorder:
        """The run's recorder, made at the first record (when the layers are known)."""
        if self.recorder is None:
            self.recorder = RunRecorder(self.folder, self._row(), seed=0)
            from depthlab.live import open_view

            self.view = open_view(self.logger, self.folder)
        return self.recorder

    def _row(self) -> dict[str, Any]:
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        return {
            "run_id": uuid.uuid4().hex[:12],
            "model": type(self.model).__name__,
            "num_layers": len(self.layers),
            "layer_names": json.dumps([x.name for x in self.layers]),
            "skipped_layers": "; ".join(self.skipped),
            **self.config,
            "device_resolved": str(device),
            "device_name": (
                torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else platform.processor() or platform.machine()
            ),
            "started_at": self.started_at,
            **versions(),
        }

    def _read_losses(self) -> None:
        """Log the pending batch losses and note the first non-finite one."""
        if not self.pending:
            return
        values = torch.stack(self.pending).cpu().numpy()
        self.pending.clear()
        steps = np.arange(self.steps_done - len(values), self.steps_done)
        self._recorder().log(steps, NETWORK_LAYER, "batch_loss", values)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad) and self.diverged_step is None:
            self.diverged_step = int(steps[bad[0]])
        if self.view is not None:
            for s, v in zip(steps, values, strict=True):
                self.view.scalars(int(s), {"batch_loss": float(v)})
        self.final["final_batch_loss"] = float(values[-1])


def _check_counts(**counts: int | None) -> None:
    for key, value in counts.items():
        if value is None and key == "steps":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < (key == "steps"):
            low = 1 if key == "steps" else 0
            raise ConfigError(key, value, f"an integer >= {low}")


def _spec(probes: str | list[str]) -> str:
    return probes if isinstance(probes, str) else ",".join(probes)


__all__ = ["Watch", "watch"]
