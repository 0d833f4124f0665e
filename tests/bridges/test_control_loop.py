"""The control loop's decisions without ROS: watchdog, command timeout, e-stop, bad policy outputs.

The bridge is built but never connected: ``tick()`` runs the same checks and records the command
it would publish in ``bridge.last_command``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from bridge_helpers import bridge_overrides, fake_inputs, policy_io

from bridges.bridge import PolicyBridge
from bridges.config import load_bridge_config
from bridges.convert import image_to_msg


def _bridge(policy, *extra):
    cfg = load_bridge_config(None, bridge_overrides(policy) + list(extra))
    return PolicyBridge(policy, cfg)


def _feed(bridge, policy, seed=0, stamp=(1, 0)):
    cameras, size, state_dim = policy_io(policy)
    image, state = fake_inputs(size, state_dim, seed)
    for cam in bridge.cfg.cameras:
        bridge._on_camera(cam, image_to_msg(image, stamp))
    bridge._on_state({"data": state.tolist()})
    bridge._on_instruction({"data": "push the red cube to the left"})


def test_no_inference_and_the_safe_command_until_every_input_arrived(policy):
    b = _bridge(policy)
    b.tick()
    assert b.status.startswith("stale") and b.stats["inferences"] == 0
    assert np.array_equal(b.last_command, b.safety.safe_action.astype(np.float32))
    _feed(b, policy)
    b.tick()
    assert b.status == "running" and b.stats["inferences"] == 1
    assert b.safety.within_limits(b.last_command)


def test_watchdog_stops_on_a_stale_camera(policy):
    b = _bridge(policy, "safety.max_age=0.1")
    _feed(b, policy)
    b.tick()
    assert b.status == "running"
    time.sleep(0.15)
    b._on_state({"data": fake_inputs(16, policy_io(policy)[2])[1].tolist()})  # state fresh, camera not
    b.tick()
    assert b.status.startswith("stale") and policy_io(policy)[0][0] in b.status
    assert b.stats["inferences"] == 1 and np.array_equal(b.last_command, b.safety.safe_command())


def test_estop_wins_over_fresh_inputs_and_releases(policy):
    b = _bridge(policy)
    _feed(b, policy)
    b._on_estop({"data": True})
    b.tick()
    assert b.status == "estop" and b.stats["inferences"] == 0
    b._on_estop({"data": False})
    b.tick()
    assert b.status == "running"


class _Slow:
    """The real policy, made slower than the command timeout."""

    def __init__(self, policy, delay):
        self.policy, self.delay = policy, delay

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def select_action(self, obs):
        time.sleep(self.delay)
        return self.policy.select_action(obs)


def test_command_timeout_gives_the_safe_command_and_drops_the_late_result(policy):
    b = _bridge(_Slow(policy, 0.3), "safety.command_timeout=0.05", "safety.max_age=5")
    _feed(b, policy)
    t = time.monotonic()
    b.tick()
    assert time.monotonic() - t < 0.25, "the tick must not wait past the command timeout"
    assert b.status == "inference timeout" and b.stats["inference_timeouts"] == 1
    time.sleep(0.4)
    b.tick()  # the result came back too late to act on
    assert b.stats["late_results_dropped"] == 1 and b.stats["inferences"] == 0


class _Wild:
    """The real policy's actions, corrupted: NaN, inf, huge, wrong shape, in turn."""

    def __init__(self, policy):
        self.policy, self.n = policy, 0

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def select_action(self, obs):
        a = np.asarray(self.policy.select_action(obs), np.float64)
        self.n += 1
        return [a * np.nan, a + np.inf, a * 1e30 + 1e30, a[:-1], -a - 1e9, a][self.n % 6]


def test_nothing_the_policy_returns_leaves_the_limits(policy):
    b = _bridge(_Wild(policy))
    for i in range(12):
        _feed(b, policy, seed=i)
        b.tick()
        assert b.safety.within_limits(b.last_command), b.last_command
    assert b.safety.rejected >= 6 and b.safety.clipped >= 2


def test_sync_acts_once_per_stamp_and_repeats_for_a_resent_observation(policy):
    b = _bridge(policy, "sync=true")
    # a Float64MultiArray state has no stamp: sync on the cameras alone
    b.watched = list(b.cameras)
    _feed(b, policy, stamp=(5, 0))
    b.tick()
    b.tick()
    assert b.stats["inferences"] == 1 and b.stats["published"] == 0  # never connected: nothing leaves
    assert b.stats["not_connected"] == 1
    _feed(b, policy, stamp=(5, 0))  # the same observation again: answer it again, no new inference
    b.tick()
    assert b.stats["inferences"] == 1 and b.stats["not_connected"] == 2
    _feed(b, policy, stamp=(6, 0))
    b.tick()
    assert b.stats["inferences"] == 2


@pytest.mark.parametrize(
    "bad", ["safety.action_low=[0]", "commands=[{type: std_msgs/Float64MultiArray, dims: [99]}]"]
)
def test_config_that_does_not_fit_the_policy_is_refused(policy, bad):
    with pytest.raises(ValueError):
        _bridge(policy, bad)
