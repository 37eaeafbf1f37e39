import numpy as np
import pytest

from huale.errors import ConfigError
from huale.predictions import FLIP, ORIGINAL
from huale.strategies.hua import Hua, aggregate
from tests.strategies.fakes import context, dets, record

A = np.log(2) / np.log(3)  # entropy of [½,½,0] or [½,0,½] over 3 classes: 0.630930
B = 1.5 * np.log(2) / np.log(3)  # entropy of [¼,½,¼] or [¼,¼,½]: 0.946395

O1 = [0, 0, 20, 20]
O2 = [50, 50, 70, 70]


def _hand_built_record():
    """Two objects (orig view only), members over scales P2..P5 and classes c1, c2.

    Object 1 members: P2/c1 u = B and A; P2/c2 u = B; P3/c1 u = 0; P3/c2 u = A.
    Object 2 members: P4/c2 u = A and 0; P5/c1 u = B.
    Every member overlaps its own object with IoU >= 0.9 and the other object not at all.
    """
    objects = dets([O1, O2], [[0.1, 0.9, 0.0], [0.1, 0.0, 0.9]])
    members = dets(
        [
            [0, 0, 20, 20], [1, 0, 20, 20], [0, 1, 20, 20], [0, 0, 19, 20], [0, 0, 20, 19],
            [50, 50, 70, 70], [51, 50, 70, 70], [50, 51, 70, 70],
        ],
        [
            [0.25, 0.5, 0.25], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5], [0.0, 1.0, 0.0],
            [0.5, 0.0, 0.5],
            [0.5, 0.0, 0.5], [0.0, 0.0, 1.0], [0.25, 0.5, 0.25],
        ],
        levels=[2, 2, 2, 3, 3, 4, 4, 5],
    )
    return record("img", objects, dets(), prenms={ORIGINAL: members, FLIP: dets()})


# Cells: O1: (P2,c1) = (B+A)/2 = 0.788663, (P2,c2) = B, (P3,c1) = 0, (P3,c2) = A
#        O2: (P4,c2) = A/2 = 0.315465, (P5,c1) = B
@pytest.mark.parametrize(
    ("class_agg", "scale_agg", "object_agg", "expected"),
    [
        # HUA default objectSum_scaleMax_classSum:
        # O1: P2 = 0.788663 + 0.946395 = 1.735058, P3 = 0.630930 -> max 1.735058
        # O2: P4 = 0.315465, P5 = 0.946395 -> max 0.946395;  sum = 2.681453
        ("sum", "max", "sum", 2.681453),
        # class avg, scale sum, object max:
        # O1: P2 = 0.867529, P3 = 0.315465 -> 1.182994;  O2: 0.315465 + 0.946395 = 1.261860
        ("avg", "sum", "max", 1.261860),
        # class max, scale avg, object avg:
        # O1: P2 = 0.946395, P3 = 0.630930 -> 0.788663;  O2: (0.315465 + 0.946395)/2 = 0.630930
        # -> (0.788663 + 0.630930)/2 = 0.709796
        ("max", "avg", "avg", 0.709796),
    ],
)
def test_aggregation_combinations_on_hand_built_boxes(class_agg, scale_agg, object_agg, expected):
    hua = Hua(box_uncertainty="entropy", class_agg=class_agg, scale_agg=scale_agg,
              object_agg=object_agg)
    score = hua.score([_hand_built_record()], context())[0].score
    assert score == pytest.approx(expected, abs=1e-5)


def test_class_weights_multiply_the_class_level_and_explanations_list_levels():
    # q = [1, 0], δ = 1 -> w = [1, 2]. Default aggregation:
    # O1: P2 = 0.788663 + 2·0.946395 = 2.681453, P3 = 0 + 2·0.630930 = 1.261860 -> 2.681453
    # O2: P4 = 2·0.315465 = 0.630930, P5 = 0.946395 -> 0.946395;  total 3.627848
    hua = Hua(box_uncertainty="entropy", class_weights="difficulty", difficulty_delta=1.0)
    ctx = context(class_quality=np.array([1.0, 0.0]))
    result = hua.score([_hand_built_record()], ctx)[0]
    assert result.score == pytest.approx(3.627848, abs=1e-5)
    top = result.objects[0]
    assert top.box == O1 and top.label == 1 and top.uncertainty == pytest.approx(2.681453, abs=1e-5)
    assert top.levels["scale"] == pytest.approx({"P2": 2.681453, "P3": 1.261860}, abs=1e-5)
    assert top.levels["cell"]["P2"] == pytest.approx({"c1": 0.788663, "c2": B}, abs=1e-5)
    assert top.levels["members"] == 5
    assert [o.box for o in result.objects] == [O1, O2]


def test_post_nms_members_when_prenms_disabled():
    # members = the two detections themselves: u = H([½,½,0]) + H([¼,¼,½]) = A + B = 1.577325
    objects = dets([O1, O2], [[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    hua = Hua(box_uncertainty="entropy", use_prenms=False)
    score = hua.score([record("x", objects, dets())], context())[0].score
    assert score == pytest.approx(A + B, abs=1e-6)
    assert not hua.needs.prenms and Hua().needs.prenms


def test_flip_views_merge_into_one_object_and_inconsistency_uncertainty():
    # the same object in both views: one object after NMS; members = the pre-NMS box of each view,
    # each matched to the identical detection of the other view: v = 1 − 1.8/2 = 0.1
    det = dets([O1], [[0.1, 0.8, 0.1]])
    same = record("same", det, det, prenms={ORIGINAL: det, FLIP: det})
    # an object in one view only: its member has no counterpart -> v = 1
    alone = record("alone", det, dets(), prenms={ORIGINAL: det, FLIP: dets()})
    scores = {s.image_id: s for s in Hua().score([same, alone], context())}
    assert scores["same"].score == pytest.approx(0.1, abs=1e-6)
    assert len(scores["same"].objects) == 1
    assert scores["alone"].score == pytest.approx(1.0)


def test_no_objects_scores_zero_and_objects_below_threshold_are_ignored():
    weak = dets([O1], [[0.75, 0.25, 0.0]])  # score 0.25 <= object_threshold 0.3
    records = [record("none", prenms={ORIGINAL: dets(), FLIP: dets()}),
               record("weak", weak, weak, prenms={ORIGINAL: weak, FLIP: weak})]
    fixed = Hua(adaptive_thresholds=False)
    assert [s.score for s in fixed.score(records, context())] == [0.0, 0.0]
    # adaptive (default): the only scores are 0.25, so the thresholds drop to 0.125 and the
    # weak box becomes an object; both views agree: v = 1 - M/2, M = IoU 1 + ½(1 - JS 0)(2·0.25)
    # = 1.25 -> u = 0.375, and U = Σ_o max_s Σ_c u = 0.375
    assert [s.score for s in Hua().score(records, context())] == pytest.approx([0.0, 0.375])


def test_missing_prenms_is_a_clear_error_and_bad_options_rejected():
    det = dets([O1], [[0.1, 0.8, 0.1]])
    with pytest.raises(ConfigError, match="pre-NMS"):
        Hua().score([record("x", det, det)], context())
    with pytest.raises(ConfigError, match="class_agg"):
        Hua(class_agg="median")
    with pytest.raises(ConfigError, match="box_uncertainty"):
        Hua(box_uncertainty="mutual_info")


def test_aggregate_functions():
    assert aggregate([1.0, 2.0, 3.0], "sum") == 6.0
    assert aggregate([1.0, 2.0, 3.0], "avg") == 2.0
    assert aggregate([1.0, 2.0, 3.0], "max") == 3.0
    assert aggregate([], "max") == 0.0
