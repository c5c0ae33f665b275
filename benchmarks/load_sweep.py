"""Wall time and peak memory of ``load_sweep`` on a large synthetic sweep.

Writes a sweep shaped like a real one with the project's own writer (``RunRecorder``):
``--jobs`` Hydra job folders, each with ``--replicas`` sub-runs ``JOB/seed=S/`` (1000 runs
by default), each run with ``--layers`` x ``--metrics`` rows at ``--steps`` probed steps
(10,000 rows a run, about 10 million in all), flushed as ``--parts`` part files, and a
``run.parquet`` row of about 60 columns like ``train`` writes. Then loads it ``--repeats``
times, each in a fresh Python process (no warm caches inside Python; the OS page cache stays
warm), and prints the median and range of the wall time of ``load_sweep``, the peak
resident set size of the process (and its size before loading), and the size of the frames
it returned: all metrics, one metric (``--only``), and ``metrics=False``, interleaved.
``--slow-path`` also times one load with a part file cut in half (the file by file
fallback), and ``--baseline`` the former loader, which read and validated each run's
files one by one and concatenated per-run frames.

    OMP_NUM_THREADS=1 python benchmarks/load_sweep.py [FOLDER] [--repeats 5] [--baseline]

FOLDER is kept, and reused when it already holds a sweep (the size options are then
ignored); without it a temporary folder is used and removed. The numbers depend on the
threads pyarrow may use (``pyarrow.cpu_count()``, which follows OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from depthlab.records import METRICS_DIR, RUN_FILE, RunRecorder

METRICS = (
    "delta_norm",
    "delta_mean_abs",
    "delta_underflow",
    "delta_nonfinite",
    "weight_grad_norm",
    "bias_grad_norm",
    "weight_norm",
    "activation_mean",
    "activation_std",
    "saturated_fraction",
)


def run_row(job: int, seed: int, depth: int) -> dict:
    """A run.parquet row with the columns ``train.record_row`` writes (values made up)."""
    init = ("he", "xavier", "orthogonal", "scaled_branches")[job % 4]
    row = {
        "run_id": f"{job:05d}s{seed:02d}",
        "depth": depth,
        "width": 128,
        "activation": ("relu", "tanh")[job % 2],
        "output_activation": "none",
        "init": init,
        "init.sigma_b2": 0.0,
        "init.sigma_w2": 1.0 + (job % 7) / 3,
        "residual": init == "scaled_branches",
        "branch_scale": 1.0,
        "norm": "none",
        "data": "mnist1d",
        "data.standardize": True,
        "data.seed": 42,
        "data.num_samples": 5000,
        "data.train_split": 0.8,
        "loss": "auto",
        "optimizer": "sgd",
        "optimizer.weight_decay": 0.0,
        "lr": 10.0 ** -(1 + job % 4),
        "batch_size": 128,
        "steps": 1000,
        "eval_every": 100,
        "seed": seed,
        "device": "auto",
        "dtype": "float32",
        "probes": "default",
        "probes.names": ["delta", "grads", "activations"],
        "probes.every": 100,
        "probes.log_points": 0,
        "probes.costly_every": 0,
        "flush_denormal": True,
        "study": "benchmark",
        "loss_resolved": "cross_entropy",
        "device_resolved": "cpu",
        "device_name": "x86_64",
        "denormals_flushed": 1.0,
        "threads": 1,
        "started_at": "2026-11-27T00:00:00+00:00",
        "python_version": platform.python_version(),
    }
    if init == "orthogonal":  # options differ in their fields, so runs differ in columns
        row["init.gain"] = 1.0
    for name in ("depthlab", "torch", "numpy", "hydra", "omegaconf", "pandas", "pyarrow"):
        row[f"{name}_version"] = "0.0.0"
    return row


def write_run(run_dir: Path, job: int, seed: int, args: argparse.Namespace) -> None:
    """One run's records: ``args.steps`` probed steps of every metric at every layer, in
    ``args.parts`` part files, then the finished run.parquet."""
    rng = np.random.default_rng(job * 1000 + seed)
    recorder = RunRecorder(run_dir, run_row(job, seed, args.layers), seed)
    layers = np.arange(1, args.layers + 1)
    steps = np.arange(args.steps) * 100
    for chunk in np.array_split(steps, args.parts):
        for step in chunk:
            for metric in METRICS[: args.metrics]:
                recorder.log(int(step), layers, metric, rng.lognormal(size=len(layers)))
        recorder.flush()
    recorder.finish("ok", steps_done=int(steps[-1]), final_loss=float(rng.random()))


def write_sweep(root: Path, args: argparse.Namespace) -> None:
    """The synthetic sweep: ``JOB/seed=S/`` run folders under ``root``."""
    for job in range(args.jobs):
        for seed in range(args.replicas):
            write_run(root / str(job) / f"seed={seed}", job, seed, args)


def load_per_file(root: Path) -> tuple:
    """The former loader: each run's run.parquet and part files read and validated alone."""
    import pandas as pd

    from depthlab.records import read_metrics, read_run

    runs, frames = [], []
    for run_file in sorted(root.rglob(RUN_FILE)):
        runs.append(read_run(run_file.parent))
        frames.append(read_metrics(run_file.parent))
    return pd.DataFrame(runs), pd.concat(frames, ignore_index=True)


def measure(root: Path, variant: str) -> dict:
    """Load ``root`` once in this process: wall seconds, peak RSS and frame sizes."""
    from depthlab.results import load_sweep

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    if variant == "baseline":
        runs, metrics = load_per_file(root)
        problems: list[str] = []
    else:
        selection = {"all": True, "none": False}.get(variant, [variant])
        sweep = load_sweep(root, metrics=selection)
        runs, metrics, problems = sweep.runs, sweep.metrics, sweep.problems
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mib": before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": len(runs),
        "rows": len(metrics),
        "frame_mib": metrics.memory_usage(deep=True).sum() / 2**20,
        "problems": len(problems),
    }


def in_fresh_process(root: Path, variant: str) -> dict:
    """:func:`measure` in a new Python process, so that no run sees another's memory."""
    command = [sys.executable, __file__, str(root), "--measure", variant]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name: str, results: list[dict]) -> str:
    """One line: median and range of the wall time, median CPU time, peak RSS and the
    size of the frame."""
    walls = [r["wall_s"] for r in results]
    last = results[-1]
    return (
        f"{name:>15}: {statistics.median(walls):6.2f} s median "
        f"({min(walls):.2f}-{max(walls):.2f}, n={len(walls)}), "
        f"CPU {statistics.median(r['cpu_s'] for r in results):.2f} s, "
        f"peak RSS {max(r['peak_rss_mib'] for r in results):5.0f} MiB "
        f"(at start {last['rss_before_mib']:.0f}), {last['runs']} runs, "
        f"{last['rows']:,} rows, frame {last['frame_mib']:.0f} MiB, "
        f"{last['problems']} problems"
    )


def machine() -> str:
    """The CPU model, the threads pyarrow may use, and the library versions."""
    import pandas as pd
    import pyarrow as pa

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0].split(":", 1)[1].strip() if names else model
    return (
        f"{model}, {os.cpu_count()} cores, pyarrow.cpu_count()={pa.cpu_count()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}"
    )


def slow_path(root: Path) -> dict:
    """One load with a part file cut in half, which sends the metrics through the file by
    file fallback; the file is restored afterwards."""
    victim = next((root / "0" / "seed=0" / METRICS_DIR).glob("part-*.parquet"))
    data = victim.read_bytes()
    try:
        victim.write_bytes(data[: len(data) // 2])
        return in_fresh_process(root, "all")
    finally:
        victim.write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="sweep folder (default: temporary)")
    parser.add_argument("--jobs", type=int, default=250)
    parser.add_argument("--replicas", type=int, default=4, help="seed=S sub-runs per job")
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--metrics", type=int, default=10, choices=range(1, len(METRICS) + 1))
    parser.add_argument("--steps", type=int, default=10, help="probed steps per run")
    parser.add_argument("--parts", type=int, default=5, help="part files per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="delta_norm", help="the metric of the filtered load")
    parser.add_argument("--baseline", action="store_true", help="also time the former loader")
    parser.add_argument("--slow-path", action="store_true", help="also time a load with a bad file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one load, in a subprocess
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.folder, args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        if not (root / "0" / "seed=0" / RUN_FILE).exists():
            start = time.perf_counter()
            write_sweep(root, args)
            print(f"wrote {args.jobs * args.replicas} runs in {time.perf_counter() - start:.0f} s")
        print(machine())
        print(f"sweep at {root}: {sum(1 for _ in root.rglob('part-*.parquet'))} part files")
        variants = {"all metrics": "all", f"only {args.only}": args.only, "metrics=False": "none"}
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.repeats):  # interleaved, so that a busy spell hits all alike
            for name, variant in variants.items():
                results[name].append(in_fresh_process(root, variant))
        if args.slow_path:
            results["one bad file"] = [slow_path(root)]
        if args.baseline:
            results["former loader"] = [in_fresh_process(root, "baseline")]
        for name, measured in results.items():
            print(report(name, measured))


if __name__ == "__main__":
    main()
