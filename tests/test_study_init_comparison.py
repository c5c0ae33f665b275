"""The init_comparison study: transforms on hand-made records, and the quick preset."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import memory_sweep
from matplotlib.figure import Figure

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES, Verdict
from depthlab.studies import init_comparison as study

# init, per-layer ratio ||delta^l||^2 / ||delta^{l+1}||^2, loss at step 0 and at the end
RUNS = [
    ("kaiming_normal", 1.0, 3.5, 1.2),
    ("xavier_normal", 0.5, 2.3026, 2.3020),
]


def hand_made(runs=RUNS, depth: int = 30, steps: int = 500) -> Sweep:
    """Runs whose step-0 ||delta^l||^2 is exactly geometric with the given ratio, theory
    equal, and whose training loss goes linearly from its start to its end value."""
    rows, metrics = [], []
    layers = np.arange(1, depth + 2)
    for i, (init, ratio, start, end) in enumerate(runs):
        run_id = f"r{i}"
        rows.append(
            {
                "run_id": run_id,
                "study": "init_comparison",
                "init": init,
                "depth": depth,
                "steps": steps,
                "status": "ok",
                "final_accuracy": 0.5,
            }
        )
        norms = ratio ** (0.5 * (layers.max() - layers))
        metrics += [
            (run_id, 0, 0, int(l), "delta_norm", v) for l, v in zip(layers, norms, strict=True)
        ]
        metrics += [(run_id, 0, 0, int(l), "predicted_delta_ratio", ratio) for l in layers[:-1]]
        for step in range(0, steps + 1, 50):
            loss = start + (end - start) * step / steps
            metrics.append((run_id, 0, step, 0, "loss", loss))
    return memory_sweep(rows, metrics)


def test_layer_ratios_of_a_geometric_profile() -> None:
    ratios = study.layer_ratios(hand_made())
    assert len(ratios) == 2 * 29  # hidden layers 1..L-2 of a depth-30 net
    summary = study.ratio_summary(ratios).set_index("init")
    assert summary.loc["kaiming_normal", "median_ratio"] == pytest.approx(1.0)
    assert summary.loc["xavier_normal", "median_ratio"] == pytest.approx(0.5)
    assert summary.loc["xavier_normal", "geomean_ratio"] == pytest.approx(0.5)
    assert summary.loc["xavier_normal", "predicted_ratio"] == pytest.approx(0.5)


def test_training_reads_first_and_last_loss() -> None:
    table = study.training(hand_made()).set_index("init")
    assert table.loc["kaiming_normal", "initial_loss"] == pytest.approx(3.5)
    assert table.loc["kaiming_normal", "final_loss"] == pytest.approx(1.2)
    assert table.loc["xavier_normal", "loss_drop"] == pytest.approx(1 - 2.3020 / 2.3026)


def test_verdict_on_hand_made_runs() -> None:
    verdict = study.verdict(hand_made())
    assert verdict.reproduced is True
    assert verdict.numbers["kaiming_normal_median_ratio"] == pytest.approx(1.0)
    assert verdict.numbers["xavier_normal_median_ratio"] == pytest.approx(0.5)
    # Kaiming only falling to chance (ln 10) is no training; nor is Xavier learning
    assert (
        study.verdict(hand_made([("kaiming_normal", 1.0, 3.5, 2.30), RUNS[1]])).reproduced is False
    )
    assert study.verdict(hand_made([RUNS[0], ("xavier_normal", 0.5, 2.3, 1.5)])).reproduced is False
    assert study.verdict(hand_made(steps=20)).reproduced is None
    # trains: a fixed margin below the stalled Xavier runs, not a fraction of their loss
    barely = study.verdict(hand_made([("kaiming_normal", 1.0, 3.5, 2.10), RUNS[1]]))
    assert barely.reproduced is False and barely.numbers["worst_case_gap"] < study.MARGIN
    clearly = study.verdict(hand_made([("kaiming_normal", 1.0, 3.5, 1.80), RUNS[1]]))
    assert clearly.reproduced is True


@pytest.mark.slow
def test_quick_sweep_ratios_match_he_et_al(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("init_comparison"))
    summary = study.ratio_summary(study.layer_ratios(sweep)).set_index("init")
    # width 64: finite-width scatter, but the medians sit at theory's 1 and 1/2
    assert summary.loc["kaiming_normal", "median_ratio"] == pytest.approx(1.0, abs=0.15)
    assert summary.loc["xavier_normal", "median_ratio"] == pytest.approx(0.5, abs=0.08)
    runs = sweep.runs.set_index("init")
    assert runs.loc["xavier_normal", "delta_ratio_initial"] < 1e-3  # 2^-15 in ||delta||
    figures = study.figures(sweep)
    assert set(figures) == {"delta_profiles", "training_loss"}
    for fig in figures.values():
        assert isinstance(fig, Figure) and any(ax.lines for ax in fig.axes)
    verdict = STUDIES["init_comparison"].verdict(sweep)
    assert isinstance(verdict, Verdict) and verdict.reproduced is True  # 500 steps: decides
    assert verdict.numbers["worst_case_gap"] > study.MARGIN
