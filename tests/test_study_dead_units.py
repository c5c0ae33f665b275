"""The dead_units study: the claim (large SGD steps kill units, on the training set) on
hand-made per-run tables that kill, fail to kill or revive, the nested batch-against-set
measurement, and the quick preset's rebuilt nets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import memory_sweep
from matplotlib.figure import Figure
from scipy import stats

from depthlab.inits import Gaussian
from depthlab.model import MLP
from depthlab.results import Sweep, load_sweep
from depthlab.studies import STUDIES
from depthlab.studies import dead_units as study

DEPTH = 4  # hidden layers 1..4, output layer 5


def hand_made(final: dict[float, float], seeds: int = 2, steps: int = 500) -> Sweep:
    """Probe records: every hidden layer dead_frac 0.1 at step 0 and ``final[lr]`` at the
    end (NaN: the run diverged); the output layer always 0."""
    rows, metrics = [], []
    for lr, end in final.items():
        for seed in range(seeds):
            run_id = f"lr{lr}-s{seed}"
            status = "diverged" if np.isnan(end) else "ok"
            rows.append({"run_id": run_id, "study": "dead_units", "lr": lr, "seed": seed,
                         "depth": DEPTH, "steps": steps, "status": status})  # fmt: skip
            for step, value in ((0, 0.1), (steps // 2, end), (steps, end)):
                if status == "diverged" and step > 0:
                    continue
                for layer in range(1, DEPTH + 2):
                    v = 0.0 if layer == DEPTH + 1 else value
                    metrics.append((run_id, seed, step, layer, "dead_frac", v))
    return memory_sweep(rows, metrics)


def per_run(rises: dict[float, list[float]], steps: int = 500) -> pd.DataFrame:
    """The per-run table the claim is judged on: one run per entry of ``rises[lr]``, dead
    on the training set 0.05 at step 0 and 0.05 + rise at the end (NaN: diverged), twice
    that on a batch."""
    rows = []
    for lr, values in rises.items():
        for seed, rise in enumerate(values):
            ok = not np.isnan(rise)
            rows.append({"run_id": f"{lr}-{seed}", "lr": lr, "seed": seed, "steps": steps,
                         "status": "ok" if ok else "diverged", "accuracy": 0.6 if ok else np.nan,
                         "initial_set": 0.05, "final_set": 0.05 + rise,
                         "initial_batch": 0.1, "final_batch": 2 * (0.05 + rise)})  # fmt: skip
    return pd.DataFrame(rows)


NOISE = [-0.01, 0.0, 0.01, 0.005]  # per-seed scatter of a rise
KILLS = {0.01: 0.0, 0.1: -0.04, 0.3: -0.03, 0.5: 0.1, 0.7: 0.3}  # revive small, kill large


def spread(means: dict[float, float], diverged: int = 0) -> dict[float, list[float]]:
    return {lr: [m + e for e in NOISE] + [np.nan] * diverged for lr, m in means.items()}


def test_t_interval_equals_scipys() -> None:
    values = np.array([0.1, 0.25, 0.2, 0.4])
    mean, low, high = study.t_interval(values)
    ref = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(0.2375) and (low, high) == pytest.approx(ref, abs=1e-12)
    assert math.isnan(study.t_interval(values[:1])[1])


def test_claim_holds_when_large_steps_kill_and_small_ones_revive() -> None:
    verdict = study.judge_training(per_run(spread(KILLS) | {1.0: [np.nan] * 4}))
    assert verdict.reproduced is True
    n = verdict.numbers
    assert n["killing_lrs"] == 2 and n["killed_above_revived"] == 1
    assert n["rise_lr0.7"] == pytest.approx(0.30125) and n["rise_low_lr0.7"] > 0
    assert n["rise_high_lr0.1"] < 0 and n["diverged_lr1"] == 4
    assert n["batch_rise_lr0.7"] == pytest.approx(2 * 0.30125)


def test_claim_fails_when_one_lr_carries_it_or_small_steps_kill() -> None:
    one = study.judge_training(per_run(spread({0.01: 0.0, 0.1: 0.0, 0.3: 0.01, 0.7: 0.3})))
    assert one.reproduced is False and one.numbers["killing_lrs"] == 1
    reversed_ = study.judge_training(per_run(spread({0.01: 0.1, 0.1: 0.12, 0.5: -0.05})))
    assert reversed_.reproduced is False
    assert reversed_.numbers["killing_lrs"] == 2 and reversed_.numbers["killed_above_revived"] == 0


def test_claim_is_undecided_with_too_few_survivors_or_short_runs() -> None:
    # two survivors per lr: no lr has the 3 a t-interval with 2 degrees of freedom needs
    few = {lr: [m, m + 0.01, np.nan, np.nan] for lr, m in KILLS.items()}
    verdict = study.judge_training(per_run(few))
    assert verdict.reproduced is None and "full preset" in verdict.text
    assert study.judge_training(per_run(spread(KILLS), steps=40)).reproduced is None


def test_batch_overstatement_is_the_pooled_ratio() -> None:
    text, numbers = study.overstatement(per_run(spread(KILLS)))
    assert numbers["batch_over_set_initial"] == pytest.approx(2.0)
    assert numbers["batch_over_set_final"] == pytest.approx(2.0)
    assert "2.00x" in text


def test_probe_curves_leave_out_the_output_layer_and_stop_at_divergence() -> None:
    curves = study.dead_curves(hand_made({0.1: 0.05, 0.3: 0.2, 1.0: np.nan})).set_index("run_id")
    assert curves.loc["lr0.3-s0"].set_index("step")["dead"].tolist() == pytest.approx(
        [0.1, 0.2, 0.2]
    )
    assert curves.loc[["lr1.0-s1"], "step"].tolist() == [0]


def test_deadness_on_n_random_inputs_is_the_average_over_every_subset_of_n() -> None:
    model = MLP(6, 3, depth=3, width=16, activation="relu").double()
    model.initialize_(Gaussian(sigma_w2=2.0, sigma_b2=0.5), [torch.Generator().manual_seed(1)])
    x = torch.randn(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dead = study.dead_by_inputs(model, x, 0, (1, 3, 9))
    with torch.no_grad():  # by hand: a unit is dead on a set of inputs when u <= 0 on all
        h, off = x, []
        for l in range(1, 4):
            u = model.layer(l).linear(h[None])[0]
            off.append(u <= 0)
            h = torch.relu(u)
    for i, n in enumerate((1, 3, 9)):  # every one of the C(9, n) subsets, equally likely
        subsets = list(itertools.combinations(range(9), n))
        expected = [
            np.mean([o[list(s)].all(0).double().mean().item() for s in subsets]) for o in off
        ]
        np.testing.assert_allclose(dead[i], expected, rtol=1e-12)
    np.testing.assert_array_equal(dead[3], [o.all(0).double().mean().item() for o in off])
    assert (np.diff(dead, axis=0) <= 0).all()  # fewer inputs never find fewer dead units
    assert dead[0].mean() > dead[3].mean()  # one input: about half the units look dead


@pytest.mark.slow
def test_quick_sweep_rebuilds_its_nets_and_a_batch_overstates_deadness(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("dead_units"))
    table = study.rebuilt(sweep)  # retrains: the final losses must match the records
    runs = sweep.runs.set_index("lr")
    assert runs.loc[0.01, "status"] == "ok" and runs.loc[1.0, "status"] == "diverged"
    lr_of = sweep.runs.set_index("run_id")["lr"]
    finals = table[table["when"] == "final"]
    assert set(lr_of[finals["run_id"].unique()]) == {0.01}  # a diverged run has no final net
    dead = table.pivot_table(index=["run_id", "when", "layer"], columns="inputs", values="dead")
    assert (dead[study.BATCH] >= dead[4000]).all()  # nested: exact, net by net, layer by layer
    assert dead[study.BATCH].mean() > dead[4000].mean()
    # the probe's step-0 batch is part of the training set: it sees at least as many dead
    probe = study.dead_curves(sweep)
    probe0 = probe[probe["step"] == 0].set_index("run_id")["dead"]
    initial = table[(table["when"] == "initial") & (table["inputs"] == 4000)]
    assert (probe0 >= initial.groupby("run_id")["dead"].mean()[probe0.index] - 1e-12).all()
    verdict = STUDIES["dead_units"].verdict(sweep)
    assert verdict.reproduced is None and "needs the full preset" in verdict.text
    assert verdict.numbers["batch_over_set_initial"] > 1 and verdict.numbers["diverged_lr1"] == 1
    figures = study.figures(sweep)
    assert set(figures) == {"dead_on_training_set", "dead_over_training", "batch_over_set"}
    assert all(isinstance(f, Figure) and f.axes[0].has_data() for f in figures.values())
