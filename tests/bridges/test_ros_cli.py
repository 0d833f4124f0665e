"""``uio2 bridge`` as users run it: connects, drives the robot, and on SIGINT publishes the stop
command before it disconnects and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from bridge_helpers import InputPublisher, bridge_overrides, command_values, wait_until

from bridges import ros_env

pytestmark = pytest.mark.ros


def test_uio2_bridge_stops_the_robot_on_sigint(policy, tiny_checkpoint, rosbridge, observer, tmp_path):
    commands = observer.subscribe("/t/command", "std_msgs/Float64MultiArray")
    status = observer.subscribe("/uio2/status", "std_msgs/String")
    inputs = InputPublisher(observer, policy, "/t", rate=10).start()
    overrides = bridge_overrides(policy, rosbridge.url) + ["safety.command_timeout=20", "rate_hz=10"]
    cmd = [sys.executable, "-m", "agent.cli", "bridge", "--checkpoint", str(tiny_checkpoint), *overrides]
    log_path = tmp_path / "uio2-bridge.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_until(
            lambda: any(np.any(c != 0) for c in command_values(commands)),
            90,
            "policy commands from uio2 bridge",
        )
        wait_until(lambda: status, 5, "a status message")
        body = json.loads(status[-1][1]["data"])
        assert {"status", "estop", "inferences", "safe_commands", "rejected_messages"} <= set(body)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log_path.read_text()[-2000:]
        time.sleep(0.3)
    finally:
        inputs.stop()
        ros_env.stop_process(proc)
    last = command_values(commands)[-1]
    assert np.array_equal(last, np.zeros_like(last)), f"the last command must be the stop command, got {last}"
    assert "safe command: shutdown" in log_path.read_text()
