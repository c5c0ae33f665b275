"""One function per figure: a tidy frame in, a matplotlib Figure out."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from depthlab.results import Sweep


def delta_profile(sweep: Sweep, step: int = 0, hue: str | None = None) -> plt.Figure:
    """Measured ||delta^l|| against layer l (log scale) for every run of a sweep at ``step``,
    with mean-field theory's prediction dashed over each run that has one (anchored at the
    run's measured output layer). ``hue``: the key that colours runs (default: the first
    swept key)."""
    keys = sweep.swept_keys()
    hue = hue or (keys[0] if keys else "run_id")
    frame = sweep.frame([k for k in dict.fromkeys([hue, *keys]) if k != "run_id"])
    at = frame[frame["step"] == step]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    palette = dict(
        zip(
            sorted(at[hue].astype(str).unique()),
            sns.color_palette("viridis", at[hue].nunique()),
            strict=True,
        )
    )
    for _, run in at.groupby("run_id"):
        label = str(run[hue].iloc[0])
        measured = run[run["metric"] == "delta_norm"].sort_values("layer")
        if measured.empty:
            continue
        color = palette[label]
        ax.plot(measured["layer"], measured["value"], "o-", ms=3, color=color, label=label)
        predicted = run[run["metric"] == "predicted_log_delta_norm"].sort_values("layer")
        if not predicted.empty:
            anchor = measured["value"].iloc[-1]  # ||delta^L|| as measured
            ax.plot(
                predicted["layer"], anchor * np.exp(predicted["value"]), "--", lw=1, color=color
            )
    ax.set_yscale("log")
    ax.set_xlabel("layer l (L = output)")
    ax.set_ylabel(r"$\|\delta^l\|$ (RMS over the batch)")
    ax.set_title(f"backprop error by layer at step {step} (dashed: mean-field theory)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), title=hue, fontsize=8)
    fig.tight_layout()
    return fig


def phase_diagram(frame: pd.DataFrame) -> plt.Figure:
    """chi_1 (log colour scale, the critical line chi_1 = 1 drawn) and the trainable depth
    6 xi_c over (sigma_w2, sigma_b2), from :func:`depthlab.theory.phase_diagram`."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    w = np.sort(frame["sigma_w2"].unique())
    b = np.sort(frame["sigma_b2"].unique())
    for ax, column, title in (
        (axes[0], "chi_1", r"$\chi_1$ (1: critical)"),
        (axes[1], "trainable_depth", r"$6\,\xi_c$ (trainable depth)"),
    ):
        grid = frame.pivot(index="sigma_b2", columns="sigma_w2", values=column).loc[b, w]
        values = np.log10(np.clip(grid.to_numpy(dtype=float), 1e-3, 1e4))
        mesh = ax.pcolormesh(w, b, values, shading="auto", cmap="magma")
        fig.colorbar(mesh, ax=ax, label=f"log10 {column}")
        chi = frame.pivot(index="sigma_b2", columns="sigma_w2", values="chi_1").loc[b, w]
        ax.contour(w, b, chi.to_numpy(dtype=float), levels=[1.0], colors="cyan", linewidths=1.5)
        ax.set_xlabel(r"$\sigma_w^2$")
        ax.set_title(title)
    axes[0].set_ylabel(r"$\sigma_b^2$")
    fig.tight_layout()
    return fig
