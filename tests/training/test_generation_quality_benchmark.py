"""The generation-quality benchmark's metrics on tiny inputs with known answers, so each one can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.tasks.dense import DEPTH_RANGE, depth_to_image, segmentation_to_image
from training.tasks.generation import NEXT_FRAME_GAP


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("generation_quality")


def test_psnr_is_capped_for_identical_images_and_exact_for_one_grey_level(bench):
    img = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)  # < 255: +1 cannot wrap
    same = bench.psnr(img, img)
    assert np.isfinite(same).all() and (same > 100).all()
    # An error of one grey level everywhere: MSE 1, PSNR = 20 log10(255).
    np.testing.assert_allclose(bench.psnr(img, img + 1), 20 * math.log10(255), atol=1e-9)


def test_depth_image_round_trip_is_within_half_a_grey_level(bench):
    lo, hi = DEPTH_RANGE
    depth = np.linspace(lo, hi, 64, dtype=np.float32).reshape(8, 8)
    back = bench.image_to_depth(depth_to_image(depth))
    assert np.abs(back - depth).max() <= (hi - lo) / 255 / 2 + 1e-6


def test_abs_rel_known_pair_and_pixels_outside_the_range_ignored(bench):
    true = np.array([[0.5, 1.0], [1.5, 5.0]])  # 5 m lies beyond the encoded range
    pred = np.array([[0.55, 1.1], [1.65, 0.0]])  # 10% too far where it counts
    assert bench.abs_rel(true, true) == 0.0
    assert bench.abs_rel(pred, true) == pytest.approx(0.1)
    assert math.isnan(bench.abs_rel(pred, np.full((2, 2), 9.0)))


def test_segments_decode_from_their_palette_colours(bench):
    ids = np.array([[-1, 0, 3], [7, 7, 3]])
    assert (bench.image_to_segments(segmentation_to_image(ids), np.unique(ids)) == ids).all()


def test_mean_iou_identical_is_one_and_a_known_overlap(bench):
    true = np.array([[1, 1, 2, 2]] * 2)
    assert bench.mean_iou(true, true) == 1.0
    # All predicted as 1: IoU(1) = 4/8, IoU(2) = 0 -> 0.25; without class 2 it is 0.5.
    pred = np.ones_like(true)
    assert bench.mean_iou(pred, true) == pytest.approx(0.25)
    assert bench.mean_iou(pred, true, exclude=(2,)) == pytest.approx(0.5)
    assert math.isnan(bench.mean_iou(pred, true, exclude=(1, 2)))


def test_word_accuracy(bench):
    ref = "Pick up the red cube."
    assert bench.word_accuracy("pick up the red cube", ref) == 1.0  # case and punctuation do not count
    assert bench.word_accuracy("pick up the blue cube", ref) == pytest.approx(0.8)  # one substitution
    assert bench.word_accuracy("pick the red cube", ref) == pytest.approx(0.8)  # one deletion
    assert bench.word_accuracy("", ref) == 0.0
    assert bench.word_accuracy("no no no no no no no no no no no", ref) == 0.0  # floored, not negative
    with pytest.raises(ValueError, match="at least one word"):
        bench.word_accuracy("pick", " . ")


def test_sampled_frames_leave_room_for_the_next_frame(bench):
    class Ep:
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    pairs = bench.sample_frames([Ep(30), Ep(NEXT_FRAME_GAP + 2)], per_episode=5)
    assert pairs and all(t + NEXT_FRAME_GAP < len(ep) for ep, t in pairs)
    assert len(pairs) == 5 + 2  # the short episode has only two frames with a successor
