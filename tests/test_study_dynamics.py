"""The dynamics study: steps to criterion, the best lr per cell, and verdicts that must pass
on Saxe's and Pennington's picture and fail without it, on planted loss curves whose time
to criterion is known in closed form; then the phenomenon on depthlab's own deep linear
nets (the quick preset)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import memory_sweep

from depthlab.results import load_sweep
from depthlab.studies import STUDIES
from depthlab.studies._dynamics_times import steps_to
from depthlab.studies.dynamics import CRITERION, best, summary, times, verdict

FLOOR = {"linear": 1.6, "tanh": 0.2}  # the planted curves' asymptotes
START = 2.4


def test_steps_to_interpolates_between_evaluations_and_censors() -> None:
    steps = np.array([0, 10, 20, 30])
    assert steps_to(steps, np.array([2.0, 1.8, 1.6, 1.4]), 1.7) == pytest.approx(15.0)
    assert steps_to(steps, np.array([1.0, 0.9, 0.8, 0.7]), 1.7) == 0.0
    assert steps_to(steps, np.array([2.0, 1.9, 1.8, 1.75]), 1.7) == np.inf  # not reached
    assert steps_to(steps, np.array([2.0, np.nan, 1.0, 1.0]), 1.7) == np.inf  # diverged first


def planted_time(activation: str, init: str, depth: int, lr: float, speed) -> float:
    """tau(activation, init, depth) * a penalty for an lr away from the best lr, 0.1:
    1.6x at 0.03 and 0.3, 2.25x at 0.01."""
    return speed(activation, init, depth) * (1 + 1.25 * abs(np.log10(lr / 0.1)))


def planted_sweep(
    speed, seeds: int = 3, depths=(4, 16, 64), activations=("linear", "tanh"), noise=0.1
):
    """Loss curves L(t) = floor + (START - floor) exp(-t / tau) evaluated every 10 steps for
    400 steps, tau from ``speed(activation, init, depth)`` times an lr penalty, with
    ``noise`` (log-normal, per run) on tau."""
    rng = np.random.default_rng(0)
    runs, metrics = [], []
    for activation in activations:
        for init in ("orthogonal", "gaussian"):
            for depth in depths:
                for lr in (0.01, 0.03, 0.1, 0.3):
                    for seed in range(seeds):
                        run_id = f"{activation}-{init}-{depth}-{lr}-{seed}"
                        tau = planted_time(activation, init, depth, lr, speed)
                        tau *= np.exp(rng.normal(0, noise))
                        runs.append(
                            dict(
                                run_id=run_id,
                                activation=activation,
                                init=init,
                                depth=depth,
                                lr=lr,
                                seed=seed,
                                steps=400,
                                data="mnist1d",
                                status="ok",
                            )
                        )
                        floor = FLOOR[activation]
                        for step in range(0, 401, 10):
                            loss = floor + (START - floor) * np.exp(-step / tau)
                            metrics.append((run_id, seed, step, 0, "loss", loss))
    return memory_sweep(runs, metrics)


def saxe(activation: str, init: str, depth: int) -> float:
    """Orthogonal: flat in depth; Gaussian: tau grows like sqrt(depth)."""
    return 20.0 if init == "orthogonal" else 20.0 * np.sqrt(depth / 4)


def test_times_follow_the_planted_closed_form() -> None:
    sweep = planted_sweep(saxe, seeds=1, depths=(4,), activations=("linear",), noise=0.0)
    table = times(sweep).set_index("run_id")
    row = table.loc["linear-orthogonal-4-0.1-0"]
    tau = row["time"] / np.log((START - FLOOR["linear"]) / (CRITERION["linear"] - FLOOR["linear"]))
    assert tau == pytest.approx(20.0, rel=0.01)  # linear interpolation between evaluations
    cells = best(times(sweep))
    assert (cells["best_lr"] == 0.1).all() and not cells["at_edge"].any()
    # the good range: lrs within 2x of the best time; 0.03 and 0.3 are 1.6x slower, 0.01 2.25x
    assert (cells["lr_low"] == 0.03).all() and (cells["lr_high"] == 0.3).all()


def test_verdict_reproduces_on_saxe_and_pennington_picture() -> None:
    result = verdict(planted_sweep(saxe))
    assert result.reproduced is True, result.text
    assert result.numbers["linear_orthogonal_spread"] < 1.3
    assert result.numbers["linear_factor_depth64"] == pytest.approx(4.0, rel=0.25)
    assert result.numbers["tanh_factor_depth64"] > result.numbers["tanh_factor_depth4"]


@pytest.mark.parametrize(
    "speed",
    [
        pytest.param(lambda a, i, d: 20.0 * np.sqrt(d / 4), id="both-inits-slow-with-depth"),
        pytest.param(lambda a, i, d: 20.0, id="no-difference"),
        pytest.param(
            lambda a, i, d: 20.0 * (np.sqrt(d / 4) if a == "linear" and i == "gaussian" else 1),
            id="tanh-gaussian-as-fast",
        ),
        pytest.param(
            lambda a, i, d: 20.0 * (3.0 if i == "gaussian" else 1.0), id="factor-does-not-grow"
        ),
    ],
)
def test_verdict_fails_without_the_phenomenon(speed) -> None:
    assert verdict(planted_sweep(speed)).reproduced is False


def test_verdict_is_undecided_with_one_seed_or_one_depth_and_censors_slow_runs() -> None:
    assert verdict(planted_sweep(saxe, seeds=1)).reproduced is None
    assert verdict(planted_sweep(saxe, depths=(16,))).reproduced is None
    # Gaussian tanh at depth 64 never gets there within 400 steps: still decided, factor inf
    slow = planted_sweep(
        lambda a, i, d: (
            20.0 * (100 if (a, i, d) == ("tanh", "gaussian", 64) else saxe(a, i, d) / 20)
        )
    )
    result = verdict(slow)
    assert result.reproduced is True and np.isinf(result.numbers["tanh_factor_depth64"])
    per = summary(best(times(slow)))
    assert (
        per.set_index(["activation", "init", "depth"]).loc[("tanh", "gaussian", 64), "censored"]
        == 3
    )


@pytest.mark.slow
def test_the_quick_sweep_is_saxe_in_miniature(quick_sweep) -> None:
    """Depthlab's own deep linear nets (width 128, two seeds): at depth 32 the Gaussian net
    needs clearly more steps than the orthogonal one, which needs about as many as at depth 4;
    the tanh claim is left to the full preset."""
    sweep = load_sweep(quick_sweep("dynamics"))
    result = verdict(sweep)
    assert result.reproduced is True, result.text
    assert result.numbers["linear_orthogonal_spread"] < 1.5
    assert result.numbers["linear_factor_depth32"] >= 1.5
    assert "full preset" in result.text
    figures = STUDIES["dynamics"].figures(sweep)
    assert set(figures) == {"steps_to_criterion", "lr_sensitivity", "loss"}
    assert all(fig.axes[0].has_data() for fig in figures.values())
