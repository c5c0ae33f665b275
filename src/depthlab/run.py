"""``python -m depthlab.run [-m] key=value ...``: the Hydra app that trains MLPs.

Compose, check, train: every job of the command line is checked before anything runs
(``depthlab.cli``), then each job trains one configuration (``depthlab.train``) into its
Hydra folder. A failed run is recorded and the sweep goes on; a summary table follows.
"""

from __future__ import annotations

import logging
import sys

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from depthlab.cli import EXIT_USAGE, check_command_line
from depthlab.config import register_configs, to_config
from depthlab.errors import ConfigError
from depthlab.train import train

log = logging.getLogger(__name__)
register_configs()


@hydra.main(config_path="pkg://depthlab.conf", config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float | None:
    """One job: train ``cfg`` into Hydra's output folder; returns the final training loss
    (the mean over replicas)."""
    hydra_cfg = HydraConfig.get()
    label = " ".join(hydra_cfg.overrides.task)
    try:
        result = train(to_config(cfg), hydra_cfg.runtime.output_dir, label=label)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except Exception:
        log.exception("run failed (%s); its records say status=failed", label or "defaults")
        if hydra_cfg.mode.name == "RUN":
            sys.exit(1)
        return None  # a sweep goes on with its next run
    for row in result.rows:
        log.info(
            "%s%s: %s, loss %.4g, test loss %.4g, %.1f s -> %s",
            label or "defaults",
            f" (seed {row['seed']})" if len(result.rows) > 1 else "",
            row["status"],
            row["final_loss"],
            row["final_test_loss"],
            row["wall_time_s"],
            result.run_dir,
        )
    return float(sum(row["final_loss"] for row in result.rows) / len(result.rows))


def main() -> None:
    """Check the whole command line, then hand it to Hydra.

    Flushing denormals is a per-thread flag that torch's worker threads copy when they
    start, so when every job asks the same it is set here, before any parallel op.
    """
    configs = check_command_line(sys.argv[1:])
    if configs and all(cfg.flush_denormal for cfg in configs):
        torch.set_flush_denormal(True)
    app()


if __name__ == "__main__":
    main()
