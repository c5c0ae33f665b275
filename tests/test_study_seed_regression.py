"""The seed_regression study (depthlab studies seed_regression) on its quick sweep."""

from __future__ import annotations

import pytest

from depthlab.model import MLP
from depthlab.results import load_sweep
from depthlab.studies import STUDIES
from depthlab.studies.common import retrain


@pytest.mark.slow
def test_seed_regression_retrains_each_run_to_its_record_and_fits(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("seed_regression"))
    model = retrain(sweep, sweep.runs["run_id"].iloc[0]).model  # checks the final loss
    assert isinstance(model, MLP) and model.widths == [1, 10, 10, 1]
    verdict = STUDIES["seed_regression"].verdict(sweep)
    assert verdict.reproduced is True
    assert verdict.numbers["train_mse_median"] < 0.25 * verdict.numbers["target_variance"]
