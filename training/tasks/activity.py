""""What is the robot doing?" from image history: the answer is the episode's instruction as an activity."""

from __future__ import annotations

import re

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import TaskContext, TaskFamily, frame, history
from training.tasks.templates import prompt

# Imperative verb -> the -ing form the answer uses; unknown verbs fall back to a neutral phrasing.
GERUNDS = {
    "reach": "reaching",
    "move": "moving",
    "touch": "touching",
    "push": "pushing",
    "slide": "sliding",
    "pick": "picking",
    "put": "putting",
    "place": "placing",
    "stack": "stacking",
    "open": "opening",
    "close": "closing",
    "press": "pressing",
    "push_button": "pressing",
    "lift": "lifting",
    "grab": "grabbing",
    "go": "going",
}


def activity_from_instruction(instruction: str) -> str:
    """"Push the red cube to the blue pad." -> "The robot is pushing the red cube to the blue pad."."""
    words = instruction.strip().rstrip(".!").split()
    if not words:
        return "The robot is idle."
    verb = re.sub(r"[^a-z]", "", words[0].lower())
    if verb in GERUNDS:
        return " ".join(["The robot is", GERUNDS[verb], *words[1:]]) + "."
    return f"The robot is working on: {instruction.strip().rstrip('.')}."


def make_activity(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    # A few frames into the episode, so that the history shows motion.
    if not ep.instruction or t < 1 or ctx.history <= 0:
        return None
    return Example(
        target="text",
        target_value=activity_from_instruction(ep.instruction),
        text=prompt("activity", rng),
        image=frame(ep, t),
        image_history=history(ep, t, max(ctx.history, 2)),
        meta={"task": "activity", "source": ep.source, "episode": ep.index, "frame": t},
    )


FAMILIES = [TaskFamily("activity", make_activity, frozenset())]
