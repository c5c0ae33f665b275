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
            lines += _entry(dotted, notes.get(f.name, ""), default, _allowed(dotted, default))
    return lines


def help_table(*, _root_: DictConfig) -> str:
    """The resolver behind ``${depthlab_keys:}``: the key table of the config being
    composed, with ``$`` doubled for Hydra's string.Template."""
    return "\n".join(key_lines(_root_)).replace("$", "$$")


def register_key_help() -> None:
    """Let Hydra's help template (``conf/config.yaml``) call ``${depthlab_keys:}``."""
    OmegaConf.register_new_resolver(RESOLVER, help_table, replace=True, use_cache=False)
