"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A reader never sees a half-written file, and a run killed mid-write leaves the old file (or
nothing) behind, never a truncated one. What a kill can leave is the hidden temp file
(``.<name>.<8 random characters>.tmp``); :func:`remove_partial_writes` deletes those.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.")


def _atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (sorted keys kept as given, trailing newline) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    return _atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temp files that writes killed before their rename left anywhere under ``folder``.

    Only safe while no other process writes there (e.g. while holding the folder's
    :class:`huale.locking.FolderLock`). Returns the deleted paths.
    """
    folder = Path(folder)
    removed = []
    for path in sorted(folder.rglob(f"*{_TEMP_SUFFIX}")):
        if _TEMP_NAME.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    """Write UTF-8 ``lines`` (each ending without a newline) to ``path`` atomically, streamed:
    one line at a time, so a long iterable is never held in memory."""

    def write(handle: IO[bytes]) -> None:
        for line in lines:
            handle.write(line.encode("utf-8") + b"\n")

    return _atomic_write(path, write)
