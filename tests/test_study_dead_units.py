"""The dead_units study: transforms on hand-made records, and the quick preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES, Verdict
from depthlab.studies import dead_units as study

DEPTH = 4  # hidden layers 1..4, output layer 5


def hand_made(final: dict[float, float], seeds: int = 2, steps: int = 500) -> Sweep:
    """Every hidden layer dead_frac 0.1 at step 0 and ``final[lr]`` at the end (NaN: the
    run diverged); the output layer always 0."""
    rows, metrics = [], []
    for lr, end in final.items():
        for seed in range(seeds):
            run_id = f"lr{lr}-s{seed}"
            status = "diverged" if np.isnan(end) else "ok"
            rows.append(
                {
                    "run_id": run_id,
                    "study": "dead_units",
                    "lr": lr,
                    "seed": seed,
                    "depth": DEPTH,
                    "steps": steps,
                    "status": status,
                }
            )
            for step, value in ((0, 0.1), (steps // 2, end), (steps, end)):
                if status == "diverged" and step > 0:
                    continue
                for layer in range(1, DEPTH + 2):
                    v = 0.0 if layer == DEPTH + 1 else value
                    metrics.append((run_id, seed, step, layer, "dead_frac", v))
    frame = pd.DataFrame(metrics, columns=["run_id", "seed", "step", "layer", "metric", "value"])
    return Sweep(Path("."), pd.DataFrame(rows), frame)


def test_final_dead_fraction_leaves_out_the_output_layer_and_diverged_runs() -> None:
    table = study.final_dead(hand_made({0.1: 0.05, 0.3: 0.2, 1.0: np.nan}))
    table = table.set_index("run_id")
    assert table.loc["lr0.3-s0", "initial"] == pytest.approx(0.1)  # output layer excluded
    assert table.loc["lr0.3-s0", "final"] == pytest.approx(0.2)
    assert table.loc["lr0.1-s1", "change"] == pytest.approx(-0.05)
    assert np.isnan(table.loc["lr1.0-s0", "final"])
    lrs = study.per_lr(study.final_dead(hand_made({0.1: 0.05, 0.3: 0.2, 1.0: np.nan})))
    assert lrs.set_index("lr").loc[1.0, "diverged"] == 2


def test_verdict_on_hand_made_runs() -> None:
    grows = study.verdict(hand_made({0.01: 0.1, 0.1: 0.12, 0.3: 0.4, 1.0: np.nan}))
    assert grows.reproduced is True
    assert grows.numbers["top_lr"] == 0.3
    assert grows.numbers["top_lr_margin"] == pytest.approx(0.28)
    assert grows.numbers["spearman_rho"] == pytest.approx(1.0, abs=0.15)
    # the shape the preset's learning rates gave: small lr keeps the units dead at init,
    # larger ones revive them, the largest diverges
    shrinks = study.verdict(hand_made({0.01: 0.08, 0.1: 0.01, 0.3: 0.02, 1.0: np.nan}))
    assert shrinks.reproduced is False
    assert shrinks.numbers["monotone"] == 0
    assert study.verdict(hand_made({0.01: 0.1, 1.0: 0.5})).reproduced is None  # 2 lrs
    assert study.verdict(hand_made({0.01: 0.1, 0.1: 0.2, 0.3: 0.4}, seeds=1)).reproduced is None


@pytest.mark.slow
def test_quick_sweep_records_dead_units(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("dead_units"))
    table = study.final_dead(sweep).set_index("lr")
    # deep ReLU layers start with units that are off on the whole batch (Lu et al. 2019)
    assert 0 < table.loc[0.01, "initial"] < 0.5
    assert table.loc[0.01, "status"] == "ok" and np.isfinite(table.loc[0.01, "final"])
    assert table.loc[1.0, "status"] == "diverged" and np.isnan(table.loc[1.0, "final"])
    curves = study.dead_curves(sweep)
    assert set(curves[curves["lr"] == 0.01]["step"]) == {0, 20, 40}
    figures = study.figures(sweep)
    assert set(figures) == {"dead_over_training", "dead_by_layer"}
    for fig in figures.values():
        assert isinstance(fig, Figure) and any(ax.lines or ax.collections for ax in fig.axes)
    verdict = STUDIES["dead_units"].verdict(sweep)
    assert isinstance(verdict, Verdict) and verdict.reproduced is None
    assert verdict.numbers["diverged_lr1"] == 1
