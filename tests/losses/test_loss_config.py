import json

import pytest

from huale.errors import ConfigError
from huale.losses.config import PRESETS, LossConfig


def test_default_is_torchvision_and_presets_turn_on_their_terms():
    assert LossConfig() == LossConfig.from_preset("torchvision")
    assert LossConfig().is_torchvision and not LossConfig().tracks_class_quality
    eiou = LossConfig.from_preset("+eiou")
    assert (eiou.box_iou_loss, eiou.box_iou_weight, eiou.smooth_l1) == ("efficient", 1.5, True)
    assert LossConfig.from_preset("+emphasis").emphasis == "class_difficulty"
    synchronic = LossConfig.from_preset("+synchronic")
    assert synchronic.harmonic and synchronic.synchronic == "task_contrast"
    full = LossConfig.from_preset("full")
    assert (full.box_iou_loss, full.emphasis, full.harmonic, full.synchronic) == (
        "efficient",
        "class_difficulty",
        True,
        "task_contrast",
    )
    # method.md §9.2 constants
    assert (full.synchronic_weight, full.synchronic_margin) == (1.0, 0.2)
    assert (full.quality_xi, full.quality_momentum) == (0.6, 0.99)
    assert (full.difficulty_alpha, full.difficulty_delta) == (0.3, 0.2)
    for name in PRESETS:
        config = LossConfig.from_preset(name)
        assert config.is_torchvision == (name == "torchvision")
        assert config.box_normalizer == "sampled"  # §9.2's "positives" collapsed training
        assert config.tracks_class_quality == (name != "torchvision")


def test_overrides_and_round_trip_through_json():
    config = LossConfig.from_preset(
        "full", box_iou_loss="extended", emphasis="class_balanced", class_counts=[3, 0, 9]
    )
    assert config.class_counts == (3, 0, 9)
    restored = LossConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert config.to_dict()["class_counts"] == [3, 0, 9]
    # integers are accepted for float fields
    assert LossConfig(box_iou_weight=10).box_iou_weight == 10.0
    # class_difficulty implies tracking even if the flag is off
    assert LossConfig(emphasis="class_difficulty").tracks_class_quality


def test_parse_accepts_every_form():
    full = LossConfig.from_preset("full")
    assert LossConfig.parse(None) == LossConfig()
    assert LossConfig.parse("full") == full
    assert LossConfig.parse(full) is full
    assert LossConfig.parse(
        {"preset": "full", "synchronic": "varifocal"}
    ) == LossConfig.from_preset("full", synchronic="varifocal")
    assert LossConfig.parse(full.to_dict()) == full
    with pytest.raises(ConfigError, match="preset name or a mapping"):
        LossConfig.parse(3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"box_iou_loss": "eiou"}, "box_iou_loss must be one of efficient"),
        ({"emphasis": "strong"}, "emphasis must be one of"),
        ({"synchronic": "harmonic"}, "synchronic must be one of"),
        ({"box_normalizer": "all"}, "box_normalizer must be one of"),
        ({"smooth_l1": False}, "no box loss"),
        ({"box_iou_weight": -1}, "box_iou_weight must be >= 0"),
        ({"quality_momentum": 1.0}, r"quality_momentum must be in \[0, 1\)"),
        ({"quality_init": 2.0}, r"quality_init must be in \[0, 1\]"),
        ({"difficulty_alpha": 0.0}, "difficulty_alpha must be > 0"),
        ({"emphasis": "class_balanced"}, "needs class_counts"),
        ({"class_counts": [1, -1]}, "class_counts must be non-negative integers"),
        ({"harmonic": "yes"}, "harmonic must be bool"),
        ({"box_iou_weight": "big"}, "box_iou_weight must be float"),
        ({"lambda_e": 1.0}, "unknown loss options 'lambda_e'"),
    ],
)
def test_invalid_configs_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        LossConfig.from_dict(values)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown loss preset 'huale'; choose one of torchvision"):
        LossConfig.from_preset("huale")
