"""The range of every numeric key, and why its upper bound is where it is.

:data:`LIMITS` maps each numeric key, named as on the command line (``width``, and
``init.gain`` for the field ``gain`` of any ``init`` option), to a :class:`Limit`.
:func:`check_limits` walks a config's fields, groups included, and raises a ConfigError
naming the key, the value and the range for the first value outside its limit, so a
typo'd exponent (``steps=1e12``, ``lr=1e308``) is refused before any work instead of
dying of MemoryError or overflow in training. A test checks that every numeric field of
the config and of every registered option has a limit, so a new option's new field needs
one line here. What fits a device (width and depth and replicas together) is decided by
the memory estimate of ``depthlab.resources``; these bounds are per key.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields, is_dataclass

from depthlab.errors import ConfigError

INT64_MAX = 2**63 - 1
MAX_SAMPLES = 10**7  # samples in a data set: 10^7 x 64 features are 5 GB in float64
MAX_STEPS = 10**9


@dataclass(frozen=True)
class Limit:
    """``low <= value <= high`` (``low < value`` when ``open_low``), an integer when
    ``integer``; ``why``: the reason for ``high``, shown when a value is refused."""

    low: float
    high: float
    why: str
    integer: bool = False
    open_low: bool = False

    def allowed(self) -> str:
        """The range in words: 'an integer in 1..1000' or 'a number in (0, 1e+06]'."""
        if self.integer:
            return f"an integer in {int(self.low)}..{int(self.high)}"
        return f"a number in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value) or 0 < abs(value) < sys.float_info.min:
            return False  # subnormal: flushed to 0 where denormals are flushed
        above_low = value > self.low if self.open_low else value >= self.low
        return above_low and value <= self.high


def _count(low: int, high: int, why: str) -> Limit:
    return Limit(low, high, why, integer=True)


_SAMPLES = "a data set of 10^7 samples of 64 features is 5 GB in float64"
_DATA_SEED = "NumPy's and scikit-learn's generators take seeds below 2^32"
_VARIANCE = "a weight or bias variance of 1e4 already saturates or overflows every activation"
_WIDE = "a 65536-wide layer holds 4.3e9 weights, 17 GB in float32"

LIMITS: dict[str, Limit] = {
    "depth": _count(1, 1000, "the theory and the studies are checked to 1000 layers"),
    "width": _count(1, 65536, _WIDE),
    "branch_scale": Limit(-1e3, 1e3, "beyond |alpha| = 1e3 a few blocks overflow float32"),
    "lr": Limit(0, 1e6, "an update of 1e6 x the gradient already diverges at once", open_low=True),
    "batch_size": _count(1, MAX_SAMPLES, _SAMPLES),
    "steps": _count(
        0, MAX_STEPS, "each step logs a batch_loss row: 1e9 steps are tens of GB of records"
    ),
    "eval_every": _count(1, MAX_STEPS, "steps is at most 1e9: a longer interval means never"),
    "seed": _count(0, 2**62, "seeds and seed + replicas fit the records' int64 column"),
    "replicas": _count(1, 1024, "a batched model of 1024 seeds; sweep seed=... for more"),
    "threads": _count(0, 1024, "more threads than cores only contend"),
    "flush_seconds": Limit(0, 86400, "a kill loses what was not flushed: at most a day"),
    "lock_timeout": Limit(0, 604800, "a week: longer waits belong in a job queue"),
    "init.sigma_w2": Limit(0, 1e4, _VARIANCE),
    "init.sigma_b2": Limit(0, 1e4, _VARIANCE),
    "init.std": Limit(0, 1e2, "a weight standard deviation of 100 already overflows deep nets"),
    "init.gain": Limit(
        0, 1e2, "a gain of 100 multiplies each layer's output 100-fold", open_low=True
    ),
    "init.negative_slope": Limit(0, 1e2, "leaky slopes above 1 are no longer leaky"),
    "optimizer.weight_decay": Limit(0, 1e3, "a decay of 1e3 x lr per step erases any weight"),
    "optimizer.momentum": Limit(0, 0.999999, "momentum 1 never forgets a gradient"),
    "optimizer.beta1": Limit(0, 0.999999, "beta1 = 1 never updates the first moment"),
    "optimizer.beta2": Limit(0, 0.999999, "beta2 = 1 never updates the second moment"),
    "optimizer.eps": Limit(0, 1e3, "an eps of 1e3 turns Adam into SGD with lr/1e3", open_low=True),
    "probes.every": _count(0, MAX_STEPS, "steps is at most 1e9"),
    "probes.log_points": _count(0, 10**4, "each log point is a probed step held in memory"),
    "probes.costly_every": _count(0, MAX_STEPS, "steps is at most 1e9"),
    "batching.max": _count(1, 65536, "far above the runs any device holds at once"),
    "batching.memory_fraction": Limit(0, 1, "a fraction of the device's memory", open_low=True),
    "data.seed": _count(0, 2**32 - 1, _DATA_SEED),
    "data.num_samples": _count(
        20, 10**6, "MNIST-1D makes about 4,000 samples a second: 10^6 take 4 minutes"
    ),
    "data.train_split": Limit(0, 1, "a fraction of the samples", open_low=True),
    "data.test_fraction": Limit(0, 1, "a fraction of the samples", open_low=True),
    "data.num_train": _count(1, MAX_SAMPLES, _SAMPLES),
    "data.num_test": _count(1, MAX_SAMPLES, _SAMPLES),
    "data.noise": Limit(0, 1e6, "noise 1e6 times the targets' scale leaves no signal"),
    "data.in_dim": _count(1, 65536, _WIDE),
    "data.num_outputs": _count(1, 65536, _WIDE),
    "data.depth": _count(0, 1000, "the teacher is a network like the student: 1000 layers"),
    "data.width": _count(1, 65536, _WIDE),
    "data.sigma_w2": Limit(0, 1e4, _VARIANCE),
    "data.sigma_b2": Limit(0, 1e4, _VARIANCE),
}


def numeric_keys(obj: object) -> list[tuple[str, object]]:
    """(key, value) of every numeric field of the Config ``obj`` and of its group options
    (``init.gain``), named as on the command line."""
    found = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            found += [(f"{f.name}.{key}", v) for key, v in numeric_keys(value)]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((f.name, value))
    return found


def check_limits(obj: object, prefix: str = "") -> None:
    """Raise ConfigError for the first numeric key of ``obj`` (a Config, or with ``prefix``
    such as ``init.`` a group option) outside its limit, or without one (a field added
    without its line in LIMITS)."""
    for name, value in numeric_keys(obj):
        key = f"{prefix}{name}"
        limit = LIMITS.get(key)
        if limit is None:
            raise ConfigError(key, value, "a key with a limit in depthlab.limits", "no limit")
        if not limit.holds(value):
            above = value > limit.high  # NaN compares False: "out of range"
            allowed = f"{limit.allowed()} ({limit.why})" if above else limit.allowed()
            reason = "too large" if above else "out of range"
            if 0 < abs(value) < sys.float_info.min:
                reason = "a subnormal number, which flushing denormals turns into 0"
                allowed += f", and 0 or at least {sys.float_info.min:.3g} in size"
            raise ConfigError(key, value, allowed, reason)


def main() -> None:
    """``python -m depthlab.limits``: every numeric key, its range and why."""
    for key, limit in LIMITS.items():
        print(f"{key:26} {limit.allowed():32} {limit.why}")


if __name__ == "__main__":
    main()
