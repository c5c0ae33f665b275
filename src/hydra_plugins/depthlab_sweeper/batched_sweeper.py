"""The ``batched`` sweeper: Hydra's basic sweep (the same jobs, the same syntax), with the
jobs that can share a batched model launched as one job per group.

Hydra finds sweepers only in the ``hydra_plugins`` namespace package, so this thin class
lives here and the work is done in ``depthlab.group_jobs``. Grouping sits in the sweeper
because the sweeper is where the whole job list is known and the launcher is chosen
afterwards: every launcher (basic, joblib, submitit) then runs a group as one ordinary job.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class BatchedSweeperConf:
    _target_: str = "hydra_plugins.depthlab_sweeper.batched_sweeper.BatchedSweeper"
    max_batch_size: int | None = None  # launch at most this many (group) jobs at a time
    params: dict[str, str] | None = None  # sweeps preset by a config, as the basic sweeper's


ConfigStore.instance().store(
    group="hydra/sweeper", name="batched", node=BatchedSweeperConf, provider="depthlab"
)
log = logging.getLogger(__name__)


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path, timeout: float) -> Iterator[None]:
    """Hold the sweep folder for this command while it sweeps: a second command aimed at
    the same folder would overwrite its group manifests. That command gets one line on
    stderr and exit status 3 (or waits up to ``lock_timeout`` seconds)."""
    from depthlab import locks
    from depthlab.cli import EXIT_BUSY

    try:
        with locks.locked([sweep_dir], timeout):
            yield
    except locks.FolderLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BUSY)


class BatchedSweeper(Sweeper):
    """Expands the sweep as the basic sweeper does, then launches groups (see
    ``depthlab.group_jobs``); with ``batching=off`` everywhere, the jobs as they are.

    (Not a subclass of the basic sweeper: Hydra's plugin scan re-executes that module, and
    its methods would then no longer recognise a subclass made from the first copy.)"""

    def __init__(self, max_batch_size: int | None = None, params: dict | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        preset = [f"{key}={value}" for key, value in self.params.items()]
        overrides = parser.parse_overrides([*preset, *arguments])
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        with sweep_lock(sweep_dir, float(self.config.get("lock_timeout") or 0.0)):
            return self._sweep(jobs, sweep_dir)

    def _sweep(self, jobs: list[list[str]], sweep_dir: Path) -> Any:
        from depthlab.group_jobs import launches
        from depthlab.records import set_aside

        saved = sweep_dir / "multirun.yaml"
        if saved.is_file() and saved.read_text() != OmegaConf.to_yaml(self.config):
            set_aside(sweep_dir, [saved.name, ".batches"])  # another sweep was here: keep it
        OmegaConf.save(self.config, saved)
        todo = launches(self.hydra_context.config_loader, self.config, jobs, sweep_dir)
        if todo is not jobs:
            log.info(
                "%d runs in %d batched groups (folders %s/.batches/K)",
                len(jobs),
                len(todo),
                sweep_dir,
            )
        returns = []
        size = self.max_batch_size or len(todo) or 1
        for start in range(0, len(todo), size):
            results = self.launcher.launch(todo[start : start + size], initial_job_idx=start)
            for r in results:
                _ = r.return_value  # raises if a job failed outside depthlab's own handling
            returns.append(results)
        return returns
