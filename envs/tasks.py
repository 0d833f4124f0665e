"""The tabletop tasks: what each one puts on the table, what it asks, and when it is done.

A task's ``sample`` draws an episode (which items are on the table, where, in which colours, which one
is the target) from the environment's seeded generator; ``success`` is its predicate on the scene.
Targets are drawn per episode among distractors of the same kind, so only the instruction tells which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.instructions import instruction
from envs.scene import (
    BALL_RADIUS,
    BIN_INNER_HALF,
    BUTTON_PRESSED,
    BUTTONS,
    COLOURS,
    CUBE_HALF,
    DRAWER_RANGE,
    OBJECTS,
    Scene,
)

CUBES = [b for b, s in OBJECTS.items() if s == "cube"]
RADIUS = {"object": 0.03, "bin": 0.08, "pad": 0.055, "button": 0.035}
TABLE_REGION = (np.array([-0.22, -0.16]), np.array([0.22, 0.12]))


@dataclass
class Episode:
    """What a task drew for one episode."""

    layout: dict[str, np.ndarray]  # body -> xy on the table (absent bodies are parked)
    colours: dict[str, str]
    yaws: dict[str, float]
    instruction: str
    target: dict[str, Any] = field(default_factory=dict)  # task-specific: target bodies, goal
    drawer_qpos: float = 0.0


def _kind(body: str) -> str:
    return "object" if body in OBJECTS else body.rstrip("0123456789")


def sample_layout(rng: np.random.Generator, bodies: list[str], region=TABLE_REGION, fixed=None, tries=200):
    """Non-overlapping xy positions for ``bodies`` inside ``region`` (rejection sampling)."""
    fixed = dict(fixed or {})
    for _ in range(tries):
        placed = dict(fixed)
        ok = True
        for body in bodies:
            for _ in range(50):
                xy = rng.uniform(region[0], region[1])
                if all(
                    np.linalg.norm(xy - p) > RADIUS.get(_kind(body), 0.04) + RADIUS.get(_kind(o), 0.04) + 0.02
                    for o, p in placed.items()
                ):
                    placed[body] = xy
                    break
            else:
                ok = False
                break
        if ok:
            return {b: placed[b] for b in bodies}
    raise RuntimeError(f"could not place {bodies} without overlap after {tries} tries")


def _colours(rng: np.random.Generator, bodies: list[str]) -> dict[str, str]:
    names = list(COLOURS)
    picks = rng.choice(len(names), size=len(bodies), replace=False)
    return {b: names[i] for b, i in zip(bodies, picks)}


def _yaws(rng: np.random.Generator, bodies: list[str]) -> dict[str, float]:
    # Cubes within +-30 degrees fit between the open fingers whatever their yaw.
    return {b: float(rng.uniform(-0.5, 0.5)) for b in bodies if OBJECTS.get(b) == "cube"}


def _name(colours: dict[str, str], body: str) -> str:
    return f"{colours[body]} {OBJECTS.get(body, _kind(body))}"


class Task:
    name: str = ""
    max_episode_steps: int = 150

    def sample(self, rng: np.random.Generator) -> Episode:
        raise NotImplementedError

    def success(self, scene: Scene, target: dict[str, Any]) -> bool:
        raise NotImplementedError

    def stage(self, scene: Scene, episode: Episode) -> str:
        """Where the episode stands, in a few words (``info["stage"]``): an eval report counts how its
        failed episodes ended, the first thing to know about a policy that fails."""
        return "done" if self.success(scene, episode.target) else "not done"


class Reach(Task):
    name = "reach"
    max_episode_steps = 80

    def sample(self, rng):
        bodies = list(rng.choice(list(OBJECTS), size=4, replace=False))
        colours = _colours(rng, bodies)
        target = bodies[rng.integers(len(bodies))]
        text = instruction("reach", rng, obj=_name(colours, target))
        return Episode(sample_layout(rng, bodies), colours, _yaws(rng, bodies), text, {"object": target})

    def success(self, scene, target):
        return bool(np.linalg.norm(scene.grasp_pos() - scene.body_pos(target["object"])) < 0.03)

    def stage(self, scene, episode):
        if self.success(scene, episode.target):
            return "done"
        d = np.linalg.norm(scene.grasp_pos() - scene.body_pos(episode.target["object"]))
        return "hand within 6 cm" if d < 0.06 else "hand far"


class Push(Task):
    name = "push"
    max_episode_steps = 150

    def sample(self, rng):
        pads = ["pad0", "pad1"]
        for _ in range(100):
            layout = sample_layout(rng, pads + CUBES)
            obj = CUBES[rng.integers(3)]
            pad = pads[rng.integers(2)]
            start, goal = layout[obj], layout[pad]
            if not 0.1 < np.linalg.norm(goal - start) < 0.28:
                continue
            # Keep the pushing lane clear: no other cube near the segment from behind the object to the pad.
            d = (goal - start) / np.linalg.norm(goal - start)
            a = start - 0.07 * d
            if all(_segment_distance(layout[c], a, goal) > 0.07 for c in CUBES if c != obj):
                break
        colours = {**_colours(rng, CUBES), **_colours(rng, pads)}
        text = instruction("push", rng, obj=_name(colours, obj), place=colours[pad])
        return Episode(layout, colours, _yaws(rng, CUBES), text, {"object": obj, "place": pad})

    def success(self, scene, target):
        d = scene.body_pos(target["object"])[:2] - scene.body_pos(target["place"])[:2]
        return bool(np.linalg.norm(d) < 0.04)

    def stage(self, scene, episode):
        if self.success(scene, episode.target):
            return "done"
        obj, pad = episode.target["object"], episode.target["place"]
        moved = np.linalg.norm(scene.body_pos(obj)[:2] - episode.layout[obj]) > 0.02
        d = np.linalg.norm(scene.body_pos(obj)[:2] - scene.body_pos(pad)[:2])
        if not moved:
            return "object not moved"
        return "object within 8 cm of the pad" if d < 0.08 else "object moved, far from the pad"


def _carry_stage(task: Task, scene: Scene, episode: Episode, obj: str, dest: str, half: float) -> str:
    """How a pick-and-place or a stack ended: never held, held (over the destination or not), or let go."""
    if task.success(scene, episode.target):
        return "done"
    over = bool(np.all(np.abs(scene.body_pos(obj)[:2] - scene.body_pos(dest)[:2]) < half))
    if scene.grasped == obj:
        return "held over the destination" if over else "held elsewhere"
    moved = np.linalg.norm(scene.body_pos(obj)[:2] - episode.layout[obj]) > 0.02
    if not moved:
        return "never moved"
    return "let go over the destination" if over else "let go elsewhere"


def _segment_distance(p, a, b) -> float:
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * (b - a))))


class PickPlace(Task):
    name = "pick_place"
    max_episode_steps = 150

    def sample(self, rng):
        objects = list(rng.choice(list(OBJECTS), size=3, replace=False))
        bins = ["bin0", "bin1"]
        layout = sample_layout(rng, bins + objects)
        colours = {**_colours(rng, objects), **_colours(rng, bins)}
        obj = objects[rng.integers(3)]
        container = bins[rng.integers(2)]
        text = instruction("pick_place", rng, obj=_name(colours, obj), container=colours[container])
        return Episode(layout, colours, _yaws(rng, objects), text, {"object": obj, "container": container})

    def success(self, scene, target):
        obj = scene.body_pos(target["object"])
        rel = np.abs(obj[:2] - scene.body_pos(target["container"])[:2])
        inside = bool(np.all(rel < BIN_INNER_HALF - 0.01)) and obj[2] < 0.05
        return inside and scene.grasped != target["object"]

    def stage(self, scene, episode):
        target = episode.target
        return _carry_stage(self, scene, episode, target["object"], target["container"], BIN_INNER_HALF)


class Stack(Task):
    name = "stack"
    max_episode_steps = 150

    def sample(self, rng):
        layout = sample_layout(rng, CUBES)
        colours = _colours(rng, CUBES)
        a, b = (CUBES[i] for i in rng.choice(3, size=2, replace=False))
        text = instruction("stack", rng, a=_name(colours, a), b=_name(colours, b))
        return Episode(layout, colours, _yaws(rng, CUBES), text, {"top": a, "bottom": b})

    def success(self, scene, target):
        top, bottom = scene.body_pos(target["top"]), scene.body_pos(target["bottom"])
        on = (
            np.linalg.norm(top[:2] - bottom[:2]) < 0.025
            and 1.5 * CUBE_HALF < top[2] - bottom[2] < 2.5 * CUBE_HALF
        )
        return bool(on) and scene.grasped != target["top"]

    def stage(self, scene, episode):
        return _carry_stage(self, scene, episode, episode.target["top"], episode.target["bottom"], 0.025)


class Drawer(Task):
    name = "drawer"
    max_episode_steps = 120
    OPEN, CLOSED = 0.12, 0.02

    def sample(self, rng):
        cabinet = np.array([rng.uniform(-0.12, 0.12), 0.27])
        objects = list(rng.choice(list(OBJECTS), size=2, replace=False))
        region = (np.array([-0.22, -0.16]), np.array([0.22, -0.04]))  # clear of the drawer's travel
        layout = {"cabinet": cabinet, **sample_layout(rng, objects, region)}
        open_ = bool(rng.integers(2))
        text = instruction("drawer_open" if open_ else "drawer_close", rng)
        q0 = float(rng.uniform(0.05, 0.09))
        return Episode(layout, _colours(rng, objects), _yaws(rng, objects), text, {"open": open_}, q0)

    def success(self, scene, target):
        q = scene.drawer_qpos()
        return bool(q > self.OPEN) if target["open"] else bool(q < self.CLOSED)

    def stage(self, scene, episode):
        if self.success(scene, episode.target):
            return "done"
        moved = (scene.drawer_qpos() - episode.drawer_qpos) * (1 if episode.target["open"] else -1)
        held = "handle held, " if scene.grasped == "drawer" else ""
        if moved > 0.01:
            return held + "drawer moved part of the way"
        return held + ("drawer moved the wrong way" if moved < -0.01 else "drawer not moved")


class Button(Task):
    name = "button"
    max_episode_steps = 80

    def sample(self, rng):
        buttons = ["button0", "button1", "button2"]
        objects = list(rng.choice(list(OBJECTS), size=2, replace=False))
        layout = sample_layout(rng, buttons + objects)
        colours = {**_colours(rng, buttons), **_colours(rng, objects)}
        button = buttons[rng.integers(3)]
        text = instruction("button", rng, button=_name(colours, button))
        return Episode(layout, colours, _yaws(rng, objects), text, {"button": button})

    def success(self, scene, target):
        return scene.button_travel(target["button"]) < BUTTON_PRESSED

    def stage(self, scene, episode):
        if self.success(scene, episode.target):
            return "done"
        others = [b for b in BUTTONS if b != episode.target["button"] and b in episode.layout]
        if any(scene.button_travel(b) < BUTTON_PRESSED for b in others):
            return "another button pressed"
        return "not pressed"


TASKS: dict[str, type[Task]] = {t.name: t for t in (Reach, Push, PickPlace, Stack, Drawer, Button)}
assert BALL_RADIUS == CUBE_HALF and DRAWER_RANGE[1] > Drawer.OPEN  # the geometry above relies on these
