"""Plain torchvision weights (trained outside huale) score exactly like the same weights loaded
the huale way, from a bare state dict and from the reference scripts' checkpoint layout."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torchvision

from huale.errors import CheckpointError
from huale.inference import ScoringRequest, load_detector, score_pool
from huale.models.checkpoint import save_checkpoint
from huale.models.detector import build_detector
from huale.predictions import Needs
from tests.conftest import TINY_CLASSES, make_tiny_dataset
from tests.selection.conftest import select_cli

ARCH = "fasterrcnn_mobilenet_v3_large_320_fpn"
SIZE = {"min_size": 64, "max_size": 64}
FIELDS = ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level")
CPU = ScoringRequest(device="cpu", progress=False, batch_size=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A detector built and saved with torchvision alone, in both layouts, and its classes."""
    root = tmp_path_factory.mktemp("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=len(TINY_CLASSES) + 1, **SIZE
    )
    with torch.no_grad():  # spread the class scores so detections have distinct scores
        model.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
    state = model.state_dict()
    torch.save(state, root / "bare.pth")
    torch.save({"model": state, "optimizer": {}, "lr_scheduler": {}, "epoch": 25,
                "args": argparse.Namespace(lr=0.02, data_path="/data")}, root / "model_25.pth")
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in TINY_CLASSES))
    make_tiny_dataset(root / "images", num_images=5, size=64, seed=6)
    return root, state


def _huale_way(state):
    model = build_detector(ARCH, len(TINY_CLASSES), **SIZE)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize("name", ["bare.pth", "model_25.pth"])
def test_plain_weights_give_the_records_of_the_huale_way(files, name):
    root, state = files
    pool = make_tiny_dataset(root / "pool", num_images=3, size=64, seed=6)
    needs = Needs(views=("orig", "flip"), prenms=True, features=True)
    expected = score_pool(_huale_way(state), pool, needs, CPU)
    detector = load_detector("torchvision", root / name, arch=ARCH, classes=TINY_CLASSES, **SIZE)
    assert detector.class_names == TINY_CLASSES
    got = score_pool(detector, pool, needs, CPU)
    assert sum(len(r.original) for r in expected) > 0
    for a, b in zip(expected, got, strict=True):
        for kind in ("views", "prenms"):
            for view, dets in getattr(a, kind).items():
                for field in FIELDS:
                    assert np.array_equal(getattr(dets, field), getattr(getattr(b, kind)[view], field))
        assert np.array_equal(a.feature, b.feature)


def test_select_from_plain_weights_equals_select_from_a_huale_checkpoint(files, tmp_path):
    root, state = files
    save_checkpoint(tmp_path / "model.pt", _huale_way(state), TINY_CLASSES)
    common = ["--pool", str(root / "images"), "--budget", "2", "--strategy", "huale"]
    select_cli("--checkpoint", str(tmp_path / "model.pt"), *common, "--out", str(tmp_path / "a"))
    select_cli("--checkpoint", str(root / "model_25.pth"), "--arch", ARCH, "--classes",
               str(root / "classes.txt"), "--min-size", "64", "--max-size", "64", *common,
               "--out", str(tmp_path / "b"))
    for name in ("selection.csv", "selected_coco.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_weights_of_another_class_count_are_refused_naming_the_file(files, tmp_path):
    root, _ = files
    with pytest.raises(CheckpointError, match=r"bare.pth: weights do not fit .*wrong shape"):
        load_detector("torchvision", root / "bare.pth", arch=ARCH, classes=["a", "b", "c"])
    with pytest.raises(CheckpointError, match="need --classes"):
        load_detector("torchvision", root / "bare.pth", arch=ARCH)
    with pytest.raises(CheckpointError, match="not a huale checkpoint"):
        load_detector("torchvision", root / "bare.pth")
