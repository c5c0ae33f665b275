"""How far a batched run's records are from the same run trained alone, in float32 and
float64.

Trains a group of R runs as one batched model and each run alone, and counts the recorded
values that differ and the largest relative difference. Cases: ``replicas=8`` of the main
line's depth-3 sigmoid net (one job's seeds); 8 seeds of the same net grouped as a batched
sweep groups jobs; 8 seeds of a depth-10 tanh net (batch 64); 8 runs of a depth-6 tanh
net that differ in seed, init and learning rate (a batched sweep's group). float64
records agree to 1e-9 by test; in float32 a batched matrix product may add in another
order than one run's, and this measures what happens on the machine at hand.

    python benchmarks/float32.py [--steps 300] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from depthlab.config import Config
from depthlab.data import Teacher
from depthlab.inits import Gaussian
from depthlab.records import read_metrics, replica_folders
from depthlab.train import Member, train, train_group


def cases(steps: int, device: str) -> dict[str, list[Config]]:
    main = Config(steps=steps, device=device)
    tanh = Config(depth=10, activation="tanh", steps=steps, batch_size=64, device=device)
    teacher = Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64)
    mixed = Config(depth=6, width=64, activation="tanh", steps=steps, batch_size=64, data=teacher)
    return {
        "replicas=8, depth 3, sigmoid": [dataclasses.replace(main, replicas=8)],
        "8 seeds, depth 3, sigmoid": [dataclasses.replace(main, seed=s) for s in range(8)],
        "8 seeds, depth 10, tanh": [dataclasses.replace(tanh, seed=s) for s in range(8)],
        "8 runs, depth 6, own seed, init and lr": [
            dataclasses.replace(
                mixed,
                seed=s,
                lr=0.05 * (s + 1),
                init=Gaussian(sigma_w2=1.0 + 0.25 * s, sigma_b2=0.05),
                device=device,
            )
            for s in range(8)
        ],
    }


def values(folder: Path) -> np.ndarray:
    frame = read_metrics(folder).drop(columns="run_id")
    return frame.sort_values(["step", "metric", "layer"])["value"].to_numpy()


def compare(configs: list[Config], folder: Path) -> tuple[int, int, float]:
    """(values, values that differ, largest relative difference) over the runs: one
    config with replicas (its seeds against runs of one seed each), or a group of configs."""
    if len(configs) == 1:
        job = configs[0]
        result = train(job, folder / "batched")
        batched = replica_folders(folder / "batched", [row["seed"] for row in result.rows])
        configs = [dataclasses.replace(job, seed=row["seed"], replicas=1) for row in result.rows]
    else:
        train_group([Member(c, folder / f"batched{i}") for i, c in enumerate(configs)])
        batched = [folder / f"batched{i}" for i in range(len(configs))]
    total = differ = 0
    worst = 0.0
    for i, cfg in enumerate(configs):
        train(cfg, folder / f"alone{i}")
        a, b = values(batched[i]), values(folder / f"alone{i}")
        other = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        total, differ = total + len(a), differ + int(other.sum())
        if other.any():
            relative = np.abs(a[other] - b[other]) / np.maximum(np.abs(b[other]), 1e-30)
            worst = max(worst, float(relative.max()))
    return total, differ, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="0: depthlab's choice")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(f"{args.steps} steps, {args.device}, threads={args.threads}, torch {torch.__version__}")
    for dtype in ("float32", "float64"):
        for name, configs in cases(args.steps, args.device).items():
            configs = [dataclasses.replace(c, dtype=dtype, threads=args.threads) for c in configs]
            with tempfile.TemporaryDirectory() as folder:
                total, differ, worst = compare(configs, Path(folder))
            print(
                f"{dtype}, {name}: {differ} of {total} values differ, "
                f"largest relative difference {worst:.2g}"
            )


if __name__ == "__main__":
    main()
