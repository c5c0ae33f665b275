"""Cost of per-layer probes: the plain SGD step against the same step with probes.

Depth 100, width 128, batch 128 on the CPU by default. Variants run interleaved in one
process on the same model and batch (A, B, C, A, B, C, ...), each repeat timing ``--steps``
steps; the script prints the median step time of each and the median of the per-repeat
ratios to the plain step. "every 10th" probes one step in ten, as the default schedule does.

    python benchmarks/probe_overhead.py [--probes default] [--repeats 15] [--depth 100]

``--activation sigmoid`` measures the main line's net, whose float32 deltas underflow
below layer 60: each probed step then also runs the delta probe's float64 copy of the pass.

Peak memory cannot be told apart inside one process, so ``--memory`` runs each variant in
a fresh subprocess and reports its peak resident set size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from depthlab.config import Config
from depthlab.data import load_data
from depthlab.losses import LOSSES
from depthlab.probes import Capture, batch_objective, compute, probe_names
from depthlab.train import build_model

VARIANTS: dict[str, Callable[[int], bool]] = {  # whether step i of a timing is probed
    "plain": lambda i: False,
    "every step": lambda i: True,
    "every 10th": lambda i: i % 10 == 0,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", default="default")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--memory", action="store_true", help="peak RSS per variant")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # one variant, for --memory
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.memory:
        return report_memory(args)
    torch.set_flush_denormal(True)
    names = probe_names(args.probes)
    kept: list = []  # the probes' values, kept on the device until a timing ends
    step = sgd_step(args, names, kept)
    if args.only:  # run one variant for a while, for its peak memory
        for i in range(args.steps * 5):
            step(VARIANTS[args.only](i))
            kept.clear()
        return None
    times = interleaved_times(step, args.repeats, args.steps, kept)
    print(
        f"probes={args.probes} ({', '.join(names)}), {args.activation}, depth {args.depth}, "
        f"width {args.width}, "
        f"batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    for name, values in times.items():
        ratios = [v / p for v, p in zip(values, times["plain"], strict=True)]
        print(
            f"{name:>11}: {statistics.median(values) * 1e3:6.2f} ms/step, "
            f"ratio {statistics.median(ratios):.3f} (range {min(ratios):.2f}-{max(ratios):.2f})"
        )
    return None


def sgd_step(args: argparse.Namespace, names: list[str], kept: list) -> Callable[[bool], None]:
    """One SGD step of an MLP of ``args.depth`` x ``args.width`` on a fixed batch, with the
    probes ``names`` computed (and appended to ``kept``) when asked, as the loop does."""
    cfg = Config(depth=args.depth, width=args.width, activation=args.activation)
    cpu = torch.device("cpu")
    data = load_data(cfg.data, cpu, torch.float32)
    model = build_model(cfg, data, cpu, torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    x, y = data.x_train[: args.batch], data.y_train[: args.batch]

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return LOSSES["cross_entropy"](out, target, data.task)

    def step(probe: bool) -> None:
        if probe:
            with Capture(model) as capture:
                loss = LOSSES["cross_entropy"](model(x), y, data.task).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            objective = batch_objective(loss_fn, x, y)
            kept.append(compute(model, capture.tensors, names, objective))  # on the device
        else:
            loss = LOSSES["cross_entropy"](model(x), y, data.task).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()

    return step


def interleaved_times(
    step: Callable[[bool], None], repeats: int, steps: int, kept: list
) -> dict[str, list[float]]:
    """Seconds per step of each variant, ``repeats`` timings of ``steps`` steps each, the
    variants interleaved (A, B, C, A, B, C, ...) after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(3):  # warm up
        step(True)
        step(False)
    for _ in range(repeats):
        for name, when in VARIANTS.items():
            start = time.perf_counter()
            for i in range(steps):
                step(when(i))
            times[name].append((time.perf_counter() - start) / steps)
            kept.clear()
    return times


def report_memory(args: argparse.Namespace) -> None:
    """Peak RSS of each variant, each in its own process."""
    common = [
        "--probes",
        args.probes,
        "--activation",
        args.activation,
        "--depth",
        str(args.depth),
        "--width",
        str(args.width),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
    ]
    peaks = {}
    for variant in ("plain", "every step"):
        code = (
            "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__'); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, __file__, *common, "--only", variant],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[variant] = int(out.stdout.split()[-1]) / 1024  # KiB -> MiB
    print(
        f"peak RSS: plain {peaks['plain']:.0f} MiB, probes at every step "
        f"{peaks['every step']:.0f} MiB (+{peaks['every step'] - peaks['plain']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
