"""The studies of the phenomena: one module each, named after its preset
(``conf/experiment/NAME.yaml``), registering itself in :data:`STUDIES`. Every module named
after a preset is imported here, so adding a study is adding its module and its preset;
other modules of this package (``base``, ``common``, a study's private ``_NAME_*`` parts)
are helpers, imported by whoever uses them."""

import importlib
from importlib import resources

from depthlab.studies.base import STUDIES, Study, Verdict, runs_of, studies_in

PRESET_NAMES = sorted(
    p.name.removesuffix(".yaml")
    for p in resources.files("depthlab.conf").joinpath("experiment").iterdir()
    if p.name.endswith(".yaml")
)
STUDY_NAMES = [p for p in PRESET_NAMES if not p.endswith(("_quick", "_full"))]

for _name in STUDY_NAMES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["PRESET_NAMES", "STUDIES", "STUDY_NAMES", "Study", "Verdict", "runs_of", "studies_in"]
