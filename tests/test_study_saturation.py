"""The saturation study: its transforms on a hand-made sweep, and the quick preset."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies.saturation import layer_stats, top_layer_dip, verdict

STEPS = [0, 100, 200, 300, 400, 1000]


def sweep_of(top_means: dict[tuple[int, int], list[float]]) -> Sweep:
    """Runs keyed (depth, seed) whose top hidden layer has the given act_mean at STEPS; the
    lower layers sit at 0.5, the output layer (depth + 1) at 0.02 and must be ignored."""
    runs, rows = [], []
    for (depth, seed), means in top_means.items():
        run_id = f"d{depth}s{seed}"
        runs.append({"run_id": run_id, "depth": depth, "seed": seed, "status": "ok"})
        for step, top in zip(STEPS, means, strict=True):
            for layer in range(1, depth + 2):
                mean = top if layer == depth else 0.02 if layer > depth else 0.5
                for metric, value in (("act_mean", mean), ("act_std", 0.1), ("saturation", 0.0)):
                    rows.append((run_id, seed, step, layer, metric, value))
    metrics = pd.DataFrame(rows, columns=["run_id", "seed", "step", "layer", "metric", "value"])
    return Sweep(Path("."), pd.DataFrame(runs), metrics)


DIP = [0.5, 0.2, 0.05, 0.1, 0.2, 0.3]  # halfway by 100, minimum 0.05 at 200, back to 0.3


def test_top_layer_dip_reads_the_minimum_its_step_and_the_recovery() -> None:
    table = layer_stats(sweep_of({(4, 0): DIP}))
    assert sorted(table["layer"].unique()) == [1, 2, 3, 4]  # the output layer is left out
    (row,) = top_layer_dip(table).itertuples()
    assert row.min_mean == pytest.approx(0.05)
    assert row.min_step == 200
    assert row.halfway_step == 100
    assert row.last_mean == pytest.approx(0.3) and row.last_step == 1000
    assert row.recovered  # 0.3 >= 0.05 + (0.5 - 0.05) / 2 = 0.275
    assert row.lower_mean == pytest.approx(0.5)


def test_verdict_needs_the_dip_at_both_depths() -> None:
    stuck = [0.5, 0.2, 0.05, 0.04, 0.03, 0.03]
    good = verdict(sweep_of({(4, 0): DIP, (5, 0): stuck}))
    assert good.reproduced is True
    assert good.numbers["depth4_min_mean_max"] == pytest.approx(0.05)
    assert good.numbers["depth5_recovered_runs"] == 0
    assert "min 0.050 at update 200" in good.text
    slow_dip = [0.5, 0.45, 0.4, 0.35, 0.3, 0.2]  # halfway only after 500 updates
    assert verdict(sweep_of({(4, 0): DIP, (5, 0): slow_dip})).reproduced is False
    assert verdict(sweep_of({(4, 0): DIP})).reproduced is None  # no depth 5


def test_verdict_fails_when_a_lower_layer_sags_too() -> None:
    sweep = sweep_of({(4, 0): DIP, (5, 0): DIP})
    rows = sweep.metrics
    sag = (rows["metric"] == "act_mean") & (rows["layer"] == 1)
    rows.loc[sag, "value"] = 0.2  # the first layer sits at 0.2, not near 0.5
    result = verdict(sweep)
    assert result.reproduced is False
    assert result.numbers["depth5_lower_lowest_min"] == pytest.approx(0.2)


@pytest.mark.slow
def test_quick_sweep_top_layer_falls_below_the_lower_layers(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("saturation"))
    table = layer_stats(sweep)
    (row,) = top_layer_dip(table).itertuples()
    assert row.start_mean == pytest.approx(0.5, abs=0.05)
    assert row.last_mean < 0.3  # falling within 200 updates (0.19 on this machine)
    assert abs(row.lower_mean - 0.5) < 0.1
    assert STUDIES["saturation"].verdict(sweep).reproduced is None  # 200 updates, depth 4 only
    figs = STUDIES["saturation"].figures(sweep)
    assert set(figs) == {"activations", "saturated"}
    for fig in figs.values():
        plt.close(fig)
