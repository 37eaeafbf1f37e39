"""The ``loss`` block of a detector: which RoI-head loss terms are on and their constants.

Every ablation of the HUALE training loss (method.md §9.2) is a change of this config:

==============  ===============================================================================
preset          what it turns on (everything else stays torchvision's)
==============  ===============================================================================
torchvision     nothing: torchvision's ``fastrcnn_loss``, bitwise
+eiou           SmoothL1 + lambda_E * Efficient-IoU on the decoded boxes
+emphasis       PPAL class-difficulty weights on the plain CE / SmoothL1 losses
+synchronic     harmonic cross-weights + task-contrast term L_syn
full            all of the above (the HUALE_LOSS of §9.2)
==============  ===============================================================================

Every preset divides the box loss by all sampled RoIs, as torchvision does
(``box_normalizer="sampled"``), so that each preset differs from ``torchvision`` only in the
component it names. method.md §9.2 divides by the positive RoIs instead; that is the option
``box_normalizer="positives"``. It multiplies the box gradient by N/N_pos (about 4 to 20), and on
the synthetic benchmark it made training collapse: mAP 1 against 51–55 (see docs/losses.md) [INF]. Build one with
:meth:`LossConfig.from_preset` (``LossConfig.from_preset("full", box_iou_loss="extended")``); it
is stored with a model as :meth:`LossConfig.to_dict` (JSON-friendly).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from huale.errors import ConfigError
from huale.losses.iou import BOX_IOU_LOSSES
from huale.options import check_known

# derived from the loss table: a new IoU loss is named once, in huale.losses.iou
BOX_IOU_LOSS_NAMES = tuple(BOX_IOU_LOSSES)
EMPHASIS_KINDS = ("none", "class_difficulty", "focal", "class_balanced", "selection")
SYNCHRONIC_KINDS = ("none", "task_contrast", "varifocal")
BOX_NORMALIZERS = ("sampled", "positives")

_HUALE = {"track_class_quality": True}
PRESETS: dict[str, dict[str, Any]] = {
    "torchvision": {},
    "+eiou": {**_HUALE, "box_iou_loss": "efficient"},
    "+emphasis": {**_HUALE, "emphasis": "class_difficulty"},
    "+synchronic": {**_HUALE, "harmonic": True, "synchronic": "task_contrast"},
    "full": {
        **_HUALE,
        "box_iou_loss": "efficient",
        "emphasis": "class_difficulty",
        "harmonic": True,
        "synchronic": "task_contrast",
    },
}


@dataclass(frozen=True)
class LossConfig:
    """RoI-head loss settings. The defaults are torchvision's losses (preset ``torchvision``).

    Box term, per positive RoI: ``SmoothL1(deltas) + box_iou_weight * IoU-loss(decoded box, GT)``.
    """

    # -- box regression
    box_iou_loss: str | None = None  # one of BOX_IOU_LOSS_NAMES, or None (SmoothL1 only)
    box_iou_weight: float = 1.5  # lambda_E
    smooth_l1: bool = True  # keep torchvision's SmoothL1 on the deltas
    smooth_l1_beta: float = 1 / 9
    focal_eiou_gamma: float = 0.5
    extended_iou_theta: float = 0.1  # Smooth-EIoU switch point
    box_normalizer: str = "sampled"  # "sampled": / all sampled RoIs; "positives": / positives
    # -- emphasis (per-RoI constant weights e_i)
    emphasis: str = "none"  # one of EMPHASIS_KINDS
    track_class_quality: bool = False  # keep the head's class_quality EMA (implied by
    # emphasis="class_difficulty")
    quality_xi: float = 0.6
    quality_momentum: float = 0.99
    quality_init: float = 0.0  # PPAL starts at 0: every class weighs 1 + delta at first
    difficulty_alpha: float = 0.3
    difficulty_delta: float = 0.2
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    class_balanced_beta: float = 0.999
    class_counts: tuple[int, ...] | None = None  # labeled GT boxes per class (class_balanced)
    # -- synchronic IoU-localization
    harmonic: bool = False  # (1 + beta_r) on CE, (1 + beta_c) on the box loss of positives
    synchronic: str = "none"  # one of SYNCHRONIC_KINDS
    synchronic_weight: float = 1.0  # lambda_S
    synchronic_margin: float = 0.2
    varifocal_alpha: float = 0.75
    varifocal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.box_iou_loss == "none":  # as emphasis="none" and synchronic="none": off
            object.__setattr__(self, "box_iou_loss", None)
        if isinstance(self.class_counts, list):
            object.__setattr__(self, "class_counts", tuple(self.class_counts))
        problems = _type_problems(self)
        if not problems:
            problems = _value_problems(self)
        if problems:
            raise ConfigError("invalid loss config: " + "; ".join(problems))

    @property
    def is_torchvision(self) -> bool:
        """True when the losses are exactly torchvision's ``fastrcnn_loss``."""
        return (
            self.box_iou_loss is None
            and self.smooth_l1
            and self.smooth_l1_beta == 1 / 9
            and self.box_normalizer == "sampled"
            and self.emphasis == "none"
            and not self.harmonic
            and self.synchronic == "none"
        )

    @property
    def tracks_class_quality(self) -> bool:
        """Whether the head keeps a ``class_quality`` buffer (EMA of PPAL class quality)."""
        return self.track_class_quality or self.emphasis == "class_difficulty"

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> LossConfig:
        """The preset ``name`` (a key of :data:`PRESETS`) with ``overrides`` applied."""
        if name not in PRESETS:
            raise ConfigError(f"unknown loss preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LossConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        check_known(values, [f.name for f in dataclasses.fields(cls)], "loss options")
        return cls(**values)

    @classmethod
    def parse(cls, spec: LossConfig | Mapping[str, Any] | str | None) -> LossConfig:
        """A config from a config, a dict (``"preset"`` key allowed), a preset name or None."""
        if spec is None:
            return cls()
        if isinstance(spec, LossConfig):
            return spec
        if isinstance(spec, str):
            return cls.from_preset(spec)
        if isinstance(spec, Mapping):
            values = dict(spec)
            preset = values.pop("preset", None)
            return cls.from_preset(preset, **values) if preset else cls.from_dict(values)
        raise ConfigError(f"a loss config must be a preset name or a mapping, got {spec!r}")

    @classmethod
    def check(cls, spec: LossConfig | Mapping[str, Any] | str | None) -> LossConfig:
        """:meth:`parse` for a spec read before the labeled set is known (a loop config): a
        class-balanced emphasis without ``class_counts`` is accepted, as the labeled set's
        counts are filled in later (:func:`with_class_counts`)."""
        return with_class_counts(spec, (1,))

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-friendly (``class_counts`` as a list)."""
        values = dataclasses.asdict(self)
        if values["class_counts"] is not None:
            values["class_counts"] = list(values["class_counts"])
        return values


def with_class_counts(
    spec: LossConfig | Mapping[str, Any] | str | None, class_counts: Sequence[int] | None
) -> LossConfig:
    """``LossConfig.parse(spec)`` where ``emphasis="class_balanced"`` without ``class_counts``
    takes ``class_counts`` (GT boxes per class of the labeled set); other specs are unchanged.

    The one place class counts enter a loss, for ``huale train`` and for every cycle of a loop.
    """
    if isinstance(spec, LossConfig):
        values: dict[str, Any] = spec.to_dict()
    elif isinstance(spec, str):
        if spec not in PRESETS:
            LossConfig.from_preset(spec)  # the unknown-preset error
        values = dict(PRESETS[spec])
    elif isinstance(spec, Mapping):
        values = dict(spec)
        preset = values.pop("preset", None)
        if preset:
            if preset not in PRESETS:
                LossConfig.from_preset(preset)
            values = {**PRESETS[preset], **values}
    elif spec is None:
        values = {}
    else:
        return LossConfig.parse(spec)  # the not-a-loss-config error
    if (
        values.get("emphasis") == "class_balanced"
        and values.get("class_counts") is None
        and class_counts is not None
    ):
        values["class_counts"] = tuple(int(n) for n in class_counts)
    return LossConfig.from_dict(values)


def loss_field_types() -> dict[str, Any]:
    """Field name -> resolved type annotation (``float``, ``str | None``, ...)."""
    return typing.get_type_hints(LossConfig)


def _type_problems(config: LossConfig) -> list[str]:
    """Type check of every field; ints given for float fields become floats."""
    problems = []
    for name, annotation in loss_field_types().items():
        value = getattr(config, name)
        allowed = set(typing.get_args(annotation) or (annotation,))
        if value is None and type(None) in allowed:
            continue
        if name == "class_counts":
            if not isinstance(value, tuple) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value
            ):
                problems.append(f"class_counts must be non-negative integers, got {value!r}")
        elif float in allowed and isinstance(value, int | float) and not isinstance(value, bool):
            object.__setattr__(config, name, float(value))
        elif not isinstance(value, tuple(t for t in (bool, str) if t in allowed)):
            expected = " or ".join(sorted(getattr(t, "__name__", str(t)) for t in allowed))
            problems.append(f"{name} must be {expected}, got {value!r}")
    return problems


def _value_problems(c: LossConfig) -> list[str]:
    problems = []
    for name, value, choices in (
        ("box_iou_loss", c.box_iou_loss, (*BOX_IOU_LOSS_NAMES, None)),
        ("emphasis", c.emphasis, EMPHASIS_KINDS),
        ("synchronic", c.synchronic, SYNCHRONIC_KINDS),
        ("box_normalizer", c.box_normalizer, BOX_NORMALIZERS),
    ):
        if value not in choices:
            shown = ", ".join(str(choice) for choice in choices)
            problems.append(f"{name} must be one of {shown}, got {value!r}")
    if c.box_iou_loss is None and not c.smooth_l1:
        problems.append("no box loss: turn smooth_l1 on or choose a box_iou_loss")
    for name in (
        "box_iou_weight",
        "smooth_l1_beta",
        "focal_eiou_gamma",
        "extended_iou_theta",
        "difficulty_delta",
        "focal_gamma",
        "synchronic_weight",
        "synchronic_margin",
        "varifocal_gamma",
    ):
        if getattr(c, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(c, name)}")
    for name in ("quality_xi", "quality_init", "focal_alpha", "varifocal_alpha"):
        if not 0 <= getattr(c, name) <= 1:
            problems.append(f"{name} must be in [0, 1], got {getattr(c, name)}")
    for name in ("quality_momentum", "class_balanced_beta"):
        if not 0 <= getattr(c, name) < 1:
            problems.append(f"{name} must be in [0, 1), got {getattr(c, name)}")
    if c.difficulty_alpha <= 0:
        problems.append(f"difficulty_alpha must be > 0, got {c.difficulty_alpha}")
    if c.emphasis == "class_balanced" and c.class_counts is None:
        problems.append(
            'emphasis="class_balanced" needs class_counts (GT boxes per class of the labeled set)'
        )
    return problems
