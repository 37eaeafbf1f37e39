"""An exclusive lock on an output folder, so two processes never write the same run.

The lock is ``fcntl.flock`` on ``<folder>/.huale.lock``: the operating system releases it when
the holder exits, however it exits (``kill -9`` included), so a crashed run never leaves a stale
lock behind. The file records the holder's pid and command for the error message.

Taking the lock also deletes the temp files of atomic writes that a killed holder left in the
folder (:func:`huale.io.remove_partial_writes`): with the lock held, no one else is writing them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path

from huale.errors import HualeError
from huale.io import remove_partial_writes

log = logging.getLogger(__name__)

LOCK_NAME = ".huale.lock"


class FolderLockedError(HualeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """Context manager holding the lock of ``folder`` (created if needed). ``wait``: when
    another process holds it, wait for it (logging who) instead of raising
    :class:`FolderLockedError`, for work that the holder may be doing already (drawing a
    dataset)."""

    def __init__(self, folder: str | Path, *, wait: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            if not self.wait:
                os.close(fd)
                raise FolderLockedError(
                    f"{self.folder}: in use by {holder}; wait for it to finish or choose another folder"
                ) from None
            log.warning("%s: in use by %s; waiting for it", self.folder, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:3])})\n".encode(), 0)
        self._fd = fd
        removed = remove_partial_writes(self.folder)
        if removed:
            log.warning("%s: removed %d partial files of an interrupted run", self.folder, len(removed))
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
