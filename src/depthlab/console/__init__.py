"""The command lines' words for people.

:mod:`~depthlab.console.commands` is the ``depthlab`` console command (``run``, ``report``,
``compare``, ``studies``); :mod:`~depthlab.console.catalogue` finds a study's files and
expected times from its name and :mod:`~depthlab.console.listing` writes them out;
:mod:`~depthlab.console.key_help` is the key table of ``python -m depthlab.run --help``;
:mod:`~depthlab.console.hydra_errors` turns Hydra's composition errors into one line.
"""

from depthlab.console.commands import main

__all__ = ["main"]
