"""Checking a command line before Hydra runs anything.

Hydra creates a run's folder before the task starts, and reports composition errors over
several lines. So ``python -m depthlab.run`` first composes every job of the command line
itself (expanding ``-m`` sweeps as Hydra's basic sweeper does), validates each (ranges,
memory and records estimates, data files), looks at the command line as a whole (keys given
twice, environment variables in records, sweep sizes) and at where it would write, and on
the first problem prints one line naming the key, the value and what is allowed, then
exits with status 2 (3 when another process is writing the output folder): nothing runs
and no folder is written.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, RangeSweep
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from depthlab.composing import JobComposer
from depthlab.config import Config, checked_config, register_configs
from depthlab.console.hydra_errors import describe
from depthlab.errors import ConfigError
from depthlab.locks import FolderLockedError, wait_until_free
from depthlab.resources import check_fits, records_bytes, size_text

CONFIG_MODULE = "depthlab.conf"
CONFIG_NAME = "config"
EXIT_FAILED = 1  # a run failed, or its records could not be written
EXIT_USAGE = 2  # the command line was refused: nothing ran, nothing was written
EXIT_BUSY = 3  # a run folder is being written by another process
JOB_FILES_BYTES = 64_000  # a job's Hydra files, log and run.parquet: about 30 kB measured
MAX_JOBS = 20_000  # jobs of one command line: composing each takes about 5 ms to check
# sweepers that expand a multirun as Hydra's basic sweeper does (depthlab's batched one too)
BASIC_SWEEPERS = (
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.depthlab_sweeper.batched_sweeper.BatchedSweeper",
)
REMOTE_LAUNCHERS = ("SlurmLauncher",)  # launchers whose jobs run on other machines
# Flags with which Hydra only prints or runs something other than jobs: nothing to check.
PASS_THROUGH = ("help", "hydra_help", "cfg", "info", "shell_completion")


def check_command_line(argv: Sequence[str]) -> list[Config] | None:
    """The validated config of every job of ``argv``; on a problem, one line on stderr and
    exit status 2 (3: a folder another process writes). None when Hydra is only asked to
    print something."""
    try:
        args = get_args_parser().parse_args(list(argv))
    except SystemExit:
        return None  # let Hydra print its usage message
    if args.experimental_rerun:
        print(
            f"error: --experimental-rerun={args.experimental_rerun}: refused, it unpickles the "
            "file (a crafted file runs code); allowed: run again with the overrides in the "
            "run's .hydra/overrides.yaml",
            file=sys.stderr,
        )
        sys.exit(EXIT_USAGE)
    if any(getattr(args, name, None) for name in PASS_THROUGH):
        return None
    overrides = list(args.overrides)
    where = {"config_path": args.config_path, "config_dir": args.config_dir}
    name = args.config_name or CONFIG_NAME
    configs, message = check_jobs(overrides, args.multirun, name, **where)
    status = EXIT_USAGE
    if not message and configs:
        try:
            message = check_output(overrides, args.multirun, name, configs, **where)
        except FolderLockedError as exc:
            message, status = str(exc), EXIT_BUSY
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(status)
    return configs


def run_folder(argv: Sequence[str]) -> Path | None:
    """The folder a single run of ``argv`` (no sweep) writes into, ``hydra.run.dir``; None
    for a sweep, or when only Hydra's own run can resolve its name."""
    args = get_args_parser().parse_args(list(argv))
    with initialized(args.config_path, args.config_dir):
        hydra_cfg = hydra_config(list(args.overrides), args.config_name or CONFIG_NAME)
    _, sweep, folder = output_folder(hydra_cfg, args.multirun)
    return None if sweep else folder


def first_problem(overrides: list[str], multirun: bool, config_name: str = CONFIG_NAME) -> str:
    """The first problem of the jobs that ``overrides`` make, as one line ('' if none)."""
    return check_jobs(overrides, multirun, config_name)[1]


def check_jobs(
    overrides: list[str],
    multirun: bool,
    config_name: str = CONFIG_NAME,
    config_path: str | None = None,
    config_dir: str | None = None,
) -> tuple[list[Config] | None, str]:
    """Compose and validate every job: (their configs, '') or (None, the first problem).
    ``config_path`` and ``config_dir``: Hydra's ``--config-path`` and ``--config-dir``."""
    try:
        with initialized(config_path, config_dir):
            return _check_jobs(overrides, multirun, config_name)
    except ConfigError as exc:  # the config folder itself
        return None, str(exc)


def _check_jobs(
    overrides: list[str], multirun: bool, config_name: str
) -> tuple[list[Config] | None, str]:
    """check_jobs inside an initialised Hydra (which describing an error needs too)."""
    job = overrides
    try:
        check_once(overrides)
        hydra_cfg = hydra_config(overrides, config_name)
        jobs = expand_jobs(overrides, multirun, config_name, hydra_cfg)
        if jobs is None:
            return None, ""  # another sweeper: its own syntax, its own checks
        here = not runs_elsewhere(hydra_cfg)
        composer = JobComposer(
            GlobalHydra.instance().config_loader(),
            lambda first: compose(config_name, overrides=first),
        )
        configs = []
        for job in jobs:
            configs.append(checked_config(composer(job), here=here))
            check_fits(configs[-1], here=here)
    except ConfigError as exc:
        return None, str(exc)
    except Exception as exc:  # Hydra's, OmegaConf's, or anything unforeseen: one line
        return None, describe(exc, job, config_name)
    return configs, ""


@contextlib.contextmanager
def initialized(config_path: str | None = None, config_dir: str | None = None) -> Iterator[None]:
    """Hydra set up as ``python -m depthlab.run`` sets it up: the primary config found on
    ``config_path`` (default: the shipped configs), with ``config_dir`` searched first."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path

    register_configs()  # the schema and group options, in case no app was imported yet
    run_file = str(Path(__file__).with_name("run.py"))
    search = create_automatic_config_search_path(
        run_file, None, config_path or f"pkg://{CONFIG_MODULE}"
    )
    if config_dir:
        folder = Path(config_dir).absolute()
        if not folder.is_dir():
            raise ConfigError("--config-dir", config_dir, "an existing folder", "no such folder")
        anchor = SearchPathQuery(provider="schema")
        search.prepend(provider="command-line", path=f"file://{folder}", anchor=anchor)
    GlobalHydra.instance().clear()
    Hydra.create_main_hydra2(task_name="check", config_search_path=search)
    try:
        yield
    finally:
        GlobalHydra.instance().clear()


def check_once(overrides: list[str]) -> None:
    """Raise ConfigError when a key is given twice (``depth=3 depth=4``: Hydra would keep
    the last one without a word) or not at all (``=3``)."""
    seen: dict[str, str] = {}
    for line in overrides:
        key = line.lstrip("+~").partition("=")[0]
        if not key.strip():
            raise ConfigError("override", repr(line), "key=value", "no key")
        if key in seen:
            raise ConfigError(
                key,
                f"{seen[key].partition('=')[2]} and {line.partition('=')[2]}",
                f"each key once (-m {key}=a,b sweeps several values)",
                "given twice",
            )
        seen[key] = line


def check_output(
    overrides: list[str],
    multirun: bool,
    config_name: str,
    configs: list[Config],
    config_path: str | None = None,
    config_dir: str | None = None,
) -> str:
    """The first problem with where the jobs would write (``hydra.run.dir`` or
    ``hydra.sweep.dir``), as one line ('' if none): a path the system refuses, a file in
    place of the folder, a folder this user cannot write in, several jobs of a sweep in one
    folder, a relative ``data.path`` that a job's ``hydra.job.chdir`` would leave behind, or
    too little free disk for the records' estimate; a run folder another process is writing
    raises FolderLockedError, after waiting for it up to ``lock_timeout`` (Hydra writes a
    job's files into its folder before the job starts). Folders whose names Hydra alone can
    resolve are left to Hydra."""
    with initialized(config_path, config_dir):
        hydra_cfg = hydra_config(overrides, config_name)
    key, sweep, folder = output_folder(hydra_cfg, multirun)
    if folder is None:
        return ""
    subdir = str(OmegaConf.to_container(hydra_cfg.sweep, resolve=False).get("subdir"))
    chdir = bool(hydra_cfg.job.chdir)
    if sweep and len(configs) > 1 and "${" not in subdir:
        return str(
            ConfigError(
                "hydra.sweep.subdir",
                subdir,
                "a pattern that differs per job, such as ${hydra.job.num} (the default)",
                f"all {len(configs)} jobs would write into one folder",
            )
        )
    for cfg in configs if chdir else []:
        path = getattr(cfg.data, "path", "")
        if path and not Path(path).expanduser().is_absolute():
            return str(
                ConfigError(
                    "data.path",
                    path,
                    "an absolute path with hydra.job.chdir=true",
                    "relative to the folder the job leaves",
                )
            )
    try:
        return _folder_problem(key, folder, configs)
    except OSError as exc:  # a name too long, a loop: whatever the system refuses
        reason = exc.strerror or str(exc)
        return str(ConfigError(key, folder, "a folder path this system accepts", reason))


def _folder_problem(key: str, folder: Path, configs: list[Config]) -> str:
    """check_output's questions to the file system."""
    if folder.exists() and not folder.is_dir():
        return str(ConfigError(key, folder, "a folder path", "a file is in the way"))
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
        return str(ConfigError(key, folder, "a folder you can write in", reason))
    timeout = max(cfg.lock_timeout for cfg in configs)
    for run_dir in [folder, *sorted(folder.glob("*/"))] if folder.is_dir() else []:
        holder = wait_until_free(run_dir, timeout)  # before Hydra writes into it
        if holder:
            raise FolderLockedError(run_dir, holder)
    need = sum(records_bytes(cfg) + JOB_FILES_BYTES for cfg in configs)
    free = shutil.disk_usage(existing).free
    if need > free:
        return str(
            ConfigError(
                key,
                folder,
                f"a disk with room for the records (about {size_text(need)}; {existing} "
                f"has {size_text(free)} free)",
                "too little free disk",
            )
        )
    return ""


def hydra_config(overrides: list[str], config_name: str) -> DictConfig:
    """Hydra's own node of the config that ``overrides`` make (sweeps left out), inside an
    initialised Hydra."""
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    return compose(config_name, overrides=fixed, return_hydra_config=True).hydra


def output_folder(hydra_cfg: DictConfig, multirun: bool) -> tuple[str, bool, Path | None]:
    """(its key, whether it is a sweep's folder, the folder) where the jobs write:
    ``hydra.sweep.dir`` for a sweep, else ``hydra.run.dir``; the folder is None when only
    Hydra's own run can resolve its name."""
    sweep = multirun or hydra_cfg.mode == RunMode.MULTIRUN
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    try:
        return key, sweep, Path(str(OmegaConf.select(hydra_cfg, key[len("hydra.") :])))
    except Exception:  # an interpolation only Hydra's own run can resolve
        return key, sweep, None


def runs_elsewhere(hydra_cfg: DictConfig) -> bool:
    """Whether the launcher runs the jobs on other machines (a SLURM cluster): then what
    this machine has (a GPU) says nothing about where they run, and the jobs check it."""
    return str(hydra_cfg.launcher.get("_target_", "")).endswith(REMOTE_LAUNCHERS)


def expand_jobs(
    overrides: list[str], multirun: bool, config_name: str, hydra_cfg: DictConfig | None = None
) -> list[list[str]] | None:
    """The override lists of every job, as Hydra's basic sweeper forms them (None when the
    config chooses another sweeper). Sweeps preset in ``hydra.sweeper.params`` come first;
    ``hydra.mode=MULTIRUN`` in the config or on the command line counts as ``-m``.
    ``hydra_cfg``: :func:`hydra_config` of the same overrides, when already composed."""
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides(overrides)
    hydra_cfg = hydra_config(overrides, config_name) if hydra_cfg is None else hydra_cfg
    if not (multirun or hydra_cfg.mode == RunMode.MULTIRUN):
        for o in parsed:
            if o.is_sweep_override():
                raise ConfigError(
                    o.key_or_group,
                    o.input_line.partition("=")[2],
                    "one value, or -m to sweep several",
                    "several values",
                )
        return [overrides]
    if hydra_cfg.sweeper.get("_target_") not in BASIC_SWEEPERS:
        return None
    params = hydra_cfg.sweeper.get("params") or {}
    preset = [f"{key}={value}" for key, value in params.items()]
    every = parser.parse_overrides(preset + overrides)
    sweeps = [o for o in every if o.is_sweep_override()]
    count = math.prod(sweep_length(o) for o in sweeps)
    if count == 0 or count > MAX_JOBS:
        empty = next((o for o in sweeps if sweep_length(o) == 0), sweeps[0] if sweeps else None)
        key, value = (
            (empty.key_or_group, empty.input_line.partition("=")[2]) if empty else ("-m", "")
        )
        allowed = f"a sweep of 1..{MAX_JOBS} jobs (checking composes each, about 5 ms a job)"
        raise ConfigError(key, value, allowed, f"the sweep makes {count} jobs")
    batches = BasicSweeper.split_arguments(every, None)
    return [list(job) for batch in batches for job in batch]


def sweep_length(override: Override) -> int:
    """How many values a sweep override takes, counted without listing a range."""
    value = override.value()
    if isinstance(value, RangeSweep) and value.start is not None and value.stop is not None:
        step = value.step or 1
        return max(0, math.ceil((value.stop - value.start) / step))
    return sum(1 for _ in override.sweep_string_iterator())
