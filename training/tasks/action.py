"""Action prediction from demonstrations: current frame, previous frames, instruction, state -> (K, D) chunk.

The instruction comes as text (``action``) or as speech with a text prompt that
does not repeat it (``action_speech``), so the policy must listen to act.
"""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import (
    SPEECH,
    TaskContext,
    TaskFamily,
    action_chunk,
    action_frame_index,
    frame,
    history,
    meta,
    random_shift,
    robot_state,
    speech_of,
)
from training.tasks.templates import prompt


def make_action(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    if not ep.instruction:
        return None
    t = action_frame_index(ep, t, rng, ctx)
    image, image_history = random_shift(frame(ep, t), history(ep, t, ctx.history), rng, ctx.random_shift)
    return Example(
        target="action",
        target_value=action_chunk(ep, t, ctx.chunk_size),
        text=prompt("action", rng, instruction=ep.instruction),
        image=image,
        image_history=image_history,
        state=robot_state(ep, t, ctx, rng),
        meta=meta(ep, t, "action", env_task=ep.task),
    )


def make_action_speech(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    audio = speech_of(ep, ctx)
    if audio is None:
        return None
    t = action_frame_index(ep, t, rng, ctx)
    image, image_history = random_shift(frame(ep, t), history(ep, t, ctx.history), rng, ctx.random_shift)
    return Example(
        target="action",
        target_value=action_chunk(ep, t, ctx.chunk_size),
        text=prompt("action_speech", rng),
        image=image,
        image_history=image_history,
        audio=audio,
        state=robot_state(ep, t, ctx, rng),
        meta=meta(ep, t, "action_speech", env_task=ep.task),
    )


FAMILIES = [
    TaskFamily("action", make_action, frozenset(), target="action"),
    TaskFamily("action_speech", make_action_speech, frozenset({SPEECH}), target="action"),
]
