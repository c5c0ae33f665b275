"""The fast job composer gives exactly the config Hydra composes, job by job (the oracle:
Hydra's own compose and load_sweep_config), for value, group, added and deleted overrides."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from depthlab.composing import JobComposer
from depthlab.config import register_configs

JOBS = [
    ["depth=30", "init=gaussian", "init.sigma_w2=1.5", "seed=2"],
    ["init.sigma_w2=2.5", "init=gaussian", "depth=31"],  # value before its group: same
    ["depth=4", "optimizer=adam", "optimizer.beta1=0.5", "lr=0.001", "study=x"],
    ["+experiment=vanishing_quick", "depth=7"],
    ["probes=none", "batching=off", "data=teacher", "data.num_train=128"],
    ["activation=tanh", "init=orthogonal", "init.gain=1.2", "width=64"],
    ["hydra.job.chdir=false", "depth=9"],
]


@pytest.fixture(scope="module")
def loader():
    register_configs()
    with initialize_config_module("depthlab.conf", version_base="1.3", job_name="run"):
        yield GlobalHydra.instance().config_loader()


def test_task_configs_equal_hydras_compose(loader) -> None:
    composer = JobComposer(loader, lambda first: compose("config", overrides=first))
    for job in JOBS:
        mine = OmegaConf.to_container(composer(job), resolve=True)
        theirs = OmegaConf.to_container(compose("config", overrides=job), resolve=True)
        assert mine == theirs, job
    assert len(composer.cache) < len(JOBS)  # jobs sharing their group choices share a compose


def test_sweep_configs_equal_hydras_with_their_override_record(loader) -> None:
    master = loader.load_configuration("config", ["hydra.sweep.dir=/tmp/x"], run_mode=_multirun())
    composer = JobComposer(loader, lambda first: loader.load_sweep_config(master, first))
    for job in JOBS[:-1]:
        mine, theirs = composer(job), loader.load_sweep_config(master, job)
        for node in ("hydra.overrides", "hydra.job.override_dirname", "hydra.runtime.choices"):
            assert OmegaConf.select(mine, node) == OmegaConf.select(theirs, node), (job, node)
        a, b = (OmegaConf.masked_copy(c, [k for k in c if k != "hydra"]) for c in (mine, theirs))
        assert OmegaConf.to_container(a, resolve=True) == OmegaConf.to_container(b, resolve=True)


def _multirun():
    from hydra.types import RunMode

    return RunMode.MULTIRUN
