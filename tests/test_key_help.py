"""``python -m depthlab.run --help`` describes every key, for every option of every group.

In-process: the key table is composed by :func:`depthlab.console.key_help.key_lines` for a
config holding each registered option in turn (the subprocess check of the same table is
the slow test in test_cli.py).
"""

from __future__ import annotations

from dataclasses import fields

import pytest
from omegaconf import OmegaConf

from depthlab.config import GROUPS, Config
from depthlab.console.key_help import field_comments, key_lines

OPTIONS = [(group, name) for group, registry in GROUPS.items() for name in registry.names()]


def test_every_group_has_options() -> None:
    assert set(GROUPS) == {"init", "data", "optimizer", "probes", "batching"}
    assert all(len(registry.names()) >= 2 for registry in GROUPS.values())


@pytest.mark.parametrize(("group", "name"), OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_every_field_of_every_option_has_a_meaning(group: str, name: str) -> None:
    option = GROUPS[group][name]
    notes = field_comments(option)
    for f in fields(option):
        if f.name != "name":
            assert notes.get(f.name, "").strip(), f"{group}.{f.name} of {name}: no comment"

    lines = key_lines(OmegaConf.structured(Config(**{group: option()})))
    described = {line.split()[0]: line.split(maxsplit=1)[1:] for line in lines[::2]}
    for f in fields(option):
        if f.name == "name":
            continue
        meaning = described[f"{group}.{f.name}"]
        assert meaning and meaning[0] != "(no description)", f"{group}.{f.name} of {name}"
    for f in fields(Config):  # the top-level keys stay described whatever the option
        assert described[f.name] and described[f.name][0] != "(no description)", f.name
    for entry, values in zip(lines[::2], lines[1::2], strict=True):
        assert values.strip().startswith("default ") and "; allowed: " in values, entry
