"""torch's intra-op threads on a shared CPU: one thread against all cores, on a quiet machine
and with another process busy on one core (what a shared machine or a second job does).

For each workload, the bare training step (forward, backward, update, as ``depthlab.steps``
runs it) is timed with 1 thread and with all cores alternately (A, B, A, B, ...) inside one
process; medians over repeats. Workloads: the main line's depth 10 and depth 100 (sigmoid,
width 128, batch 128, one run) and a 32-run batched group (depth 30, width 128, tanh).

    python benchmarks/threads.py [--repeats 7] [--steps 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from common import critical_tanh, timed, training_step

from depthlab.config import Config

CPU = torch.device("cpu")


def workloads() -> dict[str, Callable[[], object]]:
    main = Config(depth=10, width=128, batch_size=128)
    return {
        "depth 10, 1 run": training_step(main, 1, CPU),
        "depth 100, 1 run": training_step(dataclasses.replace(main, depth=100), 1, CPU),
        "depth 30, 32 runs": training_step(critical_tanh(30, 128, 128), 32, CPU),
    }


def measure(repeats: int, steps: int) -> dict[str, dict[int, float]]:
    cores = os.cpu_count() or 1
    out: dict[str, dict[int, list[float]]] = {}
    for name, one in workloads().items():
        times: dict[int, list[float]] = {1: [], cores: []}
        for _ in range(repeats):
            for threads in (1, cores):
                torch.set_num_threads(threads)
                times[threads].append(timed(one, CPU, steps) * 1e3)
        out[name] = {t: statistics.median(v) for t, v in times.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    cores = os.cpu_count() or 1
    print(f"{cores} cores, torch {torch.__version__}; ms per step, medians of {args.repeats}")
    from depthlab.threads import busy_cores, resolve_threads

    for condition in ("quiet", "one core busy"):
        busy = None
        if condition != "quiet":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            chosen = resolve_threads(0, CPU)
            print(
                f"\n{condition}: others busy on {busy_cores():.2f} cores; threads=0 picks {chosen}"
            )
            results = measure(args.repeats, args.steps)
        finally:
            if busy is not None:
                busy.kill()
        print(f"{'workload':20s} {'1 thread':>10s} {f'{cores} threads':>10s} {'ratio':>7s}")
        for name, t in results.items():
            print(f"{name:20s} {t[1]:10.2f} {t[cores]:10.2f} {t[cores] / t[1]:7.2f}")


if __name__ == "__main__":
    main()
