"""Your own data from a NumPy .npz file: read without unpickling, checked, and kept once
per process per file version."""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthlab.data_arrays import CLASSIFICATION, REGRESSION, Arrays, DataError, check_arrays
from depthlab.dataset_registry import DATASETS, Data
from depthlab.errors import ConfigError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _read_npz(path: str) -> list[np.ndarray]:
    """x_train, y_train, x_test, y_test of the .npz file ``path``, read without unpickling;
    DataError for a file that is not a zip archive, lacks one of them, or whose array cannot
    be read."""
    if not zipfile.is_zipfile(path):
        raise DataError(path, "", "is not an .npz file (not a zip archive)")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged archive: BadZipFile, OSError, ValueError, ...
        raise DataError(path, "", f"cannot be read as .npz ({_one_line(exc)})") from exc
    with npz:
        missing = [k for k in NPZ_KEYS if k not in npz.files]
        if missing:
            has = ", ".join(npz.files) or "no arrays"
            raise DataError(path, "", f"lacks {', '.join(missing)} (the file has {has})")
        return [_read_member(npz, k, path) for k in NPZ_KEYS]


def _read_member(npz: np.lib.npyio.NpzFile, key: str, path: str) -> np.ndarray:
    """The array ``key`` of an open .npz file; DataError when it cannot be read without
    unpickling (an object array) or is not a .npy array at all."""
    try:
        a = npz[key]
    except Exception as exc:  # ValueError for object arrays, damaged data, ...
        raise DataError(path, key, f"cannot be read ({_one_line(exc)})") from exc
    if not isinstance(a, np.ndarray):  # NpzFile hands back a member without .npy magic as bytes
        raise DataError(path, key, "cannot be read (not a .npy array)")
    return a


@functools.lru_cache(maxsize=4)
def _npz_arrays(path: str, size: int, mtime_ns: int, task: str) -> Arrays:
    """The checked arrays of the .npz file ``path``, read once per process per file version:
    ``size`` and ``mtime_ns`` are part of the cache key, so a rewritten file is read again."""
    x_tr, y_tr, x_te, y_te = _read_npz(path)
    arrays = check_arrays(Arrays(x_tr, y_tr, x_te, y_te, task, 0), path)
    for a in (arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test):
        a.setflags(write=False)  # cached: shared between runs of one process
    return arrays


@DATASETS.register_option
@dataclass
class NPZ(Data):
    """Your own data from a NumPy .npz file with arrays x_train, y_train, x_test, y_test.

    Inputs are flattened to (N, d). Classification: labels (N,) of whole numbers >= 0
    (integers, or floats such as 2.0), max(label) + 1 classes. Regression: targets (N,) or
    (N, k). The file is read and checked (:func:`check_arrays`) once per process per file
    version, at ``check()``; ``arrays()`` and ``sizes()`` reuse what was read.
    """

    name: str = "npz"
    path: str = ""  # the .npz file (arrays x_train, y_train, x_test, y_test)
    task_type: str = CLASSIFICATION  # classification or regression

    def task(self) -> str:
        return self.task_type

    def source(self) -> str:
        return str(Path(self.path).expanduser().resolve())

    def arrays(self) -> Arrays:
        path = self.source()
        stat = Path(path).stat()
        return _npz_arrays(path, stat.st_size, stat.st_mtime_ns, self.task_type)

    def sizes(self) -> tuple[int, int, int, int]:
        a = self.arrays()
        return a.x_train.shape[1], a.num_outputs, len(a.x_train), len(a.x_test)

    def check(self, key: str = "data") -> None:
        """Besides the task type: an existing file whose arrays pass check_arrays."""
        if self.task_type not in (CLASSIFICATION, REGRESSION):
            raise ConfigError(f"{key}.task_type", self.task_type, (CLASSIFICATION, REGRESSION))
        allowed = "an existing .npz file with x_train, y_train, x_test, y_test"
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(f"{key}.path", self.path or "''", allowed, "no such file")
        try:
            self.arrays()
        except DataError as err:
            raise ConfigError(f"{key}.path", self.source(), allowed, err.detail) from None
