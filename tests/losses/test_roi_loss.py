import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.roi_heads import fastrcnn_loss

from huale.losses import huale_roi_losses
from huale.losses.config import LossConfig

CODER = BoxCoder((10.0, 10.0, 5.0, 5.0))  # torchvision's RoI head weights


def _one_positive_one_negative():
    """Two sampled RoIs of one image, C = 2 classes, zero predicted deltas.

    RoI 0: class 1, proposal [0,0,2,2], GT [1,0,3,2]; logits [0, ln 4, 0] -> softmax
    [1/6, 2/3, 1/6]: p = 2/3, CE = ln 1.5 = 0.405465, entropy H = 0.867563.
    Zero deltas decode to the proposal itself, so IoU = 1/3 and Efficient-IoU = 0.743590; the
    encoded target is (10 * 1/2, 0, 0, 0) -> SmoothL1(0 - 5, beta 1/9) = 5 - 1/18 = 4.944444.
    RoI 1: background, logits 0 -> CE = ln 3 = 1.098612.
    """
    proposals = torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 9.0, 9.0]])
    gt = torch.tensor([[1.0, 0.0, 3.0, 2.0], [1.0, 0.0, 3.0, 2.0]])
    logits = torch.tensor([[0.0, math.log(4), 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    deltas = torch.zeros(2, 12, requires_grad=True)
    return {
        "class_logits": logits,
        "box_regression": deltas,
        "labels": [torch.tensor([1, 0])],
        "regression_targets": [CODER.encode_single(gt, proposals)],
        "proposals": [proposals],
        "matched_gt_boxes": [gt],
    }


def _losses(inputs, config, **extra):
    return huale_roi_losses(**inputs, box_coder=CODER, config=config, **extra).losses


CE_POS, CE_NEG, SMOOTH_L1 = math.log(1.5), math.log(3), 5 - 1 / 18
EIOU = 2 / 3 + 1 / 13


def test_full_preset_hand_values():
    inputs = _one_positive_one_negative()
    losses = _losses(inputs, LossConfig.from_preset("full"), class_quality=torch.zeros(2))
    # e = 1 + delta = 1.2 (class quality 0); Lloc = 4.944444 + 1.5 * 0.743590 = 6.059829
    # beta_r = exp(-6.059829) = 0.0023348, beta_c = exp(-ln 1.5) = 2/3
    # L_cls = (1/2) [1.2 (1 + 0.0023348) 0.405465 + 1.098612] = 0.793153
    # L_box = (1/N) 1.2 (1 + 2/3) 6.059829 with N = 2 sampled RoIs = 6.059829
    # L_syn = (|2/3 - 1/3| - 0.2) / (1 + e^0.867563) = 0.133333 / 3.381102 = 0.039435
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_synchronic"}
    assert losses["loss_classifier"].item() == pytest.approx(0.793153, abs=1e-5)
    assert losses["loss_box_reg"].item() == pytest.approx(6.059829, abs=1e-4)
    assert losses["loss_synchronic"].item() == pytest.approx(0.039435, abs=1e-6)
    # §9.2's divisor (N_pos = 1) is one option away: 1.2 (1 + 2/3) 6.059829 = 12.119658
    positives = _losses(
        _one_positive_one_negative(), LossConfig.from_preset("full", box_normalizer="positives"),
        class_quality=torch.zeros(2),
    )
    assert positives["loss_box_reg"].item() == pytest.approx(12.119658, abs=1e-4)


def test_synchronic_term_moves_the_confidence_only():
    inputs = _one_positive_one_negative()
    config = LossConfig.from_preset("+synchronic", synchronic_weight=2.0)
    loss = _losses(inputs, config)["loss_synchronic"]
    assert loss.item() == pytest.approx(2 * 0.039435, abs=1e-6)
    loss.backward()
    assert inputs["box_regression"].grad is None or not inputs["box_regression"].grad.any()
    assert inputs["class_logits"].grad[0].abs().sum() > 0  # the positive's logits
    assert not inputs["class_logits"].grad[1].any()  # negatives have no synchronic term


def test_eiou_preset_normalises_the_box_loss_like_torchvision():
    losses = _losses(_one_positive_one_negative(), LossConfig.from_preset("+eiou"))
    # plain CE mean: (ln 1.5 + ln 3) / 2; box: (SmoothL1 + 1.5 EIoU) / 2 sampled RoIs
    assert losses["loss_classifier"].item() == pytest.approx((CE_POS + CE_NEG) / 2, abs=1e-6)
    assert losses["loss_box_reg"].item() == pytest.approx((SMOOTH_L1 + 1.5 * EIOU) / 2, abs=1e-5)
    # §9.2's divisor (the 1 positive RoI) is one option away
    positives = _losses(
        _one_positive_one_negative(), LossConfig.from_preset("+eiou", box_normalizer="positives")
    )
    assert positives["loss_box_reg"].item() == pytest.approx(SMOOTH_L1 + 1.5 * EIOU, abs=1e-5)


def test_iou_loss_only_and_other_iou_variants():
    config = LossConfig(box_iou_loss="extended", smooth_l1=False, box_iou_weight=10.0)
    # Smooth-EIoU of the pair: d = 2/3 -> 2/3 - 0.05; divided by the 2 sampled RoIs
    losses = _losses(_one_positive_one_negative(), config)
    assert losses["loss_box_reg"].item() == pytest.approx(10 * (2 / 3 - 0.05) / 2, abs=1e-5)
    focal = LossConfig(box_iou_loss="focal_efficient", smooth_l1=False, focal_eiou_gamma=1.0)
    losses = _losses(_one_positive_one_negative(), focal)
    assert losses["loss_box_reg"].item() == pytest.approx(1.5 * EIOU / 3 / 2, abs=1e-5)


def test_emphasis_variants_hand_values():
    # focal: weights alpha_t (1 - p_t)^2: positive 0.25 (1/3)^2 = 0.027778, negative
    # 0.75 (2/3)^2 = 0.333333 -> L_cls = (0.027778 ln 1.5 + 0.333333 ln 3) / 2 = 0.188734;
    # the box term is not modulated: 4.944444 / 2 sampled RoIs
    losses = _losses(_one_positive_one_negative(), LossConfig(emphasis="focal"))
    assert losses["loss_classifier"].item() == pytest.approx(0.188734, abs=1e-6)
    assert losses["loss_box_reg"].item() == pytest.approx(SMOOTH_L1 / 2, abs=1e-5)

    # selection: the positive's matched GT has weight 3 -> (3 ln 1.5 + ln 3) / 2 = 1.157504
    config = LossConfig(emphasis="selection", box_normalizer="positives")
    losses = _losses(_one_positive_one_negative(), config, roi_emphasis=[torch.tensor([3.0, 7.0])])
    assert losses["loss_classifier"].item() == pytest.approx(1.157504, abs=1e-6)
    assert losses["loss_box_reg"].item() == pytest.approx(3 * SMOOTH_L1, abs=1e-4)

    # class-balanced: class 1 has 1 box, class 2 has 1000 -> weight 1.996842 (see emphasis tests)
    config = LossConfig(emphasis="class_balanced", class_counts=(1, 1000))
    losses = _losses(_one_positive_one_negative(), config)
    expected = (1.996842 * CE_POS + CE_NEG) / 2
    assert losses["loss_classifier"].item() == pytest.approx(expected, abs=1e-5)


def test_varifocal_synchronic_term():
    config = LossConfig(synchronic="varifocal")
    losses = _losses(_one_positive_one_negative(), config)
    # q = IoU = 1/3, p = 2/3: -q (q ln p + (1 - q) ln(1 - p)) = -(1/3)((1/3) ln(2/3) + (2/3) ln(1/3))
    expected = -(1 / 3) * ((1 / 3) * math.log(2 / 3) + (2 / 3) * math.log(1 / 3))
    assert losses["loss_synchronic"].item() == pytest.approx(expected, abs=1e-6)


def _random_sampled_rois(seed):
    generator = torch.Generator().manual_seed(seed)
    labels, targets, proposals, gts = [], [], [], []
    for count in (16, 9):
        xy = torch.rand(count, 2, generator=generator) * 100
        wh = 5 + torch.rand(count, 2, generator=generator) * 60
        boxes = torch.cat([xy, xy + wh], 1)
        gt = boxes + torch.randn(count, 4, generator=generator) * 3
        gt[:, 2:] = torch.maximum(gt[:, 2:], gt[:, :2] + 1)
        labels.append(torch.randint(0, 4, (count,), generator=generator))
        targets.append(CODER.encode_single(gt, boxes))
        proposals.append(boxes)
        gts.append(gt)
    logits = torch.randn(25, 4, generator=generator)
    deltas = torch.randn(25, 16, generator=generator) * 0.2
    return logits, deltas, labels, targets, proposals, gts


def test_general_path_with_everything_neutral_equals_fastrcnn_loss():
    logits, deltas, labels, targets, proposals, gts = _random_sampled_rois(0)
    # class-difficulty emphasis with delta = 0 weighs every RoI 1 but takes the general path
    neutral = LossConfig(emphasis="class_difficulty", difficulty_delta=0.0)
    assert not neutral.is_torchvision
    result = huale_roi_losses(
        logits,
        deltas,
        labels,
        targets,
        proposals,
        gts,
        box_coder=CODER,
        config=neutral,
        class_quality=torch.rand(3),
    )
    expected = fastrcnn_loss(logits, deltas, labels, targets)
    assert torch.allclose(result.losses["loss_classifier"], expected[0])
    assert torch.allclose(result.losses["loss_box_reg"], expected[1])
    positives = torch.cat(labels) > 0
    assert torch.equal(result.positive_labels, torch.cat(labels)[positives])
    assert result.positive_quality.shape == (int(positives.sum()),)
    assert ((result.positive_quality >= 0) & (result.positive_quality <= 1)).all()


@pytest.mark.parametrize("preset", ["+eiou", "+emphasis", "+synchronic", "full"])
def test_presets_give_finite_losses_and_gradients_without_positives(preset):
    inputs = _one_positive_one_negative()
    inputs["labels"] = [torch.tensor([0, 0])]
    losses = _losses(inputs, LossConfig.from_preset(preset), class_quality=torch.zeros(2))
    assert losses["loss_box_reg"].item() == 0
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(inputs["class_logits"].grad).all()


def test_missing_inputs_are_reported():
    with pytest.raises(ValueError, match="class_quality"):
        _losses(_one_positive_one_negative(), LossConfig(emphasis="class_difficulty"))
    with pytest.raises(ValueError, match="roi_emphasis"):
        _losses(_one_positive_one_negative(), LossConfig(emphasis="selection"))
