import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from huale.data.records import (
    DetectionDataset,
    ImageRecord,
    LoadReport,
    collate_detection,
    sanitize_boxes,
)
from huale.errors import DataError


def test_sanitize_clips_drops_and_counts():
    # 8 x 6 image: box 0 is clipped to (0, 1, 8, 5); box 1 has zero width; box 2 is inside
    boxes = np.array([[-2, 1, 10, 5], [3, 3, 3, 8], [1, 1, 4, 4]], np.float64)
    labels = np.array([1, 2, 3])
    difficult = np.array([False, True, True])
    report = LoadReport()
    kept, kept_labels, kept_difficult = sanitize_boxes(boxes, 8, 6, report, labels, difficult)
    np.testing.assert_array_equal(kept, [[0, 1, 8, 5], [1, 1, 4, 4]])
    assert kept.dtype == np.float32
    assert kept_labels.tolist() == [1, 3]
    assert kept_difficult.tolist() == [False, True]
    # box 1 is also clipped (ymax 8 -> 6) before it is dropped
    assert (report.clipped_boxes, report.dropped_zero_area) == (2, 1)


def test_sanitize_empty():
    report = LoadReport()
    (kept,) = sanitize_boxes(np.zeros((0, 4)), 8, 6, report)
    assert kept.shape == (0, 4)
    assert (report.clipped_boxes, report.dropped_zero_area) == (0, 0)


def test_report_summary_and_log(caplog):
    report = LoadReport(source="x.json", images=3, boxes=7, clipped_boxes=2)
    report.note("sizes read from the image file")
    report.note("sizes read from the image file")
    report.skipped.append(("bad.jpg", "not an image"))
    assert report.summary() == (
        "x.json: 3 images, 7 boxes, 2 boxes clipped to the image, 1 files skipped, "
        "2 sizes read from the image file"
    )
    with caplog.at_level(logging.INFO):
        report.log()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert "skipped bad.jpg: not an image" in caplog.text


def test_clean_report_logs_at_info(caplog):
    with caplog.at_level(logging.INFO):
        LoadReport(source="y", images=1, boxes=1).log()
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_targets_have_torchvision_types(small_dataset):
    image, target = small_dataset[0]
    assert image.shape == (3, 24, 32)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (2, 4)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1, 2]
    assert target["difficult"].dtype == torch.bool and target["difficult"].tolist() == [False, True]
    assert target["image_id"] == "a"
    empty = small_dataset.target(2)
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_lookup_subset_and_counts(small_dataset):
    assert small_dataset.num_classes == 2
    assert small_dataset.index_of("b") == 1
    assert small_dataset.record("b").num_boxes == 1
    subset = small_dataset.subset(["c", "a"])
    assert subset.ids == ["c", "a"]
    assert subset.class_names == ["cat", "dog"]
    assert small_dataset.class_counts().tolist() == [1, 2]  # a: cat + dog, b: dog
    with pytest.raises(KeyError, match="unknown image ids"):
        small_dataset.subset(["zzz"])


def test_with_transforms_applies_them(small_dataset):
    def shift(image, target):
        return image * 0, {**target, "boxes": target["boxes"] + 1}

    image, target = small_dataset.with_transforms(shift)[1]
    assert image.abs().sum() == 0
    assert target["boxes"].tolist() == [[5.0, 6.0, 7.0, 10.0]]


def test_duplicate_ids_and_bad_labels_are_errors(tmp_path):
    path = tmp_path / "a.jpg"
    with pytest.raises(DataError, match="duplicate image id 'a'"):
        DetectionDataset([ImageRecord("a", path, 4, 4), ImageRecord("a", path, 4, 4)], [])
    record = ImageRecord(
        "a", path, 4, 4, np.array([[0, 0, 1, 1]], np.float32), np.array([3]), np.array([False])
    )
    with pytest.raises(DataError, match=r"label outside 1\.\.2"):
        DetectionDataset([record], ["cat", "dog"])


def test_collate_through_a_dataloader(small_dataset):
    loader = DataLoader(small_dataset, batch_size=2, collate_fn=collate_detection)
    images, targets = next(iter(loader))
    assert [tuple(i.shape) for i in images] == [(3, 24, 32), (3, 24, 32)]
    assert [t["image_id"] for t in targets] == ["a", "b"]
    assert collate_detection([]) == ([], [])


def test_image_record_keeps_its_path_as_a_string_and_supports_replace(tmp_path):
    from dataclasses import replace

    record = ImageRecord("a", tmp_path / "a.jpg", 4, 3)
    assert record.path == tmp_path / "a.jpg" and isinstance(record.path, Path)
    assert not hasattr(record, "__dict__")  # slotted: one per pool image stays in memory
    renamed = replace(record, image_id="b")
    assert (renamed.image_id, renamed.path, renamed.width, renamed.height) == ("b", record.path, 4, 3)
    moved = record.with_path("elsewhere/a.jpg")
    assert moved.path == Path("elsewhere/a.jpg") and moved.image_id == "a"
    # records without objects share one set of empty arrays
    assert record.boxes.shape == (0, 4) and record.boxes is ImageRecord("c", "c.jpg", 1, 1).boxes
    with pytest.raises(TypeError, match="needs image_id, path, width and height"):
        ImageRecord("d", "d.jpg")
