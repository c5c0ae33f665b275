"""The ``data`` config group's base class and registry: every data set option is a
dataclass deriving from :class:`Data`, registered in :data:`DATASETS` under its ``name``.

A new data set is one module beside the others (``dataset_*.py``) holding one registered
option, imported by ``depthlab.data`` so the registry knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from depthlab.data_arrays import CLASSIFICATION, Arrays
from depthlab.registry import Registry


@dataclass
class Data:
    """Base of every data set option; ``name`` is its option in the ``data`` group."""

    name: str = "data"
    standardize: bool = True  # shift and scale each input feature by the training set's mean, std

    def arrays(self) -> Arrays:
        raise NotImplementedError

    def sizes(self) -> tuple[int, int, int, int]:
        """(num_inputs, num_outputs, num_train, num_test) of ``arrays()``, known from the
        parameters alone: no data are made (for memory estimates before any work)."""
        raise NotImplementedError

    def making_bytes(self) -> int:
        """About the memory that making the arrays takes beyond the arrays themselves
        (0 for data that are read or cheap to make)."""
        return 0

    def task(self) -> str:
        """``classification`` or ``regression`` (known before any data are made)."""
        return CLASSIFICATION

    def source(self) -> str:
        """What DataError messages name as the data's origin."""
        return f"data={self.name}"

    def check(self, key: str = "data") -> None:
        """Raise ConfigError for a rule beyond the ranges of the numbers (``depthlab.limits``)."""


DATASETS: Registry[type[Data]] = Registry("data")
