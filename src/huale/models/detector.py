"""Build a torchvision Faster R-CNN whose RoI head is :class:`HualeRoIHeads`, and load weights.

``num_classes`` is always the number of OBJECT classes C, background excluded: the box
predictor gets C + 1 outputs (torchvision's own ``num_classes`` counts the background).

Nothing is downloaded unless a torchvision weights name (``"DEFAULT"``, ``"COCO_V1"``,
``"IMAGENET1K_V1"`` ...) is given: architectures are built empty and weights come from files.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import (
    BackboneWithFPN,
    _mobilenet_extractor,
    _resnet_fpn_extractor,
)
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    RPNHead,
    TwoMLPHead,
)
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from huale.errors import CheckpointError, ConfigError
from huale.losses.config import LossConfig
from huale.models.postprocess import HualeTransform
from huale.models.roi_heads import HualeRoIHeads

log = logging.getLogger(__name__)

ARCHITECTURES = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "small",
)

# the classification network each detector's backbone is cut from (ImageNet weights fit it)
TRUNKS = {
    "fasterrcnn_resnet50_fpn": "resnet50",
    "fasterrcnn_resnet50_fpn_v2": "resnet50",
    "fasterrcnn_mobilenet_v3_large_fpn": "mobilenet_v3_large",
    "fasterrcnn_mobilenet_v3_large_320_fpn": "mobilenet_v3_large",
    "small": "resnet18",
}

# FasterRCNN keyword defaults of each architecture (torchvision's builders; "small": ours,
# sized for 192-px images with objects of ~6-80 px and fast CPU training)
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "fasterrcnn_resnet50_fpn": {},
    "fasterrcnn_resnet50_fpn_v2": {},
    "fasterrcnn_mobilenet_v3_large_fpn": {"rpn_score_thresh": 0.05},
    "fasterrcnn_mobilenet_v3_large_320_fpn": {
        "min_size": 320,
        "max_size": 640,
        "rpn_pre_nms_top_n_test": 150,
        "rpn_post_nms_top_n_test": 150,
        "rpn_score_thresh": 0.05,
    },
    "small": {
        "min_size": 192,
        "max_size": 192,
        "rpn_pre_nms_top_n_train": 600,
        "rpn_pre_nms_top_n_test": 300,
        "rpn_post_nms_top_n_train": 300,
        "rpn_post_nms_top_n_test": 150,
        "rpn_batch_size_per_image": 128,
        "box_batch_size_per_image": 128,
    },
}

# torchvision's GeneralizedRCNNTransform default (min_size, max_size) for the other architectures
TORCHVISION_INPUT_SIZE = (800, 1333)


def default_input_size(arch: str) -> tuple[int, int]:
    """(min_size, max_size) an architecture resizes its inputs to unless told otherwise."""
    defaults = ARCH_DEFAULTS[arch]
    return (defaults.get("min_size", TORCHVISION_INPUT_SIZE[0]),
            defaults.get("max_size", TORCHVISION_INPUT_SIZE[1]))


def resize_factor(min_size: int, max_size: int, width: int, height: int) -> float:
    """The factor the detector's transform scales a ``width`` x ``height`` image by
    (torchvision's rule: the shorter side to ``min_size`` unless the longer passes ``max_size``)."""
    return min(min_size / min(width, height), max_size / max(width, height))


# "small": anchors per level P3..P6 (strides 8..64), two sizes per octave, 3 aspect ratios
SMALL_ANCHOR_SIZES = ((8, 11), (16, 23), (32, 45), (64, 91))
SMALL_FPN_CHANNELS = 64
SMALL_REPRESENTATION = 256
# RoIs of sqrt(wh) < 64 px pool from P3, 64-127 px from P4, larger from P5
SMALL_CANONICAL_SCALE = 64
# one bilinear sample per 7x7 bin: RoIs span only a few feature cells at these sizes, and the
# CPU RoIAlign backward (single-threaded) is a fifth of the training step with 2x2 samples
SMALL_SAMPLING_RATIO = 1

# file keys that never need a counterpart on the other side
_COUNTER_SUFFIX = "num_batches_tracked"
_PREDICTOR_PREFIX = "roi_heads.box_predictor."
CLASS_QUALITY_KEY = "roi_heads.class_quality"  # training statistic, absent from plain weights
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")
_WEIGHTS_NAME = re.compile(r"([A-Za-z0-9_]+_Weights\.)?[A-Z][A-Z0-9_]*")


def build_detector(
    arch: str,
    num_classes: int,
    *,
    weights: str | Path | None = None,
    backbone_weights: str | Path | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    trainable_backbone_layers: int | None = None,
    prenms_score_threshold: float | None = None,
    frozen_batchnorm: bool | None = None,
    loss: LossConfig | Mapping[str, Any] | str | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """A torchvision ``FasterRCNN`` with a :class:`HualeRoIHeads` RoI head.

    arch: one of :data:`ARCHITECTURES`.
    num_classes: number of object classes C, BACKGROUND EXCLUDED (the predictor has C+1 outputs).
    weights: a detector state dict / checkpoint file (tensors of other shapes in the box
        predictor, e.g. a 91-class COCO file, keep their fresh initialisation), or a torchvision
        weights name of ``arch`` such as ``"DEFAULT"`` / ``"COCO_V1"`` (downloads).
    backbone_weights: an ImageNet classification state dict file of the backbone's trunk
        (resnet50 / mobilenet_v3_large / resnet18 for "small"; its classifier is ignored), or a
        torchvision weights name such as ``"IMAGENET1K_V1"`` (downloads). Not with ``weights``.
    min_size, max_size: resizing of the input; default the architecture's.
    trainable_backbone_layers: trunk stages left trainable, from the top (0..5 for ResNets,
        0..6 for MobileNet); default 3 with pretrained weights, all without (as torchvision).
    prenms_score_threshold: see :class:`HualeRoIHeads`.
    frozen_batchnorm: use FrozenBatchNorm2d in the trunk; default: when weights are loaded
        (torchvision's rule; the v2 ResNet keeps BatchNorm2d). Store it with a checkpoint, since
        it changes the state dict (no ``num_batches_tracked``).
    loss: the RoI-head training losses: a :class:`~huale.losses.config.LossConfig`, a
        preset name (``"torchvision"`` (default), ``"+eiou"``, ``"+emphasis"``,
        ``"+synchronic"``, ``"full"``) or its dict (``{"preset": "full", ...overrides}``).
    kwargs: passed to ``FasterRCNN`` (``box_score_thresh``, ``box_detections_per_img``,
        ``rpn_*``, ...).
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(
            f"num_classes must be a positive integer (background excluded), got {num_classes!r}"
        )
    if weights is not None and backbone_weights is not None:
        raise ConfigError("give either weights (whole detector) or backbone_weights, not both")
    _check_faster_rcnn_kwargs(kwargs)
    loss_config = LossConfig.parse(loss)

    pretrained = weights is not None or backbone_weights is not None
    if frozen_batchnorm is None:
        frozen_batchnorm = pretrained and arch != "fasterrcnn_resnet50_fpn_v2"
    trainable = _trainable_layers(arch, trainable_backbone_layers, pretrained)
    options = {**ARCH_DEFAULTS[arch], **kwargs}
    if min_size is not None:
        options["min_size"] = min_size
    if max_size is not None:
        options["max_size"] = max_size

    norm_layer = FrozenBatchNorm2d if frozen_batchnorm else nn.BatchNorm2d
    trunk = getattr(torchvision.models, TRUNKS[arch])(weights=None, norm_layer=norm_layer)
    if backbone_weights is not None:
        state, source = _resolve_weights(backbone_weights, TRUNKS[arch])
        load_matching_state(trunk, state, source, optional=_CLASSIFIER_PREFIXES)

    model = _ASSEMBLERS[arch](trunk, num_classes + 1, trainable, options)
    model.roi_heads = HualeRoIHeads.from_torchvision(
        model.roi_heads, prenms_score_threshold=prenms_score_threshold, loss=loss_config
    )
    model.transform = HualeTransform.from_torchvision(model.transform)

    if weights is not None:
        state, source = _resolve_weights(weights, arch)
        load_matching_state(model, state, source, optional=(_PREDICTOR_PREFIX, CLASS_QUALITY_KEY))
        if source == f"torchvision {_R50_COCO_V1}":
            _zero_frozen_bn_eps(model)  # as torchvision does for these weights
    # everything needed to rebuild the same modules without the weight files (for checkpoints)
    model.huale_spec = {
        "arch": arch,
        "num_classes": num_classes,
        "kwargs": {
            "min_size": options["min_size"],
            "max_size": options["max_size"],
            "trainable_backbone_layers": trainable,
            "frozen_batchnorm": bool(frozen_batchnorm),
            "prenms_score_threshold": prenms_score_threshold,
            "loss": loss_config.to_dict(),
            **kwargs,
        },
    }
    return model


def load_matching_state(
    module: nn.Module, state: Mapping[str, Tensor], source: str, *, optional: tuple[str, ...]
) -> list[str]:
    """Load ``state`` into ``module``; keys under ``optional`` prefixes may be absent or differ.

    Those keep the module's current (fresh) values and are logged and returned. Any other
    missing, extra or differently shaped tensor raises :class:`CheckpointError` naming
    ``source``. BatchNorm ``num_batches_tracked`` counters are ignored either way.
    """
    own = module.state_dict()
    loadable: dict[str, Tensor] = {}
    kept_fresh, missing, mismatched = [], [], []
    for key, value in own.items():
        if key not in state:
            if key.startswith(optional):
                kept_fresh.append(key)
            elif not key.endswith(_COUNTER_SUFFIX):
                missing.append(key)
        elif state[key].shape != value.shape:
            problem = f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
            (kept_fresh if key.startswith(optional) else mismatched).append(problem)
        else:
            loadable[key] = state[key]
    unexpected = [
        key
        for key in state
        if key not in own and not key.endswith(_COUNTER_SUFFIX) and not key.startswith(optional)
    ]
    problems = [
        f"{what} {_first(items)}"
        for what, items in (
            ("missing", missing),
            ("wrong shape", mismatched),
            ("unexpected", unexpected),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            f"{source}: weights do not fit {type(module).__name__}: {'; '.join(problems)}"
        )
    module.load_state_dict(loadable, strict=False)
    if kept_fresh:
        log.warning("%s: kept the fresh initialisation of %s", source, _first(kept_fresh, 8))
    return kept_fresh


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file: a plain state dict, a huale checkpoint or a
    ``{"model": state_dict}`` / ``{"state_dict": ...}`` training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    # torchvision's reference scripts save {"model", "optimizer", "lr_scheduler", "args", "epoch"}
    # with "args" an argparse.Namespace: allowed in the weights-only unpickler
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: unreadable or truncated weights file ({exc})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(content, Mapping) and isinstance(content.get(key), Mapping):
            content = content[key]
            break
    if (
        not isinstance(content, Mapping)
        or not content
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in content.items())
    ):
        raise CheckpointError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return dict(content)


def _resolve_weights(spec: str | Path, model_name: str) -> tuple[dict[str, Tensor], str]:
    """(state dict, description) of a weights file or of a torchvision weights name."""
    if Path(spec).is_file() or not _WEIGHTS_NAME.fullmatch(str(spec)):
        return read_state_dict(spec), str(spec)
    try:
        choices = torchvision.models.get_model_weights(model_name)
    except ValueError:
        raise ConfigError(
            f"{model_name!r} has no torchvision weights; {spec!r} is not a file either"
        ) from None
    name = str(spec).split(".")[-1]
    if name not in choices.__members__:
        raise ConfigError(
            f"{spec!r} is neither a file nor a weights name of {model_name} "
            f"({', '.join(choices.__members__)})"
        )
    enum = choices[name]
    log.info("downloading %s (torchvision weights of %s)", enum, model_name)
    try:
        return enum.get_state_dict(progress=False, check_hash=True), f"torchvision {enum}"
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash a RuntimeError
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"could not download the torchvision weights {spec} of {model_name} ({reason}); "
            f"offline, fetch {enum.url} on a machine with internet and pass the file's path "
            f"instead of {spec!r}"
        ) from None


def _check_faster_rcnn_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Unknown keywords would silently vanish into GeneralizedRCNNTransform's **kwargs."""
    accepted = set(inspect.signature(FasterRCNN.__init__).parameters) | {
        "size_divisible",
        "fixed_size",
    }
    accepted -= {"self", "backbone", "num_classes", "kwargs"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"unknown detector option(s) {', '.join(unknown)}")


def _trainable_layers(arch: str, requested: int | None, pretrained: bool) -> int:
    maximum = 6 if TRUNKS[arch] == "mobilenet_v3_large" else 5
    if requested is None:
        return 3 if pretrained else maximum
    if not 0 <= requested <= maximum:
        raise ConfigError(
            f"trainable_backbone_layers for {arch} must be in 0..{maximum}, got {requested}"
        )
    return requested


def _freeze_resnet_stages(trunk: nn.Module, trainable_layers: int) -> None:
    """torchvision's rule: only the top ``trainable_layers`` of layer4..layer1, conv1 train."""
    layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers_to_train.append("bn1")
    for name, parameter in trunk.named_parameters():
        if not name.startswith(tuple(layers_to_train)):
            parameter.requires_grad_(False)


def _build_resnet50_fpn(trunk, num_outputs, trainable, options) -> FasterRCNN:
    backbone = _resnet_fpn_extractor(trunk, trainable)
    return FasterRCNN(backbone, num_classes=num_outputs, **options)


def _build_resnet50_fpn_v2(trunk, num_outputs, trainable, options) -> FasterRCNN:
    backbone = _resnet_fpn_extractor(trunk, trainable, norm_layer=nn.BatchNorm2d)
    anchors = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    parts = {
        "rpn_anchor_generator": anchors,
        "rpn_head": RPNHead(
            backbone.out_channels, anchors.num_anchors_per_location()[0], conv_depth=2
        ),
        "box_head": FastRCNNConvFCHead(
            (backbone.out_channels, 7, 7), [256, 256, 256, 256], [1024], norm_layer=nn.BatchNorm2d
        ),
    }
    return FasterRCNN(backbone, num_classes=num_outputs, **{**parts, **options})


def _build_mobilenet_v3_large_fpn(trunk, num_outputs, trainable, options) -> FasterRCNN:
    backbone = _mobilenet_extractor(trunk, True, trainable)
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3
    anchors = AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    return FasterRCNN(
        backbone, num_classes=num_outputs, **{"rpn_anchor_generator": anchors, **options}
    )


def _build_small(trunk, num_outputs, trainable, options) -> FasterRCNN:
    """ResNet-18 trunk, FPN (64 channels) on C3-C5 plus a max-pooled P6, small anchors."""
    _freeze_resnet_stages(trunk, trainable)
    backbone = BackboneWithFPN(
        trunk,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[128, 256, 512],
        out_channels=SMALL_FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
    )
    anchors = AnchorGenerator(SMALL_ANCHOR_SIZES, ((0.5, 1.0, 2.0),) * len(SMALL_ANCHOR_SIZES))
    pooler = MultiScaleRoIAlign(
        ["0", "1", "2"],
        output_size=7,
        sampling_ratio=SMALL_SAMPLING_RATIO,
        canonical_scale=SMALL_CANONICAL_SCALE,
    )
    resolution = pooler.output_size[0]
    parts = {
        "rpn_anchor_generator": anchors,
        "rpn_head": RPNHead(SMALL_FPN_CHANNELS, anchors.num_anchors_per_location()[0]),
        "box_roi_pool": pooler,
        "box_head": TwoMLPHead(SMALL_FPN_CHANNELS * resolution**2, SMALL_REPRESENTATION),
        "box_predictor": FastRCNNPredictor(SMALL_REPRESENTATION, num_outputs),
    }
    return FasterRCNN(backbone, num_classes=None, **{**parts, **options})


_ASSEMBLERS: dict[str, Callable[[nn.Module, int, int, dict], FasterRCNN]] = {
    "fasterrcnn_resnet50_fpn": _build_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": _build_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": _build_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": _build_mobilenet_v3_large_fpn,
    "small": _build_small,
}

_R50_COCO_V1 = "FasterRCNN_ResNet50_FPN_Weights.COCO_V1"


def _zero_frozen_bn_eps(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            module.eps = 0.0


def _first(items: list[str], count: int = 5) -> str:
    shown = ", ".join(items[:count])
    return shown if len(items) <= count else f"{shown} (+{len(items) - count} more)"
