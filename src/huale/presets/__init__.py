"""Loop-config presets shipped with huale: ``huale loop --config NAME`` reads ``NAME.yaml`` here.

Package data (read with :mod:`importlib.resources`), so they are found from an installed wheel
as from a source checkout. :func:`preset_names` lists them; :func:`preset_text` reads one.
"""

from __future__ import annotations

from importlib import resources

SUFFIX = ".yaml"


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted (``"synthetic-cpu"``, ...)."""
    return sorted(
        entry.name[: -len(SUFFIX)]
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(SUFFIX)
    )


def preset_text(name: str) -> str | None:
    """The YAML text of preset ``name``; None when there is no such preset."""
    entry = resources.files(__name__) / f"{name}{SUFFIX}"
    return entry.read_text(encoding="utf-8") if entry.is_file() else None
