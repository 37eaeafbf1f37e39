"""The loop scores through the detector-adapter seam, chosen by the `scoring.detector` key."""

from __future__ import annotations

import pytest

from huale.engine.loop import start_run
from huale.engine.loop_config import config_from_dict
from huale.errors import ConfigError
from huale.inference import adapters
from huale.inference.adapters.faster_rcnn import FasterRCNNAdapter


def tiny_config(data_dir, **scoring) -> dict:
    return {
        "name": "tiny",
        "data": {"source": str(data_dir), "synthetic": {"num_images": 12, "seed": 0, "image_size": 64}},
        "model": {"arch": "small", "min_size": 64, "max_size": 64},
        "train": {"epochs": 1, "lr": 0.01, "lr_steps": [], "warmup_iters": 0, "batch_size": 2,
                  "workers": 0},
        "loop": {"initial": 4, "budget": 2, "cycles": 2},
        "strategies": ["entropy"],
        "seeds": [0],
        "scoring": {"batch_size": 4, **scoring},
    }


def test_the_detector_key_is_checked_when_the_config_is_read(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        config_from_dict(tiny_config(tmp_path, detector="nope"))
    monkeypatch.setitem(adapters.DETECTORS, "scores-only",
                        "tests.inference.test_adapters:ScoresOnly")
    with pytest.raises(ConfigError, match="cannot train a scores-only model"):
        config_from_dict(tiny_config(tmp_path, detector="scores-only"))


def test_cycles_score_the_pool_through_the_adapter(tmp_path, monkeypatch):
    calls = []
    real = FasterRCNNAdapter.predict

    def spy(self, items, views):
        calls.append(len(items))
        return real(self, items, views)

    monkeypatch.setattr(FasterRCNNAdapter, "predict", spy)
    config = config_from_dict(tiny_config(tmp_path / "data", detector="torchvision"))
    assert config.scoring.detector == "torchvision"
    records = start_run(config, tmp_path / "run", progress=False)
    assert [len(r.selected) for r in records] == [2, 0]
    assert calls and all(n > 0 for n in calls)  # the cycle-0 pool went through the adapter
