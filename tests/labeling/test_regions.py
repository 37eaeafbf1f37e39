"""Detections as Label Studio regions (percent of the image) and the labeling config's names."""

from __future__ import annotations

import numpy as np
import pytest

from huale.labeling.regions import ConfigNames, config_names, rectangle_regions
from huale.predictions import Detections


def test_regions_are_percent_of_the_image():
    dets = Detections(
        boxes=np.array([[10.0, 20.0, 60.0, 45.0]], np.float32),
        labels=np.array([2]), scores=np.array([0.75], np.float32),
        class_probs=np.array([[0.1, 0.15, 0.75]], np.float32),
        max_fg_prob=np.array([0.75], np.float32), fpn_level=np.array([0]),
    )
    [region] = rectangle_regions(dets, 200, 100, ["cat", "dog"], id_prefix="t1-")
    # x 10/200 = 5 %, y 20/100 = 20 %, w 50/200 = 25 %, h 25/100 = 25 %
    assert region["value"] == {"x": 5.0, "y": 20.0, "width": 25.0, "height": 25.0,
                               "rotation": 0, "rectanglelabels": ["dog"]}
    assert region["id"] == "t1-0" and region["score"] == 0.75
    assert (region["original_width"], region["original_height"]) == (200, 100)
    assert (region["from_name"], region["to_name"], region["type"]) == (
        "label", "image", "rectanglelabels")


def test_config_names_of_a_custom_config():
    config = """<View>
      <Header value="Find the cells"/>
      <Image name="micro" value="$photo" zoom="true"/>
      <RectangleLabels name="cells" toName="micro">
        <Label value="red"/><Label value="white"/>
      </RectangleLabels>
    </View>"""
    assert config_names(config) == ConfigNames("cells", "micro", "photo", ("red", "white"))


@pytest.mark.parametrize("config", [None, "", "<View", "<View><Text name='t' value='$t'/></View>",
                                    '<!DOCTYPE x [<!ENTITY a "aaaa">]><View>&a;</View>', 42])
def test_unusable_configs_give_huales_defaults(config):
    assert config_names(config) == ConfigNames()
