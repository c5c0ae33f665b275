"""An on-disk cache of generated arrays, so a data set is made once per machine, not once
per process (MNIST-1D takes 1-2 s to generate; reading it back takes milliseconds).

Entries are ``.npz`` files named by what made them (a name and a key: the generator's
parameters and version), read without pickling and written atomically (a temporary file,
then a rename), so concurrent jobs never see half a file. The folder is
``$DEPTHLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/depthlab``, else ``~/.cache/depthlab``.
A cache that cannot be read or written is skipped: the arrays are made again, never lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "DEPTHLAB_CACHE_DIR"


def cache_dir() -> Path:
    """Where cached arrays live (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "depthlab"


def cached_arrays(
    name: str, key: dict, make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays ``make()`` returns for ``key``, from the cache when an entry exists."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / f"{name}-{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    except FileNotFoundError:
        pass
    except Exception as exc:  # a damaged entry: make it again (and replace it)
        log.warning("cache entry %s unreadable (%s): making it again", path, exc)
    arrays = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            np.savez(tmp, **arrays)
        os.replace(tmp.name, path)
    except OSError as exc:
        log.debug("cache %s not written: %s", path, exc)
        if "tmp" in locals():
            Path(tmp.name).unlink(missing_ok=True)
    return arrays
