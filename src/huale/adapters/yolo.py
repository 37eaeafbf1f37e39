"""Ultralytics YOLO as a huale detector: prediction records with a per-box class posterior.

Ultralytics is AGPL-3.0 and an optional extra (``pip install "huale[yolo]"``): this module imports
it at module level and is itself imported only when a YOLO detector is asked for
(:func:`huale.adapters.load_adapter_class`).

What it does per batch, for every view of every image (each view is a (3, h, w) float image):

1. letterbox as ``YOLO.predict`` does by default (``rect=True``: long side scaled to ``imgsz``,
   each side padded with grey 114 up to a multiple of the model stride; :class:`Letterbox`),
   OpenCV bilinear resize of the 8-bit pixels, exactly Ultralytics' ``LetterBox``;
2. one forward pass per group of equally shaped inputs; the raw head output is (N, 4 + C, A):
   boxes (cx, cy, w, h) in input pixels and per-class sigmoid scores of every anchor;
3. Ultralytics' own ``non_max_suppression`` (its ``conf``, ``iou``, ``max_det``) with
   ``return_idxs=True``: the anchor index of every kept box, so its full score row
   ``raw[b, 4:, idx]`` is read, not just the top score; the row becomes a (C+1) posterior by
   :func:`~huale.adapters.yolo_rules.sigmoid_posterior` (uncalibrated; docs/method.md);
4. boxes back to the view's pixels (the exact inverse of the letterbox), then to the original
   image's frame (:func:`huale.augment.boxes_to_original`; ``flip``: x -> W - x);
5. ``fpn_level`` = the head level of the anchor (P3 = 3, P4 = 4, ...), exact.

Extras: pre-NMS boxes = every anchor whose top class score exceeds the threshold (its argmax
class, as huale's RoI head keeps them); features = the mean of the coarsest level of the neck's
output (the head's input) over the cells covering the image, not the padding.

Only the "detect" task with an NMS head is served. NMS-free heads (YOLOv10/YOLO26 end-to-end)
are run through their one-to-many branch + NMS, as ``YOLO.predict`` does by default; a model
stripped of that branch is refused.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import platform
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch import Tensor, nn

from huale.adapters.yolo_rules import PAD_VALUE, Letterbox, anchor_levels, sigmoid_posterior
from huale.augment import boxes_to_original
from huale.errors import CheckpointError, ConfigError
from huale.inference.adapters.base import Capabilities, DetectorAdapter
from huale.inference.scoring import model_fingerprint
from huale.inference.views import PoolItem
from huale.predictions import VIEW_NAMES, Detections, Needs, PredictionRecord
from huale.runtime.device import autocast

# Importing ultralytics changes the host process: numpy's and torch's print options, torch.save
# (a retry wrapper) and PIL.Image.open (which, on a file PIL cannot identify, pip-installs a HEIF
# plugin, or raises ModuleNotFoundError offline, instead of PIL's UnidentifiedImageError that
# huale's image reader turns into a one-line error). A library import must not: all are put
# back. YOLO_AUTOINSTALL=false (unless set) stops Ultralytics from pip-installing at run time.
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
_NUMPY_PRINT = np.get_printoptions()
_TORCH_PRINT = {
    key: getattr(torch._tensor_str.PRINT_OPTS, key)
    for key in ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")
}
_PIL_OPEN, _TORCH_SAVE = PIL.Image.open, torch.save
import cv2  # noqa: E402  (an ultralytics dependency)
import ultralytics  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.utils.nms import non_max_suppression  # noqa: E402

np.set_printoptions(**_NUMPY_PRINT)
torch.set_printoptions(**_TORCH_PRINT)
PIL.Image.open, torch.save = _PIL_OPEN, _TORCH_SAVE

log = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ">=8.4,<8.5"
YAML_SUFFIXES = (".yaml", ".yml")
DEFAULT_CONF = 0.05
DEFAULT_IOU = 0.7  # Ultralytics' predict default
DEFAULT_MAX_DET = 300  # Ultralytics' predict default
# NMS gives up after 2 s + max_time_img * batch and silently drops the rest; scoring never should
NMS_TIME_PER_IMAGE = 60.0


def _check_version() -> None:
    if "return_idxs" not in inspect.signature(non_max_suppression).parameters:
        raise ConfigError(
            f"ultralytics {ultralytics.__version__} is not supported (its NMS cannot return the "
            f'kept indices); install a supported version: pip install "huale[yolo]" '
            f'(ultralytics{SUPPORTED_VERSIONS})'
        )


def load_yolo_model(checkpoint: str | Path) -> nn.Module:
    """The ``DetectionModel`` of a YOLO ``.pt`` checkpoint or model yaml (random weights).

    A ``.pt`` must exist on disk (Ultralytics would otherwise try to download it); a yaml may be
    a file or one of the model yamls Ultralytics ships (e.g. ``yolov8n.yaml``, no download).
    """
    _check_version()
    path = Path(checkpoint)
    is_yaml = path.suffix.lower() in YAML_SUFFIXES
    if not is_yaml and not path.is_file():
        raise CheckpointError(f"{path}: YOLO checkpoint not found")
    try:
        model = YOLO(str(path), task="detect") if not is_yaml else YOLO(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: YOLO model yaml not found") from None
    except Exception as exc:  # Ultralytics raises many kinds for a bad file
        raise CheckpointError(f"{path}: not a loadable YOLO model ({exc})") from None
    if model.task != "detect":
        raise CheckpointError(
            f"{path}: a YOLO {model.task!r} model; huale scores detection models only"
        )
    net = model.model
    if not isinstance(net, nn.Module):
        raise CheckpointError(f"{path}: only PyTorch YOLO models (.pt or .yaml) can be scored")
    head = net.model[-1]
    if not hasattr(head, "nc") or not hasattr(head, "stride"):
        raise CheckpointError(f"{path}: the model has no YOLO detection head")
    return net


def use_nms_branch(net: nn.Module, source: str = "the model") -> None:
    """Run an NMS-free (end-to-end) head through its one-to-many branch + NMS, as YOLO.predict
    does by default (``nms=None``); CheckpointError if that branch is gone or cannot be chosen."""
    if not getattr(net, "end2end", False):
        return
    try:
        net.end2end = False
    except AttributeError:  # older ultralytics: the head mode cannot be switched
        raise CheckpointError(
            f"{source}: an NMS-free (end-to-end) YOLO head, which ultralytics "
            f"{ultralytics.__version__} cannot run through its one-to-many branch; "
            'upgrade it: pip install -U "huale[yolo]"'
        ) from None
    if net.end2end:
        raise CheckpointError(
            f"{source}: an NMS-free (end-to-end) YOLO head without its one-to-many branch; "
            "huale needs the per-class scores that branch gives"
        )


class YoloDetector:
    """A YOLO ``DetectionModel`` that turns batches of pool views into prediction records.

    class_names: C names (default: the model's ``names``); imgsz: letterbox size (default: the
    checkpoint's training ``imgsz``, else 640), rounded up to a multiple of the stride; conf,
    iou, max_det: Ultralytics' NMS settings (conf default 0.05, lower than predict's 0.25, as
    huale's Faster R-CNN keeps detections >= 0.05); rect: letterbox to the minimum rectangle
    (``YOLO.predict``'s default) or, False, to the square imgsz.
    """

    name = "yolo"

    def __init__(
        self,
        model: nn.Module,
        *,
        class_names: Sequence[str] | None = None,
        imgsz: int | None = None,
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        max_det: int = DEFAULT_MAX_DET,
        rect: bool = True,
        source: str | None = None,
    ):
        _check_version()
        use_nms_branch(model, source or "the model")
        head = model.model[-1]
        self.num_classes = int(head.nc)
        names = getattr(model, "names", None) or {i: str(i) for i in range(self.num_classes)}
        self.class_names = (
            [str(names[i]) for i in range(self.num_classes)]
            if class_names is None else [str(n) for n in class_names]
        )
        if len(self.class_names) != self.num_classes:
            raise ConfigError(
                f"{len(self.class_names)} class names given for a YOLO model of "
                f"{self.num_classes} classes"
            )
        for name, value in (("conf", conf), ("iou", iou)):
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"yolo {name} must be in [0, 1], got {value!r}")
        if int(max_det) < 1:
            raise ConfigError(f"yolo max_det must be >= 1, got {max_det!r}")
        self.strides = [float(s) for s in head.stride]
        self.stride = int(max(self.strides))
        args = getattr(model, "args", None)
        default_size = args.get("imgsz", 640) if isinstance(args, dict) else 640
        size = imgsz if imgsz is not None else default_size
        size = int(max(size) if isinstance(size, (list, tuple)) else size)
        if size < 1:
            raise ConfigError(f"yolo imgsz must be >= 1, got {size}")
        self.imgsz = self.stride * math.ceil(size / self.stride)
        if self.imgsz != size:
            log.warning("yolo imgsz %d is not a multiple of the stride %d: using %d",
                        size, self.stride, self.imgsz)
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.rect = bool(rect)
        self.source = source
        self.fingerprint = model_fingerprint(model)
        if hasattr(model, "fuse"):
            model = model.fuse(verbose=False)  # Conv+BN folded, as YOLO.predict runs it
        self.model = model.eval()
        self.to(self.device)
        self._head = model.model[-1]
        self._levels: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, **options) -> YoloDetector:
        """Load ``checkpoint`` (:func:`load_yolo_model`); ``options``: see the class."""
        return cls(load_yolo_model(checkpoint), source=str(checkpoint), **options)

    def to(self, device: str | torch.device) -> YoloDetector:
        """Move the model to ``device``; on an x86 CPU with oneDNN its weights go channels-last,
        as Ultralytics' AutoBackend does (faster there, and the same numbers as predict)."""
        device = torch.device(device)
        self.model.to(device)
        self.model.to(memory_format=_memory_format(device))
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def spec(self) -> dict:
        """Everything that changes the records (for a scoring run's manifest)."""
        return {
            "detector": self.name,
            "ultralytics": ultralytics.__version__,
            "fingerprint": self.fingerprint,
            "source": self.source,
            "class_names": self.class_names,
            "imgsz": self.imgsz,
            "rect": self.rect,
            "conf": self.conf,
            "iou": self.iou,
            "max_det": self.max_det,
        }

    def letterbox(self, view: Tensor) -> tuple[np.ndarray, Letterbox]:
        """(H', W', 3) uint8 letterboxed input of a (3, h, w) float [0, 1] view, and its geometry.

        The view's 8-bit pixels (x * 255, rounded: exact for images read as 8 bits) are resized
        with OpenCV bilinear interpolation and padded with grey, as Ultralytics' LetterBox does.
        """
        height, width = int(view.shape[-2]), int(view.shape[-1])
        box = Letterbox.fit(height, width, self.imgsz, self.stride if self.rect else None)
        pixels = view.detach().cpu().permute(1, 2, 0).mul(255.0).add_(0.5).clamp_(0, 255)
        image = pixels.to(torch.uint8).contiguous().numpy()  # x * 255 rounded, (h, w, 3)
        if (box.new_w, box.new_h) != (width, height):
            image = cv2.resize(image, (box.new_w, box.new_h), interpolation=cv2.INTER_LINEAR)
        image = cv2.copyMakeBorder(
            image, box.top, box.bottom, box.left, box.right, cv2.BORDER_CONSTANT,
            value=(PAD_VALUE,) * 3,
        )
        return image, box

    @torch.no_grad()
    def predict_items(
        self,
        items: Sequence[PoolItem],
        view_names: Sequence[str],
        *,
        amp: bool = False,
        prenms: bool = False,
        prenms_threshold: float = 0.3,
        features: bool = False,
    ) -> list[PredictionRecord]:
        """Records of the readable ``items`` in order; ``view_names[v]`` names ``item.views[v]``.

        prenms: also every anchor with top class score > ``prenms_threshold`` (its argmax class);
        features: the (D,) pooled coarsest neck map of the original view.
        """
        items = [item for item in items if item.error is None]
        if not items:
            return []
        num_views = len(view_names)
        inputs = [self.letterbox(view) for item in items for view in item.views]
        results: list[tuple[Detections, Detections | None, np.ndarray | None]] = [None] * len(
            inputs
        )
        groups: dict[tuple[int, int], list[int]] = {}
        for row, (_, box) in enumerate(inputs):
            groups.setdefault((box.size_h, box.size_w), []).append(row)
        for rows in groups.values():
            want = [features and row % num_views == 0 for row in rows]
            outs = self._predict_rows(
                [inputs[r][0] for r in rows], [inputs[r][1] for r in rows], amp=amp,
                prenms_threshold=prenms_threshold if prenms else None, features=want,
            )
            for row, out in zip(rows, outs, strict=True):
                results[row] = out

        records = []
        for i, item in enumerate(items):
            views, prenms_views, feature = {}, {}, None
            for v, (name, geometry) in enumerate(zip(view_names, item.geometries, strict=True)):
                dets, pre, pooled = results[i * num_views + v]
                views[name] = _to_original(dets, geometry)
                if pre is not None:
                    prenms_views[name] = _to_original(pre, geometry)
                if v == 0:
                    feature = pooled
            records.append(
                PredictionRecord(
                    image_id=item.image_id, width=item.width, height=item.height, views=views,
                    prenms=prenms_views, feature=feature,
                )
            )
        return records

    def _predict_rows(
        self,
        images: list[np.ndarray],
        boxes: list[Letterbox],
        *,
        amp: bool,
        prenms_threshold: float | None,
        features: list[bool],
    ) -> list[tuple[Detections, Detections | None, np.ndarray | None]]:
        """One forward pass over equally shaped letterboxed inputs; per input: detections in
        the view's pixels, pre-NMS boxes (or None), pooled feature (or None)."""
        device = self.device
        batch = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).contiguous()
        batch = batch.float().div_(255.0)  # (N, 3, H', W') as YOLO.predict feeds it
        captured: list = []
        hook = None
        if any(features):
            hook = self._head.register_forward_pre_hook(
                lambda module, args: captured.append(args[0])
            )
        try:
            with autocast(device, amp):
                out = self.model(batch)
        finally:
            if hook is not None:
                hook.remove()
        raw = (out[0] if isinstance(out, (tuple, list)) else out).float()  # (N, 4 + C, A)
        nc = self.num_classes
        if raw.ndim != 3 or raw.shape[1] < 4 + nc:
            raise ConfigError(
                f"unexpected YOLO head output of shape {tuple(raw.shape)} (expected (N, 4 + "
                f"{nc}, anchors)); is this an NMS-free export?"
            )
        levels = self._anchor_levels(tuple(batch.shape[-2:]), raw.shape[-1])
        kept, keep_idx = non_max_suppression(
            raw, self.conf, self.iou, max_det=self.max_det, nc=nc,
            max_time_img=NMS_TIME_PER_IMAGE, return_idxs=True,
        )
        pooled = None
        if captured:
            pooled = self._pool_features(captured[0][-1], boxes, features)

        out_rows = []
        for b, box in enumerate(boxes):
            idx = keep_idx[b].reshape(-1).long()
            det = kept[b]
            scores = raw[b, 4 : 4 + nc, idx].T  # (n, C) at the kept anchors
            dets = self._detections(det[:, :4], scores, levels[idx.cpu().numpy()], box,
                                    top=det[:, 5])
            pre = None
            if prenms_threshold is not None:
                cand = raw[b, 4 : 4 + nc].amax(dim=0) > prenms_threshold
                cidx = cand.nonzero().reshape(-1)
                xywh = raw[b, :4, cidx].T
                xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
                pre = self._detections(xyxy, raw[b, 4 : 4 + nc, cidx].T,
                                       levels[cidx.cpu().numpy()], box)
            out_rows.append((dets, pre, None if pooled is None else pooled[b]))
        return out_rows

    def _detections(self, xyxy: Tensor, scores: Tensor, levels: np.ndarray, box: Letterbox,
                    top: Tensor | None = None) -> Detections:
        """Detections in the view's pixels from input-frame boxes (n, 4) and score rows (n, C);
        top: (n,) the class NMS gave each box (default: the row's argmax)."""
        scores_np = scores.detach().float().cpu().numpy()
        boxes = box.boxes_to_image(xyxy.detach().float().cpu().numpy())
        top_np = None if top is None else top.detach().cpu().numpy().astype(np.int64)
        probs = sigmoid_posterior(scores_np, top=top_np)
        labels = (scores_np.argmax(axis=1) if top_np is None else top_np).astype(np.int64) + 1
        best = probs[np.arange(len(labels)), labels]
        return Detections(
            boxes=boxes.astype(np.float32),
            labels=labels,
            scores=best.astype(np.float32),
            class_probs=probs,
            max_fg_prob=best.astype(np.float32),
            fpn_level=np.asarray(levels, np.int64).reshape(-1),
        )

    def _anchor_levels(self, input_hw: tuple[int, int], num_anchors: int) -> np.ndarray:
        levels = self._levels.get(input_hw)
        if levels is None:
            sizes = [(math.ceil(input_hw[0] / s), math.ceil(input_hw[1] / s)) for s in self.strides]
            levels = anchor_levels(sizes, self.strides)
            if len(levels) != num_anchors:
                raise ConfigError(
                    f"the YOLO head gave {num_anchors} anchors for a {input_hw} input, expected "
                    f"{len(levels)} from its strides {self.strides}"
                )
            self._levels[input_hw] = levels
        return levels

    def _pool_features(self, fmap: Tensor, boxes: list[Letterbox],
                       wanted: list[bool]) -> list[np.ndarray | None]:
        """Per input, the mean of ``fmap`` (N, D, h, w) over the cells covering the image."""
        stride = self.strides[-1]
        out = []
        for b, box in enumerate(boxes):
            if not wanted[b]:
                out.append(None)
                continue
            rows, cols = box.valid_cells(stride)
            cell = fmap[b, :, rows, cols].float().mean(dim=(1, 2))
            out.append(cell.cpu().numpy().astype(np.float32))
        return out


def _memory_format(device: torch.device) -> torch.memory_format:
    """Ultralytics' AutoBackend rule: channels-last on a Linux/Windows x86 CPU with oneDNN."""
    fast = (
        device.type == "cpu"
        and platform.machine() in ("AMD64", "x86_64")
        and platform.system() in ("Linux", "Windows")
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )
    return torch.channels_last if fast else torch.contiguous_format


def _to_original(dets: Detections, geometry) -> Detections:
    """``dets`` (boxes in the view's pixels) with boxes in the original image's frame."""
    dets.boxes = boxes_to_original(dets.boxes, geometry)
    return dets


class YoloAdapter(DetectorAdapter):
    """Ultralytics YOLO behind the adapter seam: ``huale select --detector yolo``.

    Every field a strategy may need comes from YOLO itself (see :class:`YoloDetector` and
    docs/method.md, "Ultralytics YOLO records"): all test-time views, a (C+1) posterior from the
    per-class scores, pre-NMS anchors, the exact pyramid level and pooled neck features.
    """

    name = "yolo"
    capabilities = Capabilities(
        views=VIEW_NAMES, class_posteriors=True, prenms_boxes=True, fpn_level=True, features=True
    )

    def __init__(self, detector: YoloDetector):
        self.detector = detector
        self.class_names = list(detector.class_names)
        self._run: dict | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        arch: str | None = None,
        classes: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        min_size: int | None = None,
        max_size: int | None = None,
        **options,
    ) -> YoloAdapter:
        """A YOLO ``.pt`` or model yaml; ``classes`` renames its classes; the letterbox size
        (imgsz, the longer side) is ``max_size``, else ``min_size`` (default: the checkpoint's
        training imgsz); ``options``: conf, iou, max_det, rect."""
        if arch is not None:
            raise ConfigError(
                f"{path}: --arch names torchvision architectures; a YOLO checkpoint carries its own"
            )
        imgsz = max_size if max_size is not None else min_size
        detector = YoloDetector.from_checkpoint(path, class_names=classes, imgsz=imgsz, **options)
        return cls(detector.to(device))

    @contextlib.contextmanager
    def scoring(
        self, needs: Needs, *, device: torch.device, amp: bool, feature_level: str | None = None
    ) -> Iterator[None]:
        self.detector.to(device)
        self._run = {"amp": amp, "prenms": needs.prenms,
                     "prenms_threshold": float(needs.prenms_threshold), "features": needs.features}
        try:
            yield
        finally:
            self._run = None

    def predict(self, items: Sequence[PoolItem], views: Sequence[str]) -> list[PredictionRecord]:
        if self._run is None:
            raise RuntimeError("YoloAdapter.predict runs inside adapter.scoring(...)")
        return self.detector.predict_items(items, views, **self._run)

    def manifest(self) -> dict:
        return self.detector.spec()
