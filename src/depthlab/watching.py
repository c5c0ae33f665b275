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

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from depthlab import locks
from depthlab.errors import ConfigError
from depthlab.live import check_logger, log_probe_values, open_view, show_pass
from depthlab.probes import host_rows, note_run_figures
from depthlab.probes.schedule import ProbeSchedule, Steps
from depthlab.provenance import now
from depthlab.records import NETWORK_LAYER, RunRecorder
from depthlab.watch_capture import Pass, PassCapture
from depthlab.watch_layers import WatchedLayer, candidates, custom_kind, kind_of, skipped
from depthlab.watch_probes import (
    AROUND_UPDATE,
    WATCH_PROBES,
    WatchInput,
    per_sample,
    watch_probe_names,
)
from depthlab.watch_row import check_config, check_counts, layer_columns, probes_text, run_row

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
    """The records of one model trained by the user's loop (use :func:`watch`). While it is
    open it holds the run folder's lock (``depthlab.locks``): a second writer, in this
    process or another, is refused with one line naming the holder."""

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
        check_counts(every=every, log_points=log_points, steps=steps)
        if log_points and steps is None:
            raise ConfigError("log_points", log_points, "0 unless steps is given", "needs steps")
        check_logger(logger)
        self.model, self.folder, self.logger = model, Path(folder), logger
        self.probes = watch_probe_names(probes)
        self.columns = {"probes": probes_text(probes), "every": every, "log_points": log_points}
        self.columns.update({"steps": steps, **check_config(config)})
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
        self.held: contextlib.ExitStack | None = None

    def __enter__(self) -> Watch:
        if self.held is not None:
            raise RuntimeError("a watch records one run: open a new one with depthlab.watch")
        held = contextlib.ExitStack()
        try:
            held.enter_context(locks.locked([self.folder]))
        except locks.FolderLockedError as exc:  # nothing is held
            message = f"{self.folder} is being written by {exc.holder}: one writer a folder"
            raise locks.FolderLockedError(self.folder, exc.holder, message) from None
        self.held = held
        try:
            self._arm()
        except BaseException:
            self._release()
            raise
        return self

    def step(self, loss: torch.Tensor | float, grad_scale: float = 1.0) -> None:
        """After update t+1 (``optimizer.step()``): record step t (``loss``: that pass's
        batch-mean loss) and get ready for the next pass. ``grad_scale``: the factor the
        backward pass's loss was multiplied by (mixed precision's ``scaler.get_scale()``,
        read before ``scaler.update()``); deltas and gradient norms are divided by it."""
        if not grad_scale > 0:
            raise ConfigError("grad_scale", grad_scale, "a number > 0 (the loss scale)")
        if isinstance(loss, torch.Tensor) and loss.numel() != 1:
            raise ConfigError("loss", f"a tensor of {loss.numel()}", "one value, the batch mean")
        t = self.steps_done
        self.pending.append(loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(loss))
        if self.capture is not None:
            capture, self.capture = self.capture, None
            capture.disarm()
            chosen = capture.chosen()
            if chosen is not None:
                self._measure(t, capture, chosen, float(grad_scale))
            elif capture.captured:
                LOG.warning("watch: no backward pass reached step %d's passes: not probed", t)
            else:
                LOG.warning("watch: step %d had no forward pass with gradients: not probed", t)
        self.steps_done = t + 1
        if t == 0:
            self._recorder()  # run.parquet is on disk from the first step
        if self.steps_done % CHECK_EVERY == 0:
            self._read_losses()
        if self.steps_done in self.schedule:
            self._arm()

    def __exit__(self, kind: type | None, error: BaseException | None, trace: object) -> None:
        if self.capture is not None:
            self.capture.disarm()
        try:
            self._finish(error)
        finally:
            try:
                if self.view is not None:
                    self.view.close()
            finally:
                self._release()

    def _release(self) -> None:
        """Give the folder's lock back."""
        if self.held is not None:
            self.held.close()

    # the parts

    def _finish(self, error: BaseException | None) -> None:
        """Read back what waits and record how the run ended."""
        status, fields = "ok", {}
        try:
            self._read_losses()
        except Exception as exc:  # a record that cannot be read back is the run's failure
            error = error or exc
        if error is not None:
            status, fields = "failed", {"error": f"{type(error).__name__}: {error}"}
        elif self.diverged_step is not None:
            status = "diverged"
        fields.update(
            self.final,
            steps_done=self.steps_done,
            diverged_step=self.diverged_step,
            wall_time_s=time.perf_counter() - self.start,
            finished_at=now(),
        )
        self._recorder().finish(status, **fields)

    def _arm(self) -> None:
        if self.layers:
            found = {x.name: (x.module, x.kind) for x in self.layers}
        else:  # the first pass finds the layers
            kind = custom_kind if self.named else kind_of
            found = {n: (m, kind(m)) for n, m in self.found.items()}
        keep = any(name in AROUND_UPDATE for name in self.probes)
        self.capture = PassCapture(self.model, found, keep_weights=keep).arm()

    def _measure(self, step: int, capture: PassCapture, chosen: Pass, grad_scale: float) -> None:
        if not self.layers:
            self._settle_layers(capture, chosen)
        names = [x.name for x in self.layers]
        if not names:
            return
        if not all(n in chosen.calls for n in names):
            LOG.warning("watch: step %d's pass did not call every watched layer: not probed", step)
            return
        calls = [chosen.calls[n] for n in names]
        grads = [chosen.grads.get(n) for n in names]
        norms = {key: norm / grad_scale for key, norm in capture.grad_norms.items()}
        after = [x.parameters()[0] for x in self.layers] if capture.keep_weights else None
        inputs = WatchInput(
            per_sample(calls, grads, grad_scale),
            calls,
            [g is not None for g in grads],
            [norms.get((n, "weight")) for n in names],
            [norms.get((n, "bias")) for n in names],
            after,
            grad_scale,
        )
        values: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name in self.probes:
                values.update(WATCH_PROBES[name](inputs))
        self._log(step, host_rows(values), inputs)

    def _settle_layers(self, capture: PassCapture, chosen: Pass) -> None:
        """After the first pass: the layers (called once, in call order) and what is left
        out, written into the run row at once."""
        reused = {n: r.calls for n, r in chosen.calls.items() if r.calls > 1}
        self.layers = [WatchedLayer(n, *capture.layers[n]) for n in chosen.order if n not in reused]
        self.skipped = skipped(self.model, self.layers, chosen.followed, reused)
        self.skipped += [
            f"{x.name} ({type(x.module).__name__}: its output needs no gradient, frozen or "
            "run without gradients: delta not measured)"
            for x in self.layers
            if not chosen.calls[x.name].in_graph
        ]
        if self.recorder is not None:  # made before any pass was probed
            self.recorder.update_row(**layer_columns(self.layers, self.skipped))
        if not self.layers:
            LOG.warning(
                "watch: %s called no Linear or Conv layer once in its first pass: only "
                "batch_loss is recorded; name the layers to watch with layers=[...]",
                type(self.model).__name__,
            )
            self.schedule = Steps(-1)
        if self.skipped:
            LOG.warning(
                "watch: %d module(s) not recorded in full: %s",
                len(self.skipped),
                "; ".join(self.skipped),
            )

    def _log(self, step: int, rows: dict[str, np.ndarray], inputs: WatchInput) -> None:
        recorder = self._recorder()
        layer_numbers = np.arange(1, len(self.layers) + 1, dtype=np.int32)
        for metric, row in rows.items():
            recorder.log(step, layer_numbers, metric, row)
        note_run_figures(self.final, step, rows)
        if self.view is not None:
            self._show(step, rows, inputs)
        if step == 0 or recorder.seconds_since_flush() > FLUSH_SECONDS:
            recorder.flush()

    def _show(self, step: int, rows: dict[str, np.ndarray], inputs: WatchInput) -> None:
        """The live view of a probed step: each metric as scalars by layer, and act and
        delta histograms."""
        names, t = [x.name for x in self.layers], inputs.tensors
        log_probe_values(self.view, step, rows, names)
        acts, grads = [a[0] for a in t.outputs], [g[0] for g in t.grads]
        show_pass(self.view, step, acts, grads, t.batch_size, names)

    def _recorder(self) -> RunRecorder:
        """The run's recorder, made at the first step (when the layers are known); it sets
        earlier records in the folder aside, a live view's event files with them."""
        if self.recorder is None:
            row = run_row(self.model, self.layers, self.skipped, self.columns, self.started_at)
            self.recorder = RunRecorder(self.folder, row, seed=0)
            self.view = open_view(self.logger, self.folder)
        return self.recorder

    def _read_losses(self) -> None:
        """Log the pending batch losses, note the first non-finite one, and flush when the
        last flush is FLUSH_SECONDS old."""
        if not self.pending:
            return
        values = torch.stack([x.reshape(()).double() for x in self.pending]).cpu().numpy()
        self.pending.clear()
        steps = np.arange(self.steps_done - len(values), self.steps_done)
        recorder = self._recorder()
        recorder.log(steps, NETWORK_LAYER, "batch_loss", values)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad) and self.diverged_step is None:
            self.diverged_step = int(steps[bad[0]])
        if self.view is not None:
            for s, v in zip(steps, values, strict=True):
                self.view.scalars(int(s), {"batch_loss": float(v)})
        self.final["final_batch_loss"] = float(values[-1])
        if recorder.seconds_since_flush() > FLUSH_SECONDS:
            recorder.flush()


__all__ = ["Watch", "watch"]
