"""The fit of the edge-of-chaos study: L_max = c xi_c across sigma_w2, and the free slope
of log L_max on log xi_c, with two-level bootstrap intervals.

Over the m sigma_w2 values whose L_max is not censored (and whose xi_c is finite), with
log L_i the mean over seeds of log L at value i: c = exp(mean_i (log L_i - log xi_c,i)),
the least-squares intercept at slope 1, and the slope the least-squares slope of log L_i on
log xi_c,i. The 95% intervals are percentile intervals over RESAMPLES draws, each
resampling the m values with replacement and then each drawn value's seeds, so they carry
both the seeds' noise and the scatter of the points about the line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from depthlab.studies._edge_of_chaos_depths import depth_limits, seed_depths

RESAMPLES = 2000


@dataclass(frozen=True)
class Fit:
    """L_max = c xi_c (and the free slope of log L_max on log xi_c) with 95% intervals."""

    c: float
    c_low: float
    c_high: float
    slope: float
    slope_low: float
    slope_high: float
    points: int
    span: float  # max xi_c / min xi_c over the fitted points


def _constant_and_slope(log_xi: np.ndarray, log_limit: np.ndarray) -> tuple[float, float]:
    """c = exp(mean(log L - log xi)) and the least-squares slope of log L on log xi."""
    c = float(np.exp(np.mean(log_limit - log_xi)))
    slope = float(np.polyfit(log_xi, log_limit, 1)[0]) if np.ptp(log_xi) > 0 else np.nan
    return c, slope


def fit_constant(table: pd.DataFrame, resamples: int = RESAMPLES, seed: int = 0) -> Fit | None:
    """The fit over the sigma_w2 values whose L_max is not censored (None with fewer than
    two). Bootstrap: resample those sigma_w2 values, then each one's seeds, with replacement."""
    limits = depth_limits(table)
    fitted = limits[(limits["censored"] == "") & np.isfinite(limits["xi_c"])]
    if len(fitted) < 2:
        return None
    per_seed = seed_depths(table).groupby("sigma_w2")["depth_limit"]
    logs = [np.log(per_seed.get_group(s).to_numpy()) for s in fitted["sigma_w2"]]
    log_xi = np.log(fitted["xi_c"].to_numpy())
    c, slope = _constant_and_slope(log_xi, np.array([v.mean() for v in logs]))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        cells = rng.integers(0, len(logs), len(logs))
        means = np.array([rng.choice(logs[i], len(logs[i])).mean() for i in cells])
        draws.append(_constant_and_slope(log_xi[cells], means))
    c_draws, slope_draws = np.array(draws).T
    c_low, c_high = np.percentile(c_draws, [2.5, 97.5])
    slope_low, slope_high = np.nanpercentile(slope_draws, [2.5, 97.5])
    return Fit(
        c,
        float(c_low),
        float(c_high),
        slope,
        float(slope_low),
        float(slope_high),
        len(fitted),
        float(np.exp(np.ptp(log_xi))),
    )
