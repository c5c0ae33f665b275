"""Cost of ``depthlab.watch``: a user's plain training loop against the same loop watched.

For depthlab.zoo's ConvNet1d and TransformerNet (default sizes) on MNIST-1D, batch 128,
SGD, float32, on the CPU with one thread by default. One process, one model per net, the
variants interleaved (A, B, C, D, A, B, C, D, ...): each repeat times a block of
``--steps`` steps of every variant, and the script prints each variant's median time per
step and the median (and range) over repeats of the ratio to the plain block beside it.

- ``plain``: the loop, no watch;
- ``default/50``: under ``watch(probes="default", every=50)``, the default schedule
  (steps 0, 50, 100, ... of the block probed), each block a fresh watch writing its records
  to a fresh temporary folder: opening the watch, the probed steps, the record writing and
  the closing (run.parquet) are all timed;
- ``full/50``: the same with ``probes="full"``;
- ``default/1``: every step probed (blocks of ``--probed-steps`` steps), so the cost of one
  probed step shows beside the plain step's.

    python benchmarks/watch_overhead.py [--repeats 11] [--steps 200] [--threads 1]
    python benchmarks/watch_overhead.py --profile conv  # cProfile of watched blocks

``--smoke`` runs every variant once on a few steps (the tests run it).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import logging
import platform
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import depthlab
from depthlab.data import load_data
from depthlab.dataset_mnist1d import MNIST1D
from depthlab.zoo import ConvNet1d, TransformerNet

NETS: dict[str, Callable[[], torch.nn.Module]] = {"conv": ConvNet1d, "transformer": TransformerNet}
EVERY = 50  # the default schedule's
# variant -> (probes, every) of its watch; None: the plain loop
VARIANTS: dict[str, tuple[str, int] | None] = {
    "plain": None,
    "default/50": ("default", EVERY),
    "full/50": ("full", EVERY),
    "default/1": ("default", 1),
}
GOAL = 1.10  # the bound on default/50 against plain


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nets", default="conv,transformer", help="comma-separated: conv,transformer"
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200, help="steps per block")
    parser.add_argument("--probed-steps", type=int, default=20, help="steps per default/1 block")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--profile", choices=sorted(NETS), help="cProfile watched blocks")
    parser.add_argument("--smoke", action="store_true", help="each variant once, a few steps")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.probed_steps, args.repeats = 3, 2, 1
    return args


class Loop:
    """A user's SGD loop on one net: ``block(n, probes, every)`` trains n steps on the next
    batches of MNIST-1D, under a fresh watch in a fresh folder unless ``probes`` is None,
    and returns the seconds it took (watch opened, records written and closed included)."""

    def __init__(self, net: str, batch: int, lr: float) -> None:
        data = load_data(MNIST1D(), torch.device("cpu"), torch.float32)
        count = data.x_train.shape[0] // batch
        self.batches = [
            (data.x_train[i * batch : (i + 1) * batch], data.y_train[i * batch : (i + 1) * batch])
            for i in range(count)
        ]
        torch.manual_seed(0)
        self.model = NETS[net]()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.done = 0
        self.watched = ""  # what the last watch recorded and left out

    def train_step(self) -> torch.Tensor:
        x, y = self.batches[self.done % len(self.batches)]
        self.done += 1
        loss = F.cross_entropy(self.model(x), y)  # the batch mean
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss

    def block(self, steps: int, watched: tuple[str, int] | None) -> float:
        if watched is None:
            start = time.perf_counter()
            for _ in range(steps):
                self.train_step()
            return time.perf_counter() - start
        probes, every = watched
        with tempfile.TemporaryDirectory() as folder:  # made and removed outside the timing
            start = time.perf_counter()
            with depthlab.watch(self.model, Path(folder) / "run", probes=probes, every=every) as w:
                for _ in range(steps):
                    w.step(self.train_step())
            seconds = time.perf_counter() - start
        self.watched = f"{len(w.layers)} layers recorded, {len(w.skipped)} modules left out"
        return seconds


def block_lengths(args: argparse.Namespace) -> dict[str, int]:
    return {name: args.steps for name in VARIANTS} | {"default/1": args.probed_steps}


def interleaved(loop: Loop, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per step of each variant, one block of each per repeat, after a warm-up."""
    lengths = block_lengths(args)
    for name, watched in VARIANTS.items():  # warm up every path once
        loop.block(min(3, lengths[name]), watched)
    # watch names the modules it leaves out once per watch: said once here, not per block
    logging.getLogger("depthlab.watch").setLevel(logging.ERROR)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, watched in VARIANTS.items():
            times[name].append(loop.block(lengths[name], watched) / lengths[name])
    return times


def report(net: str, times: dict[str, list[float]], lengths: dict[str, int]) -> None:
    """One line per variant: median ms/step, median ratio to plain (range over repeats);
    then the watched blocks' extra time split into a fixed cost per watch (opening, the
    first pass finding the layers, closing) and a cost per probed step, from the medians
    of the default/50 and default/1 blocks (extra = fixed + probed steps x per step), and
    the ratio of a run so long that the fixed cost vanishes: 1 + (per step / plain) / EVERY."""
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        ratios = [v / p for v, p in zip(values, times["plain"], strict=True)]
        print(
            f"  {name:>10}: {median[name] * 1e3:7.2f} ms/step, ratio "
            f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        )
    sparse, dense = lengths["default/50"], lengths["default/1"]
    probed = len(range(0, sparse, EVERY))
    extra = {n: (median[n] - median["plain"]) * lengths[n] for n in ("default/50", "default/1")}
    if dense > probed:
        per_step = (extra["default/1"] - extra["default/50"]) / (dense - probed)
        fixed = extra["default/50"] - probed * per_step
        steps = per_step / median["plain"]
        print(
            f"  a probed step: {per_step * 1e3:+.2f} ms ({steps:.2f} plain steps); a watch's "
            f"fixed cost: {fixed * 1e3:+.1f} ms; probed steps a block: {probed}; a long run "
            f"probed every {EVERY}th step: {1 + steps / EVERY:.3f}x"
        )
    ratio = statistics.median(
        v / p for v, p in zip(times["default/50"], times["plain"], strict=True)
    )
    print(f"  default schedule {'within' if ratio <= GOAL else 'ABOVE'} the {GOAL:.2f}x goal")


def profile(loop: Loop, args: argparse.Namespace) -> None:
    """cProfile of ``--repeats`` watched blocks at the default schedule: depthlab's functions
    by cumulative time, then every function by its own time."""
    loop.block(3, VARIANTS["default/50"])
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.repeats):
        loop.block(args.steps, VARIANTS["default/50"])
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(r"watch|records|provenance|layer_stats", 40)
    stats.sort_stats("tottime").print_stats(25)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo where there is one)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line]
    return names[0] if names else platform.machine()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    nets = [n.strip() for n in args.nets.split(",")]
    if args.profile:
        return profile(Loop(args.profile, args.batch, args.lr), args)
    print(
        f"{datetime.date.today()}, {cpu_name()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
        f"blocks of {args.steps} steps ({args.probed_steps} for default/1), "
        f"{args.repeats} repeats"
    )
    for net in nets:
        loop = Loop(net, args.batch, args.lr)
        times = interleaved(loop, args)
        print(f"{net}: {type(loop.model).__name__}, {loop.watched}")
        report(net, times, block_lengths(args))
    return None


if __name__ == "__main__":
    main()
