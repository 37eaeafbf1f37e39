"""Detector adapters: the seam between a detector and the records strategies rank.

:data:`DETECTORS` maps a ``--detector`` name to its adapter class (imported on first use, so an
optional extra is only needed by the detector that uses it). :func:`load_detector` builds one
from a checkpoint; :func:`as_adapter` wraps a detector built by huale.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from huale.errors import ConfigError
from huale.inference.adapters.base import (
    Capabilities,
    DetectorAdapter,
    check_needs,
    predict_items,
)

# --detector name -> "module:class" of its adapter (the class has a from_checkpoint classmethod)
# (detectors of optional extras live in huale.adapters and are named here as strings only, so
# that nothing imports an extra before its detector is asked for)
DETECTORS: dict[str, str] = {
    "torchvision": "huale.inference.adapters.faster_rcnn:FasterRCNNAdapter",
    "yolo": "huale.adapters.yolo:YoloAdapter",
}
DEFAULT_DETECTOR = "torchvision"
# --detector name -> (the package its extra provides, the extra)
EXTRAS: dict[str, tuple[str, str]] = {"yolo": ("ultralytics", "yolo")}


def available_detectors() -> list[str]:
    return list(DETECTORS)


def adapter_class(name: str) -> type[DetectorAdapter]:
    """The adapter class of detector ``name`` (ConfigError listing the known ones)."""
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; known detectors: {', '.join(DETECTORS)}")
    module, _, attribute = DETECTORS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        if name not in EXTRAS:
            raise
        package, _ = EXTRAS[name]
        if (exc.name or "").split(".")[0] != package and package not in str(exc):
            raise
        raise ConfigError(install_hint(name)) from None


def install_hint(name: str) -> str:
    """The one-line error of detector ``name`` when its optional extra is not installed."""
    package, extra = EXTRAS[name]
    return f'--detector {name} needs {package}, which is not installed: pip install "huale[{extra}]"'


def load_detector(
    name: str,
    checkpoint: str | Path,
    *,
    arch: str | None = None,
    classes: Sequence[str] | None = None,
    device: str = "cpu",
    **options,
) -> DetectorAdapter:
    """Detector ``name`` from ``checkpoint`` (``arch`` / ``classes``: see the adapter)."""
    return adapter_class(name).from_checkpoint(
        checkpoint, arch=arch, classes=classes, device=device, **options
    )


def as_adapter(detector: DetectorAdapter | nn.Module) -> DetectorAdapter:
    """``detector`` itself, or a torch detector built by huale wrapped in its adapter."""
    if isinstance(detector, DetectorAdapter):
        return detector
    if isinstance(detector, nn.Module):
        from huale.inference.adapters.faster_rcnn import FasterRCNNAdapter

        return FasterRCNNAdapter(detector)
    raise TypeError(f"expected a DetectorAdapter or a torch detector, got {type(detector).__name__}")


__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "Capabilities",
    "DetectorAdapter",
    "adapter_class",
    "as_adapter",
    "available_detectors",
    "check_needs",
    "load_detector",
    "predict_items",
]
