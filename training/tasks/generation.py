"""Next-frame and goal-image generation: image targets from the episode's own future frames."""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import IMAGE_TOKENIZER, TaskContext, TaskFamily, frame, history
from training.tasks.templates import prompt

NEXT_FRAME_GAP = 4  # predict the frame this many steps ahead: one step barely changes the picture


def make_next_frame(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    if t + NEXT_FRAME_GAP >= len(ep):
        return None
    return Example(
        target="image",
        target_value=frame(ep, t + NEXT_FRAME_GAP),
        text=prompt("next_frame", rng),
        image=frame(ep, t),
        image_history=history(ep, t, ctx.history),
        meta={"task": "next_frame", "source": ep.source, "episode": ep.index, "frame": t},
    )


def make_goal_image(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    # Only successful demonstrations end in the goal state.
    if not ep.success or not ep.instruction or t >= len(ep) - 1:
        return None
    return Example(
        target="image",
        target_value=frame(ep, len(ep) - 1),
        text=prompt("goal_image", rng, instruction=ep.instruction),
        image=frame(ep, t),
        meta={"task": "goal_image", "source": ep.source, "episode": ep.index, "frame": t},
    )


FAMILIES = [
    TaskFamily("next_frame", make_next_frame, frozenset({IMAGE_TOKENIZER}), target="image"),
    TaskFamily("goal_image", make_goal_image, frozenset({IMAGE_TOKENIZER}), target="image"),
]
