"""Composing a sweep's jobs: Hydra's full composition per job against depthlab's composer
(one composition per set of group choices, each job's values applied as Hydra applies them).

Times both on the same jobs, alternating, in one process, and checks they give the same
configs: ``--jobs`` jobs of ``init=gaussian init.sigma_w2=... seed=0,1,2,3``.

    python benchmarks/compose.py [--jobs 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from depthlab.cli import CONFIG_MODULE, CONFIG_NAME
from depthlab.composing import JobComposer
from depthlab.config import register_configs, to_config


def jobs(count: int) -> list[list[str]]:
    return [
        ["init=gaussian", f"init.sigma_w2={1 + 0.01 * (i // 4):.2f}", f"seed={i % 4}"]
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    register_configs()
    todo = jobs(args.jobs)
    times: dict[str, list[float]] = {"hydra": [], "composer": []}
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for _ in range(args.repeats):
            start = time.perf_counter()
            full = [to_config(compose(CONFIG_NAME, overrides=job)) for job in todo]
            times["hydra"].append(time.perf_counter() - start)
            start = time.perf_counter()
            composer = JobComposer(loader, lambda first: compose(CONFIG_NAME, overrides=first))
            fast = [to_config(composer(job)) for job in todo]
            times["composer"].append(time.perf_counter() - start)
            assert fast == full
    hydra_s, composer_s = (statistics.median(times[k]) for k in ("hydra", "composer"))
    print(
        f"{args.jobs} jobs, medians of {args.repeats}: Hydra's compose {hydra_s:.1f} s, "
        f"depthlab's composer {composer_s:.2f} s (the same configs): {hydra_s / composer_s:.0f}x"
    )


if __name__ == "__main__":
    main()
