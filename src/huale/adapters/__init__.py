"""Detectors from other libraries, behind optional extras, loaded only when asked for.

The core never imports an extra's package: :func:`load_adapter_class` imports the adapter module
(which imports its library at module level) on first use, and a missing extra becomes a one-line
:class:`~huale.errors.ConfigError` with the ``pip install`` line.
"""

from __future__ import annotations

import importlib

from huale.errors import ConfigError

# detector name -> (module, class, the package the extra provides, the extra)
OPTIONAL_ADAPTERS = {
    "yolo": ("huale.adapters.yolo", "YoloDetector", "ultralytics", "yolo"),
}


def install_hint(name: str) -> str:
    """The one-line error when the extra of detector ``name`` is missing (one text for both
    routes: ``--detector`` and :func:`load_adapter_class`)."""
    from huale.inference.adapters import install_hint as detector_install_hint

    return detector_install_hint(name)


def load_adapter_class(name: str) -> type:
    """The adapter class of detector ``name``; ConfigError with the install line if its extra is
    missing."""
    if name not in OPTIONAL_ADAPTERS:
        raise ConfigError(
            f"unknown detector {name!r}; choose from {', '.join(sorted(OPTIONAL_ADAPTERS))}"
        )
    module_name, class_name, package, _ = OPTIONAL_ADAPTERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or ""
        if missing == package or missing.startswith(package + ".") or package in str(exc):
            raise ConfigError(install_hint(name)) from None
        raise
    return getattr(module, class_name)
