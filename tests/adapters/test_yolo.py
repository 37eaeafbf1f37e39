"""The YOLO adapter against Ultralytics itself: a yolov8n built from its yaml, random weights.

A fresh model's features vanish (every anchor scores the class-bias prior, about 0.01), so
:func:`give_scores` sets its BatchNorm statistics from a batch of images and its class biases:
boxes then have varied, distinct scores. Every test asserts the boxes it compares exist.
"""

import copy
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from huale.adapters import install_hint, load_adapter_class
from huale.adapters import yolo as yolo_adapter
from huale.adapters.yolo import YoloDetector, load_yolo_model
from huale.augment import make_view, view_rng
from huale.data.images import load_image_tensor
from huale.errors import CheckpointError, ConfigError
from huale.inference.views import PoolItem

IMGSZ = 160
NUM_CLASSES = 3
SHAPES = [(120, 200), (250, 97), (64, 64), (33, 181)]  # (H, W), none a multiple of 32 but one


def write_model_yaml(folder, num_classes=NUM_CLASSES, name="yolov8n.yaml"):
    """Ultralytics' own yolov8.yaml with ``nc`` set; the file name picks the n scale."""
    source = yolo_adapter.YOLO("yolov8n.yaml").model.yaml
    config = {k: v for k, v in source.items() if k not in ("scale", "yaml_file", "ch")}
    config["nc"] = num_classes
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def give_scores(model, bias=-1.5, size=IMGSZ, seed=0):
    """Make a random-weight model score like a trained one: its BatchNorm statistics are set from
    one batch of random images (a fresh model's features are ~1e-7, so every anchor scores
    sigmoid(bias)), and the class biases set to ``bias`` so that a few anchors pass conf."""
    images = [random_image(size, size, seed=100 + seed + i) for i in range(4)]
    batch = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in images]).float() / 255
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0  # running statistics := this batch's
    model.train()
    with torch.no_grad():
        model(batch)
        for branch in model.model[-1].cv3:
            branch[-1].bias.fill_(bias)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


@pytest.fixture(scope="module")
def model_yaml(tmp_path_factory):
    return write_model_yaml(tmp_path_factory.mktemp("yolo"))


@pytest.fixture(scope="module")
def yolo(model_yaml):
    torch.manual_seed(0)
    model = yolo_adapter.YOLO(str(model_yaml))
    give_scores(model.model)
    return set_up_predictor(model)


@pytest.fixture(scope="module")
def det(yolo):
    """The adapter on a copy of ``yolo`` (imgsz 160, conf 0.25 like predict's default)."""
    return detector(yolo)


def detector(yolo, **options):
    options.setdefault("imgsz", IMGSZ)
    options.setdefault("conf", 0.25)
    return YoloDetector(copy.deepcopy(yolo.model), **options)


def random_image(height, width, seed):
    """(H, W, 3) uint8 RGB with smooth structure (so boxes differ from place to place)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
    noise = rng.integers(-20, 21, (height, width, 3))
    return np.clip(np.asarray(image, np.int64) + noise, 0, 255).astype(np.uint8)


def pool_item(image, views=("orig", "flip"), image_id="img", seed=0):
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    rng = view_rng(seed, image_id)
    made = [make_view(tensor, name, rng) for name in views]
    height, width = image.shape[:2]
    return PoolItem(0, image_id, image_id, width, height, [v for v, _ in made],
                    [g for _, g in made])


def ultralytics_predict(yolo, image_rgb, **options):
    """Ultralytics' own ``YOLO.predict`` on an RGB array (it takes BGR numpy arrays)."""
    options = {"imgsz": IMGSZ, "conf": 0.25, "verbose": False, **options}
    return yolo.predict(np.ascontiguousarray(image_rgb[..., ::-1]), **options)[0].boxes


def set_up_predictor(yolo):
    """Create ``yolo``'s predictor now. Its setup sets torch's global thread count (to
    min(8, cores - 1)), and oneDNN's results change in the last bits with the thread count; the
    tests' count (2) is put back, so that both sides compute alike."""
    threads = torch.get_num_threads()
    ultralytics_predict(yolo, random_image(32, 32, seed=0))
    torch.set_num_threads(threads)
    return yolo


def test_letterbox_matches_ultralytics_letterbox_pixel_for_pixel(yolo):
    from ultralytics.data.augment import LetterBox

    for rect in (True, False):
        det = detector(yolo, rect=rect)
        for i, (height, width) in enumerate(SHAPES):
            image = random_image(height, width, seed=i)
            ours, box = det.letterbox(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
            theirs = LetterBox(IMGSZ, auto=rect, stride=32)(image=image)
            assert ours.shape == theirs.shape == (box.size_h, box.size_w, 3)
            assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("rect", [True, False])
def test_records_match_ultralytics_predict(yolo, rect):
    """Original view: same boxes (within 1 px), classes and scores as
    ``YOLO.predict``; the posterior's foreground argmax/max are its cls/conf, bit for bit."""
    det = detector(yolo, rect=rect)
    total = 0
    for i, (height, width) in enumerate(SHAPES):
        image = random_image(height, width, seed=10 + i)
        # one image, one view: the forward pass Ultralytics runs (batch 1), so the numbers agree
        # bit for bit (oneDNN's results vary in the last bits with the batch size)
        record = det.predict_items([pool_item(image, ("orig",))], ["orig"])[0]
        theirs = ultralytics_predict(yolo, image, rect=rect)
        ours = record.original
        assert (record.width, record.height) == (width, height)
        assert len(ours) == len(theirs) > 0
        total += len(ours)
        # within 1 px (with ultralytics 8.4.190, whose scale_boxes uses the per-axis gain of the
        # rounded sides as huale does, the difference is ~1e-5 px)
        np.testing.assert_allclose(ours.boxes, theirs.xyxy.numpy(), atol=1.0)
        assert np.array_equal(ours.labels - 1, theirs.cls.numpy().astype(np.int64))
        assert np.array_equal(ours.scores, theirs.conf.numpy())
        assert np.array_equal(ours.class_probs[:, 1:].argmax(axis=1), theirs.cls.numpy())
        assert np.array_equal(ours.class_probs[:, 1:].max(axis=1), theirs.conf.numpy())
        assert np.array_equal(ours.max_fg_prob, theirs.conf.numpy())
        np.testing.assert_allclose(ours.class_probs.sum(axis=1), 1.0, rtol=1e-5)
        assert ours.boxes.min() >= 0
        assert (ours.boxes[:, 2] <= width).all() and (ours.boxes[:, 3] <= height).all()
    assert total >= 20  # boxes exist, on every shape together


def test_flipped_view_is_ultralytics_on_the_mirrored_image_mapped_back(yolo, det):
    total = 0
    for i, (height, width) in enumerate(SHAPES):
        image = random_image(height, width, seed=20 + i)
        flipped = det.predict_items([pool_item(image, ("flip",))], ["flip"])[0].views["flip"]
        theirs = ultralytics_predict(yolo, image[:, ::-1])
        expected = theirs.xyxy.numpy().copy()
        expected[:, [0, 2]] = width - expected[:, [2, 0]]  # x -> W - x, x1/x2 swapped
        assert len(flipped) == len(theirs) > 0
        total += len(flipped)
        np.testing.assert_allclose(flipped.boxes, expected, atol=1.0)
        assert np.array_equal(flipped.scores, theirs.conf.numpy())
    assert total >= 20


def test_fpn_level_is_the_stride_of_the_kept_anchor(yolo):
    """Each kept box's level is log2 of the stride Ultralytics' head assigns its anchor."""
    det = detector(yolo, conf=0.1)
    image = random_image(120, 200, seed=3)
    item = pool_item(image, views=("orig",))
    letterboxed, _ = det.letterbox(item.views[0])
    batch = torch.from_numpy(letterboxed[None]).permute(0, 3, 1, 2).float() / 255
    head = det.model.model[-1]
    with torch.no_grad():
        raw = det.model(batch)[0]
    kept, idx = yolo_adapter.non_max_suppression(
        raw, det.conf, det.iou, max_det=det.max_det, nc=NUM_CLASSES, return_idxs=True
    )
    strides = head.strides.reshape(-1)[idx[0].long()]  # set by the forward pass above
    record = det.predict_items([item], ["orig"])[0]
    assert len(record.original) == len(kept[0]) > 5
    assert np.array_equal(record.original.fpn_level, np.log2(strides.numpy()).astype(np.int64))
    assert set(record.original.fpn_level.tolist()) <= {3, 4, 5}


def test_prenms_boxes_are_the_candidates_above_the_threshold(det):
    image = random_image(120, 200, seed=4)
    record = det.predict_items([pool_item(image)], ["orig", "flip"], prenms=True,
                               prenms_threshold=0.25)[0]
    pre, post = record.prenms["orig"], record.original
    assert set(record.prenms) == {"orig", "flip"}
    assert len(pre) > len(post) > 0  # NMS removed some of the candidates
    assert (pre.max_fg_prob > 0.25).all() and np.array_equal(pre.scores, pre.max_fg_prob)
    assert np.array_equal(pre.class_probs[:, 1:].argmax(axis=1) + 1, pre.labels)
    # with threshold = conf, every kept box is one of the candidates, with its score
    for box, score in zip(post.boxes, post.scores, strict=True):
        same = (np.abs(pre.boxes - box).max(axis=1) < 1e-4) & (pre.scores == score)
        assert same.any()


def test_records_do_not_depend_on_the_batch(det):
    """Inputs of different shapes are predicted in separate passes; a batch of equal shapes in
    one pass gives the same records as one image at a time."""
    views = ("orig", "flip", "resize", "rotate", "cutout")
    shapes = [(120, 200), (250, 97), (120, 200)]  # two share a shape, hence a forward pass
    images = [random_image(h, w, seed=30 + i) for i, (h, w) in enumerate(shapes)]
    items = [pool_item(image, views, image_id=str(i)) for i, image in enumerate(images)]
    together = det.predict_items(items, views, features=True)
    alone = [det.predict_items([item], views, features=True)[0] for item in items]
    for a, b in zip(together, alone, strict=True):
        assert set(a.views) == set(views)
        for name in views:
            for field in ("boxes", "labels", "scores", "class_probs", "fpn_level"):
                np.testing.assert_allclose(
                    getattr(a.views[name], field), getattr(b.views[name], field), atol=1e-4
                )
        np.testing.assert_allclose(a.feature, b.feature, atol=1e-4)
        assert a.feature.shape == (256,) and a.feature.dtype == np.float32


def test_feature_is_the_mean_of_the_coarsest_map_over_the_image_cells(det):
    """Square letterbox of a wide image: the pooled feature averages the P5 cells that hold the
    image (rows 1..3 of 5 at 160 px: 96 image rows start at row 32), not the grey padding."""
    square = YoloDetector(copy.deepcopy(det.model), imgsz=IMGSZ, rect=False)
    image = random_image(120, 200, seed=5)
    item = pool_item(image, views=("orig",))
    captured = []
    hook = square.model.model[-1].register_forward_pre_hook(
        lambda module, args: captured.append(args[0][-1].clone())
    )
    try:
        record = square.predict_items([item], ["orig"], features=True)[0]
    finally:
        hook.remove()
    fmap = captured[0][0]  # (256, 5, 5)
    assert fmap.shape[-2:] == (5, 5)
    np.testing.assert_allclose(record.feature, fmap[:, 1:4, :].mean(dim=(1, 2)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(record.feature, fmap.mean(dim=(1, 2)).numpy(), atol=1e-3)


def test_unreadable_items_are_left_out(det):
    good = pool_item(random_image(64, 64, seed=6), image_id="good")
    bad = PoolItem(1, "bad", "bad", 10, 10, [], [], error="corrupt")
    records = det.predict_items([bad, good], ["orig", "flip"])
    assert [r.image_id for r in records] == ["good"]
    assert det.predict_items([bad], ["orig"]) == []


def test_checkpoint_pt_and_yaml_load_the_detect_model(yolo, det, tmp_path, model_yaml):
    path = tmp_path / "best.pt"
    yolo.save(str(path))
    from_pt = YoloDetector.from_checkpoint(path, imgsz=IMGSZ, conf=0.25)
    reloaded = set_up_predictor(yolo_adapter.YOLO(str(path)))  # the checkpoint, Ultralytics' way
    image = random_image(120, 200, seed=7)
    ours = from_pt.predict_items([pool_item(image, ("orig",))], ["orig"])[0].original
    theirs = ultralytics_predict(reloaded, image)
    assert len(ours) == len(theirs) > 0
    assert np.array_equal(ours.scores, theirs.conf.numpy())
    assert from_pt.class_names == ["0", "1", "2"]
    assert len(from_pt.spec()["fingerprint"]) == 64 and from_pt.spec()["source"] == str(path)
    assert YoloDetector.from_checkpoint(model_yaml).num_classes == NUM_CLASSES
    # a yaml Ultralytics ships resolves without a download; its imgsz defaults to 640
    assert YoloDetector.from_checkpoint("yolov8n.yaml").imgsz == 640


def test_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_yolo_model(tmp_path / "yolov8n.pt")  # never downloaded
    with pytest.raises(CheckpointError, match="not found"):
        load_yolo_model(tmp_path / "missing.yaml")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable YOLO model"):
        load_yolo_model(garbage)
    with pytest.raises(CheckpointError, match="'classify' model"):
        load_yolo_model("yolov8n-cls.yaml")


def test_options_are_checked(yolo):
    with pytest.raises(ConfigError, match="2 class names"):
        detector(yolo, class_names=["a", "b"])
    with pytest.raises(ConfigError, match="conf"):
        detector(yolo, conf=1.5)
    assert detector(yolo, imgsz=150).imgsz == 160  # rounded up to the stride
    assert detector(yolo, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]


def test_nms_free_head_runs_its_one_to_many_branch_like_predict():
    """YOLO26 (end-to-end head) in NMS-free mode: YOLO.predict's default (``nms=None``) and the
    adapter both run the one-to-many branch + NMS; without that branch it is refused."""
    torch.manual_seed(0)
    yolo26 = yolo_adapter.YOLO("yolo26n.yaml")
    give_scores(yolo26.model)
    yolo26.model.end2end = True  # as a checkpoint trained end to end is saved
    assert yolo26.model.end2end
    set_up_predictor(yolo26)
    det = YoloDetector(copy.deepcopy(yolo26.model), imgsz=IMGSZ, conf=0.25)
    image = random_image(120, 200, seed=8)
    ours = det.predict_items([pool_item(image, ("orig",))], ["orig"])[0].original
    theirs = ultralytics_predict(yolo26, image)
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(ours.boxes, theirs.xyxy.numpy(), atol=1.0)
    assert np.array_equal(ours.scores, theirs.conf.numpy())

    stripped = copy.deepcopy(yolo26.model)
    stripped.model[-1].cv2 = None  # what fusing an end-to-end model for export leaves
    with pytest.raises(CheckpointError, match="without its one-to-many branch"):
        YoloDetector(stripped)


def test_image_files_through_huale_reader_match_predict_on_the_same_pixels(yolo, det,
                                                                           tmp_path):
    """huale reads the file with PIL; the same decoded pixels given to Ultralytics agree."""
    image = random_image(90, 170, seed=9)
    path = tmp_path / "a.png"
    Image.fromarray(image).save(path)
    tensor = load_image_tensor(path)
    item = PoolItem(0, "a", str(path), 170, 90, [tensor], [make_view(tensor, "orig")[1]])
    ours = det.predict_items([item], ["orig"])[0].original
    theirs = ultralytics_predict(yolo, image)
    assert len(ours) == len(theirs) > 0
    assert np.array_equal(ours.scores, theirs.conf.numpy())


def test_missing_extra_gives_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import ultralytics -> ImportError
    monkeypatch.delitem(sys.modules, "huale.adapters.yolo")
    with pytest.raises(ConfigError) as info:
        load_adapter_class("yolo")
    message = str(info.value)
    assert message == install_hint("yolo")
    assert 'pip install "huale[yolo]"' in message and "\n" not in message


def test_unknown_detector_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown detector 'detr'"):
        load_adapter_class("detr")
    assert load_adapter_class("yolo") is YoloDetector


def test_importing_the_adapter_leaves_the_process_as_it_was(tmp_path):
    """Ultralytics patches PIL.Image.open (auto-installing a plugin on unknown files) and
    torch.save on import; the adapter puts them back, so huale's reader keeps its errors."""
    import PIL.Image

    from huale.data.images import open_rgb
    from huale.errors import DataError

    assert PIL.Image.open.__module__ == "PIL.Image"
    assert torch.save.__module__.startswith("torch")
    assert "ultralytics" in sys.modules
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a JPEG")
    with pytest.raises(DataError, match="not an image file"):
        open_rgb(path)

