import numpy as np
import pytest

from agent.action_processing import ActionQueue, TemporalEnsembler, WaypointProgress, make_safe

LOW = np.array([-1.0, -1.0, -0.5], np.float32)
HIGH = np.array([1.0, 1.0, 0.5], np.float32)


def test_make_safe_replaces_non_finite_and_clips():
    action, n_bad = make_safe(np.array([np.nan, 5.0, -np.inf]), LOW, HIGH, fallback=np.zeros(3))
    assert n_bad == 2
    np.testing.assert_array_equal(action, [0.0, 1.0, 0.0])
    assert action.dtype == np.float32


@pytest.mark.parametrize("seed", range(5))
def test_make_safe_never_leaves_limits_on_adversarial_values(seed):
    rng = np.random.default_rng(seed)
    raw = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.3], size=3)
    action, _ = make_safe(raw, LOW, HIGH, fallback=np.zeros(3))
    assert np.isfinite(action).all()
    assert (action >= LOW).all() and (action <= HIGH).all()


def test_make_safe_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        make_safe(np.zeros(4), LOW, HIGH, np.zeros(3))


def test_action_queue_receding_horizon():
    q = ActionQueue(n_action_steps=2)
    q.push_chunk(np.arange(8, dtype=np.float32).reshape(4, 2))
    assert len(q) == 2
    np.testing.assert_array_equal(q.pop(), [0, 1])
    np.testing.assert_array_equal(q.pop(), [2, 3])
    with pytest.raises(RuntimeError, match="empty"):
        q.pop()


def test_temporal_ensembling_weights_oldest_first():
    ens = TemporalEnsembler(chunk_size=3, coeff=0.5)
    # step 0: only chunk A covers it
    a = ens.update(np.array([[0.0], [1.0], [2.0]]))
    assert a[0] == pytest.approx(0.0)
    # step 1: chunk A predicts 1.0 (oldest, weight 1), chunk B predicts 10.0 (weight e^-0.5)
    b = ens.update(np.array([[10.0], [11.0], [12.0]]))
    w = np.exp(-0.5)
    assert b[0] == pytest.approx((1.0 + 10.0 * w) / (1 + w))
    # step 2: A -> 2.0, B -> 11.0, C -> 20.0
    c = ens.update(np.array([[20.0], [21.0], [22.0]]))
    ws = np.exp(-0.5 * np.arange(3))
    assert c[0] == pytest.approx((ws * [2.0, 11.0, 20.0]).sum() / ws.sum())
    # step 3: A is used up; B -> 12.0, C -> 21.0, D -> 30.0
    d = ens.update(np.array([[30.0], [31.0], [32.0]]))
    assert d[0] == pytest.approx((ws * [12.0, 21.0, 30.0]).sum() / ws.sum())


def test_temporal_ensembling_constant_chunks_are_a_fixed_point():
    ens = TemporalEnsembler(chunk_size=4)
    for _ in range(10):
        out = ens.update(np.full((4, 2), 0.25))
    np.testing.assert_allclose(out, 0.25)


def test_waypoint_progress_counts_a_command_reached_where_the_demonstrator_would_move_on():
    progress = WaypointProgress(tolerance=0.006, gripper_steps=3)
    start = np.array([0.0, 0.0, 0.2, -1.0], np.float32)
    progress.reset(start)
    hover = np.array([0.1, 0.0, 0.12, -1.0], np.float32)
    progress.commanded(hover)
    np.testing.assert_array_equal(progress.observe([0.05, 0.0, 0.16]), start)  # on the way
    np.testing.assert_array_equal(progress.observe([0.097, 0.0, 0.121]), hover)  # within 6 mm
    # A grasp point inside the cube: the hand stops 1.5 cm above it, and that is as far as it goes.
    grasp = np.array([0.1, 0.0, 0.0, -1.0], np.float32)
    progress.commanded(grasp)
    np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.05]), hover)
    np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.015]), hover)  # still moving
    np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.0148]), grasp)  # stopped near it
    # Closing the gripper where the hand is: reached once commanded for gripper_steps steps.
    close = np.array([0.1, 0.0, 0.0, 1.0], np.float32)
    for _ in range(2):
        progress.commanded(close)
        np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.0148]), grasp)
    progress.commanded(close)
    np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.0148]), close)
    # A hand stopped far from its command (blocked) has not reached it.
    progress.commanded(np.array([0.3, 0.0, 0.0148, 1.0], np.float32))
    progress.observe([0.1, 0.0, 0.0148])
    np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.0148]), close)
    with pytest.raises(ValueError, match="reach tolerance and switch_radius must be > 0"):
        WaypointProgress(tolerance=0.0)
    with pytest.raises(ValueError, match="switch_radius must be > 0"):
        WaypointProgress(switch_radius=-0.03)


def test_waypoint_progress_counts_a_waypoint_the_policy_moved_on_from_near_it():
    # A demonstrator moves on within 3 cm of a via-point, so its clone does: the hand 2.5 cm under
    # the lift point when the next command (the carry point) comes. By position alone the lift was
    # never reached and the record stays on the grasp, a stage the policy has left.
    start = np.array([0.1, 0.0, 0.0148, 1.0], np.float32)  # the grasp, gripper closed
    lift = np.array([0.1, 0.0, 0.14, 1.0], np.float32)
    carry = np.array([-0.1, 0.1, 0.12, 1.0], np.float32)
    for radius, expected in [(None, start), (0.03, lift)]:
        progress = WaypointProgress(switch_radius=radius)
        progress.reset(start)
        progress.commanded(lift)
        progress.observe([0.1, 0.0, 0.115])
        progress.commanded(carry)
        np.testing.assert_array_equal(progress.observe([0.09, 0.01, 0.125]), expected)
    # A jump far from the hand (a misread, a re-plan) does not count the old command as reached.
    progress = WaypointProgress(switch_radius=0.03)
    progress.reset(start)
    progress.commanded(lift)
    progress.observe([0.1, 0.0, 0.06])
    progress.commanded(carry)
    np.testing.assert_array_equal(progress.observe([0.09, 0.01, 0.07]), start)
    # Nor does a command that stays put (jitter under a centimetre).
    progress.commanded(lift)
    progress.observe([0.1, 0.0, 0.125])
    progress.commanded(lift + np.array([0.004, 0.0, 0.0, 0.0], np.float32))
    np.testing.assert_array_equal(progress.observe([0.1, 0.0, 0.126]), start)
