"""depthlab: see, measure and explain why deep plain networks are hard to train."""

__version__ = "0.1.0"
