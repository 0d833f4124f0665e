"""2D grounding with location tokens: referring expression -> box, pointing, and detection.

Boxes and points are written with model.tokenizers.locations (UIO-2's [y1, x1, y2, x2]
order, ModelConfig.location_bins bins) inside the text target, so they share the text decoder.
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
    meta,
    object_name,
    unique_names,
    visible_objects,
)
from training.tasks.templates import prompt


def make_refexp(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    named = unique_names(visible_objects(ep, t))
    if not named:
        return None
    o = named[int(rng.integers(len(named)))]
    image = frame(ep, t)
    return Example(
        target="text",
        target_value=ctx.locations.encode_box(o["box"], image.shape[:2]),
        text=prompt("refexp", rng, name=object_name(o)),
        image=image,
        meta=meta(ep, t, "refexp", name=object_name(o), box=[float(v) for v in o["box"]]),
    )


def make_pointing(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    named = [o for o in unique_names(visible_objects(ep, t)) if o.get("point") is not None]
    if not named:
        return None
    o = named[int(rng.integers(len(named)))]
    image = frame(ep, t)
    return Example(
        target="text",
        target_value=ctx.locations.encode_point(o["point"], image.shape[:2]),
        text=prompt("pointing", rng, name=object_name(o)),
        image=image,
        meta=meta(ep, t, "pointing", name=object_name(o), point=[float(v) for v in o["point"]]),
    )


def make_detection(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    objs = visible_objects(ep, t)
    if not objs:
        return None
    image = frame(ep, t)
    hw = image.shape[:2]
    answer = " ".join(f"{object_name(o)} {ctx.locations.encode_box(o['box'], hw)}" for o in objs)
    return Example(
        target="text",
        target_value=answer,
        text=prompt("detection", rng),
        image=image,
        meta=meta(ep, t, "detection", count=len(objs)),
    )


FAMILIES = [
    TaskFamily("refexp", make_refexp, frozenset({ANNOTATIONS})),
    TaskFamily("pointing", make_pointing, frozenset({ANNOTATIONS})),
    TaskFamily("detection", make_detection, frozenset({ANNOTATIONS})),
]
