"""A small workspace for ``huale select``: an image folder, a labeled subset, a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from huale.cli.select import add_parser, run
from huale.data.coco import write_coco
from huale.models.checkpoint import save_checkpoint
from huale.models.detector import build_detector
from tests.conftest import TINY_CLASSES, make_tiny_dataset


def write_peaked_checkpoint(path: Path, class_names, seed: int = 0) -> Path:
    """A fresh small detector at 64 px whose class scores are spread out (distinct scores)."""
    torch.manual_seed(seed)
    model = build_detector("small", len(class_names), min_size=64, max_size=64)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
    return save_checkpoint(path, model, class_names)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Folder ``images/`` of 6 tiny PNGs (no annotations), ``labeled.json`` with 2 of them."""
    root = tmp_path_factory.mktemp("select")
    dataset = make_tiny_dataset(root / "images", num_images=6, size=64, seed=4)
    write_coco(dataset.subset(["0", "1"]), root / "labeled.json")
    write_peaked_checkpoint(root / "model.pt", TINY_CLASSES)
    return root


def select_cli(*argv: str) -> int:
    """``huale select ARGV`` through this package's parser and ``run`` (CPU, no workers)."""
    parser = argparse.ArgumentParser(prog="huale")
    parser.add_argument("-q", "--quiet", action="store_true")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["-q", "select", *argv, "--device", "cpu", "--workers", "0"])
    return run(args)
