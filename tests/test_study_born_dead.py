"""The born_dead study: the Wilson interval, counting born-dead nets by their first dead
layer, the verdict on Lu-like and counterfactual pictures, and the quick preset."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers import memory_sweep
from scipy import stats

from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies import born_dead as study


def hand_made(first_dead: list[float], depth: int = 20, batch_size: int = 4000) -> Sweep:
    """One width-2 net per entry, probed at step 0 on MNIST-1D (4000 training samples):
    hidden layers below ``first_dead`` have dead_frac 0.5, the rest 1 (a dead layer's
    successors get a constant input: dead too); NaN: no dead layer. The output layer's
    dead_frac is 1 in every net: it is not a hidden layer and must not count."""
    runs, metrics = [], []
    for seed, first in enumerate(first_dead):
        run_id = f"s{seed}"
        runs.append({"run_id": run_id, "width": 2, "depth": depth, "seed": seed,
                     "batch_size": batch_size, "data": "mnist1d", "steps": 0})  # fmt: skip
        for layer in range(1, depth + 2):
            dead = 1.0 if layer > depth or layer >= first else 0.5
            metrics.append((run_id, seed, 0, layer, "dead_frac", dead))
    return memory_sweep(runs, metrics)


def lu_like(nets: int = 200) -> list[float]:
    """First dead layers giving Lu et al.'s proportions at depths 2, 5, 10, 20: 0.06, 0.55,
    0.90, 1.00 of ``nets``."""
    counts = {2: 0.06, 5: 0.49, 10: 0.35, 20: 0.10}
    return [float(d) for d, share in counts.items() for _ in range(round(share * nets))]


def test_wilson_interval_equals_scipy_and_newcombes_table() -> None:
    # Newcombe (1998), Stat. Med. 17:857, table I, method 3 (score, no continuity correction)
    assert study.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert study.wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert study.wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    for k, n in ((1, 29), (200, 200), (37, 1000)):
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert study.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert all(math.isnan(v) for v in study.wilson(0, 0))


def test_a_net_is_born_dead_at_every_depth_from_its_first_dead_layer_on() -> None:
    sweep = hand_made([1, 3, 5, np.nan], depth=5)
    first = study.first_dead_layers(sweep).set_index("run_id")
    assert first["first_dead"].tolist()[:3] == [1, 3, 5] and np.isnan(first.loc["s3", "first_dead"])
    assert first["whole_set"].all() and (first["inputs"] == 4000).all()
    table = study.born_dead(first.reset_index()).set_index("depth")
    assert table["nets"].tolist() == [4] * 5
    assert table["dead"].tolist() == [1, 1, 2, 2, 3]  # first dead layer <= d
    assert table.loc[5, "p"] == 0.75
    # a depth-3 net counts at depths 1..3 only
    shallow = hand_made([2], depth=3)
    mixed = pd.concat([study.first_dead_layers(sweep), study.first_dead_layers(shallow)])
    table = study.born_dead(mixed).set_index("depth")
    assert table["nets"].tolist() == [5, 5, 5, 4, 4]
    assert table["dead"].tolist() == [1, 2, 3, 2, 3]


def test_verdict_reproduces_lus_picture() -> None:
    verdict = study.verdict(hand_made(lu_like()))
    assert verdict.reproduced is True
    n = verdict.numbers
    for depth, lu in study.LU_PROBABILITY.items():
        assert n[f"born_dead_w2_d{depth}"] == pytest.approx(lu)
        assert n[f"born_dead_w2_d{depth}_lu_inside"] == 1.0
    assert n["born_dead_w2_d20_low"] >= 0.9 and n["deep_above_shallow"] == 1.0


def test_verdict_fails_on_counterfactuals() -> None:
    # flat in depth: 30% of nets die in layer 1, the rest never
    flat = study.verdict(hand_made([1.0] * 60 + [np.nan] * 140))
    assert flat.reproduced is False and flat.numbers["born_dead_w2_d20"] == pytest.approx(0.3)
    assert flat.numbers["deep_above_shallow"] == 0.0
    # rising with depth, but only 80% dead at depth 20: the low end is below 0.9
    rising = study.verdict(hand_made([2.0] * 12 + [10.0] * 148 + [np.nan] * 40))
    assert rising.reproduced is False
    assert rising.numbers["deep_above_shallow"] == 1.0
    assert rising.numbers["born_dead_w2_d20_low"] < 0.9


def test_verdict_is_undecided_with_too_few_nets_or_a_batch_below_the_training_set() -> None:
    few = study.verdict(hand_made(lu_like(50)))
    assert few.reproduced is None and "100 nets" in few.text
    partial = study.verdict(hand_made(lu_like(), batch_size=128))
    assert partial.reproduced is None and "whole training set" in partial.text


@pytest.mark.slow
def test_quick_sweep_kills_most_narrow_deep_nets_and_they_are_constant(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("born_dead"))
    first = study.first_dead_layers(sweep)
    assert len(first) == 200 and first["whole_set"].all()
    table = study.born_dead(first).set_index("depth")
    assert (np.diff(table["p"]) >= 0).all()
    assert table.loc[20, "p"] > 0.5 and table.loc[1, "p"] < table.loc[20, "p"]
    # a born-dead net (zero biases) outputs 0 on every input: one loss, ln 10 (float32)
    loss = sweep.runs.set_index("run_id")["final_loss"]
    dead = first[first["first_dead"].notna()]["run_id"]
    assert loss[dead].nunique() == 1 and loss[dead].iloc[0] == pytest.approx(math.log(10))
    alive = first[first["first_dead"].isna()]["run_id"]
    assert (np.abs(loss[alive] - math.log(10)) > 1e-5).all()
    verdict = STUDIES["born_dead"].verdict(sweep)
    assert verdict.reproduced is True and verdict.numbers["born_dead_w2_d20_nets"] == 200
    (fig,) = STUDIES["born_dead"].figures(sweep).values()
    assert fig.axes[0].has_data()
