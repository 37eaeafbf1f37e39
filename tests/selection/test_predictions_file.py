"""The predictions file: `huale predict` then `huale select --predictions` selects exactly what
`huale select --checkpoint` selects; scores-only files; malformed lines; exact round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from huale.cli import main
from huale.errors import ConfigError, DataError
from huale.inference.predictions_file import (
    classes_file_of,
    read_predictions,
    record_to_line,
)
from huale.predictions import Detections, PredictionRecord
from tests.conftest import TINY_CLASSES
from tests.selection.conftest import select_cli

STRATEGIES = ("random", "entropy", "consistency", "hua", "huale")
COMPARED = ("selection.csv", "selected_coco.json")


def _predict(workspace, out, *extra):
    code = main(["-q", "predict", "--checkpoint", str(workspace / "model.pt"),
                 "--pool", str(workspace / "images"), "--out", str(out), "--device", "cpu",
                 "--workers", "0", *extra])
    assert code == 0
    return out


def _select(workspace, out, strategy, *source):
    common = ["--pool", str(workspace / "images"), "--labeled", str(workspace / "labeled.json"),
              "--budget", "2", "--strategy", strategy, "--out", str(out)]
    assert select_cli(*source, *common) == 0
    return out


def _run_free(selection: dict) -> dict:
    """selection.json without the fields naming where the scores came from."""
    return {k: v for k, v in selection.items()
            if k not in ("checkpoint", "predictions", "detector")}


@pytest.fixture(scope="module")
def predictions(workspace):
    return _predict(workspace, workspace / "preds.jsonl", "--views", "hflip", "--prenms", "0.3")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_predict_then_select_equals_select_with_the_checkpoint(workspace, predictions, strategy,
                                                                tmp_path):
    direct = _select(workspace, tmp_path / "direct", strategy,
                     "--checkpoint", str(workspace / "model.pt"))
    from_file = _select(workspace, tmp_path / "file", strategy, "--predictions", str(predictions))
    for name in COMPARED:
        assert (from_file / name).read_bytes() == (direct / name).read_bytes(), name
    one = json.loads((direct / "selection.json").read_text())
    two = json.loads((from_file / "selection.json").read_text())
    assert _run_free(two) == _run_free(one)
    assert two["predictions"] == predictions.resolve().as_posix()
    assert two["checkpoint"] is None and one["detector"] == "torchvision"


def test_prediction_lines_follow_the_documented_format(workspace, predictions):
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["file_name"] for line in lines] == [f"img{i}.png" for i in range(6)]
    assert classes_file_of(predictions).read_text().split() == list(TINY_CLASSES)
    for line in lines:
        assert set(line) >= {"file_name", "width", "height", "boxes", "labels", "scores",
                             "class_probs", "fpn_level", "prenms", "views"}
        assert set(line["views"]) == {"flip"} and "prenms" in line["views"]["flip"]
        assert all(name in TINY_CLASSES for name in line["labels"])
        assert all(len(p) == len(TINY_CLASSES) + 1 for p in line["class_probs"])
    schema = json.loads((_docs() / "predictions.schema.json").read_text())
    import jsonschema  # dev extra
    for line in lines:
        jsonschema.validate(line, schema)


def test_floats_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=4).astype(np.float32)
    dets = Detections(
        boxes=(rng.random((4, 4)) * 100).astype(np.float32), labels=np.array([1, 2, 1, 2]),
        scores=rng.random(4).astype(np.float32), class_probs=probs,
        max_fg_prob=probs[:, 1:].max(axis=1), fpn_level=np.array([2, 3, 4, 5]),
    )
    record = PredictionRecord("a", 100, 80, {"orig": dets, "flip": dets.select([0, 2])},
                              prenms={"orig": dets.select([1])})
    path = tmp_path / "p.jsonl"
    path.write_text(record_to_line(record, "a.png", ["x", "y"]) + "\n")
    (line,) = read_predictions(path, ["x", "y"])
    back = line.record
    assert set(back.views) == {"orig", "flip"} and set(back.prenms) == {"orig"}
    for view in ("orig", "flip"):
        for name in ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level"):
            expected, got = getattr(record.views[view], name), getattr(back.views[view], name)
            assert got.dtype == expected.dtype and np.array_equal(got, expected), (view, name)


def test_scores_only_file_serves_random_consistency_and_the_entropy_fallback(workspace,
                                                                             tmp_path):
    preds = _predict(workspace, tmp_path / "scores.jsonl", "--views", "hflip", "--no-posteriors")
    assert "class_probs" not in preds.read_text()
    for strategy in ("random", "consistency", "entropy", "hua"):
        _select(workspace, tmp_path / strategy, strategy, "--predictions", str(preds))
    # entropy fallback: normalised binary entropy of each score, max over the image's boxes
    # with score >= 0.05 (the strategy's defaults)
    lines = {json.loads(t)["file_name"]: json.loads(t) for t in preds.read_text().splitlines()}
    ranking = json.loads((tmp_path / "entropy" / "selection.json").read_text())["ranking"]
    for entry in ranking:
        scores = [s for s in lines[entry["image_id"]]["scores"] if s >= 0.05]
        expected = max(
            (-(s * math.log(s) + (1 - s) * math.log(1 - s)) / math.log(len(TINY_CLASSES) + 1)
             for s in scores if 0 < s < 1), default=0.0,
        )
        assert entry["score"] == pytest.approx(expected, abs=1e-6)


def test_coreset_from_a_predictions_file_fails_before_reading_it(workspace, tmp_path):
    with pytest.raises(ConfigError, match="strategy 'coreset' needs features.*predictions file"):
        select_cli("--predictions", str(tmp_path / "absent.jsonl"), "--classes",
                   str(tmp_path / "absent.txt"), "--pool", str(workspace / "images"),
                   "--budget", "1", "--strategy", "coreset", "--out", str(tmp_path / "o"))


def test_a_file_without_the_needed_view_names_its_line(workspace, tmp_path):
    preds = _predict(workspace, tmp_path / "orig.jsonl")
    with pytest.raises(DataError, match=r"orig.jsonl: line 3 \(img2.png\): no predictions of the "
                                        r"view\(s\) flip"):
        _select(workspace, tmp_path / "c", "consistency", "--predictions", str(preds))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: not a JSON object"),
        ('{"file_name": "b.png", "width": 8, "height": 8, "boxes": [], "labels": []}',
         "line 2: missing scores"),
        ('{"file_name": "b.png", "width": 8, "height": 8, "boxes": [[0, 0, 1, 1]], '
         '"labels": ["dog"], "scores": [0.5]}', "line 2: labels: unknown class name.*'dog'"),
        ('{"file_name": "b.png", "width": 8, "height": 8, "boxes": [[0, 0, 1]], '
         '"labels": ["red"], "scores": [0.5]}', r"line 2: boxes has shape \[1, 3\], expected"),
        ('{"file_name": "b.png", "width": 8, "height": 8, "boxes": [[0, 0, 1, 1]], '
         '"labels": ["red"], "scores": [0.5], "class_probs": [[0.5, 0.5]]}',
         "line 2: class_probs has shape"),
        ('{"file_name": "b.png", "width": 8, "height": 8, "boxes": [], "labels": [], '
         '"scores": [], "views": {"mirror": {}}}', "line 2: unknown view 'mirror'"),
        ('{"file_name": "a.png", "width": 8, "height": 8, "boxes": [], "labels": [], '
         '"scores": []}', "line 2: file_name 'a.png' already on line 1"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, line, problem):
    good = '{"file_name": "a.png", "width": 8, "height": 8, "boxes": [], "labels": [], "scores": []}'
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError, match=f"bad.jsonl: {problem}"):
        list(read_predictions(path, list(TINY_CLASSES)))


def test_malformed_file_is_one_line_on_the_command_line(workspace, predictions, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n")
    code = main(["-q", "select", "--predictions", str(path), "--classes",
                 str(classes_file_of(predictions)), "--pool",
                 str(workspace / "images"), "--budget", "1", "--out", str(tmp_path / "o"),
                 "--strategy", "random"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bad.jsonl: line 1: not valid JSON" in err


def test_predict_refuses_to_overwrite(workspace, predictions, capsys):
    code = main(["-q", "predict", "--checkpoint", str(workspace / "model.pt"), "--pool",
                 str(workspace / "images"), "--out", str(predictions), "--device", "cpu"])
    assert code == 2 and "pass --overwrite" in capsys.readouterr().err


def _docs():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "docs"
