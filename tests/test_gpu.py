"""On a CUDA device: the same run as on the CPU (skipped cleanly where there is no GPU)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from depthlab.config import Config
from depthlab.data import load_data
from depthlab.inits import Gaussian
from depthlab.losses import LOSSES
from depthlab.probes import COSTLY, Capture, compute, host_arrays, probe_names
from depthlab.records import read_metrics
from depthlab.train import build_model, train

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
    optimizer = cfg.optimizer.build(model.parameters(), cfg.lr)
    x, y = data.x_train[: cfg.batch_size], data.y_train[: cfg.batch_size]
    names = [n for n in probe_names("full") if n not in COSTLY]

    def step(probe: bool) -> None:
        with Capture(model) as capture:
            loss = LOSSES["cross_entropy"](model(x), y, data.task).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if probe:
            host_arrays(compute(model, capture.tensors, names))
        optimizer.step()

    step(True)  # warm-up: allocations, lazy initialisation
    return host_syncs(lambda: step(False)), host_syncs(lambda: step(True))


def test_a_step_and_its_probes_cost_no_host_sync_per_layer(tiny: Config) -> None:
    """The same work at depth 4 and 40 makes the same number of host syncs: none in the
    plain step, a fixed few (not one per layer) when probe values are computed and read."""
    shallow, deep = step_syncs(critical(4, tiny)), step_syncs(critical(40, tiny))
    assert shallow == deep, (shallow, deep)
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
