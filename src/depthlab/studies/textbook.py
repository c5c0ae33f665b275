"""The textbook network of the seed derivation, trained three ways.

Two depthlab runs on the 8x8 digits (64-30-10 sigmoid, N(0, 1) weights and biases,
mini-batches of 10): the squared loss on a sigmoid output and cross-entropy on a softmax
output. For each, the NumPy reference (:class:`depthlab.reference.ReferenceMLP`, the delta
recursion written from the formulas) is trained from the same initial weights on the same
mini-batches, and its full-training-set loss compared with depthlab's record at every
evaluation. scikit-learn's MLPClassifier (same layers, logistic units, plain SGD, the
cross-entropy variant's step, the same number of epochs) is the point of comparison.

Output saturation: with the squared loss delta^L = (a^L - y) * sigma'(z^L), so an output unit
that saturates on the wrong side (a^L near 0 or 1, far from y) passes back almost nothing;
cross-entropy's delta^L = a^L - y does not shrink. Measured on the reference nets: the batch
mean of ||delta^L|| / ||a^L - y|| over the training set (1 for cross-entropy, at most 1/4 for
the squared loss) and the fraction of output units with |a^L - y| > 1/2 and sigma'(z^L) < 0.01.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from depthlab.config import resolve_loss
from depthlab.data import load_data
from depthlab.reference import ReferenceMLP
from depthlab.results import Sweep
from depthlab.seeding import torch_generator
from depthlab.steps import BatchStream
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.studies.common import network_curve, run_config
from depthlab.train import build_model

CPU = torch.device("cpu")
STUCK = 0.01  # sigma'(z) below this: a saturated output unit (|z| > about 4.6)


def reference_training(sweep: Sweep, run_id: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """Train the NumPy reference like run ``run_id`` (same init, batches, steps, step size):
    its full-training-set loss at the run's evaluation steps, and the output-layer
    measurements at step 0 and at the end."""
    cfg = run_config(sweep, run_id)
    data = load_data(cfg.data, CPU, torch.float64)
    net = ReferenceMLP.from_model(build_model(cfg, data, CPU, torch.float64))
    x, y = data.x_train.numpy(), data.y_train.numpy()
    loss = resolve_loss(cfg)
    batches = BatchStream(len(x), cfg.batch_size, [torch_generator(cfg.seed, "batches")], CPU)
    rows = [{"step": 0, "loss": net.backprop(x, y, loss, data.task).loss}]
    output = {f"{k}_initial": v for k, v in output_saturation(net, x, y, loss, data.task).items()}
    for step in range(1, cfg.steps + 1):
        index = batches.batch(step - 1)
        batch = slice(None) if index is None else index[0].numpy()
        net.gradient_descent_step(x[batch], y[batch], cfg.lr, loss, data.task)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            rows.append({"step": step, "loss": net.backprop(x, y, loss, data.task).loss})
    output |= {f"{k}_final": v for k, v in output_saturation(net, x, y, loss, data.task).items()}
    return pd.DataFrame(rows), output


def output_saturation(
    net: ReferenceMLP, x: np.ndarray, y: np.ndarray, loss: str, task: str
) -> dict[str, float]:
    """Mean over samples of ||delta^L|| / ||p - y|| with p the prediction (a^L, or softmax(a^L)
    for cross-entropy), and the fraction of output units wrong by more than 1/2 while
    sigma'(z^L) < STUCK (sigmoid outputs only)."""
    result = net.backprop(x, y, loss, task)
    out = result.activations[-1]
    if loss == "cross_entropy":  # the prediction is softmax(a^L); a^L are logits
        out = np.exp(out - out.max(axis=0))
        out /= out.sum(axis=0)
    error = out - np.eye(out.shape[0])[y.astype(int)].T
    passed = np.linalg.norm(result.deltas[-1], axis=0) / np.linalg.norm(error, axis=0)
    stuck = np.nan
    if net.output_activation == "sigmoid":
        slope = out * (1 - out)
        stuck = float(np.mean((np.abs(error) > 0.5) & (slope < STUCK)))
    return {"delta_over_error": float(np.mean(passed)), "stuck_outputs": stuck}


def comparison(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loss curves of depthlab and the reference per variant (long format), and one row per
    variant with the agreement and output measurements."""
    curves, rows = [], []
    recorded = network_curve(sweep, "loss", ["loss_resolved"])
    for run_id, loss in sweep.runs.set_index("run_id")["loss_resolved"].items():
        ref, output = reference_training(sweep, run_id)
        mine = recorded[recorded["run_id"] == run_id][["step", "value"]]
        both = ref.merge(mine, on="step")
        gap = float((both["loss"] - both["value"]).abs().div(both["value"].abs()).max())
        curves.append(ref.assign(variant=loss, trainer="NumPy reference"))
        curves.append(
            mine.rename(columns={"value": "loss"}).assign(variant=loss, trainer="depthlab")
        )
        rows.append({"run_id": run_id, "variant": loss, "max_rel_gap": gap, **output})
    return pd.concat(curves, ignore_index=True), pd.DataFrame(rows)


def sklearn_accuracy(sweep: Sweep) -> float:
    """Test accuracy of scikit-learn's MLPClassifier trained like the cross-entropy run
    (the first run when there is none): same hidden layer, logistic units, plain SGD, step,
    batch size and number of epochs; its own init."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    runs = sweep.runs.set_index("loss_resolved")
    run_id = runs.loc["cross_entropy", "run_id"] if "cross_entropy" in runs.index else None
    cfg = run_config(sweep, run_id or sweep.runs["run_id"].iloc[0])
    data = load_data(cfg.data, CPU, torch.float64)
    epochs = max(1, round(cfg.steps * cfg.batch_size / len(data.x_train)))
    net = MLPClassifier(
        hidden_layer_sizes=(cfg.width,) * cfg.depth,
        activation="logistic",
        solver="sgd",
        learning_rate_init=cfg.lr,
        momentum=0.0,
        alpha=0.0,
        batch_size=cfg.batch_size,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,
        random_state=cfg.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(data.x_train.numpy(), data.y_train.numpy())
    return float(net.score(data.x_test.numpy(), data.y_test.numpy()))


def agreement_figure(curves: pd.DataFrame) -> plt.Figure:
    """Training loss against step per variant: depthlab (line) and the reference (dots)."""
    variants = sorted(curves["variant"].unique())
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.8), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        part = curves[curves["variant"] == variant]
        mine = part[part["trainer"] == "depthlab"]
        ref = part[part["trainer"] == "NumPy reference"]
        ax.plot(mine["step"], mine["loss"], "-", lw=2, label="depthlab (PyTorch)")
        ax.plot(ref["step"], ref["loss"], "o", ms=4, mfc="none", label="NumPy reference")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss J")
        ax.set_title(f"{variant} loss")
        ax.legend(fontsize=8)
    fig.suptitle("the textbook network: depthlab against the textbook recursion")
    fig.tight_layout()
    return fig


def accuracy_figure(sweep: Sweep, sklearn_test: float) -> plt.Figure:
    """Test accuracy against step for the two losses, scikit-learn's final accuracy dotted."""
    curve = network_curve(sweep, "test_accuracy", ["loss_resolved"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, run in curve.groupby("loss_resolved"):
        ax.plot(run["step"], run["value"], "o-", ms=3, label=f"depthlab, {variant}")
    ax.axhline(sklearn_test, color="0.3", ls=":", label="scikit-learn MLPClassifier (end)")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.set_title("early on, the squared loss on sigmoid outputs learns slower")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    curves, _ = comparison(sweep)
    return {
        "reference_agreement": agreement_figure(curves),
        "accuracy": accuracy_figure(sweep, sklearn_accuracy(sweep)),
    }


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when (1) depthlab's recorded training loss equals the NumPy reference's at
    every evaluation to 1e-6 (relative), and (2) with the squared loss a smaller share of the
    output error reaches delta^L than with cross-entropy (the 1/4-bounded sigma' factor) and
    cross-entropy's test accuracy at the first evaluation after step 0 is higher."""
    _, table = comparison(sweep)
    acc = network_curve(sweep, "test_accuracy", ["loss_resolved"])
    first = acc[acc["step"] == acc[acc["step"] > 0]["step"].min()]
    early = first.set_index("loss_resolved")["value"]
    final = sweep.runs.set_index("loss_resolved")["final_test_accuracy"]
    by = table.set_index("variant")
    numbers = {"max_rel_gap": float(table["max_rel_gap"].max()), "sklearn_test_accuracy": np.nan}
    for variant in by.index:
        numbers[f"{variant}_delta_over_error_initial"] = by.loc[variant, "delta_over_error_initial"]
        numbers[f"{variant}_early_test_accuracy"] = float(early.get(variant, np.nan))
        numbers[f"{variant}_final_test_accuracy"] = float(final.get(variant, np.nan))
    agrees = numbers["max_rel_gap"] < 1e-6
    if not {"squared", "cross_entropy"} <= set(by.index):
        text = f"depthlab matches the reference to {numbers['max_rel_gap']:.1e}; one loss only."
        return Verdict("textbook", None, text, numbers)
    numbers["sklearn_test_accuracy"] = sklearn_accuracy(sweep)
    numbers["squared_stuck_outputs_initial"] = by.loc["squared", "stuck_outputs_initial"]
    slower = (
        numbers["squared_delta_over_error_initial"]
        < numbers["cross_entropy_delta_over_error_initial"]
        and numbers["cross_entropy_early_test_accuracy"] > numbers["squared_early_test_accuracy"]
    )
    text = (
        f"depthlab's training loss equals the NumPy textbook recursion's to "
        f"{numbers['max_rel_gap']:.1e} (relative) at every evaluation of both runs. At "
        f"initialisation {numbers['squared_stuck_outputs_initial']:.1%} of the sigmoid "
        f"outputs are saturated on the wrong side, and delta^L carries "
        f"{numbers['squared_delta_over_error_initial']:.3f} of the output error (squared) "
        f"against {numbers['cross_entropy_delta_over_error_initial']:.3f} (cross-entropy). "
        f"Test accuracy at the first evaluation: squared "
        f"{numbers['squared_early_test_accuracy']:.3f}, cross-entropy "
        f"{numbers['cross_entropy_early_test_accuracy']:.3f}; at the end "
        f"{numbers['squared_final_test_accuracy']:.3f} and "
        f"{numbers['cross_entropy_final_test_accuracy']:.3f}; scikit-learn's MLPClassifier "
        f"{numbers['sklearn_test_accuracy']:.3f}."
    )
    return Verdict("textbook", agrees and slower, text, numbers)


STUDIES.register("textbook")(
    Study(
        "textbook",
        "Does depthlab train the textbook sigmoid network exactly as the textbook recursion "
        "does, and does the squared loss's sigma'(z^L) factor slow learning where "
        "cross-entropy does not?",
        "the seed derivation; Nielsen, Neural Networks and Deep Learning, ch. 1-3",
        figures,
        verdict,
    )
)
