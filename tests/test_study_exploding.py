"""The exploding study: its transforms on hand-made records, and the quick preset's science."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import memory_sweep
from matplotlib.figure import Figure

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES, Verdict
from depthlab.studies import exploding as study

RUNS = [  # activation, sigma_w2, per-layer growth of ||delta|| towards the input, status
    ("tanh", 4.0, 0.15, "ok"),
    ("tanh", 1.0, -0.05, "ok"),
    ("relu", 4.0, np.log(2) / 2, "diverged"),
    ("relu", 1.0, -np.log(2) / 2, "ok"),
]


def hand_made(runs=RUNS, depth: int = 10, steps: int = 200) -> Sweep:
    """Runs whose step-0 ||delta^l|| is exactly geometric, exp(g (L - l)), theory equal."""
    rows, metrics = [], []
    layers = np.arange(1, depth + 2)
    for i, (act, sigma, g, status) in enumerate(runs):
        run_id = f"r{i}"
        rows.append(
            {
                "run_id": run_id,
                "study": "exploding",
                "activation": act,
                "init.sigma_w2": sigma,
                "init.sigma_b2": 0.0,
                "depth": depth,
                "steps": steps,
                "status": status,
                "diverged_step": 2.0 if status == "diverged" else np.nan,
                "final_loss": np.nan if status == "diverged" else 1.0,
            }
        )
        log_norm = g * (layers.max() - layers)
        for metric, values in (
            ("delta_norm", np.exp(log_norm)),
            ("predicted_log_delta_norm", log_norm),
        ):
            metrics += [
                (run_id, 0, 0, int(l), metric, float(v))
                for l, v in zip(layers, values, strict=True)
            ]
    return memory_sweep(rows, metrics)


def test_growth_of_a_geometric_profile_is_its_rate() -> None:
    table = study.growth(hand_made()).set_index("run_id")
    expected = [g for *_, g, _ in RUNS]
    assert table["measured_growth"].to_numpy() == pytest.approx(expected, abs=1e-12)
    assert table["predicted_growth"].to_numpy() == pytest.approx(expected, abs=1e-12)


def test_phases_follow_mean_field_theory() -> None:
    assert study.phase("tanh", 4.0, 0.0) == "chaotic"
    assert study.phase("tanh", 1.0, 0.0) == "critical"
    assert study.phase("tanh", 0.5, 0.0) == "ordered"
    assert study.phase("relu", 2.0, 0.0) == "critical"
    relu = study.mean_field("relu", 4.0, 0.0)
    assert relu["blows_up"] and relu["phase"] == "chaotic"
    assert relu["chi"] == pytest.approx(2.0)  # chi_1 itself is inf: q* does not exist
    assert not study.mean_field("tanh", 4.0, 0.0)["blows_up"]
    assert study.mean_field("tanh", 4.0, 0.0)["chi"] == pytest.approx(1.3627, abs=1e-4)


def test_verdict_on_hand_made_runs() -> None:
    verdict = study.verdict(hand_made())
    assert verdict.reproduced is True
    assert verdict.numbers["growth_rel_error_median"] == pytest.approx(0, abs=1e-9)
    assert verdict.numbers["blowup_diverged_fraction"] == 1
    # an ordered run that diverges breaks the claim; a blow-up run that stays ok too
    assert (
        study.verdict(hand_made([*RUNS[:3], ("relu", 1.0, -0.35, "diverged")])).reproduced is False
    )
    assert (
        study.verdict(hand_made([*RUNS[:2], ("relu", 4.0, 0.35, "ok"), RUNS[3]])).reproduced
        is False
    )
    assert study.verdict(hand_made(steps=20)).reproduced is None  # too short to judge


@pytest.mark.slow
def test_quick_sweep_shows_explosion_and_a_recorded_divergence(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("exploding"))
    runs = sweep.runs.set_index(["activation", "init.sigma_w2"])
    assert runs.loc[("relu", 4.0), "status"] == "diverged"
    assert runs.loc[("relu", 4.0), "diverged_step"] >= 0
    assert (runs.loc[[("tanh", 1.0), ("relu", 1.0)], "status"] == "ok").all()
    table = study.growth(sweep).set_index(["activation", "init.sigma_w2"])
    relu = table.loc[("relu", 4.0)]
    assert relu["measured_growth"] == pytest.approx(np.log(2) / 2, rel=0.15)  # chi = 2
    assert table.loc[("tanh", 4.0), "measured_growth"] > 0.1  # chi_1 = 1.36: 0.155
    assert table.loc[("relu", 1.0), "measured_growth"] < -0.3  # ordered, chi = 1/2
    figures = study.figures(sweep)
    assert set(figures) == {"delta_profiles", "growth", "outcomes"}
    for fig in figures.values():
        assert isinstance(fig, Figure)
        assert any(ax.lines or ax.collections for ax in fig.axes)
    verdict = STUDIES["exploding"].verdict(sweep)
    assert isinstance(verdict, Verdict) and verdict.reproduced is True  # 100 steps: it decides
    assert verdict.numbers["blowup_diverged_fraction"] == 1
