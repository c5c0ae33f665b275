"""depthlab: see, measure and explain why deep plain networks are hard to train."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``depthlab.watch`` and ``depthlab.Watch``, imported on first use, so that importing
    depthlab (the console command, the config) does not import torch."""
    if name in ("watch", "Watch"):
        from depthlab import watching

        return getattr(watching, name)
    raise AttributeError(f"module 'depthlab' has no attribute {name!r}")
