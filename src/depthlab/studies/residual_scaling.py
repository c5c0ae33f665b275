"""Deep residual MLPs without normalisation: naive, 1/sqrt(B)-scaled and zero-init branches
(Fixup: Zhang et al. 2019; SkipInit: De & Smith 2020).

The model: a^l = a^{l-1} + phi(W^l a^{l-1} + b^l) for the B = L - 2 hidden layers l = 2..L-1
(one-layer branches ending in the ReLU). Inits: ``kaiming_normal`` (naive, sigma_w2 = 2),
``scaled_branches`` (branch weights times B^{-1/2}), ``skipinit`` (each branch times a learned alpha
that starts at 0).

Measured, per run: status and diverged_step; the training loss at step 0 and at the end
(the loss falls by >= 20% to count as training); at step 0 ||delta^l|| against l and
||delta^1|| / ||delta^L||; the branch gradients ||dJ/dW^l||_F over the branch layers and
the probed steps (their maximum: exactly 0 means the branches never learn, so only the
first and output layers train); and the first-order loss change of the first SGD step,
lr sum_l (||dJ/dW^l||^2 + ||dJ/db^l||^2) at step 0, against the loss itself: a ratio far
above 1 means the first step overshoots, however bounded the forward pass.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.frames import at_step, metric_rows, network_curve, t_interval
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

KEYS = ["init", "depth", "status", "lr", "steps"]  # run columns; metric rows carry seeds
NAIVE, SCALED = "kaiming_normal", ("scaled_branches", "skipinit")
MIN_DEPTH = 100  # the presets' deep nets; shallower ones may train with any init
MIN_STEPS = 100
TRAINS = 0.2  # a run trains when its loss falls by at least this fraction of its start
INITS = (NAIVE, *SCALED)
FINISHED = ("ok", "diverged", "failed")  # runs still ``running`` are left out
SHALLOW = 1  # the baseline: one hidden layer, no residual block (every init is the same net)
MIN_SEEDS = 3  # paired seeds for the depth gain's t-interval


def _branch_layers(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of the branch layers 2..L-1 (hidden layers with a skip)."""
    top = rows.groupby("run_id")["layer"].transform("max")
    return rows[(rows["layer"] >= 2) & (rows["layer"] < top)]


def outcomes(sweep: Sweep) -> pd.DataFrame:
    """One row per run: keys, status, diverged_step, initial and final training loss,
    loss drop 1 - final / initial (NaN unless ``ok``), ||delta^1|| / ||delta^L|| at step 0,
    the largest branch gradient over the probed steps, and the first step's first-order
    loss change over the loss at step 0."""
    runs = sweep.runs[["run_id", "seed", *KEYS, "diverged_step", "delta_ratio_initial"]]
    loss = network_curve(sweep, "loss", ["status"]).dropna(subset=["value"])
    first = at_step(loss, 0).set_index("run_id")["value"].rename("initial_loss")
    last = at_step(loss, "last").set_index("run_id")["value"].rename("final_loss")
    out = runs.set_index("run_id").join([first, last])
    out.loc[out["status"] != "ok", "final_loss"] = np.nan
    out["loss_drop"] = 1 - out["final_loss"] / out["initial_loss"]
    grads = _branch_layers(metric_rows(sweep, "weight_grad_norm", ["status"]))
    out["branch_grad_max"] = grads.groupby("run_id")["value"].max()
    out["first_step_change"] = first_step_change(sweep)
    out["overshoot"] = out["first_step_change"] / out["initial_loss"]
    return out.reset_index()


def first_step_change(sweep: Sweep) -> pd.Series:
    """Per run: lr sum_l (||dJ/dW^l||^2 + ||dJ/db^l||^2) at step 0, the decrease of the
    loss that the first SGD step promises to first order (NaN where a norm is not finite)."""
    rows = at_step(metric_rows(sweep, "weight_grad_norm", ["lr"]), 0)
    bias = at_step(metric_rows(sweep, "bias_grad_norm", ["lr"]), 0)
    both = pd.concat([rows, bias])
    squares = both.groupby("run_id")["value"].apply(lambda v: (v**2).sum(min_count=len(v)))
    return squares * both.groupby("run_id")["lr"].first()


def loss_figure(sweep: Sweep) -> plt.Figure:
    """Mini-batch training loss against step (log scale), one panel per depth, one line per
    run coloured by init; a diverged run ends in a cross at its last finite loss."""
    batch = network_curve(sweep, "batch_loss", ["init", "depth", "status"])
    depths = sorted(batch["depth"].unique())
    colors = dict(zip(INITS, sns.color_palette("colorblind", len(INITS)), strict=True))
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 3.8), squeeze=False)
    for ax, depth in zip(axes[0], depths, strict=True):
        cell = batch[batch["depth"] == depth]
        for (init, seed, _), run in cell.groupby(["init", "seed", "run_id"]):
            run = run.dropna(subset=["value"])
            run = run[np.isfinite(run["value"])]
            color = colors.get(init, "grey")
            label = f"{init} s{seed}"
            ax.plot(run["step"], run["value"], "-", lw=1, color=color, label=label)
            if run["status"].iloc[0] == "diverged" and len(run):
                ax.plot(run["step"].iloc[-1], run["value"].iloc[-1], "x", ms=8, color=color)
        ax.set_yscale("log")
        ax.set(xlabel="SGD step", ylabel="mini-batch training loss")
        ax.set_title(f"{depth} hidden layers, {depth - 1} residual blocks (x: diverged)")
        ax.legend(fontsize=7)
    fig.suptitle("residual ReLU MLPs without normalisation: training loss by init")
    fig.tight_layout()
    return fig


def profile_figure(sweep: Sweep) -> plt.Figure:
    """At step 0, per depth: ||delta^l|| against l (top) and ||dJ/dW^l||_F (bottom), log
    scales; exact zeros (skipinit's branches) and non-finite values cannot be drawn and are
    named under each panel's title."""
    delta = at_step(metric_rows(sweep, "delta_norm", ["init", "depth"]), 0)
    grads = at_step(metric_rows(sweep, "weight_grad_norm", ["init", "depth"]), 0)
    depths = sorted(delta["depth"].unique())
    fig, axes = plt.subplots(2, len(depths), figsize=(5 * len(depths), 6.8), squeeze=False)
    for j, depth in enumerate(depths):
        panels = (
            (axes[0][j], delta, "backprop error", r"$\|\delta^l\|$"),
            (axes[1][j], grads, "weight gradient", r"$\|\partial J/\partial W^l\|_F$"),
        )
        for ax, rows, title, symbol in panels:
            _draw_profiles(ax, rows[rows["depth"] == depth], f"depth {depth}: {title}")
            ax.set(xlabel="layer l (1 = input side)", ylabel=f"{symbol} at step 0")
        axes[0][j].legend(fontsize=6)
    fig.suptitle("residual nets at initialisation")
    fig.tight_layout()
    return fig


def _draw_profiles(ax: plt.Axes, cell: pd.DataFrame, title: str) -> None:
    """One line per run of a per-layer metric (log scale), coloured by init; the title's
    second line names runs with exact zeros or no finite value."""
    colors = dict(zip(INITS, sns.color_palette("colorblind", len(INITS)), strict=True))
    zeros, broken = {}, set()
    for (init, seed), run in cell.groupby(["init", "seed"]):
        values = run.sort_values("layer")["value"].to_numpy(float)
        layers = run.sort_values("layer")["layer"].to_numpy()
        if (values == 0).any():
            zeros[init] = int((values == 0).sum())
        if not np.isfinite(values).any():
            broken.add(init)
        drawable = np.isfinite(values) & (values > 0)
        style = "o-" if seed == cell["seed"].min() else "s--"
        color = colors.get(init, "grey")
        ax.plot(layers[drawable], values[drawable], style, ms=1.5, lw=1, color=color,
                label=f"{init} s{seed}")  # fmt: skip
    ax.set_yscale("log")
    notes = [f"{init}: {n} layers exactly 0" for init, n in zeros.items()]
    notes += [f"{init}: not finite" for init in sorted(broken)]
    ax.set_title(title + ("\n(" + "; ".join(notes) + ")" if notes else ""), fontsize=8)


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """Named figures: training_loss (per init and depth) and delta_profiles (step 0)."""
    return {"training_loss": loss_figure(sweep), "delta_profiles": profile_figure(sweep)}


def depth_gain(table: pd.DataFrame) -> pd.DataFrame:
    """Per scaled init and deep depth: how much lower the deep net's final training loss is
    than the one-hidden-layer baseline's of the same seed (same lr, steps and data), mean
    over the paired seeds with its Student-t 95% interval. A diverged deep run counts as a
    loss of inf (it gained nothing); the baseline's loss is the mean over its runs of that
    seed (at depth 1 every init builds the same net). Empty without a baseline."""
    base = table[(table["depth"] == SHALLOW) & (table["status"] == "ok")]
    base = base.groupby("seed")["final_loss"].mean()
    rows = []
    deep = table[(table["depth"] >= MIN_DEPTH) & table["init"].isin(SCALED)]
    for (init, depth), runs in deep.groupby(["init", "depth"]):
        final = runs.set_index("seed")["final_loss"].where(runs.set_index("seed")["status"] == "ok")
        gain = (base - final.fillna(np.inf)).dropna()
        mean, low, high = t_interval(gain)  # a diverged deep run: -inf, the low end
        rows.append({"init": init, "depth": depth, "seeds": len(gain), "gain": mean,
                     "low": low, "high": high, "baseline": float(base.mean())})  # fmt: skip
    return pd.DataFrame(rows, columns=["init", "depth", "seeds", "gain", "low", "high", "baseline"])


def uses_depth(gains: pd.DataFrame, n: dict[str, float]) -> tuple[bool | None, str]:
    """Claim (3): some init that trains a deep net ends below the one-hidden-layer baseline
    at every deep depth, the 95% interval of the paired gain above 0. None (with the
    reason) without a baseline of MIN_SEEDS seeds paired with the deep runs."""
    trained = [i for i in SCALED if n.get(f"{i}_trains_deep") == 1]
    mine = gains[gains["init"].isin(trained)] if len(gains) else gains
    if not trained or mine.empty or mine["seeds"].min() < MIN_SEEDS:
        return None, (
            f"(3) whether the trained net uses its depth needs a one-hidden-layer baseline "
            f"(depth={SHALLOW}) with {MIN_SEEDS} seeds paired with the deep runs; run "
            "+experiment=residual_scaling"
        )
    parts = [
        f"{r.init} at depth {r.depth} ends {r.gain:+.3f} ({r.low:+.3f}..{r.high:+.3f}, "
        f"{r.seeds} seeds) below the baseline's {r.baseline:.3f}"
        for r in mine.itertuples()
    ]
    ok = any((part["low"] > 0).all() for _, part in mine.groupby("init"))
    verb = "uses" if ok else "does not show that it uses"
    return ok, f"(3) the trained deep net {verb} its depth: " + "; ".join(parts)


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when, at depth >= 100, (1) every naive (kaiming_normal) run blows up:
    ends ``diverged`` or its loss does not fall; (2) at every depth, scaled_branches or
    skipinit trains a *deep* net: all its runs end ``ok`` with the loss falling by >= 20% of
    its step-0 value, and its residual branches receive a non-zero gradient (with exactly
    zero branch gradients only the first and output layers train: a one-hidden-layer net);
    and (3), where the sweep can tell (:func:`uses_depth`: a one-hidden-layer baseline with
    MIN_SEEDS paired seeds), that net ends below the baseline's loss, the 95% interval of
    the paired gain above 0. Without the baseline (3) is left open and the text says so.
    Undecided without runs of the naive and a scaled init at depth >= 100 trained for >=
    MIN_STEPS updates."""
    table = outcomes(sweep)
    table = table[table["status"].isin(FINISHED)]
    deep = table[table["depth"] >= MIN_DEPTH]
    described = deep if len(deep) else table  # a quick sweep: describe its shallow runs
    numbers = _numbers(described)
    text = _text(described, numbers)
    present = set(deep["init"])
    if NAIVE not in present or not present & set(SCALED) or deep["steps"].min() < MIN_STEPS:
        return Verdict(
            "residual_scaling",
            None,
            f"the sweep lacks {NAIVE} and scaled_branches/skipinit runs of depth >= {MIN_DEPTH} "
            f"trained >= {MIN_STEPS} steps; run +experiment=residual_scaling. {text}",
            numbers,
        )
    naive_blows = numbers[f"{NAIVE}_blew_up"] == numbers[f"{NAIVE}_runs"]
    deep_trains = any(numbers.get(f"{init}_trains_deep", 0) == 1 for init in SCALED)
    gains = depth_gain(table)
    uses, said = uses_depth(gains, numbers)
    for r in gains.itertuples():
        numbers |= {
            f"{r.init}_depth{r.depth}_gain": r.gain,
            f"{r.init}_depth{r.depth}_gain_low": r.low,
        }
    ok = naive_blows and deep_trains and uses is not False
    return Verdict("residual_scaling", bool(ok), f"{text} {said}.", numbers)


def _numbers(deep: pd.DataFrame) -> dict[str, float]:
    """Per init: runs, diverged runs and their latest diverged step, initial and final
    losses, the largest branch gradient, the first step's overshoot, and whether it trains
    a deep net at every depth."""
    numbers: dict[str, float] = {}
    for init, runs in deep.groupby("init"):
        ok = runs[runs["status"] == "ok"]
        blew = (runs["status"] == "diverged") | ~(runs["loss_drop"] > 0)
        trains = (runs["status"] == "ok") & (runs["loss_drop"] >= TRAINS)
        numbers[f"{init}_runs"] = float(len(runs))
        numbers[f"{init}_diverged"] = float((runs["status"] == "diverged").sum())
        numbers[f"{init}_blew_up"] = float(blew.sum())
        numbers[f"{init}_diverged_step_max"] = float(runs["diverged_step"].max())
        numbers[f"{init}_nonfinite_at_init"] = float(runs["initial_loss"].isna().sum())
        for depth, rows in runs.groupby("depth"):
            numbers[f"{init}_initial_loss_depth{depth}"] = float(rows["initial_loss"].median())
        numbers[f"{init}_final_loss_max"] = float(ok["final_loss"].max()) if len(ok) else np.nan
        numbers[f"{init}_final_loss_min"] = float(ok["final_loss"].min()) if len(ok) else np.nan
        numbers[f"{init}_branch_grad_max"] = float(runs["branch_grad_max"].max())
        numbers[f"{init}_overshoot_min"] = float(runs["overshoot"].min())
        numbers[f"{init}_delta_ratio_max"] = float(runs["delta_ratio_initial"].max())
        numbers[f"{init}_trains"] = float(trains.all())
        numbers[f"{init}_trains_deep"] = float(
            trains.all() and numbers[f"{init}_branch_grad_max"] > 0
        )
    return numbers


def _by_depth(n: dict[str, float], init: str, deep: pd.DataFrame) -> str:
    """'d=100: 3.1, d=200: 3.2' from the per-depth numbers of ``init``."""
    return ", ".join(
        f"d={d}: {n[f'{init}_initial_loss_depth{d}']:.3g}"
        for d in sorted(deep["depth"].unique())
        if f"{init}_initial_loss_depth{d}" in n
    )


def _text(deep: pd.DataFrame, n: dict[str, float]) -> str:
    """The verdict's sentences, one per init, with the numbers, and the outcome."""
    depths = ", ".join(str(d) for d in sorted(deep["depth"].unique()))
    parts = [f"at depth {depths} (lr {deep['lr'].max():g})"]
    parts += [_init_text(n, init, deep) for init in INITS if f"{init}_runs" in n]
    trained = any(n.get(f"{i}_trains_deep") == 1 for i in SCALED)
    outcome = "a deep residual net trained" if trained else "no init trained a deep residual net"
    return "; ".join(parts) + f". Outcome: {outcome}."


def _init_text(n: dict[str, float], init: str, deep: pd.DataFrame) -> str:
    """What happened to the runs of one init, with the numbers."""
    diverged, runs = n[f"{init}_diverged"], n[f"{init}_runs"]
    text = f"{init}: {diverged:.0f} of {runs:.0f} runs diverged"
    if diverged:
        text += f" (by step {n[f'{init}_diverged_step_max']:.0f})"
    text += f", median loss at step 0 {_by_depth(n, init, deep)}"
    if n[f"{init}_nonfinite_at_init"]:
        text += f" ({n[f'{init}_nonfinite_at_init']:.0f} runs not finite at step 0)"
    text += (
        f", ||delta^1||/||delta^L|| up to {n[f'{init}_delta_ratio_max']:.3g}, first SGD "
        f"step's first-order loss change lr*sum||grad||^2 >= {n[f'{init}_overshoot_min']:.3g}"
        "x the loss"
    )
    if runs > diverged:
        text += f", final loss {n[f'{init}_final_loss_min']:.3f}..{n[f'{init}_final_loss_max']:.3f}"
    if n[f"{init}_branch_grad_max"] == 0:
        text += (
            "; its branch weights received exactly zero gradient at every probed step "
            "(relu'(0) = 0 with zero weights and biases), so they stay 0 and only the "
            "first and output layers train: it trains as a one-hidden-layer net"
        )
    if init == "scaled_branches":
        text += (
            " (1/sqrt(B) branch scaling, not Fixup: Fixup's rule, L^(-1/(2m-2)) on m-layer "
            "branches whose last layer starts at 0, degenerates for these one-layer "
            "branches to zero branches, i.e. skipinit)"
        )
    return text


STUDIES.register("residual_scaling")(
    Study(
        "residual_scaling",
        "Without normalisation, does a 100-200 block residual ReLU MLP blow up with the "
        "naive init, and does scaling its branches by 1/sqrt(B) (scaled_branches) or zeroing them "
        "(skipinit) let it train?",
        "Fixup (Zhang et al. 2019); SkipInit (De & Smith 2020)",
        figures,
        verdict,
    )
)
