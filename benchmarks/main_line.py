"""Wall time of the README's main job, ``python -m depthlab.run -m depth=3,10,100``.

Runs the command ``--repeats`` times in a fresh temporary folder each (so it measures what
a user waits for: start-up, data generation, three trainings, the summary) and prints the
median and range. Extra arguments are passed on as overrides.

    python benchmarks/main_line.py [--repeats 3] [override ...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, overrides = parser.parse_known_args()
    command = [sys.executable, "-m", "depthlab.run", "-m", "depth=3,10,100", *overrides]
    times = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            subprocess.run(command, cwd=folder, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    print(
        f"{' '.join(command[1:])}: median {statistics.median(times):.1f} s over "
        f"{args.repeats} runs (range {min(times):.1f}-{max(times):.1f} s); "
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )


if __name__ == "__main__":
    main()
