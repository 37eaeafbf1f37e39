"""huale ingest: matching to the rounds, class names, clipping, refusal of unsent images,
outstanding tasks, idempotence and newer-replaces-older; Label Studio, CVAT COCO zip, VOC."""

import json

import numpy as np
import pytest

from huale.cli import main
from huale.errors import DataError
from huale.project.ingest import ingest_file, ingest_label_studio
from huale.project.rounds import outstanding
from tests.labeling import samples
from tests.project.conftest import fake_round


def _boxes(project, name):
    labeled = project.labeled()
    image = labeled.image_at(project.pool / name)
    return image, [(a["category_id"], a["bbox"]) for a in labeled.annotations_of(image["id"])]


def _ls_export(record, regions_by_name, updated="2026-12-01T03:00:00.000000Z"):
    tasks = []
    for k, s in enumerate(record["selected"], start=1):
        regions = regions_by_name.get(s["file_name"])
        annotations = [] if regions is None else [samples.ls_annotation(k, regions, updated=updated)]
        tasks.append(samples.ls_task(k, {"image": s["url"], "huale_id": s["image_id"],
                                         "huale_rank": s["rank"]}, annotations))
    return tasks


def test_label_studio_export_merges_exact_pixels_and_twice_changes_nothing(project, tmp_path):
    record = fake_round(project, 1, ["img0.png", "img1.png", "img2.png"])
    # 64 px image: x 12.5 % = 8 px, width 25 % = 16 px; y 50 % = 32 px, height 10 % = 6.4 px
    tasks = _ls_export(record, {"img0.png": [samples.ls_region(12.5, 50, 25, 10, "green")],
                                "img1.png": []})  # img1: labeled, no objects; img2: not yet
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    report = ingest_file(project, export)
    assert report.added == ["img0.png", "img1.png"] and report.outstanding == ["img2.png"]
    image, objects = _boxes(project, "img0.png")
    assert image["id"] == 105 and image["huale"]["round"] == 1
    assert image["huale"]["source"] == "label-studio"
    ((category, bbox),) = objects
    assert category == 9  # the user's id of "green"
    np.testing.assert_allclose(bbox, [8, 32, 16, 6.4], atol=0.01)
    assert _boxes(project, "img1.png")[1] == []
    assert [s["file_name"] for s in outstanding(project)] == ["img2.png"]
    before = project.labeled_path.read_bytes()
    ingests = project.ingests()
    again = ingest_file(project, export)
    assert again.unchanged == ["img0.png", "img1.png"] and not again.changed
    assert project.labeled_path.read_bytes() == before and project.ingests() == ingests


def test_newer_annotation_replaces_older_one_is_kept(project):
    record = fake_round(project, 1, ["img0.png"])
    first = _ls_export(record, {"img0.png": [samples.ls_region(0, 0, 50, 50, "red")]},
                       updated="2026-12-01T03:00:00Z")
    ingest_label_studio(project, first)
    newer = _ls_export(record, {"img0.png": [samples.ls_region(10, 10, 20, 20, "green")]},
                       updated="2026-12-01T04:00:00Z")
    report = ingest_label_studio(project, newer)
    assert report.replaced == ["img0.png"] and "1 replaced" in report.summary()
    assert _boxes(project, "img0.png")[1][0][0] == 9
    older = _ls_export(record, {"img0.png": [samples.ls_region(0, 0, 5, 5, "red")]},
                       updated="2026-12-01T01:00:00Z")
    report = ingest_label_studio(project, older)
    assert report.kept_newer == ["img0.png"] and not report.changed
    assert _boxes(project, "img0.png")[1][0][0] == 9


def test_unknown_class_is_an_error_naming_it_unless_mapped(project, tmp_path):
    record = fake_round(project, 1, ["img0.png"])
    tasks = _ls_export(record, {"img0.png": [samples.ls_region(0, 0, 10, 10, "crimson")]})
    before = project.labeled_path.read_bytes()
    with pytest.raises(DataError, match=r"unknown class 'crimson'.*--map 'crimson'=CLASS"):
        ingest_label_studio(project, tasks)
    assert project.labeled_path.read_bytes() == before
    report = ingest_label_studio(project, tasks, class_map={"crimson": "red"})
    assert report.added == ["img0.png"] and report.mapped_boxes == 1
    assert _boxes(project, "img0.png")[1][0][0] == 7


def test_out_of_image_boxes_are_clipped_and_counted(project):
    record = fake_round(project, 1, ["img0.png"])
    tasks = _ls_export(record, {"img0.png": [samples.ls_region(90, -10, 20, 30, "red", region_id="a"),
                                             samples.ls_region(101, 0, 5, 5, "red", region_id="b")]})
    report = ingest_label_studio(project, tasks)
    assert (report.clipped_boxes, report.dropped_boxes) == (2, 1)
    ((_, bbox),) = _boxes(project, "img0.png")[1]
    np.testing.assert_allclose(bbox, [57.6, 0, 6.4, 12.8], atol=1e-6)  # x 57.6..64, y 0..12.8


def test_never_sent_images_are_refused_unless_allowed(project):
    fake_round(project, 1, ["img0.png"])
    stranger = [samples.ls_task(1, {"image": "/data/local-files/?d=img5.png"},
                                [samples.ls_annotation(1, [samples.ls_region(0, 0, 10, 10, "red")])])]
    with pytest.raises(DataError, match=r"1 images were never sent.*img5.png.*--allow-new"):
        ingest_label_studio(project, stranger)
    report = ingest_label_studio(project, stranger, allow_new=True)
    assert report.new == ["img5.png"] and report.added == ["img5.png"]
    assert _boxes(project, "img5.png")[0]["huale"].get("round") is None
    nowhere = [samples.ls_task(1, {"image": "/x/nope.png"}, [samples.ls_annotation(1, [])])]
    with pytest.raises(DataError, match="not found in the pool"):
        ingest_label_studio(project, nowhere, allow_new=True)


def test_cvat_coco_zip_and_voc_folder_ingest_by_file_name(project, tmp_path):
    fake_round(project, 1, ["img0.png", "img1.png"])
    fake_round(project, 2, ["img3.png"])
    coco = samples.cvat_coco([("img0.png", 64, 64, [(1.25, 2.5, 10, 20, "red")]),
                              ("img3.png", 64, 64, [(0, 0, 64, 64, "green")])])
    report = ingest_file(project, samples.write_cvat_zip(tmp_path / "task_1-coco.zip", coco))
    assert report.format == "coco" and sorted(report.added) == ["img0.png", "img3.png"]
    np.testing.assert_allclose(_boxes(project, "img0.png")[1][0][1], [1.25, 2.5, 10, 20])
    assert _boxes(project, "img3.png")[0]["huale"]["round"] == 2
    voc = samples.write_cvat_voc(tmp_path / "voc", [("img1.png", 128, 128, [(10.0, 20.0, 30.0, 60.0, "green")])])
    report = ingest_file(project, voc)
    assert report.format == "voc" and report.added == ["img1.png"] and report.rescaled_images == 1
    # the tool stated 128 x 128 for a 64 x 64 file: boxes halved
    np.testing.assert_allclose(_boxes(project, "img1.png")[1][0][1], [5, 10, 10, 20])


def test_cli_ingest_prints_summary_and_errors_exit_2(project, tmp_path, capsys):
    record = fake_round(project, 1, ["img0.png"])
    export = tmp_path / "export.json"
    export.write_text(json.dumps(_ls_export(record, {"img0.png": [samples.ls_region(0, 0, 10, 10, "blue")]})))
    assert main(["ingest", str(project.root), str(export)]) == 2
    assert "unknown class 'blue'" in capsys.readouterr().err
    assert main(["ingest", str(project.root), str(export), "--map", "blue=green"]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "labeled set: 5 images" in out
    assert main(["ingest", str(project.root), str(export), "--map", "blue"]) == 2
    (tmp_path / "junk.json").write_text("{}")
    assert main(["ingest", str(project.root), str(tmp_path / "junk.json")]) == 2
