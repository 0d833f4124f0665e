"""Visual question answering from ground truth: colours, counts, relations and positions.

Questions are only asked when the answer is unambiguous in the scene (a unique
shape for a colour question, two distinct objects for a relation).
"""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import (
    ANNOTATIONS,
    TaskContext,
    TaskFamily,
    frame,
    object_name,
    unique_names,
    visible_objects,
)
from training.tasks.templates import prompt

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _centre(o: dict) -> tuple[float, float]:
    x1, y1, x2, y2 = o["box"]
    return (x1 + x2) / 2, (y1 + y2) / 2


def colour_question(objs, rng, width, height):
    """ "What colour is the cube?"; with several cubes, ask about the leftmost or the rightmost one."""
    coloured = [o for o in objs if o.get("colour") and o.get("shape")]
    shapes = sorted({o["shape"] for o in coloured})
    if not shapes:
        return None
    shape = shapes[int(rng.integers(len(shapes)))]
    same = sorted((o for o in coloured if o["shape"] == shape), key=lambda o: _centre(o)[0])
    if len(same) == 1:
        return f"What colour is the {shape}?", same[0]["colour"]
    if _centre(same[1])[0] - _centre(same[0])[0] < 2 or _centre(same[-1])[0] - _centre(same[-2])[0] < 2:
        return None  # too close to call left from right
    side, obj = ("leftmost", same[0]) if rng.random() < 0.5 else ("rightmost", same[-1])
    return f"What colour is the {side} {shape}?", obj["colour"]


def count_question(objs, rng, width, height):
    shapes = sorted({o.get("shape", "") for o in objs} - {""})
    if not shapes:
        return None
    shape = shapes[int(rng.integers(len(shapes)))]
    n = sum(o.get("shape") == shape for o in objs)
    return f"How many {shape}s are there?", NUMBERS[n] if n < len(NUMBERS) else str(n)


def relation_question(objs, rng, width, height):
    named = unique_names(objs)
    if len(named) < 2:
        return None
    i, j = rng.choice(len(named), size=2, replace=False)
    a, b = named[int(i)], named[int(j)]
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    if rng.random() < 0.5:
        if abs(ax - bx) < 2:
            return None
        return f"Is the {object_name(a)} left of the {object_name(b)}?", "yes" if ax < bx else "no"
    # Image rows grow towards the camera on a tabletop seen from the front: lower in the image = nearer.
    if abs(ay - by) < 2:
        return None
    nearer = a if ay > by else b
    return f"Which is nearer to the camera, the {object_name(a)} or the {object_name(b)}?", object_name(
        nearer
    )


def position_question(objs, rng, width, height):
    named = unique_names(objs)
    if not named:
        return None
    o = named[int(rng.integers(len(named)))]
    x, y = _centre(o)
    horiz = "on the left" if x < width / 3 else "on the right" if x > 2 * width / 3 else "in the middle"
    depth = "at the back" if y < height / 2 else "at the front"
    return f"Where is the {object_name(o)}?", f"{horiz}, {depth}"


QUESTIONS = {
    "colour": colour_question,
    "count": count_question,
    "relation": relation_question,
    "position": position_question,
}


def make_vqa(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    objs = visible_objects(ep, t)
    if not objs:
        return None
    image = frame(ep, t)
    kind = list(QUESTIONS)[int(rng.integers(len(QUESTIONS)))]
    qa = QUESTIONS[kind](objs, rng, image.shape[1], image.shape[0])
    if qa is None:
        return None
    question, answer = qa
    return Example(
        target="text",
        target_value=answer,
        text=prompt("vqa", rng, question=question),
        image=image,
        meta={"task": "vqa", "question_type": kind, "source": ep.source, "episode": ep.index, "frame": t},
    )


FAMILIES = [TaskFamily("vqa", make_vqa, frozenset({ANNOTATIONS}))]
