"""The one seeding function: independent random streams derived from a run's ``seed``.

Each consumer (weight init, batch order, ...) gets its own stream, derived from
``(seed, stream name)`` through NumPy's SeedSequence, so streams of neighbouring seeds
are unrelated and adding a consumer never shifts the draws of another.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` of run ``seed`` (deterministic across processes)."""
    key = zlib.crc32(stream.encode())
    state = np.random.SeedSequence([seed, key]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def torch_generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded for ``stream`` of run ``seed``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, stream))


def numpy_generator(seed: int, stream: str) -> np.random.Generator:
    """A NumPy Generator seeded for ``stream`` of run ``seed``."""
    return np.random.default_rng(derive_seed(seed, stream))
