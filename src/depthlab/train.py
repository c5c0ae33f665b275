"""One readable training loop for a batched model of R runs: data, model, optimiser, records.

Step semantics: step 0 is the network at initialisation; step t is the network after t
updates. ``batch_loss`` at step t is the loss of the mini-batch that update t+1 uses,
computed with the parameters of step t. ``loss``/``accuracy`` (training set) and
``test_loss``/``test_accuracy`` are evaluated on the whole sets at step 0, every
``eval_every`` steps and at the last step, in eval mode (batchnorm uses running averages).
A non-finite loss ends the run with status ``diverged`` at the first step that shows it:
a result, not an error.

Batching: the runs of a group (several seeds of one config with ``replicas``, and several
configs that differ only in per-run keys, see ``depthlab.grouping``) train as one model
with a leading replica dimension. Each run draws its own weights and batches, steps with
its own hyperparameters and logs only its own slice, on its own schedule, so its records
are those of the run trained alone. A run whose loss stops being finite is finished exactly
as it would be alone (final evaluation, final probe) and the others train on.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthlab import locks, theory
from depthlab.config import DTYPES, Config, resolve_device, resolve_loss, validate
from depthlab.data import CLASSIFICATION, DataSet, load_data
from depthlab.grouping import check_batchable
from depthlab.losses import LOSSES, accuracy
from depthlab.model import MLP, preserved_buffers
from depthlab.probes import (
    COSTLY,
    UPDATES,
    Capture,
    batch_objective,
    compute,
    host_arrays,
    probe_names,
    row_layers,
    update_ratio,
)
from depthlab.provenance import finished_rows, now, record_row, set_aside_stale
from depthlab.records import NETWORK_LAYER, RunRecorder
from depthlab.resources import EVAL_CHUNK, check_fits, device_bytes, run_bytes, split
from depthlab.seeding import torch_generator
from depthlab.steps import BatchStream, Stepper, gather
from depthlab.threads import resolve_threads, torch_threads

log = logging.getLogger(__name__)

CHECK_EVERY = 10  # steps between reading the buffered batch losses back from the device


@dataclass(frozen=True)
class Member:
    """One configuration of a group to train: its config, its folder, its label in logs."""

    cfg: Config
    run_dir: Path
    label: str = ""


@dataclass(frozen=True)
class RunResult:
    """A finished configuration: its folder, its record rows (one per replica, in seed order)
    and the trained batched model (in memory only; the records are what is kept), in which
    its runs are the replicas ``indices``. ``model`` is None when the runs were skipped
    because the folder already held their finished records (``resume``)."""

    run_dir: Path
    rows: list[dict[str, Any]]
    model: MLP | None = None
    resumed: bool = False
    indices: tuple[int, ...] = ()

    @property
    def row(self) -> dict[str, Any]:
        """The record row of the first replica (the only one of an ordinary run)."""
        return self.rows[0]

    @property
    def status(self) -> str:
        """The first replica's status."""
        return self.row["status"]


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

    def evaluates_at(self, step: int) -> bool:
        """Whether this run evaluates the whole sets after ``step`` updates."""
        return step % self.cfg.eval_every == 0 or step == self.cfg.steps

    def checks_at(self, step: int) -> bool:
        """Whether this run reads its batch losses back (and ends if it diverged) here."""
        return step % CHECK_EVERY == 0 or self.evaluates_at(step)


def replica_seeds(cfg: Config) -> list[int]:
    """The seeds of a config's replicas: ``seed`` .. ``seed + replicas - 1``. Replica r is the
    same run as ``seed=seed+r replicas=1``: same draw, same batches, same records."""
    return [cfg.seed + r for r in range(cfg.replicas)]


def replica_dirs(cfg: Config, run_dir: Path) -> list[Path]:
    """Where each replica's records go: ``run_dir`` itself for an ordinary run, else one
    sub-folder per replica, ``run_dir/seed=S`` (each a complete run folder)."""
    if cfg.replicas == 1:
        return [run_dir]
    return [run_dir / f"seed={seed}" for seed in replica_seeds(cfg)]


@contextlib.contextmanager
def flush_denormal(enabled: bool) -> Iterator[None]:
    """Flush subnormal floats to zero inside the block, and restore the setting after it.

    Denormal arithmetic made a deep net's CPU step about 4x slower on some processors.
    The flag is per thread and torch's worker threads copy it when they are created, so it
    acts fully only when set before the process's first parallel op: ``python -m
    depthlab.run`` sets it for the whole process before any run when every job asks the
    same, and each run records what was in effect (``denormals_flushed``).
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


def build_model(
    cfg: Config,
    data: DataSet,
    device: torch.device,
    dtype: torch.dtype,
    runs: Sequence[tuple[Config, int]] | None = None,
) -> MLP:
    """The configured MLP with one replica per run, replica r drawn on the CPU in float64
    with its own config's init from the ``init`` stream of its own seed, then moved to
    ``device`` and ``dtype`` (so float32 and float64 runs start from the same net).
    ``runs`` lists (config, seed) per replica; default: ``cfg``'s ``replicas`` seeds."""
    runs = list(runs) if runs is not None else [(cfg, s) for s in replica_seeds(cfg)]
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
        replicas=len(runs),
    )
    model.initialize_(
        [c.init for c, _ in runs],
        [torch_generator(seed, "init") for _, seed in runs],
        [c.branch_scale for c, _ in runs],
    )
    return model.to(device=device, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: MLP, x: torch.Tensor, y: torch.Tensor, loss_name: str, task: str
) -> dict[str, np.ndarray]:
    """Mean loss (and accuracy for classification) over a whole set, per replica (arrays of
    length R), in eval mode, in chunks of ``EVAL_CHUNK`` samples. On a CPU the replicas go
    through a few at a time (:func:`eval_group`): a 32-run batch's layer outputs on the
    whole set are tens of MB, and passes that big ran 3x slower than cache-sized ones."""
    if len(x) == 0:
        return {}
    was_training = model.training
    model.eval()
    step = eval_group(model, x)
    losses, hits = [], []
    for first in range(0, model.replicas, step):
        part = slice(first, min(model.replicas, first + step))
        loss_sum = correct = 0.0
        for start in range(0, len(x), EVAL_CHUNK):
            out = model(x[start : start + EVAL_CHUNK], part)
            target = y[start : start + EVAL_CHUNK]
            n = len(target)
            loss_sum += LOSSES[loss_name](out, target, task).double() * n
            if task == CLASSIFICATION:
                correct += accuracy(out, target).double() * n
        losses.append(loss_sum)
        hits.append(correct)
    model.train(was_training)
    result = {"loss": (torch.cat(losses) / len(x)).cpu().numpy()}
    if task == CLASSIFICATION:
        result["accuracy"] = (torch.cat(hits) / len(x)).cpu().numpy()
    return result


EVAL_BYTES = 4 << 20  # CPU: one layer's output of an evaluation pass at most about this


def eval_group(model: MLP, x: torch.Tensor) -> int:
    """How many replicas an evaluation pass takes at once: all of them on a GPU; on a CPU as
    many as keep one layer's output within ``EVAL_BYTES`` (at least one)."""
    if x.device.type != "cpu":
        return model.replicas
    per_replica = min(len(x), EVAL_CHUNK) * max(model.widths) * x.element_size()
    return max(1, min(model.replicas, EVAL_BYTES // per_replica))


def train(cfg: Config, run_dir: Path | str, label: str = "") -> RunResult:
    """Train one configuration (``replicas`` seeds at once) and write its records into
    ``run_dir`` (one folder per replica when there are several, see :func:`replica_dirs`).

    Validates first (ConfigError before anything is written). With ``resume`` a run whose
    folder already holds its finished records is not trained again; otherwise earlier
    records in the folder are set aside, never mixed in nor deleted. A diverging replica
    ends with status ``diverged`` and the others train on; any other exception (or an
    interrupt) is recorded as ``failed`` with its message and raised again.
    """
    return train_group([Member(cfg, Path(run_dir), label)])[0]


def train_group(
    members: Sequence[Member], label: str = "", locked: bool = False
) -> list[RunResult]:
    """Train several configurations as batched models, one result per member in order.

    The members must differ only in per-run keys (``depthlab.grouping``; ValueError
    otherwise). Each member keeps its own folder and records, equal to those of the member
    trained alone. Members whose finished records are already there are skipped
    (``resume``). The rest train as one batched model, or as several in turn when the
    memory estimate (``depthlab.resources``) of all of them exceeds ``batching.
    memory_fraction`` of the device's memory. A failed batched model's runs are recorded as
    ``failed``, the other batched models still train, and the first exception is raised.

    Nothing is written before every config is valid, fits its device
    (``resources.check_fits``) and every member's folder is locked for this process
    (``depthlab.locks``; FolderLockedError when another holds one past ``lock_timeout``), unless
    the caller holds the locks already (``locked``).
    """
    members = [Member(m.cfg, Path(m.run_dir), m.label) for m in members]
    for m in members:
        validate(m.cfg)
        check_fits(m.cfg)
    check_batchable([m.cfg for m in members])
    folders = [] if locked else [m.run_dir for m in members]
    with locks.locked(folders, members[0].cfg.lock_timeout):
        return _train_members(members, label)


def _train_members(members: list[Member], label: str) -> list[RunResult]:
    """train_group's work, once its folders are locked."""
    shared = members[0].cfg
    device, dtype = resolve_device(shared.device), DTYPES[shared.dtype]
    results: dict[int, RunResult] = {}
    todo = []
    for i, m in enumerate(members):
        rows = (
            finished_rows(m.cfg, replica_dirs(m.cfg, m.run_dir), replica_seeds(m.cfg))
            if m.cfg.resume
            else None
        )
        if rows is not None:
            log.info("%s: finished before in %s, not run again", m.label or "run", m.run_dir)
            results[i] = RunResult(m.run_dir, rows, None, resumed=True)
        else:
            todo.append(i)
    if todo:
        data = load_data(shared.data, device, dtype)
        per_run = run_bytes(shared, data.num_inputs, data.num_outputs, data.num_train)
        total = device_bytes(device)
        capacity = None if total is None else int(total * shared.batching.memory())
        sizes = [members[i].cfg.replicas for i in todo]
        failure: BaseException | None = None
        for chunk in split(sizes, shared.batching.max_runs(), per_run, capacity):
            chosen = [todo[c] for c in chunk]
            try:
                trained = _train_batch([members[i] for i in chosen], data, device, dtype, label)
            except Exception as exc:  # recorded as failed; the other batches still train
                failure = failure or exc
                continue
            results.update(zip(chosen, trained, strict=True))
        if failure is not None:
            raise failure
    return [results[i] for i in range(len(members))]


def _train_batch(
    members: list[Member], data: DataSet, device: torch.device, dtype: torch.dtype, label: str
) -> list[RunResult]:
    """Train ``members`` as one batched model and finish every run's records."""
    shared = members[0].cfg
    for m in members:
        set_aside_stale(m.run_dir)
    total = sum(m.cfg.replicas for m in members)
    flops = 2 * total * min(shared.batch_size, data.num_train) * shared.width**2
    threads = resolve_threads(shared.threads, device, flops)  # idle cores unless set
    with flush_denormal(shared.flush_denormal and device.type == "cpu"), torch_threads(threads):
        start = time.perf_counter()
        runs: list[Run] = []
        if not label:
            label = members[0].label if len(members) == 1 else f"{total} runs batched"
        try:
            for k, m in enumerate(members):
                for seed, folder in zip(
                    replica_seeds(m.cfg), replica_dirs(m.cfg, m.run_dir), strict=True
                ):
                    row = record_row(m.cfg, device, uuid.uuid4().hex[:12], seed, total)
                    runs.append(Run(len(runs), k, m.cfg, seed, RunRecorder(folder, row, seed)))
            model, captured = _train(shared, runs, data, device, dtype, label)
            rows = [
                run.recorder.finish(
                    "ok" if run.diverged_step is None else "diverged",
                    wall_time_s=run.final.pop("wall_time_s"),
                    finished_at=run.final.pop("finished_at"),
                    steps_done=run.steps_done,
                    diverged_step=run.diverged_step,
                    theory=theory_reason(shared) or "mean_field",
                    cuda_graph_resolved=captured,
                    **run.final,
                )
                for run in runs
            ]
        except BaseException as exc:
            record_failure(runs, exc, time.perf_counter() - start)
            raise
    return [
        RunResult(
            m.run_dir,
            [row for run, row in zip(runs, rows, strict=True) if run.member == k],
            model,
            indices=tuple(run.index for run in runs if run.member == k),
        )
        for k, m in enumerate(members)
    ]


def record_failure(runs: list[Run], exc: BaseException, seconds: float) -> None:
    """Mark every run of a batched model that raised ``exc`` as ``failed`` with its message,
    and log one line per run saying what its records now say: ``failed``, or, where that
    could not be written (a full disk), that its run.parquet still says ``running``."""
    for run in runs:
        if run.recorder.written_status != "running":
            continue  # finished and written before the failure: its records stand
        try:
            run.recorder.finish(
                "failed",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                wall_time_s=seconds,
                finished_at=now(),
            )
        except Exception as failure:  # keep the original error the one raised
            log.error(
                "%s: could not record the failure (%s); its run.parquet still says running",
                run.recorder.run_dir,
                failure,
            )
        else:
            log.error("%s: its records say status=failed (%s)", run.recorder.run_dir, exc)


def theory_reason(cfg: Config) -> str:
    """'' when mean-field theory predicts this network's deltas, else why it does not."""
    if cfg.norm != "none":
        return f"not applicable: {cfg.norm} (the theory covers plain affine layers)"
    if cfg.residual:
        return "not applicable: residual (per-block growth only: theory.residual_growth)"
    return ""


def log_prediction(cfg: Config, model: MLP, data: DataSet, recorders: list[RunRecorder]) -> None:
    """Mean-field predictions at step 0 for runs of ``cfg``'s init: ``predicted_delta_ratio``
    (l = 1..L-1) and ``predicted_log_delta_norm`` (ln ||delta^l|| - ln ||delta^L||)."""
    fans = list(itertools.pairwise(model.widths))
    sigma_w2, sigma_b2 = zip(*(cfg.init.mean_field(i, o) for i, o in fans), strict=True)
    q1 = theory.input_length(sigma_w2[0], sigma_b2[0], float(data.x_train.double().pow(2).mean()))
    ratios, log_norms = theory.delta_profile(cfg.activation, list(sigma_w2), list(sigma_b2), q1)
    layers = np.arange(1, model.num_layers + 1)
    for recorder in recorders:
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
    cfg: Config,
    runs: list[Run],
    data: DataSet,
    device: torch.device,
    dtype: torch.dtype,
    label: str,
) -> tuple[MLP, bool]:
    """The loop over a batched model of ``runs`` (``cfg``: their shared keys). Every run
    shares every pass but logs only its own slice on its own schedule. Returns the model and
    whether unprobed steps replayed a CUDA graph."""
    start = time.perf_counter()
    model = build_model(cfg, data, device, dtype, [(r.cfg, r.seed) for r in runs])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = cfg.optimizer.batched(
        trainable, [r.cfg.optimizer for r in runs], [r.cfg.lr for r in runs]
    )
    loss_name = resolve_loss(cfg)
    loss_fn = LOSSES[loss_name]
    stream = BatchStream(
        data.num_train,
        cfg.batch_size,
        [torch_generator(r.seed, "batches", device) for r in runs],
        device,
    )
    # unprobed steps may run compiled or captured; probed ones need the hooks: eager
    stepper = Stepper(
        torch.compile(model) if cfg.compile else model,
        model,
        optimizer,
        lambda out, y: loss_fn(out, y, data.task),
        data,
        capture=cfg.cuda_graph and device.type == "cuda" and not cfg.compile,
    )
    if not theory_reason(cfg):
        by_init: dict[str, list[RunRecorder]] = {}
        for r in runs:
            by_init.setdefault(repr(r.cfg.init), []).append(r.recorder)
        for r in runs:
            if repr(r.cfg.init) in by_init:
                log_prediction(r.cfg, model, data, by_init.pop(repr(r.cfg.init)))
    pending: list[torch.Tensor] = []  # per-run batch losses not yet read back
    probe_steps = cfg.probes.steps(cfg.steps)
    costly_steps = cfg.probes.costly_steps(cfg.steps)
    probes = probe_names(cfg.probes.names) if probe_steps else []
    # probe values not yet logged: (step, values, the runs they are for; None: active)
    probed: list[tuple[int, dict[str, torch.Tensor], list[Run] | None]] = []
    layers = np.arange(1, model.num_layers + 1)

    def active() -> list[Run]:
        return [r for r in runs if r.active]

    def backward(step: int, only: list[Run] | None = None) -> torch.Tensor:
        """A probed forward and backward pass on the step's batches; the per-run losses."""
        x, y = gather(data, stream.batch(step))
        with Capture(model) as capture:
            losses = loss_fn(model(x), y, data.task)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
        names = probes if step in costly_steps else [n for n in probes if n not in COSTLY]

        objective = batch_objective(lambda out, target: loss_fn(out, target, data.task), x, y)
        probed.append((step, compute(model, capture.tensors, names, objective), only))
        return losses.detach()

    def weights() -> list[torch.Tensor]:
        return [model.layer(l).linear.weight.detach().clone() for l in layers]

    def log_probes() -> None:
        """Read the pending probe values back (one copy per probed step) and log them."""
        for at, values, only in probed:
            arrays = host_arrays(values)
            for r in active() if only is None else only:
                log_probe_rows(r, at, {metric: array[r.index] for metric, array in arrays.items()})
        probed.clear()

    def log_evaluation(step: int, which: list[Run]) -> list[Run]:
        """Log train and test figures at ``step`` for ``which``; those with a non-finite one."""
        if not which:
            return []
        model.calibrate_batchnorm_(data.x_train, EVAL_CHUNK)
        train_fig = evaluate(model, data.x_train, data.y_train, loss_name, data.task)
        test_fig = evaluate(model, data.x_test, data.y_test, loss_name, data.task)
        figures = {**train_fig, **{f"test_{k}": v for k, v in test_fig.items()}}
        broken = []
        for r in which:
            mine = {metric: float(values[r.index]) for metric, values in figures.items()}
            for metric, value in mine.items():
                r.recorder.log(step, NETWORK_LAYER, metric, value)
            r.final.update({f"final_{k}": v for k, v in mine.items()})
            if not all(math.isfinite(v) for v in mine.values()):
                broken.append(r)
        bar.set_postfix(loss=f"{figures['loss'][which[0].index]:.4g}", refresh=False)
        return broken

    def read_batch_losses(step: int) -> None:
        """Log the pending batch losses (steps step-len..step-1) of the active runs, and
        note the first non-finite one of each (it ends the run at its next check)."""
        if not pending:
            return
        values = torch.stack(pending).double().cpu().numpy()  # (steps, R)
        pending.clear()
        steps = np.arange(step - len(values), step)
        for r in active():
            r.recorder.log(steps, NETWORK_LAYER, "batch_loss", values[:, r.index])
            bad = np.flatnonzero(~np.isfinite(values[:, r.index]))
            if len(bad) and r.diverged_step is None:
                r.diverged_step = int(steps[bad[0]])
        if active():
            bar.set_postfix(loss=f"{values[-1, active()[0].index]:.4g}", refresh=False)

    def probe_final(step: int, which: list[Run]) -> None:
        """Probe the network at ``step`` for ``which`` on one more batch each, no update."""
        if step not in probe_steps or not which:
            return
        with preserved_buffers(model):  # measuring changes nothing
            backward(step, only=which)
        optimizer.zero_grad(set_to_none=True)
        log_probes()

    def finish(which: list[Run], step: int, evaluate_first: bool) -> None:
        """End ``which`` at ``step`` as runs of their own would end: figures, final probe."""
        if not which:
            return
        if evaluate_first:
            log_evaluation(step, which)  # the final figures describe the diverged network
        probe_final(step, which)
        for r in which:
            r.active, r.steps_done = False, step
            r.final.update(wall_time_s=time.perf_counter() - start, finished_at=now())

    bar = tqdm(
        total=cfg.steps,
        desc=label or f"depth={cfg.depth}",
        unit="step",
        disable=None,
        dynamic_ncols=True,
        leave=True,
    )
    with bar:
        broken = log_evaluation(0, runs)
        for r in broken:
            r.diverged_step = 0
        for r in runs:  # the network at initialisation is on disk before the first update
            r.recorder.flush()
        finish(broken, 0, evaluate_first=False)
        step = 0
        while active() and step < cfg.steps:
            if step in probe_steps:
                losses = backward(step)
                before = weights() if UPDATES in probes else None
                optimizer.step()
                if before is not None:
                    probed[-1][1].update(update_ratio(model, before))
            else:
                losses = stepper(stream.batch(step))
            pending.append(losses)
            step += 1
            bar.update()
            checking = [r for r in active() if r.checks_at(step)]
            if checking:
                read_batch_losses(step)
                log_probes()
                finish([r for r in checking if r.diverged_step is not None], step, True)
            evaluating = [r for r in active() if r.evaluates_at(step)]
            if evaluating:
                broken = log_evaluation(step, evaluating)
                for r in broken:
                    r.diverged_step = step
                finish(broken, step, evaluate_first=False)
            if evaluating and runs[0].recorder.seconds_since_flush() > cfg.flush_seconds:
                for r in runs:
                    r.recorder.flush()
        finish(active(), step, evaluate_first=False)  # the final network
    return model, stepper.captured


def log_probe_rows(run: Run, step: int, rows: dict[str, np.ndarray]) -> None:
    """Log one run's probe values at ``step`` ({metric: values by layer}), with the run-level
    figures they give: the delta ratio at the first and last probed step, and where a pass
    first broke."""
    for metric, row in rows.items():
        run.recorder.log(step, row_layers(row), metric, row)
    final = run.final
    if "delta_norm" in rows:
        ratio = float(rows["delta_norm"][0] / rows["delta_norm"][-1])
        final.setdefault("delta_ratio_initial", ratio)  # the first probed step: 0
        final["delta_ratio_final"] = ratio
    layer = first_nonfinite_layer(rows.get("preact_nonfinite"), rows.get("delta_nonfinite"))
    if layer is not None and "nonfinite_step" not in final:
        final.update(nonfinite_step=step, nonfinite_layer=layer)
