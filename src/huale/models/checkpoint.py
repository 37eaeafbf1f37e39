"""Detector checkpoints: what was trained (architecture, classes) travels with the weights.

A huale checkpoint is a dict written atomically with ``torch.save``::

    {"format": "huale-checkpoint", "version": 1,
     "model": {"arch": str, "num_classes": int, "kwargs": {...}},   # build_detector arguments
     "class_names": [str, ...],                                     # label i+1 -> class_names[i]
     "category_ids": [int, ...],                                    # label i+1 -> the user's id
     "state_dict": {...},                                           # detector weights
     "training": {...} | None}                                      # optimizer etc. for --resume

``category_ids`` are the ids the training data gave its classes (COCO category ids, YOLO class
indices): ``huale evaluate --save-detections`` and ``huale select`` write them back. Checkpoints
written before they were stored read as ``1..C`` (:func:`checkpoint_category_ids`).
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from huale.data.records import check_category_ids
from huale.errors import CheckpointError
from huale.io import atomic_torch_save

CHECKPOINT_FORMAT = "huale-checkpoint"
CHECKPOINT_VERSION = 1


def model_spec(model: torch.nn.Module) -> dict:
    """The resolved ``build_detector`` arguments of ``model`` (recorded by ``build_detector``).

    ``{"arch", "num_classes", "kwargs"}``: enough to rebuild the same modules without the
    weight files that initialised them.
    """
    spec = getattr(model, "huale_spec", None)
    if spec is None:
        raise CheckpointError("model was not built by huale.models.build_detector: no spec to save")
    return copy.deepcopy(spec)


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    class_names: list[str],
    *,
    training: dict | None = None,
    category_ids: list[int] | None = None,
) -> Path:
    """Write a checkpoint atomically (see module docstring); ``category_ids`` default 1..C."""
    spec = model_spec(model)
    if spec["num_classes"] != len(class_names):
        raise CheckpointError(f"spec says {spec['num_classes']} classes but {len(class_names)} names given")
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": spec,
        "class_names": list(class_names),
        "category_ids": check_category_ids(category_ids, len(class_names)),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": training,
    }
    return atomic_torch_save(path, state)


def checkpoint_category_ids(state: dict) -> list[int]:
    """The user's category id of each class of a loaded checkpoint (1..C for older ones)."""
    ids = state.get("category_ids")
    num_classes = len(state["class_names"])
    try:
        return check_category_ids(ids, num_classes)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint category ids: {exc}") from None


def checkpoint_fallback_ids(state: dict) -> dict[str, int]:
    """``{class name: category id}`` of a loaded checkpoint (``fallback_ids`` of the readers)."""
    return dict(zip(state["class_names"], checkpoint_category_ids(state), strict=True))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a huale checkpoint, with a :class:`CheckpointError` naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a huale checkpoint (plain torchvision weights? select and predict take "
            "them with --arch and --classes, train as --weights)"
        )
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this huale")
    return state


def build_from_checkpoint(
    state_or_path: dict | str | Path,
    *,
    device: str | torch.device = "cpu",
    expected_classes: list[str] | None = None,
    **overrides: Any,
) -> tuple[torch.nn.Module, list[str]]:
    """Build the detector a checkpoint describes and load its weights.

    ``overrides`` replace stored ``build_detector`` keyword arguments (e.g. ``min_size``).
    ``expected_classes``: if given, the checkpoint's class names must be exactly these.
    Returns ``(model in eval mode on device, class_names)``.
    """
    from huale.models.detector import build_detector

    source = state_or_path if not isinstance(state_or_path, dict) else "checkpoint"
    state = state_or_path if isinstance(state_or_path, dict) else load_checkpoint(state_or_path)
    spec, class_names = state["model"], state["class_names"]
    if expected_classes is not None and list(expected_classes) != list(class_names):
        raise CheckpointError(
            f"{source}: trained for classes {class_names} but the data has {list(expected_classes)}"
        )
    kwargs = {**spec.get("kwargs", {}), **overrides}
    model = build_detector(spec["arch"], spec["num_classes"], **kwargs)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit {spec['arch']} ({exc})") from None
    return model.to(device).eval(), list(class_names)
