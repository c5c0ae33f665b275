"""The isometry study: spectra summaries of a hand-made sweep, and the quick preset."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import memory_sweep

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies.isometry import spectra, summary, verdict

QUANTILES = ["q000", "q010", "q025", "q050", "q075", "q090", "q100"]


def sweep_of(variants: dict[tuple[str, str], tuple[float, float, list[float]]]) -> Sweep:
    """One run per (init, activation) with step-0 Jacobian metrics (sv2_mean, sv2_var,
    quantiles)."""
    runs, rows = [], []
    for i, ((init, activation), (mean, var, quantiles)) in enumerate(variants.items()):
        run_id = f"r{i}"
        runs.append(
            {
                "run_id": run_id,
                "init": init,
                "activation": activation,
                "depth": 50,
                "width": 400,
                "status": "ok",
                "final_loss": 2.0,
            }
        )
        values = {"jacobian_sv2_mean": mean, "jacobian_sv2_var": var}
        values |= {f"jacobian_sv_{q}": v for q, v in zip(QUANTILES, quantiles, strict=True)}
        rows += [(run_id, 0, 0, 0, name, value) for name, value in values.items()]
        rows.append((run_id, 0, 0, 0, "loss", 2.3))
    return memory_sweep(runs, rows)


SPREAD = [1e-6, 1e-3, 1e-2, 0.1, 1.0, 3.0, 30.0]
TIGHT = [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.9]
REPOSITORY = {  # the repository's numbers at depth 50, width 400 (var 0.22 vs 38 vs 42)
    ("orthogonal", "tanh"): (0.5, 0.22, TIGHT),
    ("gaussian", "tanh"): (1.0, 38.0, SPREAD),
    ("orthogonal", "relu"): (1.0, 40.0, SPREAD),
    ("gaussian", "relu"): (1.0, 42.0, SPREAD),
}


def test_spectra_and_verdict_of_a_hand_made_sweep() -> None:
    table = spectra(sweep_of(REPOSITORY))
    row = table.set_index("variant").loc["orthogonal tanh"]
    assert row["spread"] == pytest.approx(0.22 / 0.5**2)
    assert row["decades"] == pytest.approx(np.log10(0.6 / 0.4))
    assert len(summary(table)) == 4
    result = verdict(sweep_of(REPOSITORY))
    assert result.reproduced is True
    assert result.numbers["var_ratio_min"] == pytest.approx(38 / 0.22)
    assert result.numbers["orthogonal_tanh_sv2_var"] == pytest.approx(0.22)
    assert result.numbers["gaussian_relu_final_loss"] == 2.0


def test_verdict_wants_ten_times_and_the_smallest_scale_free_spread() -> None:
    close = {**REPOSITORY, ("orthogonal", "tanh"): (1.0, 5.0, TIGHT)}  # only 7.6x below
    assert verdict(sweep_of(close)).reproduced is False
    small_scale = {**REPOSITORY, ("orthogonal", "tanh"): (0.01, 0.2, TIGHT)}  # var/mean^2 2000
    assert verdict(sweep_of(small_scale)).reproduced is False
    two = {k: v for k, v in REPOSITORY.items() if k[1] == "relu"}
    assert verdict(sweep_of(two)).reproduced is None


@pytest.mark.slow
def test_quick_sweep_orthogonal_tanh_is_concentrated(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("isometry"))
    per = summary(spectra(sweep)).set_index("variant")
    tanh, relu = per.loc["orthogonal tanh"], per.loc["gaussian relu"]
    assert tanh["sv2_var"] < relu["sv2_var"] / 100  # 0.0064 vs 38 at depth 10, width 64
    assert tanh["spread"] < relu["spread"]
    assert tanh["decades"] < 1 < relu["decades"]
    assert STUDIES["isometry"].verdict(sweep).reproduced is None  # two of the four variants
    figs = STUDIES["isometry"].figures(sweep)
    assert set(figs) == {"spectra", "variance", "loss"}
    for fig in figs.values():
        plt.close(fig)
