"""Dead ReLU units against the learning rate: do large SGD steps kill units (ReLU folklore:
Karpathy, CS231n; makemore part 3)? Nets born dead at step 0 are the born_dead study's.

Measured: ``dead_frac``, the fraction of a hidden layer's units with phi'(u) = 0 (for ReLU,
u <= 0) on every input judged; the ``units`` probe judges on the training batch of 128.

The claim, on the whole training set (the folklore's terms). Per run, the dead fraction of
its hidden layers (mean over layers 1..L-1) on all training inputs at step 0 and at the
end; the nets are rebuilt by training their recorded configs again (runs are
deterministic: the final losses are checked against the records, which keep no weights).
Rise = end - step 0 (the same network at step 0 for every lr of one seed). Per lr: over
the runs that ended ``ok``, the mean rise with a Student-t 95% interval over seeds;
diverged runs are counted per lr (their weights are not finite), never as dead units.

Measurement (no criterion): on the same nets, the dead fraction judged on n random training
inputs (its exact expectation over draws), n = 8 .. all: how much "dead on a batch of 128"
(what the probe records) overstates "dead on the training set" (pooled ratio).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from scipy.special import gammaln

from depthlab.config import DTYPES, config_from_file, resolve_device
from depthlab.data import load_data
from depthlab.frames import metric_rows, t_interval
from depthlab.model import MLP
from depthlab.probes import Capture
from depthlab.probes.base import ProbeInput
from depthlab.probes.layer_stats import activations_and_slopes, units
from depthlab.records import replica_seeds
from depthlab.results import Sweep
from depthlab.studies.base import STUDIES, Study, Verdict
from depthlab.train import Member, build_model, train_group

KEYS = ["lr", "depth", "status", "steps"]  # run columns; metric rows carry their own seed
MIN_STEPS = 200  # units die over training: a few dozen steps say little
MIN_SURVIVORS = 3  # surviving seeds an lr needs for its rise to count (t-interval, 2 dof)
MIN_LRS = 3  # learning rates with that many survivors needed to judge the claim
MIN_RISE = 0.05  # a killing lr: mean rise >= 5 points of the units, interval above 0
MIN_KILLING = 2  # the claim must not rest on one lr: at least two killing lrs
CHANCE = 0.15  # final training accuracy below this: a net at chance (MNIST-1D: 0.1)

BATCH = 128  # the training batch, which the probe sees during training
SIZES = (8, 32, 128, 512, 2048)  # numbers of inputs judged on, below the whole set
RESAMPLES = 1000  # bootstrap resamples of runs for the ratio's interval
PANELS = [(-0.17, "initial_set", "grey", "step 0"), (0.17, "final_set", "C3", "end")]
RUN_COLUMNS = ["run_id", "path", "seed", "status", "final_loss"]  # what rebuilding reads
REBUILT_COLUMNS = ["run_id", "when", "inputs", "layer", "dead"]


# ---- the nets rebuilt: dead on the training set and on n of its inputs -------------------


def dead_by_inputs(model: MLP, x: torch.Tensor, replica: int, sizes: tuple[int, ...]) -> np.ndarray:
    """(len(sizes) + 1, L - 1): one replica's dead fraction per hidden layer judged on n of
    the N inputs ``x`` drawn at random without replacement (as a training batch is), the
    expectation over all such draws, for n in ``sizes``; then on all of ``x`` (the ``units``
    probe's dead_frac of one pass over x). A unit active on k inputs is dead on n random ones
    with probability C(N - k, n) / C(N, n) (hypergeometric): 1 for k = 0, never growing with
    n, so a smaller n never finds fewer dead units."""
    with Capture(model) as capture, torch.no_grad():
        model(x, slice(replica, replica + 1))
    probe = ProbeInput(model, capture.tensors)
    whole = units(probe)["dead_frac"][0, :-1].cpu().numpy()
    big, n = len(x), np.array(sizes, float)[:, None]
    rows = []
    for _, slope in activations_and_slopes(probe)[:-1]:
        k = (slope[0] != 0).sum(0).cpu().numpy().astype(float)  # active inputs per unit
        rest = np.maximum(big - k - n, 0)
        log_p = gammaln(big - k + 1) - gammaln(rest + 1) + gammaln(big - n + 1) - gammaln(big + 1)
        p = np.where(k == 0, 1.0, np.where(big - k >= n, np.exp(log_p), 0.0))
        rows.append(p.mean(1))
    return np.vstack([np.stack(rows, 1), whole])


def rebuilt(sweep: Sweep) -> pd.DataFrame:
    """Tidy rows (run_id, when, inputs, layer, dead) of every run's net at step 0 (``when``
    = "initial") and at the end ("final", runs that ended ``ok``): the dead fraction per
    hidden layer judged on ``inputs`` training samples (SIZES, then the whole set; see
    :func:`dead_by_inputs`). Empty when the run folders hold no config to rebuild from.
    Computed once per sweep folder and set of runs (figures and verdict share it)."""
    if sweep.runs.empty or not set(RUN_COLUMNS) <= set(sweep.runs.columns):
        return pd.DataFrame(columns=REBUILT_COLUMNS)
    runs = sweep.runs[RUN_COLUMNS].astype({"path": str, "seed": int, "status": str})
    runs["final_loss"] = runs["final_loss"].astype(float).astype(str)  # hashable, NaN too
    try:
        return _rebuild(str(sweep.root), tuple(runs.itertuples(index=False, name=None))).copy()
    except FileNotFoundError:
        return pd.DataFrame(columns=REBUILT_COLUMNS)


@functools.lru_cache(maxsize=2)
def _rebuild(root: str, rows: tuple[tuple, ...]) -> pd.DataFrame:
    """:func:`rebuilt`'s work on the runs ``rows`` (RUN_COLUMNS) of the sweep at ``root``:
    the nets at step 0 drawn again, the trained ones retrained."""
    runs = pd.DataFrame(list(rows), columns=RUN_COLUMNS).astype({"final_loss": float})
    jobs = _jobs(Path(root), runs)
    cfg = jobs[0][0]
    device = resolve_device(cfg.device)
    data = load_data(cfg.data, device, DTYPES[cfg.dtype])
    sizes = tuple(s for s in SIZES if s < data.num_train)
    ok = set(runs[runs["status"] == "ok"]["run_id"])
    initial = [build_model(c, data, device, DTYPES[c.dtype]) for c, _ in jobs]
    frames = []
    for (_, ids), first, (last, indices) in zip(jobs, initial, _retrained(jobs, runs), strict=True):
        for r, run_id in enumerate(ids):
            if run_id is None:  # a replica the sweep lacks
                continue
            nets = [("initial", first, r), ("final", last, indices[r])][: 1 + (run_id in ok)]
            for when, model, replica in nets:
                dead = dead_by_inputs(model, data.x_train, replica, sizes)
                layers = np.arange(1, dead.shape[1] + 1)
                frames += [pd.DataFrame({"run_id": run_id, "when": when, "inputs": n,
                                         "layer": layers, "dead": dead[i]})
                           for i, n in enumerate([*sizes, data.num_train])]  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REBUILT_COLUMNS)


def _jobs(root: Path, runs: pd.DataFrame) -> list[tuple]:
    """Each job's config (from its ``.hydra/config.yaml``) and the run_ids of its replicas
    in seed order (None for a replica the sweep lacks)."""
    jobs: dict[Path, dict[int, str]] = {}
    for row in runs.itertuples():
        folder = root / row.path
        job = folder if (folder / ".hydra").is_dir() else folder.parent
        jobs.setdefault(job, {})[int(row.seed)] = row.run_id
    out = []
    for job, seeds in jobs.items():
        cfg = config_from_file(job / ".hydra" / "config.yaml")
        out.append((cfg, [seeds.get(s) for s in replica_seeds(cfg)]))
    return out


def _retrained(jobs: list[tuple], runs: pd.DataFrame) -> list[tuple[MLP, tuple[int, ...]]]:
    """Train the jobs again as one group (as the sweeper did) in a temporary folder; per
    job its trained model and replica indices. RuntimeError when a replica's final loss
    differs from its record (the code or data changed since the sweep ran)."""
    recorded = runs.set_index("run_id")["final_loss"]
    with tempfile.TemporaryDirectory() as folder:
        results = train_group([Member(c, Path(folder) / str(k)) for k, (c, _) in enumerate(jobs)])
    for (_, ids), result in zip(jobs, results, strict=True):
        for run_id, row in zip(ids, result.rows, strict=True):
            was, again = recorded.get(run_id), row["final_loss"]
            if run_id is not None and not np.isclose(was, again, rtol=1e-9, equal_nan=True):
                raise RuntimeError(f"run {run_id} retrained to loss {again}, recorded {was}")
    return [(r.model, r.indices) for r in results]


def per_run(sweep: Sweep, table: pd.DataFrame) -> pd.DataFrame:
    """One row per run: lr, seed, status, steps, final training accuracy, and its dead
    fraction (mean over hidden layers) on the whole training set (``initial_set``,
    ``final_set``) and on a random batch of BATCH (``initial_batch``, ``final_batch``: the
    expectation), from :func:`rebuilt`'s ``table``; NaN where absent (a diverged run has no
    final net)."""
    runs = sweep.runs
    out = runs[["run_id", "lr", "seed", "status", "steps"]].copy()
    out["accuracy"] = runs.get("final_accuracy", np.nan)
    means = table.groupby(["run_id", "when", "inputs"])["dead"].mean()
    whole = table["inputs"].max()
    for when in ("initial", "final"):
        for label, n in (("set", whole), ("batch", BATCH)):
            picked = means[(means.index.get_level_values("when") == when)
                           & (means.index.get_level_values("inputs") == n)]  # fmt: skip
            out[f"{when}_{label}"] = out["run_id"].map(picked.droplevel(["when", "inputs"]))
    return out.astype({c: float for c in out.columns if c.endswith(("_set", "_batch"))})


def rises(runs: pd.DataFrame) -> pd.DataFrame:
    """Per lr: ``runs``, ``diverged``, ``ok`` (ended ``ok``), ``at_chance`` (ok with final
    accuracy < CHANCE), and over the ok runs the rise final - initial of the dead fraction
    on the training set (``rise``, ``rise_low``, ``rise_high``: mean and Student-t 95%
    interval over seeds) and on a batch (``batch_rise`` ...)."""
    rows = []
    for lr, group in runs.groupby("lr"):
        ok = group[group["status"] == "ok"]
        rise = t_interval((ok["final_set"] - ok["initial_set"]).dropna())
        batch = t_interval((ok["final_batch"] - ok["initial_batch"]).dropna())
        rows.append({
            "lr": lr, "runs": len(group), "diverged": int((group["status"] == "diverged").sum()),
            "ok": len(ok), "at_chance": int((ok["accuracy"] < CHANCE).sum()),
            "initial_set": ok["initial_set"].mean(), "final_set": ok["final_set"].mean(),
            "rise": rise[0], "rise_low": rise[1], "rise_high": rise[2],
            "batch_rise": batch[0], "batch_rise_low": batch[1], "batch_rise_high": batch[2],
        })  # fmt: skip
    return pd.DataFrame(rows)


def judge_training(runs: pd.DataFrame) -> Verdict:
    """The claim, on the training set: a *killing* lr has >= MIN_SURVIVORS runs that ended
    ``ok`` and a mean rise >= MIN_RISE whose 95% interval lies above 0. Reproduced when (a)
    at least MIN_KILLING lrs kill (no single lr carries the claim) and (b) every killing lr
    is larger than every lr whose rise interval lies below 0 (units are killed by large
    steps, revived by small ones, not the reverse). Undecided with fewer than MIN_LRS lrs
    with MIN_SURVIVORS survivors, runs shorter than MIN_STEPS or no training-set values."""
    table = rises(runs) if len(runs) else pd.DataFrame()
    numbers = _numbers(table)
    text = _text(table) if len(table) else ""
    judged = table[(table["ok"] >= MIN_SURVIVORS) & table["rise"].notna()] if len(table) else table
    if len(judged) < MIN_LRS or runs["steps"].min() < MIN_STEPS:
        reason = (
            f"the claim needs the full preset (+experiment=dead_units): {MIN_LRS} learning "
            f"rates with {MIN_SURVIVORS} runs that did not diverge, trained >= {MIN_STEPS} "
            "steps, with their nets rebuilt from the run folders."
        )
        return Verdict("dead_units", None, f"{reason} {text}".strip(), numbers)
    killing = judged[(judged["rise"] >= MIN_RISE) & (judged["rise_low"] > 0)]["lr"]
    reviving = table[table["rise_high"] < 0]["lr"]
    ordered = killing.empty or reviving.empty or killing.min() > reviving.max()
    numbers |= {"killing_lrs": float(len(killing)), "killed_above_revived": float(ordered)}
    return Verdict("dead_units", bool(len(killing) >= MIN_KILLING and ordered), text, numbers)


def _numbers(table: pd.DataFrame) -> dict[str, float]:
    """Per lr: the rise on the training set and on a batch with intervals, and the counts."""
    keys = ("rise", "rise_low", "rise_high", "batch_rise", "batch_rise_low", "batch_rise_high",
            "diverged", "ok", "at_chance", "initial_set", "final_set")  # fmt: skip
    return {f"{k}_lr{row.lr:g}": float(getattr(row, k)) for row in table.itertuples() for k in keys}


def _text(table: pd.DataFrame) -> str:
    """The claim's sentence: per lr the rise on the training set (and on a batch)."""
    parts = []
    for r in table.itertuples():
        if r.ok == 0:
            parts.append(f"lr={r.lr:g}: all {r.runs} runs diverged")
            continue
        band = f"{r.rise_low:+.3f}..{r.rise_high:+.3f}" if r.ok > 1 else "one seed"
        part = (
            f"lr={r.lr:g}: {r.rise:+.3f} ({band}; batch {r.batch_rise:+.3f}), {r.diverged} of "
            f"{r.runs} diverged"
        )
        parts.append(part + (f", {r.at_chance} at chance" if r.at_chance else ""))
    return (
        "rise of the dead fraction over training, on the whole training set (mean over hidden "
        "layers and surviving seeds, Student-t 95% interval): " + "; ".join(parts) + f". "
        f"Criteria: >= {MIN_KILLING} lrs with a rise >= {MIN_RISE} (interval above 0, >= "
        f"{MIN_SURVIVORS} survivors), all above any lr whose rise is below 0."
    )


def overstatement(runs: pd.DataFrame, seed: int = 0) -> tuple[str, dict[str, float]]:
    """The pooled ratio mean(dead on a batch of BATCH) / mean(dead on the training set)
    over the runs, at step 0 and at the end (ok runs), with 95% bootstrap intervals over
    runs: a sentence and its numbers (no criterion: a measured caveat)."""
    numbers, parts = {}, []
    rng = np.random.default_rng(seed)
    for when in ("initial", "final"):
        pair = runs[[f"{when}_batch", f"{when}_set"]].dropna().to_numpy()
        if len(pair) == 0 or pair[:, 1].sum() == 0:
            continue
        ratio = pair[:, 0].sum() / pair[:, 1].sum()
        picks = rng.integers(0, len(pair), (RESAMPLES, len(pair)))
        draws = pair[picks, 0].sum(1) / np.maximum(pair[picks, 1].sum(1), 1e-300)
        low, high = np.percentile(draws, [2.5, 97.5])
        numbers |= {f"batch_over_set_{when}": ratio, f"batch_over_set_{when}_low": low,
                    f"batch_over_set_{when}_high": high}  # fmt: skip
        parts.append(
            f"{'at step 0' if when == 'initial' else 'at the end'} {pair[:, 0].mean():.3f} on "
            f"a batch of {BATCH} against {pair[:, 1].mean():.3f} on the training set, "
            f"{ratio:.2f}x ({low:.2f}-{high:.2f})"
        )
    text = "Dead fraction judged on a batch vs the training set: " + "; ".join(parts) + "."
    return text if parts else "", numbers


# ---- figures and verdict ------------------------------------------------------------------


def set_figure(runs: pd.DataFrame) -> plt.Figure:
    """Dead fraction on the whole training set against lr, at step 0 (grey) and at the end
    (colour): one dot per seed, the mean with its Student-t 95% interval; diverged runs
    counted above each lr."""
    lrs = sorted(runs["lr"].unique())
    fig, ax = plt.subplots(figsize=(6.5, 4))
    rng, ticks = np.random.default_rng(0), []
    for x, lr in enumerate(lrs):
        group = runs[runs["lr"] == lr]
        ok = group[group["status"] == "ok"]
        for shift, column, color, label in PANELS:
            values = ok[column].dropna().to_numpy()
            jitter = x + shift + rng.uniform(-0.05, 0.05, len(values))
            ax.plot(jitter, values, "o", ms=3, color=color, alpha=0.5, label=label * (x == 0))
            mean, low, high = t_interval(values)
            if np.isfinite(low):
                ax.errorbar(x + shift, mean, [[mean - low], [high - mean]], fmt="_", ms=14,
                            color=color, capsize=3, lw=1.5)  # fmt: skip
        diverged = int((group["status"] == "diverged").sum())
        ticks.append(f"{lr:g}" + (f"\n{diverged}/{len(group)}\ndiverged" if diverged else ""))
    ax.set_xticks(range(len(lrs)), ticks, fontsize=8)
    ax.set_xlim(-0.6, len(lrs) - 0.4)
    ax.set(xlabel="learning rate", ylabel="dead fraction on the training set", ylim=(0, None))
    ax.set_title("ReLU units dead on every training input (mean over hidden layers)", fontsize=10)
    ax.legend(fontsize=7, loc="center left")
    fig.tight_layout()
    return fig


def dead_curves(sweep: Sweep) -> pd.DataFrame:
    """Per run and probed step: the probe's dead_frac averaged over the hidden layers."""
    rows = metric_rows(sweep, "dead_frac", KEYS)
    hidden = rows[rows["layer"] < rows.groupby("run_id")["layer"].transform("max")]
    means = hidden.dropna(subset=["value"]).groupby(["run_id", "seed", *KEYS, "step"])["value"]
    return means.mean().rename("dead").reset_index()


def curve_figure(sweep: Sweep) -> plt.Figure:
    """Mean hidden dead_frac on the probe's batch against step, one line per lr: mean over
    the seeds, band from their min to max; diverged runs stop at their last probed step."""
    curves = dead_curves(sweep)
    lrs = sorted(curves["lr"].unique())
    colors = dict(zip(lrs, sns.color_palette("rocket_r", len(lrs) + 1)[1:], strict=True))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for lr, rows in curves.groupby("lr"):
        runs = rows["run_id"].nunique()
        diverged = rows[rows["status"] == "diverged"]["run_id"].nunique()
        band = rows.groupby("step")["dead"].agg(["mean", "min", "max"])
        label = f"lr={lr:g}" + (f" ({diverged}/{runs} diverged)" if diverged else "")
        ax.plot(band.index, band["mean"], "o-", ms=2, color=colors[lr], label=label)
        ax.fill_between(band.index, band["min"], band["max"], color=colors[lr], alpha=0.2)
    ax.set(xlabel="SGD step", ylabel=f"dead fraction on the batch of {BATCH}", ylim=(0, None))
    depth = int(curves["depth"].max()) if len(curves) else 0
    ax.set_title(f"dead ReLU units over training, depth {depth} (band: seed min..max)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ratio_figure(table: pd.DataFrame) -> plt.Figure:
    """Dead fraction judged on n inputs over that on the whole training set, pooled over
    runs and hidden layers, against n, at step 0 and at the end."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    means = table.groupby(["when", "inputs"])["dead"].mean()
    for when, color in (("initial", "grey"), ("final", "C3")):
        if when in means.index.get_level_values("when"):
            curve = means[when]
            ax.plot(curve.index, curve / curve.iloc[-1], "o-", color=color,
                    label="step 0" if when == "initial" else "end of training")  # fmt: skip
    ax.axhline(1, color="k", lw=0.5)
    ax.axvline(BATCH, color="k", ls=":", lw=1, label=f"the probe's batch ({BATCH})")
    ax.set_xscale("log")
    ax.set(xlabel="inputs judged on, n", ylabel="dead on n inputs / dead on the training set")
    ax.set_title("how much a batch overstates deadness (mean over runs)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(sweep: Sweep) -> dict[str, plt.Figure]:
    """Named figures: dead_on_training_set (per lr, from the rebuilt nets),
    dead_over_training (probe records) and batch_over_set (rebuilt nets)."""
    table = rebuilt(sweep)
    return {
        "dead_on_training_set": set_figure(per_run(sweep, table)),
        "dead_over_training": curve_figure(sweep),
        "batch_over_set": ratio_figure(table),
    }


def verdict(sweep: Sweep) -> Verdict:
    """The claim on the training set (:func:`judge_training`), with the batch's
    overstatement of deadness measured beside it (:func:`overstatement`)."""
    runs = per_run(sweep, rebuilt(sweep))
    claim = judge_training(runs)
    text, numbers = overstatement(runs)
    return Verdict("dead_units", claim.reproduced, f"{claim.text} {text}".strip(),
                   claim.numbers | numbers)  # fmt: skip


STUDIES.register("dead_units")(
    Study(
        "dead_units",
        "Do larger SGD learning rates leave more ReLU units dead (off on every training input)?",
        "ReLU folklore (Karpathy, CS231n; makemore part 3)",
        figures,
        verdict,
    )
)
