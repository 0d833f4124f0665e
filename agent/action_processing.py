"""From predicted action chunks to the command executed at each step.

Two ways to execute a (K, D) chunk, both from the ACT/Octo line of work:

- receding horizon: run the first ``n_action_steps`` actions of a chunk, then re-plan;
- temporal ensembling (ACT): re-plan every step and average every chunk that covers
  the current step with weights ``exp(-m * i)``, ``i = 0`` for the oldest prediction.

Whatever the model produced, :func:`make_safe` is the last word: the command is
finite and inside ``[low, high]``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from model.example import MAX_PREVIOUS_WAYPOINTS, new_waypoint


def make_safe(
    action: np.ndarray, low: np.ndarray, high: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, int]:
    """Replace non-finite entries with ``fallback`` and clip into ``[low, high]``.

    Returns the safe action (float32) and how many entries had to be replaced.
    """
    action = np.asarray(action, dtype=np.float64)
    if action.shape != low.shape:
        raise ValueError(f"action must have shape {low.shape}, got {action.shape}")
    bad = ~np.isfinite(action)
    action = np.where(bad, fallback, action)
    return np.clip(action, low, high).astype(np.float32), int(bad.sum())


class ActionQueue:
    """Receding-horizon execution: pop actions of the current chunk, ask for a new one when empty."""

    def __init__(self, n_action_steps: int):
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def push_chunk(self, chunk: np.ndarray) -> None:
        if chunk.ndim != 2:
            raise ValueError(f"chunk must be (K, D), got shape {chunk.shape}")
        self._queue.clear()
        self._queue.extend(chunk[: self.n_action_steps])

    def pop(self) -> np.ndarray:
        if not self._queue:
            raise RuntimeError("action queue is empty: push a chunk first")
        return self._queue.popleft()


class TemporalEnsembler:
    """ACT temporal ensembling over the chunks predicted at every step."""

    def __init__(self, chunk_size: int, coeff: float = 0.01):
        self.chunk_size = chunk_size
        self.coeff = coeff
        self.reset()

    def reset(self) -> None:
        # chunks[i] predicted i steps ago (newest last); each keeps the actions still ahead.
        self._chunks: deque[np.ndarray] = deque(maxlen=self.chunk_size)

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk predicted now and return the ensembled action for the current step."""
        if chunk.shape[0] != self.chunk_size:
            raise ValueError(f"chunk must have {self.chunk_size} steps, got {chunk.shape[0]}")
        self._chunks.append(np.asarray(chunk, dtype=np.float64))
        # Oldest first: weights exp(-m * i) give the oldest prediction the most weight, as ACT does.
        actions = np.stack([c[0] for c in self._chunks])
        weights = np.exp(-self.coeff * np.arange(len(actions)))
        action = (weights[:, None] * actions).sum(0) / weights.sum()
        # Advance every stored chunk by one step; drop those that are used up.
        self._chunks = deque((c[1:] for c in self._chunks if len(c) > 1), maxlen=self.chunk_size)
        return action.astype(np.float32)


class WaypointProgress:
    """The last waypoint a waypoint-controlled robot has reached: what a ``previous_action`` policy
    reads beside its state (training's ``previous_waypoints`` marks the same thing in a demonstration,
    where the demonstrator moving on says a waypoint was reached).

    A command counts as reached once the hand is within ``tolerance`` of it, or has stopped (moved
    under ``STILL`` in a step) within ``STALL_RADIUS`` of it: a grasp point a little inside the cube
    or a press into a button is as far as the hand will go. A gripper change counts once it has
    been commanded for ``gripper_steps`` steps (the fingers take that long to close or open).

    With ``switch_radius``, a command also counts as reached when the next one starts a new waypoint
    (``new_waypoint``) while the hand is within ``switch_radius`` of it: the policy moving on, as a
    demonstrator moving on marks a waypoint in training. A demonstrator moves on within its
    tolerance of a waypoint (up to 3 cm for the experts' via-points), and a policy cloned from it
    does the same; by hand position alone such a waypoint was never reached, so the record stayed
    on the waypoint before, a stage the policy had left (a pick-and-place policy lifted the cube and
    wandered with it). The radius keeps a jump far from the hand from counting."""

    STILL = 0.001  # m a step
    STALL_RADIUS = 0.03  # m
    DEPTH = MAX_PREVIOUS_WAYPOINTS  # waypoints reached it remembers

    def __init__(self, tolerance: float = 0.006, gripper_steps: int = 3, switch_radius: float | None = None):
        if tolerance <= 0 or gripper_steps < 1 or (switch_radius is not None and switch_radius <= 0):
            raise ValueError(
                f"reach tolerance and switch_radius must be > 0 and gripper_steps >= 1, got {tolerance}, "
                f"{switch_radius} and {gripper_steps}"
            )
        self.tolerance = tolerance
        self.gripper_steps = gripper_steps
        self.switch_radius = switch_radius
        self.reset()

    def reset(self, start: np.ndarray | None = None) -> None:
        """A new episode; ``start`` is what counts as reached before the first command."""
        self.reached: np.ndarray | None = None
        self.earlier: list[np.ndarray] = []  # waypoints reached before ``reached``, the latest first
        if start is not None:
            self.reach(start)
        self.command: np.ndarray | None = None
        self.held = 0  # steps the command's gripper sign has been given in a row
        self.hand: np.ndarray | None = None

    def reach(self, waypoint: np.ndarray) -> None:
        """``waypoint`` counts as reached; the one it replaces moves to ``earlier`` if it is another
        waypoint (``new_waypoint``: a command refined within a centimetre is the same one)."""
        waypoint = np.asarray(waypoint, np.float32).copy()
        if self.reached is not None and new_waypoint(self.reached, waypoint):
            self.earlier = [self.reached, *self.earlier[: self.DEPTH - 1]]
        self.reached = waypoint

    def last(self, depth: int) -> np.ndarray:
        """The last ``depth`` waypoints reached, the latest first, concatenated (training's
        ``previous_waypoints``): slots before the first hold the first (the start)."""
        if self.reached is None:
            raise RuntimeError("no waypoint reached yet: reset(start) or reach() first")
        if not 1 <= depth <= self.DEPTH:
            raise ValueError(f"depth must be in [1, {self.DEPTH}], got {depth}")
        slots = [self.reached, *self.earlier]
        slots += [slots[-1]] * (depth - len(slots))  # fewer reached than slots: the start fills them
        return np.concatenate(slots[:depth])

    def observe(self, hand: np.ndarray) -> np.ndarray | None:
        """The hand's position after the last command; returns the last waypoint reached."""
        hand = np.asarray(hand, np.float64)
        if self.command is not None and self.reached is not None:
            cmd = self.command
            dist = float(np.linalg.norm(hand - cmd[:3]))
            still = self.hand is not None and float(np.linalg.norm(hand - self.hand)) < self.STILL
            gripper_done = (
                len(cmd) < 4 or (cmd[3] > 0) == (self.reached[3] > 0) or self.held >= self.gripper_steps
            )
            if gripper_done and (dist <= self.tolerance or (still and dist <= self.STALL_RADIUS)):
                self.reach(cmd)
        self.hand = hand
        return self.reached

    def commanded(self, action: np.ndarray) -> None:
        """The robot was given ``action`` (x, y, z, gripper, ...) this step."""
        action = np.asarray(action, np.float32)
        if (
            self.switch_radius is not None
            and self.command is not None
            and self.hand is not None
            and new_waypoint(self.command, action)
            and float(np.linalg.norm(self.hand - self.command[:3])) <= self.switch_radius
        ):
            self.reach(self.command)
        same_grip = self.command is not None and len(action) > 3 and (action[3] > 0) == (self.command[3] > 0)
        self.held = self.held + 1 if same_grip else 1
        self.command = action.copy()
