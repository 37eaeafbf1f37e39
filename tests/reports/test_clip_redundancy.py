"""benchmarks/clip_redundancy.py on records with a known answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from huale.reports import CycleRecord

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "clip_redundancy.py"


def _record(strategy: str, labeled: list[str], picked: list[str]) -> CycleRecord:
    return CycleRecord(strategy=strategy, seed=0, cycle=0, num_labeled=len(labeled),
                       metrics={"voc": {"mAP": 0.1, "per_class": {}}}, labeled_ids=labeled,
                       selected=[{"image_id": i, "score": 1.0, "stage": ""} for i in picked])


def test_redundant_picks_and_clips_per_batch(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # ten train images, clips of two: 0-1, 2-3, 4-5, 6-7, 8-9
    (data / "synthetic.json").write_text(json.dumps({"image_clip": {str(i): i // 2 for i in range(10)}}))
    run = tmp_path / "run"
    # entropy: 1 shares clip 0 with labeled 0, 3 shares clip 1 with pick 2 -> 2 of 3 redundant,
    # 2 distinct clips in a batch of 3; random: three new clips
    _record("entropy", ["0"], ["1", "2", "3"]).write(run)
    _record("random", ["0"], ["2", "4", "6"]).write(run)
    last = _record("random", ["0", "2", "4", "6"], [])  # the last cycle selects nothing
    last.cycle = 1
    last.write(run)
    out = subprocess.run([sys.executable, str(SCRIPT), str(run), "--data", str(data)],
                         capture_output=True, text=True, check=True).stdout
    assert "| random | 3 | 0.0% | 100.0% |" in out
    assert "| entropy | 3 | 66.7% | 66.7% |" in out


def test_a_pool_without_clips_is_one_line(tmp_path):
    (tmp_path / "synthetic.json").write_text(json.dumps({"params": {}}))
    _record("random", ["0"], ["1"]).write(tmp_path / "run")
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "run"), "--data",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "no clip list" in done.stderr
    assert "Traceback" not in done.stderr
