"""Waypoint labels for datasets that carry only low-level actions: keyframes found in the trajectory.

A demonstration is a sequence of moves between a few poses that matter: where the gripper closed
or opened, and where the arm paused. Each frame's waypoint label is the end-effector position at
the next such keyframe plus the gripper command held until then (the keyframe idea of C2F-ARM /
PerAct, found here from the trajectory alone). Our suite's experts record their true waypoints
(``waypoint`` beside the velocity action); this is for everyone else's data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from model.example import WAYPOINT_JUMP, new_waypoint, previous_command
from training.episodes import DatasetError


def find_keyframes(
    position: np.ndarray, gripper: np.ndarray, pause_speed: float = 1e-3, min_pause: int = 2
) -> list[int]:
    """Sorted frame indices: the first frame of each new gripper command, each pause's first frame,
    and the last frame. ``position`` (T, 3) metres; ``gripper`` (T,) commands (> 0 closed);
    ``pause_speed``: metres per frame below which the arm counts as still for ``min_pause`` frames."""
    position, gripper = np.asarray(position, np.float64), np.asarray(gripper, np.float64)
    t = len(position)
    if position.ndim != 2 or position.shape[1] != 3 or gripper.shape != (t,) or t == 0:
        raise ValueError(
            f"find_keyframes needs (T, 3) positions and (T,) gripper commands, got {position.shape} and "
            f"{gripper.shape}"
        )
    closed = gripper > 0
    keys = {t - 1}
    # Where the gripper acts: the first frame of the new command, not the frame before it. A hand
    # that lets go on the move (our experts over a bin) is a step, up to 1.5 cm, further on there,
    # and the frames before the change aim at where it happens, not past it.
    keys.update(int(i) + 1 for i in np.nonzero(closed[1:] != closed[:-1])[0])
    speed = np.r_[np.linalg.norm(np.diff(position, axis=0), axis=1), np.inf]
    still = speed < pause_speed
    run = 0
    for i in range(t):
        run = run + 1 if still[i] else 0
        if run == min_pause:
            keys.add(i - min_pause + 1)
    return sorted(keys)


def keyframe_waypoints(position: np.ndarray, gripper: np.ndarray, **kwargs) -> np.ndarray:
    """(T, 4) float32 waypoint labels [x, y, z, gripper]: the position at the next keyframe after
    each frame (the last frame aims at itself), with the gripper command given at that frame."""
    position, gripper = np.asarray(position, np.float64), np.asarray(gripper, np.float64)
    keys = np.asarray(find_keyframes(position, gripper, **kwargs))
    t = len(position)
    # The next keyframe strictly after frame i (a frame on a keyframe aims at the following one,
    # except at the end): where the arm is going, not where it is.
    nxt = keys[np.minimum(np.searchsorted(keys, np.arange(t), side="right"), len(keys) - 1)]
    grip = np.where(gripper > 0, 1.0, -1.0)
    return np.c_[position[nxt], grip].astype(np.float32)


def select_action_labels(episodes: list, labels: str, position_dims=(0, 1, 2)) -> list:
    """Episodes whose ``action`` holds the labels to train on (``data.action_labels``):
    ``"action"`` as recorded; ``"waypoint"`` the recorded ``waypoint`` feature (our experts record it
    beside velocity actions); ``"keyframes"`` waypoints found in the trajectory (state ``position_dims``
    and the action's last dimension as the gripper)."""
    if labels == "action":
        return episodes
    out = []
    for ep in episodes:
        if labels == "waypoint":
            if "waypoint" not in ep.extras:
                raise DatasetError(
                    f"{ep.where('waypoint')}: data.action_labels=waypoint needs a recorded 'waypoint' feature "
                    f"(have {sorted(ep.extras)}); use action_labels=keyframes to find waypoints in the trajectory"
                )
            action = ep.extras["waypoint"]
        elif labels == "keyframes":
            action = keyframe_waypoints(ep.state[:, list(position_dims)], ep.action[:, -1])
        else:
            raise ValueError(
                f"data.action_labels must be 'action', 'waypoint' or 'keyframes', got {labels!r}"
            )
        out.append(dataclasses.replace(ep, action=np.asarray(action, np.float32)))
    return out


def previous_waypoints(
    action: np.ndarray, first: np.ndarray, jump: float = WAYPOINT_JUMP, depth: int = 1
) -> np.ndarray:
    """(T, depth * D) float32: for each frame, the ``depth`` waypoints reached before the one it is
    labelled with, the latest first.

    ``action`` (T, D) holds waypoint commands [x, y, z, gripper, ...], one per frame; a new waypoint
    starts where the command jumps by more than ``jump`` metres or the gripper command changes sign
    (a demonstrator moves on when it has got to a waypoint). Slots before the first waypoint hold
    ``first`` (the hand where it started, gripper open: ``previous_command``)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    action = np.asarray(action, np.float32)
    out = np.empty((len(action), depth * action.shape[-1]), np.float32)
    reached = [np.asarray(first, np.float32)] * depth  # the latest first
    for t in range(len(action)):
        if t > 0 and new_waypoint(action[t - 1], action[t], jump):
            reached = [action[t - 1], *reached[:-1]]
        out[t] = np.concatenate(reached)
    return out


def with_previous_action(episodes: list, position_dims=(0, 1, 2), depth: int = 1) -> list:
    """Episodes whose state ends with the last ``depth`` waypoints reached, the latest first
    (``data.previous_action``, ``data.previous_action_depth``; ``previous_waypoints``; before the
    first, ``previous_command``): S state features become S + depth * D.

    With it a waypoint policy knows which stage of the task it is at: the label is then a function
    of the scene and that waypoint ("above the red cube, open" -> "down to it"). Without it, every
    failed episode of the demo's policy ended with the hand at rest on the policy's own command: at
    a point it had aimed for, the frame looks like the many on the way there, whose label is that
    point. The command of the step before is no cure: on the way to a waypoint it is that waypoint,
    so it tells the policy where it is going, and only on the single frame where the hand arrives
    does the label differ from it (measured: 18% success; the rest still at their own command).
    The policy keeps the same record of its own commands (``Policy``: a command counts as reached
    when the hand gets within ``reach_tolerance`` of it or stops near it, a gripper change once it
    has been held for ``gripper_steps``).

    The last waypoint alone leaves two stages alike: just after a grasp and just before letting go,
    the hand is at the last waypoint reached with the gripper closed (the drawer's handle grasped /
    pulled to its end, a cube grasped / carried over its bin), so only the picture can tell "move"
    from "let go". The one before it tells (its gripper open, or closed): ``depth`` 2."""
    out = []
    for ep in episodes:
        if ep.state.shape[-1] <= max(position_dims) or ep.action.shape[-1] < 3:
            raise DatasetError(
                f"{ep.where('state')}: data.previous_action needs the grasp position in state "
                f"{list(position_dims)} and a waypoint in action[:3]; have {ep.state.shape[-1]} state and "
                f"{ep.action.shape[-1]} action features"
            )
        first = previous_command(ep.state[0], ep.action.shape[-1], position_dims)
        prev = previous_waypoints(ep.action, first, depth=depth)
        out.append(dataclasses.replace(ep, state=np.concatenate([ep.state, prev], -1).astype(np.float32)))
    return out
