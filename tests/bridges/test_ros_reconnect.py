"""Killing and restarting rosbridge mid-episode is survived: roslibpy reconnects, topics come back,
and the episode ends as the direct simulation does."""

from __future__ import annotations

import pytest
from bridge_helpers import wait_until
from test_ros_episode import MAX_STEPS, assert_replays_direct_rollout, node_args, sim_bridge

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
