"""Exploding gradients: the chaotic phase of mean-field theory (Poole et al. 2016).

Measured: at step 0, the per-layer growth of the backprop error towards the input,
g = -slope of ln ||delta^l|| against l over the hidden layers l = 1..L-1 (least squares),
per run. Theory: ||delta^l||^2 / ||delta^{l+1}||^2 = chi(q^l), so the recorded prediction
ln ||delta^l|| - ln ||delta^L|| = 1/2 sum_{k >= l} ln chi(q^k) gives, fitted over the same
layers, the predicted growth; deep in the network it is 1/2 ln chi_1. chi_1 > 1 (tanh with
sigma_w2 > 1, ReLU with sigma_w2 > 2 at sigma_b2 = 0) is the chaotic phase: g > 0.
Outcome: each run's status (ok | diverged | failed), diverged_step and final loss, against
sigma_w2; ReLU with sigma_w2 > 2 has no finite fixed point q* (the forward signal grows
(sigma_w2 / 2)^l), and such runs must end ``diverged`` (recorded, not crashed).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from depthlab import plots, theory
from depthlab.frames import at_step, log_slope, metric_rows, profile_rows
from depthlab.plots import theory_scatter
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict

KEYS = ["activation", "init.sigma_w2", "init.sigma_b2", "depth", "status"]
RUN_COLUMNS = [*KEYS, "run_id", "steps", "diverged_step", "final_loss"]
CRITICAL_TOLERANCE = 1e-3  # |chi_1 - 1| below this counts as critical
MIN_STEPS = 100  # "does not diverge" means something only over this many updates
MIN_DEPTH = 10  # growth rates are fitted on runs at least this deep


def mean_field(activation: str, sigma_w2: float, sigma_b2: float) -> dict:
    """Theory for one configuration, from a single fixed-point iteration: ``chi`` deep in the
    network (chi_1 = chi(q*), or where q^l grows without bound, ReLU with sigma_w2 > 2, the
    limit of chi(q^l): sigma_w2 / 2 for ReLU at every q), ``blows_up`` (no finite q*) and
    ``phase``: 'ordered' (chi_1 < 1), 'critical' (|chi_1 - 1| < CRITICAL_TOLERANCE) or
    'chaotic' (chi_1 > 1, including every blow-up)."""
    w, b = float(sigma_w2), float(sigma_b2)
    q_star = theory.fixed_point(activation, w, b)
    blows_up = not np.isfinite(q_star)
    chi = theory.chi(activation, w, theory.Q_INFINITE if blows_up else q_star)
    chi_1 = np.inf if blows_up else chi
    if abs(chi_1 - 1) < CRITICAL_TOLERANCE:
        name = "critical"
    else:
        name = "ordered" if chi_1 < 1 else "chaotic"
    return {"chi": chi, "blows_up": blows_up, "phase": name}


def phase(activation: str, sigma_w2: float, sigma_b2: float) -> str:
    """The mean-field phase of a configuration (see :func:`mean_field`)."""
    return mean_field(activation, sigma_w2, sigma_b2)["phase"]


def theory_table(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`mean_field` for each distinct (activation, sigma_w2, sigma_b2) of ``runs``."""
    keys = ["activation", "init.sigma_w2", "init.sigma_b2"]
    configs = runs[keys].drop_duplicates()
    rows = [{**dict(zip(keys, c, strict=True)), **mean_field(*c)} for c in configs.to_numpy()]
    return pd.DataFrame(rows, columns=[*keys, "chi", "blows_up", "phase"])


def growth(sweep: Sweep) -> pd.DataFrame:
    """One row per run: measured and predicted growth per layer of ln ||delta^l|| towards
    the input at step 0 (-slope over the hidden layers; see the module docstring)."""
    delta = at_step(metric_rows(sweep, "delta_norm", KEYS), 0)
    predicted = at_step(metric_rows(sweep, "predicted_log_delta_norm", KEYS), 0)
    rows = []
    for run_id, run in delta.groupby("run_id"):
        run = run.sort_values("layer")
        top = run["layer"].max()
        hidden = run[run["layer"] < top]
        pred = predicted[(predicted["run_id"] == run_id) & (predicted["layer"] < top)]
        rows.append(
            {
                "run_id": run_id,
                **run.iloc[0][KEYS].to_dict(),
                "measured_growth": -log_slope(hidden["layer"], hidden["value"]),
                "predicted_growth": -log_slope(pred["layer"], np.exp(pred["value"]))
                if len(pred)
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def outcomes(sweep: Sweep) -> pd.DataFrame:
    """One row per run: its keys, status, diverged_step, final_loss, and theory's deep chi,
    phase and whether the forward signal blows up (:func:`mean_field`)."""
    runs = sweep.runs[RUN_COLUMNS]
    keys = ["activation", "init.sigma_w2", "init.sigma_b2"]
    return runs.merge(theory_table(runs), on=keys, how="left")


def profile_figure(sweep: Sweep) -> plt.Figure:
    """||delta^l|| against l at step 0: columns activation, rows depth, one line per
    sigma_w2; mean-field theory dashed, anchored at the measured output layer
    (:func:`depthlab.plots.draw_delta_profile`)."""
    delta, theory_rows = profile_rows(sweep, 0, KEYS)
    acts, depths = sorted(delta["activation"].unique()), sorted(delta["depth"].unique())
    colors = plots.palette(delta["init.sigma_w2"])
    chis = theory_table(sweep.runs).set_index(["activation", "init.sigma_w2", "init.sigma_b2"])
    chis = chis["chi"].to_dict()

    def label(run: pd.DataFrame) -> str:
        act, sigma, sigma_b2 = run[["activation", "init.sigma_w2", "init.sigma_b2"]].iloc[0]
        return rf"$\sigma_w^2$={sigma:g} ($\chi$={chis[(act, sigma, sigma_b2)]:.3g})"

    fig, axes = plt.subplots(
        len(depths), len(acts), figsize=(4.2 * len(acts), 3.0 * len(depths)), squeeze=False
    )
    for (i, depth), (j, act) in ((d, a) for d in enumerate(depths) for a in enumerate(acts)):
        ax = axes[i][j]
        cell = delta[(delta["activation"] == act) & (delta["depth"] == depth)]
        plots.draw_delta_profile(ax, cell, theory_rows, "init.sigma_w2", colors, label=label)
        ax.set_title(f"{act}, depth {depth}", fontsize=9)
        ax.set_xlabel("layer l (1 = input side)")
        ax.set_ylabel(r"$\|\delta^l\|$ at step 0")
        handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
        ax.legend(handles.values(), handles.keys(), fontsize=6)
    biases = ", ".join(f"{b:g}" for b in sorted(sweep.runs["init.sigma_b2"].unique()))
    fig.suptitle(
        rf"backprop error at initialisation, $\sigma_b^2$={biases} (dashed: mean-field theory)"
    )
    fig.tight_layout()
    return fig


def growth_figure(table: pd.DataFrame) -> plt.Figure:
    """Measured against predicted growth per layer of ln ||delta^l||, identity line dotted."""
    labels = {
        "xlabel": r"theory: $\frac{1}{2}\ln\chi$ per layer (fitted over the same layers)",
        "ylabel": r"measured: $-$slope of $\ln\|\delta^l\|$ per layer",
        "title": "growth of the backprop error towards the input\n(> 0: chaotic, exploding)",
    }
    return theory_scatter(
        table,
        "predicted_growth",
        "measured_growth",
        labels,
        hue="activation",
        style="depth",
        size="init.sigma_w2",
    )


def outcome_figure(table: pd.DataFrame) -> plt.Figure:
    """Final training loss against sigma_w2 per activation, one line per depth; diverged
    runs drawn as red crosses at the top with their diverged step; the critical sigma_w2
    of mean-field theory dotted."""
    acts = sorted(table["activation"].unique())
    fig, axes = plt.subplots(1, len(acts), figsize=(4.4 * len(acts), 3.6), squeeze=False)
    finite = table["final_loss"].dropna()
    top = (finite.max() if len(finite) else 1.0) * 1.25
    for ax, act in zip(axes[0], acts, strict=True):
        cell = table[table["activation"] == act].sort_values("init.sigma_w2")
        for depth, runs in cell.groupby("depth"):
            ok = runs[runs["status"] == "ok"]
            ax.plot(ok["init.sigma_w2"], ok["final_loss"], "o-", label=f"depth {depth}")
        bad = cell[cell["status"] != "ok"]
        ax.scatter(bad["init.sigma_w2"], [top] * len(bad), marker="x", color="red", s=60)
        for _, run in bad.iterrows():
            step = run["diverged_step"]
            note = f"{run['status']} @ step {step:.0f}" if pd.notna(step) else run["status"]
            ax.annotate(
                f"d={run['depth']}: {note}",
                (run["init.sigma_w2"], top),
                textcoords="offset points",
                xytext=(-60, -12 - 9 * (run["depth"] > cell["depth"].min())),
                fontsize=6,
                color="red",
            )
        sigma_b2 = float(cell["init.sigma_b2"].iloc[0])
        ax.axvline(theory.critical_sigma_w2(act, sigma_b2), color="k", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, top * 1.08)
        ax.set_xlabel(r"$\sigma_w^2$ (dotted: critical, $\chi_1$ = 1)")
        ax.set_ylabel("final training loss")
        ax.set_title(f"{act}: outcome after training (x: diverged)", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """Named figures: delta_profiles, growth (measured against theory), outcomes."""
    return {
        "delta_profiles": profile_figure(sweep),
        "growth": growth_figure(growth(sweep)),
        "outcomes": outcome_figure(outcomes(sweep)),
    }


def verdict(sweep: Sweep) -> Verdict:
    """Reproduced when (1) every chaotic run (chi_1 > 1) of depth >= 10 has ||delta^l||
    growing towards the input (measured growth > 0) and the measured growth per layer
    matches theory's to a median relative error < 15%; (2) every run whose forward signal
    blows up by theory (q* infinite: ReLU, sigma_w2 > 2) ends ``diverged`` with its step
    recorded, and no run ends ``failed``; (3) no ordered or critical run diverges. Undecided
    without chaotic runs of both activations, a blow-up run, ordered or critical runs, or
    when those trained fewer than MIN_STEPS updates (not diverging in 20 steps says
    little)."""
    runs = outcomes(sweep)
    table = growth(sweep).merge(runs[["run_id", "phase", "blows_up"]], on="run_id")
    chaotic = table[(table["phase"] == "chaotic") & (table["depth"] >= MIN_DEPTH)]
    rel = (chaotic["measured_growth"] - chaotic["predicted_growth"]).abs() / chaotic[
        "predicted_growth"
    ].abs()
    blow, tame = runs[runs["blows_up"]], runs[runs["phase"] != "chaotic"]
    numbers = _numbers(table, chaotic, rel, runs)
    if (
        chaotic["activation"].nunique() < 2
        or len(blow) == 0
        or len(tame) == 0
        or tame["steps"].min() < MIN_STEPS
    ):
        return Verdict(
            "exploding",
            None,
            f"the sweep lacks chaotic runs of tanh and relu, a relu run with sigma_w2 > 2, or "
            f"ordered/critical runs trained >= {MIN_STEPS} steps; run +experiment=exploding. "
            + _text(numbers),
            numbers,
        )
    ok = (
        numbers["chaotic_growth_min"] > 0
        and numbers["growth_rel_error_median"] < 0.15
        and numbers["blowup_diverged_fraction"] == 1
        and numbers["failed_runs"] == 0
        and numbers["tame_diverged_runs"] == 0
    )
    return Verdict("exploding", ok, _text(numbers), numbers)


def _numbers(
    table: pd.DataFrame, chaotic: pd.DataFrame, rel: pd.Series, runs: pd.DataFrame
) -> dict[str, float]:
    """The verdict's numbers (nan where the sweep has no runs to compute one)."""
    blow, tame = runs[runs["blows_up"]], runs[runs["phase"] != "chaotic"]
    error = (table["measured_growth"] - table["predicted_growth"]).abs()
    numbers = {
        "chaotic_runs": float(len(chaotic)),
        "chaotic_growth_min": float(chaotic["measured_growth"].min()) if len(chaotic) else np.nan,
        "growth_rel_error_median": float(rel.median()) if len(rel) else np.nan,
        "growth_abs_error_max": float(error.max()) if len(error) else np.nan,
        "blowup_runs": float(len(blow)),
        "blowup_diverged_fraction": float((blow["status"] == "diverged").mean())
        if len(blow)
        else np.nan,
        "blowup_diverged_step_max": float(blow["diverged_step"].max()) if len(blow) else np.nan,
        "failed_runs": float((runs["status"] == "failed").sum()),
        "tame_runs": float(len(tame)),
        "tame_diverged_runs": float((tame["status"] != "ok").sum()),
    }
    for act, rows in chaotic.groupby("activation"):
        deep = rows.sort_values(["init.sigma_w2", "depth"]).iloc[-1]  # most chaotic, deepest
        numbers[f"{act}_max_sigma_w2"] = float(deep["init.sigma_w2"])
        numbers[f"{act}_depth"] = float(deep["depth"])
        numbers[f"{act}_measured_growth"] = float(deep["measured_growth"])
        numbers[f"{act}_predicted_growth"] = float(deep["predicted_growth"])
    return numbers


def _text(n: dict[str, float]) -> str:
    """The verdict's sentence, with its numbers."""
    per_act = "; ".join(
        f"{act} at sigma_w2={n[f'{act}_max_sigma_w2']:g}, depth {n[f'{act}_depth']:.0f}: "
        f"{n[f'{act}_measured_growth']:.3f} measured vs {n[f'{act}_predicted_growth']:.3f} "
        f"predicted"
        for act in ("tanh", "relu")
        if f"{act}_max_sigma_w2" in n
    )
    return (
        f"||delta^l|| grows towards the input in all {n['chaotic_runs']:.0f} chaotic runs of "
        f"depth >= {MIN_DEPTH} (least growth {n['chaotic_growth_min']:.3f} per layer in ln); "
        f"measured growth per layer matches mean-field theory to a median "
        f"{n['growth_rel_error_median']:.1%} ({per_act}; largest absolute gap over all runs "
        f"{n['growth_abs_error_max']:.3f}); {n['blowup_diverged_fraction']:.0%} of the "
        f"{n['blowup_runs']:.0f} runs whose signal blows up (relu, sigma_w2 > 2) ended "
        f"diverged (by step {n['blowup_diverged_step_max']:.0f}), {n['failed_runs']:.0f} "
        f"failed; {n['tame_diverged_runs']:.0f} of {n['tame_runs']:.0f} ordered/critical "
        f"runs diverged."
    )


STUDIES.register("exploding")(
    Study(
        "exploding",
        "In the chaotic phase (chi_1 > 1), does ||delta^l|| grow towards the input at the "
        "rate mean-field theory predicts, and do runs whose signal blows up end recorded as "
        "diverged while ordered and critical runs train?",
        "Poole et al. 2016; Schoenholz et al. 2017 (mean-field chaotic phase)",
        figures,
        verdict,
    )
)
