"""The synthetic dataset: files, COCO round trip, determinism, data properties, caching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from huale.data import synthetic
from huale.data.coco import read_coco
from huale.data.synthetic import (
    Background,
    ImageLayout,
    PlacedShape,
    ensure_synthetic,
    generate_synthetic,
    render_image,
    render_layout,
    sample_layout,
    shape_coverage,
    synthetic_classes,
)
from huale.errors import ConfigError

EXPECTED_CLASSES = [
    "star",
    "disc",
    "square",
    "triangle",
    "cross",
    "cyan_hexagon",
    "ring",
    "rectangle",
    "notched_triangle",
    "azure_hexagon",
]


@pytest.fixture(scope="module")
def rendered_sample() -> list:
    """300 images of seed 0 as written (pixels + labels after occlusion), without JPEG files."""
    return [render_image(0, index) for index in range(300)]


def _plain_layout(shapes: list[PlacedShape], size: int = 100) -> ImageLayout:
    """A flat grey, noise-free image with ``shapes`` drawn in order."""
    background = Background(
        color_a=(128, 128, 128),
        color_b=(128, 128, 128),
        gradient_angle=0.0,
        texture=np.zeros((4, 4), np.float32),
        texture_amplitude=0.0,
        stripe_amplitude=0.0,
        stripe_period=10.0,
        stripe_angle=0.0,
        lines=(),
        specks=(),
    )
    return ImageLayout(size, 0.0, background, tuple(shapes), 1.0, 0.0, 0.0, 0)


def _square(cx: float, cy: float, size: float, label: int = 3) -> PlacedShape:
    return PlacedShape("square", label, cx, cy, size, 1.0, 0.0, (40, 60, 220))


def test_class_names_are_stable():
    assert synthetic_classes() == EXPECTED_CLASSES


def test_generate_writes_coco_that_reads_back(tmp_path: Path, capsys):
    out = tmp_path / "synth"
    info = generate_synthetic(out, num_images=24, seed=3, progress=False)
    assert capsys.readouterr().err == ""  # progress=False: no tqdm bar

    assert info.train_json == out / "train.json" and info.test_json == out / "test.json"
    assert info.class_names == EXPECTED_CLASSES
    assert info.params == {"num_images": 24, "seed": 3, "image_size": 192, "test_fraction": 0.25}
    train, test = read_coco(info.train_json), read_coco(info.test_json)
    assert len(train) == 18 and len(test) == 6  # 24 * 0.25 = 6, the last six images
    assert test.ids == [str(i) for i in range(18, 24)]
    for dataset in (train, test):
        assert dataset.class_names == EXPECTED_CLASSES and dataset.num_classes >= 6
        for record in dataset.records:
            assert record.path == out / "images" / f"{int(record.image_id):06d}.jpg"
            assert (record.width, record.height) == (192, 192)
            assert Image.open(record.path).size == (192, 192)
            assert np.all(record.boxes[:, :2] >= 0) and np.all(record.boxes[:, 2:] <= 192)
            assert np.all(record.boxes[:, 2:] > record.boxes[:, :2])
            assert record.labels.min() >= 1 and record.labels.max() <= len(EXPECTED_CLASSES)
            assert not record.difficult.any()
        assert train.report.clipped_boxes == 0 and train.report.dropped_zero_area == 0

    coco = json.loads(info.train_json.read_text())
    assert coco["images"][12]["file_name"] == "images/000012.jpg"
    marker = json.loads((out / "synthetic.json").read_text())
    assert marker["format_version"] == synthetic.FORMAT_VERSION
    assert marker["params"] == info.params and marker["class_names"] == EXPECTED_CLASSES
    for split, dataset in (("train", train), ("test", test)):
        counts = dict(zip(EXPECTED_CLASSES, dataset.class_counts().tolist(), strict=True))
        assert marker["splits"][split]["box_counts"] == counts == info.box_counts[split]


def test_same_seed_gives_identical_bytes_and_images_do_not_depend_on_each_other(tmp_path: Path):
    first = generate_synthetic(tmp_path / "a", num_images=16, seed=5, progress=False)
    again = generate_synthetic(tmp_path / "b", num_images=16, seed=5, progress=False)
    fewer = generate_synthetic(tmp_path / "c", num_images=8, seed=5, progress=False)
    other = generate_synthetic(tmp_path / "d", num_images=16, seed=6, progress=False)

    def read(info, name: str) -> bytes:
        return (info.out_dir / name).read_bytes()

    for name in ["train.json", "test.json", "synthetic.json"]:
        assert read(first, name) == read(again, name)
        assert read(first, name) != read(other, name)
    images = [f"images/{i:06d}.jpg" for i in range(16)]
    assert all(read(first, name) == read(again, name) for name in images)
    # An image is drawn from default_rng([seed, index]) alone: the same in a smaller dataset.
    assert all(read(first, name) == read(fewer, name) for name in images[:8])
    assert all(read(first, name) != read(other, name) for name in images)


def test_classes_are_long_tailed(rendered_sample):
    counts = np.zeros(len(EXPECTED_CLASSES), np.int64)
    for image in rendered_sample:
        np.add.at(counts, image.labels - 1, 1)
    shares = counts / counts.sum()
    assert counts.min() > 0
    assert shares.min() <= 0.05  # the rarest class
    assert shares.max() >= 3 * shares.min()
    # The rare member of each confusable pair is rarer than its frequent twin.
    index = {name: i for i, name in enumerate(EXPECTED_CLASSES)}
    for frequent, rare in [
        ("square", "rectangle"),
        ("disc", "ring"),
        ("triangle", "notched_triangle"),
        ("cyan_hexagon", "azure_hexagon"),
    ]:
        assert counts[index[rare]] < counts[index[frequent]]


def test_images_range_from_nearly_empty_to_crowded(rendered_sample):
    per_image = np.array([len(image.labels) for image in rendered_sample])
    assert 2 <= per_image.mean() <= 12
    assert (per_image <= 2).sum() >= 10 and (per_image >= 10).sum() >= 10


def test_small_and_large_objects_exist(rendered_sample):
    boxes = np.concatenate([image.boxes for image in rendered_sample])
    longest_side = (boxes[:, 2:] - boxes[:, :2]).max(axis=1)
    assert longest_side.min() >= 5
    assert (longest_side <= 10).sum() >= 50  # 6-10 px objects in a 192 px image
    assert (longest_side >= 0.3 * 192).sum() >= 20


def test_objects_occlude_each_other_and_hidden_ones_are_not_labelled(rendered_sample):
    overlapping_images = 0
    for image in rendered_sample:
        iou = box_iou(torch.from_numpy(image.boxes), torch.from_numpy(image.boxes))
        overlapping_images += int((iou.triu(diagonal=1) > 0).any())
        assert np.all(image.visible_fraction >= synthetic.MIN_VISIBLE_FRACTION)
    assert overlapping_images >= 30
    assert sum(image.num_hidden for image in rendered_sample) > 0
    assert any(np.any(image.visible_fraction < 0.9) for image in rendered_sample)


def test_visibility_and_boxes_on_hand_placed_squares():
    # Square A spans [40, 60] x [40, 60], B (drawn on top) [50, 70] x [40, 60]; boxes are exact.
    # B hides A's right half: 200 / 400 = 0.5 visible. Drawn squares are up to 1/4 px larger
    # (see the coverage test), which moves that by less than 0.25 * 20 / 400 = 0.0125.
    half_hidden = render_layout(_plain_layout([_square(50, 50, 20), _square(60, 50, 20, label=8)]))
    assert half_hidden.labels.tolist() == [3, 8]
    np.testing.assert_allclose(half_hidden.boxes, [[40, 40, 60, 60], [50, 40, 70, 60]])
    np.testing.assert_allclose(half_hidden.visible_fraction, [0.5, 1.0], atol=0.0125)

    # A 30 px square over the same centre covers A completely: A is not labelled.
    covered = render_layout(_plain_layout([_square(50, 50, 20), _square(50, 50, 30, label=8)]))
    assert covered.labels.tolist() == [8] and covered.num_hidden == 1

    # A square centred 5 px from the left edge: box clipped to [0, 15], 15 / 20 = 0.75 visible.
    truncated = render_layout(_plain_layout([_square(5, 50, 20)]))
    np.testing.assert_allclose(truncated.boxes, [[0, 40, 15, 60]])
    np.testing.assert_allclose(truncated.visible_fraction, [0.75], atol=0.0125)

    # Pixels: inside the top square its colour, outside the flat grey background.
    assert half_hidden.pixels[50, 65].tolist() == [40, 60, 220]
    assert half_hidden.pixels[10, 10].tolist() == [128, 128, 128]


# Shapes are drawn at 4x supersampling, so every edge lies within 1/4 px of its true position
# and the coverage (sum of alpha) is the true area up to perimeter / 4.
@pytest.mark.parametrize(
    ("shape", "size", "aspect", "area", "perimeter"),
    [
        ("square", 20, 1.0, 400.0, 80.0),  # 20 x 20
        ("rectangle", 30, 1.5, 600.0, 100.0),  # 30 x 20
        ("disc", 40, 1.0, math.pi * 20**2, 2 * math.pi * 20),  # 1256.6
        # Hole radius 0.55 * 20 = 11: pi * (400 - 121) = 876.5 (a 0.5 hole would give 942.5)
        ("ring", 40, 1.0, math.pi * (20**2 - 11**2), 2 * math.pi * (20 + 11)),
        ("triangle", 30, 1.0, math.sqrt(3) / 4 * 30**2, 90.0),  # equilateral, side 30: 389.7
        # Triangle height 25.98; notch 0.28 * 30 = 8.4 wide, 0.32 * 25.98 = 8.31 deep:
        # 389.7 - 69.8 = 319.9; the notch adds its two sides to the perimeter.
        ("notched_triangle", 30, 1.0, math.sqrt(3) / 4 * 900 - 8.4 * 8.314, 90 + 2 * 8.314),
        ("hexagon", 30, 1.0, 3 * math.sqrt(3) / 2 * 15**2, 90.0),  # circumradius 15: 584.6
        # Arms 0.34 * 30 = 10.2 wide: 2 * 30 * 10.2 - 10.2^2 = 508.0
        ("cross", 30, 1.0, 2 * 30 * 10.2 - 10.2**2, 120.0),
    ],
)
def test_shapes_cover_their_analytic_area(shape, size, aspect, area, perimeter):
    for angle in (0.0, 33.0):  # rotation keeps the area
        placed = PlacedShape(shape, 1, 50.3, 49.6, size, aspect, angle, (0, 0, 0))
        alpha, _, _ = shape_coverage(placed)
        assert abs(float(alpha.sum()) - area) <= perimeter / 4


def test_layout_sampling_is_pure_and_labels_stay_in_range():
    a = sample_layout(np.random.default_rng([1, 7]))
    b = sample_layout(np.random.default_rng([1, 7]))
    assert a.shapes == b.shapes and a.noise_seed == b.noise_seed
    assert 1 <= len(a.labels) <= 13
    assert set(a.labels.tolist()) <= set(range(1, len(EXPECTED_CLASSES) + 1))


def test_ensure_reuses_a_complete_folder_and_regenerates_otherwise(tmp_path: Path):
    out = tmp_path / "synth"
    params = {"num_images": 8, "seed": 2, "progress": False}
    first = ensure_synthetic(out, **params)
    marker, image = out / "synthetic.json", out / "images" / "000003.jpg"
    stamps = {path: path.stat().st_mtime_ns for path in (marker, image, first.train_json)}

    same = ensure_synthetic(out, **params)
    assert same == first
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps

    image.unlink()  # a missing file: drawn again
    ensure_synthetic(out, **params)
    assert image.is_file() and marker.stat().st_mtime_ns != stamps[marker]

    changed = ensure_synthetic(out, num_images=6, seed=2, progress=False)  # other parameters
    assert changed.params["num_images"] == 6 and len(read_coco(changed.train_json)) == 4
    assert not (out / "images" / "000007.jpg").exists()  # stale image of the old run removed


def test_processes_started_together_draw_the_folder_once(tmp_path: Path, monkeypatch):
    """Two loops of a preset started at once on one data folder: while one draws it (holding
    the folder's lock), the other waits, then finds it complete and rewrites nothing."""
    import threading

    from huale.locking import FolderLock

    out = tmp_path / "synth"
    params = {"num_images": 6, "seed": 0, "progress": False}
    drawn = []
    real = synthetic.generate_synthetic
    monkeypatch.setattr(synthetic, "generate_synthetic", lambda *a, **k: drawn.append(1) or real(*a, **k))
    results = []
    with FolderLock(out):  # "the first process", drawing
        second = threading.Thread(target=lambda: results.append(ensure_synthetic(out, **params)))
        second.start()
        second.join(0.3)
        assert second.is_alive() and not drawn  # waits; has not started drawing
        real(out, **params)
    second.join(10)
    assert not drawn and results[0].params["num_images"] == 6  # found it complete
    # a complete folder is only read: no lock taken, so a read-only copy works too
    (out / ".huale.lock").unlink()
    ensure_synthetic(out, **params)
    assert not (out / ".huale.lock").exists()


def test_interrupted_generation_leaves_no_marker_and_is_redone(tmp_path: Path, monkeypatch):
    out = tmp_path / "synth"
    generate_synthetic(out, num_images=6, seed=0, progress=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_coco", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(out, num_images=6, seed=1, progress=False)
    assert not (out / "synthetic.json").exists()
    monkeypatch.undo()

    info = ensure_synthetic(out, num_images=6, seed=1, progress=False)
    assert info.params["seed"] == 1 and (out / "synthetic.json").is_file()


@pytest.mark.parametrize(
    "bad",
    [
        {"num_images": 1},
        {"num_images": 2.5},
        {"seed": -1},
        {"image_size": 32},
        {"test_fraction": 0.0},
        {"test_fraction": 1.0},
        {"test_fraction": "0.2"},
        {"clip_length": 0},
        {"clip_length": 2.5},
    ],
)
def test_bad_parameters_raise_config_error(tmp_path: Path, bad):
    with pytest.raises(ConfigError):
        generate_synthetic(tmp_path / "synth", progress=False, **{"num_images": 4, **bad})


def test_without_clips_the_dataset_is_the_one_earlier_versions_wrote(tmp_path: Path):
    """Golden hashes of the JSON files huale 0.1 wrote before clips existed (the committed
    benchmarks' data): the default and ``clip_length=1`` still write them."""
    import hashlib

    golden = {"synthetic.json": "2616cc0bf4bced3dcfeaff90eb41f8b2eeda832733ec9fcb538055136d19ae4e",
              "train.json": "7b65d5aa21d74472f19e98f6d4177e4dc3b5f10a716884d729aad3ec209ac230",
              "test.json": "1e66e80073efc224a5f1d1668ff736faa29cd879724aa38b4f48401f2d37bbb9"}
    for kwargs in ({}, {"clip_length": 1}):
        out = tmp_path / f"s{len(kwargs)}"
        info = generate_synthetic(out, num_images=6, seed=0, progress=False, **kwargs)
        assert "clip_length" not in info.params
        for name, digest in golden.items():
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name


def test_clips_are_near_duplicate_frames_and_the_test_split_is_not(tmp_path: Path):
    clips = generate_synthetic(tmp_path / "clips", num_images=40, seed=2, clip_length=5,
                               progress=False)
    plain = generate_synthetic(tmp_path / "plain", num_images=40, seed=2, progress=False)
    assert clips.params["clip_length"] == 5
    marker = json.loads((clips.out_dir / "synthetic.json").read_text())
    assert marker["image_clip"] == {str(i): i // 5 for i in range(30)}  # 30 train images, 6 clips
    assert "image_clip" not in json.loads((plain.out_dir / "synthetic.json").read_text())

    def pixels(info, i):
        return np.asarray(Image.open(info.out_dir / f"images/{i:06d}.jpg"), dtype=np.float32)

    # a clip's first frame is the image its index draws; the test split is untouched
    for i in (0, 5, 25, *range(30, 40)):
        assert np.array_equal(pixels(clips, i), pixels(plain, i))
    train = {r.image_id: r for r in read_coco(clips.train_json).records}
    within, across, matched, boxes = [], [], 0, 0
    for i in range(29):
        a, b = pixels(clips, i), pixels(clips, i + 1)
        (within if (i + 1) % 5 else across).append(float(np.abs(a - b).mean()))
        if (i + 1) % 5:  # consecutive frames: each box has a same-class box a few px away
            before, after = train[str(i)], train[str(i + 1)]
            for box, label in zip(after.boxes, after.labels, strict=True):
                centre = (box[:2] + box[2:]) / 2
                near = [np.abs((o[:2] + o[2:]) / 2 - centre).max()
                        for o, ol in zip(before.boxes, before.labels, strict=True) if ol == label]
                matched += bool(near) and min(near) <= 10
                boxes += 1
    assert max(within) < 0.5 * min(across)  # frames of a clip look alike, clips do not
    assert boxes > 20 and matched / boxes >= 0.9


def test_synth_command_makes_clips(tmp_path: Path, capsys):
    from huale.cli import main

    out = tmp_path / "video"
    assert main(["-q", "synth", "--out", str(out), "--images", "8", "--image-size", "64",
                 "--clip-length", "3", "--test-fraction", "0.25"]) == 0
    assert "clips of 3 frames" in capsys.readouterr().out
    assert json.loads((out / "synthetic.json").read_text())["image_clip"] == {
        "0": 0, "1": 0, "2": 0, "3": 1, "4": 1, "5": 1}
    assert main(["-q", "synth", "--out", str(tmp_path / "bad"), "--clip-length", "0"]) == 2
    assert "clip_length must be an integer >= 1" in capsys.readouterr().err
