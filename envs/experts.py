"""Scripted experts for the tabletop tasks: privileged state machines over waypoints.

Each expert reads the true scene (``env.unwrapped.scene``) and the episode's target, and moves the
grasp point towards the current waypoint with a saturated proportional law; a phase ends when its
waypoint is reached. A waypoint is reached within its tolerance: a tight one where something happens
(GRASP for grasping, RELEASE over a bin, REACHED for pressing and placing), VIA for the points the
hand only passes (above an object, at carrying height). The loose via-point tolerance is for the policies cloned from these labels: a policy that
reaches its own estimate of a via-point (a centimetre or two off) and sees only the hand's position
cannot tell "still approaching" from "arrived", and with a sharp switch the labels there say "keep
going to the via-point", so the cloned policy stops at it for good (measured: every failed episode of
the demo's policy ended with the hand at rest on its own command). Within VIA of a via-point the
labels already name the next waypoint. ``act`` answers in the env's control mode: the velocity in ``velocity`` mode,
the waypoint itself ([x, y, z, gripper], which the env's controller follows with the same law) in
``waypoint`` mode; ``extras`` holds the other one, recorded beside the action
(envs/rollout.py). ``get_expert(env)`` also serves the Meta-World and Fetch adapters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from envs.scene import CUBE_HALF

HOVER = 0.08  # height above a grasp point to approach from (m)
CARRY = 0.12  # carrying height above the table (m)
REACHED = 0.006  # tolerance of a waypoint where something happens (m)
VIA = 0.03  # tolerance of a via-point: above the policy's pointing error (1-2 cm), below a cube's width
GRASP = 0.012  # grasp / release points: closing 1.2 cm off centre still holds a 4 cm cube
NEAR = 0.1  # a destination nearer than this (xy) to the grasp is reached over a straight lift
RELEASE = 0.025  # letting go over a bin: anywhere within 2.5 cm of its centre drops inside (4.2 cm)
DROP = 0.07  # the hand lets go this high over a bin: a held cube (bottom 5 cm) clears its walls (3.6)
STACK_DROP = 0.01  # a stacked cube is let go this far above where it rests on the other
STROKE = 0.03  # a drawer's stroke is led by a point this far ahead of the hand


class Waypoint(NamedTuple):
    """A goal for the grasp point (or a function giving it), the gripper command, how many steps to hold
    it once reached, and within what distance it counts as reached."""

    goal: Any
    close: bool
    hold: int = 0
    tol: float = REACHED


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
            if np.linalg.norm(err) > w.tol or self._hold < w.hold:
                if np.linalg.norm(err) <= w.tol:
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

    def _lift_if_near(self, grasp, destination):
        """Straight up to carrying height first, only where the destination is so near the grasp that
        the rising diagonal would knock the held object into it (the carry point lies over it)."""
        if np.linalg.norm(np.asarray(destination)[:2] - grasp[:2]) < NEAR:
            yield Waypoint(np.array([grasp[0], grasp[1], CARRY]), True, tol=VIA)

    def _pick(self, body):
        """Approach, grasp, close. No lift straight up after it (``_lift_if_near`` aside): the next
        waypoint (over the destination, at carrying height) raises the object on the way. "Above where the cube was" is
        a point the held cube rises through, and a policy that points at what it sees aimed at the
        cube in its hand and chased it about the table (the demo's pick-and-place: 0 of 20)."""
        p = self.scene.grasp_point(body)
        yield Waypoint(self._above(p), False, tol=VIA)
        yield Waypoint(p, False, tol=GRASP)
        yield Waypoint(p, True, 2)


class ReachExpert(TabletopExpert):
    def plan(self):
        body = self.target["object"]
        p = self.scene.grasp_point(body)
        yield Waypoint(self._above(p, 0.05), False, tol=VIA)
        yield Waypoint(lambda: self.scene.grasp_point(body), False, 5)


class PickPlaceExpert(TabletopExpert):
    def plan(self):
        yield from self._pick(self.target["object"])
        c = self.scene.body_pos(self.target["container"])
        yield from self._lift_if_near(self.scene.grasp_pos(), c)
        # Straight to the point where it lets go, no carrying height and descent over the bin: the
        # descent's label held for about 2 frames of a demonstration, and the demo's policy stopped at
        # carrying height over the bin, cube in hand, for the rest of the episode. Here the hand
        # arrives and opens: the turn of the gripper's label is the one thing to learn there.
        yield Waypoint(np.array([c[0], c[1], DROP]), True, tol=RELEASE)
        yield Waypoint(np.array([c[0], c[1], DROP]), False, 3)
        yield Waypoint(np.array([c[0], c[1], CARRY]), False, 20)


class StackExpert(TabletopExpert):
    def plan(self):
        yield from self._pick(self.target["top"])
        b = self.scene.body_pos(self.target["bottom"])
        yield from self._lift_if_near(self.scene.grasp_pos(), b)
        # Straight to just above the bottom cube, and let go (as PickPlaceExpert does over its bin).
        drop = np.array([b[0], b[1], b[2] + 2 * CUBE_HALF + STACK_DROP])
        yield Waypoint(drop, True, tol=GRASP)  # no wait before letting go: see DrawerExpert
        yield Waypoint(drop, False, 2)
        yield Waypoint(np.array([b[0], b[1], CARRY]), False, 20)


class DrawerExpert(TabletopExpert):
    def plan(self):
        h = self.scene.grasp_point("drawer")
        yield Waypoint(self._above(h, 0.05), False, tol=VIA)
        yield Waypoint(h, False, tol=GRASP)
        yield Waypoint(h, True, 2)
        goal_q = 0.14 if self.target["open"] else 0.0

        def ahead():
            # The stroke is led by a point STROKE ahead of the hand, not aimed at its end: the end is
            # bare table, as far off as the drawer still has to slide, which a policy would have to
            # read off the cabinet (the demo's drawer policy aimed at the handle instead: 0-4 of 20).
            # A fixed step from the hand it holds the handle with is one shift of what it sees.
            left = goal_q - self.scene.drawer_qpos()  # the drawer slides along -y as it opens
            return self.scene.grasp_pos() + np.array([0.0, -np.clip(left, -STROKE, STROKE), 0.0])

        # No wait at the end before letting go: the frames of a wait look the same as the frame that
        # lets go (the gripper still closed, the hand still), so a cloned policy would have to count.
        yield Waypoint(ahead, True, tol=GRASP)
        end = self.scene.grasp_pos()
        yield Waypoint(end, False, 2)
        yield Waypoint(end + np.array([0, 0, 0.06]), False, 20)


class ButtonExpert(TabletopExpert):
    def plan(self):
        cap = self.scene.body_pos(self.target["button"] + "_cap")
        top = cap[2] + 0.008
        # Closed fingers reach 0.015 m below the grasp point; press them 0.012 m into the cap.
        yield Waypoint(np.array([cap[0], cap[1], top + 0.06]), True, tol=VIA)
        yield Waypoint(np.array([cap[0], cap[1], top + 0.015 - 0.012]), True, 5)
        yield Waypoint(np.array([cap[0], cap[1], top + 0.06]), True, 20)


class PushExpert(TabletopExpert):
    """Pushes from behind the object along the line to the pad, re-approaching when it drifts off line."""

    BEHIND = CUBE_HALF + 0.012  # grasp point distance behind the cube centre, fingers closed
    LOW = 0.02
    APPROACH = 0.015  # within this of the point behind the cube (xy), descend to it: a via-point

    def act(self, obs=None) -> np.ndarray:
        s = self.scene
        obj = s.body_pos(self.target["object"])[:2]
        goal = s.body_pos(self.target["place"])[:2]
        to_goal = goal - obj
        dist = np.linalg.norm(to_goal)
        hand = s.grasp_pos()
        if dist < 0.015:  # there: back off upwards
            return self._action(np.array([0, 0, CARRY]) - np.r_[0, 0, hand[2]] * np.r_[0, 0, 1], True)
        d = to_goal / dist
        behind = obj - d * (self.BEHIND + 0.015)
        rel = hand[:2] - obj
        along = rel @ d  # negative: behind the object
        lateral = rel - along * d
        on_line = np.linalg.norm(lateral) < 0.012 and -self.BEHIND - 0.03 < along < -self.BEHIND + 0.012
        if hand[2] > self.LOW + 0.01 or not on_line:
            if not on_line and hand[2] < 0.06 and np.linalg.norm(hand[:2] - behind) > 0.01:
                # off the line while low: rise before moving sideways, so as not to sweep the cube
                return self._action(np.array([0, 0, 0.07 - hand[2]]), True)
            if np.linalg.norm(hand[:2] - behind) > self.APPROACH:
                return self._action(np.r_[behind - hand[:2], max(0.07, self.LOW) - hand[2]], True)
            return self._action(np.r_[behind - hand[:2], self.LOW - hand[2]], True)
        # On the line and low: push, steering back onto the line. The waypoint is where the hand ends
        # when the cube is on the pad (the hand moved by the cube's remaining way), not a step ahead of
        # the hand: a label a centimetre from the hand is one a cloned policy rounds to "stay".
        target = hand[:2] + to_goal - lateral * 0.5
        return self._action(np.r_[target - hand[:2], self.LOW - hand[2]], True)


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
