"""benchmarks/studies.py's time budgets against the expected times the presets state, and
benchmarks/watch_overhead.py runs (its ``--smoke`` mode, a few steps of every variant).

The expected time of a study is written once, in its preset's ``# expected time:`` header
(:func:`depthlab.console.catalogue.expected_seconds`); the benchmark's BUDGETS are
allowances above it, for exactly the studies expected to take longer than BUDGET_S.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
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


def test_the_watch_overhead_benchmark_runs_every_variant_on_both_nets() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "watch_overhead.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for net in ("conv: ConvNet1d", "transformer: TransformerNet"):
        assert net in proc.stdout
    for variant in ("plain", "default/50", "full/50", "default/1"):
        assert proc.stdout.count(f"{variant}:") == 2, proc.stdout
    assert proc.stdout.count("a probed step: ") == 2
    assert proc.stdout.count("default schedule ") == 2
