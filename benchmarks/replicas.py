"""Batched seeds: R replicas in one model against R sequential runs of one replica each.

Two measurements, interleaved in one process (A, B, A, B, ...), medians over repeats:

- ``step``: the bare training step (forward, backward of the summed per-replica losses,
  SGD update) of one R-replica model against R steps of R one-replica models;
- ``run``: ``depthlab.train.train`` end to end (records, default probes every 50 steps,
  evaluations) with ``replicas=R`` against R runs with ``replicas=1`` and seeds
  seed..seed+R-1, which record the same.

The ratio batched / sequential is what a study with R seeds pays. Default: depth 100,
width 128, batch 128, R = 8, tanh at its critical init (so every step does full work).

    python benchmarks/replicas.py [--replicas 8] [--repeats 5] [--steps 200] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch
from common import critical_tanh, timed

from depthlab.config import Config
from depthlab.data import load_data
from depthlab.losses import LOSSES
from depthlab.train import build_model, train


def bare_steps(cfg: Config, device: torch.device, steps: int) -> tuple[callable, callable]:
    """Two closures timing ``steps`` steps: batched (R replicas) and sequential (R x 1)."""
    data = load_data(cfg.data, device, torch.float32)
    batched = build_model(cfg, data, device, torch.float32)
    singles = [
        build_model(
            dataclasses.replace(cfg, seed=cfg.seed + r, replicas=1), data, device, torch.float32
        )
        for r in range(cfg.replicas)
    ]
    index = torch.randint(0, data.num_train, (cfg.replicas, cfg.batch_size), device=device)
    x, y = data.x_train[index], data.y_train[index]

    def run(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> None:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
        for _ in range(steps):
            loss = LOSSES["cross_entropy"](model(xs), ys, data.task).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def one_batched() -> float:
        return timed(lambda: run(batched, x, y), device)

    def sequential() -> float:
        return timed(
            lambda: [run(m, x[r : r + 1], y[r : r + 1]) for r, m in enumerate(singles)], device
        )

    return one_batched, sequential


def whole_runs(cfg: Config) -> tuple[callable, callable]:
    """Two closures timing train(): one run with R replicas, and R runs of one replica."""

    def trained(configs: list[Config]) -> float:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            for k, c in enumerate(configs):
                train(c, f"{folder}/{k}")
            return time.perf_counter() - start

    singles = [dataclasses.replace(cfg, seed=cfg.seed + r, replicas=1) for r in range(cfg.replicas)]
    return (lambda: trained([cfg])), (lambda: trained(singles))


def compare(name: str, batched, sequential, repeats: int) -> None:
    times_b, times_s, ratios = [], [], []
    batched(), sequential()  # warm-up: allocators, thread pools, data caches
    for _ in range(repeats):
        b, s = batched(), sequential()
        times_b.append(b)
        times_s.append(s)
        ratios.append(b / s)
    print(
        f"{name:5s} batched {statistics.median(times_b):8.3f} s   "
        f"sequential {statistics.median(times_s):8.3f} s   "
        f"ratio median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200, help="steps per run (run mode)")
    parser.add_argument("--bare-steps", type=int, default=20, help="steps per timing (step)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=("step", "run"))
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_flush_denormal(True)
    cfg = critical_tanh(
        args.depth,
        args.width,
        args.batch,
        steps=args.steps,
        eval_every=args.steps,
        lr=0.01,
        replicas=args.replicas,
        device=args.device,
    )
    print(
        f"R={args.replicas} depth={args.depth} width={args.width} batch={args.batch} "
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    if args.only in (None, "step"):
        compare("step", *bare_steps(cfg, device, args.bare_steps), args.repeats)
    if args.only in (None, "run"):
        compare("run", *whole_runs(cfg), args.repeats)


if __name__ == "__main__":
    main()
