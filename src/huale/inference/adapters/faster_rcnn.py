"""huale's own detector behind the seam: a torchvision Faster R-CNN with huale's RoI head.

The RoI head keeps what torchvision's post-processing throws away (the class posterior and the
FPN level of each detection, the pre-NMS boxes), so this adapter gives every field a strategy
may need. Two ways in: a huale checkpoint, or plain torchvision weights trained elsewhere
(a bare ``state_dict`` or the reference scripts' ``{"model": state_dict, ...}``) with their
architecture name and a class names file; both build the same modules.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from huale.errors import CheckpointError
from huale.inference import forward
from huale.inference.adapters.base import Capabilities, DetectorAdapter
from huale.inference.views import PoolItem
from huale.models.detector import (
    CLASS_QUALITY_KEY,
    build_detector,
    load_matching_state,
    read_state_dict,
)
from huale.predictions import VIEW_NAMES, Needs, PredictionRecord


class FasterRCNNAdapter(DetectorAdapter):
    """A detector built by :func:`huale.models.build_detector` (any of its architectures)."""

    name = "torchvision"
    capabilities = Capabilities(
        views=VIEW_NAMES, class_posteriors=True, prenms_boxes=True, fpn_level=True, features=True
    )

    trained_by_loop = True

    def __init__(self, model: nn.Module, class_names: Sequence[str] | None = None):
        self.model = model
        self.class_names = None if class_names is None else list(class_names)
        self._run: dict | None = None

    @classmethod
    def from_model(cls, model: nn.Module, class_names: Sequence[str]) -> FasterRCNNAdapter:
        return cls(model, class_names)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        arch: str | None = None,
        classes: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        **build_options,
    ) -> FasterRCNNAdapter:
        """A huale checkpoint (``arch`` None), or plain torchvision weights of ``arch`` for the
        object classes ``classes`` (background added; ``build_options``: min_size, max_size)."""
        if arch is None:
            from huale.models.checkpoint import (
                build_from_checkpoint,
                checkpoint_category_ids,
                load_checkpoint,
            )

            if classes is not None:
                raise CheckpointError(
                    f"{path}: --classes goes with --arch (plain torchvision weights); a huale "
                    "checkpoint carries its class names"
                )
            state = load_checkpoint(path)
            model, names = build_from_checkpoint(state, device=device, **build_options)
            adapter = cls(model, names)
            adapter.category_ids = checkpoint_category_ids(state)
            return adapter
        return cls(load_torchvision_weights(path, arch, classes, **build_options).to(device), classes)

    @contextlib.contextmanager
    def scoring(
        self, needs: Needs, *, device: torch.device, amp: bool, feature_level: str | None = None
    ) -> Iterator[None]:
        self.model.to(device)
        prenms_threshold = float(needs.prenms_threshold) if needs.prenms else None
        capture = forward.FeatureCapture(self.model, feature_level) if needs.features else None
        self._run = {"device": device, "amp": amp, "prenms": needs.prenms, "features": capture}
        try:
            with forward.scoring_mode(self.model, prenms_threshold):
                yield
        finally:
            self._run = None
            if capture is not None:
                capture.close()

    def predict(self, items: Sequence[PoolItem], views: Sequence[str]) -> list[PredictionRecord]:
        if self._run is None:
            raise RuntimeError("FasterRCNNAdapter.predict runs inside adapter.scoring(...)")
        return forward.predict_items(self.model, items, views, **self._run)

    def manifest(self) -> dict:
        heads = self.model.roi_heads
        return {
            "fingerprint": model_fingerprint(self.model),
            "spec": getattr(self.model, "huale_spec", None),
            "score_thresh": float(heads.score_thresh),
            "nms_thresh": float(heads.nms_thresh),
            "detections_per_img": int(heads.detections_per_img),
        }

    def tracked_class_quality(self) -> np.ndarray | None:
        tracked = getattr(getattr(self.model, "roi_heads", None), "class_quality", None)
        return None if tracked is None else tracked.detach().cpu().double().numpy()


def load_torchvision_weights(
    path: str | Path, arch: str, classes: Sequence[str] | None, **build_options
) -> nn.Module:
    """huale's detector of ``arch`` for ``len(classes)`` object classes, holding the weights of a
    plain torchvision file (every tensor must fit: a wrong class count is an error naming it)."""
    if not classes:
        raise CheckpointError(
            f"{path}: plain torchvision weights need --classes (a file of the object class "
            "names, one per line, background not listed)"
        )
    state = read_state_dict(path)
    model = build_detector(arch, len(classes), **build_options)
    load_matching_state(model, state, str(path), optional=(CLASS_QUALITY_KEY,))
    return model.eval()


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the model's state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
