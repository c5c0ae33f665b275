"""Hydra's and OmegaConf's composition errors as one line: the key, the value, what is allowed.

Hydra reports a bad command line over several lines, in its own terms ("No match in the
defaults list", "Could not load 'experiment/nosuch'"). :func:`describe` turns each into the
one line ``key=value: reason; allowed: ...`` of :class:`depthlab.errors.ConfigError`, with a
hint where the usual slip is known: a study preset is added with ``+experiment=NAME``.
"""

from __future__ import annotations

from hydra import compose
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from depthlab.config import GROUPS
from depthlab.errors import ConfigError

ADDED_GROUPS = ("experiment", "variant")  # config groups outside the defaults list
# Options that were renamed, with the reason the old name went (shown instead of "unknown")
RENAMED = {
    ("init", "fixup"): "renamed scaled_branches: it scales residual branches by "
    "1/sqrt(#branches), which is not Fixup (Fixup needs branches of two or more layers)",
}


def describe(exc: Exception, overrides: list[str], config_name: str) -> str:
    """One line for a Hydra or OmegaConf error: the key, the value and what is allowed."""
    line = _group_problem(exc, overrides)
    if line:
        return line
    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse the command line: {_first_line(exc)}; allowed: key=value "
            "(key=v1,v2,... with -m)"
        )
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    key = getattr(cause, "full_key", None)
    if key:
        value = _value_of(key, overrides)
        if isinstance(cause, ConfigAttributeError | ConfigKeyError):
            allowed = _sibling_keys(key, overrides, config_name)
            reason = "unknown key" + _options_with(key)
            return str(ConfigError(key, value, allowed or "an existing key", reason))
        message = _first_line(cause)
        wanted = message.rpartition("converted to ")[2] if "converted to " in message else ""
        allowed = f"a value of type {wanted}" if wanted else message
        return str(ConfigError(key, value, allowed, "wrong type"))
    return f"cannot compose the configuration from {' '.join(overrides)}: {_first_line(exc)}"


def _group_problem(exc: Exception, overrides: list[str]) -> str:
    """The line for an unknown group option, or a preset group used without its ``+``
    (``experiment=NAME``, ``++experiment=NAME``, ``~experiment``); '' for other errors."""
    text = str(exc)
    if isinstance(exc, MissingConfigException) and "/" in str(exc.missing_cfg_file or ""):
        group, _, option = str(exc.missing_cfg_file).rpartition("/")
        reason = RENAMED.get((group, option), "unknown option")
        if group in ADDED_GROUPS:
            reason = f"no such preset in conf/{group}/ (depthlab studies lists the studies)"
        return str(ConfigError(group, option, exc.options or [], reason))
    if "Config group override must be a string" in text:  # data=0: a number, no name
        for line in overrides:
            key, _, value = line.lstrip("+~").partition("=")
            if key in GROUPS and value not in GROUPS[key]:
                return str(ConfigError(key, value, GROUPS[key].names(), "unknown option"))
    misplaced = "No match in the defaults list" in text or "force-add of config groups" in text
    for line in overrides if misplaced else []:
        key, _, value = line.lstrip("+~").partition("=")
        if key in ADDED_GROUPS:
            return _preset_without_plus(key, value, line)
    return ""


def _preset_without_plus(group: str, value: str, line: str) -> str:
    """``experiment=NAME`` (or ``++``, ``~``): a preset is added to the defaults with ``+``;
    the hint names the presets when NAME is not one of them."""
    options = _group_options(group)
    if line.startswith("~"):
        return str(ConfigError(line, "", f"nothing: {group} is only ever added", "not chosen"))
    if value in options or not options:
        allowed = f"+{group}={value} (a preset is added to the defaults, with +)"
        return str(ConfigError(group, value, allowed, "not in the defaults list"))
    allowed = f"+{group}=NAME (added with +), NAME one of {', '.join(options)}"
    return str(ConfigError(group, value, allowed, "not in the defaults list, and no such preset"))


def _group_options(group: str) -> list[str]:
    """The options of a config group on the search path (the presets of ``experiment``)."""
    from hydra.core.global_hydra import GlobalHydra

    try:
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    except Exception:  # no initialised Hydra: the hint goes without the names
        return []


def _options_with(key: str) -> str:
    """For ``group.field``: which options of the group have that field."""
    group, _, name = key.partition(".")
    if group not in GROUPS or not name or "." in name:
        return ""
    having = [
        option
        for option, cls in GROUPS[group].items()
        if name in getattr(cls, "__dataclass_fields__", {})
    ]
    return f" (it belongs to {group}={'|'.join(having)})" if having else ""


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return next((line.strip() for line in str(text).splitlines() if line.strip()), repr(exc))


def _value_of(key: str, overrides: list[str]) -> str:
    for line in overrides:
        name, _, value = line.lstrip("+~").partition("=")
        if name == key:
            return value
    return "?"


def _sibling_keys(key: str, overrides: list[str], config_name: str) -> list[str]:
    """The keys that exist beside ``key``, from the config composed without that override."""
    others = [o for o in overrides if o.lstrip("+~").partition("=")[0] != key]
    try:
        cfg = compose(config_name, overrides=others)
    except Exception:
        return []
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return [str(k) for k in node] if isinstance(node, DictConfig) else []
