"""Shared fixtures: a tiny on-disk detection dataset drawn with PIL (no downloads, no shared/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from huale.data.records import DetectionDataset, ImageRecord

# Match CI (2 cores) from the start, so module-scoped fixtures (which run before the autouse
# fixture below) compute with the same thread count as the tests that compare against them.
torch.set_num_threads(2)

TINY_CLASSES = ["red", "green"]
COLORS = {1: (220, 30, 30), 2: (30, 200, 30)}


def make_tiny_dataset(root: Path, num_images: int = 6, size: int = 64, seed: int = 0) -> DetectionDataset:
    """``num_images`` PNGs of ``size``x``size`` with 1-2 coloured rectangles each (labels 1..2)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(num_images):
        img = Image.new("RGB", (size, size), (90, 90, 90))
        draw = ImageDraw.Draw(img)
        boxes, labels = [], []
        for _ in range(int(rng.integers(1, 3))):
            w, h = rng.integers(size // 5, size // 2, size=2)
            x1, y1 = rng.integers(0, size - w), rng.integers(0, size - h)
            label = int(rng.integers(1, 3))
            draw.rectangle([int(x1), int(y1), int(x1 + w - 1), int(y1 + h - 1)], fill=COLORS[label])
            boxes.append([x1, y1, x1 + w, y1 + h])
            labels.append(label)
        path = root / f"img{i}.png"
        img.save(path)
        records.append(
            ImageRecord(
                image_id=str(i),
                path=path,
                width=size,
                height=size,
                boxes=np.asarray(boxes, np.float32),
                labels=np.asarray(labels, np.int64),
                difficult=np.zeros(len(labels), bool),
            )
        )
    return DetectionDataset(records, TINY_CLASSES)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> DetectionDataset:
    return make_tiny_dataset(tmp_path / "tiny")


@pytest.fixture(autouse=True)
def _two_threads():
    """Match CI (2 cores) and keep results reproducible."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


# Loopback ML backends (huale serve on 127.0.0.1) are refused by Label Studio unless these are off.
LABEL_STUDIO_LOOPBACK_ML = {"ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"}


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """One real Label Studio for the whole session (installed by ``.ci/setup-label-studio.sh``);
    each test makes its own project and keeps its files in its own folder under
    ``label_studio.document_root``."""
    from tests.labelstudio_server import install, start_label_studio

    reason = install()
    if reason is not None:
        pytest.skip(f"Label Studio cannot be installed here: {reason}")
    server = start_label_studio(tmp_path_factory.mktemp("labelstudio"), LABEL_STUDIO_LOOPBACK_ML)
    yield server
    server.stop()
