"""Reading the small UTF-8 text files datasets come with: split files, label files, image lists.

A file that is not UTF-8 text is a :class:`~huale.errors.DataError` naming it.
"""

from __future__ import annotations

from pathlib import Path

from huale.errors import DataError


def read_text_lines(path: str | Path) -> list[str]:
    """The lines of UTF-8 text file ``path`` (line ends removed)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not a text file ({exc})") from None


def read_list_file(path: str | Path, *, what: str = "list file") -> list[str]:
    """The entries of a list file, one per line: lines stripped, blank and ``#`` lines skipped.

    A missing file is a DataError "<path>: <what> not found".
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    lines = (line.strip() for line in read_text_lines(path))
    return [line for line in lines if line and not line.startswith("#")]


def read_class_names(path: str | Path) -> list[str]:
    """Object class names, one per line in label order (label 1 first, background NOT listed):
    a ``classes.txt`` as torchvision and YOLO users keep them. Blank and ``#`` lines skipped."""
    names = read_list_file(path, what="class names file")
    if not names:
        raise DataError(path, "no class names (one per line, background not listed)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(path, f"class name(s) listed twice: {', '.join(repeated)}")
    return names
