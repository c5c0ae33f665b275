"""Finding a sweep's files: the run folders under a sweep's root and the metrics part files
of each run, from the folder listings alone.

What each entry is (file, folder, link, loop) comes with its folder's listing, which costs
no read per file (a ``stat`` per link). Links to folders are not followed while searching,
so no loop is walked and no run read twice. Whatever cannot be listed or is not what the
storage contract says is named in ``problems``, one line each: the path, then why.
:func:`in_threads` is the thread pool the readers of these files share.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from depthlab.records import METRICS_DIR, RUN_FILE

_PART_GLOB = re.compile(r"^part-.*\.parquet$")


def run_folders(root: Path, problems: list[str] | None = None) -> list[Path]:
    """The folders under ``root`` (``root`` included) that hold a run.parquet file (or a
    link to one), in natural order. Hidden folders and the contents of metrics folders are
    not searched, and links to folders are not followed. Named in ``problems`` (in natural
    order): each folder that cannot be listed, link to a folder, link that cannot be
    followed (a loop, a link to nothing), and run.parquet that is not a file. Only the
    listings are read: the kind of an entry that is no link comes with its folder's
    listing."""
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = [e for e in listing if not e.name.startswith(".")]
        except OSError as exc:  # unreadable, or gone since its parent was listed
            skipped.append((folder, f"the folder cannot be listed: {os_reason(exc)}"))
            continue
        for entry in entries:
            if entry.name == METRICS_DIR:
                continue
            path = Path(entry.path)
            try:
                kind = entry_kind(entry)
            except OSError as exc:
                skipped.append((path, f"a link that cannot be followed: {os_reason(exc)}"))
                continue
            if entry.name == RUN_FILE:
                if kind == _REGULAR:
                    found.append(folder)
                else:
                    skipped.append((path, f"{kind}, not a run file: the run is not read"))
            elif kind == _FOLDER:
                pending.append(path)
            elif kind == _LINKED_FOLDER:
                skipped.append((path, f"{kind}: not followed"))
    problems = [] if problems is None else problems
    skipped.sort(key=lambda item: _natural_key(item[0].relative_to(root)))
    problems += [f"{path}: {reason}" for path, reason in skipped]
    return sorted(found, key=lambda folder: _natural_key(folder.relative_to(root)))


_REGULAR, _FOLDER, _LINKED_FOLDER = "a file", "a folder", "a link to a folder"


def entry_kind(entry: os.DirEntry) -> str:
    """What a listed entry is: ``_REGULAR`` (a regular file or a link to one), ``_FOLDER``,
    ``_LINKED_FOLDER``, or another kind in words. Only a link costs a look (``stat``),
    which raises OSError for a loop, a link to nothing or an unreadable target."""
    if entry.is_file(follow_symlinks=False):
        return _REGULAR
    if entry.is_dir(follow_symlinks=False):
        return _FOLDER
    if entry.is_symlink():
        mode = entry.stat().st_mode
        if stat.S_ISREG(mode):
            return _REGULAR
        if stat.S_ISDIR(mode):
            return _LINKED_FOLDER
        return "a link to a special file (a pipe, socket or device)"
    return "a special file (a pipe, socket or device)"


def os_reason(exc: OSError) -> str:
    """An OS error in plain words, e.g. 'Permission denied' or 'Too many levels of symbolic
    links' (pyarrow's errors carry the errno, but a longer text)."""
    return os.strerror(exc.errno) if exc.errno else f"{type(exc).__name__}: {exc}"


def _natural_key(path: Path) -> tuple:
    """Sort folders 0, 1, 2, ..., 10 (not 0, 1, 10, 2), and seed=2 before seed=10: digit
    runs compare as numbers, and a folder named by a number comes before one named by text."""
    return tuple(
        tuple(
            (0, int(piece), piece) if piece.isdecimal() else (1, 0, piece)
            for piece in re.split(r"(\d+)", part)
            if piece
        )
        for part in path.parts
    )


def part_files(
    folders: list[Path], problems: list[str] | None = None
) -> tuple[list[Path], np.ndarray]:
    """Every ``metrics.parquet/part-*.parquet`` of the run ``folders`` that is a regular
    file (or a link to one), in run order then by name, and for each the index of its run
    in ``folders``. Named in ``problems``: a metrics.parquet that is not a folder or cannot
    be listed (a missing one is a run that has not flushed yet), and each part that is not
    a file (a folder, a loop of links). Only the listings are read, and a ``stat`` of each
    link, so that nothing but files reaches the scan."""
    problems = [] if problems is None else problems
    files, owners = [], []
    for index, folder in enumerate(folders):
        parts = _listed_parts(folder / METRICS_DIR, problems)
        files += parts
        owners += [index] * len(parts)
    return files, np.array(owners, dtype=np.int32)


def _listed_parts(metrics: Path, problems: list[str]) -> list[Path]:
    """The part files of one metrics folder, by name; what is wrong is named in
    ``problems``."""
    try:
        with os.scandir(metrics) as listing:
            entries = sorted((e for e in listing if _PART_GLOB.match(e.name)), key=_name)
    except FileNotFoundError:
        if os.path.islink(metrics):
            problems.append(f"{metrics}: a link to nothing: no metrics read")
        return []  # otherwise a run that has not flushed yet
    except NotADirectoryError:
        problems.append(f"{metrics}: not a folder of part files: no metrics read")
        return []
    except OSError as exc:
        problems.append(f"{metrics}: the folder cannot be listed: {os_reason(exc)}")
        return []
    parts = []
    for entry in entries:
        try:
            kind = entry_kind(entry)
        except OSError as exc:
            problems.append(f"{entry.path}: a link that cannot be followed: {os_reason(exc)}")
            continue
        if kind == _REGULAR:
            parts.append(Path(entry.path))
        else:
            problems.append(f"{entry.path}: {kind}, not a part file: not read")
    return parts


def _name(entry: os.DirEntry) -> str:
    return entry.name


def in_threads(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``function`` of each item, in a pool of ``pyarrow.cpu_count()`` threads when that is
    more than one (pyarrow releases the GIL)."""
    threads = min(pa.cpu_count(), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))
