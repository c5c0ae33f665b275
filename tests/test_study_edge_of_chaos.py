"""The edge_of_chaos study: trainable depths, the fit L_max = c xi_c, the verdict (which must
find a planted constant and fail on a wrong one), the figure's lines and the quick preset."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import memory_sweep

from depthlab import theory
from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies._edge_of_chaos_depths import seed_depths
from depthlab.studies._edge_of_chaos_figures import theory_line
from depthlab.studies.edge_of_chaos import (
    depth_limits,
    fit_constant,
    heatmap_figure,
    trainability,
    verdict,
)

SIGMA_B2 = 0.05
SIGMA_W2 = [1.0, 1.2, 1.4, 2.5, 3.0, 4.0]  # xi_c from 3.6 to 13, away from the critical line
DEPTHS = np.unique(np.geomspace(4, 400, 40).round().astype(int))  # fine: L is resolved to 6%
SEED_FACTORS = [0.8, 1.0, 1.25]  # each seed's trainable depth, relative to the planted one


def sweep_of(runs: list[tuple[float, int, int, float, str]]) -> Sweep:
    """tanh runs (sigma_w2, depth, seed, final_accuracy, status) at sigma_b2 = 0.05, each
    with an initial training loss of 2.3 and a final one of 2.0."""
    rows, metrics = [], []
    for i, (sigma_w2, depth, seed, accuracy, status) in enumerate(runs):
        run_id = f"r{i}"
        rows.append(
            {
                "run_id": run_id,
                "activation": "tanh",
                "init.sigma_w2": sigma_w2,
                "init.sigma_b2": SIGMA_B2,
                "depth": depth,
                "seed": seed,
                "status": status,
                "final_accuracy": accuracy,
                "final_loss": 2.0,
            }
        )
        metrics.append((run_id, seed, 0, 0, "loss", 2.3))
    return memory_sweep(rows, metrics)


def planted(limit, sigma_w2=SIGMA_W2, factors=SEED_FACTORS) -> Sweep:
    """A sweep whose seed s at sigma_w2 trains exactly below factors[s] * limit(xi_c)."""
    runs = []
    for w in sigma_w2:
        xi = theory.xi_c("tanh", w, SIGMA_B2)
        for seed, factor in enumerate(factors):
            for depth in DEPTHS:
                trained = depth < factor * limit(xi)
                runs.append((w, int(depth), seed, 0.6 if trained else 0.1, "ok"))
    return sweep_of(runs)


def test_a_planted_constant_is_recovered_with_an_interval_that_holds_it() -> None:
    for constant in (3.0, 6.0, 9.0):
        fit = fit_constant(trainability(planted(lambda xi, c=constant: c * xi)))
        assert fit is not None and fit.points == len(SIGMA_W2)
        assert fit.c == pytest.approx(constant, rel=0.06)
        assert fit.c_low <= constant <= fit.c_high
        assert fit.c_high / fit.c_low < 1.6  # three seeds 0.8x-1.25x apart
        assert fit.slope == pytest.approx(1.0, abs=0.05)


def test_the_verdict_passes_the_paper_and_fails_otherwise() -> None:
    assert verdict(planted(lambda xi: 6 * xi)).reproduced is True
    too_deep = verdict(planted(lambda xi: 30 * xi))  # c = 30: not "about 6"
    assert too_deep.reproduced is False
    assert too_deep.numbers["c"] == pytest.approx(30, rel=0.06)
    flat = verdict(planted(lambda xi: 50.0))  # depth limit unrelated to xi_c: slope 0
    assert flat.reproduced is False
    assert abs(flat.numbers["slope"]) < 0.1
    square = verdict(planted(lambda xi: 0.5 * xi**2))  # slope 2, constant "near 6" on average
    assert square.reproduced is False


def test_trainable_depth_per_seed_and_censoring() -> None:
    runs = [
        (1.0, 10, 0, 0.5, "ok"),
        (1.0, 20, 0, 0.5, "ok"),
        (1.0, 40, 0, 0.1, "ok"),
        (1.0, 10, 1, 0.5, "ok"),
        (1.0, 20, 1, 0.5, "diverged"),  # a diverged run has not trained
        (1.0, 40, 1, 0.1, "ok"),
        (1.4, 10, 0, 0.5, "ok"),
        (1.4, 20, 0, 0.5, "ok"),
        (1.4, 40, 0, 0.5, "ok"),  # trains at the deepest depth: a lower bound
        (3.0, 10, 0, 0.1, "ok"),  # trains nowhere
        (3.0, 20, 0, 0.1, "ok"),
        (3.0, 40, 0, 0.1, "ok"),
    ]
    table = trainability(sweep_of(runs))
    per_seed = seed_depths(table).set_index(["sigma_w2", "seed"])
    assert per_seed.loc[(1.0, 0), "depth_limit"] == pytest.approx(np.sqrt(20 * 40))
    assert per_seed.loc[(1.0, 1), "depth_limit"] == pytest.approx(np.sqrt(10 * 20))
    assert per_seed.loc[(1.4, 0), "censored"] == "above"
    assert per_seed.loc[(3.0, 0), "censored"] == "below"
    limits = depth_limits(table).set_index("sigma_w2")
    assert limits.loc[1.0, "L_max"] == pytest.approx(np.sqrt(np.sqrt(20 * 40) * np.sqrt(10 * 20)))
    assert (limits.loc[1.0, "L_low"], limits.loc[1.0, "L_high"]) == pytest.approx(
        (np.sqrt(200), np.sqrt(800))
    )
    assert fit_constant(table) is None  # one uncensored sigma_w2 cannot be fitted


def test_too_little_to_fit_is_undecided() -> None:
    one_seed = verdict(planted(lambda xi: 6 * xi, factors=[1.0]))
    assert one_seed.reproduced is None and "1 seed(s)" in one_seed.text
    few = verdict(planted(lambda xi: 6 * xi, sigma_w2=SIGMA_W2[:3]))
    assert few.reproduced is None
    assert verdict(planted(lambda xi: 1e4)).reproduced is None  # censored everywhere


def test_the_drawn_lines_are_six_and_the_fitted_c_xi_c() -> None:
    w = np.array([1.0, 1.3, 2.5])
    line = theory_line("tanh", SIGMA_B2, w)
    expected = [6 * theory.xi_c("tanh", s, SIGMA_B2) for s in w]
    assert line["trainable_depth"].to_numpy() == pytest.approx(expected)
    table = trainability(planted(lambda xi: 4 * xi))
    fit = fit_constant(table)
    fig = heatmap_figure(table, fit)
    lines = {str(x.get_label()): x.get_data() for x in fig.axes[0].lines}
    paper = next(v for k, v in lines.items() if k.startswith("paper"))
    fitted = next(v for k, v in lines.items() if k.startswith("fit"))
    for (x, y), c in ((paper, 6.0), (fitted, fit.c)):
        for i in (0, len(x) // 3, len(x) - 1):
            assert y[i] == pytest.approx(c * theory.xi_c("tanh", x[i], SIGMA_B2))
    assert paper[0].min() < 1.0 and paper[0].max() > 4.0  # it spans the swept sigma_w2
    plt.close(fig)


@pytest.mark.slow
def test_quick_sweep_the_critical_net_learns_at_depth_40(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("edge_of_chaos"))
    table = trainability(sweep)
    assert len(table) == 12  # 3 sigma_w2 x 2 depths x 2 seeds
    loss = table.groupby(["sigma_w2", "depth"])["final_loss"].mean()
    # after 20 steps the off-critical depth-40 nets (beyond 6 xi_c) sit at chance loss,
    # ln 10, or above it; the critical one learns (accuracy after 20 steps is too noisy)
    critical = loss.loc[(1.76, 40)]
    assert critical < np.log(10) - 0.1
    assert critical < loss.loc[(1.0, 40)] - 0.1
    assert critical < loss.loc[(4.0, 40)] - 0.1
    assert STUDIES["edge_of_chaos"].verdict(sweep).reproduced is None
