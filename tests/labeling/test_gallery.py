"""The round gallery: files, order and drawing; then the page in headless Chromium (Debian's
``chromium``, installed by .ci/setup-chromium.sh): loads without console errors, shows every
selected image, and a screenshot is taken."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from huale.labeling.gallery import (
    CONTACT_SHEET,
    GALLERY,
    GalleryImage,
    GalleryObject,
    uncertainty_colour,
    write_gallery,
)
from tests.conftest import make_tiny_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]


def _gallery(tmp_path: Path, count: int = 5) -> tuple[Path, list[GalleryImage]]:
    data = make_tiny_dataset(tmp_path / "imgs", num_images=count, seed=4)
    images = []
    for k, record in enumerate(reversed(data.records)):  # given out of order on purpose
        objects = [GalleryObject(list(map(float, b)), "red", 0.1 * (j + 1) + k,
                                 {"scale": {"P3": 0.2}, "cell": {"P3": {"red": 0.8}}})
                   for j, b in enumerate(record.boxes)]
        images.append(GalleryImage(
            rank=count - k, image_id=record.image_id, path=record.path, score=1.0 / (count - k),
            stage="stage2" if k % 2 else "stage1", objects=objects, predicted_boxes=len(objects),
            flip_boxes=record.boxes if k % 2 == 0 else None,
            flip_labels=["red 0.90"] * len(record.boxes) if k % 2 == 0 else [],
        ))
    out = tmp_path / "round"
    write_gallery(out, images, title="huale round 001")
    return out, images


def test_gallery_files_rank_order_and_reasons(tmp_path):
    out, images = _gallery(tmp_path)
    page = (out / GALLERY).read_text()
    ranks = [int(r) for r in re.findall(r'<section class="card" id="rank-(\d+)"', page)]
    assert ranks == [1, 2, 3, 4, 5]
    flips = sum(i.flip_boxes is not None for i in images)
    assert len(list((out / "thumbnails").glob("*-orig.jpg"))) == 5
    assert len(list((out / "thumbnails").glob("*-flip.jpg"))) == flips
    assert "stage reached <b>stage2</b>" in page and "scale: P3 0.2; cell: P3 red 0.8" in page
    sheet = Image.open(out / CONTACT_SHEET)
    assert sheet.size[0] == 6 * 180
    # most uncertain object of the round is red, least is blue
    assert uncertainty_colour(1.0, 0.0, 1.0)[0] > 200 and uncertainty_colour(0.0, 0.0, 1.0)[2] > 200
    assert uncertainty_colour(None, 0.0, 1.0) == (150, 150, 150)


def test_flip_view_is_the_mirrored_image(tmp_path):
    out, images = _gallery(tmp_path, count=1)
    orig = np.asarray(Image.open(out / "thumbnails" / "0001-orig.jpg").convert("L"), np.float64)
    flip = np.asarray(Image.open(out / "thumbnails" / "0001-flip.jpg").convert("L"), np.float64)
    assert orig.shape == flip.shape
    # away from the drawn outlines the pixels mirror each other (JPEG noise aside)
    assert np.median(np.abs(orig - flip[:, ::-1])) < 8


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/setup-chromium.sh installs it)")
def test_gallery_in_headless_chromium(tmp_path):
    out, images = _gallery(tmp_path, count=7)
    url = (out / GALLERY).resolve().as_uri()
    done = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    body = re.search(r"<body[^>]*>", done.stdout).group(0)
    views = 7 + sum(i.flip_boxes is not None for i in images)
    assert f'data-images-loaded="{views}"' in body and 'data-images-broken="0"' in body
    shown = re.findall(r'data-image-id="([^"]+)"', done.stdout)
    assert shown == [i.image_id for i in sorted(images, key=lambda i: i.rank)]

    shot = tmp_path / "gallery.png"
    done = _chromium("--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file()
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200) and pixels.std() > 10  # not a blank page

    # the check has teeth: a missing thumbnail is reported on the console
    next((out / "thumbnails").glob("*-orig.jpg")).unlink()
    done = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert any("thumbnail failed to load" in line for line in done.stderr.splitlines())
    assert 'data-images-broken="1"' in done.stdout
