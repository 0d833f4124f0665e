"""Captioning from the simulator's ground truth: the visible objects, left to right, and the task."""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import (
    ANNOTATIONS,
    TaskContext,
    TaskFamily,
    frame,
    join_names,
    object_name,
    visible_objects,
    with_article,
)
from training.tasks.templates import prompt


def caption_for(names: list[str], rng: np.random.Generator) -> str:
    """A caption listing ``names`` (left to right) in one of a few sentence shapes."""
    things = join_names([with_article(n) for n in names])
    shapes = [
        "{things} on a table.",
        "A robot arm above a table with {things}.",
        "A tabletop with {things}.",
    ]
    text = shapes[int(rng.integers(len(shapes)))].format(things=things)
    return text[0].upper() + text[1:]


def make_caption(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    objs = visible_objects(ep, t)
    if not objs:
        return None
    return Example(
        target="text",
        target_value=caption_for([object_name(o) for o in objs], rng),
        text=prompt("caption", rng),
        image=frame(ep, t),
        # Captions are our alt-text, the pre-training data UIO-2 applies its denoisers to.
        meta={"task": "caption", "source": ep.source, "episode": ep.index, "frame": t, "pretraining": True},
    )


FAMILIES = [TaskFamily("caption", make_caption, frozenset({ANNOTATIONS}))]
