"""One forward pass over the views of a batch, split into compact :class:`PredictionRecord`s.

The detector sees the V*B view tensors of B images at once. Its per-box outputs stay on the
device until the whole batch is concatenated field by field and copied to the host in one
transfer per field; the host then cuts them per (image, view), maps each view's boxes back to the
original frame (:func:`huale.augment.boxes_to_original`) and keeps numpy arrays only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from huale.augment import boxes_to_original
from huale.errors import ConfigError
from huale.inference.views import PoolItem
from huale.predictions import Detections, PredictionRecord
from huale.runtime.device import detector_forward, to_host

# Detections field -> model output field, for post-NMS detections and for pre-NMS RoI boxes
DETECTION_FIELDS = {
    "boxes": "boxes",
    "labels": "labels",
    "scores": "scores",
    "class_probs": "class_probs",
    "max_fg_prob": "max_fg_prob",
    "fpn_level": "fpn_level",
}
# a pre-NMS box's score is its RoI's max foreground probability p̂, so both read prenms_scores
PRENMS_FIELDS = {
    "boxes": "prenms_boxes",
    "labels": "prenms_labels",
    "scores": "prenms_scores",
    "class_probs": "prenms_class_probs",
    "max_fg_prob": "prenms_scores",
    "fpn_level": "prenms_fpn_level",
}
_DTYPES = {
    "boxes": np.float32,
    "labels": np.int64,
    "scores": np.float32,
    "class_probs": np.float32,
    "max_fg_prob": np.float32,
    "fpn_level": np.int64,
}


class FeatureCapture:
    """Forward hooks recording, per input image, the spatial mean of one backbone map.

    level: key of the backbone's output dict (default: the last, i.e. coarsest, FPN map). Only
    the valid (unpadded) cells of each image are averaged, so a feature does not depend on the
    other images of the batch. ``pooled()`` -> (N, D) on the model's device.
    """

    def __init__(self, model: nn.Module, level: str | None = None):
        self.level = level
        self._image_sizes: list[tuple[int, int]] = []
        self._padded: tuple[int, int] = (0, 0)
        self._map: Tensor | None = None
        self._handles = [
            model.transform.register_forward_hook(self._on_transform),
            model.backbone.register_forward_hook(self._on_backbone),
        ]

    def _on_transform(self, module, inputs, output) -> None:
        image_list = output[0]
        self._image_sizes = list(image_list.image_sizes)
        self._padded = tuple(image_list.tensors.shape[-2:])

    def _on_backbone(self, module, inputs, output) -> None:
        if isinstance(output, Tensor):
            self._map = output
            return
        key = self.level if self.level is not None else list(output)[-1]
        if key not in output:
            raise ConfigError(f"backbone has no feature map {key!r} (it has {', '.join(output)})")
        self._map = output[key]

    def pooled(self, rows: Sequence[int]) -> Tensor:
        """(len(rows), D) mean over the valid cells of the captured map's rows ``rows``."""
        fmap = self._map
        if fmap is None:
            raise RuntimeError("no forward pass was captured")
        stride_y = self._padded[0] / fmap.shape[-2]
        stride_x = self._padded[1] / fmap.shape[-1]
        out = []
        for row in rows:
            height, width = self._image_sizes[row]
            cells_y = max(1, math.ceil(height / stride_y))
            cells_x = max(1, math.ceil(width / stride_x))
            out.append(fmap[row, :, :cells_y, :cells_x].float().mean(dim=(1, 2)))
        return torch.stack(out) if out else fmap.new_zeros((0, fmap.shape[1]))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._map = None


@contextlib.contextmanager
def scoring_mode(model: nn.Module, prenms_threshold: float | None) -> Iterator[None]:
    """Eval mode with the RoI head's pre-NMS threshold set; both restored afterwards."""
    heads = model.roi_heads
    if not hasattr(heads, "prenms_score_threshold"):
        raise ConfigError(
            "pool scoring needs a detector built by huale.models.build_detector "
            "(its RoI head keeps the class posterior of each detection)"
        )
    was_training, previous = model.training, heads.prenms_score_threshold
    heads.prenms_score_threshold = prenms_threshold
    model.eval()
    try:
        yield
    finally:
        heads.prenms_score_threshold = previous
        model.train(was_training)


@torch.no_grad()
def predict_items(
    model: nn.Module,
    items: Sequence[PoolItem],
    view_names: Sequence[str],
    *,
    device: torch.device,
    amp: bool,
    prenms: bool,
    features: FeatureCapture | None = None,
) -> list[PredictionRecord]:
    """Records of the readable ``items`` (all views in one forward pass), in item order.

    The model must be in :func:`scoring_mode`. ``view_names[v]`` names ``item.views[v]``.
    """
    items = [item for item in items if item.error is None]
    if not items:
        return []
    view_images = [view for item in items for view in item.views]
    outputs = detector_forward(model, view_images, device, amp=amp)
    if "class_probs" not in outputs[0]:
        raise ConfigError("the detector's outputs lack class_probs: build it with huale.models")
    num_views = len(view_names)
    detections = _to_host(outputs, DETECTION_FIELDS)
    pre = _to_host(outputs, PRENMS_FIELDS) if prenms else None
    pooled = None
    if features is not None:
        pooled = features.pooled([i * num_views for i in range(len(items))]).cpu().numpy()

    records = []
    for i, item in enumerate(items):
        views, prenms_views = {}, {}
        for v, (name, geometry) in enumerate(zip(view_names, item.geometries, strict=True)):
            row = i * num_views + v
            views[name] = _map_back(detections[row], geometry)
            if pre is not None:
                prenms_views[name] = _map_back(pre[row], geometry)
        records.append(
            PredictionRecord(
                image_id=item.image_id,
                width=item.width,
                height=item.height,
                views=views,
                prenms=prenms_views,
                feature=None if pooled is None else pooled[i].astype(np.float32),
            )
        )
    return records


def _to_host(outputs: list[dict[str, Tensor]], fields: dict[str, str]) -> list[Detections]:
    """Per output row, ``fields`` (Detections field -> output key) as numpy arrays.

    Each output key is concatenated over the batch on the device and copied to the host once.
    """
    counts = [o[fields["labels"]].shape[0] for o in outputs]
    split_at = np.cumsum(counts)[:-1]
    host: dict[str, list[np.ndarray]] = {}
    for key in dict.fromkeys(fields.values()):
        if key not in outputs[0]:
            raise ConfigError(f"the detector's outputs lack {key!r}")
        host[key] = np.split(to_host(torch.cat([o[key] for o in outputs])).numpy(), split_at)
    return [
        Detections(
            **{name: np.array(host[key][row], _DTYPES[name]) for name, key in fields.items()}
        )
        for row in range(len(outputs))
    ]


def _map_back(dets: Detections, geometry) -> Detections:
    """``dets`` with boxes in the original image's frame."""
    dets.boxes = boxes_to_original(dets.boxes, geometry)
    return dets
