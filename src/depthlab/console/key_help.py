"""Every config key in ``python -m depthlab.run --help``: its meaning, default and values.

Each key is described where it is defined: the meaning is the comment on its dataclass
field (``depth: int = 3  # hidden layers; ...`` in :class:`depthlab.config.Config`, and in
each group option's class for ``init.sigma_w2``, ``data.num_samples``, ...), the allowed
values come from what validation checks (:func:`depthlab.config.allowed_names`, the ranges
of :data:`depthlab.limits.LIMITS`, the registered options of each group), the default from
the dataclass. :func:`register_key_help` makes the table available to Hydra's help template
(``conf/config.yaml``: ``${depthlab_keys:}``) for the config that ``--help`` composed, so
``--help init=gaussian`` describes the gaussian option's fields.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from depthlab.config import GROUPS, Config, allowed_names
from depthlab.limits import LIMITS

RESOLVER = "depthlab_keys"
# The meaning of group fields whose class does not comment the field yet (inits.py, the data
# sets, optimizers.py, probes/schedule.py); a comment on the field itself takes precedence,
# and then its line here goes.
GROUP_FIELDS = {
    "init.sigma_w2": "weight variance times fan_in: W ~ N(0, sigma_w2 / fan_in)",
    "init.sigma_b2": "bias variance: b ~ N(0, sigma_b2)",
    "init.std": "weight standard deviation, whatever the width",
    "init.gain": "scale of the weights: Var(W) = gain^2 x the init's base variance",
    "init.nonlinearity": "the activation whose gain He's init uses (torch's calculate_gain)",
    "init.negative_slope": "leaky_relu's slope for the gain",
    "init.mode": "fan_in (forward variance) or fan_out (backward variance)",
    "data.standardize": "shift and scale each input feature by the training set's mean, std",
    "data.seed": "the data set's own draw and split (apart from the network's seed)",
    "data.num_samples": "samples generated, before the train/test split",
    "data.train_split": "fraction of the samples used for training",
    "data.test_fraction": "fraction of the samples held out for testing (stratified)",
    "data.path": "the .npz file (arrays x_train, y_train, x_test, y_test)",
    "data.task_type": "classification or regression",
    "data.num_train": "training samples",
    "data.num_test": "test samples",
    "data.noise": "noise added to the targets",
    "data.in_dim": "input features",
    "data.num_outputs": "outputs (classes, or regression targets)",
    "data.depth": "the teacher network's hidden layers",
    "data.width": "the teacher network's units per hidden layer",
    "data.activation": "the teacher network's activation",
    "data.sigma_w2": "the teacher's weight variance times fan_in",
    "data.sigma_b2": "the teacher's bias variance",
    "optimizer.weight_decay": "L2 penalty wd: the update adds wd W to the gradient",
    "optimizer.momentum": "momentum mu: v <- mu v + g",
    "optimizer.nesterov": "Nesterov's form of momentum",
    "optimizer.beta1": "Adam's decay of the gradient's running mean",
    "optimizer.beta2": "Adam's decay of the squared gradient's running mean",
    "optimizer.eps": "Adam's denominator floor",
    "optimizer.decoupled": "AdamW: weight decay applied to the weights, not the gradient",
    "probes.names": "probes or probe presets to run, e.g. [delta,acts]",
    "probes.log_points": "extra probed steps, log-spaced in 1..steps (0: none)",
}
FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")
COMMENT_LINE = re.compile(r"^\s+#\s?(.*)$")
NAME_COLUMN = 26


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in the source of ``cls`` and its dataclass bases (the
    comment at the end of the field's line, else the comment lines just above it)."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):  # no source (a frozen build): the key goes undescribed
            continue
        above: list[str] = []
        for line in lines[1:]:
            comment = COMMENT_LINE.match(line)
            field = FIELD_LINE.match(line)
            if comment:
                above.append(comment.group(1).strip())
            elif field and not line.lstrip().startswith(("def ", "@", "return")):
                text = field.group(2) or " ".join(above)
                if text:
                    found[field.group(1)] = text.strip()
                above = []
            else:
                above = []
    return found


def _allowed(key: str, default: Any) -> str:
    """The values ``key`` (dotted, as on the command line) takes."""
    names = allowed_names()
    if key in names:
        return "|".join(names[key])
    if key in LIMITS:
        return LIMITS[key].allowed()
    if isinstance(default, bool):
        return "true|false"
    if isinstance(default, list):
        return "a list [a,b,...]"
    return "text" if isinstance(default, str) else type(default).__name__


def _shown(value: Any) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return f"[{','.join(map(str, value))}]"
    return "''" if value == "" else str(value)


def _entry(key: str, meaning: str, default: Any, allowed: str) -> list[str]:
    return [
        f"  {key:<{NAME_COLUMN - 1}} {meaning or '(no description)'}",
        f"  {'':<{NAME_COLUMN}}default {_shown(default)}; allowed: {allowed}",
    ]


def key_lines(cfg: DictConfig) -> list[str]:
    """Two lines per key of ``cfg`` (a composed config): the key and its meaning, then its
    default and allowed values; a group's fields follow the group, as ``group.field``."""
    meanings = field_comments(Config)
    defaults = {f.name: getattr(Config(), f.name) for f in fields(Config)}
    lines: list[str] = []
    for key in cfg:
        if key == "hydra":
            continue
        key = str(key)
        if key not in GROUPS:
            default = defaults.get(key)
            lines += _entry(key, meanings.get(key, ""), default, _allowed(key, default))
            continue
        option = GROUPS[key][cfg[key].name]
        lines += _entry(key, meanings.get(key, ""), defaults[key].name, _allowed(key, ""))
        notes = field_comments(option)
        for f in fields(option):
            if f.name == "name":
                continue
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            dotted = f"{key}.{f.name}"
            meaning = notes.get(f.name, GROUP_FIELDS.get(dotted, ""))
            lines += _entry(dotted, meaning, default, _allowed(dotted, default))
    return lines


def help_table(*, _root_: DictConfig) -> str:
    """The resolver behind ``${depthlab_keys:}``: the key table of the config being
    composed, with ``$`` doubled for Hydra's string.Template."""
    return "\n".join(key_lines(_root_)).replace("$", "$$")


def register_key_help() -> None:
    """Let Hydra's help template (``conf/config.yaml``) call ``${depthlab_keys:}``."""
    OmegaConf.register_new_resolver(RESOLVER, help_table, replace=True, use_cache=False)
