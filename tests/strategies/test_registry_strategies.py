import numpy as np
import pytest

from huale.errors import ConfigError
from huale.predictions import CUTOUT, FLIP, ORIGINAL, RESIZE, ROTATE
from huale.strategies import (
    Strategy,
    available_strategies,
    build_strategy,
    format_strategy_help,
    parse_strategy_options,
    strategy_options,
)
from tests.strategies.fakes import context, dets, record


def _full_record(i):
    """A record with every view, pre-NMS boxes and a feature."""
    det = dets([[0, 0, 20 + i, 20]], [[0.1, 0.6 - 0.05 * i, 0.3 + 0.05 * i]])
    views = {CUTOUT: det, RESIZE: det, ROTATE: dets()}
    return record(f"img{i}", det, dets() if i % 2 else det,
                  prenms={ORIGINAL: det, FLIP: det}, feature=(i, i * i), **views)


def test_registry_is_the_explicit_table():
    assert available_strategies() == [
        "random", "entropy", "consistency", "cald", "hua", "huale", "coreset"
    ]


@pytest.mark.parametrize("name", available_strategies())
def test_every_strategy_builds_and_selects(name):
    strategy = build_strategy(name)
    assert isinstance(strategy, Strategy) and strategy.name == name
    pool = [_full_record(i) for i in range(5)]
    ctx = context(labeled_class_counts=np.array([3, 1]), num_labeled_images=2,
                  class_quality=np.array([0.5, 0.2]), labeled_features=np.zeros((1, 2)))
    selection = strategy.select(pool, 2, ctx)
    assert len(selection.selected) == 2
    assert sorted(s.image_id for s in selection.ranked) == [f"img{i}" for i in range(5)]
    assert ORIGINAL in strategy.needs.views


def test_unknown_name_and_option_errors_list_the_valid_ones():
    with pytest.raises(ConfigError, match="known strategies: random, entropy"):
        build_strategy("bald")
    with pytest.raises(ConfigError, match="valid options: beta, pool_multiplier, augs"):
        build_strategy("cald", bta=1.2)
    with pytest.raises(ConfigError, match="beta"):
        build_strategy("cald", beta="high")


def test_options_with_defaults_and_cli_parsing():
    assert strategy_options("entropy") == {"reduction": "max", "score_threshold": 0.05}
    assert strategy_options("random") == {}
    huale = strategy_options("huale")
    assert huale["pool_multiplier"] == 2.0 and huale["class_weights"] == "difficulty"
    parsed = parse_strategy_options(
        "cald", ["beta=1.2", "augs=flip,cutout", "pool-multiplier=2"]
    )
    assert parsed == {"beta": 1.2, "augs": "flip,cutout", "pool_multiplier": 2}
    assert build_strategy("cald", **parsed).augs == ("flip", "cutout")
    assert parse_strategy_options("consistency", ["entropy_prefilter=null"]) == {
        "entropy_prefilter": None
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_strategy_options("cald", ["beta"])
    with pytest.raises(ConfigError, match="unknown options 'gamma'"):
        parse_strategy_options("cald", ["gamma=1"])
    assert "huale: pool_multiplier=2.0" in format_strategy_help()
