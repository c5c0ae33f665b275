"""Step time with and without flushing subnormal floats to zero (A/B in one process).

A deep net with PyTorch's default init (sigma_w^2 = 1/3) shrinks its signals layer by layer:
with ReLU both the forward activations and the backward deltas pass through float32's
subnormal range (1e-38..1e-45), where CPU arithmetic is slow.
Runs one thread so that the flag, which is per thread, governs every op; alternates A and
B steps on the same model and batch and reports the median step times and their ratio.

    python benchmarks/denormals.py [--activation relu] [--depth 100] [--width 128] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from depthlab.config import Config
from depthlab.data import load_data
from depthlab.losses import LOSSES
from depthlab.train import build_model


def step_time(model, optimizer, x, y, steps: int) -> float:
    """Median seconds per SGD step over ``steps`` steps."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = LOSSES["cross_entropy"](model(x), y, "classification").sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = Config(depth=args.depth, width=args.width, activation=args.activation)
    device = torch.device("cpu")
    data = load_data(cfg.data, device, torch.float32)
    model = build_model(cfg, data, device, torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-12)  # weights barely change
    x, y = data.x_train[: args.batch], data.y_train[: args.batch]
    results: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for flush in (True, False):
            torch.set_flush_denormal(flush)
            step_time(model, optimizer, x, y, 3)  # warm up under this setting
            results[flush].append(step_time(model, optimizer, x, y, args.steps))
    torch.set_flush_denormal(False)
    on, off = (statistics.median(results[f]) for f in (True, False))
    ratios = [b / a for a, b in zip(results[True], results[False], strict=True)]
    print(
        f"depth {args.depth}, width {args.width}, batch {args.batch}, 1 thread, "
        f"torch {torch.__version__}"
    )
    print(f"flush_denormal=true : {on * 1e3:7.2f} ms/step (median of {args.repeats} repeats)")
    print(f"flush_denormal=false: {off * 1e3:7.2f} ms/step")
    print(
        f"ratio false/true    : {statistics.median(ratios):.2f}x "
        f"(per-repeat range {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
