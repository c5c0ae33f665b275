"""One writer per run folder: an exclusive lock taken before a run writes anything.

A run folder's lock is the hidden file ``.depthlab.lock`` in it, locked with ``flock``
(the kernel's advisory lock, on Linux also over NFS): the lock belongs to the open file,
so it is released when the process ends in any way, SIGKILL included, and a lock file a
dead process left behind is simply taken again (nothing to clean up). The holder writes
who it is into the file (process id, host, start time, command), so a second command
aimed at the same folder can say who is writing there. Readers never lock: records are
written atomically (``depthlab.records``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

LOCK_FILE = ".depthlab.lock"
POLL_SECONDS = 0.05
# A holder_of() call takes the lock shared for an instant: a writer waits at least this
# long before it calls a folder taken, so a reader is never mistaken for a writer.
MIN_WAIT_SECONDS = 0.5


class FolderLockedError(RuntimeError):
    """A run folder that another process is writing; the message names it and the holder."""

    def __init__(self, folder: Path, holder: str, message: str = "") -> None:
        self.folder = folder
        self.holder = holder
        super().__init__(
            message
            or f"{folder} is being written by {holder}; wait for it to finish, or set "
            "lock_timeout=SECONDS to wait"
        )


def _unusable(folder: Path, exc: OSError) -> FolderLockedError:
    """A lock file that is a symlink, a FIFO or a device: never written through."""
    return FolderLockedError(
        folder,
        "",
        f"{folder / LOCK_FILE} is not a regular file ({exc.strerror or exc}); remove it "
        "to run in this folder",
    )


def holder_of(folder: Path | str) -> str | None:
    """Who holds ``folder``'s lock now ('process 123 on host since TIME: COMMAND'), or None
    when nobody does (no lock file, or one left by a process that has ended);
    FolderLockedError when the lock file is not a regular file."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = _open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _unusable(Path(folder), exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(os.read(fd, 4096))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_until_free(folder: Path | str, timeout: float) -> str | None:
    """Wait up to ``timeout`` seconds for nobody to hold ``folder``'s lock: None when
    free, else its holder (see :func:`holder_of`). Takes no lock."""
    deadline = time.monotonic() + timeout
    while (holder := holder_of(folder)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return holder


@contextlib.contextmanager
def locked(folders: Sequence[Path], timeout: float = 0.0) -> Iterator[None]:
    """Hold the lock of every folder of ``folders`` (created if missing) inside the block.
    A folder another process holds raises FolderLockedError at once (``timeout`` 0), or after
    waiting up to ``timeout`` seconds for it; locks taken before are released."""
    with contextlib.ExitStack() as stack:
        for folder in folders:
            stack.enter_context(_locked(Path(folder), timeout))
        yield


@contextlib.contextmanager
def _locked(folder: Path, timeout: float) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = _open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise _unusable(folder, exc) from None
    try:
        _acquire(fd, folder, timeout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open(path: Path, flags: int) -> int:
    """Open the lock file ``path`` as a regular file only: never through a symlink (whose
    target would be overwritten), never a FIFO or device (opening one may block)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "a FIFO, device, socket or folder")
    return fd


def _acquire(fd: int, folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + max(timeout, MIN_WAIT_SECONDS)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise FolderLockedError(folder, _describe(os.pread(fd, 4096, 0))) from None
            time.sleep(POLL_SECONDS)


def _me() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
    }


def _describe(raw: bytes) -> str:
    """The holder as words, from what it wrote into the lock file."""
    try:
        who = json.loads(raw)
        return f"process {who['pid']} on {who['host']} since {who['since']}: {who['command']}"
    except (ValueError, KeyError, TypeError):
        return "another process"
