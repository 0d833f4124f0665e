"""2D grounding with location tokens: referring expression -> box, pointing (read or heard), and detection.

Boxes and points are written with model.tokenizers.locations (UIO-2's [y1, x1, y2, x2]
order, ModelConfig.location_bins bins) inside the text target, so they share the text decoder.
"""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import (
    ANNOTATIONS,
    SPEECH,
    TaskContext,
    TaskFamily,
    frame,
    meta,
    object_name,
    spoken,
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


def pointable(ep: EpisodeData, t: int, rng: np.random.Generator) -> dict | None:
    """A visible object with a unique name and a point at frame ``t``, drawn with ``rng`` (None: none)."""
    named = [o for o in unique_names(visible_objects(ep, t)) if o.get("point") is not None]
    return named[int(rng.integers(len(named)))] if named else None


def make_pointing(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    o = pointable(ep, t, rng)
    if o is None:
        return None
    image = frame(ep, t)
    return Example(
        target="text",
        target_value=ctx.locations.encode_point(o["point"], image.shape[:2]),
        text=prompt("pointing", rng, name=object_name(o)),
        image=image,
        meta=meta(ep, t, "pointing", name=object_name(o), point=[float(v) for v in o["point"]]),
    )


SPOKEN_NAMES = ("{name}", "the {name}", "point to the {name}", "where is the {name}")


def make_pointing_speech(
    ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext
) -> Example | None:
    """Pointing at what a voice names: the skill a spoken instruction needs (``action_speech``), taught
    with a two-token target. From spoken actions alone the pointer, which finds the named object, hears
    the name only through the few action examples that carry speech (the demo's policy: 4% of spoken
    episodes where written ones succeeded on 16%)."""
    o = pointable(ep, t, rng)
    if o is None:
        return None
    audio = spoken(ctx, SPOKEN_NAMES[int(rng.integers(len(SPOKEN_NAMES)))].format(name=object_name(o)), rng)
    if audio is None:
        return None
    image = frame(ep, t)
    return Example(
        target="text",
        target_value=ctx.locations.encode_point(o["point"], image.shape[:2]),
        text=prompt("pointing_speech", rng),
        image=image,
        audio=audio,
        meta=meta(ep, t, "pointing_speech", name=object_name(o), point=[float(v) for v in o["point"]]),
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
    TaskFamily("pointing_speech", make_pointing_speech, frozenset({ANNOTATIONS, SPEECH})),
    TaskFamily("detection", make_detection, frozenset({ANNOTATIONS})),
]
