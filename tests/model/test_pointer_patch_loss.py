"""The pointer's patch loss (model/pointer.py, ``patch_nll``): which target tokens are image points, and
that scoring where the pointer looks in 2D is what lets it find a named object in few steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.action_frame import CameraActionFrame
from model.example import Example
from model.modeling import UnifiedIO
from model.packing import collate
from model.processor import Processor
from model.tokenizers import ActionStats
from tests.model.test_pointer_readout import _train_and_measure
from training.denoisers import Denoisers, denoise

IMAGE = np.full((64, 64, 3), 90, np.uint8)


def _points(processor: Processor, example: Example) -> torch.Tensor | None:
    return processor.encode(example).points


def test_points_and_box_corners_point_where_their_location_tokens_say(processor):
    bins = processor.config.location_bins
    point = _points(processor, Example("text", "<loc_10><loc_20>", text="point to the cube", image=IMAGE))
    assert point.shape == (3, 2)  # y, x, EOS
    torch.testing.assert_close(point[:2], torch.tensor([[10.5, 20.5], [10.5, 20.5]]) / bins)
    assert point[2].isnan().all()
    words_and_box = _points(
        processor, Example("text", "red cube <loc_1><loc_2><loc_3><loc_4>", text="find it", image=IMAGE)
    )
    finite = words_and_box.isfinite().all(-1)
    assert int(finite.sum()) == 4 and not finite[0]  # the words point at nothing
    torch.testing.assert_close(
        words_and_box[finite], torch.tensor([[1.5, 2.5], [1.5, 2.5], [3.5, 4.5], [3.5, 4.5]]) / bins
    )
    # No image, or no location tokens: nothing to point at.
    assert _points(processor, Example("text", "<loc_10><loc_20>", text="where?")) is None
    assert _points(processor, Example("text", "a red cube", text="what is it?", image=IMAGE)) is None


def test_a_cuboid_points_with_its_centre_only(processor):
    tokens = "".join(f"<loc_{i}>" for i in range(100, 112))  # centre, depth, size, rotation
    cuboid = Example("text", tokens, text="3d box", image=IMAGE, meta={"location_points": 1})
    points = _points(processor, cuboid)
    assert points[:2].isfinite().all() and points[2:].isnan().all()
    pose = Example("text", tokens, text="camera pose", image=IMAGE, meta={"location_points": 0})
    assert _points(processor, pose) is None


def test_a_camera_frame_waypoint_points_with_its_row_and_column(tiny_config, text_tokenizer):
    # A camera 1 m above the table looking straight down, 90 degrees: (x, y) = (0.5, 0) is at u = 0.75.
    frame = CameraActionFrame(pos=[0, 0, 1], xmat=np.eye(3).tolist(), fovy=90.0, width=64, height=64)
    cfg = dataclasses.replace(tiny_config, action_chunk_size=2)
    stats = ActionStats(q01=[0, 0, 0, -1], q99=[1, 1, 0.2, 1])
    proc = Processor(cfg, text_tokenizer=text_tokenizer, action_stats=stats, action_frame=frame)
    waypoints = np.array(
        [[0.5, 0.0, 0.1, 1.0], [2.0, 0.0, 0.1, -1.0]], np.float32
    )  # the 2nd is off the image
    points = _points(proc, Example("action", waypoints, text="reach", image=IMAGE))
    assert points.shape == (8, 2)
    torch.testing.assert_close(points[:2], torch.tensor([[0.5, 0.75], [0.5, 0.75]]))
    assert points[2:].isnan().all()  # height and gripper tokens, and the off-image step


def test_a_rewritten_target_points_at_nothing_and_a_supervised_one_keeps_its_points(processor):
    e = processor.encode(Example("text", "the cube <loc_1><loc_2> is red", text="say it", image=IMAGE))
    assert e.points is not None
    rewritten = Denoisers(processor.config).span_corruption(e, np.random.default_rng(0))
    assert rewritten.points is None
    # What the data module applies to every example: a supervised target stays whole, points too
    # (they were dropped here once, and the demo trained without the patch loss).
    for seed in range(8):
        kept = denoise(e, np.random.default_rng(seed), processor)
        torch.testing.assert_close(kept.points, e.points, equal_nan=True)


def test_the_patch_loss_is_added_and_reaches_the_pointer(tiny_config, text_tokenizer, action_stats):
    torch.manual_seed(0)
    model = UnifiedIO(tiny_config).train()
    proc = Processor(tiny_config, text_tokenizer=text_tokenizer, action_stats=action_stats)
    examples = [
        Example("text", "<loc_100><loc_900>", text="point to the cube", image=IMAGE),
        Example("text", "a cube", text="what is it?", image=IMAGE),
    ]
    batch = collate([proc.encode(e) for e in examples], tiny_config)
    loss, info = model(batch)
    assert info["loss/pointer_patch"] > 0
    torch.testing.assert_close(
        loss.detach(),
        torch.tensor(info["ce"] + tiny_config.z_loss * info["z_loss"] + info["loss/pointer_patch"]),
    )
    model.zero_grad()
    loss.backward()
    assert float(model.pointer.k.weight.grad.abs().sum()) > 0
    model.config = dataclasses.replace(tiny_config, pointer_patch_loss=0.0)
    _, without = model(batch)
    assert "loss/pointer_patch" not in without
    with pytest.raises(ValueError, match="pointer_patch_loss"):
        dataclasses.replace(tiny_config, pointer_patch_loss=-1.0)
    with pytest.raises(ValueError, match="pointer_word_heads"):
        dataclasses.replace(tiny_config, pointer_word_heads=3)  # 64 does not split into 3


# -- the cause, pinned: the coordinate loss alone finds a named object slowly -------------------------


def _two_squares(rng: np.random.Generator, n: int) -> tuple[list[Example], np.ndarray]:
    """A red and a blue 6 px square on a grey table; the prompt names one, the target is its centre."""
    examples, centres = [], []
    for _ in range(n):
        while True:
            (y1, x1), (y2, x2) = rng.integers(3, 61, (2, 2))
            if max(abs(y1 - y2), abs(x1 - x2)) > 8:
                break
        img = np.full((64, 64, 3), 90, np.uint8)
        img[y1 - 3 : y1 + 3, x1 - 3 : x1 + 3] = (220, 30, 30)
        img[y2 - 3 : y2 + 3, x2 - 3 : x2 + 3] = (30, 30, 220)
        red = bool(rng.integers(2))
        y, x = (y1, x1) if red else (y2, x2)
        name = "red" if red else "blue"
        examples.append(Example("text", f"<loc_{y}><loc_{x}>", text=f"point to the {name} square", image=img))
        centres.append((y + 0.0, x + 0.0))
    return examples, np.asarray(centres)


def _named_square_error(patch_loss: float, text_tokenizer, steps: int) -> float:
    return _train_and_measure(
        text_tokenizer, steps, make=_two_squares, lr=1e-3, pointer_patch_loss=patch_loss
    )


@pytest.mark.slow
def test_the_patch_loss_finds_the_named_square_where_the_coordinate_loss_alone_has_not_yet(text_tokenizer):
    """Same data, steps and optimiser. Without the patch loss the y token's attention may rest anywhere
    on the right row, and the named square is found late (measured here: 15.7 px without, 1.3 px
    with; the pointing proxy's first minute: 9.6 px without, 4.0 px with). This failed before the
    patch loss existed."""
    torch.set_num_threads(1)
    without = _named_square_error(0.0, text_tokenizer, steps=STEPS)
    with_patch = _named_square_error(1.0, text_tokenizer, steps=STEPS)
    assert with_patch < 4.0, f"patch loss: {with_patch:.1f} px mean error after {STEPS} steps"
    assert without > 2 * with_patch, f"without {without:.1f} px vs with {with_patch:.1f} px"


STEPS = 150
