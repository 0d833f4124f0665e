"""Through a real rosbridge, the tiny policy runs an episode of our MuJoCo suite on an rclpy robot
node, and the node's outcome is the direct simulation's (same seed, same policy, lockstep)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bridge_helpers import policy_io, wait_until

from bridges.bridge import PolicyBridge
from bridges.config import load_bridge_config
from bridges.sim_robot_node import make_env, rollout_direct

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[2]
ENV_ID = "uio2/Reach-v0"
SEED = 7
MAX_STEPS = 12


def sim_bridge(policy, url: str) -> PolicyBridge:
    """The bridge of configs/bridge_sim.yaml on this server, with the policy's cameras only."""
    cameras, size, _ = policy_io(policy)
    cams = ", ".join(
        f"{{name: {c}, topic: /sim/camera/{c}/image_raw, height: {size}, width: {size}}}" for c in cameras
    )
    cfg = load_bridge_config(
        str(ROOT / "configs" / "bridge_sim.yaml"), [f"rosbridge={url}", f"cameras=[{cams}]"]
    )
    return PolicyBridge(policy, cfg)


def node_args(policy, result: Path, max_steps: int = MAX_STEPS, command_timeout: float = 20.0) -> list[str]:
    size = str(policy_io(policy)[1])
    return [
        "--env", ENV_ID, "--seed", str(SEED), "--max-steps", str(max_steps), "--image-size", size,
        "--lockstep", "--command-timeout", str(command_timeout), "--rate", "20", "--result", str(result),
    ]  # fmt: skip


_direct: dict[int, dict] = {}


def direct_rollout(policy, max_steps: int) -> dict:
    """The reference episode without ROS (computed once per session: the model is slow on 2 cores)."""
    if max_steps not in _direct:
        env = make_env(ENV_ID, policy_io(policy)[1])
        try:
            _direct[max_steps] = rollout_direct(policy, env, SEED, max_steps)
        finally:
            env.close()
    return _direct[max_steps]


def assert_replays_direct_rollout(policy, result: Path, max_steps: int = MAX_STEPS) -> dict:
    got = json.loads(result.read_text())[0]
    ref = direct_rollout(policy, max_steps)
    assert got["command_timeouts"] == 0, "every step must have had its own command"
    assert got["steps"] == ref["steps"] and got["success"] == ref["success"]
    np.testing.assert_allclose(got["actions"], ref["actions"], atol=1e-6)
    np.testing.assert_allclose(got["final_state"], ref["final_state"], atol=1e-5)
    return got


def test_episode_through_the_bridge_replays_the_direct_rollout(
    policy, rosbridge, start_node, observer, tmp_path
):
    success = observer.subscribe("/sim/success", "std_msgs/Bool")
    result = tmp_path / "episode.json"
    node = start_node(node_args(policy, result))
    bridge = sim_bridge(policy, rosbridge.url)
    bridge.connect()
    bridge.start()
    try:
        node.wait(timeout=60)
    finally:
        bridge.shutdown()
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-2000:]
    got = assert_replays_direct_rollout(policy, result)
    assert bridge.stats["inferences"] == got["steps"]
    # the node also reported its outcome on a topic
    wait_until(lambda: success, 5, "the node's /sim/success message")
    assert success[-1][1]["data"] == got["success"]
