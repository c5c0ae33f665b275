"""How a figure splits a sweep's runs: which key colours the lines, which styles them, and
one panel (facet) per combination of the rest; and the grid of panels itself."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from depthlab import frames
from depthlab.results import Sweep
from depthlab.tables import short_names

MAX_PANELS = 12  # more combinations than this: the first ones, named in the title


@dataclass(frozen=True)
class Split:
    """``hue``: the key that colours runs; ``style``: the one that sets line style or
    marker (None: none); ``facets``: one panel per combination of their values; ``keys``:
    all of them, to join to the metric rows."""

    hue: str | None
    style: str | None
    facets: list[str]
    keys: list[str]


def split_of(
    sweep: Sweep,
    hue: str | None = None,
    skip: tuple[str, ...] = ("seed",),
    fallback: str | None = "run_id",
) -> Split:
    """The split by every key that tells runs apart (:func:`frames.split_keys`, less
    ``skip``): ``hue`` (default the first of them, else ``fallback``), then line style,
    then facets. A given ``hue`` comes first; the others keep their order."""
    keys = frames.split_keys(sweep, skip)
    if hue:
        keys = [hue, *[k for k in keys if k != hue]]
    elif not keys:
        keys = [fallback] if fallback else []
    first = keys[0] if keys else None
    style = keys[1] if len(keys) > 1 else None
    return Split(first, style, keys[2:], [k for k in keys if k != "run_id"])


def facet_axes(
    frame: pd.DataFrame, facets: list[str], width: float = 7.0, height: float = 4.5
) -> tuple[plt.Figure, list[tuple[plt.Axes, pd.DataFrame]]]:
    """A figure with one panel per combination of the ``facets`` values in ``frame`` (in
    :func:`frames.ordered` order, at most :data:`MAX_PANELS`, three to a row), each panel
    titled 'key=value, ...' and paired with its rows; one panel with every row when
    ``facets`` is empty."""
    if facets:
        text = frame[facets].astype(str)  # lists group as text
        groups = [
            (cell[facets].iloc[0].tolist(), cell)
            for _, cell in frame.groupby([text[k] for k in facets], sort=False, dropna=False)
        ]
        groups.sort(key=lambda item: [frames.sort_key(v) for v in item[0]])
    else:
        groups = [((), frame)]
    shown = groups[:MAX_PANELS]
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    scale = 1.0 if len(shown) == 1 else 0.75
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width * scale * cols, height * scale * rows + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.ravel()[len(shown) :]:
        ax.set_visible(False)
    panels = list(zip(axes.ravel(), [cell for _, cell in shown], strict=False))
    names = short_names(facets)
    for ax, (values, _) in zip(axes.ravel(), shown, strict=False):
        if facets:
            pairs = zip(facets, values, strict=True)
            title = ", ".join(f"{names[k]}={_text(v)}" for k, v in pairs)
            ax.set_title(textwrap.fill(title, 60), fontsize=8, loc="left")
    if len(groups) > MAX_PANELS:
        fig.text(0.01, 0.0, f"{len(shown)} of {len(groups)} panels shown", fontsize=7)
    return fig, panels


def _text(value: object) -> str:
    """A facet value as text; a key that does not apply to the panel's runs as 'n/a'."""
    return "n/a" if pd.api.types.is_scalar(value) and pd.isna(value) else str(value)


def run_title(run: pd.Series, keys: list[str]) -> str:
    """'key=value, ...' of a run's keys that it has a value for (its run_id when there are
    none), wrapped."""
    given = [k for k in keys if not (pd.api.types.is_scalar(run[k]) and pd.isna(run[k]))]
    text = ", ".join(f"{k}={run[k]}" for k in given) or str(run["run_id"])
    return textwrap.fill(text, 44)
