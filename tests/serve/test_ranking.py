"""The task score: lowest first = huale's order, equal to the round export on selected images."""

from __future__ import annotations

import math

from huale.serve.ranking import RankedEntry, Ranking


def ranking() -> Ranking:
    # ranks 1-2 selected (stage2), 3-4 stage2 not selected, 5-6 stage1 (6 has no detection)
    return Ranking([
        RankedEntry("a", 1, 9.0, "stage2", True),
        RankedEntry("b", 2, 8.0, "stage2", True),
        RankedEntry("c", 3, 7.0, "stage2", False),
        RankedEntry("d", 4, 6.0, "stage2", False),
        RankedEntry("e", 5, 0.9, "stage1", False),
        RankedEntry("f", 6, None, "stage1", False),
    ])


def test_selected_images_score_like_the_export_and_the_rest_follow():
    r = ranking()
    scores = [r.prediction_score(i) for i in "abcdef"]
    # selected: (k-1)/B = 0, 1/2; others: 1 + (k-1)/(N-B) = 1, 1.25, 1.5, 1.75
    assert scores == [0.0, 0.5, 1.0, 1.25, 1.5, 1.75]
    assert scores == sorted(scores)  # ascending score = huale's rank


def test_live_images_take_their_place_among_the_same_stage():
    r = ranking()
    # stage1 scores of the non-selected: e 0.9 (position 2), f -inf (position 3)
    assert r.place(2.0, "stage1") == 2  # above e
    assert r.place(0.9, "stage1") == 3  # tie goes after e
    assert r.place(0.1, "stage1") == 3  # between e and f
    assert r.place(-math.inf, "stage1") == 4  # after f: the end
    assert r.place(100.0, "stage2") == 0  # above c, the best non-selected
    assert r.place(6.5, "stage2") == 1
    assert r.place(1.0, "ranked") == 4  # unknown stage: the end
    assert r.live_score(2.0, "stage1") == 1.5
    assert r.live_score(100.0, "stage2") == 1.0
    assert r.live_score(-1.0, "other") == 2.0


def test_from_selection_json_ranking():
    r = Ranking.from_selection([
        {"rank": 2, "image_id": "x", "score": None, "stage": "ranked", "selected": False},
        {"rank": 1, "image_id": "y", "score": 0.3, "stage": "ranked", "selected": True},
    ])
    assert [e.image_id for e in r.entries] == ["y", "x"]
    assert r.prediction_score("y") == 0.0 and r.prediction_score("x") == 1.0
    assert "x" in r and "z" not in r and len(r) == 2
