"""The textbook network of the seed derivation and Nielsen's book: two losses at an equal
learning-rate budget, checked against the NumPy reference.

The net: 64-30-10 on the 8x8 digits, sigmoid hidden layer, N(0, 1) weights and biases,
plain SGD on mini-batches of 10. Two losses, swept over one shared grid of learning rates
and the same seeds (a seed fixes the initial weights and the batch order, so seed s of
both losses starts from the same z^L):

    squared, sigmoid output:      delta^L = (a^L - y) (.) sigma'(z^L),  sigma' <= 1/4
    cross-entropy, softmax out:   delta^L = softmax(z^L) - y

The derivation's prediction is a learning slowdown where the squared loss's output unit is
saturated on the wrong side: a sample whose own-class output starts at sigma(z_y) ~ 0 gets
almost no gradient to raise it, while cross-entropy's delta^L does not shrink there.

Reductions. Per run: final test accuracy (chance, 1/10, for a run without one: diverged or
failed) and test accuracy at the first evaluation after step 0 ("early"). Per loss: its
best lr is the one with the highest mean final test accuracy over seeds. Each loss's runs at
its best lr are retrained by the NumPy reference (:class:`depthlab.reference.ReferenceMLP`,
same init, batches, steps, lr); on the reference nets: the largest relative gap between its
full-training-set loss and depthlab's record over the evaluations; the "badly wrong" set S,
training samples whose own-class output is saturated on the wrong side at step 0
(z^L_y < BADLY_WRONG_Z, i.e. sigma(z_y) < 0.01); and training accuracy on S and on the rest
at every evaluation. Intervals: 95% percentile intervals of a bootstrap over seeds, paired
(one resample of seeds serves both losses); for the final-accuracy difference and the lr
ratio each resample picks its own best lrs again, so the interval includes the selection.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from depthlab.config import resolve_loss
from depthlab.data import CLASSIFICATION, load_data
from depthlab.reference import ReferenceMLP
from depthlab.results import Sweep
from depthlab.seeding import torch_generator
from depthlab.steps import BatchStream
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.studies.common import run_config
from depthlab.train import build_model

CPU = torch.device("cpu")
LOSSES = ("squared", "cross_entropy")
CHANCE = 0.1  # the accuracy a run without a final accuracy (diverged, failed) is given
STUCK = 0.01  # sigma'(z) below this: a saturated output unit (|z| > about 4.6)
BADLY_WRONG_Z = -np.log(99.0)  # own-class z^L_y below this: sigma(z_y) < 0.01, so y - a > 0.99
# Criteria, fixed before the 10-seed grid ran (after a 2-seed pilot on lr 0.03-30):
MAX_GAP = 1e-6  # (1) float64 depthlab equals the reference: relative loss gap below this,
TWIN_NUDGE = 1e-15  # at every evaluation where a twin reference, W^1 scaled by 1 + this (a
TWIN_HORIZON = 1e-9  # rounding error), is still within this of the reference: beyond, the
# training itself amplifies rounding (cross-entropy at lr 4 by about 1e7 in 150 steps), and
# no two implementations can agree
MIN_GAP_DIFFERENCE = 0.10  # (2) squared's accuracy gap rest - S exceeds cross-entropy's by
# more than this (95% lower bound), at the first evaluation: S holds 60-200 samples, so its
# accuracy has a sampling error of about 5 points; 10 points is a slowdown, not noise
NONINFERIORITY = 0.01  # (4) Nielsen: cross-entropy ends as good or slightly better; the 95%
# lower bound of CE - squared final test accuracy must exceed -1 point (one run's binomial
# error on 450 test images is 1 point)
MIN_SEEDS = 3  # paired seeds needed for an interval
MIN_LRS = 3  # claim (4) needs a grid with an interior best lr for each loss
RESAMPLES = 2000
NIELSEN_LR = {"squared": 3.0, "cross_entropy": 0.5}  # his tuned eta, ch. 1 and ch. 3


def network_rows(sweep: Sweep, metric: str) -> pd.DataFrame:
    """The rows (run_id, step, value) of a network-level metric (layer 0), sorted by step;
    empty, with those columns, when the sweep has none."""
    rows = sweep.metrics
    if rows.empty or "metric" not in rows:
        return pd.DataFrame(columns=["run_id", "step", "value"])
    rows = rows[(rows["metric"] == metric) & (rows["layer"] == 0)]
    return rows[["run_id", "step", "value"]].sort_values(["run_id", "step"])


def lr_table(sweep: Sweep) -> pd.DataFrame:
    """One row per run: run_id, loss, lr, seed, ``final`` test accuracy (CHANCE where there
    is none), ``early`` test accuracy at the run's first evaluation after step 0 and that
    ``early_step``. Empty without the run columns."""
    columns = ["run_id", "loss", "lr", "seed", "final", "early", "early_step"]
    needed = {"run_id", "loss_resolved", "lr", "seed", "final_test_accuracy"}
    if sweep.runs.empty or not needed <= set(sweep.runs.columns):
        return pd.DataFrame(columns=columns)
    table = sweep.runs[list(needed)].rename(
        columns={"loss_resolved": "loss", "final_test_accuracy": "final"}
    )
    rows = network_rows(sweep, "test_accuracy")
    rows = rows[rows["step"] > 0].groupby("run_id").first()
    table["early"] = table["run_id"].map(rows["value"])
    table["early_step"] = table["run_id"].map(rows["step"])
    table[["final", "early"]] = table[["final", "early"]].astype(float).fillna(CHANCE)
    return table[columns].reset_index(drop=True)


def best_lrs(table: pd.DataFrame) -> dict[str, float]:
    """Each loss's lr with the highest mean final test accuracy over its seeds (the smaller
    lr on a tie)."""
    means = table.groupby(["loss", "lr"])["final"].mean()
    return {loss: float(part.idxmax()[1]) for loss, part in means.groupby(level="loss")}


def paired(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """``value`` with one row per seed and one column per (loss, lr), keeping the seeds that
    have every column (the pairs a bootstrap over seeds may resample)."""
    return table.pivot_table(index="seed", columns=["loss", "lr"], values=value).dropna()


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """The mean of ``values`` (one per seed) and its 95% percentile bootstrap interval."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(axis=1)
    return float(values.mean()), *map(float, np.percentile(means, [2.5, 97.5]))


def selection_bootstrap(table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Resamples of seeds (paired across losses): in each, both losses' best lrs picked
    again from the resampled mean final accuracies, ``difference`` = CE - squared at those
    and ``ratio`` = best squared lr / best CE lr. One row per resample."""
    wide = paired(table, "final")
    if len(wide) < MIN_SEEDS:
        return pd.DataFrame(columns=["difference", "ratio"])
    means = wide.to_numpy()[rng.integers(0, len(wide), (RESAMPLES, len(wide)))].mean(axis=1)
    picked = {}
    for loss in LOSSES:
        cols = np.flatnonzero(wide.columns.get_level_values("loss") == loss)
        best = cols[np.argmax(means[:, cols], axis=1)]
        picked[loss] = (means[np.arange(RESAMPLES), best], wide.columns[best].get_level_values(1))
    return pd.DataFrame(
        {
            "difference": picked["cross_entropy"][0] - picked["squared"][0],
            "ratio": np.asarray(picked["squared"][1]) / np.asarray(picked["cross_entropy"][1]),
        }
    )


@dataclass(frozen=True)
class ReferenceRun:
    """The NumPy reference trained like one run: ``curve`` (step, loss, acc_badly_wrong,
    acc_rest on the training set at the run's evaluations) and ``summary`` (at step 0 the
    share of badly wrong samples, ``delta_over_error`` and ``stuck_outputs``; at the end
    ``classes_lost``, the classes with training accuracy below 1/2)."""

    curve: pd.DataFrame
    summary: dict[str, float]


def reference_runs(sweep: Sweep, table: pd.DataFrame, best: dict[str, float]) -> dict:
    """The NumPy reference trained like each run at its loss's best lr (every seed), by
    run_id: a few seconds per run, so figures and verdict each train their own."""
    at_best = table[table["lr"] == table["loss"].map(best)]
    return {run_id: reference_training(sweep, run_id) for run_id in at_best["run_id"]}


def reference_training(sweep: Sweep, run_id: str) -> ReferenceRun:
    """Train the NumPy reference like run ``run_id``: same init, batches, steps and step
    size, with a twin whose W^1 is nudged by TWIN_NUDGE (a rounding error), evaluated on
    the whole training set at the run's evaluation steps."""
    cfg = run_config(sweep, run_id)
    data = load_data(cfg.data, CPU, torch.float64)
    net = ReferenceMLP.from_model(build_model(cfg, data, CPU, torch.float64))
    twin = copy.deepcopy(net)
    twin.weights[0] *= 1 + TWIN_NUDGE
    x, y = data.x_train.numpy(), data.y_train.numpy().astype(int)
    loss = resolve_loss(cfg)
    wrong = badly_wrong(net, x, y)
    summary = {"badly_wrong_share": float(wrong.mean())}
    summary |= {f"{k}_initial": v for k, v in output_saturation(net, x, y, loss).items()}
    batches = BatchStream(len(x), cfg.batch_size, [torch_generator(cfg.seed, "batches")], CPU)
    rows = [_evaluate(net, twin, x, y, loss, wrong, 0)]
    for step in range(1, cfg.steps + 1):
        index = batches.batch(step - 1)
        batch = slice(None) if index is None else index[0].numpy()
        for model in (net, twin):
            model.gradient_descent_step(x[batch], y[batch], cfg.lr, loss, data.task)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            rows.append(_evaluate(net, twin, x, y, loss, wrong, step))
    predicted = net.feedforward(x)[0][-1].argmax(axis=0)
    per_class = pd.Series(predicted == y).groupby(y).mean()
    summary["classes_lost"] = float((per_class < 0.5).sum())
    return ReferenceRun(pd.DataFrame(rows), summary)


def badly_wrong(net: ReferenceMLP, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per sample: is its own-class output saturated on the wrong side, z^L_y < BADLY_WRONG_Z
    (sigma(z_y) < 0.01 with target 1)? The same samples for both losses of a seed."""
    z = net.feedforward(x)[0][-1]
    return z[y, np.arange(len(y))] < BADLY_WRONG_Z


def _evaluate(
    net: ReferenceMLP,
    twin: ReferenceMLP,
    x: np.ndarray,
    y: np.ndarray,
    loss: str,
    wrong: np.ndarray,
    step: int,
) -> dict[str, float]:
    """The full-training-set loss, the twin's relative departure from it, and the accuracy
    on the badly wrong samples and on the rest."""
    result = net.backprop(x, y, loss, CLASSIFICATION)
    right = result.zs[-1].argmax(axis=0) == y
    twin_loss = twin.backprop(x, y, loss, CLASSIFICATION).loss
    return {
        "step": step,
        "loss": result.loss,
        "twin_gap": abs(twin_loss - result.loss) / abs(result.loss),
        "acc_badly_wrong": float(right[wrong].mean()) if wrong.any() else np.nan,
        "acc_rest": float(right[~wrong].mean()) if (~wrong).any() else np.nan,
    }


def output_saturation(
    net: ReferenceMLP, x: np.ndarray, y: np.ndarray, loss: str
) -> dict[str, float]:
    """Mean over samples of ||delta^L|| / ||p - y|| with p the prediction (a^L, or softmax(a^L)
    for cross-entropy), and the fraction of output units wrong by more than 1/2 while
    sigma'(z^L) < STUCK (sigmoid outputs only)."""
    result = net.backprop(x, y, loss, CLASSIFICATION)
    out = result.activations[-1]
    if loss == "cross_entropy":  # the prediction is softmax(a^L); a^L are logits
        out = np.exp(out - out.max(axis=0))
        out /= out.sum(axis=0)
    error = out - np.eye(out.shape[0])[y].T
    passed = np.linalg.norm(result.deltas[-1], axis=0) / np.linalg.norm(error, axis=0)
    stuck = np.nan
    if net.output_activation == "sigmoid":
        stuck = float(np.mean((np.abs(error) > 0.5) & (out * (1 - out) < STUCK)))
    return {"delta_over_error": float(np.mean(passed)), "stuck_outputs": stuck}


def reference_table(sweep: Sweep, table: pd.DataFrame, references: dict) -> pd.DataFrame:
    """One row per run of ``references`` (:func:`reference_runs`): loss, seed, lr,
    ``max_rel_gap`` (reference against depthlab's recorded loss), the badly wrong share,
    the accuracy on S and on the rest at the first evaluation and at the end, and
    ``classes_lost``."""
    rows = []
    recorded = network_rows(sweep, "loss")
    for run in table[table["run_id"].isin(list(references))].itertuples():
        ref = references[run.run_id]
        mine = recorded[recorded["run_id"] == run.run_id][["step", "value"]]
        both = ref.curve.merge(mine, on="step")
        both["gap"] = (both["loss"] - both["value"]).abs() / both["value"].abs()
        inside = both[both["twin_gap"] <= TWIN_HORIZON]
        early, last = ref.curve.iloc[min(1, len(ref.curve) - 1)], ref.curve.iloc[-1]
        rows.append(
            {
                "run_id": run.run_id,
                "loss": run.loss,
                "seed": run.seed,
                "lr": run.lr,
                "max_rel_gap": float(inside["gap"].max()) if len(inside) else np.nan,
                "max_rel_gap_all": float(both["gap"].max()) if len(both) else np.nan,
                "checked": float((inside["step"] > 0).sum()),
                "evaluations": float((both["step"] > 0).sum()),
                "early_step": int(early["step"]),
                "wrong_early": early["acc_badly_wrong"],
                "rest_early": early["acc_rest"],
                "wrong_final": last["acc_badly_wrong"],
                "rest_final": last["acc_rest"],
                **ref.summary,
            }
        )
    return pd.DataFrame(rows)


def sklearn_accuracy(sweep: Sweep, run_id: str) -> float:
    """Test accuracy of scikit-learn's MLPClassifier trained like run ``run_id``: same hidden
    layer, logistic units, plain SGD, step, batch size and number of epochs; its own init
    and its own (softmax) output."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    cfg = run_config(sweep, run_id)
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


def _per_seed(refs: pd.DataFrame, value: pd.Series) -> pd.Series:
    """``value`` (indexed like ``refs``) as cross-entropy minus squared per seed (paired)."""
    wide = pd.DataFrame({"seed": refs["seed"], "loss": refs["loss"], "v": value}).pivot_table(
        index="seed", columns="loss", values="v"
    )
    if not set(LOSSES) <= set(wide.columns):
        return pd.Series(dtype=float)
    return (wide["cross_entropy"] - wide["squared"]).dropna()


def grid_problem(table: pd.DataFrame, best: dict[str, float]) -> str:
    """Why claim (4) cannot be judged on this grid ('' when it can): the two losses must
    share one grid of at least MIN_LRS lrs, with each loss's best lr inside it."""
    grids = {loss: sorted(part["lr"].unique()) for loss, part in table.groupby("loss")}
    if grids["squared"] != grids["cross_entropy"]:
        return "the two losses were swept over different learning rates (no equal budget)"
    grid = grids["squared"]
    if len(grid) < MIN_LRS:
        return f"the sweep has {len(grid)} learning rate(s) per loss, fewer than {MIN_LRS}"
    edge = [loss for loss in LOSSES if best[loss] in (grid[0], grid[-1])]
    if edge:
        return f"the best lr of {', '.join(edge)} lies on the edge of the grid {grid}"
    return ""


def judge(table: pd.DataFrame, refs: pd.DataFrame) -> Verdict:
    """The four claims, from the runs (:func:`lr_table`) and the reference nets at each
    loss's best lr (:func:`reference_table`), with 95% bootstrap intervals over paired seeds:

    1. depthlab trains as the derivation: every reference run's loss equals depthlab's at
       every evaluation to MAX_GAP (relative);
    2. the squared loss slows down on badly wrong samples: at the first evaluation, its
       accuracy gap (rest - S) exceeds cross-entropy's by more than MIN_GAP_DIFFERENCE
       (lower bound of the mean over seeds);
    3. cross-entropy learns faster: its test accuracy at the first evaluation is higher
       (lower bound of CE - squared above 0);
    4. cross-entropy ends as good or better: CE - squared final test accuracy, best lrs
       picked again in each resample, has a lower bound above -NONINFERIORITY. Judged only
       on an equal grid of >= MIN_LRS lrs with interior optima (:func:`grid_problem`).

    Undecided without both losses and MIN_SEEDS paired seeds."""
    rng = np.random.default_rng(0)
    best = best_lrs(table)
    numbers: dict[str, float] = {f"{loss}_best_lr": lr for loss, lr in best.items()}
    at_best = table[table["lr"] == table["loss"].map(best)]
    early = _per_seed(at_best, at_best["early"])
    # CE - squared of (S - rest) = squared's gap (rest - S) minus cross-entropy's
    gaps = _per_seed(refs, refs["wrong_early"] - refs["rest_early"]) if len(refs) else early[:0]
    if set(best) != set(LOSSES) or min(len(early), len(gaps)) < MIN_SEEDS:
        text = (
            f"the sweep lacks runs of both losses for {MIN_SEEDS} paired seeds at the best "
            "lrs (or the reference runs); run +experiment=textbook."
        )
        return Verdict("textbook", None, text, numbers)
    numbers |= _numbers(table, refs, best)
    numbers |= {
        "max_rel_gap": float(refs["max_rel_gap"].max()),
        "max_rel_gap_all": float(refs["max_rel_gap_all"].max()),
        "checked_evaluations": float(refs["checked"].sum()),
        "evaluations": float(refs["evaluations"].sum()),
        "reference_runs": float(len(refs)),
        "runs_inside_horizon": float((refs["checked"] == refs["evaluations"]).sum()),
    }
    for name, values in (("gap_difference", gaps), ("early_difference", early)):
        mean, low, high = bootstrap_mean(values, rng)
        numbers |= {name: mean, f"{name}_low": low, f"{name}_high": high}
    passed = [
        bool(numbers["max_rel_gap"] < MAX_GAP and numbers["checked_evaluations"] > 0),
        numbers["gap_difference_low"] > MIN_GAP_DIFFERENCE,
        numbers["early_difference_low"] > 0,
    ]
    problem = grid_problem(table, best)
    numbers |= _final_difference(table, best, rng)
    if not problem:
        passed.append(numbers["final_difference_low"] > -NONINFERIORITY)
    return Verdict("textbook", all(passed), _text(numbers, passed, problem), numbers)


def _numbers(table: pd.DataFrame, refs: pd.DataFrame, best: dict[str, float]) -> dict:
    """Per loss at its best lr: mean final and early test accuracy, seeds, the reference
    nets' accuracy on S and the rest (first evaluation), the badly wrong share, runs that
    lost a class, and the initial output measurements."""
    numbers = {"early_step": float(table["early_step"].min())}
    for loss in LOSSES:
        runs = table[(table["loss"] == loss) & (table["lr"] == best[loss])]
        mine = refs[refs["loss"] == loss]
        numbers |= {
            f"{loss}_final_test_accuracy": float(runs["final"].mean()),
            f"{loss}_early_test_accuracy": float(runs["early"].mean()),
            f"{loss}_seeds": float(runs["seed"].nunique()),
            f"{loss}_wrong_early": float(mine["wrong_early"].mean()),
            f"{loss}_rest_early": float(mine["rest_early"].mean()),
            f"{loss}_wrong_final": float(mine["wrong_final"].mean()),
            f"{loss}_runs_with_a_lost_class": float((mine["classes_lost"] > 0).sum()),
            f"{loss}_delta_over_error_initial": float(mine["delta_over_error_initial"].mean()),
        }
    numbers["badly_wrong_share"] = float(refs["badly_wrong_share"].mean())
    squared = refs[refs["loss"] == "squared"]
    numbers["squared_stuck_outputs_initial"] = float(squared["stuck_outputs_initial"].mean())
    return numbers


def _final_difference(
    table: pd.DataFrame, best: dict[str, float], rng: np.random.Generator
) -> dict[str, float]:
    """CE - squared final test accuracy at the best lrs (mean over paired seeds) and the
    best-lr ratio squared / CE, each with its selection-bootstrap interval."""
    wide = paired(table, "final")
    point = wide[("cross_entropy", best["cross_entropy"])] - wide[("squared", best["squared"])]
    boot = selection_bootstrap(table, rng)
    numbers = {
        "final_difference": float(point.mean()),
        "lr_ratio": best["squared"] / best["cross_entropy"],
    }
    for name, column in (("final_difference", "difference"), ("lr_ratio", "ratio")):
        low, high = np.percentile(boot[column], [2.5, 97.5]) if len(boot) else (np.nan,) * 2
        numbers |= {f"{name}_low": float(low), f"{name}_high": float(high)}
    return numbers


def _text(n: dict[str, float], passed: list[bool], problem: str) -> str:
    """The verdict's sentences, one per claim, with the numbers."""
    marks = ["met" if p else "NOT met" for p in passed]
    step = int(n["early_step"])
    parts = [
        f"Best lr (highest mean final test accuracy over {n['squared_seeds']:.0f} seeds): "
        f"squared {n['squared_best_lr']:g}, cross-entropy {n['cross_entropy_best_lr']:g}, "
        f"ratio {n['lr_ratio']:g} [{n['lr_ratio_low']:g}, {n['lr_ratio_high']:g}] "
        "(Nielsen's tuned 3 / 0.5 = 6)",
        f"(1) {marks[0]}: depthlab's training loss equals the NumPy recursion's to "
        f"{n['max_rel_gap']:.1e} (relative, needs < {MAX_GAP:.0e}) at the "
        f"{n['checked_evaluations']:.0f} of {n['evaluations']:.0f} evaluations of the "
        f"{n['reference_runs']:.0f} reference runs where a twin reference nudged by "
        f"{TWIN_NUDGE:.0e} stays within {TWIN_HORIZON:.0e} (the whole run in "
        f"{n['runs_inside_horizon']:.0f}; beyond, training amplifies rounding and the gap "
        f"reaches {n['max_rel_gap_all']:.1e})",
        f"(2) {marks[1]}: {n['badly_wrong_share']:.1%} of the training samples start with "
        f"their own output saturated on the wrong side (S); at step {step} the squared loss "
        f"classifies {n['squared_wrong_early']:.2f} of S against {n['squared_rest_early']:.2f} "
        f"of the rest, cross-entropy {n['cross_entropy_wrong_early']:.2f} against "
        f"{n['cross_entropy_rest_early']:.2f}; the squared loss's gap is larger by "
        f"{n['gap_difference']:.2f} [{n['gap_difference_low']:.2f}, "
        f"{n['gap_difference_high']:.2f}] (needs > {MIN_GAP_DIFFERENCE})",
        f"(3) {marks[2]}: test accuracy at step {step}: cross-entropy "
        f"{n['cross_entropy_early_test_accuracy']:.3f}, squared "
        f"{n['squared_early_test_accuracy']:.3f}, difference {n['early_difference']:+.3f} "
        f"[{n['early_difference_low']:+.3f}, {n['early_difference_high']:+.3f}] (needs > 0)",
    ]
    final = (
        f"final test accuracy: cross-entropy {n['cross_entropy_final_test_accuracy']:.3f}, "
        f"squared {n['squared_final_test_accuracy']:.3f}, difference "
        f"{n['final_difference']:+.3f} [{n['final_difference_low']:+.3f}, "
        f"{n['final_difference_high']:+.3f}]; runs that end with a class below 1/2 training "
        f"accuracy: squared {n['squared_runs_with_a_lost_class']:.0f}, cross-entropy "
        f"{n['cross_entropy_runs_with_a_lost_class']:.0f}"
    )
    if problem:
        parts.append(f"(4) not tested, {problem}; run +experiment=textbook. Here the {final}")
    else:
        parts.append(f"(4) {marks[3]}: {final} (needs lower end > {-NONINFERIORITY:+.2f})")
    return ". ".join(parts) + "."


def verdict(sweep: Sweep) -> Verdict:
    """:func:`judge` on the sweep: its runs, and the NumPy reference trained like each run
    at its loss's best lr (every seed)."""
    table = lr_table(sweep)
    if not set(LOSSES) <= set(table["loss"]):
        text = "the sweep lacks runs of both losses (squared, cross_entropy); run "
        return Verdict("textbook", None, text + "+experiment=textbook.", {})
    best = best_lrs(table)
    refs = reference_table(sweep, table, reference_runs(sweep, table, best))
    result = judge(table, refs)
    if result.reproduced is None:
        return result
    run_id = refs[refs["loss"] == "cross_entropy"].sort_values("seed")["run_id"].iloc[0]
    sklearn = sklearn_accuracy(sweep, run_id)
    text = (
        f"{result.text} scikit-learn's MLPClassifier, trained like the first cross-entropy "
        f"run (its own init and output), ends at {sklearn:.3f}."
    )
    return Verdict("textbook", result.reproduced, text, result.numbers | {"sklearn": sklearn})


COLORS = {"squared": "tab:red", "cross_entropy": "tab:blue"}


def lr_panel(ax: plt.Axes, table: pd.DataFrame, best: dict[str, float]) -> None:
    """Final test accuracy against lr per loss: one dot per seed, the mean over seeds as a
    line, each loss's best lr starred and Nielsen's tuned lr marked on the axis."""
    rng = np.random.default_rng(0)
    for loss, part in table.groupby("loss"):
        color = COLORS.get(loss, "0.3")
        jitter = np.exp(rng.uniform(-0.06, 0.06, len(part)))
        ax.plot(part["lr"] * jitter, part["final"], ".", color=color, alpha=0.35, ms=4)
        means = part.groupby("lr")["final"].mean()
        ax.plot(means.index, means.values, "-", color=color, lw=1.8, label=loss)
        if loss in best:
            ax.plot(best[loss], means[best[loss]], "*", color=color, ms=13, mec="k", mew=0.6)
        if loss in NIELSEN_LR:
            ax.axvline(NIELSEN_LR[loss], color=color, ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("learning rate (dotted: Nielsen's tuned eta)")
    ax.set_ylabel("final test accuracy (dots: seeds)")
    ax.set_title("one lr grid for both losses; star: best mean", fontsize=9)
    ax.legend(fontsize=8, loc="lower center")


def badly_wrong_panel(ax: plt.Axes, curves: pd.DataFrame) -> None:
    """Training accuracy on the badly wrong samples S (dashed) and on the rest (solid)
    against step at each loss's best lr: mean over seeds, band from the lowest to the
    highest seed."""
    for (loss, which), part in curves.groupby(["loss", "which"]):
        stats = part.groupby("step")["accuracy"].agg(["mean", "min", "max"])
        color, style = COLORS.get(loss, "0.3"), "--" if which == "S" else "-"
        label = f"{loss}, {'S (own output saturated wrong at init)' if which == 'S' else 'rest'}"
        ax.plot(stats.index, stats["mean"], style, color=color, lw=1.6, label=label)
        ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.1, lw=0)
    ax.set_xlabel("step (mini-batch of 10)")
    ax.set_ylabel("training accuracy")
    ax.set_title("the squared loss learns its badly wrong samples last", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def reference_curves(refs: pd.DataFrame, references: dict) -> pd.DataFrame:
    """Long table (run_id, loss, seed, step, which in {S, rest}, accuracy) of the reference
    runs' training accuracy on S and on the rest."""
    frames = []
    for row in refs.itertuples():
        curve = references[row.run_id].curve
        for which, column in (("S", "acc_badly_wrong"), ("rest", "acc_rest")):
            frames.append(
                curve[["step", column]]
                .rename(columns={column: "accuracy"})
                .assign(run_id=row.run_id, loss=row.loss, seed=row.seed, which=which)
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summary_figure(table: pd.DataFrame, best: dict, curves: pd.DataFrame) -> plt.Figure:
    """Left: lr sensitivity of both losses; right: the slowdown on badly wrong samples."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    lr_panel(left, table, best)
    if not curves.empty:
        badly_wrong_panel(right, curves)
    fig.suptitle("the textbook net (64-30-10 sigmoid, N(0, 1) init) on the 8x8 digits")
    fig.tight_layout()
    return fig


def agreement_figure(sweep: Sweep, refs: pd.DataFrame, references: dict) -> plt.Figure:
    """Training loss against step for each loss's first seed at its best lr: depthlab (line)
    and the reference (circles); dotted, the first evaluation where the twin reference has
    departed (beyond it rounding is amplified)."""
    firsts = refs.sort_values("seed").groupby("loss").head(1)
    recorded = network_rows(sweep, "loss")
    fig, axes = plt.subplots(1, max(1, len(firsts)), figsize=(10, 3.6), squeeze=False)
    for ax, row in zip(axes[0], firsts.itertuples(), strict=False):
        ref = references[row.run_id].curve
        mine = recorded[recorded["run_id"] == row.run_id].sort_values("step")
        ax.plot(mine["step"], mine["value"], "-", lw=2, label="depthlab (PyTorch)")
        ax.plot(ref["step"], ref["loss"], "o", ms=4, mfc="none", label="NumPy reference")
        departed = ref[ref["twin_gap"] > TWIN_HORIZON]
        if len(departed):
            ax.axvline(departed["step"].iloc[0], color="0.4", ls=":", label="twin departs")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss J")
        ax.set_title(f"{row.loss}, lr {row.lr:g}, seed {row.seed}", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("depthlab against the textbook recursion")
    fig.tight_layout()
    return fig


def accuracy_figure(sweep: Sweep, table: pd.DataFrame, best: dict) -> plt.Figure:
    """Test accuracy against step at each loss's best lr: one thin line per seed, the mean
    over seeds thick."""
    rows = network_rows(sweep, "test_accuracy")
    at_best = table[table["lr"] == table["loss"].map(best)]
    fig, ax = plt.subplots(figsize=(6, 4))
    for loss, runs in at_best.groupby("loss"):
        part = rows[rows["run_id"].isin(runs["run_id"])]
        color = COLORS.get(loss, "0.3")
        for _, run in part.groupby("run_id"):
            ax.plot(run["step"], run["value"], "-", color=color, lw=0.6, alpha=0.4)
        mean = part.groupby("step")["value"].mean()
        ax.plot(mean.index, mean.values, "-", color=color, lw=2, label=f"{loss}, lr {best[loss]:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy at each loss's best lr (thin: seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = lr_table(sweep)
    if table.empty:
        return {}
    best = best_lrs(table)
    references = reference_runs(sweep, table, best)
    refs = reference_table(sweep, table, references)
    made = {"summary": summary_figure(table, best, reference_curves(refs, references))}
    if not refs.empty:
        made["reference_agreement"] = agreement_figure(sweep, refs, references)
    made["accuracy"] = accuracy_figure(sweep, table, best)
    return made


STUDIES.register("textbook")(
    Study(
        "textbook",
        "Does depthlab train the textbook sigmoid network exactly as the textbook recursion "
        "does, and, at an equal learning-rate budget, does the squared loss's sigma'(z^L) "
        "factor slow learning on badly wrong samples where cross-entropy does not?",
        "the seed derivation; Nielsen, Neural Networks and Deep Learning, ch. 1-3",
        figures,
        verdict,
    )
)
