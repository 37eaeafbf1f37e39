"""The Faster R-CNN RoI head huale uses: torchvision's, with richer outputs and a loss hook.

Train mode: the same RoI sampling as torchvision's ``RoIHeads``; the losses are computed by one
overridable method, :meth:`HualeRoIHeads.compute_losses`, which also receives the sampled
proposals and their matched ground-truth boxes. Which losses is set by a
:class:`~huale.losses.config.LossConfig`: the default (preset ``torchvision``) is
torchvision's ``fastrcnn_loss``, bitwise; the other presets compute the HUALE loss of
:func:`huale.losses.roi.huale_roi_losses` (IoU-family box term, emphasis weights, synchronic
term). The head can keep ``class_quality`` (C,), a buffer with the EMA of PPAL class quality
``p^0.6 IoU^0.4`` over positive RoIs, saved with the weights.

Eval mode: per image, for every detection, besides ``boxes``/``labels``/``scores``:
``class_probs (N, C+1)`` (softmax posterior of the RoI that produced it), ``max_fg_prob (N,)``
and ``fpn_level (N,)``; optionally the pre-NMS boxes (``prenms_*``). See
:func:`huale.models.postprocess.batched_detections`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import MultiScaleRoIAlign

from huale.errors import ConfigError, DataError
from huale.losses.config import LossConfig
from huale.losses.emphasis import matched_gt_emphasis, update_class_quality
from huale.losses.roi import huale_roi_losses, positive_rois
from huale.models.postprocess import batched_detections


def roi_fpn_levels(pooler: MultiScaleRoIAlign, boxes: list[Tensor]) -> Tensor:
    """Pyramid level k (e.g. 2..5 for P2-P5) at which ``pooler`` pools each box.

    boxes: per image (N_i, 4) xyxy in resized-image pixels. Returns (sum N_i,) int64.
    Uses the pooler's own level mapper, k = floor(k0 + log2(sqrt(wh) / s0)) clamped to the
    pooler's levels (torchvision: k0 = 4, s0 = 224), so it is right for any backbone. The mapper
    exists once the pooler has run on a feature map (it infers the levels from the strides).
    """
    mapper = pooler.map_levels
    if mapper is None:
        raise ValueError("the RoI pooler has not run yet, so its pyramid levels are not known")
    return mapper(boxes) + mapper.k_min


class HualeRoIHeads(RoIHeads):
    """torchvision's box RoI head keeping the per-detection posterior and FPN level.

    Same constructor as ``RoIHeads`` plus ``prenms_score_threshold``: when not None, eval
    outputs also carry the argmax-class box of every RoI whose max foreground probability
    exceeds it (the attribute may be changed after building), and ``loss``: the training losses
    (a :class:`LossConfig`, a preset name or a dict; default torchvision's). Masks and keypoints
    are not supported.

    ``class_quality``: (C,) buffer, the per-class EMA of ``p^xi IoU^(1-xi)`` over positive RoIs
    during training (PPAL's class quality, in [0, 1], higher = better handled class; starts at
    ``loss.quality_init``), or None when the loss config does not track it. It is part of the
    state dict (so of checkpoints); selection strategies may read it as the class quality.
    """

    def __init__(
        self,
        *args,
        prenms_score_threshold: float | None = None,
        loss: LossConfig | dict | str | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if self.has_mask() or self.has_keypoint():
            raise ConfigError("HualeRoIHeads supports box detection only (no mask/keypoint head)")
        self.prenms_score_threshold = prenms_score_threshold
        self.configure_loss(loss)

    @property
    def num_classes(self) -> int:
        """Number of object classes C (the predictor scores C + 1 with the background)."""
        classifier = getattr(self.box_predictor, "cls_score", None)
        if not isinstance(classifier, torch.nn.Linear):
            raise ConfigError("HualeRoIHeads needs a box predictor with a cls_score Linear layer")
        return classifier.out_features - 1

    def configure_loss(self, loss: LossConfig | dict | str | None) -> None:
        """Set the training losses; (re)creates the ``class_quality`` buffer if they track it."""
        config = LossConfig.parse(loss)
        if config.class_counts is not None and len(config.class_counts) != self.num_classes:
            raise ConfigError(
                f"loss class_counts has {len(config.class_counts)} entries for "
                f"{self.num_classes} classes"
            )
        self.loss_config = config
        quality = None
        if config.tracks_class_quality:
            device = next(self.box_predictor.parameters()).device
            quality = torch.full((self.num_classes,), config.quality_init, device=device)
        self.register_buffer("class_quality", quality)

    @classmethod
    def from_torchvision(
        cls,
        heads: RoIHeads,
        *,
        prenms_score_threshold: float | None = None,
        loss: LossConfig | dict | str | None = None,
    ) -> HualeRoIHeads:
        """A HualeRoIHeads sharing ``heads``' modules and settings (same state dict keys,
        plus ``class_quality`` when ``loss`` tracks it)."""
        return cls(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            fg_iou_thresh=heads.proposal_matcher.high_threshold,
            bg_iou_thresh=heads.proposal_matcher.low_threshold,
            batch_size_per_image=heads.fg_bg_sampler.batch_size_per_image,
            positive_fraction=heads.fg_bg_sampler.positive_fraction,
            bbox_reg_weights=heads.box_coder.weights,
            score_thresh=heads.score_thresh,
            nms_thresh=heads.nms_thresh,
            detections_per_img=heads.detections_per_img,
            prenms_score_threshold=prenms_score_threshold,
            loss=loss,
        )

    def compute_losses(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        labels: list[Tensor],
        regression_targets: list[Tensor],
        proposals: list[Tensor],
        matched_gt_boxes: list[Tensor],
        *,
        roi_emphasis: list[Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """RoI losses of the sampled RoIs, as ``self.loss_config`` says; override to change them.

        class_logits: (R, C+1); box_regression: (R, 4*(C+1)); per image: labels (R_i,) with 0
        for background, regression_targets (R_i, 4) encoded deltas, proposals (R_i, 4) and
        matched_gt_boxes (R_i, 4) xyxy (meaningful where the label is > 0); roi_emphasis (R_i,)
        per-RoI weights, passed only with ``emphasis="selection"``.
        Decode predicted boxes with ``self.box_coder.decode(box_regression, proposals)``.
        Returns ``loss_classifier``, ``loss_box_reg`` and, with a synchronic term,
        ``loss_synchronic`` (already scaled by its weight).
        """
        config = self.loss_config
        if config.is_torchvision:
            loss_classifier, loss_box_reg = fastrcnn_loss(
                class_logits, box_regression, labels, regression_targets
            )
            if self.class_quality is not None:  # fastrcnn_loss does not measure it
                with torch.no_grad():
                    positives = positive_rois(box_regression, labels, regression_targets,
                                              proposals, matched_gt_boxes, self.box_coder)
                    probs = torch.softmax(class_logits.float(), -1)
                self._update_quality(positives.labels, positives.quality(probs, config.quality_xi))
            return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}

        result = huale_roi_losses(
            class_logits,
            box_regression,
            labels,
            regression_targets,
            proposals,
            matched_gt_boxes,
            box_coder=self.box_coder,
            config=config,
            class_quality=self.class_quality,
            roi_emphasis=roi_emphasis,
        )
        if self.class_quality is not None:
            self._update_quality(result.positive_labels, result.positive_quality)
        return result.losses

    @torch.no_grad()
    def _update_quality(self, labels: Tensor, quality: Tensor) -> None:
        self.class_quality.copy_(
            update_class_quality(
                self.class_quality, labels, quality, self.loss_config.quality_momentum
            )
        )

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Losses in train mode, per-image rich detections in eval mode (torchvision contract)."""
        if targets is not None:
            _check_target_types(targets)

        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
                proposals, targets
            )
            matched_gt_boxes = _matched_gt_boxes(targets, matched_idxs, proposals[0].dtype)

        box_features = self.box_roi_pool(features, proposals, image_shapes)
        box_features = self.box_head(box_features)
        class_logits, box_regression = self.box_predictor(box_features)

        if self.training:
            extra = {}
            if self.loss_config.emphasis == "selection":
                extra["roi_emphasis"] = [
                    matched_gt_emphasis(_target_emphasis(target, i), idxs)
                    for i, (target, idxs) in enumerate(zip(targets, matched_idxs, strict=True))
                ]
            losses = self.compute_losses(
                class_logits,
                box_regression,
                labels,
                regression_targets,
                proposals,
                matched_gt_boxes,
                **extra,
            )
            return [], losses

        detections = batched_detections(
            class_logits,
            box_regression,
            proposals,
            image_shapes,
            roi_fpn_levels(self.box_roi_pool, proposals),
            self.box_coder,
            score_thresh=self.score_thresh,
            nms_thresh=self.nms_thresh,
            detections_per_img=self.detections_per_img,
            prenms_score_threshold=self.prenms_score_threshold,
        )
        return detections, {}


def _check_target_types(targets: list[dict[str, Tensor]]) -> None:
    """The dtype checks of torchvision's RoIHeads.forward."""
    for target in targets:
        if target["boxes"].dtype not in (torch.float, torch.double, torch.half):
            raise TypeError(f"target boxes must be of float type, got {target['boxes'].dtype}")
        if target["labels"].dtype != torch.int64:
            raise TypeError(f"target labels must be of int64 type, got {target['labels'].dtype}")


def _target_emphasis(target: dict[str, Tensor], position: int) -> Tensor | None:
    """The optional per-GT ``target["emphasis"]`` (N,) of one image, checked."""
    emphasis = target.get("emphasis")
    if emphasis is None:
        return None
    count = len(target["boxes"])
    if (
        emphasis.shape != (count,)
        or not bool(torch.isfinite(emphasis).all())
        or bool((emphasis < 0).any())
    ):
        where = target.get("image_id", f"training image {position} of the batch")
        raise DataError(
            str(where),
            f"target emphasis must be {count} finite non-negative weights (one per box), "
            f"got shape {tuple(emphasis.shape)}",
        )
    return emphasis


def _matched_gt_boxes(
    targets: list[dict[str, Tensor]], matched_idxs: list[Tensor], dtype: torch.dtype
) -> list[Tensor]:
    """Per image (R_i, 4): the GT box each sampled RoI was matched to (as torchvision builds it).

    Background RoIs point at GT 0; an image without GT gets zero boxes.
    """
    matched = []
    for target, idxs in zip(targets, matched_idxs, strict=True):
        gt_boxes = target["boxes"].to(dtype)
        if gt_boxes.numel() == 0:
            gt_boxes = torch.zeros((1, 4), dtype=dtype, device=gt_boxes.device)
        matched.append(gt_boxes[idxs])
    return matched
