"""Tables for people: the keys that vary and apply, numbers in three significant figures,
short column names, and text that fits a terminal.

A configuration key *varies* when its values where it is set (not NaN) differ between
runs; it *applies* to a run when the run sets it (``init.nonlinearity`` applies to Kaiming
runs only). Varying keys are columns, blank where they do not apply; keys with one value
wherever they apply are one line above the table; keys set for no run are left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from depthlab.frames import ordered

TERMINAL = 100  # characters a table's text may take


def key_split(runs: pd.DataFrame, keys: list[str]) -> tuple[list[str], dict[str, str]]:
    """(the keys of ``keys`` that vary where they apply, in order; {key: value text} of the
    others that apply to some run, the text ending in ' (where set)' when the key does not
    apply to every run)."""
    varying, constant = [], {}
    for key in keys:
        column = runs[key]
        given = column[~_missing(column)]
        distinct = ordered(given)
        if len(distinct) > 1:
            varying.append(key)
        elif len(distinct) == 1:
            text = cell_text(distinct[0])
            constant[key] = text if len(given) == len(column) else f"{text} (where set)"
    return varying, constant


def _missing(column: pd.Series) -> pd.Series:
    """True where a value is NaN or None (a key that does not apply to that run)."""
    return column.map(is_missing)


def is_missing(value: object) -> bool:
    """Whether ``value`` is None or NaN (a list, such as probes.names, never is)."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def number_text(value: float) -> str:
    """A number in three significant figures: scientific below 1e-3 and from 1e5 up
    (3.19e-09, 1.20e+06), plain between (0.0123, 12.3, 1230); integers as they are."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v) or v == 0:
        return f"{v:g}"
    if abs(v) < 1e-3 or abs(v) >= 1e5:
        return f"{v:.2e}"
    if abs(v) >= 1e3:
        return f"{round(v, 2 - math.floor(math.log10(abs(v)))):.0f}"
    return f"{v:.3g}"


def cell_text(value: object, missing: str = "") -> str:
    """A table cell: ``missing`` for None/NaN, numbers by :func:`number_text`, text as is."""
    if is_missing(value):
        return missing
    if isinstance(value, (int, float, np.integer, np.floating)):
        return number_text(value)
    return str(value)


def short_names(columns: list[str]) -> dict[str, str]:
    """Column -> its name less a dotted prefix ('init.sigma_w2' -> 'sigma_w2') where that
    shorter name is unique among ``columns``."""
    tails = [c.rsplit(".", 1)[-1] for c in columns]
    return {
        c: t if tails.count(t) == 1 and t not in columns else c
        for c, t in zip(columns, tails, strict=True)
    }


def text_cells(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every cell as text: blank where a key does not apply (``keys``), 'nan' where a
    measured number is missing."""
    out = pd.DataFrame(index=table.index)
    for column in table.columns:
        missing = "" if column in keys else "nan"
        out[column] = [cell_text(v, missing) for v in table[column]]
    return out


def text_table(table: pd.DataFrame, keys: list[str], width: int = TERMINAL) -> str:
    """``table`` as text at most ``width`` characters wide: short column names, cells by
    :func:`text_cells`, numbers right-aligned, and the columns that do not fit continued
    in a block below (pandas' wrapping, a backslash ending the cut lines)."""
    cells = text_cells(table, keys).rename(columns=short_names(list(table.columns)))
    if cells.empty:
        return "(no runs)"
    return cells.to_string(index=False, line_width=width)


def constant_line(constant: dict[str, str], width: int = TERMINAL) -> str:
    """'same for every run: key=value, ...' in lines of at most ``width`` characters,
    broken between items only, later lines indented (empty when there are none)."""
    if not constant:
        return ""
    items = [f"{key}={value}" for key, value in constant.items()]
    lines = [f"same for every run: {items[0]}"]
    for item in items[1:]:
        if len(lines[-1]) + len(item) + 3 <= width:  # ", " before, "," after
            lines[-1] += f", {item}"
        else:
            lines[-1] += ","
            lines.append(f"  {item}")
    return "\n".join(lines)
