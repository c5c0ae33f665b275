"""benchmarks/studies.py's time budgets against the expected times the presets state.

The expected time of a study is written once, in its preset's ``# expected time:`` header
(:func:`depthlab.console.catalogue.expected_seconds`); the benchmark's BUDGETS are
allowances above it, for exactly the studies expected to take longer than BUDGET_S.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from depthlab.console.catalogue import expected_seconds
from depthlab.studies import STUDIES

ROOT = Path(__file__).resolve().parents[1]


def benchmark() -> ModuleType:
    """benchmarks/studies.py, imported from its path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "studies_benchmark", ROOT / "benchmarks" / "studies.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_study_has_a_budget_of_its_own_exactly_when_its_preset_expects_more_than_the_rule() -> (
    None
):
    bench = benchmark()
    expected = {name: expected_seconds(name) for name in STUDIES.names()}
    assert all(seconds is not None for seconds in expected.values()), expected
    long = {name for name, seconds in expected.items() if seconds > bench.BUDGET_S}
    assert set(bench.BUDGETS) == long
    for name, budget in bench.BUDGETS.items():
        assert budget > expected[name], (name, budget, expected[name])
    assert sorted(bench.studies()) == sorted(STUDIES.names())


def test_every_quick_preset_is_expected_within_the_rule() -> None:
    bench = benchmark()
    for name in STUDIES.names():
        seconds = expected_seconds(f"{name}_quick")
        assert seconds is not None and seconds <= bench.BUDGET_S, name
