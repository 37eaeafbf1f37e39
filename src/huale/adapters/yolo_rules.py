"""The numerical rules of the YOLO adapter that need no Ultralytics (pure numpy, tested by hand).

- :class:`Letterbox`: where Ultralytics' ``LetterBox`` puts an image of size (H, W) (centred,
  grey 114 padding; ``YOLO.predict``'s default ``rect=True`` pads each side only up to a multiple
  of the model's stride, ``rect=False`` to the square ``imgsz``), and the exact inverse map of
  boxes (the per-axis gain of the rounded sides, as Ultralytics' ``scale_boxes`` uses).
- :func:`sigmoid_posterior`: the (K, C+1) posterior made from YOLO's per-class sigmoid scores
  (docs/method.md, "Detector adapters"; uncalibrated, [INF]).
- :func:`anchor_levels`: the pyramid level P_k of each anchor index of the head's output, from
  the head's strides (exact, no box-size stand-in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114  # Ultralytics' letterbox grey


@dataclass(frozen=True)
class Letterbox:
    """Placement of an (height, width) image in a (size_h, size_w) letterboxed input.

    size_h, size_w: the letterboxed input's size (new side + padding).

    new_w, new_h: the resized image's sides (``round(side * r)``, at least 1, with
    r = min(imgsz_h / height, imgsz_w / width)); left, top / right, bottom: padding in pixels.
    """

    height: int
    width: int
    size_h: int
    size_w: int
    new_h: int
    new_w: int
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def fit(
        cls, height: int, width: int, size: int | tuple[int, int], stride: int | None = None
    ) -> Letterbox:
        """Ultralytics' ``LetterBox(size, auto=stride is not None, stride=stride)`` rule.

        r = min(Sh / H, Sw / W); new side = max(round(side * r), 1); the padding of each axis is
        d = S - new side, or d mod stride with ``stride`` (minimum rectangle); it is split into
        round(d/2 - 0.1) before and round(d/2 + 0.1) after.
        """
        size_h, size_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        r = min(size_h / height, size_w / width)
        new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
        dw, dh = size_w - new_w, size_h - new_h
        if stride is not None:
            dw, dh = dw % int(stride), dh % int(stride)
        dw, dh = dw / 2, dh / 2
        top, bottom = round(dh - 0.1), round(dh + 0.1)
        left, right = round(dw - 0.1), round(dw + 0.1)
        return cls(height, width, new_h + top + bottom, new_w + left + right, new_h, new_w,
                   top, bottom, left, right)

    @property
    def gain(self) -> tuple[float, float]:
        """(gain_x, gain_y): input pixels per original pixel along each axis."""
        return self.new_w / self.width, self.new_h / self.height

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (K, 4) xyxy in the letterboxed input -> the original image's pixels, clipped.

        x = (x' - left) / gain_x, y = (y' - top) / gain_y: the inverse of the resize and pad
        (Ultralytics' ``scale_boxes`` rule), then clipped to [0, W] x [0, H].
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        gain_x, gain_y = self.gain
        out = np.empty_like(boxes)
        out[:, 0::2] = ((boxes[:, 0::2] - self.left) / gain_x).clip(0, self.width)
        out[:, 1::2] = ((boxes[:, 1::2] - self.top) / gain_y).clip(0, self.height)
        return out

    def valid_cells(self, stride: float) -> tuple[slice, slice]:
        """(rows, cols) of a feature map with ``stride`` that the image (not the padding) covers."""
        rows = slice(int(self.top // stride), max(int(self.top // stride) + 1,
                                                  math.ceil((self.top + self.new_h) / stride)))
        cols = slice(int(self.left // stride), max(int(self.left // stride) + 1,
                                                   math.ceil((self.left + self.new_w) / stride)))
        return rows, cols


def sigmoid_posterior(scores: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
    """(K, C) per-class sigmoid scores s -> (K, C+1) posterior p (column 0 = background).

    top: (K,) the class k of each box (default argmax_c s_c; NMS's class, which is an argmax
    too, so ties are broken as it broke them). With m = s_k (YOLO's ``cls`` and ``conf``),
    r = 1 - m and Z = r + sum_{c != k} s_c:  p_k = m;  p_0 = r * r / Z;  p_c = r * s_c / Z (c != k).
    The top class keeps its score; the rest, 1 - m, is shared between background (evidence
    r) and the other classes (evidence s_c) in proportion. Rows sum to 1, argmax_{c>=1} p_c = k
    and max_{c>=1} p_c = m exactly (p_c <= m for c != k). One class: p = (1 - s, s).
    Not calibrated: one-vs-all sigmoids are not a joint distribution (docs/method.md, [INF]).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (K, C), got shape {scores.shape}")
    num, classes = scores.shape
    out = np.zeros((num, classes + 1), np.float64)
    if num == 0:
        return out.astype(np.float32)
    rows = np.arange(num)
    top = scores.argmax(axis=1) if top is None else np.asarray(top, np.int64).reshape(-1)
    best = scores[rows, top]
    rest = 1.0 - best
    others = scores.sum(axis=1) - best
    total = rest + others
    share = np.divide(rest, total, out=np.zeros_like(rest), where=total > 0)
    out[:, 1:] = scores * share[:, None]
    out[rows, top + 1] = best
    out[:, 0] = rest * share
    return out.astype(np.float32)


def anchor_levels(feature_sizes: Sequence[tuple[int, int]], strides: Sequence[float]) -> np.ndarray:
    """(A,) pyramid level k = log2(stride) (P3 = 3, ...) of each anchor of the head's output.

    The head concatenates its levels' anchors in order, level i contributing h_i * w_i.
    """
    levels = []
    for (h, w), stride in zip(feature_sizes, strides, strict=True):
        levels.append(np.full(int(h) * int(w), round(math.log2(float(stride))), np.int64))
    return np.concatenate(levels) if levels else np.zeros(0, np.int64)
