"""Through a real rosbridge: a waypoint checkpoint's command goes out as ``geometry_msgs/PoseStamped``
(position = the target, in the configured frame), inside the limits, with the gripper beside it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bridge_helpers import InputPublisher, bridge_overrides, wait_until

from bridges.bridge import PolicyBridge
from bridges.config import load_bridge_config

pytestmark = pytest.mark.ros


def test_waypoints_are_published_as_pose_stamped(policy, rosbridge, observer):
    overrides = bridge_overrides(policy, rosbridge.url) + [
        "commands=[{topic: /t/target_pose, type: geometry_msgs/PoseStamped, dims: [0, 1, 2], frame_id: table},"
        " {topic: /t/gripper, type: std_msgs/Float64MultiArray, dims: [3]}]",
        # Position commands: the safe value of every pose dim is the last command, not zero.
        "safety.hold_dims=[0, 1, 2, 3]",
        "safety.command_timeout=20",
    ]
    bridge = PolicyBridge(policy, load_bridge_config(None, overrides))
    poses = observer.subscribe("/t/target_pose", "geometry_msgs/PoseStamped")
    grippers = observer.subscribe("/t/gripper", "std_msgs/Float64MultiArray")
    inputs = InputPublisher(observer, policy, "/t", rate=20.0)
    bridge.connect()
    inputs.start()
    bridge.start()
    try:
        wait_until(lambda: bridge.stats["inferences"] >= 2 and poses and grippers, 60, "pose commands")
    finally:
        inputs.stop()
        bridge.shutdown()
    low, high = bridge.safety.low, bridge.safety.high
    for _, msg in list(poses):
        assert msg["header"]["frame_id"] == "table"
        xyz = [msg["pose"]["position"][k] for k in "xyz"]
        assert all(math.isfinite(v) for v in xyz)
        assert np.all(np.asarray(xyz) >= low[:3] - 1e-6) and np.all(np.asarray(xyz) <= high[:3] + 1e-6)
        assert msg["pose"]["orientation"] == {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}
