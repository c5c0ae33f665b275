"""depthlab.watch on a CUDA device: the records of the CPU, and no host sync on an unprobed
step (skipped cleanly where there is no GPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import depthlab
from depthlab.records import read_metrics
from depthlab.zoo import ConvNet1d, TransformerNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def watched(model: torch.nn.Module, device: str, folder, steps: int = 12) -> None:
    """A user loop of SGD updates on one batch, watched with probes="full" every 5 steps;
    watch.step itself runs under CUDA's sync check (an error on any host sync) except at
    the steps where it reads losses back (every 10th) or probes."""
    model = model.to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 40, dtype=torch.float64, generator=generator).to(device)
    y = (torch.arange(32) % 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with depthlab.watch(model, folder, probes="full", every=5, steps=steps) as watch:
        for step in range(steps):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            quiet = device == "cuda" and step % 5 != 0 and (step + 1) % 10 != 0
            torch.cuda.set_sync_debug_mode("error" if quiet else "default")
            try:
                watch.step(loss)
            finally:
                torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("make", [ConvNet1d, TransformerNet], ids=["cnn", "transformer"])
def test_cuda_records_equal_cpu_records_in_float64(tmp_path, make) -> None:
    torch.manual_seed(0)
    model = make().to(torch.float64)
    watched(copy.deepcopy(model), "cpu", tmp_path / "cpu")
    watched(model, "cuda", tmp_path / "cuda")
    cpu, gpu = (
        read_metrics(tmp_path / d).set_index(["step", "layer", "metric"]).sort_index()["value"]
        for d in ("cpu", "cuda")
    )
    assert cpu.index.equals(gpu.index)
    # a histogram bin's count may change by one value near a bin edge: compare the rest
    binned = cpu.index.get_level_values("metric").str.startswith("delta_hist_")
    cpu, gpu = cpu[~binned], gpu[~binned]
    np.testing.assert_allclose(gpu.to_numpy(), cpu.to_numpy(), rtol=1e-7, atol=1e-12)
