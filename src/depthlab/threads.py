"""How many intra-op threads a CPU run uses: ``threads=0`` (the default) picks the idle cores.

On a quiet machine a second thread made a 32-run batched step faster (0.56x-0.64x on this
project's 2-core machine) but a single narrow net's step no faster (0.84x-1.15x over two
sessions), and when another process keeps a core busy, every parallel op waits for the
thread that is not scheduled: the same steps ran 1.5x to 3.6x slower than with one thread
(``benchmarks/threads.py``). So a batch whose layers are small (under ``PARALLEL_FLOPS`` a
matrix product) uses one thread, and a bigger one samples, before it trains, how busy the
machine's cores are (without itself: it waits while sampling) and uses one thread per core
that is at least 75% idle, at least one.
Threads a launcher chose (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, as joblib's workers
get) and runs on a GPU keep torch's own setting; ``threads=N`` forces N. What ran is
recorded as ``threads_resolved``. The thread count did not change any recorded number in
this project's measurements (1 and 2 threads gave identical records).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

import torch

LAUNCHER_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SAMPLE_SECONDS = 0.1
IDLE_ENOUGH = 0.75  # a core counts when at least this share of it is idle
# FLOPs of a layer's matrix product (2 R B n^2) from which a second thread can pay: a
# 32-run batch at width 128 and batch 128 (134 MFLOP) gained, one run (4 MFLOP) did not
PARALLEL_FLOPS = 32 * 2**20


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """How many cores' worth of work the machine did over ``seconds`` (this process sleeps
    meanwhile, so it is the others' work), from /proc/stat; None where there is none."""
    try:
        first = _cpu_times()
        time.sleep(seconds)
        second = _cpu_times()
    except OSError:
        return None
    total = second[0] - first[0]
    idle = second[1] - first[1]
    if total <= 0:
        return None
    return (total - idle) / total * (os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int]:
    """(all, idle) jiffies since boot over all cores: idle counts idle and I/O wait."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


def resolve_threads(threads: int, device: torch.device, layer_flops: float = math.inf) -> int:
    """The intra-op threads for a run: ``threads`` when > 0; torch's current setting on a
    GPU or when a launcher set the thread variables; one when a layer's matrix product
    (``layer_flops``) is below ``PARALLEL_FLOPS``; else the idle cores (at least 1)."""
    if threads > 0:
        return threads
    if device.type != "cpu" or any(os.environ.get(v) for v in LAUNCHER_VARIABLES):
        return torch.get_num_threads()
    if layer_flops < PARALLEL_FLOPS:
        return 1
    busy = busy_cores()
    if busy is None:
        return torch.get_num_threads()
    cores = usable_cores()
    return max(1, min(cores, int(cores - busy + (1 - IDLE_ENOUGH))))


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` intra-op threads inside the block (0: leave torch's setting), and
    restore the previous count after it."""
    if threads <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
