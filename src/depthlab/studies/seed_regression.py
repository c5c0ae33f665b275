"""The seed's regression demo: y = x^2 + 0.2 U(0, 1) on 100 points of [-1, 1], a 1-10-10-1
ReLU net trained by full-batch SGD for 100 steps, over several seeds.

Measured: the final mean squared error MSE = 2 J (J = 1/2 mean (a - y)^2, the recorded loss)
per seed, against the variance of the targets (a constant's best MSE) and against
scikit-learn's MLPRegressor with the same layers, loss, step size and number of full-batch
steps (its own Glorot-uniform init; no momentum, no L2). The figure redraws each seed's fitted
curve over the data by training the recorded run again (runs are deterministic).
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from depthlab.data import load_data
from depthlab.frames import network_curve
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.studies.common import retrain, run_config

GRID = 200  # points of the curve drawn over [-1, 1]


def final_errors(sweep: Sweep) -> pd.DataFrame:
    """One row per run: seed, status, train and test MSE (twice the recorded J)."""
    runs = sweep.runs
    return pd.DataFrame(
        {
            "run_id": runs["run_id"],
            "seed": runs["seed"],
            "status": runs["status"],
            "train_mse": 2 * runs["final_loss"],
            "test_mse": 2 * runs["final_test_loss"],
        }
    )


def fitted_curves(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training data, and each run's prediction on a grid of [-1, 1] (model retrained)."""
    curves, data = [], None
    grid = np.linspace(-1, 1, GRID)
    for run_id in sweep.runs["run_id"]:
        result = retrain(sweep, run_id)
        if data is None:
            data = _training_points(sweep, run_id)
        x = torch.tensor(grid[:, None], dtype=next(result.model.parameters()).dtype)
        with torch.no_grad():
            y = result.model(x)[0, :, 0].double().numpy()
        seed = int(sweep.runs.set_index("run_id").loc[run_id, "seed"])
        curves.append(pd.DataFrame({"x": grid, "y": y, "seed": seed}))
    return data, pd.concat(curves, ignore_index=True)


def _training_points(sweep: Sweep, run_id: str) -> pd.DataFrame:
    cfg = run_config(sweep, run_id)
    data = load_data(cfg.data, torch.device("cpu"), torch.float64)
    return pd.DataFrame({"x": data.x_train[:, 0].numpy(), "y": data.y_train[:, 0].numpy()})


def sklearn_errors(points: pd.DataFrame, lr: float, steps: int, seeds: list[int]) -> list[float]:
    """Training MSE of scikit-learn's MLPRegressor (10, 10) ReLU, plain full-batch SGD with
    step ``lr`` on J = 1/2 MSE (sklearn's loss too), ``steps`` epochs, one per seed."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    x, y = points[["x"]].to_numpy(), points["y"].to_numpy()
    errors = []
    for seed in seeds:
        net = MLPRegressor(
            hidden_layer_sizes=(10, 10),
            activation="relu",
            solver="sgd",
            learning_rate_init=lr,
            momentum=0.0,
            alpha=0.0,
            batch_size=len(x),
            max_iter=steps,
            shuffle=False,
            n_iter_no_change=steps + 1,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(x, y)
        errors.append(float(np.mean((net.predict(x) - y) ** 2)))
    return errors


def fit_figure(points: pd.DataFrame, curves: pd.DataFrame) -> plt.Figure:
    """The training points and each seed's fitted curve."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(points["x"], points["y"], s=10, color="0.4", label="data: $x^2 + 0.2\\,U(0,1)$")
    for seed, curve in curves.groupby("seed"):
        ax.plot(curve["x"], curve["y"], lw=1.5, label=f"seed {seed}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("1-10-10-1 ReLU net after 100 full-batch SGD steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def loss_figure(sweep: Sweep) -> plt.Figure:
    """Training MSE (2 J, evaluated on the training set) against step, one line per seed."""
    curve = network_curve(sweep, "loss", ["seed"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed, run in curve.groupby("seed"):
        ax.plot(run["step"], 2 * run["value"], "o-", ms=3, label=f"seed {seed}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training MSE")
    ax.set_title("the regression demo's loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    points, curves = fitted_curves(sweep)
    return {"fit": fit_figure(points, curves), "loss": loss_figure(sweep)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when the median seed's training MSE is below a quarter of the targets'
    variance (the net explains at least 75% of it) after the demo's 100 steps. Reported
    beside it: the seeds that fit (R^2 > 0.5) and scikit-learn's MLPRegressor's MSE."""
    errors = final_errors(sweep)
    first = sweep.runs["run_id"].iloc[0]
    points = _training_points(sweep, first)
    variance = float(points["y"].var(ddof=0))
    row = sweep.runs.iloc[0]
    sk = sklearn_errors(points, float(row["lr"]), int(row["steps"]), list(errors["seed"]))
    r2 = 1 - errors["train_mse"] / variance
    numbers = {
        "target_variance": variance,
        "train_mse_median": float(errors["train_mse"].median()),
        "seeds_fitting": int((r2 > 0.5).sum()),
        "seeds": len(errors),
        "sklearn_mse_median": float(np.median(sk)),
    }
    ok = numbers["train_mse_median"] < variance / 4
    text = (
        f"median training MSE {numbers['train_mse_median']:.4f} over {len(errors)} seeds "
        f"against the targets' variance {variance:.4f}; {numbers['seeds_fitting']} of "
        f"{len(errors)} seeds fit (R^2 > 0.5). scikit-learn's MLPRegressor with the same "
        f"layers, loss, step and steps: median MSE {numbers['sklearn_mse_median']:.4f}."
    )
    return Verdict("seed_regression", ok, text, numbers)


STUDIES.register("seed_regression")(
    Study(
        "seed_regression",
        "Does the seed's classic demo, a 1-10-10-1 ReLU net fitting y = x^2 + noise with 100 "
        "SGD steps, work here, and how much do seeds differ?",
        "the seed tutorial's regression example; scikit-learn's MLPRegressor as comparison",
        figures,
        verdict,
    )
)
