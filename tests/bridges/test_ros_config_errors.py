"""Configuration errors a robot integrator makes, through a real rosbridge: a state topic with fewer
features than the checkpoint's state_dims read, and a camera of another size than its config. Both are
found on the first message, logged once with what to change (no traceback per tick), latched in
``bridge.fault``; the robot then gets only the safe command, and ``uio2 bridge`` exits with code 3."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from bridge_helpers import InputPublisher, bridge_overrides, command_values, wait_until

from bridges import ros_env
from bridges.bridge import CONFIG_FAULT_EXIT, PolicyBridge
from bridges.config import load_bridge_config

pytestmark = pytest.mark.ros

STATE_DIMS = [0, 1, 2, 6, 7]  # the checkpoint: reads index 7, so 8 features at least


@pytest.fixture(scope="module")
def dims_policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint, state_dims=STATE_DIMS)


def _run_bridge(policy, rosbridge, observer, inputs_setup, caplog, seconds=2.5):
    caplog.set_level(logging.INFO, logger="uio2.bridge")
    overrides = bridge_overrides(policy, rosbridge.url) + ["rate_hz=20", "safety.command_timeout=20"]
    bridge = PolicyBridge(policy, load_bridge_config(None, overrides))
    commands = observer.subscribe("/t/command", "std_msgs/Float64MultiArray")
    inputs = InputPublisher(observer, policy, "/t", rate=20)
    inputs_setup(inputs)
    bridge.connect()
    inputs.start()
    bridge.start()
    try:
        wait_until(lambda: bridge.fault is not None, 30, "the configuration error to be found")
        found = bridge.stats["ticks"]
        time.sleep(seconds)  # dozens of ticks more: still one log line
        assert bridge.stats["ticks"] - found >= 20
    finally:
        inputs.stop()
        bridge.shutdown()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert not any(r.exc_info for r in caplog.records), "no traceback"
    assert "policy inference failed" not in caplog.text
    assert bridge.stats["inferences"] == 0 and bridge.status == "shutdown"
    sent = command_values(commands)
    assert len(sent) >= 10 and all(np.array_equal(c, np.zeros_like(c)) for c in sent), "only the safe command"
    return bridge, errors[0].getMessage()


def test_a_state_shorter_than_state_dims_read_is_a_configuration_error(
    dims_policy, rosbridge, observer, caplog
):
    def short_state(inputs):
        inputs.state = inputs.state[:4]  # 4 joints; the policy reads index 7

    bridge, message = _run_bridge(dims_policy, rosbridge, observer, short_state, caplog)
    assert bridge.fault in message
    assert (
        "/t/state: the state has 4 features, but the policy's state_dims [0, 1, 2, 6, 7] read index 7, "
        "so it needs at least 8: publish the features the checkpoint was trained on" in message
    )
    assert "exits with code 3" in message


def test_a_camera_of_another_size_is_a_configuration_error(policy, rosbridge, observer, caplog):
    def small_camera(inputs):
        inputs.image = np.ascontiguousarray(inputs.image[::2, ::2])

    bridge, message = _run_bridge(policy, rosbridge, observer, small_camera, caplog)
    size = int(getattr(policy, "image_size", 96))
    half = size // 2
    cam = bridge.cfg.cameras[0]
    assert f"sends {half}x{half} frames, but the config says {cam.height}x{cam.width}" in message
    assert "set cameras[" in message and f".height={half}" in message, message


def test_a_state_too_short_is_refused_at_start_when_state_size_is_configured(dims_policy):
    overrides = bridge_overrides(dims_policy) + ["state.size=4"]
    with pytest.raises(ValueError, match=r"state.size=4: the state has 4 features, .* needs at least 8"):
        PolicyBridge(dims_policy, load_bridge_config(None, overrides))


def test_uio2_bridge_exits_3_on_a_configuration_error(
    dims_policy, tiny_checkpoint, rosbridge, observer, tmp_path
):
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    policy_json = checkpoint / "policy.json"
    config = json.loads(policy_json.read_text()) if policy_json.exists() else {}
    policy_json.write_text(json.dumps({**config, "state_dims": STATE_DIMS}))
    commands = observer.subscribe("/t/command", "std_msgs/Float64MultiArray")
    inputs = InputPublisher(observer, dims_policy, "/t", rate=10)
    inputs.state = inputs.state[:4]
    overrides = bridge_overrides(dims_policy, rosbridge.url) + ["rate_hz=10"]
    cmd = [sys.executable, "-m", "agent.cli", "bridge", "--checkpoint", str(checkpoint), *overrides]
    log_path = tmp_path / "uio2-bridge.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    inputs.start()
    try:
        assert proc.wait(timeout=90) == CONFIG_FAULT_EXIT, log_path.read_text()[-3000:]
        time.sleep(0.3)
    finally:
        inputs.stop()
        ros_env.stop_process(proc)
    text = log_path.read_text()
    assert text.count("configuration error: /t/state: the state has 4 features") == 1, text[-3000:]
    assert "Traceback" not in text
    sent = command_values(commands)
    assert sent and np.array_equal(sent[-1], np.zeros_like(sent[-1])), "the last command is the stop command"
