"""A tiny loop run twice gives identical per-cycle records; its loss config paths work.

The loop uses ``emphasis: class_balanced`` and ``reinit: continue``, so the labeled set's class
counts reach the loss on both paths of a cycle (a fresh model at cycle 0, the previous model
afterwards), as ``huale train`` does from the command line.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from huale.engine.loop import start_run, train_dir
from huale.engine.loop_config import config_from_dict
from huale.errors import ConfigError
from huale.models.checkpoint import load_checkpoint
from tests.engine.test_loop import toy_config

TIMINGS = ("train_seconds", "score_seconds")


def _config(data_dir):
    values = toy_config(data_dir, strategies=("huale",), cycles=2)
    values["data"]["synthetic"]["num_images"] = 16
    values["model"]["loss"] = {"emphasis": "class_balanced"}
    values["loop"] = {**values["loop"], "reinit": "continue"}
    return values


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("determinism")
    config = config_from_dict(_config(root / "data"))
    runs = [start_run(config, root / name, progress=False) for name in ("a", "b")]
    return root, runs


def test_two_runs_give_identical_records(two_runs):
    _, (first, second) = two_runs
    assert len(first) == len(second) == 2
    for a, b in zip(first, second, strict=True):
        a, b = asdict(a), asdict(b)
        for key in TIMINGS:
            a.pop(key), b.pop(key)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert first[0].selected  # cycle 0 selected something for cycle 1


def test_class_balanced_emphasis_takes_each_cycles_counts(two_runs):
    root, (records, _) = two_runs
    first_counts = None
    for cycle in range(len(records)):
        model = train_dir(root / "a", "huale", 0, cycle) / "model.pt"
        loss = load_checkpoint(model)["model"]["kwargs"]["loss"]
        assert loss["emphasis"] == "class_balanced"
        assert sum(loss["class_counts"]) > 0
        if cycle > 0:
            assert loss["class_counts"] != first_counts  # the grown labeled set's counts
        first_counts = loss["class_counts"]


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"emphasis": "strong"}, "model.loss: .*emphasis must be one of"),
        ({"lambda_e": 1.0}, "model.loss: unknown loss options 'lambda_e'"),
        ("fulll", "model.loss: unknown loss preset 'fulll'"),
        ({"preset": "full", "box_iou_loss": "eiou"}, "model.loss: .*box_iou_loss must be one of"),
    ],
)
def test_a_bad_loss_is_rejected_when_the_config_is_read(tmp_path, loss, message):
    values = toy_config(tmp_path)
    values["model"]["loss"] = loss
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)
