"""Limits before work: every numeric key has a range with a reason, jobs too big for their
device or their records are refused, probe schedules are never listed, and every value
inside the limits trains to ``ok`` or ``diverged``, never ``failed``."""

from __future__ import annotations

import dataclasses
import random

import pytest

from depthlab.config import GROUPS, Config, validate
from depthlab.errors import ConfigError, ResourceError
from depthlab.limits import LIMITS, numeric_keys
from depthlab.probes.schedule import DefaultProbes, FullProbes, Steps
from depthlab.resources import MAX_RECORD_ROWS, check_fits, estimate
from depthlab.train import train


def every_option_config() -> list[Config]:
    """One config per registered option of every group (the others at their defaults)."""
    return [
        dataclasses.replace(Config(), **{group: cls()})
        for group, registry in GROUPS.items()
        for cls in registry._entries.values()
    ]


def test_every_numeric_key_has_a_limit_and_every_limit_a_key() -> None:
    keys = {key for cfg in every_option_config() for key, _ in numeric_keys(cfg)}
    assert keys - set(LIMITS) == set()
    assert set(LIMITS) - keys == set()
    assert all(limit.why and limit.low < limit.high for limit in LIMITS.values())


def test_the_limits_print_as_a_table(capsys: pytest.CaptureFixture) -> None:
    from depthlab.limits import main

    main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(LIMITS)
    assert lines[0].split()[0] == "depth" and "1..1000" in lines[0]


def with_value(key: str, value: object) -> Config:
    """A config whose ``key`` (``group.field`` picks the first option that has the field)
    is ``value``."""
    if "." not in key:
        return dataclasses.replace(Config(), **{key: value})
    group, field = key.split(".")
    for cls in GROUPS[group]._entries.values():
        if field in {f.name for f in dataclasses.fields(cls)}:
            return dataclasses.replace(Config(), **{group: cls(**{field: value})})
    raise AssertionError(key)


@pytest.mark.parametrize("key", sorted(LIMITS))
def test_a_value_past_a_limit_is_refused_naming_key_range_and_reason(key: str) -> None:
    limit = LIMITS[key]
    above = int(limit.high) + 1 if limit.integer else limit.high * 10 + 1
    with pytest.raises(ConfigError) as caught:
        validate(with_value(key, above))
    message = str(caught.value)
    assert message.startswith(f"{key}=") and "too large" in message and limit.why in message
    assert "\n" not in message
    below = limit.low if limit.open_low else limit.low - 1
    with pytest.raises(ConfigError, match=f"^{key}="):
        validate(with_value(key, below))
    if not limit.integer:
        for bad in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(ConfigError, match=f"^{key}="):
                validate(with_value(key, bad))


def test_the_values_at_a_limit_pass() -> None:
    for key, limit in LIMITS.items():
        cfg = with_value(key, int(limit.high) if limit.integer else limit.high)
        try:
            validate(cfg)
        except ConfigError as exc:  # only another rule of the same option may object
            assert not str(exc).startswith(f"{key}=") or "too large" not in str(exc), exc


@pytest.mark.parametrize(
    "changes, keys",
    [
        ({"replicas": 1024, "depth": 1000, "width": 1024}, "depth=1000 width=1024 replicas=1024"),
        ({"width": 65536, "depth": 1000}, "depth=1000 width=65536"),
        ({"steps": 10**9, "probes": DefaultProbes(every=1), "depth": 100}, "steps=1000000000"),
    ],
)
def test_jobs_beyond_the_device_or_the_records_are_refused(changes: dict, keys: str) -> None:
    cfg = dataclasses.replace(Config(device="cpu"), **changes)
    validate(cfg)  # each key is within its own limit: only the estimate refuses them
    with pytest.raises(ResourceError) as caught:
        check_fits(cfg)
    message = str(caught.value)
    assert message.startswith(keys) and "\n" not in message
    assert "memory" in message or "metric rows" in message


def test_the_estimate_counts_what_a_run_writes_and_holds() -> None:
    base = Config(device="cpu", steps=1000, eval_every=100)
    need = estimate(base)
    assert need.probed_steps == len(set(range(0, 1001, 50)))  # every 50 and the last
    # batch losses + 4 figures at 12 evaluations + default probes' rows on 4 layers
    assert need.record_rows == 1000 + 4 * 12 + 21 * 4 * 4 * 5
    assert estimate(dataclasses.replace(base, replicas=8)).job_bytes(8) == need.job_bytes(8)
    assert need.job_bytes(8) > 7 * need.run_bytes
    huge = dataclasses.replace(base, steps=10**9, probes=FullProbes(every=1))
    assert estimate(huge).record_rows > MAX_RECORD_ROWS  # counted, not listed
    assert check_fits(base) == need


def test_a_schedule_equals_the_set_it_describes() -> None:
    rng = random.Random(0)
    for _ in range(500):
        total, every = rng.randint(-1, 80), rng.randint(0, 9)
        extra = frozenset(rng.sample(range(-3, 90), rng.randint(0, 5)))
        steps = Steps(total, every, extra)
        listed = (
            {0, total}
            | (set(range(0, total + 1, every)) if every else set())
            | {s for s in extra if 0 <= s <= total}
            if total >= 0
            else set()
        )
        assert list(steps) == sorted(listed) and len(steps) == len(listed)
        assert all((s in steps) == (s in listed) for s in range(-5, 95))
        costly_every = rng.randint(0, 9)
        costly = Steps(total, costly_every, within=steps)
        wanted = (
            ({0, total} | (set(range(0, total + 1, costly_every)) if costly_every else set()))
            & listed
            if total >= 0
            else set()
        )
        assert set(costly) == wanted and len(costly) == len(wanted)


def test_a_schedule_of_a_billion_steps_is_not_listed() -> None:
    steps = DefaultProbes(every=1000, log_points=50).steps(10**12)
    assert len(steps) == 10**9 + 1 + sum(1 for s in steps.extra if s % 1000)
    assert 10**12 in steps and 10**12 - 1000 in steps and 10**12 - 1 not in steps


def extremes() -> list[tuple[str, Config]]:
    """Tiny runs with one value-like key (not a size) at an end of its range."""
    base = Config(depth=3, width=8, steps=3, eval_every=1, threads=1)
    base = dataclasses.replace(base, probes=FullProbes(every=1))
    cases = []
    for key in ("lr", "branch_scale"):
        for value in {LIMITS[key].high, -LIMITS[key].high if key == "branch_scale" else 1e-300}:
            for residual in (False, True):
                cases.append(
                    (f"{key}={value}", dataclasses.replace(base, residual=residual, **{key: value}))
                )
    for group in ("init", "optimizer"):
        for name, cls in GROUPS[group].items():
            for f in dataclasses.fields(cls):
                limit = LIMITS.get(f"{group}.{f.name}")
                if limit is None:
                    continue
                for value in (limit.high, 1e-300 if limit.open_low else limit.low):
                    option = cls(**{f.name: value})
                    cfg = dataclasses.replace(base, lr=1e6, **{group: option})
                    cases.append((f"{group}={name} {group}.{f.name}={value}", cfg))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_value_inside_the_limits_trains_or_diverges(dtype: str, tmp_path) -> None:
    ended = {}
    for i, (label, cfg) in enumerate(extremes()):
        cfg = dataclasses.replace(cfg, dtype=dtype)
        try:
            validate(cfg)
        except ConfigError:
            continue  # a rule tying the keys together refused it: fine
        ended[label] = train(cfg, tmp_path / str(i)).status
    assert len(ended) > 40
    assert {label: s for label, s in ended.items() if s not in ("ok", "diverged")} == {}
