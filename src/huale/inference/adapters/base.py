"""The detector-adapter seam: any detector that turns pool images into prediction records.

Pool scoring (:mod:`huale.inference.scoring`) decodes images and builds their test-time views
in DataLoader workers, then hands each batch (:class:`~huale.inference.views.PoolItem`: the view
tensors and their geometry) to a :class:`DetectorAdapter`, which returns one
:class:`~huale.predictions.PredictionRecord` per readable image with every view's boxes in the
original image's frame. Strategies and the loop see only records, never the detector.

Each adapter declares its :class:`Capabilities`. What it cannot give gets a documented
stand-in (docs/method.md, "Detectors other than huale's"):

- no FPN level -> the scale level from the box size, :func:`huale.predictions.fpn_level_from_boxes`;
- no class posterior -> :func:`huale.predictions.score_posterior` (score on the label, the rest
  on the background);
- no pre-NMS boxes -> HUA groups the final (post-NMS) boxes of each view instead.

What has no stand-in (a view the detector cannot predict, pooled features) fails before any
scoring: :func:`check_needs` names the strategy and the missing field in one line.

A new adapter implements :meth:`DetectorAdapter.predict` and :meth:`DetectorAdapter.manifest`
(and :meth:`~DetectorAdapter.scoring` when the detector needs setting up) and a classmethod
``from_checkpoint(path, *, arch=None, classes=None, device="cpu", **options)`` (``options``:
``min_size``/``max_size`` from the command line, which it may ignore), sets ``class_names``,
and is registered by name in :data:`huale.inference.adapters.DETECTORS` (a ``"module:Class"``
string, imported on first use, so an optional dependency is only needed when it is chosen).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from huale.errors import ConfigError
from huale.inference.views import PoolItem
from huale.predictions import ORIGINAL, Needs, PredictionRecord


@dataclass(frozen=True)
class Capabilities:
    """What a detector can give per image.

    views: the test-time views it can predict (``huale.predictions.VIEW_NAMES``);
    class_posteriors: a (C+1) class posterior per box (else the score stand-in);
    prenms_boxes: the argmax-class boxes of every proposal above a threshold, before NMS;
    fpn_level: the pyramid level each box was pooled from (else the box-size rule);
    features: a pooled backbone feature per image (core-set).
    """

    views: tuple[str, ...] = (ORIGINAL,)
    class_posteriors: bool = False
    prenms_boxes: bool = False
    fpn_level: bool = False
    features: bool = False

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class DetectorAdapter(ABC):
    """A detector behind the seam (see module docstring).

    name: the detector family as ``--detector`` names it; capabilities: what it can give;
    class_names: object class names, label i -> ``class_names[i - 1]`` (None when unknown).
    category_ids: the user's category id of each class (the ids of the data it was trained on),
    ``category_ids[i - 1]`` for label i; None: 1..C.
    """

    name: str = ""
    capabilities: Capabilities = Capabilities()
    class_names: list[str] | None = None
    category_ids: list[int] | None = None
    # huale's loop can train this family and score with it (from_model works)
    trained_by_loop: bool = False

    @classmethod
    def from_model(cls, model: torch.nn.Module, class_names: Sequence[str]) -> DetectorAdapter:
        """The adapter of a detector that huale's loop trained (``trained_by_loop`` families)."""
        raise ConfigError(f"the {cls.name} detector cannot score a model trained by huale's loop")

    @contextlib.contextmanager
    def scoring(
        self, needs: Needs, *, device: torch.device, amp: bool, feature_level: str | None = None
    ) -> Iterator[None]:
        """Set the detector up for one scoring run with ``needs`` on ``device`` (eval mode,
        thresholds, hooks) and undo it afterwards. The default does nothing."""
        yield

    @abstractmethod
    def predict(self, items: Sequence[PoolItem], views: Sequence[str]) -> list[PredictionRecord]:
        """One record per readable item (``item.error is None``), in item order.

        ``views[v]`` names ``item.views[v]`` (the original first); each record holds every
        view's detections, boxes mapped back to the original frame
        (:func:`huale.augment.boxes_to_original` with ``item.geometries[v]``). Called inside
        :meth:`scoring`.
        """

    @abstractmethod
    def manifest(self) -> dict:
        """JSON-friendly identity of the detector and of its settings that change records
        (weights fingerprint, thresholds): scoring shards resume only when it matches."""

    def tracked_class_quality(self) -> np.ndarray | None:
        """(C,) per-class quality the detector tracked during training, or None."""
        return None


def check_needs(strategy: str, needs: Needs, adapter: DetectorAdapter) -> None:
    """Raise ConfigError, in one line naming ``strategy`` and the missing field, when ``needs``
    asks for something ``adapter`` can neither give nor stand in for."""
    caps = adapter.capabilities
    missing = [view for view in needs.views if view not in caps.views]
    if missing:
        raise ConfigError(
            f"strategy {strategy!r} needs the view(s) {', '.join(missing)}, which the "
            f"{adapter.name} detector cannot give (it gives {', '.join(caps.views)})"
        )
    if (needs.features or needs.labeled_features) and not caps.features:
        raise ConfigError(
            f"strategy {strategy!r} needs features (pooled backbone features), which the "
            f"{adapter.name} detector cannot give"
        )


def predict_items(
    adapter: DetectorAdapter, items: Sequence[PoolItem], views: Sequence[str], needs: Needs
) -> list[PredictionRecord]:
    """``adapter.predict(items, views)`` with the pre-NMS stand-in applied when ``needs.prenms``
    and the adapter has no pre-NMS boxes: each view's final boxes serve as its members."""
    records = adapter.predict(items, views)
    if needs.prenms and not adapter.capabilities.prenms_boxes:
        records = [replace(r, prenms=dict(r.views)) if not r.prenms else r for r in records]
    return records
