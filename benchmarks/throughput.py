"""Step efficiency: how close a depthlab training step comes to the machine's matmul rate.

- ``matmul``: C = A B for square n x n float32 matrices (n = --width): 2 n^3 / t FLOP/s,
  the reference rate of this machine and library.
- ``step``: one SGD step (forward, backward, update) of a depthlab MLP of --depth hidden
  layers of --width units on a batch of --batch. Its arithmetic is the three matmuls per
  layer, forward z = a W^T, backward dJ/da = delta W and dJ/dW = delta^T a:
  6 B fan_in fan_out FLOPs per layer. Efficiency = (step FLOPs / step time) / matmul rate.
- ``probed``: the same step with the default probes (delta, grads, preacts, acts) read at
  every step (the default schedule reads them one step in 50).
- ``compiled``: the plain step with the model under ``torch.compile``; the first call's
  compile time is reported apart, with the number of steps it takes to pay it back.

Variants alternate inside one process (A, B, C, A, B, C, ...); medians over --repeats.

    python benchmarks/throughput.py [--width 1024] [--depth 20] [--batch 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import torch
from common import critical_tanh, sync, timed

from depthlab.data import load_data
from depthlab.losses import LOSSES
from depthlab.probes import Capture, compute, host_arrays, probe_names
from depthlab.train import build_model


def step_flops(widths: list[int], batch: int) -> float:
    """6 B fan_in fan_out per layer: the forward and the two backward matmuls."""
    return float(sum(6 * batch * i * o for i, o in itertools.pairwise(widths)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5, help="steps per timing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.set_flush_denormal(True)
    variants, widths, compile_s = make_variants(args, device)
    for work in variants.values():  # warm-up
        timed(work, device, 2)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, work in variants.items():
            times[name].append(timed(work, device, args.calls))
    median = {name: statistics.median(values) for name, values in times.items()}
    print_rates(args, device, median, step_flops(widths, args.batch))
    if compile_s is not None:
        saved = median["step"] - median["compiled"]
        payback = f"{compile_s / saved:.0f} steps" if saved > 0 else "never"
        print(f"  compile time {compile_s:.1f} s; paid back after {payback}")


def make_variants(
    args: argparse.Namespace, device: torch.device
) -> tuple[dict[str, Callable[[], object]], list[int], float | None]:
    """The timed variants (matmul, step, probed and, unless ``--no-compile``, compiled),
    the model's layer widths, and the seconds the first compiled step took (None without)."""
    cfg = critical_tanh(args.depth, args.width, args.batch)
    data = load_data(cfg.data, device, torch.float32)
    model = build_model(cfg, data, device, torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    index = torch.randint(0, data.num_train, (args.batch,), device=device)
    x, y = data.x_train[index], data.y_train[index]
    names = probe_names("default")
    a, b = (torch.randn(args.width, args.width, device=device) for _ in range(2))

    def step(net: torch.nn.Module) -> None:
        loss = LOSSES["cross_entropy"](net(x), y, data.task).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def probed() -> None:
        with Capture(model) as capture:
            loss = LOSSES["cross_entropy"](model(x), y, data.task).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        host_arrays(compute(model, capture.tensors, names))
        optimizer.step()

    variants: dict[str, Callable[[], object]] = {
        "matmul": lambda: a @ b,
        "step": lambda: step(model),
        "probed": probed,
    }
    if args.no_compile:
        return variants, model.widths, None
    compiled = torch.compile(model)
    start = time.perf_counter()
    step(compiled)  # the first call compiles (forward and backward graphs)
    sync(device)
    variants["compiled"] = lambda: step(compiled)
    return variants, model.widths, time.perf_counter() - start


def print_rates(
    args: argparse.Namespace, device: torch.device, median: dict[str, float], flops: float
) -> None:
    """The matmul rate, and each step variant's time, rate and share of the matmul rate."""
    n = args.width
    peak = 2 * n**3 / median["matmul"]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({card}) threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"matmul {n}x{n} float32: {median['matmul'] * 1e3:.3f} ms, {peak / 1e9:.1f} GFLOP/s")
    print(f"step: depth {args.depth}, width {n}, batch {args.batch}: {flops / 1e9:.2f} GFLOP")
    for name in [v for v in median if v != "matmul"]:
        rate = flops / median[name]
        print(
            f"  {name:9s} {median[name] * 1e3:9.2f} ms  {rate / 1e9:8.1f} GFLOP/s  "
            f"{rate / peak:6.1%} of matmul  (x{median[name] / median['step']:.3f} the step)"
        )


if __name__ == "__main__":
    main()
