"""What the device benchmarks share: the network they time and a timer that waits for the
device (CUDA runs asynchronously: without a sync a timer measures only the launches)."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

import torch

from depthlab.config import Config
from depthlab.data import load_data
from depthlab.inits import Gaussian
from depthlab.losses import LOSSES
from depthlab.seeding import torch_generator
from depthlab.steps import BatchStream, Stepper
from depthlab.train import build_model


def critical_tanh(depth: int, width: int, batch: int, **keys: Any) -> Config:
    """tanh at its critical init (sigma_w2 = 1.76, sigma_b2 = 0.05): every layer does full
    work at any depth (no saturation, no vanishing signal)."""
    init = Gaussian(sigma_w2=1.76, sigma_b2=0.05)
    return Config(depth=depth, width=width, activation="tanh", init=init, batch_size=batch, **keys)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], object], device: torch.device, calls: int = 1) -> float:
    """Seconds per call of ``work``, over ``calls`` calls, the device's work included."""
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        work()
    sync(device)
    return (time.perf_counter() - start) / calls


def training_step(
    cfg: Config,
    runs: int,
    device: torch.device,
    capture: bool = False,
    compile_mode: str | None = None,
) -> Callable[[], torch.Tensor]:
    """One call = one unprobed depthlab training step of ``runs`` batched seeds of ``cfg``
    (float32, lr 1e-3), each on its own next mini-batch: what the training loop runs."""
    data = load_data(cfg.data, device, torch.float32)
    members = [(dataclasses.replace(cfg, seed=s), s) for s in range(runs)]
    model = build_model(cfg, data, device, torch.float32, members)
    optimizer = cfg.optimizer.batched(
        [p for p in model.parameters() if p.requires_grad],
        [c.optimizer for c, _ in members],
        [1e-3] * runs,
    )
    generators = [torch_generator(s, "batches", device) for s in range(runs)]
    stream = BatchStream(data.num_train, cfg.batch_size, generators, device)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return LOSSES["cross_entropy"](out, y, data.task)

    step = Stepper(forward, model, optimizer, loss, data, capture)
    counter = itertools.count()
    return lambda: step(stream.batch(next(counter)))
