"""The round's gallery: why each image was picked, as a static page and a contact sheet.

:func:`write_gallery` writes ``gallery.html`` (no server, no external resources: open it from
disk), ``thumbnails/`` (one JPEG per view and image) and ``contact_sheet.png`` (the top 24).
Each selected image, in rank order, shows its score, the stage it reached, and its uncertain
objects drawn on the image, coloured from blue (least uncertain of the round) to red (most
uncertain), with a per-object line giving class, uncertainty and the per-level values the
strategy reported. When the strategy used the horizontal flip, the flipped view is drawn too,
with the detections the model made on it (each coloured like the uncertain object it overlaps
most, grey when none).

The page reports a thumbnail that fails to load on the console (``console.error``) and sets
``data-images-loaded`` / ``data-images-broken`` on ``<body>`` once loaded, for browser tests.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from huale.data.images import open_rgb
from huale.io import atomic_write_bytes, atomic_write_text

GALLERY = "gallery.html"
THUMBNAILS = "thumbnails"
CONTACT_SHEET = "contact_sheet.png"
CONTACT_SHEET_COUNT = 24
THUMB_SIDE = 320
SHEET_SIDE = 180
UNMATCHED = (150, 150, 150)


@dataclass
class GalleryObject:
    """An uncertain object: box xyxy (original pixels), class, uncertainty, per-level values."""

    box: Sequence[float]
    class_name: str
    uncertainty: float | None
    levels: dict = field(default_factory=dict)


@dataclass
class GalleryImage:
    """A selected image. flip_boxes: (K, 4) detections on the flipped view, original frame."""

    rank: int
    image_id: str
    path: Path
    score: float | None
    stage: str
    objects: list[GalleryObject]
    predicted_boxes: int = 0
    flip_boxes: np.ndarray | None = None
    flip_labels: list[str] = field(default_factory=list)


def uncertainty_colour(value: float | None, low: float, high: float) -> tuple[int, int, int]:
    """Blue (``low``) to red (``high``) through purple; grey for a missing value."""
    if value is None or not math.isfinite(value):
        return UNMATCHED
    t = 0.5 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    return (int(40 + 215 * t), 60, int(255 - 215 * t))


def write_gallery(out_dir: str | Path, images: Sequence[GalleryImage], *, title: str) -> dict[str, Path]:
    """Write the page, its thumbnails and the contact sheet into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    images = sorted(images, key=lambda i: i.rank)
    values = [o.uncertainty for i in images for o in i.objects
              if o.uncertainty is not None and math.isfinite(o.uncertainty)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    cards, sheet_tiles = [], []
    for image in images:
        picture = open_rgb(image.path)
        colours = [uncertainty_colour(o.uncertainty, low, high) for o in image.objects]
        original = _draw(picture, [o.box for o in image.objects], colours,
                         [f"{o.class_name} {_fmt(o.uncertainty)}" for o in image.objects])
        names = {"orig": f"{THUMBNAILS}/{image.rank:04d}-orig.jpg"}
        _save_jpeg(out_dir / names["orig"], original)
        if image.flip_boxes is not None:
            names["flip"] = f"{THUMBNAILS}/{image.rank:04d}-flip.jpg"
            _save_jpeg(out_dir / names["flip"], _flip_view(picture, image, colours))
        if len(sheet_tiles) < CONTACT_SHEET_COUNT:
            sheet_tiles.append((image, original))
        cards.append(_card(image, names, colours))
    files = {"gallery": atomic_write_text(out_dir / GALLERY, _page(title, cards, low, high, len(images)))}
    files["contact_sheet"] = _contact_sheet(out_dir / CONTACT_SHEET, sheet_tiles, title)
    return files


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _scale(picture: Image.Image, side: int) -> tuple[Image.Image, float]:
    factor = side / max(picture.size)
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    resample = Image.NEAREST if factor > 2 else Image.BILINEAR
    return picture.resize(size, resample), factor


def _draw(picture: Image.Image, boxes, colours, captions, side: int = THUMB_SIDE) -> Image.Image:
    """A ``side``-px thumbnail with ``boxes`` (original pixels) outlined and captioned."""
    thumb, factor = _scale(picture, side)
    draw = ImageDraw.Draw(thumb)
    for box, colour, caption in zip(boxes, colours, captions, strict=True):
        x1, y1, x2, y2 = (float(v) * factor for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=3)
        if caption:
            draw.text((x1 + 3, max(0.0, y1 - 11) if y1 > 11 else y1 + 2), caption, fill=colour)
    return thumb


def _flip_view(picture: Image.Image, image: GalleryImage, colours) -> Image.Image:
    """The mirrored image with the flipped view's detections, in the mirrored frame."""
    width = picture.width
    boxes = np.asarray(image.flip_boxes, np.float64).reshape(-1, 4)
    mirrored = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    targets = np.asarray([o.box for o in image.objects], np.float64).reshape(-1, 4)
    flip_colours = []
    for box in boxes:
        iou = _iou(box, targets)
        best = int(np.argmax(iou)) if len(iou) else -1
        flip_colours.append(colours[best] if best >= 0 and iou[best] >= 0.3 else UNMATCHED)
    captions = list(image.flip_labels) if len(image.flip_labels) == len(boxes) else [""] * len(boxes)
    return _draw(ImageOps.mirror(picture), mirrored, flip_colours, captions)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    if len(others) == 0:
        return np.zeros(0)
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(others) - inter, 1e-12)


def _save_jpeg(path: Path, picture: Image.Image) -> None:
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=88)
    atomic_write_bytes(path, buffer.getvalue())


def _levels(levels: dict) -> str:
    """Per-level values as ``scale: P3 0.12, P4 0.5; cell: P3 car 0.8``."""
    return "; ".join(f"{name}: {_value(value)}" for name, value in levels.items())


def _value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _fmt(float(value))
    return str(value)


def _card(image: GalleryImage, names: dict[str, str], colours) -> str:
    esc = html.escape
    views = "".join(
        f'<figure><img src="{esc(src)}" alt="{esc(image.image_id)} ({view})" loading="eager">'
        f"<figcaption>{'original' if view == 'orig' else 'horizontal flip'}</figcaption></figure>"
        for view, src in names.items()
    )
    rows = "".join(
        f'<li><span class="swatch" style="background: rgb{colour}"></span>'
        f"<b>{esc(o.class_name)}</b> uncertainty {_fmt(o.uncertainty)}"
        f"{' &mdash; ' + esc(_levels(o.levels)) if o.levels else ''}</li>"
        for o, colour in zip(image.objects, colours, strict=True)
    ) or "<li>no uncertain object reported (the image was ranked by its image-level score)</li>"
    return (
        f'<section class="card" id="rank-{image.rank}" data-image-id="{esc(image.image_id)}">'
        f"<h2>#{image.rank} &middot; {esc(image.image_id)}</h2>"
        f'<p class="facts">score <b>{_fmt(image.score)}</b> &middot; stage reached '
        f"<b>{esc(image.stage)}</b> &middot; {image.predicted_boxes} pre-annotated boxes</p>"
        f'<div class="views">{views}</div><ul class="reasons">{rows}</ul></section>'
    )


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em;
        margin-bottom: 1em; }
.card h2 { font-size: 1.05em; margin: 0 0 0.3em 0; }
.views { display: flex; gap: 1em; flex-wrap: wrap; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 320px; border: 1px solid #ccc; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em;
          vertical-align: middle; }
.legend { display: inline-block; width: 12em; height: 0.9em; vertical-align: middle;
          background: linear-gradient(to right, rgb(40,60,255), rgb(255,60,40)); }
.reasons { font-size: 0.9em; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img"), loaded = 0, broken = 0;
  images.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { loaded += 1; }
    else { broken += 1; console.error("huale gallery: thumbnail failed to load: " + img.src); }
  });
  document.body.setAttribute("data-images-loaded", String(loaded));
  document.body.setAttribute("data-images-broken", String(broken));
});
"""


def _page(title: str, cards: list[str], low: float, high: float, count: int) -> str:
    esc = html.escape
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>\n"
        f'<body data-selected="{count}"><h1>{esc(title)}</h1>'
        f"<p>{count} selected images in rank order (1 = label first). Boxes: the objects the "
        f'strategy found uncertain, coloured by uncertainty: <span class="legend"></span> '
        f"{_fmt(low)} to {_fmt(high)}. Grey: a detection of the flipped view matching none.</p>\n"
        + "\n".join(cards)
        + f"\n<script>{_SCRIPT}</script>\n"
        + f"<!-- {esc(json.dumps({'selected': count}))} -->\n</body></html>\n"
    )


def _contact_sheet(path: Path, tiles: list[tuple[GalleryImage, Image.Image]], title: str) -> Path:
    """The first images (rank order) in a grid of 6 columns, each captioned with rank and score."""
    columns = 6
    rows = max(1, math.ceil(len(tiles) / columns))
    cell, caption = SHEET_SIDE, 16
    sheet = Image.new("RGB", (columns * cell, 24 + rows * (cell + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), title, fill=(0, 0, 0))
    for k, (image, thumb) in enumerate(tiles):
        small, _ = _scale(thumb, cell - 8)
        x = (k % columns) * cell + 4
        y = 24 + (k // columns) * (cell + caption)
        sheet.paste(small, (x, y))
        draw.text((x, y + cell - 6), f"#{image.rank} score {_fmt(image.score)}", fill=(0, 0, 0))
    import io

    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
