"""The one rule for output folders: a command never silently replaces what a folder holds.

Every command that writes a run folder (``huale train --out``, ``select --out``, ``synth
--out``, ``loop --out``) calls :func:`claim_out_folder` first. A missing or empty folder is
used as it is. A folder that holds anything is refused with a one-line error unless the user
says what to do with it:

- ``--resume``: continue the run in it (keep its files; the command picks up where it stopped);
- ``--overwrite``: start afresh; the files this command writes there are deleted first (nothing
  else in the folder is touched).

Files huale itself keeps in a folder while it works on it (its lock file) do not count.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from huale.errors import ConfigError

__all__ = ["NEW", "OVERWRITE", "RESUME", "claim_out_folder", "folder_contents"]

NEW, RESUME, OVERWRITE = "new", "resume", "overwrite"
_OWN_FILES = (".huale.lock",)  # the folder lock (huale.locking.LOCK_NAME)


def folder_contents(folder: str | Path) -> list[str]:
    """Names of the entries of ``folder`` (sorted) apart from huale's lock; [] if it is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in _OWN_FILES)


def claim_out_folder(
    folder: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    outputs: Sequence[str] = (),
    resume_hint: str = "--resume",
    can_resume: bool = True,
) -> str:
    """Apply the module's rule to ``folder``; returns ``"new"``, ``"resume"`` or ``"overwrite"``.

    ``outputs``: names (files or folders) the command writes in ``folder``, deleted on
    ``overwrite``. ``resume_hint``: how the error message tells the user to continue
    (``"--resume"``, or e.g. ``"--resume RUN_DIR"``); ``can_resume=False`` for commands that have
    nothing to continue. Raises :class:`ConfigError` when ``folder`` is a file, when both flags are
    given, or when it is not empty and neither flag is.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder")
    contents = folder_contents(folder)
    if not contents:
        return NEW
    if resume and can_resume:
        return RESUME
    if overwrite:
        for name in outputs:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        return OVERWRITE
    shown = ", ".join(contents[:3]) + (", ..." if len(contents) > 3 else "")
    how = f"pass {resume_hint} to continue it or --overwrite" if can_resume else "pass --overwrite"
    raise ConfigError(f"{folder}: folder is not empty ({shown}); {how} to replace it, "
                      "or choose another folder")
