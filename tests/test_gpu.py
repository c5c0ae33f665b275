"""On a CUDA device: the same run as on the CPU (skipped cleanly where there is no GPU)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import relu_momentum

from depthlab.config import Config
from depthlab.data import load_data
from depthlab.inits import Gaussian, KaimingNormal
from depthlab.losses import LOSSES
from depthlab.optimizers import Momentum
from depthlab.probes import PROBES, Capture, compute, host_arrays, probe_names
from depthlab.probes.schedule import FullProbes, NoProbes
from depthlab.records import read_metrics
from depthlab.resources import run_bytes
from depthlab.steps import BatchStream, Stepper
from depthlab.train import Member, build_model, train, train_group

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def test_cuda_run_matches_the_cpu_run_in_float64(tiny: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny, dtype="float64", steps=30, eval_every=10)
    cpu = train(dataclasses.replace(cfg, device="cpu"), tmp_path / "cpu")
    gpu = train(dataclasses.replace(cfg, device="cuda"), tmp_path / "gpu")
    assert gpu.row["device"].startswith("cuda") and gpu.status == "ok"
    assert next(gpu.model.parameters()).is_cuda
    # the batch order comes from a CUDA generator, so compare what does not depend on it
    a, b = (read_metrics(r.run_dir) for r in (cpu, gpu))
    step0 = [df[(df["step"] == 0) & (df["metric"] == "loss")]["value"].item() for df in (a, b)]
    assert step0[0] == pytest.approx(step0[1], rel=1e-12)


def test_auto_picks_cuda(tiny: Config, tmp_path: Path) -> None:
    result = train(dataclasses.replace(tiny, device="auto", steps=2), tmp_path)
    assert result.row["device"] == "auto"  # the key as given; what it resolved to:
    assert result.row["device_resolved"].startswith("cuda")


CUDA = torch.device("cuda") if torch.cuda.is_available() else None


def host_syncs(work: Callable[[], object]) -> int:
    """How many times ``work`` makes the host wait for the device (CUDA's sync debug mode
    warns once per synchronising call)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            work()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def critical(depth: int, tiny: Config) -> Config:
    init = Gaussian(sigma_w2=1.76, sigma_b2=0.05)
    return dataclasses.replace(tiny, depth=depth, activation="tanh", init=init, device="cuda")


def step_syncs(cfg: Config) -> tuple[int, int]:
    """Host syncs of one training step of ``cfg`` on CUDA: plain, and with every cheap
    probe computed and read back (one copy)."""
    data = load_data(cfg.data, CUDA, torch.float32)
    model = build_model(cfg, data, CUDA, torch.float32)
    optimizer = cfg.optimizer.batched(list(model.parameters()), [cfg.optimizer], [cfg.lr])
    x, y = data.x_train[: cfg.batch_size], data.y_train[: cfg.batch_size]
    names = [n for n in probe_names("full") if not PROBES[n].costly]

    def step(probe: bool) -> None:
        with Capture(model) as capture:
            loss = LOSSES["cross_entropy"](model(x), y, data.task).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if probe:
            host_arrays(compute(model, capture.tensors, names))
        optimizer.step()

    step(False)  # warm-up: allocations, lazy initialisation (one-time syncs)
    step(True)
    return host_syncs(lambda: step(False)), host_syncs(lambda: step(True))


def test_a_step_and_its_probes_cost_no_host_sync_per_layer(tiny: Config) -> None:
    """Host syncs do not grow with depth: the probed step makes the same few at depth 4 and
    40 (probe values are read back in one copy), the plain step none at depth 40. (An H200
    showed one sync in the plain step at depth 4 and none at depth 40, after warm-up: not
    per layer, and not explained yet.)"""
    shallow, deep = step_syncs(critical(4, tiny)), step_syncs(critical(40, tiny))
    assert deep[1] == shallow[1] and deep[0] <= shallow[0] <= 1, (shallow, deep)
    assert deep[0] == 0


def test_replicas_on_cuda_record_what_separate_cuda_runs_record(
    tiny: Config, tmp_path: Path
) -> None:
    cfg = dataclasses.replace(critical(3, tiny), dtype="float64", steps=30)
    batched = train(dataclasses.replace(cfg, replicas=4), tmp_path / "b")
    for row in batched.rows:
        alone = train(dataclasses.replace(cfg, seed=row["seed"]), tmp_path / str(row["seed"]))
        mine = read_metrics(tmp_path / "b" / f"seed={row['seed']}").drop(columns="run_id")
        theirs = read_metrics(alone.run_dir).drop(columns="run_id")
        keys = ["step", "metric", "layer"]
        mine, theirs = (f.sort_values(keys, ignore_index=True) for f in (mine, theirs))
        assert (mine[keys] == theirs[keys]).all().all()
        assert mine["value"].to_numpy() == pytest.approx(
            theirs["value"].to_numpy(), rel=1e-9, abs=1e-12, nan_ok=True
        )


def records(run_dir: Path):
    keys = ["step", "metric", "layer"]
    return read_metrics(run_dir).drop(columns="run_id").sort_values(keys, ignore_index=True)


def group(tiny: Config, **keys) -> list[Config]:
    """Four runs of one batched model on CUDA with their own inits, learning rates and
    optimiser numbers; the last diverges (overflow) while the others train."""
    base = relu_momentum(device="cuda", probes=FullProbes(every=7, costly_every=30), **keys)
    r = dataclasses.replace
    return [
        base,
        r(base, seed=1, lr=0.02, init=KaimingNormal()),
        r(base, seed=2, optimizer=Momentum(momentum=0.5, weight_decay=0.01), eval_every=15),
        r(base, seed=3, lr=1e30),
    ]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_captured_steps_record_what_eager_steps_record(
    tiny: Config, tmp_path: Path, dtype: str
) -> None:
    """The same batched group with unprobed steps replayed from a CUDA graph and run
    eagerly: the same kernels on the same buffers, so the same records (float64 to 1e-9,
    float32 to 1e-6 relative; in practice equal)."""
    configs = group(tiny, dtype=dtype)
    runs = {}
    for way, graph in (("captured", True), ("eager", False)):
        members = [
            Member(dataclasses.replace(c, cuda_graph=graph), tmp_path / way / str(i))
            for i, c in enumerate(configs)
        ]
        runs[way] = train_group(members)
    assert all(r.row["cuda_graph_resolved"] for r in runs["captured"])
    assert not any(r.row["cuda_graph_resolved"] for r in runs["eager"])
    statuses = [r.status for r in runs["captured"]]
    assert statuses == [r.status for r in runs["eager"]] and statuses[-1] == "diverged"
    rtol = 1e-9 if dtype == "float64" else 1e-6
    for a, b in zip(runs["captured"], runs["eager"], strict=True):
        mine, theirs = records(a.run_dir), records(b.run_dir)
        keys = ["step", "metric", "layer"]
        assert len(mine) == len(theirs) > 0 and (mine[keys] == theirs[keys]).all().all()
        assert mine["value"].to_numpy() == pytest.approx(
            theirs["value"].to_numpy(), rel=rtol, abs=1e-12, nan_ok=True
        )
        assert a.row["steps_done"] == b.row["steps_done"]


def test_captured_steps_make_no_host_sync(tiny: Config) -> None:
    """Between checks the loop runs only captured steps: none of them waits for the GPU."""
    cfg = dataclasses.replace(critical(40, tiny), optimizer=Momentum())
    data = load_data(cfg.data, CUDA, torch.float32)
    runs = [(dataclasses.replace(cfg, seed=s), s) for s in range(4)]
    model = build_model(cfg, data, CUDA, torch.float32, runs)
    optimizer = cfg.optimizer.batched(
        list(model.parameters()), [c.optimizer for c, _ in runs], [0.1] * 4
    )
    stream = BatchStream(
        data.num_train,
        cfg.batch_size,
        [torch.Generator(CUDA).manual_seed(s) for s in range(4)],
        CUDA,
    )
    stepper = Stepper(
        model,
        model,
        optimizer,
        lambda o, y: LOSSES["cross_entropy"](o, y, data.task),
        data,
        capture=True,
    )
    stepper(stream.batch(0))  # records the graph (syncs are allowed here)
    assert stepper.captured
    syncs = host_syncs(lambda: [stepper(stream.batch(n)) for n in range(1, 30)])
    assert syncs == 0


def test_the_training_loop_syncs_only_at_checks(tiny: Config, tmp_path: Path) -> None:
    """100 more steps add 10 batch-loss checks (one read each), nothing per step."""
    cfg = dataclasses.replace(critical(8, tiny), probes=NoProbes(), eval_every=10_000)

    def syncs(steps: int) -> int:
        run = dataclasses.replace(cfg, steps=steps)
        train(run, tmp_path / "warm")  # CUDA, cuBLAS and the data cache warmed up
        return host_syncs(lambda: train(run, tmp_path / str(steps)))

    assert syncs(200) - syncs(100) == 10


def test_a_batched_group_stays_within_its_memory_estimate(tiny: Config, tmp_path: Path) -> None:
    """The peak CUDA memory of a 16-run group (captured steps and the default probes every
    10 steps included) stays below 16 times the per-run estimate plus the data."""
    cfg = critical(20, tiny)
    cfg = dataclasses.replace(
        cfg, width=256, steps=30, probes=dataclasses.replace(cfg.probes, every=10)
    )
    configs = [dataclasses.replace(cfg, seed=s) for s in range(16)]
    data = load_data(cfg.data, CUDA, torch.float32)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train_group([Member(c, tmp_path / str(i)) for i, c in enumerate(configs)])
    peak = torch.cuda.max_memory_allocated() - before
    estimate = 16 * run_bytes(cfg, data.num_inputs, data.num_outputs, data.num_train)
    data_bytes = sum(t.numel() * t.element_size() for t in (data.x_train, data.x_test))
    assert 0 < peak < estimate + 4 * data_bytes, (peak, estimate)
