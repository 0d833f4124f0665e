"""Scripted experts for the tabletop tasks: privileged state machines over waypoints.

Each expert reads the true scene (``env.unwrapped.scene``) and the episode's target, and moves the
grasp point towards the current waypoint with a saturated proportional law; a phase ends when its
waypoint is reached, within REACHED, and held for its ``hold`` steps. One tolerance for every
waypoint, the one a cloned policy's executor uses (agent/action_processing.py WaypointProgress):
a ``previous_action`` policy is told which waypoint it reached last, and training marks a waypoint
reached where the expert moves on. Where the two disagree the policy sees states no demonstration
had: with via-points passed 3 cm early, a policy that went all the way to the lift point still
"had not left the grasp" and wandered off (measured: pick-and-place and stack 0%; the executor's
record agreed with the labels' on 39-69% of the expert's own frames, 90-100% now).
``act`` answers in the env's control mode: the velocity in ``velocity`` mode, the waypoint itself
([x, y, z, gripper], which the env's controller follows with the same law) in ``waypoint`` mode;
``extras`` holds the other one, recorded beside the action (envs/rollout.py). ``get_expert(env)``
also serves the Meta-World and Fetch adapters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from envs.scene import CUBE_HALF

HOVER = 0.08  # height above a grasp point to approach from (m)
CARRY = 0.12  # carrying height above the table (m)
REACHED = 0.006  # a waypoint is reached within this (m): PolicyConfig.reach_tolerance's default


class Waypoint(NamedTuple):
    """A goal for the grasp point (or a function giving it), the gripper command, and how many steps to
    hold it once reached."""

    goal: Any
    close: bool
    hold: int = 0


class TabletopExpert:
    """Waypoint follower: ``plan`` yields ``Waypoint``s."""

    def __init__(self, env):
        self.env = env
        self.reset()

    def reset(self) -> None:
        self._plan = None
        self._hold = 0
        self.velocity = self.waypoint = None

    @property
    def extras(self) -> dict[str, np.ndarray]:
        """The label of the other control mode for the last ``act``: recorded beside the action."""
        if getattr(self.env.unwrapped, "control", "velocity") == "waypoint":
            return {"velocity": self.velocity}
        return {"waypoint": self.waypoint}

    @property
    def scene(self):
        return self.env.unwrapped.scene

    @property
    def target(self) -> dict:
        return self.env.unwrapped.episode.target

    def act(self, obs=None) -> np.ndarray:
        if self._plan is None:
            self._plan = self.plan()
            self._waypoint = next(self._plan, None)
        while self._waypoint is not None:
            w = self._waypoint
            goal = w.goal() if callable(w.goal) else w.goal
            err = goal - self.scene.grasp_pos()
            if np.linalg.norm(err) > REACHED or self._hold < w.hold:
                if np.linalg.norm(err) <= REACHED:
                    self._hold += 1
                return self._action(err, w.close)
            self._hold = 0
            self._waypoint = next(self._plan, None)
        return self._action(np.zeros(3), self.scene.gripper_closed)

    def _action(self, err: np.ndarray, close: bool) -> np.ndarray:
        grip = 1.0 if close else -1.0
        move = np.clip(err / self.scene.max_delta, -1.0, 1.0)
        self.velocity = np.r_[move, grip].astype(np.float32)
        self.waypoint = np.r_[self.scene.grasp_pos() + err, grip].astype(np.float32)
        if getattr(self.env.unwrapped, "control", "velocity") == "waypoint":
            return self.waypoint
        return self.velocity

    def plan(self):
        raise NotImplementedError

    # Waypoint helpers ------------------------------------------------------
    def _above(self, xyz, height=HOVER):
        return np.array([xyz[0], xyz[1], max(xyz[2] + height, CARRY)])

    def _pick(self, body):
        p = self.scene.grasp_point(body)
        yield Waypoint(self._above(p), False)
        yield Waypoint(p, False)
        yield Waypoint(p, True, 2)
        yield Waypoint(self._above(p, CARRY), True)


class ReachExpert(TabletopExpert):
    def plan(self):
        body = self.target["object"]
        p = self.scene.grasp_point(body)
        yield Waypoint(self._above(p, 0.05), False)
        yield Waypoint(lambda: self.scene.grasp_point(body), False, 5)


class PickPlaceExpert(TabletopExpert):
    def plan(self):
        yield from self._pick(self.target["object"])
        c = self.scene.body_pos(self.target["container"])
        yield Waypoint(np.array([c[0], c[1], CARRY]), True)
        yield Waypoint(np.array([c[0], c[1], 0.07]), True)
        yield Waypoint(np.array([c[0], c[1], 0.07]), False, 3)
        yield Waypoint(np.array([c[0], c[1], CARRY]), False, 20)


class StackExpert(TabletopExpert):
    def plan(self):
        yield from self._pick(self.target["top"])
        b = self.scene.body_pos(self.target["bottom"])
        place = np.array([b[0], b[1], b[2] + 2 * CUBE_HALF + 0.004])
        yield Waypoint(np.array([b[0], b[1], CARRY]), True)
        yield Waypoint(place, True)  # no wait before letting go: see DrawerExpert
        yield Waypoint(place, False, 2)
        yield Waypoint(np.array([b[0], b[1], CARRY]), False, 20)


class DrawerExpert(TabletopExpert):
    STROKE = 0.03  # m: the longest move of the handle between two waypoints

    def plan(self):
        h = self.scene.grasp_point("drawer")
        yield Waypoint(self._above(h, 0.05), False)
        yield Waypoint(h, False)
        yield Waypoint(h, True, 2)
        goal_q = 0.14 if self.target["open"] else 0.0
        shift = goal_q - self.scene.drawer_qpos()  # the drawer slides along -y as it opens
        # The stroke in steps of at most STROKE: a policy writes each waypoint as a point in the
        # camera image, and its pointer finds a point a few pixels from what it looks at (the handle
        # in the hand) far sooner than one 5-9 cm of featureless drawer away, which way depending on
        # one word (measured: the demo's policy pulled a drawer it was told to close about half the
        # time, with text and speech alike).
        n = max(1, int(np.ceil(abs(shift) / self.STROKE)))
        for k in range(1, n + 1):
            end = h + np.array([0.0, -shift * k / n, 0.0])
            # No wait at the end before letting go: the frames of a wait look the same as the frame
            # that lets go (the gripper closed, the hand still), so a cloned policy would have to count.
            yield Waypoint(end, True)
        yield Waypoint(end, False, 2)
        yield Waypoint(end + np.array([0, 0, 0.06]), False, 20)


class ButtonExpert(TabletopExpert):
    def plan(self):
        cap = self.scene.body_pos(self.target["button"] + "_cap")
        top = cap[2] + 0.008
        # Closed fingers reach 0.015 m below the grasp point; press them 0.012 m into the cap.
        yield Waypoint(np.array([cap[0], cap[1], top + 0.06]), True)
        yield Waypoint(np.array([cap[0], cap[1], top + 0.015 - 0.012]), True, 5)
        yield Waypoint(np.array([cap[0], cap[1], top + 0.06]), True, 20)


class PushExpert(TabletopExpert):
    """Pushes from behind the object along the line to the pad: above the point behind it, down to
    it, on to where the hand is when the cube is on the pad, and up; if the cube is not there yet
    (it slid off the line), again from where it lies. Waypoints, not a re-aim every step: a policy
    is told which one it reached (training/keyframes.py), and a target that moves with the hand
    has no "reached" (the reactive push agreed with the policy's record on 41% of frames)."""

    BEHIND = CUBE_HALF + 0.012  # grasp point distance behind the cube centre in contact, fingers closed
    GAP = 0.015  # where the push starts: this much further back
    LOW = 0.02
    DONE = 0.015  # cube centre within this of the pad's: no more pushes

    def plan(self):
        s = self.scene
        while True:
            obj = s.body_pos(self.target["object"])[:2]
            goal = s.body_pos(self.target["place"])[:2]
            dist = float(np.linalg.norm(goal - obj))
            if dist < self.DONE:
                break
            d = (goal - obj) / dist
            start = obj - d * (self.BEHIND + self.GAP)
            end = goal - d * self.BEHIND  # the hand here puts the cube's centre on the pad's
            yield Waypoint(np.r_[start, 0.07], True)
            yield Waypoint(np.r_[start, self.LOW], True)
            yield Waypoint(np.r_[end, self.LOW], True)
            yield Waypoint(np.r_[end, 0.07], True)  # up before any new approach: not to sweep the cube
        hand = s.grasp_pos()
        yield Waypoint(np.r_[hand[:2], CARRY], True, 20)


EXPERTS = {
    "reach": ReachExpert,
    "push": PushExpert,
    "pick_place": PickPlaceExpert,
    "stack": StackExpert,
    "drawer": DrawerExpert,
    "button": ButtonExpert,
}


class _PerEpisode:
    """Dispatches to the expert of the task drawn this episode (for ``uio2/Tabletop-v0``)."""

    def __init__(self, env):
        self.env = env
        self._expert = None
        self._episode = None

    def reset(self) -> None:
        self._expert = None

    @property
    def extras(self) -> dict[str, np.ndarray]:
        return self._expert.extras if self._expert is not None else {}

    def act(self, obs=None) -> np.ndarray:
        u = self.env.unwrapped
        if self._expert is None or self._episode is not u.episode:
            self._expert = EXPERTS[u.task.name](self.env)
            self._episode = u.episode
        return self._expert.act(obs)


def get_expert(env):
    """The scripted expert for ``env`` (our suite, a Meta-World or a Fetch adapter): ``reset()``, ``act(obs)``."""
    u = env.unwrapped
    from envs.tabletop import TabletopEnv

    if isinstance(u, TabletopEnv):
        return _PerEpisode(env)
    if hasattr(u, "expert"):
        return u.expert()
    raise ValueError(
        f"no scripted expert for {type(u).__name__}; expected a uio2 tabletop, Meta-World or Fetch env"
    )
