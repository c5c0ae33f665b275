"""Kaiming against Xavier init in a deep ReLU net (He et al. 2015, Fig. 3).

Measured: at step 0, the per-layer ratio r_l = ||delta^l||^2 / ||delta^{l+1}||^2 for the
hidden layers l = 1..L-2 (the ratio through the output layer, whose fans differ, is left
out), reduced per run to its median over layers and its geometric mean exp(mean_l ln r_l).
Theory: r_l = sigma_w2 E[phi'(z)^2] = sigma_w2 / 2 for ReLU, i.e. 1 for Kaiming
(sigma_w2 = 2) and 1/2 for Xavier on square layers (sigma_w2 = 1), so Xavier's first layer
gets 2^-(L-2) of the gradient signal (in ||delta||^2) of the last hidden layer. Training:
the full training-set loss at the evaluated steps. Xavier *stalls* when its loss falls by
less than 2% of its step-0 value; Kaiming *trains* when every Kaiming run ends at least
MARGIN nats below every Xavier run (a fall from step 0 alone is no test: a Kaiming net
starts above chance, ln C, and gets there by shrinking its logits, not by learning). The
effect size: the mean over seeds of Xavier's final loss minus Kaiming's (paired by seed),
with a Student-t 95% interval.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab import plots
from depthlab.frames import at_step, metric_rows, network_curve, profile_rows, t_interval
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

RUN_KEYS = ["init", "depth", "status"]  # run columns; metric rows carry their own seed
GOOD, NAIVE = "kaiming_normal", "xavier_normal"
MIN_DEPTH = 20  # below this the two inits differ by a factor a few SGD steps make up
MIN_STEPS = 200  # "stalls" and "trains" need this many updates to mean anything
RATIO_TOLERANCE = 0.15  # relative error allowed between measured and predicted ratios
MARGIN = 0.25  # nats: Kaiming trains when its worst run ends this far below Xavier's best
STALLS = 0.02  # Xavier stalls when its loss falls by less than this fraction of its start


def layer_ratios(sweep: Sweep) -> pd.DataFrame:
    """Tidy rows per run and hidden layer l = 1..L-2 at step 0: measured ratio
    ||delta^l||^2 / ||delta^{l+1}||^2 and theory's (``predicted_delta_ratio``)."""
    delta = at_step(metric_rows(sweep, "delta_norm", RUN_KEYS), 0)
    predicted = at_step(metric_rows(sweep, "predicted_delta_ratio", RUN_KEYS), 0)
    rows = []
    for run_id, run in delta.groupby("run_id"):
        run = run.sort_values("layer")
        values = run["value"].to_numpy(float)
        ratio = (values[:-1] / values[1:]) ** 2  # l = first .. L-1
        frame = run.iloc[:-1][["run_id", "seed", *RUN_KEYS, "layer"]].copy()
        frame["measured"] = ratio
        pred = predicted[predicted["run_id"] == run_id].set_index("layer")["value"]
        frame["predicted"] = frame["layer"].map(pred)
        rows.append(frame[frame["layer"] < run["layer"].max() - 1])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def ratio_summary(ratios: pd.DataFrame) -> pd.DataFrame:
    """Per run: median over layers of the measured and predicted ratios, the geometric mean
    of the measured ratio, and the number of layers."""

    def reduce(run: pd.DataFrame) -> pd.Series:
        measured = run["measured"].to_numpy(float)
        ok = np.isfinite(measured) & (measured > 0)
        return pd.Series(
            {
                "median_ratio": float(np.median(measured[ok])) if ok.any() else np.nan,
                "geomean_ratio": float(np.exp(np.log(measured[ok]).mean())) if ok.any() else np.nan,
                "predicted_ratio": float(run["predicted"].median()),
                "layers": float(len(run)),
            }
        )

    keys = ["run_id", "seed", *RUN_KEYS]
    return ratios.groupby(keys).apply(reduce, include_groups=False).reset_index()


def training(sweep: Sweep) -> pd.DataFrame:
    """Per run: training loss at step 0 and at the last evaluated step, and the fraction
    by which it fell, 1 - final / initial (the run's status and step count alongside)."""
    keys = [*RUN_KEYS, "steps", "final_accuracy"]
    curves = network_curve(sweep, "loss", keys).dropna(subset=["value"])
    first, last = at_step(curves, "first"), at_step(curves, "last")
    out = first[["run_id", "seed", *keys]].copy()
    out["initial_loss"] = first["value"].to_numpy()
    out = out.merge(last[["run_id", "step", "value"]], on="run_id")
    out = out.rename(columns={"value": "final_loss", "step": "last_step"})
    out["loss_drop"] = 1 - out["final_loss"] / out["initial_loss"]
    return out


def profile_figure(sweep: Sweep) -> plt.Figure:
    """Left: ||delta^l|| against l at step 0, one line per run, theory dashed (anchored at
    the measured output layer). Right: the per-layer ratio r_l, theory's as a line."""
    delta, theory = profile_rows(sweep, 0, RUN_KEYS)
    ratios = layer_ratios(sweep)
    colors = plots.palette(delta["init"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    plots.draw_delta_profile(
        left,
        delta,
        theory,
        "init",
        colors,
        label=lambda run: f"{run['init'].iloc[0]} s{run['seed'].iloc[0]}",
    )
    for (init, _), cell in ratios.groupby(["init", "run_id"]):
        right.plot(cell["layer"], cell["measured"], "o", ms=3, alpha=0.6, color=colors[init])
        right.plot(cell["layer"], cell["predicted"], "-", lw=1.5, color=colors[init])
    left.set(xlabel="layer l (1 = input side)", ylabel=r"$\|\delta^l\|$ at step 0")
    left.set_title("backprop error by layer (dashed: mean-field theory)", fontsize=9)
    left.legend(fontsize=7)
    right.set_yscale("log", base=2)
    right.set_ylim(0.125, 4)
    right.set(xlabel="hidden layer l", ylabel=r"$\|\delta^l\|^2 / \|\delta^{l+1}\|^2$ at step 0")
    right.set_title("per-layer ratio (dots: measured, lines: theory 1 and 1/2)", fontsize=9)
    depth = int(delta["depth"].max())
    fig.suptitle(f"ReLU, depth {depth}: Kaiming keeps the gradient signal, Xavier halves it")
    fig.tight_layout()
    return fig


def loss_figure(sweep: Sweep) -> plt.Figure:
    """Training loss against step: the full training set at the evaluated steps (markers,
    one line per seed, dashed after the first) over the mini-batch loss (faint, 20-step
    running mean)."""
    loss = network_curve(sweep, "loss", RUN_KEYS).dropna(subset=["value"])
    batch = network_curve(sweep, "batch_loss", RUN_KEYS)
    inits = sorted(loss["init"].unique())
    colors = dict(zip(inits, sns.color_palette("colorblind", len(inits)), strict=True))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (init, seed, run_id), run in loss.groupby(["init", "seed", "run_id"]):
        mini = batch[batch["run_id"] == run_id]
        smooth = mini["value"].rolling(20, min_periods=1).mean()
        ax.plot(mini["step"], smooth, lw=0.8, alpha=0.35, color=colors[init])
        style = "o-" if seed == loss["seed"].min() else "s--"
        ax.plot(run["step"], run["value"], style, ms=4, color=colors[init], label=f"{init} s{seed}")
    ax.set(xlabel="SGD step", ylabel="training loss (cross-entropy)")
    ax.set_title(f"ReLU, depth {int(loss['depth'].max())}: training loss by init", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """Named figures: delta_profiles (with per-layer ratios) and training_loss."""
    return {"delta_profiles": profile_figure(sweep), "training_loss": loss_figure(sweep)}


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when, at depth >= MIN_DEPTH, (1) the median per-layer ratio
    ||delta^l||^2 / ||delta^{l+1}||^2 of every run is within 15% of theory's (1 for Kaiming,
    1/2 for Xavier); (2) every Xavier run stalls (its loss falls by < 2% of its step-0
    value) and (3) every Kaiming run trains (its final loss at least MARGIN nats below the
    best Xavier run's); no run diverges. Undecided without both inits at that depth, or with runs
    shorter than MIN_STEPS updates."""
    ratios = ratio_summary(layer_ratios(sweep))
    ratios = ratios[ratios["depth"] >= MIN_DEPTH]
    train = training(sweep)
    train = train[train["depth"] >= MIN_DEPTH]
    numbers = _numbers(ratios, train)
    if not {GOOD, NAIVE} <= set(ratios["init"]) or train["steps"].min() < MIN_STEPS:
        return Verdict(
            "init_comparison",
            None,
            f"the sweep lacks {GOOD} and {NAIVE} runs of depth >= {MIN_DEPTH} trained for "
            f">= {MIN_STEPS} steps; run +experiment=init_comparison. " + _text(numbers),
            numbers,
        )
    rel = (ratios["median_ratio"] / ratios["predicted_ratio"] - 1).abs()
    ok = (
        float(rel.max()) < RATIO_TOLERANCE
        and numbers["worst_case_gap"] >= MARGIN
        and numbers[f"{NAIVE}_loss_drop_max"] < STALLS
        and numbers["diverged_runs"] == 0
    )
    return Verdict("init_comparison", ok, _text(numbers), numbers)


def _numbers(ratios: pd.DataFrame, train: pd.DataFrame) -> dict[str, float]:
    """Per init: median (over runs) of the per-run median ratio, theory's ratio, the
    geometric mean, the worst final loss (Kaiming) or best (Xavier), and the drops."""
    numbers = {"diverged_runs": float((train["status"] != "ok").sum())}
    paired = train.pivot_table(index="seed", columns="init", values="final_loss")
    gap = (paired.get(NAIVE) - paired.get(GOOD)).dropna() if paired.shape[1] == 2 else []
    mean, low, high = t_interval(np.asarray(gap, float))
    numbers |= {"gap": mean, "gap_low": low, "gap_high": high, "gap_seeds": float(len(gap))}
    for init in (GOOD, NAIVE):
        rows, runs = ratios[ratios["init"] == init], train[train["init"] == init]
        numbers[f"{init}_runs"] = float(len(runs))
        numbers[f"{init}_median_ratio"] = float(rows["median_ratio"].median())
        numbers[f"{init}_geomean_ratio"] = float(rows["geomean_ratio"].median())
        numbers[f"{init}_predicted_ratio"] = float(rows["predicted_ratio"].median())
        numbers[f"{init}_initial_loss"] = float(runs["initial_loss"].mean())
        numbers[f"{init}_final_loss_min"] = float(runs["final_loss"].min())
        numbers[f"{init}_final_loss_max"] = float(runs["final_loss"].max())
        numbers[f"{init}_loss_drop_min"] = float(runs["loss_drop"].min())
        numbers[f"{init}_loss_drop_max"] = float(runs["loss_drop"].max())
        numbers[f"{init}_final_accuracy_min"] = float(runs["final_accuracy"].min())
        numbers[f"{init}_final_accuracy_max"] = float(runs["final_accuracy"].max())
    numbers["worst_case_gap"] = (
        numbers[f"{NAIVE}_final_loss_min"] - numbers[f"{GOOD}_final_loss_max"]
    )
    return numbers


def _text(n: dict[str, float]) -> str:
    """The verdict's sentence, with its numbers."""

    def init_text(init: str) -> str:
        return (
            f"{init}: median per-layer ||delta||^2 ratio {n[f'{init}_median_ratio']:.3f} "
            f"(geometric mean {n[f'{init}_geomean_ratio']:.3f}, theory "
            f"{n[f'{init}_predicted_ratio']:.3g}), training loss {n[f'{init}_initial_loss']:.3f}"
            f" -> {n[f'{init}_final_loss_min']:.3f}..{n[f'{init}_final_loss_max']:.3f} over "
            f"{n[f'{init}_runs']:.0f} seeds (drop {n[f'{init}_loss_drop_min']:.1%}.."
            f"{n[f'{init}_loss_drop_max']:.1%}), final training accuracy "
            f"{n[f'{init}_final_accuracy_min']:.3f}..{n[f'{init}_final_accuracy_max']:.3f}"
        )

    interval = (
        f"[{n['gap_low']:.3f}, {n['gap_high']:.3f}] over {n['gap_seeds']:.0f} seeds"
        if n["gap_seeds"] >= 2
        else "(one seed: no interval)"
    )
    gap = (
        f"Xavier's final loss minus Kaiming's, paired by seed: {n['gap']:.3f} {interval}, worst "
        f"case (best Xavier run against worst Kaiming run) {n['worst_case_gap']:.3f} (needs "
        f">= {MARGIN})"
    )
    return f"{init_text(GOOD)}; {init_text(NAIVE)}; {gap}; {n['diverged_runs']:.0f} runs not ok."


STUDIES.register("init_comparison")(
    Study(
        "init_comparison",
        "In a 30-layer ReLU net trained by plain SGD, does Kaiming's init keep the per-layer "
        "ratio of ||delta^l||^2 at 1 and train, while Xavier's halves it per layer and stalls?",
        "He et al. 2015 (Delving deep into rectifiers), Fig. 3",
        figures,
        verdict,
    )
)
