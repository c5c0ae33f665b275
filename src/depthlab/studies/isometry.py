"""Dynamical isometry (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017).

Measured: at step 0, the singular values s of the input-output Jacobian J = d a^{L-1} / d x
over the first inputs of a batch (depthlab.probes.jacobian), summarised by their quantiles
q000..q100 and by the mean and variance of s^2, for four variants on the critical line:
orthogonal or Gaussian weights, tanh or ReLU. Reductions per variant (median over its
runs): var(s^2); the scale-free spread var(s^2) / mean(s^2)^2; and the decades between the
10th and 90th percentiles, log10(q090 / q010). Also the training loss against step.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.frames import at_step, metric_rows, network_curve
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

KEYS = ["activation", "init", "depth", "width", "status"]
QUANTILES = ["q000", "q010", "q025", "q050", "q075", "q090", "q100"]
ISOMETRIC = ("orthogonal", "tanh")  # the variant that should be isometric
VARIANTS = {(i, a) for i in ("orthogonal", "gaussian") for a in ("tanh", "relu")}
FACTOR = 10.0  # "far smaller": var(s^2) at least this many times below every other variant


def variant(init: str, activation: str) -> str:
    """The variant's label, e.g. 'orthogonal tanh'."""
    return f"{init} {activation}"


def variant_colors(names: Iterable[str]) -> dict[str, tuple]:
    """The same colour for a variant in every figure: tab10 over the sorted names."""
    return {name: sns.color_palette("tab10")[i % 10] for i, name in enumerate(sorted(set(names)))}


def spectra(sweep: Sweep, step: int = 0) -> pd.DataFrame:
    """One row per run at ``step``: variant, activation, init, depth, width, the quantiles
    q000..q100 of s, sv2_mean, sv2_var, spread = sv2_var / sv2_mean^2 and
    decades = log10(q090 / q010)."""
    rows = metric_rows(sweep, "jacobian_sv2_var", KEYS)
    if rows.empty:
        return pd.DataFrame(columns=["run_id", "variant", *KEYS, *QUANTILES, "sv2_var"])
    names = {f"jacobian_sv_{q}": q for q in QUANTILES}
    names |= {"jacobian_sv2_mean": "sv2_mean", "jacobian_sv2_var": "sv2_var"}
    frame = sweep.frame(KEYS)
    frame = at_step(frame[frame["metric"].isin(list(names))], step)
    table = frame.pivot_table(index=["run_id", *KEYS], columns="metric", values="value")
    table = table.rename(columns=names).reset_index()
    table.columns.name = None
    table.insert(
        1,
        "variant",
        [variant(i, a) for i, a in zip(table["init"], table["activation"], strict=True)],
    )
    table["spread"] = table["sv2_var"] / table["sv2_mean"] ** 2
    table["decades"] = np.log10(table["q090"] / table["q010"])
    return table.sort_values("variant").reset_index(drop=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant: the median over its runs of sv2_mean, sv2_var, spread and decades."""
    columns = ["sv2_mean", "sv2_var", "spread", "decades"]
    return table.groupby(["variant", "init", "activation"])[columns].median().reset_index()


def final_losses(sweep: Sweep) -> pd.Series:
    """Per variant: the median over its runs of the final training loss."""
    runs = sweep.runs
    labels = [variant(i, a) for i, a in zip(runs["init"], runs["activation"], strict=True)]
    return runs.assign(variant=labels).groupby("variant")["final_loss"].median()


def quantile_figure(table: pd.DataFrame) -> plt.Figure:
    """Box-like spectra per variant on a log axis: box q025..q075, whiskers q010..q090,
    markers at the extremes q000 and q100, a line at the median; the dotted line s = 1."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = []
    colors = variant_colors(table["variant"])
    for x, row in enumerate(table.itertuples()):
        color = colors[row.variant]
        ax.add_patch(
            plt.Rectangle(
                (x - 0.25, row.q025), 0.5, row.q075 - row.q025, fc=color, alpha=0.4, ec=color
            )
        )
        ax.plot([x - 0.25, x + 0.25], [row.q050, row.q050], color=color, lw=2)
        ax.plot([x, x], [row.q010, row.q025], color=color)
        ax.plot([x, x], [row.q075, row.q090], color=color)
        ax.plot([x, x], [row.q000, row.q100], "_", color=color, ms=14, mew=2)
        labels.append(f"{row.variant}\nvar(s²)={row.sv2_var:.3g}")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel("singular value s of the Jacobian")
    depth, width = table["depth"].iloc[0], table["width"].iloc[0]
    ax.set_title(
        f"input-output Jacobian spectra at initialisation, depth {depth}, width {width}\n"
        "(box: 25-75%, whiskers: 10-90%, bars: min, max)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def variance_figure(table: pd.DataFrame) -> plt.Figure:
    """Per variant, var(s^2) and the scale-free spread var(s^2) / mean(s^2)^2 (log bars)."""
    per = summary(table)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, column, label in (
        (axes[0], "sv2_var", r"var($s^2$)"),
        (axes[1], "spread", r"var($s^2$) / mean($s^2$)$^2$"),
    ):
        palette = variant_colors(per["variant"])
        sns.barplot(per, x="variant", y=column, hue="variant", palette=palette, ax=ax, legend=False)
        ax.set_yscale("log")
        ax.set_xlabel("")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelsize=7)
        for x, value in enumerate(per[column]):
            ax.text(x, value, f"{value:.3g}", ha="center", va="bottom", fontsize=7)
    fig.suptitle("spread of the squared singular values at initialisation (small: isometric)")
    fig.tight_layout()
    return fig


def loss_figure(sweep: Sweep) -> plt.Figure:
    """Training loss (whole training set) against step per variant; mini-batch losses faint."""
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = variant_colors(
        variant(i, a) for i, a in zip(sweep.runs["init"], sweep.runs["activation"], strict=True)
    )
    for metric, style in (
        ("batch_loss", {"lw": 0.5, "alpha": 0.3}),
        ("loss", {"lw": 1.8, "marker": "o", "ms": 3}),
    ):
        curves = network_curve(sweep, metric, KEYS)
        for _, run in curves.groupby("run_id"):
            name = variant(run["init"].iloc[0], run["activation"].iloc[0])
            color = colors[name]
            label = name if metric == "loss" else None
            ax.plot(run["step"], run["value"], color=color, label=label, **style)
    low, high = ax.get_ylim()
    if low > 0 and high / low > 10:  # log only where the losses span decades
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss by variant (faint: mini-batch loss)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    table = spectra(sweep)
    return {
        "spectra": quantile_figure(table),
        "variance": variance_figure(table),
        "loss": loss_figure(sweep),
    }


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when, at step 0, orthogonal tanh's var(s^2) is at least FACTOR times below
    that of each of the other three variants and its scale-free spread var(s^2) / mean(s^2)^2
    is the smallest too (so the small variance is not only a small scale). Undecided unless
    all four variants (orthogonal / Gaussian x tanh / ReLU) are in the sweep."""
    per = summary(spectra(sweep)).set_index("variant")
    per["final_loss"] = final_losses(sweep).reindex(per.index)
    numbers = {}
    for name, row in per.iterrows():
        key = name.replace(" ", "_")
        numbers |= {
            f"{key}_{c}": float(row[c])
            for c in ("sv2_var", "spread", "sv2_mean", "decades", "final_loss")
        }
    present = set(zip(per["init"], per["activation"], strict=True))
    if not present >= VARIANTS:
        return Verdict(
            "isometry",
            None,
            "the sweep lacks some of the four variants (orthogonal / gaussian x tanh / relu); "
            "run +experiment=isometry.",
            numbers,
        )
    best = per.loc[variant(*ISOMETRIC)]
    others = per.drop(index=variant(*ISOMETRIC))
    numbers["var_ratio_min"] = float((others["sv2_var"] / best["sv2_var"]).min())
    ok = numbers["var_ratio_min"] >= FACTOR and bool((others["spread"] > best["spread"]).all())
    return Verdict("isometry", ok, _text(per, numbers), numbers)


def _text(per: pd.DataFrame, numbers: dict[str, float]) -> str:
    """The verdict's sentence: every variant's numbers."""
    listed = "; ".join(
        f"{name}: var(s^2) {row.sv2_var:.3g}, mean(s^2) {row.sv2_mean:.3g}, "
        f"var/mean^2 {row.spread:.3g}, q10-q90 over {row.decades:.2f} decades, final "
        f"training loss {row.final_loss:.3g}"
        for name, row in per.iterrows()
    )
    return (
        f"at step 0, {listed}. Orthogonal tanh's var(s^2) is {numbers['var_ratio_min']:.3g}x or "
        f"more below the others' (criterion >= {FACTOR:g}x, and the smallest var/mean^2)."
    )


STUDIES.register("isometry")(
    Study(
        "isometry",
        "Does a deep tanh net with orthogonal weights on the critical line keep its Jacobian's "
        "singular values concentrated, while Gaussian weights and ReLU spread them?",
        "Saxe, McClelland & Ganguli 2014; Pennington, Schoenholz & Ganguli 2017",
        figures,
        verdict,
    )
)
