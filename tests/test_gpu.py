"""On a CUDA device: the same run as on the CPU (skipped cleanly where there is no GPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from depthlab.config import Config
from depthlab.records import read_metrics
from depthlab.train import train

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
    assert result.row["device"].startswith("cuda")
