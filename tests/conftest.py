"""Shared fixtures: small, fast configurations."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")  # figures render off-screen in tests

from depthlab.config import Config
from depthlab.data import Teacher


@pytest.fixture
def tiny() -> Config:
    """A configuration that trains in well under a second."""
    return Config(
        depth=2,
        width=16,
        steps=20,
        eval_every=10,
        batch_size=32,
        data=Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64),
    )
