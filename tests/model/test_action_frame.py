"""Camera-frame waypoints (model/action_frame.py): the real scene camera's projection round-trips, the
processor writes pixels and decodes table-frame waypoints, and the calibration travels in the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from envs.tabletop import TabletopEnv
from model.action_frame import CameraActionFrame, pixel_stats
from model.processor import Processor
from model.tokenizers import ActionStats


@pytest.fixture(scope="module")
def scene():
    env = TabletopEnv("reach", image_size=64, cameras=("scene",))
    env.reset(seed=10001)
    ann = env.unwrapped.annotations("scene")
    env.close()
    return ann


def test_waypoint_projects_onto_the_objects_pixel_and_back(scene):
    frame = CameraActionFrame.from_annotation(scene["camera"])
    for obj in scene["objects"]:
        xyz = np.asarray(obj["center"], np.float64)
        px, py = obj["point"]  # the annotation's own projection of the centre (pixels, x then y)
        foot = CameraActionFrame.from_annotation(scene["camera"])
        foot.plane_z = xyz[2]  # a plane through the centre: the foot is the centre itself
        vu = foot.to_camera(np.r_[xyz, 1.0][None])[0]
        assert abs(vu[1] * 64 - px) < 1e-3 and abs(vu[0] * 64 - py) < 1e-3, obj["name"]
        np.testing.assert_allclose(foot.from_camera(vu[None])[0], np.r_[xyz, 1.0], atol=1e-5)
        # On the table plane, a waypoint 10 cm above the object lands within 2 px of its pixel.
        above = frame.to_camera(np.r_[xyz[:2], xyz[2] + 0.1, 1.0][None])[0]
        assert np.hypot(above[1] * 64 - px, above[0] * 64 - py) < 2.0, obj["name"]
        np.testing.assert_allclose(
            frame.from_camera(above[None])[0], np.r_[xyz[:2], xyz[2] + 0.1, 1.0], atol=1e-5
        )


def test_processor_writes_pixels_and_decodes_the_table_frame(scene, tiny_config, text_tokenizer, tmp_path):
    frame = CameraActionFrame.from_annotation(scene["camera"])
    rng = np.random.default_rng(0)
    waypoints = np.c_[
        rng.uniform(-0.2, 0.2, (64, 2)), rng.uniform(0.02, 0.2, 64), rng.choice([-1.0, 1.0], 64)
    ]
    stats = pixel_stats(ActionStats.from_actions(frame.to_camera(waypoints)))
    assert stats.q01[:2] == [0.0, 0.0] and stats.q99[:2] == [1.0, 1.0]
    proc = Processor(tiny_config, text_tokenizer=text_tokenizer, action_stats=stats, action_frame=frame)
    chunk = waypoints[: tiny_config.action_chunk_size].astype(np.float32)
    ids = proc.encode_action_target(chunk)
    back = proc.decode_actions(ids.tolist())
    # Half a bin in the image (64 px / 256 bins) is a few millimetres on the table.
    assert np.abs(back[:, :2] - chunk[:, :2]).max() < 0.01
    proc.save_pretrained(tmp_path)
    loaded = Processor.from_pretrained(tmp_path, tiny_config)
    assert loaded.action_frame == frame
    np.testing.assert_array_equal(loaded.decode_actions(ids.tolist()), back)
