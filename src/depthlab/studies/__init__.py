"""The studies of phenomena.md section 2 and the seed's examples: one module each, named
after its preset (``conf/experiment/NAME.yaml``), registering itself in :data:`STUDIES`.
Every module of this package is imported here, so adding a study is adding its module."""

import importlib
import pkgutil

from depthlab.studies.base import STUDIES, Study, Verdict, runs_of, studies_in

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "common"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["STUDIES", "Study", "Verdict", "runs_of", "studies_in"]
