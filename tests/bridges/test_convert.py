"""Message conversion without ROS: images, state, instruction, audio in; commands out; bad input rejected."""

from __future__ import annotations

import base64
import math

import cv2
import numpy as np
import pytest

from bridges import convert
from bridges.config import AudioConfig, CameraConfig, CommandConfig, StateConfig
from bridges.convert import ConversionError

CAM = CameraConfig(name="scene", topic="/cam", height=4, width=5)


def _image(h=4, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_rgb8_round_trip_is_exact():
    img = _image()
    msg = convert.image_to_msg(img, stamp=(3, 7))
    assert np.array_equal(convert.image_from_msg(msg, CAM), img)
    assert convert.header_stamp(msg) == (3, 7)


def test_bgr8_is_turned_into_rgb():
    img = _image()
    msg = convert.image_to_msg(img[..., ::-1].copy())
    msg["encoding"] = "bgr8"
    assert np.array_equal(convert.image_from_msg(msg, CAM), img)


def test_row_padding_in_step_is_dropped():
    img = _image()
    padded = np.zeros((4, 5 * 3 + 2), np.uint8)
    padded[:, :15] = img.reshape(4, 15)
    msg = convert.image_to_msg(img)
    msg["step"], msg["data"] = 17, base64.b64encode(padded.tobytes()).decode()
    assert np.array_equal(convert.image_from_msg(msg, CAM), img)


def test_data_as_a_list_of_ints_is_accepted():
    img = _image()
    msg = convert.image_to_msg(img)
    msg["data"] = list(img.tobytes())
    assert np.array_equal(convert.image_from_msg(msg, CAM), img)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_image_decodes_to_rgb(fmt):
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 200  # pure red survives jpeg closely enough
    ok, buf = cv2.imencode(f".{fmt}", img[..., ::-1])
    assert ok
    cam = CameraConfig(name="scene", topic="/cam", type="sensor_msgs/CompressedImage", height=4, width=5)
    out = convert.image_from_msg({"format": fmt, "data": base64.b64encode(buf.tobytes()).decode()}, cam)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).max() <= (0 if fmt == "png" else 8)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"encoding": "mono8"}, "encoding must be 'rgb8' or 'bgr8'"),
        ({"encoding": "rgba8"}, "encoding must be"),
        ({"height": 3}, "image must be 4x5"),
        ({"width": 6, "step": 18}, "image must be 4x5"),
        ({"step": 10}, "step must be >= width*3"),
        ({"height": "4"}, "must be integers"),
        ({"data": "not base64!!"}, "not valid base64"),
        ({"data": base64.b64encode(b"\0" * 59).decode()}, "data must hold step*height = 60 bytes, got 59"),
        ({"data": [0] * 59 + [256]}, "bytes 0..255"),
        ({"data": None}, "base64 string or a list"),
    ],
)
def test_bad_raw_images_are_rejected_with_the_reason(change, words):
    msg = convert.image_to_msg(_image())
    msg.update(change)
    with pytest.raises(ConversionError, match=None) as e:
        convert.image_from_msg(msg, CAM)
    assert words in str(e.value)


def test_a_huge_data_field_is_refused_before_decoding():
    msg = convert.image_to_msg(_image())
    msg["data"] = "A" * 10_000_000
    with pytest.raises(ConversionError, match="base64 chars"):
        convert.image_from_msg(msg, CAM)


def test_bad_compressed_images_are_rejected():
    cam = CameraConfig(name="s", topic="/c", type="sensor_msgs/CompressedImage", height=4, width=5)
    with pytest.raises(ConversionError, match="format must name jpeg or png"):
        convert.image_from_msg({"format": "tiff", "data": ""}, cam)
    with pytest.raises(ConversionError, match="do not decode"):
        convert.image_from_msg({"format": "png", "data": base64.b64encode(b"garbage").decode()}, cam)
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConversionError, match="must be 4x5x3"):
        convert.image_from_msg({"format": "png", "data": base64.b64encode(buf.tobytes()).decode()}, cam)
    with pytest.raises(ConversionError, match="JSON object"):
        convert.image_from_msg([1, 2], cam)


def test_joint_state_fields_and_joint_order():
    cfg = StateConfig(fields=["position", "velocity"], joint_names=["b", "a"])
    msg = {"name": ["a", "b"], "position": [1.0, 2.0], "velocity": [3, 4], "effort": []}
    out = convert.state_from_msg(msg, cfg)
    assert out.dtype == np.float32 and out.tolist() == [2.0, 1.0, 4.0, 3.0]


def test_float64_multiarray_state():
    cfg = StateConfig(type="std_msgs/Float64MultiArray", size=3)
    assert convert.state_from_msg({"data": [0.5, 1, -2]}, cfg).tolist() == [0.5, 1.0, -2.0]
    with pytest.raises(ConversionError, match="must have 3 values, got 2"):
        convert.state_from_msg({"data": [0.5, 1]}, cfg)


@pytest.mark.parametrize(
    "msg, words",
    [
        ({"data": [1.0, None, 2.0]}, "only numbers"),  # rosbridge writes NaN/inf as null
        ({"data": [1.0, float("nan"), 2.0]}, "finite"),
        ({"data": [1.0, float("inf"), 2.0]}, "finite"),
        ({"data": [1e300, 0, 0]}, "finite float32"),
        ({"data": [1.0, True, 2.0]}, "only numbers"),
        ({"data": "1,2,3"}, "list of numbers"),
        ({}, "list of numbers"),
        ({"data": []}, "must have 3 values"),
    ],
)
def test_bad_state_is_rejected(msg, words):
    with pytest.raises(ConversionError) as e:
        convert.state_from_msg(msg, StateConfig(type="std_msgs/Float64MultiArray", size=3))
    assert words in str(e.value)


def test_joint_state_with_missing_joint_is_rejected():
    cfg = StateConfig(joint_names=["a", "c"])
    with pytest.raises(ConversionError, match=r"joints \['c'\] missing"):
        convert.state_from_msg({"name": ["a", "b"], "position": [1.0, 2.0]}, cfg)
    with pytest.raises(ConversionError, match="one value per name"):
        convert.state_from_msg({"name": ["a", "c"], "position": [1.0]}, cfg)


def test_instruction():
    assert convert.instruction_from_msg({"data": "  pick the red cube "}) == "pick the red cube"
    for bad in ({"data": ""}, {"data": 3}, {}, "text", {"data": "x" * 1001}):
        with pytest.raises(ConversionError):
            convert.instruction_from_msg(bad)


def test_audio_is_padded_cut_clipped_and_resampled():
    cfg = AudioConfig(enabled=True, num_samples=8)
    out = convert.audio_from_msg({"data": [0.5, -2.0, 1.0]}, cfg)
    assert out.dtype == np.float32 and out.tolist() == [0.5, -1.0, 1.0, 0, 0, 0, 0, 0]
    assert convert.audio_from_msg({"data": list(range(20))}, AudioConfig(num_samples=8)).shape == (8,)
    up = convert.audio_from_msg({"data": [0.0, 0.5] * 4}, AudioConfig(sample_rate=8000, num_samples=32))
    assert np.count_nonzero(up[16:]) == 0 and np.count_nonzero(up[:16]) > 0  # 8 samples at 8 kHz -> 16
    for bad in ({"data": []}, {"data": [0.1, None]}, {"data": "x"}):
        with pytest.raises(ConversionError):
            convert.audio_from_msg(bad, cfg)


def test_twist_float_array_and_trajectory_commands():
    a = np.array([0.1, -0.2, 0.3, 1.0], np.float32)
    twist = convert.command_msg(
        a,
        CommandConfig(
            type="geometry_msgs/Twist", dims=[0, 2], twist_fields=["linear.x", "angular.z"], scale=[2, 1]
        ),
    )
    assert twist["linear"] == {"x": pytest.approx(0.2), "y": 0.0, "z": 0.0}
    assert twist["angular"]["z"] == pytest.approx(0.3)
    arr = convert.command_msg(a, CommandConfig(type="std_msgs/Float64MultiArray", dims=[3]))
    assert arr["data"] == [1.0] and arr["layout"]["dim"][0]["size"] == 1
    traj = convert.command_msg(
        a,
        CommandConfig(
            type="trajectory_msgs/JointTrajectory",
            dims=[0, 1],
            joint_names=["j0", "j1"],
            trajectory_field="velocities",
            time_from_start=1.25,
        ),
        stamp=(5, 6),
    )
    assert traj["header"]["stamp"] == {"sec": 5, "nanosec": 6}
    point = traj["points"][0]
    assert point["velocities"] == pytest.approx([0.1, -0.2]) and point["positions"] == []
    assert point["time_from_start"] == {"sec": 1, "nanosec": 250_000_000}


def test_a_non_finite_command_is_never_built():
    cmd = CommandConfig(type="std_msgs/Float64MultiArray", dims=[0, 1])
    for bad in (np.array([math.nan, 0.0]), np.array([0.0, math.inf])):
        with pytest.raises(ConversionError, match="finite"):
            convert.command_msg(bad, cmd)
    with pytest.raises(ConversionError, match="do not fit a 1-dim action"):
        convert.command_msg(np.zeros(1), cmd)


def test_pose_stamped_command_for_waypoint_checkpoints():
    a = np.array([0.1, -0.2, 0.15, 1.0], np.float32)
    pose = convert.command_msg(
        a, CommandConfig(type="geometry_msgs/PoseStamped", dims=[0, 1, 2], frame_id="table"), stamp=(7, 8)
    )
    assert pose["header"] == {"stamp": {"sec": 7, "nanosec": 8}, "frame_id": "table"}
    assert pose["pose"]["position"] == {
        "x": pytest.approx(0.1),
        "y": pytest.approx(-0.2),
        "z": pytest.approx(0.15),
    }
    assert pose["pose"]["orientation"] == {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}
    with pytest.raises(ConversionError, match="finite"):
        convert.command_msg(np.array([0.1, math.nan, 0.2]), CommandConfig(type="geometry_msgs/PoseStamped"))
