"""The training loop over a batched model of R runs: steps, probes, evaluations, records.

Step semantics: step 0 is the network at initialisation; step t is the network after t
updates. ``batch_loss`` at step t is the loss of the mini-batch that update t+1 uses,
computed with the parameters of step t. ``loss``/``accuracy`` (training set) and
``test_loss``/``test_accuracy`` are evaluated on the whole sets at step 0, every
``eval_every`` steps and at the last step, in eval mode (batchnorm uses running averages).
A non-finite loss ends the run with status ``diverged`` at the first step that shows it:
a result, not an error.

Every run shares every pass of the batched model but logs only its own slice on its own
schedule, so its records are those of the run trained alone. A run whose loss stops being
finite is finished exactly as it would be alone (final evaluation, final probe) and the
others train on.

A run with a live view (``logger=tensorboard``, :mod:`depthlab.live`) also shows what it
records there, as it logs it: batch losses, evaluations, probe values, and at probed steps
histograms of its replica's a^l (``act``) and per-sample deltas B dJ/dz^l (``delta``). A
run without one (``view`` None) costs nothing more.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # tqdm.auto warns in Jupyter kernels without ipywidgets

from depthlab.config import Config, resolve_loss
from depthlab.data import DataSet
from depthlab.evaluation import evaluate
from depthlab.live import TensorBoardView, log_probe_values, show_pass
from depthlab.losses import LOSSES
from depthlab.model import MLP, preserved_buffers
from depthlab.predictions import log_predictions
from depthlab.probes import (
    PROBES,
    Capture,
    LayerTensors,
    batch_objective,
    compute,
    host_arrays,
    note_run_figures,
    probe_names,
    row_layers,
    weights_before_update,
)
from depthlab.provenance import now
from depthlab.records import NETWORK_LAYER, RunRecorder
from depthlab.resources import EVAL_CHUNK
from depthlab.seeding import torch_generator
from depthlab.steps import BatchStream, Stepper, gather

CHECK_EVERY = 10  # steps between reading the buffered batch losses back from the device


@dataclass
class Run:
    """One run of a batched model (one seed of one member): its config, where its records
    go, and how it is doing."""

    index: int  # position r in the batched model
    member: int  # which member of the group it belongs to
    cfg: Config
    seed: int
    recorder: RunRecorder
    final: dict[str, Any] = field(default_factory=dict)  # the run row's final fields
    diverged_step: int | None = None
    steps_done: int = 0
    active: bool = True  # still training (a diverged run trains on until its next check)
    view: TensorBoardView | None = None  # its live view (logger=tensorboard), if any

    def evaluates_at(self, step: int) -> bool:
        """Whether this run evaluates the whole sets after ``step`` updates."""
        return step % self.cfg.eval_every == 0 or step == self.cfg.steps

    def checks_at(self, step: int) -> bool:
        """Whether this run reads its batch losses back (and ends if it diverged) here."""
        return step % CHECK_EVERY == 0 or self.evaluates_at(step)

    def flush(self) -> None:
        """Write this run's buffered records (and its live view's events) now."""
        self.recorder.flush()
        if self.view is not None:
            self.view.flush()


# probe values not yet logged: (step, {metric: (R, n)}, the runs they are for; None: active)
Probed = tuple[int, dict[str, torch.Tensor], list[Run] | None]


class TrainingLoop:
    """Trains ``model`` (one replica per run of ``runs``; ``cfg``: their shared keys) and
    logs each run's records. :meth:`run` is the loop; the other methods are its parts."""

    def __init__(
        self, cfg: Config, runs: list[Run], model: MLP, data: DataSet, label: str = ""
    ) -> None:
        self.cfg, self.runs, self.model, self.data, self.label = cfg, runs, model, data, label
        self.start = time.perf_counter()
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = cfg.optimizer.batched(
            trainable, [r.cfg.optimizer for r in runs], [r.cfg.lr for r in runs]
        )
        self.loss_name = resolve_loss(cfg)
        device = next(model.parameters()).device
        self.stream = BatchStream(
            data.num_train,
            cfg.batch_size,
            [torch_generator(r.seed, "batches", device) for r in runs],
            device,
        )
        # unprobed steps may run compiled or captured; probed ones need the hooks: eager
        self.stepper = Stepper(
            torch.compile(model) if cfg.compile else model,
            model,
            self.optimizer,
            self.batch_losses,
            data,
            capture=cfg.cuda_graph and device.type == "cuda" and not cfg.compile,
        )
        self.probe_steps = cfg.probes.steps(cfg.steps)
        self.costly_steps = cfg.probes.costly_steps(cfg.steps)
        self.probes = probe_names(cfg.probes.names) if self.probe_steps else []
        self.probed: list[Probed] = []
        self.pending: list[torch.Tensor] = []  # per-run batch losses not yet read back

    def run(self) -> tuple[MLP, bool]:
        """Train until every run has finished; the model and whether unprobed steps
        replayed a CUDA graph."""
        log_predictions([(r.cfg, r.recorder) for r in self.runs], self.model, self.data)
        cfg = self.cfg
        self.bar = tqdm(
            total=cfg.steps,
            desc=self.label or f"depth={cfg.depth}",
            unit="step",
            disable=None,
            dynamic_ncols=True,
            leave=True,
        )
        with self.bar:
            self.begin()
            step = 0
            while self.active() and step < self.cfg.steps:
                self.pending.append(self.update(step))
                step += 1
                self.bar.update()
                self.check(step)
            self.finish(self.active(), step, evaluate_first=False)  # the final network
        return self.model, self.stepper.captured

    def batch_losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The per-run mean losses of a batch's outputs."""
        return LOSSES[self.loss_name](out, y, self.data.task)

    def active(self) -> list[Run]:
        return [r for r in self.runs if r.active]

    def begin(self) -> None:
        """Step 0: the network at initialisation, evaluated and on disk before any update."""
        broken = self.log_evaluation(0, self.runs)
        for r in broken:
            r.diverged_step = 0
        for r in self.runs:
            r.flush()
        self.finish(broken, 0, evaluate_first=False)

    def update(self, step: int) -> torch.Tensor:
        """One update on the step's batches (probed when scheduled); the per-run losses."""
        if step not in self.probe_steps:
            return self.stepper(self.stream.batch(step))
        losses = self.probe(step)
        before = weights_before_update(self.model, self.probes)
        self.optimizer.step()
        if before is not None:
            values = self.probed[-1][1]
            values.update(compute(self.model, LayerTensors(), self.probes, before=before))
        return losses

    def check(self, step: int) -> None:
        """After ``step`` updates: read losses back, end diverged runs, evaluate, flush."""
        checking = [r for r in self.active() if r.checks_at(step)]
        if checking:
            self.read_batch_losses(step)
            self.log_probes()
            self.finish([r for r in checking if r.diverged_step is not None], step, True)
        evaluating = [r for r in self.active() if r.evaluates_at(step)]
        if not evaluating:
            return
        broken = self.log_evaluation(step, evaluating)
        for r in broken:
            r.diverged_step = step
        self.finish(broken, step, evaluate_first=False)
        if self.runs[0].recorder.seconds_since_flush() > self.cfg.flush_seconds:
            for r in self.runs:
                r.flush()

    def probe(self, step: int, only: list[Run] | None = None) -> torch.Tensor:
        """A probed forward and backward pass on the step's batches; the per-run losses.
        The probe values stay on the device until :meth:`log_probes`."""
        x, y = gather(self.data, self.stream.batch(step))
        with Capture(self.model) as capture:
            losses = self.batch_losses(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
        costly = step in self.costly_steps
        names = [n for n in self.probes if costly or not PROBES[n].costly]
        objective = batch_objective(self.batch_losses, x, y)
        self.probed.append((step, compute(self.model, capture.tensors, names, objective), only))
        self.show_tensors(step, capture.tensors, self.active() if only is None else only)
        return losses.detach()

    def show_tensors(self, step: int, tensors: LayerTensors, which: list[Run]) -> None:
        """Histograms per layer, in the live views of ``which``, of the probed pass's a^l
        (``act``) and per-sample deltas B dJ/dz^l (``delta``, ``grads`` being of the batch
        mean) of each run's own replica: B * n values each."""
        for r in which:
            if r.view is not None:
                acts = [a[r.index] for a in tensors.outputs]
                grads = [g if g is None else g[r.index] for g in tensors.grads]
                show_pass(r.view, step, acts, grads, tensors.batch_size)

    def log_probes(self) -> None:
        """Read the pending probe values back (one copy per probed step) and log them."""
        for at, values, only in self.probed:
            arrays = host_arrays(values)
            for r in self.active() if only is None else only:
                log_probe_rows(r, at, {metric: array[r.index] for metric, array in arrays.items()})
        self.probed.clear()

    def log_evaluation(self, step: int, which: list[Run]) -> list[Run]:
        """Log train and test figures at ``step`` for ``which``; those with a non-finite one."""
        if not which:
            return []
        data = self.data
        self.model.calibrate_batchnorm_(data.x_train, EVAL_CHUNK)
        train = evaluate(self.model, data.x_train, data.y_train, self.loss_name, data.task)
        test = evaluate(self.model, data.x_test, data.y_test, self.loss_name, data.task)
        figures = {**train, **{f"test_{k}": v for k, v in test.items()}}
        broken = []
        for r in which:
            mine = {metric: float(values[r.index]) for metric, values in figures.items()}
            for metric, value in mine.items():
                r.recorder.log(step, NETWORK_LAYER, metric, value)
            r.final.update({f"final_{k}": v for k, v in mine.items()})
            if r.view is not None:
                r.view.scalars(step, mine)
            if not all(math.isfinite(v) for v in mine.values()):
                broken.append(r)
        self.bar.set_postfix(loss=f"{figures['loss'][which[0].index]:.4g}", refresh=False)
        return broken

    def read_batch_losses(self, step: int) -> None:
        """Log the pending batch losses (steps step-len..step-1) of the active runs, and
        note the first non-finite one of each (it ends the run at its next check)."""
        if not self.pending:
            return
        values = torch.stack(self.pending).double().cpu().numpy()  # (steps, R)
        self.pending.clear()
        steps = np.arange(step - len(values), step)
        for r in self.active():
            r.recorder.log(steps, NETWORK_LAYER, "batch_loss", values[:, r.index])
            if r.view is not None:
                for at, value in zip(steps, values[:, r.index], strict=True):
                    r.view.scalars(int(at), {"batch_loss": value})
            bad = np.flatnonzero(~np.isfinite(values[:, r.index]))
            if len(bad) and r.diverged_step is None:
                r.diverged_step = int(steps[bad[0]])
        if self.active():
            self.bar.set_postfix(loss=f"{values[-1, self.active()[0].index]:.4g}", refresh=False)

    def finish(self, which: list[Run], step: int, evaluate_first: bool) -> None:
        """End ``which`` at ``step`` as runs of their own would end: figures, final probe
        (on one more batch each, no update; measuring changes nothing)."""
        if not which:
            return
        if evaluate_first:
            self.log_evaluation(step, which)  # the final figures describe the diverged network
        if step in self.probe_steps:
            with preserved_buffers(self.model):
                self.probe(step, only=which)
            self.optimizer.zero_grad(set_to_none=True)
            self.log_probes()
        for r in which:
            r.active, r.steps_done = False, step
            r.final.update(wall_time_s=time.perf_counter() - self.start, finished_at=now())


def log_probe_rows(run: Run, step: int, rows: dict[str, np.ndarray]) -> None:
    """Log one run's probe values at ``step`` ({metric: values by layer}), with the run-level
    figures they give (:func:`depthlab.probes.note_run_figures`)."""
    for metric, row in rows.items():
        run.recorder.log(step, row_layers(row), metric, row)
    if run.view is not None:
        log_probe_values(run.view, step, rows)
    note_run_figures(run.final, step, rows)
