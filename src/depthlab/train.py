"""One readable training loop: data, model, optimiser, records.

Step semantics: step 0 is the network at initialisation; step t is the network after t
updates. ``batch_loss`` at step t is the loss of the mini-batch that update t+1 uses,
computed with the parameters of step t. ``loss``/``accuracy`` (training set) and
``test_loss``/``test_accuracy`` are evaluated on the whole sets at step 0, every
``eval_every`` steps and at the last step, in eval mode (batchnorm uses running averages).
A non-finite loss ends the run with status ``diverged`` at the first step that shows it:
a result, not an error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import itertools
import logging
import math
import platform
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthlab import theory
from depthlab.config import DTYPES, Config, resolve_device, resolve_loss, validate
from depthlab.data import CLASSIFICATION, DataSet, load_data
from depthlab.losses import LOSSES, accuracy
from depthlab.model import MLP, preserved_buffers
from depthlab.probes import (
    COSTLY,
    UPDATES,
    Capture,
    compute,
    host_rows,
    probe_names,
    row_layers,
    update_ratio,
)
from depthlab.records import NETWORK_LAYER, RunRecorder
from depthlab.seeding import torch_generator

log = logging.getLogger(__name__)

VERSIONED = ("depthlab", "torch", "numpy", "hydra-core", "omegaconf", "pandas", "pyarrow")
EVAL_CHUNK = 8192  # samples per forward pass when evaluating a whole set
CHECK_EVERY = 10  # steps between reading the buffered batch losses back from the device
FLUSH_SECONDS = 10.0  # at most this long between record flushes (at evaluation steps)


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, its record row (status, final figures, config columns)
    and the trained model (in memory only; the records are what is kept)."""

    run_dir: Path
    row: dict[str, Any]
    model: MLP | None = None

    @property
    def status(self) -> str:
        return self.row["status"]


@contextlib.contextmanager
def flush_denormal(enabled: bool) -> Iterator[None]:
    """Flush subnormal floats to zero inside the block, and restore the setting after it.

    Denormal arithmetic made a deep net's CPU step about 4x slower on some processors
    (environment.md). The flag is per thread and torch's worker threads copy it when they
    are created, so it acts fully only when set before the process's first parallel op:
    ``python -m depthlab.run`` sets it for the whole process before any run when every job
    asks the same, and each run records what was in effect (:func:`denormals_flushed`).
    """
    if not enabled:
        yield
        return
    previous = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


def flushing_denormals() -> bool:
    """Whether this thread flushes subnormals: 1e-20 * 1e-20 (subnormal in float32) gives 0."""
    tiny = torch.tensor([1e-20], dtype=torch.float32)
    return bool((tiny * tiny).item() == 0.0)


def denormals_flushed() -> float:
    """The fraction of a parallel CPU op's subnormal results flushed to zero, in [0, 1].

    The flag is per thread: 1.0 means every intra-op thread flushes, 0.0 none; values in
    between mean that only some threads do (the flag was changed after the thread pool
    started). Recorded with every run as what was in effect, whatever was asked.
    """
    tiny = torch.full((1 << 20,), 1e-20, dtype=torch.float32)
    return float(((tiny * tiny) == 0).float().mean())


def build_model(cfg: Config, data: DataSet, device: torch.device, dtype: torch.dtype) -> MLP:
    """The configured MLP, drawn on the CPU in float64 from the run's ``init`` stream, then
    moved to ``device`` and ``dtype`` (so float32 and float64 runs start from the same net)."""
    model = MLP(
        data.num_inputs,
        data.num_outputs,
        depth=cfg.depth,
        width=cfg.width,
        activation=cfg.activation,
        output_activation=cfg.output_activation,
        residual=cfg.residual,
        branch_scale=cfg.branch_scale,
        norm=cfg.norm,
    )
    model.initialize_(cfg.init, [torch_generator(cfg.seed, "init")])
    return model.to(device=device, dtype=dtype)


def batch_indices(
    num_samples: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor | None]:
    """Mini-batch indices, epoch after epoch: each epoch a fresh permutation cut into full
    batches (a last partial batch is dropped). ``None`` means the full batch, in order."""
    if batch_size >= num_samples:
        while True:
            yield None
    per_epoch = num_samples // batch_size
    while True:
        order = torch.randperm(num_samples, generator=generator, device=device)
        yield from order[: per_epoch * batch_size].view(per_epoch, batch_size)


@torch.no_grad()
def evaluate(
    model: MLP, x: torch.Tensor, y: torch.Tensor, loss_name: str, task: str
) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over a whole set, replica 0, eval mode."""
    if len(x) == 0:
        return {}
    was_training = model.training
    model.eval()
    loss_sum = correct = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        out = model(x[start : start + EVAL_CHUNK])
        target = y[start : start + EVAL_CHUNK]
        n = len(target)
        loss_sum += LOSSES[loss_name](out, target, task)[0].double() * n
        if task == CLASSIFICATION:
            correct += accuracy(out, target)[0].double() * n
    model.train(was_training)
    result = {"loss": float(loss_sum / len(x))}
    if task == CLASSIFICATION:
        result["accuracy"] = float(correct / len(x))
    return result


def record_row(cfg: Config, device: torch.device, run_id: str) -> dict[str, Any]:
    """The run.parquet row at the start: config columns (as on the command line, so
    ``device`` may say auto), what they resolved to (``device_resolved``,
    ``loss_resolved``), the denormal mode in effect, and the environment."""
    row: dict[str, Any] = {"run_id": run_id}
    for key, value in asdict(cfg).items():
        if isinstance(value, dict):  # a group: its chosen option, then its fields
            row[key] = value.pop("name")
            row.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            row[key] = value
    row.update(
        loss_resolved=resolve_loss(cfg),
        device_resolved=str(device),
        device_name=(
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        denormals_flushed=denormals_flushed() if device.type == "cpu" else None,
        threads=torch.get_num_threads(),
        started_at=_now(),
        python_version=platform.python_version(),
    )
    row.update({f"{name.split('-')[0]}_version": _version(name) for name in VERSIONED})
    return row


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def train(cfg: Config, run_dir: Path | str, label: str = "") -> RunResult:
    """Train one configuration and write its records into ``run_dir``.

    Validates first (ConfigError before anything is written). A diverging run ends with
    status ``diverged``; any other exception (or an interrupt) is recorded as ``failed``
    with its message and then raised again.
    """
    validate(cfg)
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.dtype]
    run_dir = Path(run_dir)
    with flush_denormal(cfg.flush_denormal and device.type == "cpu"):
        start = time.perf_counter()
        recorder = RunRecorder(run_dir, record_row(cfg, device, uuid.uuid4().hex[:12]), cfg.seed)
        try:
            model, outcome = _train(cfg, recorder, device, dtype, label)
        except BaseException as exc:
            try:
                recorder.finish(
                    "failed",
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                    wall_time_s=time.perf_counter() - start,
                    finished_at=_now(),
                )
            except Exception:  # keep the original error the one raised
                log.exception("could not record the failure of the run in %s", run_dir)
            raise
        status = outcome.pop("status")
        row = recorder.finish(
            status, wall_time_s=time.perf_counter() - start, finished_at=_now(), **outcome
        )
    return RunResult(run_dir, row, model)


def theory_reason(cfg: Config) -> str:
    """'' when mean-field theory predicts this network's deltas, else why it does not."""
    if cfg.norm != "none":
        return f"not applicable: {cfg.norm} (the theory covers plain affine layers)"
    if cfg.residual:
        return "not applicable: residual (per-block growth only: theory.residual_growth)"
    return ""


def log_prediction(cfg: Config, model: MLP, data: DataSet, recorder: RunRecorder) -> None:
    """Mean-field predictions at step 0: ``predicted_delta_ratio`` (l = 1..L-1) and
    ``predicted_log_delta_norm`` (ln ||delta^l|| - ln ||delta^L||, l = 1..L)."""
    fans = list(itertools.pairwise(model.widths))
    sigma_w2, sigma_b2 = zip(*(cfg.init.mean_field(i, o) for i, o in fans), strict=True)
    q1 = theory.input_length(sigma_w2[0], sigma_b2[0], float(data.x_train.double().pow(2).mean()))
    ratios, log_norms = theory.delta_profile(cfg.activation, list(sigma_w2), list(sigma_b2), q1)
    layers = np.arange(1, model.num_layers + 1)
    recorder.log(0, layers[:-1], "predicted_delta_ratio", ratios)
    recorder.log(0, layers, "predicted_log_delta_norm", log_norms)


def first_nonfinite_layer(preact: np.ndarray | None, delta: np.ndarray | None) -> int | None:
    """Where a pass first breaks: the lowest layer with a NaN/inf pre-activation (forward
    order), else the highest layer with a NaN/inf delta (backward order), else None."""
    forward = np.flatnonzero(preact) if preact is not None else []
    if len(forward):
        return int(forward[0]) + 1
    backward = np.flatnonzero(delta) if delta is not None else []
    return int(backward[-1]) + 1 if len(backward) else None


def _train(
    cfg: Config, recorder: RunRecorder, device: torch.device, dtype: torch.dtype, label: str
) -> tuple[MLP, dict[str, Any]]:
    data = load_data(cfg.data, device, dtype)
    model = build_model(cfg, data, device, dtype)
    optimizer = cfg.optimizer.build(model.parameters(), cfg.lr)
    if not theory_reason(cfg):
        log_prediction(cfg, model, data, recorder)
    loss_name = resolve_loss(cfg)
    loss_fn = LOSSES[loss_name]
    batches = batch_indices(
        data.num_train, cfg.batch_size, torch_generator(cfg.seed, "batches", device), device
    )
    final: dict[str, float] = {}
    pending: list[torch.Tensor] = []  # batch losses not yet read back from the device
    probe_steps = cfg.probes.steps(cfg.steps)
    costly_steps = cfg.probes.costly_steps(cfg.steps)
    probes = probe_names(cfg.probes.names) if probe_steps else []
    probed: list[tuple[int, dict[str, torch.Tensor]]] = []  # probe values not yet logged
    layers = np.arange(1, model.num_layers + 1)

    def backward(x: torch.Tensor, y: torch.Tensor, probe: bool) -> torch.Tensor:
        """Forward and backward on one batch (probing when asked); the per-replica losses."""
        with Capture(model) if probe else contextlib.nullcontext() as capture:
            losses = loss_fn(model(x), y, data.task)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
        if probe:
            names = probes if step in costly_steps else [n for n in probes if n not in COSTLY]

            def objective() -> torch.Tensor:
                return loss_fn(model(x), y, data.task)

            probed.append((step, compute(model, capture.tensors, names, objective)))
        return losses

    def weights() -> list[torch.Tensor]:
        return [model.layer(l).linear.weight.detach().clone() for l in layers]

    def log_probes() -> None:
        """Read the pending probe values back (one copy per probed step) and log them."""
        for at, values in probed:
            rows = host_rows(values)  # replica 0
            for metric, row in rows.items():
                recorder.log(at, row_layers(row), metric, row)
            if "delta_norm" in rows:
                ratio = float(rows["delta_norm"][0] / rows["delta_norm"][-1])
                final.setdefault("delta_ratio_initial", ratio)  # the first probed step: 0
                final["delta_ratio_final"] = ratio
            layer = first_nonfinite_layer(rows.get("preact_nonfinite"), rows.get("delta_nonfinite"))
            if layer is not None and "nonfinite_step" not in final:
                final.update(nonfinite_step=at, nonfinite_layer=layer)
        probed.clear()

    def log_evaluation(step: int) -> bool:
        """Log train and test figures at ``step``; False when a loss is not finite."""
        model.calibrate_batchnorm_(data.x_train, EVAL_CHUNK)
        train_fig = evaluate(model, data.x_train, data.y_train, loss_name, data.task)
        test_fig = evaluate(model, data.x_test, data.y_test, loss_name, data.task)
        figures = {**train_fig, **{f"test_{k}": v for k, v in test_fig.items()}}
        for metric, value in figures.items():
            recorder.log(step, NETWORK_LAYER, metric, value)
        final.update({f"final_{k}": v for k, v in figures.items()})
        bar.set_postfix(loss=f"{figures['loss']:.4g}", refresh=False)
        return all(math.isfinite(v) for v in figures.values())

    def read_batch_losses(step: int) -> int | None:
        """Log the pending batch losses (steps step-len..step-1); the first bad step or None."""
        values = torch.stack(pending)[:, 0].double().cpu().numpy()  # replica 0
        pending.clear()
        steps = np.arange(step - len(values), step)
        recorder.log(steps, NETWORK_LAYER, "batch_loss", values)
        bad = np.flatnonzero(~np.isfinite(values))
        bar.set_postfix(loss=f"{values[-1]:.4g}", refresh=False)
        return int(steps[bad[0]]) if len(bad) else None

    bar = tqdm(
        total=cfg.steps,
        desc=label or f"depth={cfg.depth}",
        unit="step",
        disable=None,
        dynamic_ncols=True,
        leave=True,
    )
    with bar:
        diverged_step = None if log_evaluation(0) else 0
        recorder.flush()  # the network at initialisation is on disk before the first update
        step = 0
        while diverged_step is None and step < cfg.steps:
            index = next(batches)
            x, y = (
                (data.x_train, data.y_train)
                if index is None
                else (data.x_train[index], data.y_train[index])
            )
            probing = step in probe_steps
            losses = backward(x, y, probe=probing)
            before = weights() if probing and UPDATES in probes else None
            optimizer.step()
            if before is not None:
                probed[-1][1].update(update_ratio(model, before))
            pending.append(losses.detach())
            step += 1
            bar.update()
            evaluation_due = step % cfg.eval_every == 0 or step == cfg.steps
            if evaluation_due or step % CHECK_EVERY == 0:
                diverged_step = read_batch_losses(step)
                log_probes()
            if diverged_step is not None:
                log_evaluation(step)  # the final figures describe the diverged network
            elif evaluation_due and not log_evaluation(step):
                diverged_step = step
            if evaluation_due and recorder.seconds_since_flush() > FLUSH_SECONDS:
                recorder.flush()
        if step in probe_steps:  # the final network, diverged or not
            index = next(batches)  # probe the final network on one more batch, no update
            x, y = (
                (data.x_train, data.y_train)
                if index is None
                else (data.x_train[index], data.y_train[index])
            )
            # the model returned must be the one the final figures describe
            with preserved_buffers(model):
                backward(x, y, probe=True)
            optimizer.zero_grad(set_to_none=True)
        log_probes()
    status = "ok" if diverged_step is None else "diverged"
    final["theory"] = theory_reason(cfg) or "mean_field"
    return model, {"status": status, "steps_done": step, "diverged_step": diverged_step, **final}
