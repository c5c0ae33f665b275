"""The saturation study: its transforms on a hand-made sweep, and the quick preset."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from helpers import memory_sweep

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies.saturation import layer_stats, top_layer_dip, verdict

STEPS = [0, 100, 200, 300, 400, 1000]


LONG = [0, 100, 200, 300, 20_000, 40_000]


def sweep_of(top_means: dict[tuple[int, int], list[float]], steps: list[int] = STEPS) -> Sweep:
    """Runs keyed (depth, seed) whose top hidden layer has the given act_mean at ``steps``;
    the lower layers sit at 0.5, the output layer (depth + 1) at 0.02 and must be ignored."""
    runs, rows = [], []
    for (depth, seed), means in top_means.items():
        run_id = f"d{depth}s{seed}"
        runs.append({"run_id": run_id, "depth": depth, "seed": seed, "status": "ok"})
        for step, top in zip(steps, means, strict=True):
            for layer in range(1, depth + 2):
                mean = top if layer == depth else 0.02 if layer > depth else 0.5
                for metric, value in (("act_mean", mean), ("act_std", 0.1), ("saturation", 0.0)):
                    rows.append((run_id, seed, step, layer, metric, value))
    return memory_sweep(runs, rows)


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
    assert row.escape_step == 1000  # the first step after the minimum at 5x it (0.25) or more
    assert row.lower_mean == pytest.approx(0.5)


STUCK = [0.5, 0.2, 0.05, 0.04, 0.03, 0.03]


def test_a_short_sweep_is_judged_on_the_fall_and_says_the_escape_is_untested() -> None:
    good = verdict(sweep_of({(4, 0): DIP, (5, 0): STUCK}))
    assert good.reproduced is True
    assert good.numbers["depth4_min_mean_max"] == pytest.approx(0.05)
    assert good.numbers["depth5_escaped_runs"] == 0
    assert "min 0.050 at update 200" in good.text
    assert "Claims 3 and 4 (depth 4 escapes, depth 5 does not) were not tested" in good.text
    slow_dip = [0.5, 0.45, 0.4, 0.35, 0.3, 0.2]  # halfway only after 500 updates
    assert verdict(sweep_of({(4, 0): DIP, (5, 0): slow_dip})).reproduced is False
    assert verdict(sweep_of({(4, 0): DIP})).reproduced is None  # no depth 5


def test_a_long_sweep_needs_depth_4_to_escape_and_depth_5_to_stay() -> None:
    def judged(depth4: list[list[float]], depth5: list[list[float]]) -> bool | None:
        runs = {(4, s): m for s, m in enumerate(depth4)} | {(5, s): m for s, m in enumerate(depth5)}
        return verdict(sweep_of(runs, LONG)).reproduced

    result = verdict(sweep_of({(4, 0): DIP, (4, 1): STUCK, (5, 0): STUCK}, LONG))
    assert result.reproduced is True  # half of depth 4 escapes (at 40,000), no depth 5 does
    assert result.numbers["depth4_escape_step_median"] == 40_000
    assert "escaped at 40000" in result.text and "no escape" in result.text
    assert judged([STUCK, STUCK], [STUCK]) is False  # depth 4 never escapes
    assert judged([DIP], [STUCK, DIP]) is False  # a depth-5 run escapes


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
    dips = top_layer_dip(table).set_index("depth")
    for depth in (4, 5):
        row = dips.loc[depth]
        assert row.start_mean == pytest.approx(0.5, abs=0.05)
        assert row.min_mean < 0.3  # falling within 1000 updates
        assert abs(row.lower_mean - 0.5) < 0.1
    # the quantiles bracket the median and the mean sits inside the 2-98% band
    assert (table["q02"] <= table["q16"]).all() and (table["q16"] <= table["q50"]).all()
    assert (table["q50"] <= table["q84"]).all() and (table["q84"] <= table["q98"]).all()
    assert ((table["q02"] <= table["mean"]) & (table["mean"] <= table["q98"])).all()
    result = STUDIES["saturation"].verdict(sweep)
    assert result.reproduced is not None and "were not tested" in result.text
    figs = STUDIES["saturation"].figures(sweep)
    assert set(figs) == {"activations", "saturated", "distribution"}
    for fig in figs.values():
        plt.close(fig)
