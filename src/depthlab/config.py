"""The run configuration: one dataclass, its Hydra ConfigStore entries, and validation.

The same names run from the command line (``depth=10``) to the dataclass field, the
run record's column and the code. Swappable parts are config groups whose options are
the registered dataclasses of ``inits``, ``data`` and ``optimizers``: a typo'd key fails at
composition, a value out of range fails in :func:`validate`, both before any work.
``Config()`` is the same configuration as ``python -m depthlab.run`` with no overrides,
so notebooks can build runs without Hydra.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from depthlab.activations import ACTIVATIONS
from depthlab.batching import BATCHINGS, On
from depthlab.data import CLASSIFICATION, DATASETS, MNIST1D
from depthlab.errors import ConfigError
from depthlab.inits import INITS, TorchDefault
from depthlab.limits import check_limits
from depthlab.live import LOGGERS, check_logger
from depthlab.losses import LOSSES
from depthlab.model import NORMS
from depthlab.optimizers import OPTIMIZERS, SGD
from depthlab.probes.schedule import SCHEDULES, DefaultProbes

GROUPS = {
    "init": INITS,
    "data": DATASETS,
    "optimizer": OPTIMIZERS,
    "probes": SCHEDULES,
    "batching": BATCHINGS,
}
DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
SCHEMA_NAME = "depthlab_schema"
# Environment variables may set where things go (hydra.*) but reach a run's records, which
# are shared, only when asked: DEPTHLAB_ALLOW_ENV=1.
ALLOW_ENV = "DEPTHLAB_ALLOW_ENV"
ENV_RESOLVER = "oc.env:"


@dataclass
class Config:
    """Every key of a run. Defaults: the seed derivation's classic setting, sigmoid layers
    with PyTorch's default init trained by plain SGD, which shows vanishing gradients."""

    depth: int = 3  # hidden layers; L = depth + 1 weight layers
    width: int = 128  # units per hidden layer
    activation: str = "sigmoid"  # hidden activation phi (registry name)
    output_activation: str = "none"  # phi at the output layer: none or an activation
    init: Any = field(default_factory=TorchDefault)  # group: weight and bias init
    residual: bool = False  # identity skips around hidden layers 2..L-1
    branch_scale: float = 1.0  # alpha in a^l = a^{l-1} + alpha phi(z^l)
    norm: str = "none"  # none | batchnorm | layernorm, between z^l and phi
    data: Any = field(default_factory=MNIST1D)  # group: the data set
    loss: str = "auto"  # auto (the data set's own) | cross_entropy | squared
    optimizer: Any = field(default_factory=SGD)  # group: sgd | momentum | adam
    lr: float = 0.5  # learning rate
    batch_size: int = 128  # samples per step; the full training set when it covers it
    steps: int = 1000  # parameter updates; 0 measures the network at init only
    eval_every: int = 100  # steps between train/test evaluations (and record flushes)
    seed: int = 0  # the network's draw and the batch order (data have their own seed)
    replicas: int = 1  # seeds seed..seed+replicas-1 trained at once as one batched model
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda
    dtype: str = "float32"  # float32 | float64
    probes: Any = field(default_factory=DefaultProbes)  # group: none|minimal|default|full
    flush_denormal: bool = True  # flush subnormal floats to zero on CPU (faster on some CPUs)
    study: str = ""  # the study preset that set this run up (+experiment=NAME), for reports
    threads: int = 0  # torch's intra-op threads; 0: the idle cores (depthlab.threads)
    resume: bool = True  # skip the run when its folder already holds its finished records
    lock_timeout: float = 0.0  # seconds to wait for a run folder another process writes
    flush_seconds: float = 10.0  # at most this long between record flushes (at evaluations)
    logger: str = "none"  # live view beside the records: none | tensorboard (RUN/tensorboard/)
    compile: bool = False  # torch.compile the steps that are not probed (long runs)
    cuda_graph: bool = True  # on CUDA, replay unprobed steps from a captured CUDA graph
    batching: Any = field(default_factory=On)  # group: on | off (batched sweeps)


def register_configs(store: ConfigStore | None = None) -> None:
    """Put the schema and every registered group option into Hydra's ConfigStore, and make
    the batched sweeper known to Hydra (its plugin scan misses editable installs)."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.depthlab_sweeper.batched_sweeper import BatchedSweeper

    Plugins.instance().register(BatchedSweeper)
    store = store or ConfigStore.instance()
    schema = OmegaConf.structured(Config)
    for group in GROUPS:
        schema[group] = MISSING  # chosen by the defaults list, so options of any type merge
    store.store(name=SCHEMA_NAME, node=schema)
    for group, registry in GROUPS.items():
        for name, cls in registry.items():
            store.store(group=group, name=name, node=cls)


def to_config(cfg: DictConfig) -> Config:
    """A composed DictConfig (Hydra's) as a typed Config with its group dataclasses."""
    config = OmegaConf.to_object(cfg)
    if not isinstance(config, Config):
        raise TypeError(f"expected a composed depthlab config, got {type(config).__name__}")
    _reject_added_keys(cfg, config, "")
    return config


def checked_config(cfg: DictConfig, here: bool = True) -> Config:
    """The typed Config of a composed DictConfig (Hydra's), checked once and completely:
    no environment variable in a run key (:func:`check_environment`), no key that no field
    holds (:func:`to_config`), every value allowed (:func:`validate`; ``here`` as there).
    Raises ConfigError naming the key, the value and what is allowed."""
    check_environment(cfg)
    config = to_config(cfg)
    validate(config, here=here)
    return config


def check_environment(cfg: DictConfig) -> None:
    """Raise ConfigError for a run key whose value interpolates an environment variable
    (``study=${oc.env:HOME}``), unless ``DEPTHLAB_ALLOW_ENV=1``: records are shared, and the
    variable's value would be written into every one of them."""
    if os.environ.get(ALLOW_ENV) == "1":
        return
    for key, value in _raw_values(OmegaConf.to_container(cfg, resolve=False)):
        if ENV_RESOLVER in value.replace(" ", ""):
            raise ConfigError(
                key,
                value,
                f"a literal value, or {ALLOW_ENV}=1 to record the variable's value",
                "an environment variable would be written into the run records",
            )


def _raw_values(node: object, prefix: str = "") -> list[tuple[str, str]]:
    """(key, text) of every string leaf of a plain container, keys dotted."""
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _raw_values(v, f"{prefix}{k}.")]
    if isinstance(node, list):
        return [pair for v in node for pair in _raw_values(v, prefix)]
    return [(prefix.rstrip("."), node)] if isinstance(node, str) else []


def config_from_file(path: Path | str) -> Config:
    """The typed Config of a resolved config file, e.g. a run's ``.hydra/config.yaml``: each
    group's option class is chosen by the file's ``name`` fields, then the values merged."""
    return config_from_container(OmegaConf.load(path))


def config_from_container(raw: DictConfig) -> Config:
    """The typed, validated Config of a plain (untyped) config: each group's option class is
    chosen by its ``name`` field (a group missing from ``raw`` takes its default)."""
    options = {
        group: registry[raw[group].name]()
        for group, registry in GROUPS.items()
        if group in raw and "name" in raw[group]
    }
    schema = OmegaConf.structured(Config(**options))
    config = OmegaConf.to_object(OmegaConf.merge(schema, raw))
    validate(config)
    return config


def _reject_added_keys(node: DictConfig, obj: object, prefix: str) -> None:
    """Keys added with ``+key=value`` that no dataclass field holds are typos too."""
    known = {f.name for f in fields(obj)}
    for key in node:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", node[key], sorted(known), "unknown key")
        child = getattr(obj, str(key))
        if is_dataclass(child):
            _reject_added_keys(node[key], child, f"{prefix}{key}.")


def resolve_loss(cfg: Config) -> str:
    """The loss name: the data set's own (cross-entropy for classes, squared for regression)
    unless ``loss`` names one."""
    if cfg.loss != "auto":
        return cfg.loss
    return "cross_entropy" if cfg.data.task() == CLASSIFICATION else "squared"


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def allowed_names() -> dict[str, list[str]]:
    """The keys that take a name, and the names each allows (what :func:`validate` checks;
    a group's are its registered options)."""
    return {
        "activation": ACTIVATIONS.names(),
        "output_activation": ["none", *ACTIVATIONS.names()],
        "norm": list(NORMS),
        "loss": ["auto", *LOSSES.names()],
        "device": list(DEVICES),
        "dtype": list(DTYPES),
        "logger": list(LOGGERS),
        **{group: registry.names() for group, registry in GROUPS.items()},
    }


def _one_of(key: str, value: str, allowed: list[str] | tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, allowed, "unknown value")


def check_option(option: Any, group: str) -> None:
    """Raise ConfigError for the first bad value of one option of ``group``: its numbers
    against their limits (``depthlab.limits``), then its own rules (``option.check``)."""
    check_limits(option, f"{group}.")
    option.check(group)


def validate(cfg: Config, here: bool = True) -> None:
    """Raise ConfigError (key, value, what is allowed) for the first invalid value: every
    numeric key within its limit (``depthlab.limits``), names among the registered ones,
    and the rules that tie keys together. ``here``: the run will run on this machine, so
    ``device=cuda`` needs a GPU here and ``threads`` at most its cores (False when a
    launcher sends it to other machines, where the run checks it itself)."""
    names = allowed_names()
    for key in ("activation", "output_activation", "norm"):
        _one_of(key, getattr(cfg, key), names[key])
    for group, registry in GROUPS.items():
        option = getattr(cfg, group)
        if type(option) is not registry[option.name]:
            raise ConfigError(
                f"{group}.name",
                option.name,
                [type(option).name],
                f"does not match the chosen {group} option",
            )
    check_limits(cfg)
    if cfg.norm == "batchnorm" and cfg.batch_size < 2:
        raise ConfigError(
            "batch_size",
            cfg.batch_size,
            "an integer >= 2 with norm=batchnorm",
            "batch statistics need two samples",
        )
    for group in GROUPS:
        getattr(cfg, group).check(group)
    _one_of("loss", cfg.loss, names["loss"])
    if resolve_loss(cfg) == "cross_entropy" and cfg.data.task() != CLASSIFICATION:
        raise ConfigError(
            "loss",
            "cross_entropy",
            ["auto", "squared"],
            f"data {cfg.data.name!r} is a regression task",
        )
    if here and cfg.threads > (os.cpu_count() or 1):
        raise ConfigError(
            "threads",
            cfg.threads,
            f"0 (the idle cores) or 1..{os.cpu_count() or 1}, the cores of this machine",
            "more threads than cores",
        )
    _one_of("device", cfg.device, names["device"])
    if here and cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda", ("auto", "cpu"), "no CUDA device is available")
    _one_of("dtype", cfg.dtype, names["dtype"])
    check_logger(cfg.logger)
