"""The depth-100 training step on a GPU: depthlab eager, depthlab captured, and the floor.

For R batched runs of a depth-100, width-128, batch-128 tanh net (critical init, SGD):

- ``eager``: depthlab's step (``depthlab.steps.Stepper``) with every kernel launched from
  Python: forward, backward of the summed per-run losses, the flat-buffer update;
- ``captured``: the same step recorded once as a CUDA graph and replayed (the default);
- ``floor``: the same network written as plain tensors (baddbmm + tanh per layer,
  cross-entropy, ``torch.autograd.grad``, one ``_foreach_add_``), captured in one CUDA
  graph: the least this step can cost in PyTorch.

All three run in one process, one after another per R, each timed over ``--steps`` steps
after warm-up; the table gives ms per step and run-steps per second (R / step time).
Then ``train`` itself, one run for ``--train-steps`` steps with the default probes on their
default schedule and evaluations every 100 steps, captured and eager: wall time per step.
``--compile`` adds ``torch.compile(mode="reduce-overhead")`` of the model at R = 1
(compile time reported apart).

    python benchmarks/gpu_step.py [--device cuda] [--replicas 1 8 64 256 1024] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import critical_tanh, sync, timed, training_step

from depthlab.train import train

DEPTH, WIDTH, BATCH = 100, 128, 128


def depthlab_step(
    runs: int, device: torch.device, capture: bool, compile_mode: str | None = None
) -> Callable[[], object]:
    """One call = one depthlab training step of ``runs`` batched runs."""
    return training_step(critical_tanh(DEPTH, WIDTH, BATCH), runs, device, capture, compile_mode)


def floor_step(runs: int, device: torch.device) -> Callable[[], object]:
    """The same network as plain tensors, one step captured in a CUDA graph."""
    g = torch.Generator().manual_seed(0)
    dims = [40] + [WIDTH] * DEPTH + [10]
    weights = [
        (torch.randn(runs, i, o, generator=g) * (1.76 / i) ** 0.5).to(device).requires_grad_()
        for i, o in itertools.pairwise(dims)
    ]
    biases = [torch.zeros(runs, 1, o, device=device, requires_grad=True) for o in dims[1:]]
    params = weights + biases
    x = torch.randn(runs, BATCH, 40, device=device)
    y = torch.randint(0, 10, (runs, BATCH), device=device)

    def step() -> torch.Tensor:
        h = x
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
            z = torch.baddbmm(b, h, w)
            h = torch.tanh(z) if layer < DEPTH else z
        loss = F.cross_entropy(h.reshape(-1, 10), y.reshape(-1), reduction="sum") / BATCH
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-1e-3)
        return loss.detach()

    if device.type != "cuda":
        return step
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def ms_per_step(
    make: Callable[[], Callable[[], object]], device: torch.device, steps: int
) -> float:
    step = make()
    for _ in range(3):  # warm-up (and capture)
        step()
    seconds = timed(step, device, steps)
    del step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds * 1e3


def step_table(device: torch.device, replicas: list[int], steps: int) -> None:
    print(f"\ndepth {DEPTH}, width {WIDTH}, batch {BATCH}, tanh, SGD; ms per step (run-steps/s)")
    print(f"{'R':>5s} {'eager':>18s} {'captured':>18s} {'floor':>18s} {'captured/floor':>15s}")
    for runs in replicas:
        ways = {
            "eager": lambda r=runs: depthlab_step(r, device, capture=False),
            "captured": lambda r=runs: depthlab_step(r, device, capture=device.type == "cuda"),
            "floor": lambda r=runs: floor_step(r, device),
        }
        ms = {name: ms_per_step(make, device, steps) for name, make in ways.items()}
        cells = " ".join(f"{ms[n]:8.2f} ({runs / ms[n] * 1e3:7.0f})" for n in ways)
        print(f"{runs:5d} {cells} {ms['captured'] / ms['floor']:15.2f}", flush=True)


def loop_table(device: torch.device, steps: int) -> None:
    """depthlab.train end to end, one run, default probes and schedule: wall time per step,
    over ``steps`` and over 2 x ``steps`` (the difference per step leaves out the set-up)."""
    print(f"\ntrain(), depth {DEPTH}, one run, default probes (every 50 steps), evaluations")
    print("every 100 steps: wall time per step, set-up included, and per added step")
    cfg = critical_tanh(DEPTH, WIDTH, BATCH, device=device.type)
    for graph in (True, False):
        walls = {}
        for n in (steps, 2 * steps):
            with tempfile.TemporaryDirectory() as folder:
                sync(device)
                start = time.perf_counter()
                result = train(dataclasses.replace(cfg, steps=n, cuda_graph=graph), folder)
                sync(device)
                walls[n] = time.perf_counter() - start
        label = "captured" if result.row["cuda_graph_resolved"] else "eager"
        added = (walls[2 * steps] - walls[steps]) / steps * 1e3
        print(
            f"{label:9s} {walls[steps] / steps * 1e3:7.2f} ms/step over {steps} steps, "
            f"{walls[2 * steps] / (2 * steps) * 1e3:7.2f} over {2 * steps}, "
            f"{added:7.2f} per added step",
            flush=True,
        )


def compile_table(device: torch.device, steps: int) -> None:
    print("\ntorch.compile(mode='reduce-overhead') of the model, R = 1 (eager update)")
    start = time.perf_counter()
    step = depthlab_step(1, device, capture=False, compile_mode="reduce-overhead")
    for _ in range(3):
        step()
    sync(device)
    print(f"compile and warm-up: {time.perf_counter() - start:.1f} s")
    print(f"compiled: {timed(step, device, steps) * 1e3:.2f} ms/step", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 8, 64, 256, 1024])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--train-steps", type=int, default=1000)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}")
    step_table(device, args.replicas, args.steps)
    if args.train_steps:
        loop_table(device, args.train_steps)
    if args.compile:
        compile_table(device, args.steps)


if __name__ == "__main__":
    main()
