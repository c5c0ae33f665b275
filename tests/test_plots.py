"""Figures: built from tidy frames, with theory drawn over measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import at_init

from depthlab import plots, theory
from depthlab.data import Teacher
from depthlab.results import load_sweep
from depthlab.train import train


def test_phase_diagram_data_and_figure() -> None:
    frame = theory.phase_diagram("tanh", np.array([1.0, 1.761, 3.0]), np.array([0.05]))
    chi = frame.set_index("sigma_w2")["chi_1"]
    assert chi[1.0] < 1 < chi[3.0] and chi[1.761] == pytest.approx(1.0, abs=2e-3)
    depth = frame.set_index("sigma_w2")["trainable_depth"]
    assert depth[1.761] > 10 * max(depth[1.0], depth[3.0])  # 6 xi_c peaks at criticality
    fig = plots.phase_diagram(
        theory.phase_diagram("tanh", np.linspace(0.8, 3, 5), np.array([0.0, 0.05, 0.5]))
    )
    assert len(fig.axes) == 4  # two panels and their colour bars


def test_delta_profile_draws_measurement_and_theory_for_a_sweep(tmp_path: Path) -> None:
    data = Teacher(in_dim=32, num_train=128, num_test=16)
    for job, sigma_w2 in enumerate((1.0, 2.5)):
        train(at_init(data, 128, depth=8, width=64, sigma_w2=sigma_w2), tmp_path / str(job))
    fig = plots.delta_profile(load_sweep(tmp_path))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_legend().get_title().get_text() == "init.sigma_w2"
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(solid) == 2 and len(dashed) == 2  # measured and predicted, per run
    for measured, predicted in zip(solid, dashed, strict=True):
        assert measured.get_ydata()[-1] == pytest.approx(predicted.get_ydata()[-1])
