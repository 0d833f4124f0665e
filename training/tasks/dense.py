"""Depth and segmentation as image targets (they need an image tokenizer to become codes).

Depth is rendered as grey levels, near = bright, over a fixed range so the model
learns metres, not per-image contrast; segmentation ids get a fixed colour palette.
"""

from __future__ import annotations

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks.base import DEPTH, IMAGE_TOKENIZER, SEGMENTATION, TaskContext, TaskFamily, frame
from training.tasks.templates import prompt

DEPTH_RANGE = (0.2, 2.0)  # metres mapped to 255 .. 0


def depth_to_image(depth: np.ndarray) -> np.ndarray:
    lo, hi = DEPTH_RANGE
    d = np.nan_to_num(depth.astype(np.float32), nan=hi, posinf=hi, neginf=lo)
    grey = (255 * (1 - (np.clip(d, lo, hi) - lo) / (hi - lo))).round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


_PALETTE = np.random.default_rng(1234).integers(40, 256, size=(256, 3)).astype(np.uint8)
_PALETTE[0] = 0  # background / no object


def segmentation_to_image(ids: np.ndarray) -> np.ndarray:
    return _PALETTE[np.clip(ids.astype(np.int64) + 1, 0, 255)]  # MuJoCo marks "nothing" with -1


def _camera_map(maps: dict[str, np.ndarray] | None, ep: EpisodeData) -> np.ndarray | None:
    if not maps:
        return None
    return maps.get(ep.main_camera)


def make_depth(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    maps = _camera_map(ep.depth, ep)
    if maps is None:
        return None
    return Example(
        target="image",
        target_value=depth_to_image(maps[t]),
        text=prompt("depth", rng),
        image=frame(ep, t),
        meta={"task": "depth", "source": ep.source, "episode": ep.index, "frame": t},
    )


def make_segmentation(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    maps = _camera_map(ep.segmentation, ep)
    if maps is None:
        return None
    return Example(
        target="image",
        target_value=segmentation_to_image(maps[t]),
        text=prompt("segmentation", rng),
        image=frame(ep, t),
        meta={"task": "segmentation", "source": ep.source, "episode": ep.index, "frame": t},
    )


FAMILIES = [
    TaskFamily("depth", make_depth, frozenset({DEPTH, IMAGE_TOKENIZER}), target="image"),
    TaskFamily("segmentation", make_segmentation, frozenset({SEGMENTATION, IMAGE_TOKENIZER}), target="image"),
]
