"""The study presets, what every study shares (the analysis command line, configs read back
from a run), the residual inits of the residual_scaling study, and the textbook study
against the NumPy reference; each study's own tests are in test_study_NAME.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depthlab.cli import check_jobs
from depthlab.config import Config, config_from_file
from depthlab.console.catalogue import expected_seconds
from depthlab.frames import log_slope
from depthlab.inits import INITS, Gaussian
from depthlab.model import MLP
from depthlab.results import load_sweep
from depthlab.studies import STUDIES, textbook
from depthlab.studies.common import main

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
STUDY_NAMES = [p for p in PRESETS if not p.endswith(("_quick", "_full"))]


def test_every_study_has_a_preset_a_quick_variant_a_registered_study_and_a_script() -> None:
    assert len(STUDY_NAMES) == 15
    for name in STUDY_NAMES:
        assert f"{name}_quick" in PRESETS
        assert name in STUDIES
        assert (ROOT / "analysis" / f"{name}.py").is_file()
    assert sorted(STUDIES.names()) == STUDY_NAMES
    full = [p.removesuffix("_full") for p in PRESETS if p.endswith("_full")]
    assert full and set(full) <= set(STUDY_NAMES)  # a GPU form extends a study's preset


def test_every_study_preset_states_its_expected_time_once() -> None:
    """``# expected time: N s`` in the preset is where ``depthlab studies`` reads it."""
    for name in STUDY_NAMES:
        for preset in (name, f"{name}_quick"):
            text = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text()
            assert text.count("expected time:") == 1, preset
            assert expected_seconds(preset) > 0, preset


@pytest.mark.slow  # composes every job: about 60 ms each, 300 jobs
@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_composes_and_validates(preset: str) -> None:
    configs, problem = check_jobs([f"+experiment={preset}"], multirun=True)
    assert problem == ""
    study = preset.removesuffix("_quick").removesuffix("_full")
    assert configs and all(c.study == study for c in configs)
    if preset.endswith("_quick"):  # quick variants stay quick: at most 32,000 layer-steps
        assert sum(c.steps * c.depth * c.replicas for c in configs) <= 32_000


def test_log_slope_of_a_geometric_profile_is_its_log_rate() -> None:
    layers = np.arange(1, 11)
    assert log_slope(layers, 3.0 * 0.5**layers) == pytest.approx(np.log(0.5))
    with_gaps = np.where(layers % 3 == 0, np.nan, 2.0**layers)  # gaps are skipped
    assert log_slope(layers, with_gaps) == pytest.approx(np.log(2.0))
    assert np.isnan(log_slope(layers[:1], [1.0]))


@pytest.mark.slow
def test_textbook_equals_the_numpy_reference_and_shows_output_saturation(quick_sweep) -> None:
    sweep = load_sweep(quick_sweep("textbook"))
    table = textbook.lr_table(sweep)
    best = textbook.best_lrs(table)
    refs = textbook.reference_table(sweep, table, textbook.reference_runs(sweep, table, best))
    assert len(refs) == 12  # both losses, 6 seeds, at the one lr of the quick grid
    assert refs["max_rel_gap"].max() < 1e-10  # float64: the same numbers, step after step
    by = refs.groupby("loss")
    # cross-entropy passes the whole error back; sigma' caps the squared loss's share at 1/4
    assert by["delta_over_error_initial"].max()["cross_entropy"] == pytest.approx(1, abs=1e-12)
    assert by["delta_over_error_initial"].max()["squared"] <= 0.25
    assert (refs["stuck_outputs_initial"].dropna() > 0.01).all()  # N(0, 1) saturates outputs
    # a seed fixes the initial net: both losses see the same badly wrong samples
    shares = refs.pivot_table(index="seed", columns="loss", values="badly_wrong_share")
    assert (shares["squared"] == shares["cross_entropy"]).all() and len(shares) == 6
    verdict = textbook.judge(table, refs)
    assert verdict.reproduced is not None and "(4) not tested" in verdict.text


def test_analysis_command_line_rejects_a_missing_folder(tmp_path: Path, capsys) -> None:
    assert main("vanishing", [str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: SWEEP_DIR=")


def test_config_from_file_round_trips_a_run_config(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    cfg = Config(depth=4, init=INITS["scaled_branches"](sigma_w2=1.5), lr=0.01, study="degradation")
    path = tmp_path / "config.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    assert config_from_file(path) == cfg


def _branch_weights(init, residual: bool = True) -> tuple[MLP, list[torch.Tensor]]:
    model = MLP(8, 3, depth=6, width=200, activation="relu", residual=residual)
    model.initialize_(init, [torch.Generator().manual_seed(0)])
    return model, [model.layer(l).linear.weight[0] for l in range(1, model.num_layers + 1)]


def test_scaled_branches_scales_each_branch_by_one_over_root_branches() -> None:
    _, plain = _branch_weights(Gaussian(sigma_w2=2.0))
    _, scaled = _branch_weights(INITS["scaled_branches"](sigma_w2=2.0))
    branches = 5  # hidden layers 2..6 carry skips
    for l, (w, g) in enumerate(zip(plain, scaled, strict=True), start=1):
        gain = branches**-0.5 if 2 <= l <= 6 else 1.0
        torch.testing.assert_close(g, gain * w)  # the same draw, scaled


def test_skipinit_starts_every_block_as_identity_and_learns_its_branch_scale() -> None:
    model, weights = _branch_weights(INITS["skipinit"]())
    _, gaussian = _branch_weights(Gaussian(sigma_w2=2.0))
    for w, g in zip(weights, gaussian, strict=True):
        torch.testing.assert_close(w, g)  # the weights are the Gaussian draw
    alphas = [model.layer(l).alpha for l in range(2, 7)]
    assert all(a.requires_grad and (a == 0).all() for a in alphas)
    x = torch.randn(5, 8, dtype=torch.float64)
    a1 = model.layer(1)(x.expand(1, 5, 8))
    hidden = a1
    for l in range(2, 7):
        hidden = model.layer(l)(hidden)
    torch.testing.assert_close(hidden, a1)  # every block is the identity at step 0
    model(x).square().sum().backward()
    assert all(a.grad is not None and (a.grad != 0).all() for a in alphas)  # alpha moves
    assert all((model.layer(l).linear.weight.grad == 0).all() for l in range(2, 7))
    plain, _ = _branch_weights(INITS["skipinit"](), residual=False)
    assert not any(p.requires_grad for n, p in plain.named_parameters() if "alpha" in n)
