"""Wall time and verdict of every study preset, each run end to end as a user runs it.

For each study: ``python -m depthlab.run -m +experiment=NAME hydra.sweep.dir=OUT/NAME``
(timed), then ``python analysis/NAME.py OUT/NAME`` (its verdict). Prints one Markdown table
row per study and writes the table to OUT/studies.md. The budget is 10 minutes per study on
a 2-core CPU, longer for the three whose papers' numbers need long or deep grids (BUDGETS);
studies run one after another, never beside each other (two torch processes on two cores
slow each other several-fold).

BUDGETS are allowances, not the expected times: those are stated once, in each preset's
``# expected time:`` header, read by :func:`depthlab.console.catalogue.expected_seconds`;
a study gets a budget of its own exactly when its preset expects more than BUDGET_S, and the
budget leaves room above that expectation (test_benchmark_budgets.py checks both).

    python benchmarks/studies.py OUT [NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600
# Allowances beyond BUDGET_S, each above its preset's expected time, with why it is long.
BUDGETS = {
    "saturation": 1200,  # 40,000 updates: depth 4's escape comes after 18,000-30,000
    "edge_of_chaos": 2700,  # 216 runs to depth 160: L_max against xi_c with 2 seeds a cell
    "dynamics": 1500,  # 144 runs, 3.8M layer-steps: tanh nets need 1,000+ steps at depth 64
}


def studies() -> list[str]:
    """The study presets: conf/experiment/*.yaml without the quick variants and the full
    (GPU) forms."""
    names = (p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    return sorted(n for n in names if not n.endswith(("_quick", "_full")))


def run_study(name: str, out: Path, quick: bool) -> tuple[float, int, str]:
    """(wall seconds of the sweep, its exit status, the analysis's verdict line)."""
    preset = f"{name}_quick" if quick else name
    command = [sys.executable, "-m", "depthlab.run", "-m", f"+experiment={preset}"]
    start = time.perf_counter()
    sweep = subprocess.run([*command, f"hydra.sweep.dir={out / name}"], capture_output=True)
    wall = time.perf_counter() - start
    analysis = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / f"{name}.py"), str(out / name)],
        capture_output=True,
        text=True,
    )
    lines = [line for line in analysis.stdout.splitlines() if line.startswith(f"{name}: ")]
    verdict = lines[-1] if lines else f"{name}: no verdict ({analysis.stderr.strip()[-200:]})"
    return wall, sweep.returncode, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the sweeps and studies.md")
    parser.add_argument("names", nargs="*", help="studies to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="run the quick variants")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "",
        "| study | wall time | within 10 min | verdict |",
        "|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for name in args.names or studies():
        wall, status, verdict = run_study(name, args.out, args.quick)
        label = verdict.partition(": ")[2].partition(".")[0]
        budget = BUDGET_S if args.quick else BUDGETS.get(name, BUDGET_S)  # quick: all 10 min
        row = f"| {name} | {wall:.0f} s (exit {status}) | {wall <= budget} | {label} |"
        print(row, flush=True)
        print(f"    {verdict}", flush=True)
        rows.append(row)
    (args.out / "studies.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
