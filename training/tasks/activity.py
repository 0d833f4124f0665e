""" "What is the robot doing?" from image history: the answer is the episode's instruction as an activity."""

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
    "go": "going",
    "touch": "touching",
    "push": "pushing",
    "nudge": "nudging",
    "slide": "sliding",
    "pick": "picking",
    "put": "putting",
    "place": "placing",
    "drop": "dropping",
    "stack": "stacking",
    "lift": "lifting",
    "grab": "grabbing",
    "open": "opening",
    "close": "closing",
    "shut": "shutting",
    "pull": "pulling",
    "press": "pressing",
    "hit": "hitting",
}


def _word(w: str) -> str:
    return re.sub(r"[^a-z]", "", w.lower())


def activity_from_instruction(instruction: str) -> str:
    """ "pick the cube and drop it in the box" -> "The robot is picking the cube and dropping it in the box."."""
    words = instruction.strip().rstrip(".!").split()
    if not words:
        return "The robot is idle."
    if _word(words[0]) not in GERUNDS:
        return f"The robot is working on: {instruction.strip().rstrip('.')}."
    out = [GERUNDS[_word(words[0])]]
    for prev, w in zip(words, words[1:]):
        out.append(GERUNDS[_word(w)] if prev.lower() == "and" and _word(w) in GERUNDS else w)
    return "The robot is " + " ".join(out) + "."


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
