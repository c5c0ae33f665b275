"""depthlab's Hydra sweeper: ``hydra/sweeper=batched`` (depthlab's default)."""
