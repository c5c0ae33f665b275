"""What the device benchmarks share: the network they time and a timer that waits for the
device (CUDA runs asynchronously: without a sync a timer measures only the launches)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from depthlab.config import Config
from depthlab.inits import Gaussian


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
