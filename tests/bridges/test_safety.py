"""Safety without ROS: clipping, maximum change per step, NaN/inf, the safe command, e-stop, watchdog."""

from __future__ import annotations

import numpy as np
import pytest

from bridges.inputs import LatestInputs, common_stamp
from bridges.safety import EStop, SafetyFilter, stale_inputs

LOW, HIGH = np.array([-1.0, -1.0, -0.5]), np.array([1.0, 1.0, 0.5])


def test_clipping_per_dimension():
    f = SafetyFilter(LOW, HIGH)
    assert f.filter([2.0, -3.0, 0.7]).tolist() == [1.0, -1.0, 0.5]
    assert f.clipped == 1


def test_maximum_change_per_step_ramps_towards_the_target():
    f = SafetyFilter(LOW, HIGH, max_delta=[0.1, 0.5, 1.0])
    f.filter([0.0, 0.0, 0.0])
    out = [f.filter([1.0, 1.0, -0.5]).tolist() for _ in range(3)]
    assert np.allclose(out[0], [0.1, 0.5, -0.5]) and np.allclose(out[2], [0.3, 1.0, -0.5])


@pytest.mark.parametrize(
    "bad", [[np.nan, 0, 0], [0, np.inf, 0], [0, 0, -np.inf], [0, 0], [[0, 0, 0]], "x", None]
)
def test_nan_inf_or_wrong_shape_gives_the_safe_command(bad):
    f = SafetyFilter(LOW, HIGH)
    out = f.filter(bad)
    assert out.tolist() == [0.0, 0.0, 0.0] and f.rejected == 1 and np.isfinite(out).all()


def test_safe_command_zeros_and_holds_the_gripper():
    f = SafetyFilter(LOW, HIGH, hold_dims=[2])
    f.filter([0.8, -0.8, 0.4])
    assert f.safe_command().tolist() == pytest.approx([0.0, 0.0, 0.4])
    assert f.safe_command().tolist() == pytest.approx([0.0, 0.0, 0.4])  # and keeps holding it


def test_hold_dims_have_nothing_to_hold_before_the_first_policy_command():
    f = SafetyFilter(LOW, HIGH, hold_dims=[0, 1])
    assert not f.hold_ready  # the bridge then publishes nothing on these dims (a joint sent 0 would move)
    f.safe_command()
    assert not f.hold_ready
    f.filter([0.3, -0.2, 0.1])
    assert f.hold_ready and f.safe_command().tolist() == pytest.approx([0.3, -0.2, 0.0])


def test_safe_action_is_clipped_into_the_limits():
    f = SafetyFilter(LOW, HIGH, safe_action=[5.0, 0.0, -5.0])
    assert f.safe_command().tolist() == [1.0, 0.0, -0.5]


def test_stopping_is_not_rate_limited_but_resuming_is():
    f = SafetyFilter(LOW, HIGH, max_delta=0.1)
    for _ in range(20):
        f.filter([1.0, 1.0, 0.5])
    assert f.safe_command().tolist() == [0.0, 0.0, 0.0]
    assert f.filter([1.0, 1.0, 0.5]).tolist() == pytest.approx([0.1, 0.1, 0.1])


def test_whatever_comes_in_the_output_is_finite_and_in_limits():
    rng = np.random.default_rng(0)
    f = SafetyFilter(LOW, HIGH, max_delta=[0.3, 0.3, 0.3], hold_dims=[1])
    specials = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0])
    for _ in range(2000):
        a = rng.normal(0, 10, 3)
        if rng.random() < 0.3:
            a[rng.integers(3)] = rng.choice(specials)
        out = f.filter(a) if rng.random() < 0.9 else f.safe_command()
        assert f.within_limits(out), out


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="low <= high"):
        SafetyFilter([1.0], [0.0])
    with pytest.raises(ValueError, match="finite"):
        SafetyFilter([-np.inf], [0.0])
    with pytest.raises(ValueError, match="max_delta must be > 0"):
        SafetyFilter([0.0], [1.0], max_delta=[0.0])
    with pytest.raises(ValueError, match="hold_dims"):
        SafetyFilter([0.0], [1.0], hold_dims=[1])


def test_estop_latches_until_released_and_ignores_non_bools():
    e = EStop()
    assert e.on_message({"data": True}) and e.engaged
    assert not e.on_message({"data": "false"}) and e.engaged
    assert not e.on_message({"data": 0}) and e.engaged
    assert not e.on_message(None) and e.engaged
    assert e.on_message({"data": False}) and not e.engaged


def test_watchdog_names_missing_and_stale_inputs():
    now = [0.0]
    inputs = LatestInputs(["scene", "state"], clock=lambda: now[0])
    assert stale_inputs(inputs.ages(), 0.5) == ["scene", "state"]
    inputs.put("scene", 1)
    inputs.put("state", 2)
    now[0] = 0.4
    assert stale_inputs(inputs.ages(), 0.5) == []
    inputs.put("state", 3)
    now[0] = 0.6
    assert stale_inputs(inputs.ages(), 0.5) == ["scene"]


def test_exact_time_sync():
    inputs = LatestInputs(["a", "b"])
    inputs.put("a", 0, (1, 0))
    assert common_stamp(inputs.snapshot(["a", "b"])) is None
    inputs.put("b", 0, (1, 0))
    assert common_stamp(inputs.snapshot(["a", "b"])) == (1, 0)
    inputs.put("a", 0, (2, 0))
    assert common_stamp(inputs.snapshot(["a", "b"])) is None
