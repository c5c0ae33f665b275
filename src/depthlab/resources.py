"""What a run needs of a device's memory, estimated from its config, and what a device has.

The estimate counts, per run (one replica of a batched model), in the run's dtype:

- parameters P = sum over layers of fan_in fan_out + fan_out (+ 2 width per normalised
  layer), held 5 + 2s times, with s the optimiser's state tensors (0 for SGD, 1 for
  momentum, 2 for Adam): the parameters, the optimiser's flat gradient buffer, autograd's
  gradients twice (a captured CUDA graph keeps its own beside the eager steps'), the state,
  and the copy of parameters and state saved while a CUDA graph is recorded;
- training activations: about 4 tensors of B x width per layer kept for the backward pass
  (a^{l-1}, z^l, phi's output and a gradient in flight), twice (graph and eager);
- probes: the captured pass keeps 5 tensors of B x width per layer, and their reductions
  stack copies of them: 10 in all, counted only when probes are on (the costly probes,
  jacobian and curvature, need more at the few steps they run: not counted);
- evaluation: a chunk of up to ``EVAL_CHUNK`` samples through the widest layer, 4 tensors.

It is an upper-side estimate for sizing batched models, not a measurement: the caching
allocator, the CUDA graph's private pool (a second copy of the training activations) and
the data set (shared by all runs) come on top, which is why a batched model is allowed only
a fraction of the memory (``batching.memory_fraction``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from depthlab.config import DTYPES, Config, resolve_device
from depthlab.errors import ResourceError
from depthlab.probes import probe_names

EVAL_CHUNK = 8192  # samples per forward pass when evaluating a whole set (train.evaluate)
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}
# Metric rows a probe logs per layer and probed step, rounded up from a depth-5 run: at
# most 5 for every probe but the histogram (141: its bins).
ROWS_PER_PROBE = {"histogram": 150}
ROWS_PER_OTHER_PROBE = 5
MAX_RECORD_ROWS = 10**9  # per run: load_sweep holds about 40 bytes a row in memory
BYTES_PER_ROW = 12  # a metric row on disk, compressed (measured: 4-9 bytes; rounded up)
PART_FILE_BYTES = 4096  # a part file takes at least a 4 kB block (its content: about 2 kB)
# Host copies made while loading a data set (generated, float64, standardised), 8 bytes each
DATA_COPIES = 3


def run_bytes(cfg: Config, num_inputs: int, num_outputs: int, num_train: int) -> int:
    """Estimated bytes one run of ``cfg`` holds on its device at its peak (see above)."""
    itemsize = torch.empty((), dtype=DTYPES[cfg.dtype]).element_size()
    widths = [num_inputs] + [cfg.width] * cfg.depth + [num_outputs]
    params = sum(i * o + o for i, o in itertools.pairwise(widths))
    if cfg.norm != "none":
        params += 2 * cfg.width * cfg.depth
    copies = 5 + 2 * OPTIMIZER_STATES.get(cfg.optimizer.name, 2)
    batch = min(cfg.batch_size, num_train)
    units = sum(widths[1:])
    activations = 8 * batch * units
    if cfg.probes.names:
        activations += 10 * batch * units
    evaluation = 4 * min(EVAL_CHUNK, max(num_train, 1)) * max(widths)
    return itemsize * (copies * params + activations + evaluation)


def device_bytes(device: torch.device) -> int | None:
    """The memory of ``device``: a CUDA device's total, the machine's physical memory for
    the CPU; None where it cannot be told (no such device here)."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def split(
    sizes: Sequence[int], max_runs: int, per_run: int, capacity: int | None
) -> list[list[int]]:
    """Cut members (``sizes[i]`` runs each, in order) into consecutive chunks of at most
    ``max_runs`` runs and ``capacity`` bytes at ``per_run`` bytes a run, as evenly as that
    allows: the number of chunks is the least that fits, and each takes about the same
    share. A member is never cut; one larger than the limit is a chunk of its own."""
    limit = max_runs
    if capacity is not None and per_run > 0:
        limit = max(1, min(limit, capacity // per_run))
    total = sum(sizes)
    count = -(-total // limit) if total else 0  # the fewest chunks that fit
    chunks: list[list[int]] = []
    current = placed = 0
    for i, size in enumerate(sizes):
        target = -(-len(chunks) * total // count) if count else 0  # runs placed by now
        if chunks and current + size <= limit and placed + size <= target:
            chunks[-1].append(i)
            current += size
        else:
            chunks.append([i])
            current = size
        placed += size
    return chunks


@dataclass(frozen=True)
class Estimate:
    """What a job (one config, all its replicas) needs, from its config alone."""

    run_bytes: int  # one run (replica) on the device: :func:`run_bytes`
    data_bytes: int  # the data set: making it, host copies while loading, the device's
    probed_steps: int  # steps at which the probes run
    record_rows: int  # metric rows one run writes: batch losses, evaluations, probes

    def job_bytes(self, replicas: int) -> int:
        return replicas * self.run_bytes + self.data_bytes


def estimate(cfg: Config) -> Estimate:
    """The :class:`Estimate` of ``cfg``: sizes from ``cfg.data.sizes()`` (no data are made),
    the probe schedule counted without listing it."""
    num_inputs, num_outputs, num_train, num_test = cfg.data.sizes()
    itemsize = torch.empty((), dtype=DTYPES[cfg.dtype]).element_size()
    samples = num_train + num_test
    data = samples * (num_inputs * (DATA_COPIES * 8 + itemsize) + 8 * num_outputs)
    data += cfg.data.making_bytes()
    probed = len(cfg.probes.steps(cfg.steps))
    evaluations = cfg.steps // cfg.eval_every + 2
    names = probe_names(cfg.probes.names) if cfg.probes.names else []
    per_layer = sum(ROWS_PER_PROBE.get(name, ROWS_PER_OTHER_PROBE) for name in names)
    rows = cfg.steps + 4 * evaluations + probed * (cfg.depth + 1) * per_layer
    per_run = run_bytes(cfg, num_inputs, num_outputs, num_train)
    return Estimate(per_run, data, probed, rows)


def check_fits(cfg: Config, here: bool = True) -> Estimate:
    """Raise ResourceError, naming the keys that size the job and the estimate, when one run
    would write more than ``MAX_RECORD_ROWS`` metric rows, or (``here``: the job runs on
    this machine) the job needs more than the memory of its device here."""
    need = estimate(cfg)
    if need.record_rows > MAX_RECORD_ROWS:
        keys = {"steps": cfg.steps, "eval_every": cfg.eval_every, "probes": cfg.probes.name}
        keys.update({"probes.every": cfg.probes.every, "depth": cfg.depth})
        raise ResourceError(
            keys,
            f"a run would write about {need.record_rows:.2g} metric rows",
            f"at most {MAX_RECORD_ROWS:.0e} rows a run (fewer steps, probed steps or layers)",
        )
    device = resolve_device(cfg.device) if here else None
    have = device_bytes(device) if device is not None else None
    wanted = need.job_bytes(cfg.replicas)
    if have is not None and wanted > have:
        keys = {k: getattr(cfg, k) for k in ("depth", "width", "replicas", "batch_size")}
        keys.update(dtype=cfg.dtype, data=cfg.data.name)
        default = type(cfg.data)()
        keys.update(
            (f"data.{f.name}", getattr(cfg.data, f.name))
            for f in fields(cfg.data)
            if getattr(cfg.data, f.name) != getattr(default, f.name)
        )
        raise ResourceError(
            keys,
            f"needs about {size_text(wanted)} of memory (data {size_text(need.data_bytes)}, "
            f"{cfg.replicas} x {size_text(need.run_bytes)} a run); the {device.type} here "
            f"has {size_text(have)}",
            "a job within the device's memory (smaller width, depth, replicas or data)",
        )
    return need


def size_text(count: int) -> str:
    """Bytes in words: '3.2 GB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} B"


def records_bytes(cfg: Config) -> int:
    """About the disk space the records of ``cfg``'s runs take (all its replicas): the rows,
    and a part file's own size at every evaluation (where a flush may happen)."""
    evaluations = cfg.steps // cfg.eval_every + 2
    rows = estimate(cfg).record_rows * BYTES_PER_ROW
    return cfg.replicas * (rows + evaluations * PART_FILE_BYTES)
