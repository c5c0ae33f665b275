"""Mean-field theory's predictions logged beside a run's measurements at step 0.

For a plain net (no normalisation, no skips) theory predicts the profile of the backprop
error at initialisation: ``predicted_delta_ratio`` ||delta^l|| / ||delta^{l+1}|| for
l = 1..L-1 and ``predicted_log_delta_norm`` ln ||delta^l|| - ln ||delta^L|| for l = 1..L,
from each layer's (sigma_w^2, sigma_b^2) and the data's mean squared input (see
:mod:`depthlab.theory`). Runs where theory does not apply record why in ``theory``.
"""

from __future__ import annotations

import itertools

import numpy as np

from depthlab import theory
from depthlab.config import Config
from depthlab.data import DataSet
from depthlab.model import MLP
from depthlab.records import RunRecorder


def theory_reason(cfg: Config) -> str:
    """'' when mean-field theory predicts this network's deltas, else why it does not."""
    if cfg.norm != "none":
        return f"not applicable: {cfg.norm} (the theory covers plain affine layers)"
    if cfg.residual:
        return "not applicable: residual (per-block growth only: theory.residual_growth)"
    return ""


def log_predictions(runs: list[tuple[Config, RunRecorder]], model: MLP, data: DataSet) -> None:
    """Log the step-0 predictions for every run (config, recorder) theory applies to; runs
    that share an init share one computation."""
    by_init: dict[str, list[tuple[Config, RunRecorder]]] = {}
    for cfg, recorder in runs:
        if not theory_reason(cfg):
            by_init.setdefault(repr(cfg.init), []).append((cfg, recorder))
    for group in by_init.values():
        log_prediction(group[0][0], model, data, [recorder for _, recorder in group])


def log_prediction(cfg: Config, model: MLP, data: DataSet, recorders: list[RunRecorder]) -> None:
    """Mean-field predictions at step 0 for runs of ``cfg``'s init: ``predicted_delta_ratio``
    (l = 1..L-1) and ``predicted_log_delta_norm`` (ln ||delta^l|| - ln ||delta^L||)."""
    fans = list(itertools.pairwise(model.widths))
    sigma_w2, sigma_b2 = zip(*(cfg.init.mean_field(i, o) for i, o in fans), strict=True)
    q1 = theory.input_length(sigma_w2[0], sigma_b2[0], float(data.x_train.double().pow(2).mean()))
    ratios, log_norms = theory.delta_profile(cfg.activation, list(sigma_w2), list(sigma_b2), q1)
    layers = np.arange(1, model.num_layers + 1)
    for recorder in recorders:
        recorder.log(0, layers[:-1], "predicted_delta_ratio", ratios)
        recorder.log(0, layers, "predicted_log_delta_norm", log_norms)
