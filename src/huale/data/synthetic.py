"""The built-in synthetic detection dataset: procedurally drawn shapes on cluttered backgrounds.

Made so that active learning has something to win, not so that a detector wins easily:

- **10 classes of different difficulty.** Easy ones have a distinct shape and colour (``star``,
  ``cross``). Others come in confusable pairs that differ by one subtle cue: ``square`` vs
  ``rectangle`` (aspect 1.0 vs 1.35-1.6), ``disc`` vs ``ring`` (filled vs hollow),
  ``triangle`` vs ``notched_triangle`` (a notch cut in the base), ``cyan_hexagon`` vs
  ``azure_hexagon`` (hues 183 vs 210 degrees).
- **Long-tailed frequencies**: from 22 % of the boxes (``star``) down to 3 %
  (``azure_hexagon``); the rare class of each pair is the one easy to mistake for a frequent one.
  Each image draws its own class mixture around these shares (Dirichlet), so rare classes come
  clumped in a few images.
- **A spread of image difficulty**: each image draws a difficulty ``d`` in [0, 1] that sets the
  number of objects (1 for ``d`` near 0, up to 13), the share of small objects (6-10 px at
  192 px), background clutter (gradient, blotchy texture, stripes, lines, specks), pixel noise,
  blur and the number of **distractors**: unlabelled object-like shapes (ellipses, crescents,
  L-shapes, half discs) in any colour.
- Colour jitter, rotation and scale from ~6 px to 40 % of the image side; every labelled object
  keeps its identifying cue (classes whose cue is small have a minimum size).

Boxes are xyxy pixel edges of the whole object (occluded parts included), clipped to the image.
**Occlusion policy**: objects overlap and may be cut by the image border; an object with less
than :data:`MIN_VISIBLE_FRACTION` (40 %) of its area visible is *not labelled* (it is counted as
hidden in ``synthetic.json``), so no box asks the detector for something it cannot see.

Every image is drawn from its own generator ``numpy.random.default_rng([seed, index])``, so an
image does not depend on the others and the same seed gives byte-identical files. Sampling what
to draw (:func:`sample_layout`, pure) is separate from drawing it (:func:`render_layout`).

**Clips** (``clip_length`` > 1, optional): the train split is cut into clips of that many
consecutive images, as pools cut from video are: a clip's first frame is the image its index
draws, each later frame is that layout moved a little (:func:`next_frame`: every shape drifts a
few px and turns a few degrees, the light and the sensor noise change; the background stays),
so the frames of a clip are near-duplicates whose boxes differ by a few pixels and whose hidden
objects may differ. The test split stays independent images. ``synthetic.json`` lists each
train image's clip (``image_clip``). With the default ``clip_length`` 1 the dataset is the one
earlier versions wrote, byte for byte.

Folder written by :func:`generate_synthetic`::

    out_dir/images/000012.jpg   image id "12"
    out_dir/train.json          COCO, file_name relative to out_dir; the first images
    out_dir/test.json           COCO; the last ``test_fraction`` of the images
    out_dir/synthetic.json      parameters, class names, box counts; written last of all
"""

from __future__ import annotations

import colorsys
import inspect
import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from huale.data.coco import write_coco
from huale.data.records import DetectionDataset, ImageRecord
from huale.errors import ConfigError
from huale.io import atomic_write_json
from huale.locking import FolderLock

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JPEG_QUALITY = 92
MIN_VISIBLE_FRACTION = 0.4
MIN_IMAGE_SIZE = 64
SUPERSAMPLING = 4  # shapes are drawn at 4x and box-filtered down: anti-aliased, 1/4 px exact
MARKER_NAME = "synthetic.json"


@dataclass(frozen=True)
class ClassSpec:
    """One class: its shape, its base hue (degrees) and its expected share of all boxes."""

    name: str
    shape: str
    hue: float
    frequency: float
    hue_jitter: float = 8.0  # at most this many degrees off ``hue``
    min_size: float = 6.0  # px; below this the class's identifying cue would not be visible
    min_saturation: float = 0.6  # hue-cued classes stay vivid so that their hue stays readable
    min_value: float = 0.55


CLASS_SPECS: tuple[ClassSpec, ...] = (
    ClassSpec("star", "star", 52.0, 0.22),
    ClassSpec("disc", "disc", 0.0, 0.17),
    ClassSpec("square", "square", 225.0, 0.14),
    ClassSpec("triangle", "triangle", 125.0, 0.12, min_size=7.0),
    ClassSpec("cross", "cross", 300.0, 0.10),
    ClassSpec(
        "cyan_hexagon",
        "hexagon",
        183.0,
        0.07,
        hue_jitter=5.0,
        min_size=8.0,
        min_saturation=0.75,
        min_value=0.8,
    ),
    ClassSpec("ring", "ring", 0.0, 0.06, min_size=9.0),
    ClassSpec("rectangle", "rectangle", 225.0, 0.05, min_size=8.0),
    ClassSpec("notched_triangle", "notched_triangle", 125.0, 0.04, min_size=11.0),
    ClassSpec(
        "azure_hexagon",
        "hexagon",
        210.0,
        0.03,
        hue_jitter=5.0,
        min_size=8.0,
        min_saturation=0.75,
        min_value=0.8,
    ),
)
DISTRACTOR_SHAPES = ("ellipse", "crescent", "l_shape", "half_disc")
MIXTURE_CONCENTRATION = 5.0  # Dirichlet concentration of the per-image class mixture


def synthetic_classes() -> list[str]:
    """Class names; ``names[i]`` is label ``i + 1``. Stable across versions of the generator."""
    return [spec.name for spec in CLASS_SPECS]


# --------------------------------------------------------------------------- layout (pure)


@dataclass(frozen=True)
class PlacedShape:
    """One shape to draw. ``label`` is 1..C for an object, 0 for a distractor (never labelled).

    ``size`` is the longest side of the unrotated shape in px, ``aspect`` its long/short ratio
    (rectangle, ellipse), ``angle`` the rotation in degrees, ``color`` RGB 0..255.
    """

    shape: str
    label: int
    cx: float
    cy: float
    size: float
    aspect: float
    angle: float
    color: tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class Background:
    """Clutter under the objects. ``texture``: (g, g) in [-1, 1], upsampled to the image."""

    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    gradient_angle: float
    texture: np.ndarray
    texture_amplitude: float
    stripe_amplitude: float
    stripe_period: float
    stripe_angle: float
    lines: tuple[tuple[float, float, float, float, int, tuple[int, int, int]], ...]
    specks: tuple[tuple[float, float, float, tuple[int, int, int]], ...]


@dataclass(frozen=True)
class ImageLayout:
    """Everything needed to draw one image; ``shapes`` in drawing order (later ones on top)."""

    image_size: int
    difficulty: float
    background: Background
    shapes: tuple[PlacedShape, ...]
    brightness: float
    noise_sigma: float
    blur_radius: float
    noise_seed: int

    @property
    def labels(self) -> np.ndarray:
        """(M,) labels of the objects to draw, before hidden ones are dropped."""
        return np.asarray([s.label for s in self.shapes if s.label > 0], dtype=np.int64)


def _hsv_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue % 360.0) / 360.0, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def _sample_size(
    rng: np.random.Generator, image_size: int, difficulty: float, min_size: float
) -> float:
    """Object size in px: often small (6-10 px at 192), else log-uniform up to 40 % of the side."""
    small_lo, small_hi = max(6.0, 0.031 * image_size), max(10.0, 0.055 * image_size)
    if rng.uniform() < 0.08 + 0.32 * difficulty:
        size = rng.uniform(small_lo, small_hi)
    else:
        upper = (0.40 - 0.14 * difficulty) * image_size  # crowded images get smaller objects
        size = math.exp(rng.uniform(math.log(small_hi), math.log(upper)))
    return max(size, min_size)


def _sample_center(
    rng: np.random.Generator, image_size: int, size: float, taken: list[tuple[float, float, float]]
) -> tuple[float, float]:
    """A centre that keeps >= 60 % of the extent in the image and, if possible, does not sit on
    top of an earlier object (centres closer than half their radii sum are retried)."""
    lo, hi = 0.3 * size, image_size - 0.3 * size
    radius = size / 2
    for _ in range(12):
        cx, cy = rng.uniform(lo, hi, size=2)
        if all(math.hypot(cx - x, cy - y) >= 0.5 * (radius + r) for x, y, r in taken):
            break
    return float(cx), float(cy)


def _sample_background(rng: np.random.Generator, image_size: int, difficulty: float) -> Background:
    d, s = difficulty, image_size
    hue = rng.uniform(0, 360)
    value_a = rng.uniform(0.3, 0.9)
    value_b = float(np.clip(value_a + rng.uniform(-0.35, 0.35), 0.2, 0.95))
    color_a = _hsv_rgb(hue, rng.uniform(0, 0.22), value_a)
    color_b = _hsv_rgb(hue + rng.normal(0, 40), rng.uniform(0, 0.22), value_b)
    grid = int(rng.integers(4, 10))
    texture = rng.uniform(-1, 1, size=(grid, grid)).astype(np.float32)
    striped = rng.uniform() < 0.3 + 0.4 * d
    stripe_amplitude = rng.uniform(3, 6 + 14 * d) if striped else 0.0
    stripe_period, stripe_angle = rng.uniform(5, 30), rng.uniform(0, 180)
    lines = []
    for _ in range(int(rng.poisson(0.5 + 7 * d))):
        x0, y0, x1, y1 = rng.uniform(-0.1 * s, 1.1 * s, size=4)
        width = int(rng.choice([1, 1, 2]))
        color = _hsv_rgb(rng.uniform(0, 360), rng.uniform(0, 0.5), rng.uniform(0.15, 0.95))
        lines.append((float(x0), float(y0), float(x1), float(y1), width, color))
    specks = []
    for _ in range(int(rng.poisson(1 + 12 * d))):
        x, y = rng.uniform(0, s, size=2)
        color = _hsv_rgb(rng.uniform(0, 360), rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0))
        specks.append((float(x), float(y), float(rng.uniform(0.6, 1.3)), color))
    return Background(
        color_a=color_a,
        color_b=color_b,
        gradient_angle=float(rng.uniform(0, 360)),
        texture=texture,
        texture_amplitude=float(8 + 30 * d),
        stripe_amplitude=float(stripe_amplitude),
        stripe_period=float(stripe_period),
        stripe_angle=float(stripe_angle),
        lines=tuple(lines),
        specks=tuple(specks),
    )


def sample_layout(rng: np.random.Generator, image_size: int = 192) -> ImageLayout:
    """Draw what one image shows (no pixels): difficulty, objects, distractors, clutter."""
    d = float(rng.uniform())
    background = _sample_background(rng, image_size, d)

    num_objects = int(np.clip(np.rint(1 + 10 * d + rng.normal(0, 1.0)), 1, 13))
    frequencies = np.asarray([spec.frequency for spec in CLASS_SPECS])
    mixture = rng.dirichlet(MIXTURE_CONCENTRATION * frequencies)
    if not np.all(np.isfinite(mixture)) or mixture.sum() <= 0:  # underflow with tiny alphas
        mixture = frequencies
    labels = rng.choice(len(CLASS_SPECS), size=num_objects, p=mixture / mixture.sum()) + 1

    objects: list[PlacedShape] = []
    taken: list[tuple[float, float, float]] = []
    for label in labels:
        spec = CLASS_SPECS[label - 1]
        size = _sample_size(rng, image_size, d, spec.min_size)
        aspect = float(rng.uniform(1.35, 1.6)) if spec.shape == "rectangle" else 1.0
        angle = float(rng.uniform(0, 360))
        hue = spec.hue + float(np.clip(rng.normal(0, 0.5), -1, 1)) * spec.hue_jitter
        color = _hsv_rgb(
            hue, rng.uniform(spec.min_saturation, 1.0), rng.uniform(spec.min_value, 1.0)
        )
        cx, cy = _sample_center(rng, image_size, size, taken)
        taken.append((cx, cy, size / 2))
        objects.append(
            PlacedShape(spec.shape, int(label), cx, cy, float(size), aspect, angle, color)
        )

    distractors: list[PlacedShape] = []
    for _ in range(int(rng.poisson(0.4 + 4 * d))):
        shape = DISTRACTOR_SHAPES[int(rng.integers(len(DISTRACTOR_SHAPES)))]
        size = _sample_size(rng, image_size, d, 6.0)
        aspect = float(rng.uniform(2.0, 3.2)) if shape == "ellipse" else 1.0
        angle = float(rng.uniform(0, 360))
        color = _hsv_rgb(rng.uniform(0, 360), rng.uniform(0.25, 0.95), rng.uniform(0.4, 1.0))
        cx, cy = rng.uniform(0.3 * size, image_size - 0.3 * size, size=2)
        distractors.append(
            PlacedShape(shape, 0, float(cx), float(cy), float(size), aspect, angle, color)
        )

    everything = objects + distractors
    order = rng.permutation(len(everything))
    blurred = rng.uniform() < 0.35 * d
    return ImageLayout(
        image_size=image_size,
        difficulty=d,
        background=background,
        shapes=tuple(everything[i] for i in order),
        brightness=float(rng.uniform(0.85, 1.12)),
        noise_sigma=float(2 + 10 * d),
        blur_radius=float(rng.uniform(0.3, 0.7)) if blurred else 0.0,
        noise_seed=int(rng.integers(2**63 - 1)),
    )


# --------------------------------------------------------------------------- geometry


def _circle(
    radius: float,
    cx: float = 0.0,
    cy: float = 0.0,
    start: float = 0.0,
    stop: float = 360.0,
    points: int = 64,
) -> np.ndarray:
    t = np.radians(np.linspace(start, stop, points, endpoint=stop - start < 360.0))
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _regular(corners: int, radius: float, phase: float = -90.0) -> np.ndarray:
    return _circle(radius, start=phase, stop=phase + 360.0, points=corners)


def shape_parts(shape: str, size: float, aspect: float = 1.0) -> list[tuple[np.ndarray, bool]]:
    """Polygons of an unrotated shape centred at 0: ``[(vertices (K, 2), filled), ...]``.

    Drawn in order; ``filled=False`` cuts the polygon out again (ring hole, notch, crescent).
    """
    h = size / 2
    if shape == "square":
        return [(np.array([[-h, -h], [h, -h], [h, h], [-h, h]]), True)]
    if shape == "rectangle":
        w = h / aspect
        return [(np.array([[-h, -w], [h, -w], [h, w], [-h, w]]), True)]
    if shape == "disc":
        return [(_circle(h), True)]
    if shape == "ring":
        return [(_circle(h), True), (_circle(0.55 * h), False)]
    if shape in ("triangle", "notched_triangle"):
        radius = size / math.sqrt(3)  # equilateral, side = size
        triangle = _regular(3, radius)
        triangle[:, 1] += radius / 4  # centre the bounding box vertically
        parts = [(triangle, True)]
        if shape == "notched_triangle":
            base_y, height = triangle[1, 1], 1.5 * radius
            half_width, depth = 0.14 * size, 0.32 * height
            notch = np.array(
                [
                    [-half_width, base_y + 1],
                    [half_width, base_y + 1],
                    [half_width, base_y - depth],
                    [-half_width, base_y - depth],
                ]
            )
            parts.append((notch, False))
        return parts
    if shape == "star":
        outer = _regular(5, h)
        inner = _regular(5, 0.45 * h, phase=-90.0 + 36.0)
        return [(np.stack([outer, inner], axis=1).reshape(-1, 2), True)]
    if shape == "cross":
        a = 0.17 * size
        return [
            (np.array([[-h, -a], [h, -a], [h, a], [-h, a]]), True),
            (np.array([[-a, -h], [a, -h], [a, h], [-a, h]]), True),
        ]
    if shape == "hexagon":
        return [(_regular(6, h, phase=0.0), True)]
    if shape == "ellipse":
        points = _circle(1.0)
        return [(points * np.array([h, h / aspect]), True)]
    if shape == "crescent":
        return [(_circle(h), True), (_circle(0.85 * h, cx=0.45 * h), False)]
    if shape == "l_shape":
        t = 0.36 * size
        return [
            (np.array([[-h, -h], [-h + t, -h], [-h + t, h - t], [h, h - t], [h, h], [-h, h]]), True)
        ]
    if shape == "half_disc":
        arc = _circle(h, start=0.0, stop=180.0, points=33)
        arc[:, 1] -= h / 2
        return [(arc, True)]
    raise ValueError(f"unknown shape {shape!r}")


def _placed_parts(shape: PlacedShape) -> list[tuple[np.ndarray, bool]]:
    """Parts of ``shape`` rotated and moved to its centre, in image px."""
    t = math.radians(shape.angle)
    rotation = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    centre = np.array([shape.cx, shape.cy])
    return [
        (vertices @ rotation + centre, filled)
        for vertices, filled in shape_parts(shape.shape, shape.size, shape.aspect)
    ]


def shape_coverage(shape: PlacedShape) -> tuple[np.ndarray, int, int]:
    """Anti-aliased coverage of ``shape``: ``(alpha (h, w) in [0, 1], x0, y0)``.

    ``alpha[i, j]`` is the fraction of pixel ``(x0 + j, y0 + i)`` the shape covers; the patch
    may reach outside the image.
    """
    parts = _placed_parts(shape)
    points = np.concatenate([vertices for vertices, _ in parts])
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
    w, h = int(x1 - x0), int(y1 - y0)
    mask = Image.new("L", (w * SUPERSAMPLING, h * SUPERSAMPLING), 0)
    draw = ImageDraw.Draw(mask)
    for vertices, filled in parts:
        # PIL floors the vertices and fills boundary pixels too: on average a polygon grows by
        # half a supersampled pixel (1/8 px) on every side.
        scaled = (vertices - (x0, y0)) * SUPERSAMPLING
        draw.polygon([tuple(p) for p in scaled.tolist()], fill=255 if filled else 0)
    alpha = np.asarray(mask, dtype=np.float32).reshape(h, SUPERSAMPLING, w, SUPERSAMPLING)
    return alpha.mean(axis=(1, 3)) / 255.0, int(x0), int(y0)


def shape_box(shape: PlacedShape, image_size: int) -> np.ndarray:
    """(4,) xyxy extent of the whole shape (hidden parts included), clipped to the image."""
    filled = np.concatenate([vertices for vertices, is_filled in _placed_parts(shape) if is_filled])
    return np.concatenate([filled.min(axis=0), filled.max(axis=0)]).clip(0, image_size)


def _in_image(alpha: np.ndarray, x0: int, y0: int, size: int) -> tuple[slice, slice, np.ndarray]:
    """Image rows, image columns and the part of the patch ``alpha`` that falls inside them."""
    rows = slice(max(y0, 0), min(y0 + alpha.shape[0], size))
    cols = slice(max(x0, 0), min(x0 + alpha.shape[1], size))
    return rows, cols, alpha[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0]


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class RenderedImage:
    """Pixels and labels of one image.

    pixels: (S, S, 3) uint8; boxes: (N, 4) float32 xyxy; labels: (N,) int64 in 1..C;
    visible_fraction: (N,) of each labelled object; num_hidden: objects dropped as < 40 % visible.
    """

    pixels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    visible_fraction: np.ndarray
    num_hidden: int


def _render_background(layout: ImageLayout) -> np.ndarray:
    """(S, S, 3) float32 0..255: gradient, blotchy texture, stripes, then lines and specks."""
    s, bg = layout.image_size, layout.background
    coords = np.arange(s, dtype=np.float32) + 0.5 - s / 2
    theta = math.radians(bg.gradient_angle)
    along = (coords[None, :] * math.cos(theta) + coords[:, None] * math.sin(theta)) / s + 0.5
    t = np.clip(along, 0, 1)[..., None]
    image = (1 - t) * np.asarray(bg.color_a, np.float32) + t * np.asarray(bg.color_b, np.float32)
    texture = Image.fromarray(bg.texture).resize((s, s), Image.Resampling.BICUBIC)
    shade = np.asarray(texture, dtype=np.float32) * bg.texture_amplitude
    if bg.stripe_amplitude:
        phi = math.radians(bg.stripe_angle)
        across = coords[None, :] * math.cos(phi) + coords[:, None] * math.sin(phi)
        shade = shade + bg.stripe_amplitude * np.sin(2 * math.pi * across / bg.stripe_period)
    image = np.clip(image + shade[..., None], 0, 255)
    canvas = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for x0, y0, x1, y1, width, color in bg.lines:
        draw.line([(x0, y0), (x1, y1)], fill=color, width=width)
    for x, y, r, color in bg.specks:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
    return np.asarray(canvas, dtype=np.float32)


def render_layout(layout: ImageLayout) -> RenderedImage:
    """Draw ``layout``; label the objects at least :data:`MIN_VISIBLE_FRACTION` visible."""
    s = layout.image_size
    canvas = _render_background(layout)
    patches = [shape_coverage(shape) for shape in layout.shapes]
    for shape, (alpha, x0, y0) in zip(layout.shapes, patches, strict=True):
        rows, cols, a = _in_image(alpha, x0, y0, s)
        color = np.asarray(shape.color, np.float32)
        canvas[rows, cols] = canvas[rows, cols] * (1 - a[..., None]) + color * a[..., None]

    # Visibility: walk back from the top, accumulating how much of each pixel later shapes cover.
    covered = np.zeros((s, s), np.float32)
    kept: list[tuple[np.ndarray, int, float]] = []
    num_hidden = 0
    for shape, (alpha, x0, y0) in zip(reversed(layout.shapes), reversed(patches), strict=True):
        rows, cols, a = _in_image(alpha, x0, y0, s)
        if shape.label > 0:
            box = shape_box(shape, s)
            visible = float((a * (1 - covered[rows, cols])).sum()) / max(float(alpha.sum()), 1e-6)
            if visible >= MIN_VISIBLE_FRACTION and box[2] > box[0] and box[3] > box[1]:
                kept.append((box, shape.label, visible))
            else:
                num_hidden += 1
        covered[rows, cols] = 1 - (1 - covered[rows, cols]) * (1 - a)
    kept.reverse()  # back to drawing order

    canvas *= layout.brightness
    noise_rng = np.random.default_rng(layout.noise_seed)
    canvas += noise_rng.normal(0, layout.noise_sigma, size=canvas.shape).astype(np.float32)
    image = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    if layout.blur_radius:
        image = image.filter(ImageFilter.GaussianBlur(layout.blur_radius))
    return RenderedImage(
        pixels=np.asarray(image),
        boxes=np.round(np.asarray([k[0] for k in kept], np.float32).reshape(-1, 4) * 8) / 8,
        labels=np.asarray([k[1] for k in kept], np.int64),
        visible_fraction=np.asarray([k[2] for k in kept], np.float32),
        num_hidden=num_hidden,
    )


# how far a frame moves from the one before it (clips): drift in px at 192 px (scaled with the
# image side), turn in degrees, relative change of brightness
FRAME_DRIFT_PX = 2.0
FRAME_TURN_DEG = 3.0
FRAME_LIGHT = 0.03


def next_frame(layout: ImageLayout, rng: np.random.Generator) -> ImageLayout:
    """The next frame of a clip: ``layout`` with every shape drifted (normal, sd
    :data:`FRAME_DRIFT_PX` at 192 px) and turned (sd :data:`FRAME_TURN_DEG`), brightness changed
    by a few percent and fresh sensor noise; background, colours, sizes and classes stay."""
    drift = FRAME_DRIFT_PX * layout.image_size / 192
    shapes = tuple(
        replace(shape, cx=float(shape.cx + rng.normal(0, drift)),
                cy=float(shape.cy + rng.normal(0, drift)),
                angle=float((shape.angle + rng.normal(0, FRAME_TURN_DEG)) % 360))
        for shape in layout.shapes
    )
    brightness = float(np.clip(layout.brightness * (1 + rng.normal(0, FRAME_LIGHT)), 0.8, 1.18))
    return replace(layout, shapes=shapes, brightness=brightness,
                   noise_seed=int(rng.integers(2**63 - 1)))


def dataset_layout(params: dict, index: int) -> tuple[ImageLayout, int | None]:
    """Image ``index`` of the dataset with ``params`` and its clip (None: not in a clip)."""
    seed, size = params["seed"], params["image_size"]
    clip_length = params.get("clip_length", 1)
    num_train = params["num_images"] - _num_test(params)
    if clip_length == 1 or index >= num_train:
        return sample_layout(np.random.default_rng([seed, index]), size), None
    clip = index // clip_length
    first = clip * clip_length
    layout = sample_layout(np.random.default_rng([seed, first]), size)
    for frame in range(first + 1, index + 1):  # each frame moves from the one before it
        layout = next_frame(layout, np.random.default_rng([seed, frame, 1]))
    return layout, clip


def render_image(seed: int, index: int, image_size: int = 192) -> RenderedImage:
    """Image ``index`` of the dataset with ``seed``, drawn from its own generator alone."""
    return render_layout(sample_layout(np.random.default_rng([seed, index]), image_size))


# --------------------------------------------------------------------------- dataset folder


@dataclass(frozen=True)
class SyntheticInfo:
    """What :func:`generate_synthetic` wrote. ``box_counts[split][class name]``."""

    out_dir: Path
    train_json: Path
    test_json: Path
    class_names: list[str]
    box_counts: dict[str, dict[str, int]]
    params: dict = field(default_factory=dict)


def _whole_number(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"synthetic {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _params(num_images: int, seed: int, image_size: int, test_fraction: float,
            clip_length: int = 1) -> dict:
    """The generation parameters, validated (:class:`ConfigError`), as stored in synthetic.json
    (``clip_length`` only when it is not 1, so that datasets written before clips existed keep
    their parameters)."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise ConfigError(f"synthetic test_fraction must be a number, got {test_fraction!r}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"synthetic test_fraction must be in (0, 1), got {test_fraction!r}")
    params = {
        "num_images": _whole_number("num_images", num_images, 2),
        "seed": _whole_number("seed", seed, 0),
        "image_size": _whole_number("image_size", image_size, MIN_IMAGE_SIZE),
        "test_fraction": float(test_fraction),
    }
    if _whole_number("clip_length", clip_length, 1) != 1:
        params["clip_length"] = int(clip_length)
    return params


def check_synthetic_options(options: object) -> dict:
    """The parameters a ``data.synthetic`` mapping of a loop config asks for (its keys are
    :func:`ensure_synthetic`'s, defaults included), validated: unknown keys and bad values are a
    ConfigError."""
    if not isinstance(options, dict):
        raise ConfigError(f"synthetic options must be a mapping, got {options!r}")
    defaults = {name: p.default for name, p in inspect.signature(ensure_synthetic).parameters.items()
                if p.kind is p.KEYWORD_ONLY and name != "progress"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown synthetic option(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(defaults)}")
    return _params(**{**defaults, **options})


def _num_test(params: dict) -> int:
    n = params["num_images"]
    return min(max(round(n * params["test_fraction"]), 1), n - 1)


def _file_name(index: int, num_images: int) -> str:
    return f"images/{index:0{max(6, len(str(num_images - 1)))}d}.jpg"


def _expected_files(params: dict) -> list[str]:
    n = params["num_images"]
    return ["train.json", "test.json"] + [_file_name(i, n) for i in range(n)]


def _info(out_dir: Path, marker: dict) -> SyntheticInfo:
    return SyntheticInfo(
        out_dir=out_dir,
        train_json=out_dir / "train.json",
        test_json=out_dir / "test.json",
        class_names=list(marker["class_names"]),
        box_counts={split: dict(v["box_counts"]) for split, v in marker["splits"].items()},
        params=dict(marker["params"]),
    )


def _remove_stale_images(images_dir: Path, keep: set[str]) -> None:
    """Delete generator-named images (``000123.jpg``) from an earlier, larger run."""
    for path in images_dir.glob("*.jpg"):
        if re.fullmatch(r"\d{6,}\.jpg", path.name) and f"images/{path.name}" not in keep:
            path.unlink()


def generate_synthetic(
    out_dir: str | Path,
    *,
    num_images: int = 600,
    seed: int = 0,
    image_size: int = 192,
    test_fraction: float = 0.25,
    clip_length: int = 1,
    progress: bool = True,
) -> SyntheticInfo:
    """Draw the dataset into ``out_dir`` (see the module docstring for the layout), replacing it.

    The last ``test_fraction`` of the images form the test split; ``clip_length`` > 1 cuts the
    train split into clips of near-duplicate frames. ``synthetic.json`` is removed first and
    written last, so an interrupted run is never mistaken for a finished one.
    """
    params = _params(num_images, seed, image_size, test_fraction, clip_length)
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER_NAME).unlink(missing_ok=True)
    _remove_stale_images(images_dir, set(_expected_files(params)))

    class_names = synthetic_classes()
    num_train = params["num_images"] - _num_test(params)
    records: list[ImageRecord] = []
    hidden = {"train": 0, "test": 0}
    difficulty: dict[str, float] = {}
    clips: dict[str, int] = {}
    for index in tqdm(
        range(params["num_images"]), desc="synthetic images", unit="img", disable=not progress
    ):
        layout, clip = dataset_layout(params, index)
        if clip is not None:
            clips[str(index)] = clip
        rendered = render_layout(layout)
        path = out_dir / _file_name(index, params["num_images"])
        Image.fromarray(rendered.pixels).save(
            path, format="JPEG", quality=JPEG_QUALITY, subsampling=0
        )
        records.append(
            ImageRecord(
                image_id=str(index),
                path=path,
                width=params["image_size"],
                height=params["image_size"],
                boxes=rendered.boxes,
                labels=rendered.labels,
                difficult=np.zeros(len(rendered.labels), bool),
            )
        )
        hidden["train" if index < num_train else "test"] += rendered.num_hidden
        difficulty[str(index)] = round(layout.difficulty, 4)

    splits = {"train": records[:num_train], "test": records[num_train:]}
    summary = {}
    for split, split_records in splits.items():
        dataset = DetectionDataset(split_records, class_names)
        info = {"description": f"huale synthetic dataset, {split} split", **params}
        write_coco(dataset, out_dir / f"{split}.json", image_root=out_dir, info=info)
        counts = dataset.class_counts()
        summary[split] = {
            "images": len(split_records),
            "box_counts": {name: int(c) for name, c in zip(class_names, counts, strict=True)},
            "hidden_objects": hidden[split],
        }
    marker = {
        "format_version": FORMAT_VERSION,
        "params": params,
        "class_names": class_names,
        "splits": summary,
        "jpeg_quality": JPEG_QUALITY,
        "min_visible_fraction": MIN_VISIBLE_FRACTION,
        "image_difficulty": difficulty,
    }
    if clips:
        marker["image_clip"] = clips
    atomic_write_json(out_dir / MARKER_NAME, marker)
    log.info(
        "synthetic dataset: %d images (%d train, %d test) in %s",
        params["num_images"],
        num_train,
        params["num_images"] - num_train,
        out_dir,
    )
    return _info(out_dir, marker)


def ensure_synthetic(
    out_dir: str | Path,
    *,
    num_images: int = 600,
    seed: int = 0,
    image_size: int = 192,
    test_fraction: float = 0.25,
    clip_length: int = 1,
    progress: bool = True,
) -> SyntheticInfo:
    """The dataset in ``out_dir`` as :func:`generate_synthetic` would write it, drawn only if
    ``synthetic.json`` is missing, was made with other parameters, or a file it lists is gone.

    A folder found complete is only read. Otherwise the folder's lock is taken (waiting for
    it) and the check made again, so that processes started together on one data folder (two
    ``huale loop`` runs of a preset) draw it once: the first draws, the others wait and then
    find it complete, instead of rewriting images another one is reading."""
    params = _params(num_images, seed, image_size, test_fraction, clip_length)
    out_dir = Path(out_dir)
    info = _complete_info(out_dir, params)
    if info is not None:
        return info
    with FolderLock(out_dir, wait=True):
        info = _complete_info(out_dir, params)
        if info is not None:
            return info
        return generate_synthetic(out_dir, progress=progress, **params)


def _complete_info(out_dir: Path, params: dict) -> SyntheticInfo | None:
    """The folder's dataset if it is complete and drawn with ``params``, else None."""
    marker_path = out_dir / MARKER_NAME
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
        complete = (
            marker.get("format_version") == FORMAT_VERSION
            and marker.get("params") == params
            and all((out_dir / name).is_file() for name in _expected_files(params))
        )
    except (OSError, ValueError, AttributeError):
        complete = False
    return _info(out_dir, marker) if complete else None
