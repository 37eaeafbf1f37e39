"""What strategies may know about the labeled set: :class:`SelectionContext` for a run.

Always the labeled class counts; on request (``Needs``) the current model's per-class detection
quality (HUALE / HUA class weights w_c) and the labeled images' pooled features (core-set).
Class quality comes from the checkpoint when its RoI head tracked it during training (the EMA
kept by the emphasis losses); otherwise the labeled set is predicted on the original view and
compared with its ground truth by :func:`huale.strategies.class_quality_from_predictions`,
on at most ``QUALITY_IMAGES`` of them (a seeded subset; all of them when the strategy also needs
the labeled features, as core-set does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from huale.data.records import DetectionDataset
from huale.data.splits import sample_ids
from huale.inference import DetectorAdapter, ScoringRequest, as_adapter, score_pool
from huale.predictions import ORIGINAL, PredictionRecord
from huale.runtime import distributed
from huale.strategies import Needs, SelectionContext, class_quality_from_predictions

log = logging.getLogger(__name__)

QUALITY_IMAGES = 2000  # cap on the labeled images predicted for class quality (an extra pass)


def build_selection_context(
    detector: DetectorAdapter | nn.Module,
    labeled: DetectionDataset | None,
    needs: Needs,
    class_names: Sequence[str],
    request: ScoringRequest | None = None,
    *,
    seed: int = 0,
    shard_dir: str | Path | None = None,
    quality_images: int | None = QUALITY_IMAGES,
    labeled_records: Mapping[str, PredictionRecord] | None = None,
) -> SelectionContext:
    """The context for a strategy with ``needs``; ``labeled`` None or empty: counts unknown.

    detector: the pool's detector (a huale torch detector or any adapter); request: how to
    score the labeled set when it has to be predicted (:func:`huale.inference.score_pool`),
    ``shard_dir`` keeping those predictions in shards (resumable). quality_images: predict at
    most this many labeled images (seeded subset) when only class quality is needed; None: all.
    labeled_records: the labeled images' records by image id, already predicted (a predictions
    file): used instead of scoring them; ``detector`` may then be None.
    """
    adapter = as_adapter(detector) if detector is not None else None
    context = SelectionContext(
        num_classes=len(class_names), class_names=list(class_names), seed=seed
    )
    if labeled is None or len(labeled) == 0:
        if needs.class_quality or needs.labeled_features:
            log.warning("no labeled images: class quality and labeled features are unavailable")
        return context
    context.labeled_class_counts = labeled.class_counts()
    context.num_labeled_images = len(labeled)
    tracked = adapter.tracked_class_quality() if adapter and needs.class_quality else None
    if tracked is not None:
        # trained with a class-tracking loss: the EMA of p^0.6 IoU^0.4 over positive RoIs
        # (PPAL's own definition, method.md §4.2/§9.2) costs nothing and needs no extra pass
        context.class_quality = tracked
        log.info("class quality from the checkpoint's training EMA: %s",
                 np.round(context.class_quality, 3).tolist())
        needs = replace(needs, class_quality=False)
    if not (needs.class_quality or needs.labeled_features):
        return context
    if adapter is None and labeled_records is None:
        log.warning("no predictions of the labeled images: class quality is unavailable")
        return context

    labeled_needs = Needs(views=(ORIGINAL,), features=needs.labeled_features)
    scored_set = labeled
    if not needs.labeled_features and quality_images is not None and len(labeled) > quality_images:
        scored_set = labeled.subset(sample_ids(labeled.ids, count=quality_images, seed=seed))
        log.info("class quality from a seeded subset of %d of the %d labeled images",
                 quality_images, len(labeled))
    if labeled_records is not None:
        records = [labeled_records[i] for i in scored_set.ids if i in labeled_records]
        if len(records) < len(scored_set):
            log.warning("%d of the %d labeled images have no predictions: class quality from "
                        "the other %d", len(scored_set) - len(records), len(scored_set),
                        len(records))
    else:
        records = score_pool(
            adapter, scored_set, labeled_needs, request, shard_dir=shard_dir, seed=seed,
            desc="score labeled",
        )
    if not distributed.is_main():  # under torchrun the records (and the strategy) are rank 0's
        return context
    if needs.class_quality:
        by_id = {r.image_id: r for r in records}
        scored = [scored_set.record(i) for i in scored_set.ids if i in by_id]
        context.class_quality = class_quality_from_predictions(
            [by_id[r.image_id].original for r in scored],
            [{"boxes": r.boxes, "labels": r.labels, "difficult": r.difficult} for r in scored],
            len(class_names),
        )
        quality = np.round(context.class_quality, 3).tolist()
        log.info("class quality on the labeled set: %s", quality)
    if needs.labeled_features and records:
        context.labeled_features = np.stack([r.feature for r in records]).astype(np.float32)
    return context
