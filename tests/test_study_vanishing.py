"""The vanishing study (depthlab studies vanishing) on its quick sweep."""

from __future__ import annotations

import pytest

from depthlab.results import load_sweep
from depthlab.studies import STUDIES, vanishing


@pytest.mark.slow
def test_vanishing_slopes_agree_with_theory_on_the_quick_sweep(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("vanishing"))
    table = vanishing.slopes(sweep)
    deep = table[table["depth"] == 10]
    gap = (deep["measured_slope"] - deep["predicted_slope"]).abs()
    # 15% of the predicted rate, or 0.03 per layer where theory predicts a flat profile (ReLU)
    assert len(deep) == 4 and (gap < 0.15 * deep["predicted_slope"].abs() + 0.03).all()
    sigmoid = deep[(deep["activation"] == "sigmoid") & (deep["init"] == "torch_default")]
    assert sigmoid["ratio_first_to_output"].iloc[0] < 1e-6  # vanishing: chi^10 with chi ~ 0.2
    verdict = vanishing.verdict(sweep)
    assert verdict.reproduced is True  # depth 30 is there: the miniature decides
    assert verdict.numbers["ratio_first_to_output_depth30_max"] < 1e-3
    figures = STUDIES["vanishing"].figures(sweep)
    assert {"delta_profiles", "slopes", "update_ratio"} <= set(figures)
    assert all(fig.axes and fig.axes[0].has_data() for fig in figures.values())
