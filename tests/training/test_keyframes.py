"""Keyframe waypoints (training/keyframes.py) against the waypoints our experts really followed."""

from __future__ import annotations

import numpy as np
import pytest

from envs.experts import RELEASE, get_expert
from envs.rollout import record_episode
from envs.tabletop import TabletopEnv
from training.episodes import DatasetError, EpisodeData
from training.keyframes import find_keyframes, keyframe_waypoints, select_action_labels, with_previous_action


def test_keyframes_at_gripper_changes_pauses_and_the_end():
    pos = np.zeros((10, 3))
    pos[:, 0] = np.minimum(np.arange(10), 3) * 0.01  # moving, then still from frame 3 on
    grip = np.array([-1, -1, -1, -1, -1, 1, 1, 1, 1, 1.0])
    keys = find_keyframes(pos, grip)
    assert 5 in keys and 9 in keys  # the frame the gripper closes at; the last frame
    assert 4 not in keys  # not the frame before: a hand closing on the move is a step further on
    assert 3 in keys  # the pause starts at frame 3
    pos[:, 0] = np.arange(10) * 0.01  # never still: the close at frame 5 is the only keyframe before the end
    labels = keyframe_waypoints(pos, grip)
    np.testing.assert_allclose(labels[:5, 0], 0.05)  # the frames before aim where the gripper acts
    np.testing.assert_array_equal(labels[:, 3], grip)
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        find_keyframes(pos[:, :2], grip)


@pytest.mark.parametrize("task, within", [("reach", 0.015), ("pick_place", RELEASE)])
def test_keyframe_waypoints_find_the_experts_targets(task, within):
    """Most frames' keyframe label lies over the waypoint the expert was heading for (within 1.5 cm in
    the table plane; heights differ where a waypoint was passed through without a pause). Over a bin
    the expert lets go on the move, anywhere within RELEASE of its target: the keyframe is where it
    let go, so it is that near."""
    env = TabletopEnv(task, image_size=16, cameras=("scene",))
    close = []
    for seed in range(3):
        ep = record_episode(env, get_expert(env), seed=seed, annotate=False)
        labels = keyframe_waypoints(ep.state[:, :3], ep.action[:, 3])
        truth = ep.extras["waypoint"]
        close.append(np.linalg.norm(labels[:, :2] - truth[:, :2], axis=1) < within)
        np.testing.assert_array_equal(labels[:, 3], truth[:, 3])
    env.close()
    assert np.mean(np.concatenate(close)) > 0.7


def test_select_action_labels_names_a_missing_waypoint_feature():
    ep = EpisodeData("x", 0, {"scene": np.zeros((2, 8, 8, 3), np.uint8)}, np.zeros((2, 3), np.float32),
                     np.zeros((2, 4), np.float32))  # fmt: skip
    with pytest.raises(DatasetError, match="keyframes"):
        select_action_labels([ep], "waypoint")
    assert select_action_labels([ep], "keyframes")[0].action.shape == (2, 4)


def test_previous_action_is_the_last_waypoint_reached_with_the_hand_before_the_first():
    # Three waypoints: above the cube, down to it (open), close there; a demonstrator's command
    # wobbles by millimetres within one and jumps (or changes the gripper) between them.
    above, down = np.r_[0.1, 0.0, 0.12, -1.0], np.r_[0.1, 0.0, 0.02, -1.0]
    close = np.r_[0.1, 0.0, 0.02, 1.0]
    action = np.array([above, above + 0.001, down, down, close, close], np.float32)
    t = len(action)
    state = np.arange(t * 4, dtype=np.float32).reshape(t, 4)  # grasp position in dims 0..2
    ep = EpisodeData(source="test", index=0, images={"scene": np.zeros((t, 8, 8, 3), np.uint8)},
                     state=state, action=action, instruction="reach")  # fmt: skip
    (out,) = with_previous_action([ep])
    assert out.state.shape == (t, 8)
    np.testing.assert_array_equal(out.state[:, :4], state)  # the dataset's own features first
    start = np.r_[state[0, :3], -1.0]
    want = [start, start, action[1], action[1], down, down]  # the last command before each jump
    np.testing.assert_allclose(out.state[:, 4:], np.array(want, np.float32))
    short = EpisodeData(source="test", index=1, images={"scene": np.zeros((t, 8, 8, 3), np.uint8)},
                        state=state[:, :2], action=action, instruction="reach")  # fmt: skip
    with pytest.raises(DatasetError, match="previous_action needs the grasp position"):
        with_previous_action([short])


def test_previous_action_depth_two_tells_a_fresh_grasp_from_an_arrival_with_it():
    # Grasp a cube, carry it over the bin, let go. Just after the grasp and just before letting go,
    # the last waypoint reached is where the hand is, gripper closed, on both: only the one before
    # it tells them apart (open at the cube, closed at the cube).
    cube_open, cube_closed = np.r_[0.1, 0.0, 0.02, -1.0], np.r_[0.1, 0.0, 0.02, 1.0]
    bin_closed, bin_open = np.r_[-0.1, 0.1, 0.09, 1.0], np.r_[-0.1, 0.1, 0.09, -1.0]
    action = np.array([cube_open, cube_closed, bin_closed, bin_closed, bin_open], np.float32)
    t = len(action)
    state = np.zeros((t, 3), np.float32)
    ep = EpisodeData(source="test", index=0, images={"scene": np.zeros((t, 8, 8, 3), np.uint8)},
                     state=state, action=action, instruction="put the cube in the bin")  # fmt: skip
    (out,) = with_previous_action([ep], depth=2)
    assert out.state.shape == (t, 3 + 8)
    start = np.r_[0.0, 0.0, 0.0, -1.0]
    want = [
        [start, start],
        [cube_open, start],
        [cube_closed, cube_open],  # just grasped: move
        [cube_closed, cube_open],
        [bin_closed, cube_closed],  # arrived with it: let go
    ]
    np.testing.assert_allclose(out.state[:, 3:], np.array(want, np.float32).reshape(t, 8))
    (one,) = with_previous_action([ep])
    np.testing.assert_allclose(one.state[:, 3:], out.state[:, 3:7])  # depth 1: the latest alone
    with pytest.raises(ValueError, match="depth must be >= 1"):
        with_previous_action([ep], depth=0)
