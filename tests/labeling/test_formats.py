"""Converters of each tool's export, and the files huale writes for the tools."""

import json
import math
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest

from huale.errors import DataError
from huale.labeling import ANNOTATED, SKIPPED, UNLABELED
from huale.labeling.coco_export import read_coco_export
from huale.labeling.cvat import CVAT_MEMBER, write_cvat_zip
from huale.labeling.labelstudio import labeling_config, parse_label_studio_export
from huale.labeling.urls import file_name_of_url, path_of_url
from huale.labeling.voc_export import read_voc_export
from tests.labeling import samples


def test_label_studio_percent_to_pixels_hand_computed():
    # 64 x 32 image: x 25 % -> 16 px, y 12.5 % -> 4 px, width 50 % -> 32 px, height 25 % -> 8 px
    region = samples.ls_region(25, 12.5, 50, 25, "red", width=64, height=32)
    tasks = [samples.ls_task(1, {"image": "/data/local-files/?d=a%20b/c.png", "huale_id": "a b/c.png"},
                             [samples.ls_annotation(1, [region])])]
    (image,) = parse_label_studio_export(tasks)
    assert image.status == ANNOTATED and image.huale_id == "a b/c.png"
    assert (image.width, image.height) == (64, 32)
    np.testing.assert_allclose(image.boxes, [[16, 4, 48, 12]])
    assert image.class_names == ["red"] and image.base_name == "c.png"


def test_label_studio_rotated_box_becomes_its_enclosing_box():
    # 10 x 20 px box at (20, 20) rotated 90 degrees clockwise about its top-left corner (y down):
    # corners (0,0),(10,0),(10,20),(0,20) -> (0,0),(0,10),(-20,10),(-20,0): x in [0, 20], y in [20, 30]
    region = samples.ls_region(20, 20, 10, 20, "green", width=100, height=100, rotation=90)
    (image,) = parse_label_studio_export([samples.ls_task(1, {"image": "x.png"},
                                                          [samples.ls_annotation(1, [region])])])
    np.testing.assert_allclose(image.boxes, [[0, 20, 20, 30]], atol=1e-9)
    assert image.rotated_boxes == 1


def test_label_studio_newest_annotation_wins_cancelled_and_empty_tasks_stay_outstanding():
    old = samples.ls_annotation(1, [samples.ls_region(0, 0, 10, 10, "red")], updated="2026-12-01T01:00:00Z")
    new = samples.ls_annotation(2, [samples.ls_region(50, 50, 10, 10, "green")], updated="2026-12-01T02:00:00Z")
    cancelled_newer = samples.ls_annotation(3, [], cancelled=True, updated="2026-12-01T05:00:00Z")
    tasks = [
        samples.ls_task(1, {"image": "a.png"}, [old, new, cancelled_newer]),
        samples.ls_task(2, {"image": "b.png"}, [samples.ls_annotation(4, [], cancelled=True)]),
        samples.ls_task(3, {"image": "c.png"}, []),
    ]
    first, skipped, empty = parse_label_studio_export(tasks)
    assert first.class_names == ["green"] and first.updated_at == "2026-12-01T02:00:00Z"
    assert (skipped.status, empty.status) == (SKIPPED, UNLABELED)


def test_label_studio_rectangle_plus_labels_pair_and_bad_input():
    rect = {"id": "q", "type": "rectangle", "from_name": "box", "to_name": "image",
            "original_width": 10, "original_height": 10,
            "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0}}
    labels = {"id": "q", "type": "labels", "from_name": "cls", "to_name": "image",
              "original_width": 10, "original_height": 10,
              "value": {"x": 10, "y": 20, "width": 30, "height": 40, "labels": ["red"]}}
    (image,) = parse_label_studio_export([samples.ls_task(1, {"image": "a.png"},
                                                          [samples.ls_annotation(1, [rect, labels])])])
    np.testing.assert_allclose(image.boxes, [[1, 2, 4, 6]])
    with pytest.raises(DataError, match="list of tasks"):
        parse_label_studio_export({"data": {}})
    broken = samples.ls_region(0, 0, 10, 10, "red")
    del broken["original_width"]
    with pytest.raises(DataError, match="original_width"):
        parse_label_studio_export([samples.ls_task(1, {"image": "a"}, [samples.ls_annotation(1, [broken])])])


def test_urls_of_local_files_and_uploads():
    assert path_of_url("/data/local-files/?d=sub%20dir/a.png") == "sub dir/a.png"
    assert file_name_of_url("/data/upload/3/1a2b3c4d-img7.png") == "img7.png"
    assert file_name_of_url("http://host/images/img7.png") == "img7.png"


def test_labeling_config_is_valid_xml_with_every_class_escaped():
    xml = labeling_config(["car", 'a "quoted" & <odd> name'])
    root = ET.fromstring(xml)
    image = root.find("Image")
    assert (image.get("name"), image.get("value")) == ("image", "$image")
    rect = root.find("RectangleLabels")
    assert (rect.get("name"), rect.get("toName")) == ("label", "image")
    assert [label.get("value") for label in rect.findall("Label")] == ["car", 'a "quoted" & <odd> name']


def test_cvat_coco_zip_read_back(tmp_path):
    coco = samples.cvat_coco([("img1.png", 64, 64, [(1.5, 2.5, 10, 20, "green")]), ("img2.png", 64, 64, [])])
    first, second = read_coco_export(samples.write_cvat_zip(tmp_path / "task.zip", coco))
    assert first.file_name == "img1.png" and first.class_names == ["green"]
    np.testing.assert_allclose(first.boxes, [[1.5, 2.5, 11.5, 22.5]])
    assert second.status == ANNOTATED and len(second.boxes) == 0  # listed = labeled, empty
    (tmp_path / "bare.json").write_text(json.dumps(coco))
    assert len(read_coco_export(tmp_path / "bare.json")) == 2


def test_cvat_voc_folder_read_back(tmp_path):
    folder = samples.write_cvat_voc(tmp_path / "voc", [("img1.png", 64, 64, [(10.5, 4.0, 30.25, 20.0, "red")])])
    (image,) = read_voc_export(folder)
    assert image.file_name == "img1.png" and (image.width, image.height) == (64, 64)
    np.testing.assert_allclose(image.boxes, [[10.5, 4.0, 30.25, 20.0]])  # CVAT: 0-based, as written
    (one_based,) = read_voc_export(folder, one_based=True)
    np.testing.assert_allclose(one_based.boxes, [[9.5, 3.0, 30.25, 20.0]])


def test_written_cvat_zip_has_cvat_layout_and_scores_as_attributes(tmp_path):
    images = [{"file_name": "sub/a.png", "width": 64, "height": 32, "rank": 1, "score": 0.7,
               "boxes": [[1, 2, 11, 22]], "labels": [2], "scores": [0.9]},
              {"file_name": "b.png", "width": 64, "height": 64, "rank": 2, "score": -math.inf,
               "boxes": [], "labels": [], "scores": []}]
    path = write_cvat_zip(tmp_path / "cvat.zip", images, ["red", "green"])
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [CVAT_MEMBER]
        coco = json.loads(archive.read(CVAT_MEMBER))
    assert coco["categories"] == [{"id": 1, "name": "red", "supercategory": ""},
                                  {"id": 2, "name": "green", "supercategory": ""}]
    (annotation,) = coco["annotations"]
    assert annotation["segmentation"] == [] and annotation["bbox"] == [1.0, 2.0, 10.0, 20.0]
    assert annotation["attributes"] == {"occluded": False, "rotation": 0.0, "score": 0.9,
                                        "huale_score": 0.7, "huale_rank": 1}
    assert [im["file_name"] for im in coco["images"]] == ["sub/a.png", "b.png"]
    again = write_cvat_zip(tmp_path / "again.zip", images, ["red", "green"])
    assert again.read_bytes() == path.read_bytes()
    # huale reads its own CVAT file back like any CVAT export
    back = read_coco_export(path)
    np.testing.assert_allclose(back[0].boxes, [[1, 2, 11, 22]])
