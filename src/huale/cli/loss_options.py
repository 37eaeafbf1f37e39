"""Command-line options of the RoI-head training losses (the ``loss`` block of a detector).

``add_loss_options(parser)`` adds::

    --loss PRESET             torchvision | +eiou | +emphasis | +synchronic | full
    --loss-option KEY=VALUE   any LossConfig field, repeatable (e.g. box_iou_loss=extended)

and ``loss_config_from_args(args, class_counts=...)`` turns them into a :class:`LossConfig`.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from typing import Any

from huale.errors import ConfigError
from huale.losses.config import PRESETS, LossConfig, loss_field_types

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"none", "null", ""}


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
        help="override one loss setting, e.g. box_iou_loss=extended, box_iou_weight=2, "
        "emphasis=focal, synchronic_weight=0.5 (repeatable; see huale.losses.config)",
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
    emphasis = overrides.get("emphasis", PRESETS.get(preset, {}).get("emphasis"))
    if (
        emphasis == "class_balanced"
        and "class_counts" not in overrides
        and class_counts is not None
    ):
        overrides["class_counts"] = tuple(int(n) for n in class_counts)
    return LossConfig.from_preset(preset, **overrides)


def parse_loss_options(options: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> typed overrides of LossConfig fields (ConfigError if bad)."""
    types_ = loss_field_types()
    overrides: dict[str, Any] = {}
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types_:
            raise ConfigError(
                f"--loss-option {option!r}: expected KEY=VALUE with KEY one of "
                f"{', '.join(sorted(types_))}"
            )
        try:
            overrides[key] = _parse_value(text.strip(), types_[key])
        except ValueError as exc:
            raise ConfigError(f"--loss-option {option!r}: {exc}") from None
    return overrides


def _parse_value(text: str, annotation: Any) -> Any:
    allowed = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if type(None) in allowed and text.lower() in _NONE:
        return None
    if bool in allowed:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if float in allowed:
        return float(text)
    if str in allowed:
        return text
    # class_counts: comma-separated integers
    return tuple(int(part) for part in text.split(",") if part.strip())


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)
