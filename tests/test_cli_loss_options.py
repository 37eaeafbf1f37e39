import argparse

import pytest

from huale.cli.loss_options import add_loss_options, loss_config_from_args, parse_loss_options
from huale.errors import ConfigError
from huale.losses.config import LossConfig


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_loss_options(parser)
    return parser.parse_args(list(argv))


def test_default_is_torchvision():
    assert loss_config_from_args(_parse()) == LossConfig()


def test_preset_with_typed_overrides():
    args = _parse(
        "--loss",
        "full",
        "--loss-option",
        "box_iou_loss=extended",
        "--loss-option",
        "box-iou-weight=2",
        "--loss-option",
        "harmonic=false",
        "--loss-option",
        "synchronic=none",
    )
    config = loss_config_from_args(args)
    assert config == LossConfig.from_preset(
        "full", box_iou_loss="extended", box_iou_weight=2.0, harmonic=False, synchronic="none"
    )
    # one grammar with --strategy-option and the config files: YAML values
    assert parse_loss_options(["box_iou_loss=null", "class_counts=[3, 4]", "harmonic=no"]) == {
        "box_iou_loss": None,
        "class_counts": [3, 4],
        "harmonic": False,
    }
    assert parse_loss_options(["box_iou_weight=2"]) == {"box_iou_weight": 2.0}
    assert LossConfig.from_dict(parse_loss_options(["box_iou_loss=none"])).box_iou_loss is None


def test_class_balanced_takes_the_dataset_counts():
    args = _parse("--loss", "+emphasis", "--loss-option", "emphasis=class_balanced")
    assert loss_config_from_args(args, class_counts=[5, 1]).class_counts == (5, 1)
    explicit = _parse(
        "--loss-option", "emphasis=class_balanced", "--loss-option", "class_counts=[2,2]"
    )
    assert loss_config_from_args(explicit, class_counts=[5, 1]).class_counts == (2, 2)
    with pytest.raises(ConfigError, match="needs class_counts"):
        loss_config_from_args(args)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("box_iou_weight", "expected KEY=VALUE"),
        ("lambda=1", "unknown options 'lambda'; valid options: box_iou_loss"),
        ("box_iou_weight=big", "box_iou_weight must be float"),
        ("harmonic=maybe", "harmonic must be bool"),
        ("class_counts=[3, ", "not a YAML value"),
        ("class_counts=3,4", "class_counts must be non-negative integers"),
        ("emphasis=strong", "emphasis must be one of"),
    ],
)
def test_bad_options_are_config_errors(option, message):
    with pytest.raises(ConfigError, match=message):
        loss_config_from_args(_parse("--loss-option", option))


def test_unknown_preset_is_rejected_by_argparse():
    with pytest.raises(SystemExit):
        _parse("--loss", "huale")
