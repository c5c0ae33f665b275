"""Batched optimisers: each run of a batch follows PyTorch's own optimiser with that run's
learning rate and hyperparameters (the oracle), whatever the other runs of the batch do."""

from __future__ import annotations

import pytest
import torch

from depthlab.optimizers import OPTIMIZERS, Adam, Momentum, Optimizer

# Three runs per option, with different numbers (one without weight decay, which must then
# compute exactly what it computes alone).
CASES = {
    "sgd": ([OPTIMIZERS["sgd"](weight_decay=wd) for wd in (0.0, 0.01, 0.3)], [0.5, 0.1, 0.02]),
    "momentum": (
        [Momentum(momentum=m, weight_decay=wd) for m, wd in ((0.9, 0.0), (0.5, 0.01), (0.0, 0.1))],
        [0.05, 0.2, 0.1],
    ),
    "nesterov": (
        [Momentum(momentum=m, nesterov=True) for m in (0.9, 0.5, 0.99)],
        [0.05, 0.2, 0.01],
    ),
    "adam": (
        [
            Adam(beta1=0.9, beta2=0.999, eps=1e-8),
            Adam(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
            Adam(beta1=0.0, beta2=0.9, eps=1e-3, weight_decay=0.01),
        ],
        [1e-3, 1e-2, 3e-2],
    ),
    "adamw": (
        [
            Adam(decoupled=True, weight_decay=wd, beta1=b1)
            for wd, b1 in ((0.0, 0.9), (0.1, 0.8), (0.5, 0.7))
        ],
        [1e-3, 1e-2, 3e-2],
    ),
}
STEPS = 6


def start(runs: int) -> list[torch.Tensor]:
    """A weight (R, 4, 5), a bias (R, 4) and a scale (R, 1, 1), float64."""
    g = torch.Generator().manual_seed(0)
    return [torch.randn(runs, *s, generator=g, dtype=torch.float64) for s in ((4, 5), (4,), (1, 1))]


def gradients(step: int, runs: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(runs, *s, generator=g, dtype=torch.float64) for s in ((4, 5), (4,), (1, 1))]


def batched_trajectory(
    options: list[Optimizer], lrs: list[float], runs: slice | None = None, flat: bool = False
) -> list[torch.Tensor]:
    """The parameters after STEPS batched updates, for all runs of the case or a slice."""
    runs = runs or slice(None)
    total = len(CASES["sgd"][0])
    params = [torch.nn.Parameter(t[runs].clone()) for t in start(total)]
    optimizer = options[0].batched(params, options[runs], lrs[runs], flat=flat)
    for step in range(STEPS):
        for p, g in zip(params, gradients(step, total), strict=True):
            p.grad = g[runs].clone()
        optimizer.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("flat", [False, True], ids=["per_parameter", "flat"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_run_follows_torch_optim_with_its_own_hyperparameters(case: str, flat: bool) -> None:
    options, lrs = CASES[case]
    batched = batched_trajectory(options, lrs, flat=flat)
    initial = start(len(options))
    for r, (option, lr) in enumerate(zip(options, lrs, strict=True)):
        mine = [torch.nn.Parameter(t[r].clone()) for t in initial]
        oracle = option.torch_optimizer(mine, lr)
        for step in range(STEPS):
            for p, g in zip(mine, gradients(step, len(options)), strict=True):
                p.grad = g[r].clone()
            oracle.step()
        for got, want in zip(batched, mine, strict=True):
            assert torch.allclose(got[r], want.detach(), rtol=1e-12, atol=1e-15), (case, r)
        moved = max(float((b[r] - t[r]).abs().max()) for b, t in zip(batched, initial, strict=True))
        assert moved > 1e-4  # the oracle comparison is not vacuous


@pytest.mark.parametrize("flat", [False, True], ids=["per_parameter", "flat"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_run_computes_the_same_bits_alone_and_in_a_batch(case: str, flat: bool) -> None:
    options, lrs = CASES[case]
    batched = batched_trajectory(options, lrs, flat=flat)
    for r in range(len(options)):
        alone = batched_trajectory(options, lrs, slice(r, r + 1), flat=flat)
        assert all(torch.equal(b[r], a[0]) for b, a in zip(batched, alone, strict=True)), r


def test_runs_of_different_update_formulas_are_refused() -> None:
    params = [torch.nn.Parameter(t[:2].clone()) for t in start(2)]
    options = [Momentum(nesterov=False), Momentum(nesterov=True)]
    with pytest.raises(ValueError, match="update formula"):
        options[0].batched(params, options, [0.1, 0.1])


def test_parameters_live_in_one_flat_buffer_that_a_step_updates_in_place() -> None:
    params = [torch.nn.Parameter(t.clone()) for t in start(2)]
    before = [p.detach().clone() for p in params]
    optimizer = OPTIMIZERS["sgd"]().batched(
        params, [OPTIMIZERS["sgd"]()] * 2, [0.1, 0.2], flat=True
    )
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    assert all(
        p.untyped_storage().data_ptr() == optimizer.buffer.untyped_storage().data_ptr()
        for p in params
    )
    address = optimizer.buffer.data_ptr()
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert optimizer.buffer.data_ptr() == address
    assert torch.allclose(params[1][0], before[1][0] - 0.1) and torch.allclose(
        params[1][1], before[1][1] - 0.2
    )


@pytest.mark.parametrize("case", list(CASES))
def test_both_layouts_compute_the_same_numbers(case: str) -> None:
    options, lrs = CASES[case]
    a, b = (batched_trajectory(options, lrs, flat=f) for f in (False, True))
    assert all(torch.allclose(x, y, rtol=1e-14, atol=0) for x, y in zip(a, b, strict=True))
