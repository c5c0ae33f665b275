"""The curvature study: early and late negative curvature of a hand-made sweep, and the quick
preset."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from helpers import memory_sweep

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies.curvature import early_late, eigenvalues, verdict

STEPS = [0, 25, 50, 100, 200, 300]


def sweep_of(runs: dict[tuple[int, int], list[tuple[float, float]]]) -> Sweep:
    """Runs keyed (depth, seed) with (lambda_max, lambda_min) at STEPS and a falling loss."""
    rows, metrics = [], []
    for (depth, seed), pairs in runs.items():
        run_id = f"d{depth}s{seed}"
        rows.append({"run_id": run_id, "depth": depth, "lr": 0.05, "seed": seed, "status": "ok"})
        for k, (step, (high, low)) in enumerate(zip(STEPS, pairs, strict=True)):
            metrics += [
                (run_id, seed, step, 0, "hessian_max", high),
                (run_id, seed, step, 0, "hessian_min", low),
                (run_id, seed, step, 0, "loss", 2.3 - 0.1 * k),
            ]
    return memory_sweep(rows, metrics)


# r = 0.5, 0.25, 0.3 early (mean 0.35); then 0.1, 0.02 and, at the last step, none negative
SHRINKING = [(2.0, -1.0), (2.0, -0.5), (2.0, -0.6), (4.0, -0.4), (5.0, -0.1), (5.0, 0.01)]
GROWING = [(2.0, -0.2), (2.0, -0.2), (2.0, -0.2), (2.0, -0.5), (2.0, -0.8), (2.0, -1.0)]


def test_ratio_early_and_late_of_a_hand_made_run() -> None:
    table = eigenvalues(sweep_of({(2, 0): SHRINKING}))
    assert table["ratio"].tolist() == pytest.approx([0.5, 0.25, 0.3, 0.1, 0.02, 0.0])
    (row,) = early_late(table).itertuples()
    assert row.early_ratio == pytest.approx(0.35)
    assert row.late_ratio == 0.0 and row.last_step == 300
    assert row.early_lambda_min == pytest.approx(-0.7) and row.late_lambda_max == 5.0
    assert row.negative_early and not row.negative_late


def test_verdict_wants_negative_curvature_early_that_shrinks_at_both_depths() -> None:
    four = {(d, s): SHRINKING for d in (2, 8) for s in range(4)}
    result = verdict(sweep_of(four))
    assert result.reproduced is True
    assert result.numbers["depth8_early_ratio_median"] == pytest.approx(0.35)
    assert result.numbers["depth2_shrunk_share"] == 1.0
    assert "smaller in 4/4 runs" in result.text
    assert result.numbers["depth2_late_lambda_min_median"] == 0.01  # none negative at the end
    # two of the four deep runs grow: 50% < 75%
    mixed = {**four, (8, 0): GROWING, (8, 1): GROWING}
    assert verdict(sweep_of(mixed)).numbers["depth8_shrunk_share"] == 0.5
    assert verdict(sweep_of(mixed)).reproduced is False
    assert verdict(sweep_of({(2, 0): SHRINKING})).reproduced is None  # one depth only


@pytest.mark.slow
def test_quick_sweep_has_negative_curvature_at_initialisation(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("curvature"))
    table = eigenvalues(sweep)
    start = table[table["step"] == 0].iloc[0]
    assert start["lambda_max"] > 0 > start["lambda_min"]  # a saddle, not a minimum
    assert start["ratio"] > 0.1  # and not a marginal one (0.76 on this machine)
    assert STUDIES["curvature"].verdict(sweep).reproduced is None  # 20 steps, depth 2 only
    figs = STUDIES["curvature"].figures(sweep)
    assert set(figs) == {"eigenvalues", "ratio"}
    for fig in figs.values():
        plt.close(fig)
