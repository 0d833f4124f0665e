"""Killing and restarting rosbridge mid-episode is survived: roslibpy reconnects, topics come back,
the episode ends as the direct simulation does, and no command after the reconnect jumps past
max_delta from what the robot last received."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from bridge_helpers import InputPublisher, bridge_overrides, wait_until
from test_ros_episode import MAX_STEPS, assert_replays_direct_rollout, node_args, sim_bridge

from bridges import ros_env
from bridges.bridge import PolicyBridge
from bridges.config import load_bridge_config

pytestmark = pytest.mark.ros


def test_rosbridge_killed_and_restarted_mid_episode(policy, rosbridge, start_node, tmp_path):
    result = tmp_path / "episode.json"
    node = start_node(node_args(policy, result, max_steps=MAX_STEPS, command_timeout=40.0))
    bridge = sim_bridge(policy, rosbridge.url)
    bridge.connect()
    bridge.start()
    try:
        wait_until(lambda: bridge.stats["inferences"] >= 3, 60, "3 steps before the crash")
        rosbridge.kill()
        wait_until(lambda: not bridge.connected, 5, "the bridge to notice the lost connection")
        # Inputs go stale after max_age (2 s in bridge_sim.yaml): the watchdog's safe command must then be
        # dropped, not queued for the dead connection.
        wait_until(lambda: bridge.stats["not_connected"] >= 1, 10, "a command attempted while disconnected")
        assert node.poll() is None, "the robot waits for its command while the server is down"
        rosbridge.start()  # same port, a fresh server that knows nothing of the old clients
        wait_until(lambda: bridge.connected, 20, "roslibpy to reconnect with backoff")
        node.wait(timeout=90)
    finally:
        bridge.shutdown()
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-2000:]
    assert bridge.stats["connections"] == 2
    assert_replays_direct_rollout(policy, result, MAX_STEPS)


# A robot in plain rclpy (DDS, not rosbridge): it publishes its state at 20 Hz and records every command
# it gets, in order, also while rosbridge is down.
ROBOT = """
import json, sys, time, rclpy
from std_msgs.msg import Float64MultiArray
rclpy.init(); node = rclpy.create_node("robot")
out = open(sys.argv[1], "a", buffering=1)
node.create_subscription(
    Float64MultiArray, "/t/command", lambda m: out.write(json.dumps([time.monotonic(), list(m.data)]) + "\\n"), 100
)
state = node.create_publisher(Float64MultiArray, "/t/state", 10)
node.create_timer(0.05, lambda: state.publish(Float64MultiArray(data=[0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 0.2, 0.1])))
print("ready", flush=True)
rclpy.spin(node)
"""
# Small against the tiny policy's actions (about 0.05-0.08), so the ramp toward them is still under way
# when rosbridge is killed.
MAX_DELTA = 0.002


def _received(path) -> list[np.ndarray]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [np.asarray(json.loads(line)[1]) for line in lines if line.strip()]


def test_after_a_reconnect_no_command_jumps_past_max_delta_from_what_the_robot_got(
    policy, rosbridge, observer, ros_environ, tmp_path
):
    """The commands published while rosbridge was down never reached the robot: after the reconnect the
    bridge must not rate-limit from them. Every command the robot gets is the safe command or within
    max_delta of the one it got before."""
    record = tmp_path / "commands.jsonl"
    log_path = tmp_path / "recorder.log"
    with open(log_path, "wb") as out:
        recorder = subprocess.Popen(
            [sys.executable, "-c", ROBOT, str(record)],
            env=ros_environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    overrides = bridge_overrides(policy, rosbridge.url) + [
        "rate_hz=20",
        f"safety.max_delta=[{MAX_DELTA}]",
        "safety.max_age=30",  # inputs stay usable through the outage: the bridge keeps acting, undelivered
        "safety.command_timeout=20",
        "reconnect.initial_delay=0.2",
        "reconnect.max_delay=0.5",
        # The restarted rosbridge reached the robot 0.5-2.5 s after the reconnect here (ROS discovery); the
        # default 3 s would do. With 5 s a full test run on the 2-core machine still failed once (the
        # robot's next command was 22 ramp steps from its last: the settling stop commands never
        # reached it), so 10 s.
        "reconnect.settle=10.0",
    ]
    bridge = PolicyBridge(policy, load_bridge_config(None, overrides))
    inputs = InputPublisher(observer, policy, "/t", rate=20)  # cameras and instruction; the robot: state
    inputs.pub_state = lambda msg: None
    try:
        wait_until(lambda: b"ready" in log_path.read_bytes(), 30, "the rclpy robot")
        bridge.connect()
        bridge.start()  # before any input: the stop command first, so policy commands ramp from it ...
        wait_until(lambda: len(_received(record)) >= 2, 20, "the stop command at the robot")
        inputs.start()
        # ... and the ramp (about 40 ticks, 2 s) is still under way when rosbridge dies: during the outage
        # the bridge keeps ramping with commands the robot never gets.
        wait_until(lambda: sum(np.any(c != 0) for c in _received(record)) >= 3, 60, "3 policy commands")
        rosbridge.kill()
        wait_until(lambda: not bridge.connected, 5, "the bridge to notice the lost connection")
        undelivered = bridge.stats["not_connected"]
        time.sleep(1.0)  # about 20 ticks of policy commands that cannot reach the robot
        assert bridge.stats["not_connected"] - undelivered >= 10
        before = len(_received(record))
        rosbridge.start()
        wait_until(lambda: bridge.connected, 20, "roslibpy to reconnect with backoff")
        wait_until(
            lambda: sum(np.any(c != 0) for c in _received(record)[before:]) >= 10, 30, "commands after it"
        )
    finally:
        inputs.stop()
        bridge.shutdown()
        ros_env.stop_process(recorder)
    got = _received(record)
    jumps = []
    for prev, cmd in zip(got, got[1:]):
        assert bridge.safety.within_limits(cmd), cmd
        if np.array_equal(cmd, np.zeros_like(cmd)):  # the safe command: stopping is never rate-limited
            continue
        jumps.append(float(np.abs(cmd - prev).max()))
    print(f"\n{len(got)} commands received; largest step between policy commands {max(jumps):.4f}")
    assert max(jumps) <= MAX_DELTA + 1e-6, f"a command jumped {max(jumps):.3f} past max_delta {MAX_DELTA}"
    after = got[before:]
    assert after and np.array_equal(after[0], np.zeros_like(after[0])), "the first command after is a stop"
