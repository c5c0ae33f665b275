"""Launchers: the same sweep through Hydra's joblib and submitit_local launchers, and the
shipped SLURM preset (composed and rendered into an sbatch script, never submitted)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from depthlab.cli import first_problem
from depthlab.results import load_sweep

TINY = ["data=teacher", "width=8", "steps=5", "eval_every=5", "batch_size=32"]
# what joblib's loky backend sets in its workers (and torch reads: MKL over OMP)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def sweep_env(**extra: str) -> dict[str, str]:
    """The caller's environment without thread limits, so the launcher's own choice shows."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    return {**env, **extra}


def depthlab_sweep(sweep_dir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "depthlab.run", "-m", "depth=1,2", *TINY, *args],
        cwd=sweep_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def check_sweep(proc: subprocess.CompletedProcess, sweep_dir: Path):
    """Both runs ok with the swept configs, nothing unreadable, the summary printed."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = load_sweep(sweep_dir, metrics=False)
    assert sweep.problems == []
    runs = sweep.runs.sort_values("depth")
    assert list(runs["depth"]) == [1, 2]
    assert set(runs["width"]) == {8} and set(runs["steps"]) == {5}
    assert set(runs["data"]) == {"teacher"}
    assert list(runs["status"]) == ["ok", "ok"]
    assert sweep.swept_keys() == ["depth"]
    lines = proc.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if "status" in line and "time_s" in line)
    assert sum(" ok " in f" {line} " for line in lines[header + 1 :]) == 2
    assert lines[-1] == f"records: {sweep_dir.resolve()}"
    return runs


@pytest.mark.slow
def test_joblib_sweep_runs_in_parallel_with_cores_divided_among_jobs(tmp_path: Path) -> None:
    """loky gives each worker cpu_count // n_jobs threads (at least 1) through OMP/MKL_NUM_
    THREADS, which torch honours: one thread per job on a 2-core machine with n_jobs=2."""
    from joblib import cpu_count

    sweep_dir = tmp_path / "sweep"
    proc = depthlab_sweep(
        sweep_dir,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep_dir}",
        env=sweep_env(),
    )
    runs = check_sweep(proc, sweep_dir)
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout  # the launcher really ran (Hydra's log)
    threads = runs["threads_resolved"]
    assert set(threads) == {max(cpu_count() // 2, 1)}
    # the worker processes flush denormals too (run.main sets it only in the parent)
    assert set(runs["denormals_flushed"]) == {1.0}


@pytest.mark.slow
def test_submitit_local_sweep_keeps_its_files_hidden_in_the_sweep(tmp_path: Path) -> None:
    """submitit_local starts every job at once as a fresh process that inherits the
    caller's environment (so its thread limits) and hides GPUs unless gpus_per_node is set."""
    sweep_dir = tmp_path / "sweep"
    proc = depthlab_sweep(
        sweep_dir,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=3",
        f"hydra.sweep.dir={sweep_dir}",
        env=sweep_env(OMP_NUM_THREADS="1"),
    )
    runs = check_sweep(proc, sweep_dir)
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl"))  # the plugin's default folder
    assert set(runs["threads_resolved"]) == {1}
    assert set(runs["device_resolved"]) == {"cpu"}


def compose_hydra(*overrides: str):
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    from depthlab.config import register_configs

    register_configs()
    with initialize_config_module("depthlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # ${hydra.sweep.dir} and friends resolve
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True), cfg


def test_slurm_preset_composes_with_its_defaults() -> None:
    launcher, cfg = compose_hydra("hydra/launcher=slurm", "hydra.sweep.dir=/scratch/sweep")
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert {
        k: launcher[k]
        for k in (
            "timeout_min",
            "mem_gb",
            "cpus_per_task",
            "gpus_per_node",
            "tasks_per_node",
            "nodes",
            "array_parallelism",
            "max_num_timeout",
            "partition",
            "account",
            "name",
        )
    } == {
        "timeout_min": 60,
        "mem_gb": 8,
        "cpus_per_task": 2,
        "gpus_per_node": 1,
        "tasks_per_node": 1,
        "nodes": 1,
        "array_parallelism": 64,
        "max_num_timeout": 0,
        "partition": None,
        "account": None,
        "name": "depthlab",
    }
    assert launcher["submitit_folder"] == "/scratch/sweep/.submitit/%j"
    # the shell, not OmegaConf, expands SLURM's variable
    assert launcher["setup"] == [
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} MKL_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}"
    ]
    assert cfg.device == "auto"  # a launcher changes no run key


def test_slurm_preset_renders_an_sbatch_script(tmp_path: Path, monkeypatch) -> None:
    """The preset's keys, passed as the plugin passes them, are all valid submitit
    parameters and make the intended #SBATCH lines (rendered only, never submitted)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    params, _ = compose_hydra(
        "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=proj"
    )
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here
    executor = submitit.AutoExecutor(
        folder=tmp_path, cluster="slurm", slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    del params["_target_"], params["submitit_folder"]
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m depthlab.run", "uid")
    for line in (
        "#SBATCH --time=60",
        "#SBATCH --mem=8GB",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --job-name=depthlab",
    ):
        assert line in script.splitlines()
    setup = script.index("export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}")
    assert setup < script.index("srun ")


@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=3"],
    ],
)
def test_the_command_line_check_accepts_the_launchers(launcher: list[str]) -> None:
    assert first_problem(["depth=1,2", *launcher], multirun=True) == ""


def test_a_slurm_sweep_may_ask_for_cuda_from_a_host_without_one() -> None:
    """The login node need not have the GPU the cluster's nodes have; a local launcher's
    jobs run here, so there the check stands."""
    overrides = ["depth=1,2", "device=cuda", "hydra/launcher=slurm"]
    assert first_problem(overrides, multirun=True) == ""
    if not torch.cuda.is_available():
        for launcher in ("basic", "joblib", "submitit_local"):
            local = [*overrides[:2], f"hydra/launcher={launcher}"]
            assert "device=cuda" in first_problem(local, multirun=True)


def test_a_mistyped_launcher_is_one_line_naming_the_options() -> None:
    assert first_problem(["hydra/launcher=slurmm"], multirun=True) == (
        "hydra/launcher=slurmm: unknown option; allowed: "
        "basic, joblib, slurm, submitit_local, submitit_slurm"
    )


@pytest.mark.slow
def test_a_regular_install_ships_and_finds_the_slurm_preset(tmp_path: Path) -> None:
    """From a wheel (not the editable checkout): the preset is package data, the launchers
    are dependencies, and `--cfg hydra` shows the composed SLURM launcher (nothing runs)."""
    root = Path(__file__).resolve().parents[1]
    pip = [sys.executable, "-m", "pip", "-q"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("depthlab-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert "depthlab/conf/hydra/launcher/slurm.yaml" in zf.namelist()
        (metadata,) = (n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split()[1].split("<")[0].split(">")[0]
            for line in zf.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
    assert {"hydra-joblib-launcher", "hydra-submitit-launcher"} <= set(requires)
    site = tmp_path / "site"
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    # Hydra takes --cfg instead of -m (not with it): it prints what a sweep would use
    args = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra"]
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.run", *args, "--package", "hydra.launcher"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    shown = OmegaConf.create(proc.stdout)  # the launcher node alone
    assert shown._target_.endswith("SlurmLauncher")
    assert (shown.partition, shown.gpus_per_node, shown.timeout_min) == ("gpu", 1, 60)
    assert list(tmp_path.glob("outputs")) == []  # printing the config submits and writes nothing
