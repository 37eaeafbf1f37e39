"""The HUALE RoI-head loss (method.md §9.2) over the RoIs sampled for one training step.

For the sampled RoIs (N of them, N_pos positive), positive i with GT class c_i, decoded predicted
box b_i (its class-c_i deltas applied to its proposal), GT box g_i, p_i = softmax prob of c_i:
::

    e_i    = emphasis weight (constant; 1 when emphasis is off)
    Lloc_i = SmoothL1(deltas_i) + lambda_E * L_IoU(b_i, g_i)      (either term may be off)
    beta_r = exp(-Lloc_i),  beta_c = exp(-CE_i)                  (constants; 0 when harmonic off)
    L_cls  = (1/N)     [ sum_pos e_i (1 + beta_r) CE_i + sum_neg CE_j ]
    L_box  = (1/N_box)   sum_pos e_i (1 + beta_c) Lloc_i         N_box = N_pos, or N (torchvision)
    L_syn  = (1/N_pos)   sum_pos max(0, |p_i - IoU_i| - m) / (1 + exp(H(softmax_i)))

With harmonic off the ``(1 + beta)`` factors are left out entirely (not replaced by 1 + 0), so
with everything off the terms are torchvision's. Focal emphasis modulates the CE of every
sampled RoI (alpha_t (1 - p_t)^gamma) and leaves the box term alone. IoU_i is a constant in
L_syn (only the confidence moves towards it) and in the class-quality statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection._utils import BoxCoder

from huale.losses.config import LossConfig
from huale.losses.emphasis import (
    class_balanced_weights,
    class_difficulty_weights,
    focal_weights,
    roi_quality,
)
from huale.losses.iou import aligned_box_iou, box_iou_loss
from huale.losses.reduction import weight_reduce_loss
from huale.losses.synchronic import (
    harmonic_weights,
    prediction_entropy,
    task_contrast_loss,
    varifocal_loss,
)


@dataclass
class PositiveRoIs:
    """The positive sampled RoIs of a step, P of them (indices into the R sampled RoIs)."""

    index: Tensor  # (P,) int64
    labels: Tensor  # (P,) classes 1..C
    deltas: Tensor  # (P, 4) predicted deltas of the GT class (with gradient)
    target_deltas: Tensor  # (P, 4) encoded matched GT
    boxes: Tensor  # (P, 4) xyxy decoded predicted boxes, float32 (with gradient)
    gt_boxes: Tensor  # (P, 4) xyxy matched GT boxes, float32
    iou: Tensor  # (P,) IoU(boxes, gt_boxes), constant

    def quality(self, probs: Tensor, xi: float) -> Tensor:
        """PPAL quality ``p^xi IoU^(1-xi)`` (P,), constant; probs: (R, C+1) RoI posteriors."""
        return roi_quality(probs.detach()[self.index, self.labels], self.iou, xi)


@dataclass
class RoILosses:
    """What :func:`huale_roi_losses` returns."""

    losses: dict[str, Tensor]  # loss_classifier, loss_box_reg[, loss_synchronic]
    positive_labels: Tensor  # (P,)
    positive_quality: Tensor  # (P,) PPAL quality p^xi IoU^(1-xi), for the class-quality EMA


def positive_rois(
    box_regression: Tensor,
    labels: list[Tensor],
    regression_targets: list[Tensor],
    proposals: list[Tensor],
    matched_gt_boxes: list[Tensor],
    box_coder: BoxCoder,
) -> PositiveRoIs:
    """Select and decode the positive RoIs of the batch.

    box_regression: (R, 4 (C+1)); per image: labels (R_i,), regression_targets, proposals,
    matched_gt_boxes (R_i, 4) (R = sum R_i, images in order).
    """
    labels_all = torch.cat(labels)
    index = torch.where(labels_all > 0)[0]
    positive_labels = labels_all[index]
    deltas = box_regression.reshape(labels_all.numel(), -1, 4)[index, positive_labels]
    boxes = box_coder.decode_single(deltas.float(), torch.cat(proposals)[index].float())
    gt_boxes = torch.cat(matched_gt_boxes)[index].float()
    return PositiveRoIs(
        index=index,
        labels=positive_labels,
        deltas=deltas,
        target_deltas=torch.cat(regression_targets)[index],
        boxes=boxes,
        gt_boxes=gt_boxes,
        iou=aligned_box_iou(boxes.detach(), gt_boxes),
    )


def huale_roi_losses(
    class_logits: Tensor,
    box_regression: Tensor,
    labels: list[Tensor],
    regression_targets: list[Tensor],
    proposals: list[Tensor],
    matched_gt_boxes: list[Tensor],
    *,
    box_coder: BoxCoder,
    config: LossConfig,
    class_quality: Tensor | None = None,
    roi_emphasis: list[Tensor] | None = None,
) -> RoILosses:
    """The §9.2 losses (see module docstring) as configured by ``config``.

    class_logits: (R, C+1); box_regression: (R, 4 (C+1)); per image: labels (R_i,),
    regression_targets / proposals / matched_gt_boxes (R_i, 4). class_quality: (C,), needed for
    ``emphasis="class_difficulty"``; roi_emphasis: per image (R_i,) weights, needed for
    ``emphasis="selection"``.
    """
    labels_all = torch.cat(labels)
    num_sampled = max(labels_all.numel(), 1)
    positives = positive_rois(
        box_regression, labels, regression_targets, proposals, matched_gt_boxes, box_coder
    )
    num_positive = max(positives.index.numel(), 1)

    cross_entropy = F.cross_entropy(class_logits, labels_all, reduction="none")  # (R,)
    probs = F.softmax(class_logits.float(), dim=-1)  # (R, C+1), with gradient
    positive_prob = probs[positives.index, positives.labels]  # (P,)
    localization = _localization_loss(positives, config)  # (P,)

    cls_weight = torch.ones_like(cross_entropy)
    box_weight = _positive_emphasis(positives, config, class_quality, roi_emphasis)
    if config.emphasis == "focal":
        prob_true = probs.detach().gather(1, labels_all[:, None])[:, 0]
        cls_weight = focal_weights(
            prob_true, labels_all > 0, config.focal_alpha, config.focal_gamma
        ).to(cross_entropy.dtype)
        box_weight = torch.ones_like(box_weight)
    else:
        cls_weight = cls_weight.index_put((positives.index,), box_weight.to(cls_weight.dtype))
    if config.harmonic:
        beta_r, beta_c = harmonic_weights(cross_entropy[positives.index], localization)
        cls_weight = cls_weight.index_put(
            (positives.index,), cls_weight[positives.index] * (1 + beta_r.to(cls_weight.dtype))
        )
        box_weight = box_weight * (1 + beta_c)

    box_divisor = num_positive if config.box_normalizer == "positives" else num_sampled
    losses = {
        "loss_classifier": weight_reduce_loss(cross_entropy, cls_weight, "mean", num_sampled),
        "loss_box_reg": weight_reduce_loss(localization, box_weight, "mean", box_divisor),
    }
    if config.synchronic != "none":
        losses["loss_synchronic"] = config.synchronic_weight * _synchronic_loss(
            positive_prob, positives, probs, config, num_positive
        )
    return RoILosses(
        losses=losses,
        positive_labels=positives.labels,
        positive_quality=positives.quality(probs, config.quality_xi),
    )


def _localization_loss(positives: PositiveRoIs, config: LossConfig) -> Tensor:
    """Lloc_i = SmoothL1 (summed over the 4 deltas) + lambda_E * IoU loss, (P,) float32."""
    loss = positives.boxes.new_zeros(positives.index.shape)
    if config.smooth_l1:
        loss = loss + F.smooth_l1_loss(
            positives.deltas.float(),
            positives.target_deltas.float(),
            beta=config.smooth_l1_beta,
            reduction="none",
        ).sum(-1)
    if config.box_iou_loss is not None:
        options = {
            "focal_efficient": {"gamma": config.focal_eiou_gamma},
            "extended": {"theta": config.extended_iou_theta},
        }.get(config.box_iou_loss, {})
        loss = loss + config.box_iou_weight * box_iou_loss(
            config.box_iou_loss, positives.boxes, positives.gt_boxes, **options
        )
    return loss


def _positive_emphasis(
    positives: PositiveRoIs,
    config: LossConfig,
    class_quality: Tensor | None,
    roi_emphasis: list[Tensor] | None,
) -> Tensor:
    """e_i of each positive RoI, (P,) float32 constants."""
    device = positives.boxes.device
    if config.emphasis == "class_difficulty":
        if class_quality is None:
            raise ValueError('emphasis="class_difficulty" needs the class_quality tensor')
        weights = class_difficulty_weights(
            class_quality, config.difficulty_alpha, config.difficulty_delta
        )
        return weights.float()[positives.labels - 1]
    if config.emphasis == "class_balanced":
        counts = torch.tensor(config.class_counts, device=device)
        weights = class_balanced_weights(counts, config.class_balanced_beta)
        return weights[positives.labels - 1]
    if config.emphasis == "selection":
        if roi_emphasis is None:
            raise ValueError('emphasis="selection" needs the per-RoI roi_emphasis weights')
        return torch.cat(roi_emphasis).float().to(device)[positives.index].detach()
    return torch.ones(positives.index.shape, device=device)


def _synchronic_loss(
    positive_prob: Tensor,
    positives: PositiveRoIs,
    probs: Tensor,
    config: LossConfig,
    num_positive: int,
) -> Tensor:
    if config.synchronic == "task_contrast":
        entropy = prediction_entropy(probs.detach()[positives.index])
        return task_contrast_loss(
            positive_prob,
            positives.iou,
            entropy,
            margin=config.synchronic_margin,
            reduction="mean",
            avg_factor=num_positive,
        )
    return varifocal_loss(
        positive_prob,
        positives.iou,
        alpha=config.varifocal_alpha,
        gamma=config.varifocal_gamma,
        reduction="mean",
        avg_factor=num_positive,
    )
