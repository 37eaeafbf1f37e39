"""Pool scoring: views in one forward pass, boxes mapped back, compact records, shards, resume."""

import numpy as np
import pytest
import torch
from PIL import Image

from huale.boxes import hflip_boxes
from huale.data.records import DetectionDataset, ImageRecord
from huale.engine.predict import predict
from huale.errors import ConfigError
from huale.inference import ScoringReport, ScoringRequest, iter_pool_records, score_pool
from huale.inference.shards import arrays_to_records, records_to_arrays
from huale.models.detector import build_detector
from huale.predictions import VIEW_NAMES, Detections, Needs
from tests.conftest import make_tiny_dataset

FIELDS = ("boxes", "labels", "scores", "class_probs", "max_fg_prob", "fpn_level")


def peaked_model(num_classes=2, seed=0):
    """A fresh small detector whose class scores are spread out (not ~1/(C+1) everywhere), so
    detections have distinct scores and their order does not hinge on float noise."""
    torch.manual_seed(seed)
    model = build_detector("small", num_classes, min_size=64, max_size=64)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return peaked_model()


@pytest.fixture
def pool(tmp_path):
    return make_tiny_dataset(tmp_path / "pool", num_images=3, size=64, seed=1)


def _score(model, dataset, needs, **kwargs):
    """score_pool on the CPU; ScoringRequest fields among ``kwargs`` go into the request."""
    fields = {k: kwargs.pop(k) for k in ("batch_size", "shard_size") if k in kwargs}
    request = ScoringRequest(device="cpu", progress=False, **fields)
    return score_pool(model, dataset, needs, request, **kwargs)


def _assert_same(a: Detections, b: Detections, atol=1e-5):
    assert len(a) == len(b)
    for name in FIELDS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=atol)


def test_original_view_matches_predict_whatever_the_batch_layout(model, pool):
    needs = Needs(views=("orig", "flip", "cutout"))
    records = _score(model, pool, needs, batch_size=2)  # 6 views in one pass, then 3
    reference = predict(model, pool, batch_size=1, device="cpu", progress=False)
    assert [r.image_id for r in records] == pool.ids
    for record, expected in zip(records, reference, strict=True):
        assert set(record.views) == {"orig", "flip", "cutout"}
        assert len(record.original) > 0
        _assert_same(record.original, Detections(**{k: expected[k].numpy() for k in FIELDS}))


def test_flip_view_boxes_are_mapped_back_to_the_original_frame(model, tmp_path):
    # image B is image A mirrored, so the flip view of A is exactly the original view of B:
    # A's flip detections mapped back must be B's detections mirrored (x -> W - x)
    base = make_tiny_dataset(tmp_path / "src", num_images=1, size=64, seed=3).records[0]
    mirrored = tmp_path / "mirrored.png"
    Image.open(base.path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    pair = DetectionDataset(
        [ImageRecord("a", base.path, 64, 64), ImageRecord("b", mirrored, 64, 64)], ["red", "green"]
    )
    a, b = _score(model, pair, Needs(views=("orig", "flip")), batch_size=2)
    expected = b.original
    expected_boxes = hflip_boxes(torch.from_numpy(expected.boxes), 64).numpy()
    got = a.views["flip"]
    assert len(got) > 0
    np.testing.assert_allclose(got.boxes, expected_boxes, atol=1e-4)
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-5)
    np.testing.assert_array_equal(got.labels, expected.labels)


def test_all_views_prenms_and_features(model, pool):
    model.roi_heads.prenms_score_threshold = 0.9
    needs = Needs(views=VIEW_NAMES, prenms=True, prenms_threshold=0.3, features=True)
    records = _score(model, pool, needs, batch_size=2)
    assert model.roi_heads.prenms_score_threshold == 0.9  # restored after scoring
    model.roi_heads.prenms_score_threshold = None
    for record in records:
        assert list(record.views) == list(VIEW_NAMES) and list(record.prenms) == list(VIEW_NAMES)
        for view in VIEW_NAMES:
            boxes = record.views[view].boxes
            assert np.all(boxes[:, 0::2] >= 0) and np.all(boxes[:, 0::2] <= record.width)
            assert np.all(boxes[:, 1::2] >= 0) and np.all(boxes[:, 1::2] <= record.height)
            pre = record.prenms[view]
            assert np.all(pre.max_fg_prob > 0.3)
            best_fg = pre.class_probs[:, 1:].max(axis=1)
            np.testing.assert_allclose(pre.max_fg_prob, best_fg, atol=1e-6)
        assert record.feature.shape == (64,) and record.feature.dtype == np.float32

    # the feature is the mean of the coarsest backbone map over the image's cells
    image, _ = pool[0]
    with torch.no_grad():
        image_list, _ = model.transform([image])
        coarsest = list(model.backbone(image_list.tensors).values())[-1]
    np.testing.assert_allclose(records[0].feature, coarsest[0].mean(dim=(1, 2)).numpy(), atol=1e-5)


def test_records_are_compact_numpy_and_streamed(model, pool):
    passes = []
    hook = model.register_forward_hook(lambda module, inputs, output: passes.append(len(inputs[0])))
    try:
        stream = iter_pool_records(
            model, pool, Needs(views=("orig", "flip")),
            ScoringRequest(batch_size=2, device="cpu", progress=False),
        )
        first = next(stream)
        assert passes == [4]  # one pass over 2 images x 2 views; the rest not run yet
        records = [first, *stream]
    finally:
        hook.remove()
    assert passes == [4, 2]
    for record in records:
        for dets in record.views.values():
            for name in FIELDS:
                value = getattr(dets, name)
                assert isinstance(value, np.ndarray) and not torch.is_tensor(value)
                assert value.base is None  # owns its memory: no batch buffer kept alive
        assert record.feature is None and record.prenms == {}


def test_unreadable_image_is_skipped_and_reported(model, pool, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(pool.records[0].path.read_bytes()[:120])  # header readable, data cut
    dataset = DetectionDataset(
        [*pool.records, ImageRecord("broken", broken, 64, 64)], pool.class_names
    )
    report = ScoringReport()
    records = _score(model, dataset, Needs(), report=report)
    assert [r.image_id for r in records] == pool.ids
    assert [i for i, _ in report.skipped] == ["broken"]


def test_shard_arrays_round_trip(model, pool):
    records = _score(model, pool, Needs(views=("orig", "rotate"), prenms=True, features=True))
    back, skipped = arrays_to_records(records_to_arrays(records, [("x", "corrupt")]))
    assert skipped == [("x", "corrupt")]
    for a, b in zip(records, back, strict=True):
        assert (a.image_id, a.width, a.height) == (b.image_id, b.width, b.height)
        for view in a.views:
            _assert_same(a.views[view], b.views[view], atol=0)
            _assert_same(a.prenms[view], b.prenms[view], atol=0)
        assert np.array_equal(a.feature, b.feature)


class Stop(Exception):
    pass


def test_stopped_run_resumes_from_finished_shards(model, tmp_path):
    dataset = make_tiny_dataset(tmp_path / "pool", num_images=4, size=64, seed=2)
    needs = Needs(views=("orig", "flip", "cutout"), prenms=True)
    options = {"batch_size": 2, "shard_size": 2, "seed": 5}
    full = _score(model, dataset, needs, **options)

    def stop(k):
        raise Stop

    shards = tmp_path / "shards"
    with pytest.raises(Stop):
        _score(model, dataset, needs, shard_dir=shards, on_shard=stop, **options)
    names = sorted(p.name for p in shards.iterdir())
    assert names == ["manifest.json", "shard-000000.npz"]  # no partial or temporary files

    report = ScoringReport()
    resumed = _score(model, dataset, needs, shard_dir=shards, report=report, **options)
    assert (report.resumed, report.scored) == (2, 2)
    assert [r.image_id for r in resumed] == [r.image_id for r in full] == dataset.ids
    for a, b in zip(full, resumed, strict=True):
        for view in a.views:
            _assert_same(a.views[view], b.views[view])
            _assert_same(a.prenms[view], b.prenms[view])

    # a finished run is read back without scoring anything
    again = ScoringReport()
    _score(model, dataset, needs, shard_dir=shards, report=again, **options)
    assert (again.resumed, again.scored) == (4, 0)
    with np.load(shards / "shard-000001.npz", allow_pickle=False) as content:  # plain arrays
        assert list(content["image_ids"]) == dataset.ids[2:]


def test_mismatched_resume_is_refused(model, pool, tmp_path):
    shards = tmp_path / "shards"
    _score(model, pool, Needs(views=("orig", "flip")), shard_dir=shards, shard_size=2)
    with pytest.raises(ConfigError, match="views"):
        _score(model, pool, Needs(views=("orig",)), shard_dir=shards, shard_size=2)
    with pytest.raises(ConfigError, match="seed"):
        _score(model, pool, Needs(views=("orig", "flip")), shard_dir=shards, shard_size=2, seed=1)
    with pytest.raises(ConfigError, match="image_ids"):
        _score(model, pool.subset(pool.ids[:2]), Needs(views=("orig", "flip")),
               shard_dir=shards, shard_size=2)
    other = peaked_model(seed=1)
    with pytest.raises(ConfigError, match="model"):
        _score(other, pool, Needs(views=("orig", "flip")), shard_dir=shards, shard_size=2)


def test_stock_torchvision_head_is_refused(pool):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    stock = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=3
    )
    with pytest.raises(ConfigError, match="build_detector"):
        _score(stock, pool, Needs())


def test_bad_view_name(model, pool):
    with pytest.raises(ConfigError, match="unknown view"):
        _score(model, pool, Needs(views=("orig", "mirror")))
