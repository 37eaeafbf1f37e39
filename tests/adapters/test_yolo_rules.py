"""The YOLO adapter's pure rules (no Ultralytics): letterbox geometry, posterior, anchor levels."""

import numpy as np
import pytest

from huale.adapters.yolo_rules import Letterbox, anchor_levels, sigmoid_posterior


def _sides(box: Letterbox):
    return (box.new_h, box.new_w, box.top, box.bottom, box.left, box.right, box.size_h, box.size_w)


def test_letterbox_rect_pads_to_the_stride_only():
    # 120x200 into 160, stride 32: r = min(160/120, 160/200) = 0.8 -> 96x160; dh = 64 mod 32 = 0
    assert _sides(Letterbox.fit(120, 200, 160, stride=32)) == (96, 160, 0, 0, 0, 0, 96, 160)
    # 250x97: r = 0.64 -> h 160, w round(62.08) = 62; dw = 98 mod 32 = 2 -> 1 and 1
    assert _sides(Letterbox.fit(250, 97, 160, stride=32)) == (160, 62, 0, 0, 1, 1, 160, 64)


def test_letterbox_square_splits_odd_padding_like_ultralytics():
    # 120x200 -> 96x160, dh = 64 -> 32 each side
    assert _sides(Letterbox.fit(120, 200, 160)) == (96, 160, 32, 32, 0, 0, 160, 160)
    # 100x51 into 64: r = 0.64 -> h 64, w round(32.64) = 33; dw = 31 -> 15.5: round(15.4) = 15
    # before, round(15.6) = 16 after
    assert _sides(Letterbox.fit(100, 51, 64)) == (64, 33, 0, 0, 15, 16, 64, 64)
    # a 1x3000 sliver keeps at least one row: r = 64/3000, h = max(round(0.02), 1) = 1
    assert Letterbox.fit(1, 3000, 64).new_h == 1


def test_letterbox_boxes_back_are_the_exact_inverse():
    box = Letterbox.fit(100, 51, 64)  # gain_x = 33/51, gain_y = 64/100, left 15
    # the resized image's own rectangle in the input maps onto the whole original image
    whole = box.boxes_to_image(np.array([[15, 0, 15 + 33, 64]], np.float32))
    np.testing.assert_allclose(whole, [[0, 0, 51, 100]], atol=1e-9)
    # x' = 15 + 10 * 33/51 maps to 10; y' = 32 maps to 50
    inside = box.boxes_to_image(np.array([[15 + 10 * 33 / 51, 32, 15 + 20 * 33 / 51, 48]]))
    np.testing.assert_allclose(inside, [[10, 50, 20, 75]], atol=1e-9)
    # boxes reaching into the padding are clipped to the image
    clipped = box.boxes_to_image(np.array([[0, -5, 63, 70]]))
    np.testing.assert_allclose(clipped, [[0, 0, 51, 100]], atol=1e-9)


def test_letterbox_valid_cells_cover_the_image_not_the_padding():
    box = Letterbox.fit(120, 200, 160)  # rows 32..128 of 160 hold the image
    assert box.valid_cells(32) == (slice(1, 4), slice(0, 5))
    assert box.valid_cells(8) == (slice(4, 16), slice(0, 20))


def test_sigmoid_posterior_hand_values():
    # s = (0.6, 0.2, 0.1): m = 0.6, r = 0.4, Z = 0.4 + 0.3 = 0.7
    # p0 = 0.16/0.7, p1 = 0.6, p2 = 0.08/0.7, p3 = 0.04/0.7
    # s = (0.3, 0.9): m = 0.9, r = 0.1, Z = 0.1 + 0.3 = 0.4 -> p0 = 0.025, p1 = 0.075, p2 = 0.9
    probs = sigmoid_posterior(np.array([[0.6, 0.2, 0.1], [0.3, 0.9, 0.0]], np.float32))
    np.testing.assert_allclose(
        probs,
        [[0.16 / 0.7, 0.6, 0.08 / 0.7, 0.04 / 0.7], [0.025, 0.075, 0.9, 0.0]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_sigmoid_posterior_keeps_the_top_score_and_class_exactly():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, size=(500, 7)).astype(np.float32) ** 3
    probs = sigmoid_posterior(scores)
    assert (probs[:, 1:].argmax(axis=1) == scores.argmax(axis=1)).all()
    assert (probs[:, 1:].max(axis=1) == scores.max(axis=1)).all()  # bit for bit
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs >= 0).all()


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([[0.7]], [[0.3, 0.7]]),  # one class: (1 - s, s)
        ([[0.0, 0.0]], [[1.0, 0.0, 0.0]]),  # no evidence at all: background
        ([[1.0, 0.5]], [[0.0, 1.0, 0.0]]),  # r = 0: nothing left to share
        ([[1.0, 0.0]], [[0.0, 1.0, 0.0]]),  # r = 0 and Z = 0
    ],
)
def test_sigmoid_posterior_edge_rows(scores, expected):
    np.testing.assert_allclose(sigmoid_posterior(np.array(scores)), expected, atol=1e-7)


def test_sigmoid_posterior_uses_the_given_top_class_on_ties():
    probs = sigmoid_posterior(np.array([[0.5, 0.5]]), top=np.array([1]))
    # k = 1, m = 0.5, r = 0.5, Z = 0.5 + 0.5 = 1: p0 = 0.25, p1 = 0.25, p2 = 0.5
    np.testing.assert_allclose(probs, [[0.25, 0.25, 0.5]])
    assert sigmoid_posterior(np.zeros((0, 3))).shape == (0, 4)


def test_anchor_levels_follow_the_head_order():
    levels = anchor_levels([(2, 3), (1, 2)], [8, 16])
    assert levels.tolist() == [3] * 6 + [4] * 2
