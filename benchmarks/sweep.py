"""A 32-run sweep, batched (the default) against ``batching=off``: whole-command wall time.

The sweep: depth 30, width 128, tanh, Gaussian init with 8 values of sigma_w2 (sigma_b2 =
0.05) x 4 seeds, 300 steps, MNIST-1D, default probes: one batched group of 32 runs against
32 jobs trained one after another. The two commands alternate (A, B, B, A, ...) and each
is timed from start to exit (start-up, composing, training, records, summary); medians.

Beside it, in this process, the processor's own batching gain for the same network: the
bare step of one 32-run batched model against 32 steps of one-run models (interleaved,
medians), the ratio the sweep's gain is measured against.

    python benchmarks/sweep.py [--repeats 3] [--steps 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from common import critical_tanh, timed, training_step

SIGMA_W2 = "1.0,1.25,1.5,1.75,2.0,2.25,2.5,3.0"
RUNS = 32


def command(folder: str, steps: int, device: str, batched: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "depthlab.run",
        "-m",
        "depth=30",
        "width=128",
        "activation=tanh",
        "init=gaussian",
        f"init.sigma_w2={SIGMA_W2}",
        "init.sigma_b2=0.05",
        "seed=0,1,2,3",
        f"steps={steps}",
        f"device={device}",
        f"hydra.sweep.dir={folder}",
        *([] if batched else ["batching=off"]),
    ]


def wall(steps: int, device: str, batched: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        proc = subprocess.run(
            command(folder, steps, device, batched), capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return seconds


def bare_ratio(repeats: int, steps: int = 10) -> float:
    """Median of (one 32-run batched step) / (32 one-run steps), CPU, interleaved."""
    cpu = torch.device("cpu")
    batched = training_step(critical_tanh(30, 128, 128), RUNS, cpu)
    single = training_step(critical_tanh(30, 128, 128), 1, cpu)
    ratios = []
    for _ in range(repeats):
        a = timed(batched, cpu, steps)
        b = timed(lambda: [single() for _ in range(RUNS)], cpu, steps)
        ratios.append(a / b)
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    wall(5, args.device, batched=True)  # the data cache and the file system warmed up
    times: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(args.repeats):
        order = (True, False) if repeat % 2 == 0 else (False, True)
        for batched in order:
            times[batched].append(wall(args.steps, args.device, batched))
            print(f"{'batched' if batched else 'off':8s} {times[batched][-1]:7.1f} s", flush=True)
    on, off = (statistics.median(times[b]) for b in (True, False))
    print(f"\n{RUNS} runs, depth 30, {args.steps} steps, {args.device}, medians of {args.repeats}:")
    print(f"batched {on:.1f} s, batching=off {off:.1f} s: ratio {on / off:.2f}")
    if args.device == "cpu":
        torch.set_flush_denormal(True)
        print(f"bare-step ratio, one {RUNS}-run model / {RUNS} one-run models: {bare_ratio(5):.2f}")


if __name__ == "__main__":
    main()
