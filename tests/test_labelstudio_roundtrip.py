"""The whole labeling cycle against a real Label Studio (1.23, its own virtualenv):
huale init -> round -> Label Studio project from the generated config -> import the tasks ->
every task accepted with its prediction (validated by label_studio_sdk's LabelInterface,
coordinates within 0-100) -> the image served through local files -> annotate through the API
(one task skipped) -> JSON export -> huale ingest -> the labeled set grows by exactly the
annotated images, boxes equal within 0.01 px -> round 2 runs.

Skipped, with the reason, only when Label Studio cannot be installed
(``.ci/setup-label-studio.sh``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from huale.cli import main
from huale.data.coco import dataset_to_coco
from huale.io import atomic_write_json
from huale.project.state import Project
from tests.conftest import make_tiny_dataset

VALIDATE = """
import json, sys
from label_studio_sdk.label_interface import LabelInterface
interface = LabelInterface(open(sys.argv[1]).read())
predictions = json.load(open(sys.argv[2]))
print(json.dumps([interface.validate_prediction(p, return_errors=True) for p in predictions]))
"""


def _region_of(box, width, height, label):
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"x": 100 * x1 / width, "y": 100 * y1 / height, "width": 100 * (x2 - x1) / width,
                      "height": 100 * (y2 - y1) / height, "rotation": 0, "rectanglelabels": [label]}}


def test_round_trip_through_label_studio(label_studio, tmp_path):
    ls = label_studio
    pool_dir = ls.document_root / "roundtrip-pool"  # the README's setting: document root = the pool's parent
    truth = {r.path.name: r for r in make_tiny_dataset(pool_dir, num_images=10, seed=1).records}
    lab = make_tiny_dataset(tmp_path / "lab", num_images=4, seed=2)
    atomic_write_json(tmp_path / "lab" / "labeled.json", dataset_to_coco(lab, image_root=tmp_path / "lab"))
    val = make_tiny_dataset(tmp_path / "val", num_images=4, seed=3)
    atomic_write_json(tmp_path / "val" / "val.json", dataset_to_coco(val, image_root=tmp_path / "val"))
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--pool", str(pool_dir), "--labeled", str(tmp_path / "lab" / "labeled.json"),
                 "--val", str(tmp_path / "val" / "val.json"), "--min-size", "64", "--max-size", "64"]) == 0
    tiny = ["--epochs", "1", "--device", "cpu", "--preannotation-threshold", "0.0"]
    assert main(["round", str(proj), "--budget", "4", *tiny]) == 0
    rdir = Project.open(proj).round_dir(1)
    tasks = json.loads((rdir / "labelstudio_tasks.json").read_text())
    config = (rdir / "labelstudio_config.xml").read_text()

    # a project from the generated config, the pool as local-files storage, the tasks imported
    project = ls.call("POST", "/api/projects", form={"title": "huale round 1", "label_config": config})
    ls.call("POST", "/api/storages/localfiles",
            {"project": project["id"], "title": "pool", "path": str(pool_dir)})
    imported = ls.call("POST", f"/api/projects/{project['id']}/import", tasks)
    assert imported["task_count"] == len(tasks) == 4
    assert imported["prediction_count"] == len(tasks)

    stored = ls.call("GET", f"/api/tasks?project={project['id']}&page_size=100&fields=all")
    stored = stored["tasks"] if isinstance(stored, dict) else stored
    assert sorted(t["data"]["huale_rank"] for t in stored) == [1, 2, 3, 4]
    predictions = ls.call("GET", f"/api/predictions?project={project['id']}")
    assert len(predictions) == 4 and {p["model_version"] for p in predictions} == {"huale-round-001"}
    by_task = {p["task"]: p for p in predictions}
    assert set(by_task) == {t["id"] for t in stored}
    for task in stored:  # Label Studio kept huale's order: lowest prediction score = rank 1
        assert by_task[task["id"]]["score"] == pytest.approx((task["data"]["huale_rank"] - 1) / 4)
    regions = [r for p in predictions for r in p["result"]]
    assert regions, "pre-annotation threshold 0 must give boxes to validate"
    for r in regions:
        v = r["value"]
        assert 0 <= v["x"] <= 100 and 0 <= v["y"] <= 100
        assert v["x"] + v["width"] <= 100 + 1e-6 and v["y"] + v["height"] <= 100 + 1e-6
    (tmp_path / "config.xml").write_text(config)
    (tmp_path / "predictions.json").write_text(json.dumps(predictions))
    checked = subprocess.run([str(ls.python()), "-c", VALIDATE, str(tmp_path / "config.xml"),
                              str(tmp_path / "predictions.json")], capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin"})
    assert json.loads(checked.stdout) == [[] for _ in predictions]  # no errors

    # the image reference displays: Label Studio serves the file itself
    first = min(stored, key=lambda t: t["data"]["huale_rank"])
    status, content = ls.get_bytes(first["data"]["image"])
    assert status == 200 and content == (pool_dir / first["data"]["huale_id"]).read_bytes()

    # annotate three tasks with the true boxes through the API, skip the fourth
    annotated, skipped = sorted(stored, key=lambda t: t["data"]["huale_rank"])[:3], None
    skipped = max(stored, key=lambda t: t["data"]["huale_rank"])
    names = ["red", "green"]
    for task in annotated:
        record = truth[task["data"]["huale_id"]]
        result = [_region_of(b, record.width, record.height, names[int(k) - 1])
                  for b, k in zip(record.boxes, record.labels, strict=True)]
        ls.call("POST", f"/api/tasks/{task['id']}/annotations", {"result": result, "was_cancelled": False})
    ls.call("POST", f"/api/tasks/{skipped['id']}/annotations", {"result": [], "was_cancelled": True})

    export = ls.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON")
    (tmp_path / "export.json").write_text(json.dumps(export))
    before = Project.open(proj).labeled()
    assert main(["ingest", str(proj), str(tmp_path / "export.json")]) == 0
    after = Project.open(proj).labeled()
    grown = {im["file_name"] for im in after.images} - {im["file_name"] for im in before.images}
    assert grown == {str((pool_dir / t["data"]["huale_id"]).resolve()) for t in annotated}
    assert len(after) == len(before) + 3
    for path in grown:
        name = Path(path).name
        image = after.image_at(path)
        got = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                        for a in after.annotations_of(image["id"])])
        np.testing.assert_allclose(got, truth[name].boxes, atol=0.01)
    assert main(["ingest", str(proj), str(tmp_path / "export.json")]) == 0  # twice: unchanged
    assert Project.open(proj).labeled().coco == after.coco

    assert main(["round", str(proj), "--budget", "2", *tiny]) == 0
    second = Project.open(proj).round_record(2)
    assert second["labeled_images"] == 4 + 3
    assert skipped["data"]["huale_id"] not in {s["image_id"] for s in second["selected"]}
