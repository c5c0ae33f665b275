"""Figures: built from tidy frames, with theory drawn over measurement."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from helpers import at_init, memory_sweep

from depthlab import frames, plots, theory
from depthlab.data import Teacher
from depthlab.results import Sweep, load_sweep
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


def synthetic_rows(run_id: str, depth: int, scale: float, seeds: int) -> list[tuple]:
    """Records that follow known formulas (L = depth + 1): delta_norm = (1 + step) 2^(l-L)
    at steps 0, 10, 20; predicted_delta_ratio 1/2 at layer 1, 1/4 above; loss = scale
    10^(-step/10) at steps 0..30."""
    rows, top = [], depth + 1
    for seed, step, l in itertools.product(range(seeds), (0, 10, 20), range(1, top + 1)):
        rows.append((run_id, seed, step, l, "delta_norm", (1 + step) * 2.0 ** (l - top)))
    for seed, l in itertools.product(range(seeds), range(1, top)):
        rows.append((run_id, seed, 0, l, "predicted_delta_ratio", 0.5 if l == 1 else 0.25))
    for seed, step in itertools.product(range(seeds), range(0, 31, 10)):
        rows.append((run_id, seed, step, 0, "loss", scale * 10.0 ** (-step / 10)))
    return rows


def synthetic_sweep(depths: tuple[int, ...] = (2, 4, 12), seeds: int = 2) -> Sweep:
    """tanh and relu runs at each depth with :func:`synthetic_rows` records (relu's loss
    10x larger); final_loss = depth (x 10 for relu); the deepest relu run diverged."""
    runs, rows = [], []
    for depth, activation in itertools.product(depths, ("tanh", "relu")):
        run_id, scale = f"{activation}{depth}", 10.0 if activation == "relu" else 1.0
        diverged = activation == "relu" and depth == max(depths)
        runs.append(
            {
                "run_id": run_id,
                "status": "diverged" if diverged else "ok",
                "diverged_step": 7 if diverged else None,
                "final_loss": np.nan if diverged else depth * scale,
                "depth": depth,
                "activation": activation,
                "width": 8,
            }
        )
        rows += synthetic_rows(run_id, depth, scale, seeds)
    return memory_sweep(runs, rows, root=Path("synthetic"))


def test_delta_ratios_pair_measured_and_predicted_per_layer() -> None:
    ratios = frames.delta_ratios(synthetic_sweep(depths=(3,), seeds=1))
    assert set(ratios["run_id"]) == {"tanh3", "relu3"}
    one = ratios[ratios["run_id"] == "tanh3"].set_index("layer")
    assert list(one.index) == [1, 2, 3]  # l = 1..L-1, L = 4
    assert np.allclose(one["measured"], 0.25)  # (2^(l-L) / 2^(l+1-L))^2
    assert np.allclose(one["predicted"], [0.5, 0.25, 0.25])
    assert np.allclose(one["ratio"], [0.5, 1.0, 1.0])


@pytest.mark.parametrize("hue", [None, "seed"])
def test_delta_ratio_check_is_log_log_with_every_point(hue: str | None) -> None:
    sweep = synthetic_sweep()
    sweep.runs["seed"] = [0, 1] * 3  # a run key that the metric rows carry too
    fig = plots.delta_ratio_check(sweep, hue=hue)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == len(frames.delta_ratios(sweep)) == 2 * 2 * (2 + 4 + 12)  # runs, seeds, layers
    assert ax.get_legend().get_title().get_text() == (hue or "depth")


def test_delta_heatmap_draws_log10_grids_for_at_most_max_runs() -> None:
    fig = plots.delta_heatmap(synthetic_sweep(), max_runs=4)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.collections and ax.get_title()]
    assert len(panels) == 4 and "4 of 6 runs" in fig.get_suptitle()
    grid = panels[0].collections[0].get_array().reshape(3, 3)  # depth 2: layers 1..3, steps
    assert np.allclose(grid[:, 0], np.log10([0.25, 0.5, 1.0]))  # step 0, layer l: 2^(l-3)
    assert np.allclose(grid[2], np.log10([1, 11, 21]))  # the output layer over the steps


def test_loss_curves_one_line_per_run_log_y_and_diverged_marked() -> None:
    fig = plots.loss_curves(synthetic_sweep())
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(lines) == 6 and ax.get_yscale() == "log"  # 1e-2..10 spans decades
    relu = [line for line in lines if line.get_ydata()[0] == 10.0]
    assert len(relu) == 3  # a line per run, the mean over its seeds
    assert sum(line.get_marker() == "x" for line in ax.get_lines()) == 1  # the diverged run
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["2", "4", "12"]  # by value
    assert ax.get_legend().get_title().get_text() == "depth"
    by_activation = plots.loss_curves(synthetic_sweep(), hue="activation").axes[0]
    assert [t.get_text() for t in by_activation.get_legend().get_texts()] == ["relu", "tanh"]


def test_loss_vs_depth_medians_per_hue_and_runs_without_loss_at_the_top() -> None:
    fig = plots.loss_vs_depth(synthetic_sweep())
    ax = fig.axes[0]
    assert ax.get_legend().get_title().get_text() == "activation"
    medians = {line.get_label(): line for line in ax.get_lines() if line.get_marker() == "o"}
    assert set(medians) == {"relu", "tanh"}
    assert list(medians["tanh"].get_xdata()) == [2, 4, 12]
    assert list(medians["relu"].get_ydata()) == [20.0, 40.0]  # the diverged run has no loss
    lost = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(lost) == 1 and list(lost[0].get_xdata()) == [12]


def test_numeric_legend_in_numeric_order_with_distinct_colours() -> None:
    fig = plots.delta_profile(synthetic_sweep(depths=(3, 10, 100), seeds=1))
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["3", "10", "100"]  # not 10, 100, 3
    assert legend.get_title().get_text() == "depth"
    colors = [np.array(h.get_color()[:3]) for h in legend.legend_handles]
    assert min(np.abs(a - b).sum() for a, b in itertools.combinations(colors, 2)) > 0.3


def test_runs_split_by_every_swept_key_hue_style_then_facets() -> None:
    sweep = synthetic_sweep()  # swept: depth (hue), activation (line style)
    fig = plots.loss_curves(sweep)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 1  # two swept keys: colour and style, no facets
    styles = {
        str(line.get_linestyle()) for line in panels[0].get_lines() if line.get_marker() == "o"
    }
    assert len(styles) == 2  # relu and tanh no longer look alike
    sweep.runs["width"] = [8, 8, 8, 16, 16, 16]  # a third swept key: one panel per width
    fig = plots.loss_curves(sweep)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    assert [ax.get_title(loc="left") for ax in panels] == ["width=8", "width=16"]
    assert sum(len([ln for ln in ax.get_lines() if ln.get_marker() == "o"]) for ax in panels) == 6
    profile = plots.delta_profile(sweep)
    assert len([ax for ax in profile.axes if ax.get_visible()]) == 2


def test_heatmap_labels_the_underflow_area() -> None:
    sweep = synthetic_sweep(depths=(3,), seeds=1)
    sweep.metrics.loc[sweep.metrics["layer"] == 1, "value"] = 0.0  # underflowed to zero
    fig = plots.delta_heatmap(sweep)
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert texts == ["delta underflowed (below float range), zero or not finite"]
    assert plots.delta_heatmap(synthetic_sweep(depths=(3,), seeds=1)).legends == []


def test_a_key_that_does_not_apply_reads_n_a_in_legends_and_panel_titles() -> None:
    sweep = synthetic_sweep(depths=(3, 10), seeds=1)
    sweep.runs["init.sigma_w2"] = [np.nan, 1.0, np.nan, 2.0]  # set for the relu runs only
    fig = plots.loss_curves(sweep, hue="init.sigma_w2")
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())  # top right panel
    assert [t.get_text() for t in legend.get_texts()] == ["1.0", "2.0", "n/a"]
    profile = plots.delta_profile(sweep)  # depth, activation, then sigma_w2 as facets
    titles = [ax.get_title(loc="left") for ax in profile.axes if ax.get_visible()]
    assert titles == ["sigma_w2=1.0", "sigma_w2=2.0", "sigma_w2=n/a"]
