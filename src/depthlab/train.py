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
from dataclasses import asdict, dataclass, field
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
    host_arrays,
    probe_names,
    row_layers,
    update_ratio,
)
from depthlab.records import NETWORK_LAYER, RunRecorder, read_run, set_aside_previous
from depthlab.seeding import torch_generator

log = logging.getLogger(__name__)

VERSIONED = ("depthlab", "torch", "numpy", "hydra-core", "omegaconf", "pandas", "pyarrow")
EVAL_CHUNK = 8192  # samples per forward pass when evaluating a whole set
CHECK_EVERY = 10  # steps between reading the buffered batch losses back from the device


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder, its record rows (one per replica, in seed order) and the
    trained model (in memory only; the records are what is kept). ``model`` is None when
    the run was skipped because its folder already held its finished records (``resume``)."""

    run_dir: Path
    rows: list[dict[str, Any]]
    model: MLP | None = None
    resumed: bool = False

    @property
    def row(self) -> dict[str, Any]:
        """The record row of the first replica (the only one of an ordinary run)."""
        return self.rows[0]

    @property
    def status(self) -> str:
        """The first replica's status."""
        return self.row["status"]


@dataclass
class Replica:
    """One seed of a run (R replicas train as one batched model): where its records go,
    its own stream of mini-batches, and how it is doing."""

    index: int  # position r in the batched model
    seed: int
    recorder: RunRecorder
    batches: Iterator[torch.Tensor | None] | None = None  # set once the data are loaded
    final: dict[str, Any] = field(default_factory=dict)  # the run row's final fields
    diverged_step: int | None = None
    steps_done: int = 0
    active: bool = True  # still training: not diverged


def replica_seeds(cfg: Config) -> list[int]:
    """The seeds of a run's replicas: ``seed`` .. ``seed + replicas - 1``. Replica r is the
    same run as ``seed=seed+r replicas=1``: same draw, same batches, same records."""
    return [cfg.seed + r for r in range(cfg.replicas)]


def replica_dirs(cfg: Config, run_dir: Path) -> list[Path]:
    """Where each replica's records go: ``run_dir`` itself for an ordinary run, else one
    sub-folder per replica, ``run_dir/seed=S`` (each a complete run folder)."""
    if cfg.replicas == 1:
        return [run_dir]
    return [run_dir / f"seed={seed}" for seed in replica_seeds(cfg)]


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` intra-op threads inside the block (0: leave torch's setting, which
    honours OMP_NUM_THREADS), and restore the previous count after it."""
    if threads <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    """The configured MLP with ``cfg.replicas`` replicas, replica r drawn on the CPU in
    float64 from the ``init`` stream of seed ``seed + r``, then moved to ``device`` and
    ``dtype`` (so float32 and float64 runs start from the same net)."""
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
        replicas=cfg.replicas,
    )
    model.initialize_(cfg.init, [torch_generator(seed, "init") for seed in replica_seeds(cfg)])
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


def draw_batch(
    data: DataSet, replicas: list[Replica], drawing: list[Replica]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next mini-batch of every replica in ``drawing``, each from its own stream, as
    x (R, B, d) and y (R, B); replicas not drawing get the first drawer's batch (their pass
    is not recorded). The full training set (B, d) when batches cover it."""
    indices = {r.index: next(r.batches) for r in drawing}
    first = next(iter(indices.values()))
    if first is None:
        return data.x_train, data.y_train
    index = torch.stack([indices.get(r.index, first) for r in replicas])
    return data.x_train[index], data.y_train[index]


@torch.no_grad()
def evaluate(
    model: MLP, x: torch.Tensor, y: torch.Tensor, loss_name: str, task: str
) -> dict[str, np.ndarray]:
    """Mean loss (and accuracy for classification) over a whole set, per replica (arrays of
    length R), in eval mode."""
    if len(x) == 0:
        return {}
    was_training = model.training
    model.eval()
    loss_sum = correct = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        out = model(x[start : start + EVAL_CHUNK])
        target = y[start : start + EVAL_CHUNK]
        n = len(target)
        loss_sum += LOSSES[loss_name](out, target, task).double() * n
        if task == CLASSIFICATION:
            correct += accuracy(out, target).double() * n
    model.train(was_training)
    result = {"loss": (loss_sum / len(x)).cpu().numpy()}
    if task == CLASSIFICATION:
        result["accuracy"] = (correct / len(x)).cpu().numpy()
    return result


def config_columns(cfg: Config, seed: int) -> dict[str, Any]:
    """The run row's config columns, named as on the command line: a group gives its
    chosen option (``init``) and its fields (``init.sigma_w2``); ``seed`` is the replica's."""
    row: dict[str, Any] = {}
    for key, value in asdict(cfg).items():
        if isinstance(value, dict):  # a group: its chosen option, then its fields
            row[key] = value.pop("name")
            row.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            row[key] = value
    row["seed"] = seed
    return row


def record_row(cfg: Config, device: torch.device, run_id: str, seed: int) -> dict[str, Any]:
    """The run.parquet row at the start: config columns (as on the command line, so
    ``device`` may say auto; ``seed`` the replica's), what they resolved to
    (``device_resolved``, ``loss_resolved``, ``threads_resolved``), the denormal mode in
    effect, and the environment."""
    row: dict[str, Any] = {"run_id": run_id, **config_columns(cfg, seed)}
    row.update(
        loss_resolved=resolve_loss(cfg),
        device_resolved=str(device),
        device_name=(
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        denormals_flushed=denormals_flushed() if device.type == "cpu" else None,
        threads_resolved=torch.get_num_threads(),
        started_at=_now(),
        python_version=platform.python_version(),
    )
    row.update({f"{name.split('-')[0]}_version": _version(name) for name in VERSIONED})
    return row


# Keys that change how a run is carried out, not what it computes: a finished run counts
# as the same run whatever they were.
HOW_KEYS = ("resume", "threads", "flush_seconds")


def finished_rows(cfg: Config, run_dir: Path) -> list[dict[str, Any]] | None:
    """The records of ``cfg`` already finished in ``run_dir``, one row per replica, when
    every replica's run.parquet says ``ok`` or ``diverged`` (a result: training again would
    repeat it) for exactly this configuration; None when anything must run (again).
    A ``running`` record is a run that was killed; ``failed`` ones are retried."""
    rows = []
    for folder, seed in zip(replica_dirs(cfg, run_dir), replica_seeds(cfg), strict=True):
        try:
            row = read_run(folder)
        except Exception:  # missing, or not readable: it must run
            return None
        wanted = config_columns(cfg, seed)
        same = all(
            _plain(row.get(key)) == _plain(value)
            for key, value in wanted.items()
            if key not in HOW_KEYS
        )
        if row["status"] not in ("ok", "diverged") or not same:
            return None
        rows.append(row)
    return rows


def _plain(value: Any) -> Any:
    """Tuples as lists, as parquet gives them back."""
    return list(value) if isinstance(value, tuple) else value


def set_aside_stale(run_dir: Path) -> None:
    """Move the records of an earlier run in ``run_dir`` (and in its ``seed=S`` replica
    folders) into hidden ``.superseded`` folders, so a new run's folder holds only its own
    runs: never mixed, never deleted (see records.set_aside_previous)."""
    for folder in [run_dir, *sorted(run_dir.glob("seed=*"))]:
        set_aside_previous(folder)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def train(cfg: Config, run_dir: Path | str, label: str = "") -> RunResult:
    """Train one configuration (``replicas`` seeds at once) and write its records into
    ``run_dir`` (one folder per replica when there are several, see :func:`replica_dirs`).

    Validates first (ConfigError before anything is written). With ``resume`` a run whose
    folder already holds its finished records is not trained again (:func:`finished_rows`);
    otherwise earlier records in the folder are set aside, never mixed in nor deleted. A
    diverging replica ends with status ``diverged`` and the others train on; any other
    exception (or an interrupt) is recorded as ``failed`` with its message and raised again.
    """
    validate(cfg)
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.dtype]
    run_dir = Path(run_dir)
    if cfg.resume and (rows := finished_rows(cfg, run_dir)) is not None:
        log.info("%s: finished before in %s, not run again", label or "run", run_dir)
        return RunResult(run_dir, rows, None, resumed=True)
    set_aside_stale(run_dir)
    with flush_denormal(cfg.flush_denormal and device.type == "cpu"), torch_threads(cfg.threads):
        start = time.perf_counter()
        replicas = [
            Replica(
                index,
                seed,
                RunRecorder(folder, record_row(cfg, device, uuid.uuid4().hex[:12], seed), seed),
            )
            for index, (seed, folder) in enumerate(
                zip(replica_seeds(cfg), replica_dirs(cfg, run_dir), strict=True)
            )
        ]
        try:
            model = _train(cfg, replicas, device, dtype, label)
        except BaseException as exc:
            for replica in replicas:
                try:
                    replica.recorder.finish(
                        "failed",
                        error=f"{type(exc).__name__}: {exc}"[:2000],
                        wall_time_s=time.perf_counter() - start,
                        finished_at=_now(),
                    )
                except Exception:  # keep the original error the one raised
                    log.exception("could not record the failure of the run in %s", run_dir)
            raise
        wall_time = time.perf_counter() - start
        rows = [
            r.recorder.finish(
                "ok" if r.diverged_step is None else "diverged",
                wall_time_s=wall_time,
                finished_at=_now(),
                steps_done=r.steps_done,
                diverged_step=r.diverged_step,
                theory=theory_reason(cfg) or "mean_field",
                **r.final,
            )
            for r in replicas
        ]
    return RunResult(run_dir, rows, model)


def theory_reason(cfg: Config) -> str:
    """'' when mean-field theory predicts this network's deltas, else why it does not."""
    if cfg.norm != "none":
        return f"not applicable: {cfg.norm} (the theory covers plain affine layers)"
    if cfg.residual:
        return "not applicable: residual (per-block growth only: theory.residual_growth)"
    return ""


def log_prediction(cfg: Config, model: MLP, data: DataSet, recorders: list[RunRecorder]) -> None:
    """Mean-field predictions at step 0, for every replica: ``predicted_delta_ratio``
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
    cfg: Config, replicas: list[Replica], device: torch.device, dtype: torch.dtype, label: str
) -> MLP:
    """The loop. Replicas share every pass but each logs only its own slice, so its records
    are those of a run on its own: a replica whose loss stops being finite is finished
    exactly as such a run would be (final evaluation, final probe) and drops out of the
    records, while the rest train on."""
    data = load_data(cfg.data, device, dtype)
    model = build_model(cfg, data, device, dtype)
    # unprobed steps may run compiled; probed ones need the hooks, so they run eagerly
    stepper = torch.compile(model) if cfg.compile else model
    optimizer = cfg.optimizer.build(model.parameters(), cfg.lr)
    for r in replicas:
        r.batches = batch_indices(
            data.num_train, cfg.batch_size, torch_generator(r.seed, "batches", device), device
        )
    if not theory_reason(cfg):
        log_prediction(cfg, model, data, [r.recorder for r in replicas])
    loss_name = resolve_loss(cfg)
    loss_fn = LOSSES[loss_name]
    pending: list[torch.Tensor] = []  # per-replica batch losses not yet read back
    probe_steps = cfg.probes.steps(cfg.steps)
    costly_steps = cfg.probes.costly_steps(cfg.steps)
    probes = probe_names(cfg.probes.names) if probe_steps else []
    # probe values not yet logged: (step, values, the replicas they are for; None: active)
    probed: list[tuple[int, dict[str, torch.Tensor], list[Replica] | None]] = []
    layers = np.arange(1, model.num_layers + 1)

    def active() -> list[Replica]:
        return [r for r in replicas if r.active]

    def backward(
        x: torch.Tensor, y: torch.Tensor, step: int, probe: bool, only: list[Replica] | None = None
    ) -> torch.Tensor:
        """Forward and backward on one batch (probing when asked); the per-replica losses."""
        with Capture(model) if probe else contextlib.nullcontext() as capture:
            losses = loss_fn((model if probe else stepper)(x), y, data.task)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
        if probe:
            names = probes if step in costly_steps else [n for n in probes if n not in COSTLY]

            def objective() -> torch.Tensor:
                return loss_fn(model(x), y, data.task)

            probed.append((step, compute(model, capture.tensors, names, objective), only))
        return losses

    def weights() -> list[torch.Tensor]:
        return [model.layer(l).linear.weight.detach().clone() for l in layers]

    def log_probes() -> None:
        """Read the pending probe values back (one copy per probed step) and log them."""
        for at, values, only in probed:
            arrays = host_arrays(values)
            for r in active() if only is None else only:
                rows = {metric: array[r.index] for metric, array in arrays.items()}
                log_probe_rows(r, at, rows)
        probed.clear()

    def log_evaluation(step: int, which: list[Replica]) -> list[Replica]:
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
        if which:
            bar.set_postfix(loss=f"{figures['loss'][which[0].index]:.4g}", refresh=False)
        return broken

    def read_batch_losses(step: int) -> list[Replica]:
        """Log the pending batch losses (steps step-len..step-1) of the active replicas;
        those whose loss stopped being finite, with their first bad step recorded."""
        values = torch.stack(pending).double().cpu().numpy()  # (steps, R)
        pending.clear()
        steps = np.arange(step - len(values), step)
        broken = []
        for r in active():
            r.recorder.log(steps, NETWORK_LAYER, "batch_loss", values[:, r.index])
            bad = np.flatnonzero(~np.isfinite(values[:, r.index]))
            if len(bad):
                r.diverged_step = int(steps[bad[0]])
                broken.append(r)
        if active():
            bar.set_postfix(loss=f"{values[-1, active()[0].index]:.4g}", refresh=False)
        return broken

    def probe_final(step: int, which: list[Replica]) -> None:
        """Probe the network at ``step`` for ``which`` on one more batch each, no update."""
        if step not in probe_steps or not which:
            return
        x, y = draw_batch(data, replicas, which)
        with preserved_buffers(model):  # measuring changes nothing
            backward(x, y, step, probe=True, only=which)
        optimizer.zero_grad(set_to_none=True)
        log_probes()

    def finish(which: list[Replica], step: int, evaluate_first: bool) -> None:
        """End ``which`` at ``step`` as runs of their own would end: figures, final probe."""
        if not which:
            return
        if evaluate_first:
            log_evaluation(step, which)  # the final figures describe the diverged network
        probe_final(step, which)
        for r in which:
            r.active, r.steps_done = False, step

    bar = tqdm(
        total=cfg.steps,
        desc=label or f"depth={cfg.depth}",
        unit="step",
        disable=None,
        dynamic_ncols=True,
        leave=True,
    )
    with bar:
        for r in (broken := log_evaluation(0, replicas)):
            r.diverged_step = 0
        for r in replicas:  # the network at initialisation is on disk before the first update
            r.recorder.flush()
        finish(broken, 0, evaluate_first=False)
        step = 0
        while active() and step < cfg.steps:
            x, y = draw_batch(data, replicas, active())
            probing = step in probe_steps
            losses = backward(x, y, step, probe=probing)
            before = weights() if probing and UPDATES in probes else None
            optimizer.step()
            if before is not None:
                probed[-1][1].update(update_ratio(model, before))
            pending.append(losses.detach())
            step += 1
            bar.update()
            evaluation_due = step % cfg.eval_every == 0 or step == cfg.steps
            if evaluation_due or step % CHECK_EVERY == 0:
                broken = read_batch_losses(step)
                log_probes()
                finish(broken, step, evaluate_first=True)
            if evaluation_due and active():
                broken = log_evaluation(step, active())
                for r in broken:
                    r.diverged_step = step
                finish(broken, step, evaluate_first=False)
            if evaluation_due and replicas[0].recorder.seconds_since_flush() > cfg.flush_seconds:
                for r in replicas:
                    r.recorder.flush()
        finish(active(), step, evaluate_first=False)  # the final network
    return model


def log_probe_rows(replica: Replica, step: int, rows: dict[str, np.ndarray]) -> None:
    """Log one replica's probe values at ``step`` ({metric: values by layer}), with the
    run-level figures they give: the delta ratio at the first and last probed step, and
    where a pass first broke."""
    for metric, row in rows.items():
        replica.recorder.log(step, row_layers(row), metric, row)
    final = replica.final
    if "delta_norm" in rows:
        ratio = float(rows["delta_norm"][0] / rows["delta_norm"][-1])
        final.setdefault("delta_ratio_initial", ratio)  # the first probed step: 0
        final["delta_ratio_final"] = ratio
    layer = first_nonfinite_layer(rows.get("preact_nonfinite"), rows.get("delta_nonfinite"))
    if layer is not None and "nonfinite_step" not in final:
        final.update(nonfinite_step=step, nonfinite_layer=layer)
