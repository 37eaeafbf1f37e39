"""``huale select --detector yolo``: every strategy the YOLO adapter serves, through the seam."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from huale.errors import ConfigError
from huale.inference.adapters import adapter_class
from tests.adapters.test_yolo import IMGSZ, give_scores, write_model_yaml
from tests.conftest import TINY_CLASSES, make_tiny_dataset

pytest.importorskip("ultralytics")

from huale.adapters import yolo as yolo_adapter  # noqa: E402
from huale.cli.select import add_parser, run  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """``images/`` of 6 tiny images and a YOLO ``best.pt`` (random weights that score boxes)."""
    root = tmp_path_factory.mktemp("yolo-select")
    make_tiny_dataset(root / "images", num_images=6, size=64, seed=4)
    torch.manual_seed(0)
    model = yolo_adapter.YOLO(str(write_model_yaml(root, num_classes=len(TINY_CLASSES))))
    give_scores(model.model, bias=-3.0)
    model.save(str(root / "best.pt"))
    return root


def _select(workspace, out, strategy):
    import argparse

    parser = argparse.ArgumentParser(prog="huale")
    parser.add_argument("-q", "--quiet", action="store_true")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "-q", "select", "--detector", "yolo", "--checkpoint", str(workspace / "best.pt"),
        "--classes", str(workspace / "classes.txt"), "--max-size", str(IMGSZ),
        "--pool", str(workspace / "images"), "--budget", "2", "--strategy", strategy,
        "--out", str(out), "--device", "cpu", "--workers", "0",
    ])
    return run(args)


@pytest.mark.parametrize("strategy", ["random", "entropy", "consistency", "hua", "huale", "coreset"])
def test_select_with_yolo_runs_every_strategy(workspace, tmp_path, strategy):
    (workspace / "classes.txt").write_text("".join(f"{c}\n" for c in TINY_CLASSES))
    assert _select(workspace, tmp_path / "out", strategy) == 0
    result = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert result["detector"] == "yolo" and result["num_selected"] == 2
    assert len(result["ranking"]) == 6 and sum(r["selected"] for r in result["ranking"]) == 2
    assert len(result["selected"]) == 2
    if strategy != "random":  # the scores come from YOLO's boxes: a picked image has objects
        assert any(r["objects"] for r in result["selected"])


def test_missing_extra_stops_before_anything_is_read(monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import ultralytics -> ImportError
    monkeypatch.delitem(sys.modules, "huale.adapters.yolo", raising=False)
    with pytest.raises(ConfigError) as info:
        adapter_class("yolo")
    assert str(info.value) == '--detector yolo needs ultralytics, which is not installed: pip install "huale[yolo]"'
