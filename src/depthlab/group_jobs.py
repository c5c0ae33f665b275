"""Batched sweeps through Hydra: a group of jobs launched as one job, each keeping its folder.

The ``batched`` sweeper (``hydra_plugins.depthlab_sweeper``) expands a multirun as Hydra's
basic sweeper does, composes every job, plans groups (``depthlab.grouping``) and hands the
launcher one job per group, so any launcher (basic, joblib, SLURM through submitit) runs a
group as one of its ordinary jobs. For each group it writes a manifest,
``SWEEP/.batches/K/batch.json``, with every member's job number, folder, overrides and
composed config, exactly as Hydra would have made them for the job alone. The group's job
runs in ``SWEEP/.batches/K`` (its own ``.hydra/`` and log) with ``DEPTHLAB_BATCH=K`` in its
environment; it writes each member's ``.hydra/`` files as Hydra would, trains the members
together (``train.train_group``) into their own folders ``SWEEP/NUM``, and adds each
member's result to the member's own log. Hidden folders are not runs, so ``load_sweep``,
reports and resume see the members as ordinary runs.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from depthlab.composing import JobComposer
from depthlab.config import Config, config_from_container, resolve_device, to_config
from depthlab.grouping import plan
from depthlab.records import RUN_FILE, read_run, replica_folders, replica_seeds
from depthlab.resources import device_bytes, run_bytes
from depthlab.resume import set_aside_other_config

BATCH_ENV = "DEPTHLAB_BATCH"  # set (to the group's number) in a group job's environment
BATCH_DIR = ".batches"  # groups' own folders, hidden inside the sweep folder
MANIFEST = "batch.json"


def member_spec(compose: JobComposer, overrides: Sequence[str], num: int) -> dict:
    """Job ``num`` as Hydra's launchers make it: its composed config (with the job's number
    and folder filled in) and what Hydra writes into its ``.hydra/`` folder."""
    from hydra.core.hydra_config import HydraConfig

    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.hydra.job.id = num  # as the basic launcher numbers jobs
        cfg.hydra.job.num = num
    HydraConfig.instance().set_config(cfg)
    folder = Path(str(OmegaConf.select(cfg, "hydra.sweep.dir"))) / str(
        OmegaConf.select(cfg, "hydra.sweep.subdir")
    )
    with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(folder.absolute())
    HydraConfig.instance().set_config(cfg)
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return {
        "num": num,
        "dir": str(folder.absolute()),
        "overrides": list(overrides),
        "config": OmegaConf.to_yaml(task),
        "hydra": OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, "hydra")),
        "task": task,  # for planning only; not written
    }


def launches(
    loader: Any, base: DictConfig, jobs: list[list[str]], sweep_dir: Path
) -> list[list[str]]:
    """The override lists to launch for ``jobs``: the jobs themselves when every one has
    ``batching=off``, else one job per group (its first member's overrides, its own
    folder ``.batches/K``, ``DEPTHLAB_BATCH=K``), with each group's manifest written. A job
    folder holding a run of another configuration has that run set aside first
    (``resume.set_aside_other_config``)."""
    from hydra.core.hydra_config import HydraConfig

    saved = HydraConfig.instance().cfg
    composer = JobComposer(loader, lambda first: loader.load_sweep_config(base, first))
    try:
        specs = [member_spec(composer, job, num) for num, job in enumerate(jobs)]
    finally:
        HydraConfig.instance().cfg = saved
    configs = [to_config(spec.pop("task")) for spec in specs]
    for spec, cfg in zip(specs, configs, strict=True):  # before anything writes into them
        set_aside_other_config(Path(spec["dir"]), cfg)
    if all(cfg.batching.max_runs() == 1 for cfg in configs):
        return jobs
    groups = plan(configs, _per_run_bytes, _capacity)
    out = []
    for k, group in enumerate(groups):
        write_manifest(sweep_dir / BATCH_DIR / str(k), [specs[i] for i in group])
        out.append(
            [
                *jobs[group[0]],
                f"hydra.sweep.subdir={BATCH_DIR}/{k}",
                f"+hydra.job.env_set.{BATCH_ENV}={k}",
            ]
        )
    return out


def _per_run_bytes(cfg: Config) -> int:
    num_inputs, num_outputs, num_train, _ = cfg.data.sizes()
    return run_bytes(cfg, num_inputs, num_outputs, num_train)


def _capacity(cfg: Config) -> int | None:
    return device_bytes(resolve_device(cfg.device))


def write_manifest(folder: Path, specs: list[dict]) -> None:
    """The group's manifest, written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"members": specs}, indent=1))
    os.replace(tmp, folder / MANIFEST)


def read_manifest(folder: Path) -> list[dict]:
    """The member specs of the group whose job runs in ``folder``."""
    return json.loads((folder / MANIFEST).read_text())["members"]


def member_config(spec: dict) -> Config:
    """A member's typed, validated Config from its manifest entry."""
    return config_from_container(OmegaConf.create(spec["config"]))


def write_hydra_files(spec: dict, output_subdir: str = ".hydra") -> None:
    """What Hydra writes for a job, into the member's folder: its config, Hydra's config and
    the overrides."""
    folder = Path(spec["dir"]) / output_subdir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(spec["config"])
    (folder / "hydra.yaml").write_text(spec["hydra"])
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(spec["overrides"])))


def log_member(spec: dict, log_name: str, lines: list[str]) -> None:
    """Append ``lines`` to the member's own log (Hydra's format), beside its records."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    with open(Path(spec["dir"]) / log_name, "a", encoding="utf-8") as log:
        for line in lines:
            log.write(f"[{stamp}][depthlab.run][INFO] - {line}\n")


def member_results(spec: dict, cfg: Config) -> list[dict[str, Any]]:
    """The run rows a member's folder holds now (one per replica; unreadable ones left out)."""
    rows = []
    for f in replica_folders(Path(spec["dir"]), replica_seeds(cfg)):
        if (f / RUN_FILE).exists():
            try:
                rows.append(read_run(f))
            except Exception:
                continue
    return rows
