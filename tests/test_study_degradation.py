"""The degradation study (depthlab studies degradation): its verdict on made-up sweeps,
its figures on the quick sweep."""

from __future__ import annotations

import pytest
from helpers import memory_sweep

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES, degradation


def _degradation_sweep(
    plain: list[float], residual: list[float], ratio: float = 0.9, seeds: int = 3, steps: int = 2000
) -> Sweep:
    """Runs over depth 4, 16, 64 x lr 0.01, 0.03, 0.1 x seeds: the final loss of each net at
    its best lr (0.03) as given per depth, 1.5x that at the other lrs, plus 0.01 x seed;
    ``ratio`` is every plain run's ||delta^1|| / ||delta^L|| at step 0 (residual: 1)."""
    rows = []
    for res, losses in ((False, plain), (True, residual)):
        for depth, loss in zip([4, 16, 64], losses, strict=True):
            for lr in (0.01, 0.03, 0.1):
                for seed in range(seeds):
                    final = loss * (1 if lr == 0.03 else 1.5) + 0.01 * seed
                    rows.append({"run_id": f"{res}{depth}{lr}{seed}", "status": "ok",
                                 "final_loss": final, "residual": res, "norm": "none",
                                 "depth": depth, "lr": lr, "seed": seed, "steps": steps,
                                 "delta_ratio_initial": 1.0 if res else ratio})  # fmt: skip
    return memory_sweep(rows)


HE = ([0.01, 0.005, 1.3], [0.003, 0.015, 0.002])  # the pilot's medians: plain, residual


def test_degradation_is_judged_on_the_reachable_loss_with_healthy_gradients() -> None:
    he = degradation.verdict(_degradation_sweep(*HE))
    assert he.reproduced is True, he.text
    assert he.numbers["none_plain_rise"] == pytest.approx(1.295)  # 1.3 - 0.005, per seed
    assert he.numbers["none_advantage"] == pytest.approx(1.298)
    assert he.numbers["none_cells_at_lr_edge"] == 0  # the best lr, 0.03, is inside the grid
    no_rise = degradation.verdict(_degradation_sweep([0.01, 0.005, 0.02], HE[1]))
    assert no_rise.reproduced is False
    both_rise = degradation.verdict(_degradation_sweep(HE[0], [0.003, 0.015, 1.2]))
    assert both_rise.reproduced is False
    # exploding gradients at init: the arm is described, not judged
    exploding = degradation.verdict(_degradation_sweep(*HE, ratio=1.2e5))
    assert exploding.reproduced is None and "NOT healthy" in exploding.text


def test_degradation_needs_seeds_and_long_training_and_counts_divergence_as_the_worst() -> None:
    assert "3 seeds" in degradation.verdict(_degradation_sweep(*HE, seeds=2)).text
    short = degradation.verdict(_degradation_sweep(*HE, steps=400))
    assert short.reproduced is None and "1000 steps" in short.text
    sweep = _degradation_sweep([0.01, 0.005, 0.02], HE[1])
    runs = sweep.runs
    deep_plain = (~runs["residual"]) & (runs["depth"] == 64)
    runs.loc[deep_plain, "status"] = "diverged"  # at every lr: L* is infinite
    assert degradation.verdict(sweep).reproduced is True


@pytest.mark.slow
def test_degradation_figures_on_the_quick_sweep(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("degradation"))
    figures = STUDIES["degradation"].figures(sweep)
    assert set(figures) == {"loss_by_depth", "gradient_by_depth"}
    verdict = degradation.verdict(sweep)
    assert verdict.reproduced is None and "3 depths" in verdict.text  # two depths, one seed
