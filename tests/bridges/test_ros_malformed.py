"""Through a real rosbridge: malformed messages (wrong encoding, wrong sizes, bad fields, NaN) are
rejected with a log line, never crash the bridge, and never make it publish NaN, inf or out-of-limit."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import time

import numpy as np
import pytest
from bridge_helpers import InputPublisher, bridge_overrides, command_values, policy_io, wait_until

from bridges import ros_env
from bridges.bridge import PolicyBridge
from bridges.config import load_bridge_config

pytestmark = pytest.mark.ros

# A real ROS 2 publisher of non-finite states: rosbridge has to carry NaN/inf itself (as JSON null).
NAN_PUBLISHER = """
import time, rclpy
from std_msgs.msg import Float64MultiArray
rclpy.init(); node = rclpy.create_node("nan_publisher")
pub = node.create_publisher(Float64MultiArray, "/t/state", 10)
end = time.monotonic() + 20
while pub.get_subscription_count() == 0 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
time.sleep(0.3)
for i in range(10):
    pub.publish(Float64MultiArray(data=[float("nan"), float("inf"), -float("inf"), 1.0, 0, 0, 0, 0][: %d]))
    time.sleep(0.05)
print("published", flush=True)
node.destroy_node(); rclpy.shutdown()
"""


def _image(h, w, encoding="rgb8", channels=3, data=None, step=None):
    data = base64.b64encode(bytes(h * w * channels)).decode() if data is None else data
    return {
        "header": {"stamp": {"sec": 1, "nanosec": 0}, "frame_id": "x"},
        "height": h,
        "width": w,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": w * channels if step is None else step,
        "data": data,
    }


def test_malformed_messages_are_rejected_and_never_reach_the_robot(
    policy, rosbridge, observer, ros_environ, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="uio2.bridge")
    overrides = bridge_overrides(policy, rosbridge.url) + ["rate_hz=20", "safety.command_timeout=20"]
    bridge = PolicyBridge(policy, load_bridge_config(None, overrides))
    commands = observer.subscribe("/t/command", "std_msgs/Float64MultiArray")
    inputs = InputPublisher(observer, policy, "/t", rate=20)
    cameras, size, state_dim = policy_io(policy)
    cam = observer.publisher(f"/t/camera/{cameras[0]}/image_raw", "sensor_msgs/Image")
    state = observer.publisher("/t/state", "std_msgs/Float64MultiArray")
    instruction = observer.publisher("/t/instruction", "std_msgs/String")
    bridge.connect()
    inputs.start()
    bridge.start()
    nan_log = tmp_path / "nan_publisher.log"
    nan_node = None
    try:
        wait_until(lambda: bridge.status == "running", 60, "policy commands")
        good = bridge.stats["inferences"]
        garbage = [
            (cam, _image(size, size, encoding="mono8", channels=1)),  # wrong encoding
            (cam, _image(size, size, encoding="16UC1", channels=2)),
            (cam, _image(size // 2, size // 2)),  # wrong size
            (
                cam,
                _image(size, size, data=base64.b64encode(bytes(10)).decode()),
            ),  # data shorter than step*height
            (cam, _image(size, size, step=size)),  # step smaller than a row
            (cam, _image(size, size, data="%%% not base64 %%%")),
            (cam, {"height": "tall", "width": None, "data": 5}),  # bad JSON fields (rosbridge may drop it)
            (state, {"layout": {"dim": [], "data_offset": 0}, "data": [1.0, 2.0]}),  # wrong state size
            (state, {"layout": {"dim": [], "data_offset": 0}, "data": [1e308] * state_dim}),  # not float32
            (state, {"layout": {"dim": [], "data_offset": 0}, "data": ["a"] * state_dim}),  # bad fields
            (instruction, {"data": "x" * 5000}),  # too long
            (instruction, {"data": "   "}),  # empty
        ]
        refused_by_rosbridge = {5, 6, 9}  # bad base64, fields of the wrong type: they never reach the bridge
        for _ in range(3):
            for i, (pub, msg) in enumerate(garbage):
                if i in refused_by_rosbridge:
                    pub(msg)
                    time.sleep(0.01)  # paced: rosbridge drops unpaced bursts
                    continue
                # Resent until the bridge has rejected it: a new publisher delivers only once ROS 2
                # discovery has matched it, and with queue_length=1 a newer good frame from the input
                # publisher can replace a bad one before the bridge reads it.
                before = bridge.stats["rejected_messages"]

                def rejected(pub=pub, msg=msg, before=before):
                    pub(msg)
                    time.sleep(0.02)
                    return bridge.stats["rejected_messages"] > before

                wait_until(rejected, 30, f"the bridge to reject garbage message {i}")
        # Started only now, so its rejections cannot stand in for a garbage message's above.
        with open(nan_log, "wb") as out:
            nan_node = subprocess.Popen(
                [sys.executable, "-c", NAN_PUBLISHER % state_dim],
                env=ros_environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: b"published" in nan_log.read_bytes(), 30, "the rclpy NaN publisher")
        nan_node.wait(timeout=10)
        time.sleep(0.3)
        assert bridge._thread is not None and bridge._thread.is_alive(), "the control loop must survive"
        wait_until(lambda: bridge.stats["inferences"] > good, 60, "the policy to act again on good input")
    finally:
        if nan_node is not None:
            ros_env.stop_process(nan_node)
        inputs.stop()
        bridge.shutdown()
    text = caplog.text
    for words in (
        "encoding must be 'rgb8' or 'bgr8', got 'mono8'",
        f"must be {size}x{size}",
        "data must hold step*height",
        "step must be >= width*3",
        f"state must have {state_dim} values, got 2",
        "state must be finite float32",
        "instruction must have 1..1000 characters",
        "must hold only numbers, got None",  # the rclpy NaN/inf, as rosbridge's JSON null
    ):
        assert words in text, f"no log line saying {words!r}"
    assert bridge.stats["rejected_messages"] >= 3 * 8
    # what rosbridge itself refused (bad base64, fields of the wrong type) it reported to the sender
    refused = {m.get("msg") for m in observer.statuses if m.get("level") == "error"}
    assert {"field sensor_msgs/msg/Image.data", "field std_msgs/msg/Float64MultiArray.data"} <= refused, (
        refused
    )
    sent = command_values(commands)
    assert sent, (
        f"the observer saw no commands ({observer.ros.is_connected}, {bridge.stats}, {observer.statuses[-3:]})"
    )
    for c in sent:
        assert np.isfinite(c).all() and bridge.safety.within_limits(c), c
    assert (np.abs(np.stack(sent)) <= 1.0 + 1e-6).all(), "the tiny checkpoint's limits are [-1, 1]"
