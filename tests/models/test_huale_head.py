import json

import pytest
import torch

from huale.errors import ConfigError, DataError
from huale.losses.config import PRESETS, LossConfig
from huale.models import HualeRoIHeads, build_detector
from huale.models.checkpoint import build_from_checkpoint, save_checkpoint
from tests.models.stock import stock_roi_heads

SIZE = 64


def _scene(seed=0):
    """Two 64x64 images with two bright rectangles each (classes 1 and 2) on dim noise."""
    generator = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for shift in (0, 6):
        image = torch.rand(3, SIZE, SIZE, generator=generator) * 0.3
        boxes = torch.tensor([[6.0, 8.0, 34.0, 40.0], [37.0, 14.0, 60.0, 30.0]]) + shift / 2
        for (x1, y1, x2, y2), channel in zip(boxes.long().tolist(), (0, 1), strict=True):
            image[channel, y1:y2, x1:x2] = 0.9
        images.append(image)
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2])})
    return images, targets


def _small(loss=None, **kwargs):
    """The "small" detector at 64 px with a frozen trunk: quick to train on CPU."""
    options = {
        "min_size": SIZE,
        "max_size": SIZE,
        "trainable_backbone_layers": 0,
        "rpn_batch_size_per_image": 64,
        "box_batch_size_per_image": 64,
    }
    return build_detector("small", 2, loss=loss, **{**options, **kwargs})


@pytest.mark.parametrize("loss", ["torchvision", LossConfig(track_class_quality=True)])
def test_torchvision_preset_equals_stock_roi_heads_bitwise(loss):
    torch.manual_seed(0)
    model = _small(loss).train()
    images, targets = _scene()
    ours = model.roi_heads
    results = []
    for heads in (stock_roi_heads(ours).train(), ours):
        model.roi_heads = heads
        torch.manual_seed(123)
        results.append(model(images, targets))
    assert results[0].keys() == results[1].keys() >= {"loss_classifier", "loss_box_reg"}
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key
    if ours.class_quality is None:
        assert "roi_heads.class_quality" not in model.state_dict()
    else:  # tracking the class quality does not touch the losses
        assert (ours.class_quality > 0).all() and (ours.class_quality < 1).all()


def test_presets_return_the_loss_keys_the_training_loop_sums():
    images, targets = _scene()
    for preset in PRESETS:
        torch.manual_seed(0)
        model = _small(preset).train()
        losses = model(images, targets)
        expected = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
        if LossConfig.from_preset(preset).synchronic != "none":
            expected.add("loss_synchronic")
        assert set(losses) == expected, preset
        assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("preset", list(PRESETS))
def test_twenty_training_steps_lower_the_total_loss(preset):
    torch.manual_seed(0)
    model = _small(preset).train()
    images, targets = _scene()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9)
    history = []
    for _ in range(20):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, history))), history
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last < 0.9 * first, history


def test_class_quality_buffer_follows_the_classes_seen():
    torch.manual_seed(0)
    model = _small("full").train()
    heads = model.roi_heads
    assert heads.class_quality.shape == (2,) and not heads.class_quality.any()  # PPAL init 0
    images, targets = _scene()
    only_class_2 = [{"boxes": t["boxes"][1:], "labels": t["labels"][1:]} for t in targets]
    model(images, only_class_2)
    assert heads.class_quality[0] == 0 and 0 < heads.class_quality[1] < 0.01 + 1e-6
    # one EMA step from 0 with m = 0.99 is at most 1 - 0.99 = 0.01
    assert "roi_heads.class_quality" in model.state_dict()
    model.eval()
    with torch.no_grad():
        model(images)
    assert heads.class_quality[0] == 0  # evaluation does not update it


def test_checkpoint_round_trip_keeps_loss_config_and_class_quality(tmp_path):
    torch.manual_seed(0)
    config = LossConfig.from_preset("full", box_iou_loss="siou", synchronic_weight=0.5)
    model = _small(config)
    model.roi_heads.class_quality.copy_(torch.tensor([0.25, 0.75]))
    assert model.huale_spec["kwargs"]["loss"] == config.to_dict()
    json.dumps(model.huale_spec)  # JSON-friendly

    path = save_checkpoint(tmp_path / "model.pt", model, ["a", "b"])
    rebuilt, names = build_from_checkpoint(path)
    assert names == ["a", "b"]
    assert rebuilt.roi_heads.loss_config == config
    assert torch.equal(rebuilt.roi_heads.class_quality, torch.tensor([0.25, 0.75]))
    # old checkpoints without a loss block rebuild with torchvision's losses
    assert build_detector("small", 2).huale_spec["kwargs"]["loss"] == LossConfig().to_dict()


def test_weights_load_across_loss_configs(tmp_path):
    torch.manual_seed(0)
    plain, huale = _small("torchvision"), _small("+emphasis")
    torch.save(plain.state_dict(), tmp_path / "plain.pth")
    torch.save(huale.state_dict(), tmp_path / "huale.pth")
    # plain weights into a tracking head: class_quality keeps its initial value
    loaded = _small("+emphasis", weights=tmp_path / "plain.pth")
    assert torch.equal(loaded.roi_heads.class_quality, torch.zeros(2))
    assert torch.equal(
        loaded.roi_heads.box_predictor.cls_score.weight,
        plain.roi_heads.box_predictor.cls_score.weight,
    )
    # and a tracking model's weights into a plain head: the statistic is not needed
    loaded = _small("torchvision", weights=tmp_path / "huale.pth")
    assert loaded.roi_heads.class_quality is None


class _Recording(HualeRoIHeads):
    seen: dict = {}

    def compute_losses(self, *args, roi_emphasis=None):
        _Recording.seen = {"labels": args[2], "gt": args[5], "roi_emphasis": roi_emphasis}
        return super().compute_losses(*args, roi_emphasis=roi_emphasis)


def test_selection_emphasis_reaches_the_rois_matched_to_each_object():
    torch.manual_seed(0)
    model = _small(LossConfig(emphasis="selection", box_normalizer="positives")).train()
    model.roi_heads = _Recording.from_torchvision(model.roi_heads, loss=model.roi_heads.loss_config)
    images, targets = _scene()
    targets[0]["emphasis"] = torch.tensor([2.0, 0.5])  # image 1 has none: weight 1
    losses = model(images, targets)
    assert torch.isfinite(losses["loss_classifier"])
    seen = _Recording.seen
    for target, labels, gt, weights in zip(
        targets, seen["labels"], seen["gt"], seen["roi_emphasis"], strict=True
    ):
        positive = labels > 0
        assert weights.shape == labels.shape and positive.any()
        # each positive RoI carries the weight of the GT box it was matched to
        which = (gt[positive, None, :] == target["boxes"][None]).all(-1).float().argmax(1)
        expected = target.get("emphasis", torch.ones(2))[which]
        assert torch.equal(weights[positive], expected)


def test_bad_target_emphasis_names_the_image():
    torch.manual_seed(0)
    model = _small(LossConfig(emphasis="selection")).train()
    images, targets = _scene()
    targets[1]["emphasis"] = torch.tensor([1.0])
    targets[1]["image_id"] = "img_007"
    with pytest.raises(DataError, match="img_007: target emphasis must be 2 finite"):
        model(images, targets)
    targets[1]["emphasis"] = torch.tensor([1.0, float("nan")])
    with pytest.raises(DataError, match="img_007"):
        model(images, targets)


def test_loss_config_is_checked_against_the_head():
    with pytest.raises(ConfigError, match="class_counts has 3 entries for 2 classes"):
        _small(LossConfig(emphasis="class_balanced", class_counts=(5, 6, 7)))
    with pytest.raises(ConfigError, match="unknown loss preset"):
        _small("eiou")
    model = _small({"preset": "full", "box_iou_loss": "ciou"})
    assert model.roi_heads.loss_config.box_iou_loss == "ciou"
    model.roi_heads.configure_loss("torchvision")
    assert model.roi_heads.class_quality is None
    assert "roi_heads.class_quality" not in model.state_dict()
