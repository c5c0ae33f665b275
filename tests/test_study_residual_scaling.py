"""The residual_scaling study: transforms on hand-made records, and the quick preset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import memory_sweep
from matplotlib.figure import Figure

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES, Verdict
from depthlab.studies import residual_scaling as study

LR = 0.05
# init, status, loss at step 0, final loss, weight gradient of every branch layer
RUNS = [
    ("kaiming_normal", "diverged", 1e20, np.nan, 1e10),
    ("scaled_branches", "ok", 3.0, 1.5, 2.0),
    ("skipinit", "ok", 3.0, 1.6, 0.0),
]


def hand_made(runs=RUNS, depth: int = 100, steps: int = 200) -> Sweep:
    """One run per row of ``runs``: weight gradient 1 at layers 1 and L, the given value at
    the branch layers 2..L-1, bias gradients 0; the loss at step 0 and at the end."""
    rows, metrics = [], []
    layers = range(1, depth + 2)
    for i, (init, status, start, end, branch) in enumerate(runs):
        run_id = f"r{i}"
        rows.append(
            {
                "run_id": run_id,
                "study": "residual_scaling",
                "init": init,
                "seed": 0,
                "depth": depth,
                "lr": LR,
                "steps": steps,
                "status": status,
                "diverged_step": 1.0 if status == "diverged" else np.nan,
                "delta_ratio_initial": 1.0,
            }
        )
        metrics.append((run_id, 0, 0, 0, "loss", start))
        if status == "ok":
            metrics.append((run_id, 0, steps, 0, "loss", end))
        for l in layers:
            grad = branch if 2 <= l <= depth else 1.0
            metrics += [(run_id, 0, 0, l, "weight_grad_norm", grad)]
            metrics += [(run_id, 0, 0, l, "bias_grad_norm", 0.0)]
    return memory_sweep(rows, metrics)


def test_first_step_change_sums_squared_gradients() -> None:
    change = study.first_step_change(hand_made(depth=10))
    # layers 1 and L: 1 each; 9 branch layers: 2^2 (scaled_branches), 0 (skipinit)
    assert change["r1"] == pytest.approx(LR * (2 + 9 * 4))
    assert change["r2"] == pytest.approx(LR * 2)


def test_outcomes_flag_frozen_branches_and_loss_drop() -> None:
    table = study.outcomes(hand_made()).set_index("init")
    assert table.loc["skipinit", "branch_grad_max"] == 0
    assert table.loc["scaled_branches", "branch_grad_max"] == 2.0
    assert table.loc["scaled_branches", "loss_drop"] == pytest.approx(0.5)
    assert np.isnan(table.loc["kaiming_normal", "final_loss"])
    assert table.loc["scaled_branches", "overshoot"] == pytest.approx(LR * (2 + 99 * 4) / 3.0)


def test_verdict_demands_a_deep_net_that_trains() -> None:
    assert study.verdict(hand_made()).reproduced is True  # scaled_branches trains, branches learn
    diverged = ("scaled_branches", "diverged", 400.0, np.nan, 1e3)
    frozen = study.verdict(hand_made([RUNS[0], diverged, RUNS[2]]))
    assert frozen.reproduced is False  # skipinit's loss falls, but only 2 layers learn
    assert frozen.numbers["skipinit_branch_grad_max"] == 0
    assert "one-hidden-layer" in frozen.text
    tame = study.verdict(hand_made([("kaiming_normal", "ok", 3.0, 1.0, 1.0), *RUNS[1:]]))
    assert tame.reproduced is False  # the naive init did not blow up
    assert study.verdict(hand_made(depth=30)).reproduced is None


def _outcomes(deep_loss: float, seeds: int = 3, baseline: bool = True) -> pd.DataFrame:
    """Outcome rows: skipinit at depth 100 ending at ``deep_loss`` + 0.02 * seed, and a
    one-hidden-layer baseline at 1.85 + 0.02 * seed (three inits, the same net)."""
    rows = []
    for seed in range(seeds):
        rows.append(("skipinit", 100, seed, "ok", deep_loss + 0.02 * seed))
        if baseline:
            rows += [(init, 1, seed, "ok", 1.85 + 0.02 * seed) for init in study.INITS]
    return pd.DataFrame(rows, columns=["init", "depth", "seed", "status", "final_loss"])


def test_a_deep_net_must_beat_the_one_hidden_layer_baseline_seed_by_seed() -> None:
    trained = {"skipinit_trains_deep": 1.0}
    gains = study.depth_gain(_outcomes(1.70))
    assert gains.loc[0, "gain"] == pytest.approx(0.15) and gains.loc[0, "seeds"] == 3
    assert gains.loc[0, "low"] == pytest.approx(0.15)  # paired: the seed offsets cancel
    assert study.uses_depth(gains, trained)[0] is True
    # an effectively shallow net: no better than one hidden layer
    assert study.uses_depth(study.depth_gain(_outcomes(1.85)), trained)[0] is False
    # too few seeds, or no baseline: left open, with the reason
    assert study.uses_depth(study.depth_gain(_outcomes(1.70, seeds=2)), trained)[0] is None
    open_claim = study.uses_depth(study.depth_gain(_outcomes(1.70, baseline=False)), trained)
    assert open_claim[0] is None and "baseline" in open_claim[1]


def test_a_diverged_deep_run_gains_nothing() -> None:
    table = _outcomes(1.70)
    table.loc[0, ["status", "final_loss"]] = ["diverged", np.nan]
    gains = study.depth_gain(table)
    assert gains.loc[0, "gain"] == -np.inf
    assert study.uses_depth(gains, {"skipinit_trains_deep": 1.0})[0] is False


@pytest.mark.slow
def test_quick_sweep_naive_blows_up_and_skipinit_branches_learn(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("residual_scaling"))
    table = study.outcomes(sweep).set_index("init")
    assert table.loc["kaiming_normal", "status"] == "diverged"
    assert table.loc["kaiming_normal", "delta_ratio_initial"] > 1e4  # 2^(99/2) ideally
    assert table.loc["skipinit", "status"] == "ok"
    # alpha starts at 0, so the branch weights get a gradient once alpha has moved
    assert table.loc["skipinit", "branch_grad_max"] > 0
    assert table.loc["scaled_branches", "branch_grad_max"] > 0
    # 1/sqrt(B) branches start with a far larger loss than the zero-branch net
    assert table.loc["scaled_branches", "initial_loss"] > 3 * table.loc["skipinit", "initial_loss"]
    figures = study.figures(sweep)
    assert set(figures) == {"training_loss", "delta_profiles"}
    for fig in figures.values():
        assert isinstance(fig, Figure) and any(ax.lines for ax in fig.axes)
    verdict = STUDIES["residual_scaling"].verdict(sweep)
    assert isinstance(verdict, Verdict) and verdict.reproduced is True  # claims (1) and (2)
    assert "needs a one-hidden-layer baseline" in verdict.text
