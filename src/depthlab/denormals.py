"""Subnormal floats on a CPU: flushing them to zero, and reading whether that is in effect.

Denormal arithmetic made a deep net's CPU step about 4x slower on some processors; a
sigmoid net's deltas pass through the subnormal range on their way to underflow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


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


def denormals_flushed() -> float:
    """The fraction of a parallel CPU op's subnormal results flushed to zero, in [0, 1].

    The flag is per thread: 1.0 means every intra-op thread flushes, 0.0 none; values in
    between mean that only some threads do (the flag was changed after the thread pool
    started). Recorded with every run as what was in effect, whatever was asked.
    """
    tiny = torch.full((1 << 20,), 1e-20, dtype=torch.float32)
    return float(((tiny * tiny) == 0).float().mean())
