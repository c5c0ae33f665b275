"""The ``depthlab`` console command (``depthlab run``, ``report``, ``compare``, ``studies``):
:mod:`depthlab.console.commands` parses it, :mod:`depthlab.console.catalogue` finds a study's
files and expected times, :mod:`depthlab.console.listing` writes them for people."""

from depthlab.console.commands import main

__all__ = ["main"]
