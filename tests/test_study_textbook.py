"""The textbook study's judgement on planted tables: it passes on Nielsen's picture and
fails, or stays undecided, on every counterfactual (the quick preset is in test_studies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from depthlab.studies import textbook

LRS = (0.5, 1, 2, 4, 8)


def planted(
    best: dict[str, float] | None = None,
    final_gap: float = 0.01,
    early_gap: float = 0.08,
    slowdown: float = 0.3,
    seeds: int = 6,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, reference rows): each loss's final accuracy peaks at its ``best`` lr (0.95 for
    cross-entropy, 0.95 - ``final_gap`` for the squared loss) and falls 0.05 per factor 2
    away; cross-entropy leads at the first evaluation by ``early_gap``; the squared loss's
    accuracy on the badly wrong samples trails its rest by ``slowdown`` more than
    cross-entropy's does. Seeds add +-0.005 noise."""
    best = best or {"squared": 4.0, "cross_entropy": 1.0}
    rng = np.random.default_rng(1)
    runs, refs = [], []
    for loss in textbook.LOSSES:
        top = 0.95 - (final_gap if loss == "squared" else 0.0)
        for lr in LRS:
            for seed in range(seeds):
                final = top - 0.05 * abs(np.log2(lr / best[loss])) + rng.normal(0, 0.005)
                early = 0.7 + (early_gap if loss == "cross_entropy" else 0) + rng.normal(0, 0.005)
                run_id = f"{loss}-{lr}-{seed}"
                runs.append((run_id, loss, lr, seed, final, early, 150))
                if lr != best[loss]:
                    continue
                wrong = 0.6 - (slowdown if loss == "squared" else 0) + rng.normal(0, 0.01)
                refs.append(
                    {"run_id": run_id, "loss": loss, "seed": seed, "lr": lr,
                     "max_rel_gap": 1e-14, "max_rel_gap_all": 1e-9, "checked": 20.0,
                     "evaluations": 20.0, "early_step": 150, "wrong_early": wrong,
                     "rest_early": 0.8, "wrong_final": 0.9, "rest_final": 0.97,
                     "badly_wrong_share": 0.05, "delta_over_error_initial": 0.1,
                     "stuck_outputs_initial": 0.1, "classes_lost": 0.0}
                )  # fmt: skip
    columns = ["run_id", "loss", "lr", "seed", "final", "early", "early_step"]
    return pd.DataFrame(runs, columns=columns), pd.DataFrame(refs)


def test_nielsens_picture_is_reproduced_with_the_best_lrs_found() -> None:
    table, refs = planted()
    verdict = textbook.judge(table, refs)
    assert verdict.reproduced is True
    assert verdict.numbers["squared_best_lr"] == 4 and verdict.numbers["lr_ratio"] == 4
    assert verdict.numbers["gap_difference"] == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(
    "change",
    [
        {"slowdown": 0.02},  # no slowdown on badly wrong samples
        {"early_gap": -0.05},  # the squared loss leads early
        {"final_gap": -0.05},  # cross-entropy ends 5 points behind
    ],
)
def test_each_counterfactual_fails(change: dict) -> None:
    assert textbook.judge(*planted(**change)).reproduced is False


def test_a_reference_that_departs_from_depthlab_fails_claim_1() -> None:
    table, refs = planted()
    refs.loc[0, "max_rel_gap"] = 1e-3
    assert textbook.judge(table, refs).reproduced is False


def test_too_few_seeds_is_undecided_and_a_best_lr_on_the_grid_edge_leaves_claim_4_open() -> None:
    assert textbook.judge(*planted(seeds=2)).reproduced is None
    edge = textbook.judge(*planted(best={"squared": 8.0, "cross_entropy": 1.0}, final_gap=-0.2))
    assert "(4) not tested" in edge.text and "edge of the grid" in edge.text
    assert edge.reproduced is True  # claims 1-3 hold; 4, which would fail, is not judged


def test_unequal_grids_are_no_equal_budget() -> None:
    table, _ = planted()
    table = table[~((table["loss"] == "squared") & (table["lr"] == 0.5))]
    assert "different learning rates" in textbook.grid_problem(table, textbook.best_lrs(table))
