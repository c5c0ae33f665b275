"""What a study is: a question, its anchor paper, figures and a verdict computed from a sweep.

A study turns the records of its preset (``python -m depthlab.run -m +experiment=NAME``) into
figures that look like the anchor paper's and a :class:`Verdict` that states, with the measured
numbers, whether the phenomenon reproduced. Studies are registered in :data:`STUDIES` under
the preset's name, which every run records in its ``study`` column, so reports find them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib.pyplot as plt

from depthlab.registry import Registry
from depthlab.results import Sweep

Figures = dict[str, plt.Figure]


@dataclass(frozen=True)
class Verdict:
    """Did the phenomenon reproduce? ``reproduced`` is None when the sweep lacks the runs to
    tell (a partial or quick sweep); ``text`` says what was measured, with the numbers that
    are also in ``numbers``."""

    study: str
    reproduced: bool | None
    text: str
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return {True: "reproduced", False: "not reproduced", None: "undecided"}[self.reproduced]

    def __str__(self) -> str:
        return f"{self.study}: {self.label}. {self.text}"


@dataclass(frozen=True)
class Study:
    """One registered study: ``figures(sweep)`` -> named figures, ``verdict(sweep)``."""

    name: str
    question: str
    anchor: str
    figures: Callable[[Sweep], Figures]
    verdict: Callable[[Sweep], Verdict]


STUDIES: Registry[Study] = Registry("study")


def studies_in(sweep: Sweep) -> list[str]:
    """The registered studies whose runs are in ``sweep`` (its ``study`` column)."""
    if sweep.runs.empty or "study" not in sweep.runs:
        return []
    named = [s for s in sweep.runs["study"].dropna().astype(str).unique() if s]
    return [s for s in named if s in STUDIES]


def runs_of(sweep: Sweep, study: str) -> Sweep:
    """The part of ``sweep`` recorded by ``study`` (all of it when there is no study column)."""
    if "study" not in sweep.runs:
        return sweep
    runs = sweep.runs[sweep.runs["study"] == study]
    metrics = sweep.metrics
    if not metrics.empty:
        metrics = metrics[metrics["run_id"].isin(runs["run_id"])]
    return Sweep(sweep.root, runs.reset_index(drop=True), metrics, sweep.problems)
