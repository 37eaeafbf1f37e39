"""synth -> train -> evaluate through the command line, on a tiny synthetic set."""

import json

import pytest
import yaml

from huale.cli import main
from huale.demo import DemoConfig, run_demo
from huale.errors import ConfigError


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["-q", "synth", "--out", str(out), "--images", "16", "--image-size", "96"]) == 0
    return out


TRAIN = ["--arch", "small", "--min-size", "96", "--max-size", "96", "--batch-size", "2",
         "--workers", "0", "--lr", "0.01", "--warmup-iters", "0", "--lr-steps"]


def test_synth_train_resume_evaluate(synth_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["-q", "train", "--data", str(synth_dir), "--out", str(run), *TRAIN]
    assert main([*args, "--epochs", "1"]) == 0
    first = json.loads((run / "history.json").read_text())["history"]
    assert len(first) == 1
    # a second call with more epochs and --resume continues instead of starting over
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    history = json.loads((run / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first[0]
    capsys.readouterr()

    dets = tmp_path / "dets.json"
    assert main(["-q", "evaluate", "--checkpoint", str(run / "model.pt"), "--data", str(synth_dir),
                 "--split", "test", "--metric", "voc", "--json", "--workers", "0",
                 "--save-detections", str(dets)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["mAP"] <= 1.0 and len(result["per_class"]) == 10
    # the saved detections re-evaluate to the same number through the file path
    assert main(["-q", "evaluate", "--gt", str(synth_dir / "test.json"), "--detections", str(dets),
                 "--metric", "voc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] == pytest.approx(result["mAP"])


def test_train_on_a_fraction_and_bad_data(synth_dir, tmp_path, capsys):
    assert main(["-q", "train", "--data", str(synth_dir), "--out", str(tmp_path / "f"), "--fraction",
                 "0.25", "--epochs", "1", *TRAIN]) == 0
    capsys.readouterr()
    assert main(["-q", "train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


def test_evaluate_checkpoint_with_other_classes_is_refused(synth_dir, tmp_path, tiny_dataset, capsys):
    from huale.data.coco import write_coco

    run = tmp_path / "run"
    assert main(["-q", "train", "--data", str(synth_dir), "--out", str(run), "--epochs", "1", *TRAIN]) == 0
    other = tmp_path / "other.json"
    write_coco(tiny_dataset, other)  # classes red/green: unknown to the synthetic checkpoint
    capsys.readouterr()
    assert main(["-q", "evaluate", "--checkpoint", str(run / "model.pt"), "--data", str(other)]) == 2
    assert "other.json" in capsys.readouterr().err


TINY_DEMO = dict(images=24, image_size=96, initial=6, budget=3, cycles=2, initial_epochs=1, epochs=1,
                 batch_size=2)


def test_demo_runs_the_loop_and_reports(tmp_path, capsys):
    # the real demo runs for minutes; this checks the whole path on a toy budget
    config = DemoConfig(out=str(tmp_path), **TINY_DEMO)
    result = run_demo(config, progress=False)
    out = capsys.readouterr().out
    assert "gain vs random" in out and "demo done" in out and str(result["png"]) in out
    assert result["png"].is_file() and result["png"].read_bytes()[:4] == b"\x89PNG"
    records = sorted((tmp_path / "run").glob("*/seed0/cycle*/record.json"))
    assert [r.relative_to(tmp_path / "run").parts[0] for r in records] == ["huale"] * 2 + ["random"] * 2
    for strategy in ("random", "huale"):
        first = json.loads((tmp_path / "run" / strategy / "seed0" / "cycle0" / "record.json").read_text())
        last = json.loads((tmp_path / "run" / strategy / "seed0" / "cycle1" / "record.json").read_text())
        assert first["num_labeled"] == 6 and len(first["selected"]) == 3 and last["num_labeled"] == 9
        assert 0.0 <= last["metrics"]["voc"]["mAP"] <= 1.0
    # cycle 0 trained once for both strategies with its own epochs; cycle 1 fine-tunes it
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["loop"]["reinit"] == "continue" and stored["loop"]["initial_train"]["epochs"] == 1

    # a rerun with the same settings reprints the finished run without training
    again = run_demo(config, progress=False)
    assert "continuing the demo run" in capsys.readouterr().out
    assert again["table"] == result["table"]
    # other settings in the same folder: a clear error, not a mixed run
    with pytest.raises(ConfigError, match="other settings"):
        run_demo(DemoConfig(out=str(tmp_path), **{**TINY_DEMO, "budget": 2}), progress=False)


def test_demo_needs_two_cycles(tmp_path):
    with pytest.raises(ConfigError, match="at least 2 cycles"):
        DemoConfig(out=str(tmp_path), cycles=1).loop_config()
