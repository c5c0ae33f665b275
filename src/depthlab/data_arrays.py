"""A data set's arrays and their checks: one train/test split as NumPy arrays, and the
rules every data set's arrays must keep before training (:func:`check_arrays`).

A broken rule is one :class:`DataError` line naming the data set or file, the array and
what is wrong, e.g. ``mine.npz: y_train has label 1.5 (row 3), not a whole number``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
MAX_INPUT = 1e150  # inputs whose squares still fit float64 (standardising squares them)
NUMERIC_KINDS = "biuf"  # NumPy dtype kinds: bool, signed and unsigned integers, floats


@dataclass(frozen=True)
class Arrays:
    """A train/test split as NumPy arrays: x (N, d); y (N,) class labels or (N, k) targets.

    ``num_outputs``: the network's outputs (classes, or target columns); 0 before
    :func:`check_arrays` means "from the data" (max label + 1, or the target columns).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    num_outputs: int


class DataError(ValueError):
    """Arrays breaking a rule of :func:`check_arrays`, as one line: ``source: array problem``.

    A ValueError, not a ConfigError: at training time the fault is in the data (a file's
    contents, or a generator's bug), not in a key's value. ``NPZ.check`` turns it into a
    ConfigError on ``data.path``, so a bad file is refused with the command line.
    """

    def __init__(self, source: str, array: str, problem: str) -> None:
        self.source, self.array, self.problem = source, array, problem
        self.detail = f"{array} {problem}" if array else problem
        super().__init__(f"{source}: {self.detail}")


def check_arrays(arrays: Arrays, source: str) -> Arrays:
    """``arrays`` checked, with inputs flattened to (N, d), class labels int64 and regression
    targets (N, k); DataError naming ``source``, the array and the first broken rule.

    Inputs: numeric (bool, int or float), non-empty, finite, as many features in both splits.
    Targets: one per input row; class labels as :func:`_check_labels` says, at most one
    class per training sample (K = max label + 1 <= N_train, so a stray label of 10^9 never
    builds a 10^9-wide output layer), within ``num_outputs`` when it is set, and at least two
    classes among the training labels; regression targets as :func:`_check_targets` says,
    as many columns in both splits (and ``num_outputs`` of them when it is set).
    """
    x_train = _check_inputs(arrays.x_train, "x_train", source)
    x_test = _check_inputs(arrays.x_test, "x_test", source)
    if x_test.shape[1] != x_train.shape[1]:
        raise DataError(
            source, "x_test", f"has {x_test.shape[1]} features, x_train {x_train.shape[1]}"
        )
    if arrays.task == CLASSIFICATION:
        y_train, y_test, num_outputs = _check_classes(arrays, len(x_train), len(x_test), source)
    else:
        y_train, y_test, num_outputs = _check_regression(arrays, len(x_train), len(x_test), source)
    return replace(
        arrays,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_outputs=num_outputs,
    )


def _check_numeric(a: np.ndarray, name: str, source: str) -> None:
    """Bool, integer or float: no object, string, complex, date or structured dtypes."""
    if a.dtype.kind not in NUMERIC_KINDS:
        raise DataError(source, name, f"has dtype {a.dtype}, not bool, integer or float")


def _check_finite(a: np.ndarray, name: str, source: str) -> None:
    """No NaN and no infinity."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        row = int(np.argmin(np.isfinite(a).reshape(len(a), -1).all(axis=1)))
        raise DataError(source, name, f"has {nan} NaN and {inf} infinite values (first row {row})")


def _check_inputs(x: np.ndarray, name: str, source: str) -> np.ndarray:
    """Inputs: numeric, at least 1-D, non-empty (samples and features), finite and at most
    ``MAX_INPUT`` in size; returned flattened to (N, d)."""
    _check_numeric(x, name, source)
    if x.ndim == 0 or x.size == 0:
        raise DataError(source, name, f"has no samples or no features (shape {x.shape})")
    x = x.reshape(len(x), -1)
    _check_finite(x, name, source)
    if x.dtype.kind == "f" and np.abs(x).max() > MAX_INPUT:
        row = int(np.argmax(np.abs(x).max(axis=1)))
        raise DataError(
            source,
            name,
            f"has |value| {np.abs(x[row]).max():.3g} (row {row}), above {MAX_INPUT:g}: "
            "its square overflows, and standardising would turn the inputs into 0",
        )
    return x


def _check_rows(y: np.ndarray, name: str, rows: int, source: str) -> None:
    """One target per input row."""
    if len(y) != rows:
        raise DataError(source, name, f"has {len(y)} rows, x{name[1:]} {rows}")


def _check_labels(y: np.ndarray, name: str, rows: int, source: str) -> None:
    """Class labels: numeric, 1-D, one per input row, whole numbers >= 0. Floats count when
    every value is integral (2.0); 1.5 is refused, never truncated."""
    _check_numeric(y, name, source)
    if y.ndim != 1:
        raise DataError(source, name, f"has shape {y.shape}: class labels are 1-D")
    _check_rows(y, name, rows, source)
    if y.dtype.kind == "f":
        bad = ~(np.isfinite(y) & (y == np.floor(y)))
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(source, name, f"has label {y[row]} (row {row}), not a whole number")
    if y.min() < 0:
        row = int(np.argmin(y))
        raise DataError(source, name, f"has label {y[row]:g} (row {row}), below 0")


def _check_classes(
    arrays: Arrays, num_train: int, num_test: int, source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(y_train, y_test as int64, the class count) of a classification split."""
    _check_labels(arrays.y_train, "y_train", num_train, source)
    _check_labels(arrays.y_test, "y_test", num_test, source)
    for name, y in (("y_train", arrays.y_train), ("y_test", arrays.y_test)):
        top = int(y.max())
        if top >= num_train:
            raise DataError(
                source,
                name,
                f"has label {top}: {top + 1} classes for {num_train} training samples "
                "(at most one class per training sample)",
            )
        if arrays.num_outputs and top >= arrays.num_outputs:
            raise DataError(source, name, f"has label {top}, num_outputs {arrays.num_outputs}")
    y_train = arrays.y_train.astype(np.int64, copy=False)
    y_test = arrays.y_test.astype(np.int64, copy=False)
    if y_train.min() == y_train.max():
        raise DataError(source, "y_train", f"has one class only (label {y_train[0]})")
    return y_train, y_test, arrays.num_outputs or int(max(y_train.max(), y_test.max())) + 1


def _check_targets(y: np.ndarray, name: str, rows: int, source: str) -> np.ndarray:
    """Regression targets: numeric, finite, 1-D or 2-D, one row per input row; returned as
    (N, k)."""
    _check_numeric(y, name, source)
    if y.ndim not in (1, 2):
        raise DataError(source, name, f"has shape {y.shape}: targets are (N,) or (N, k)")
    _check_rows(y, name, rows, source)
    if y.size == 0:
        raise DataError(source, name, f"is empty (shape {y.shape})")
    _check_finite(y, name, source)
    return y.reshape(rows, -1)


def _check_regression(
    arrays: Arrays, num_train: int, num_test: int, source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(y_train, y_test as (N, k), k) of a regression split."""
    y_train = _check_targets(arrays.y_train, "y_train", num_train, source)
    y_test = _check_targets(arrays.y_test, "y_test", num_test, source)
    if y_test.shape[1] != y_train.shape[1]:
        raise DataError(
            source, "y_test", f"has {y_test.shape[1]} target columns, y_train {y_train.shape[1]}"
        )
    if arrays.num_outputs and y_train.shape[1] != arrays.num_outputs:
        raise DataError(
            source, "y_train", f"has {y_train.shape[1]} columns for {arrays.num_outputs} outputs"
        )
    return y_train, y_test, y_train.shape[1]
