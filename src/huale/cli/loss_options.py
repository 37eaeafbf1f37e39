"""Command-line options of the RoI-head training losses (the ``loss`` block of a detector).

``add_loss_options(parser)`` adds::

    --loss PRESET             torchvision | +eiou | +emphasis | +synchronic | full
    --loss-option KEY=VALUE   any LossConfig field, repeatable (e.g. box_iou_loss=extended)

and ``loss_config_from_args(args, class_counts=...)`` turns them into a :class:`LossConfig`.
Values are YAML, as in a config file (:func:`huale.options.parse_key_values`):
``harmonic=false``, ``box_iou_weight=2``, ``box_iou_loss=null``, ``class_counts=[3,4,5]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from huale.losses.config import PRESETS, LossConfig, loss_field_types, with_class_counts
from huale.options import parse_key_values


def add_loss_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--loss`` and ``--loss-option`` to ``parser`` (dest ``loss``, ``loss_options``)."""
    group = parser.add_argument_group("training loss (RoI head)")
    group.add_argument(
        "--loss",
        default="torchvision",
        choices=list(PRESETS),
        help="loss preset: torchvision (plain Faster R-CNN), +eiou, +emphasis, +synchronic, "
        "full (HUALE); default: %(default)s",
    )
    group.add_argument(
        "--loss-option",
        dest="loss_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one loss setting, value parsed as YAML, e.g. box_iou_loss=extended, "
        "box_iou_weight=2, emphasis=focal, harmonic=false, class_counts=[3,4,5] (repeatable; "
        "see huale.losses.config)",
    )


def loss_config_from_args(
    args: argparse.Namespace, class_counts: Sequence[int] | None = None
) -> LossConfig:
    """The LossConfig of ``--loss`` and ``--loss-option``.

    class_counts: GT boxes per class of the labeled set (``dataset.class_counts()``); used
    when the options ask for ``emphasis=class_balanced`` without giving ``class_counts``.
    """
    overrides = parse_loss_options(getattr(args, "loss_options", None) or [])
    preset = getattr(args, "loss", None) or "torchvision"
    return with_class_counts({"preset": preset, **overrides}, class_counts)


def parse_loss_options(options: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> overrides of LossConfig fields (ConfigError if bad)."""
    types = loss_field_types()
    return parse_key_values(options, sorted(types), flag="--loss-option", types=types)
