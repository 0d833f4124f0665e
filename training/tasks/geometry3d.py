"""3D boxes of objects (12 location tokens, as UIO-2 encodes cuboids) and camera pose, from ground truth.

A cuboid is: projected centre [y, x] (2 tokens, image bins), depth along the
optical axis (1), size x/y/z (3), and the object's rotation in the camera frame as
the continuous 6D representation (first two columns of the rotation matrix, 6
tokens in [-1, 1]): 12 tokens. Camera pose is position (3) + 6D rotation (6).
MuJoCo cameras look down their -z axis with +y up; ``xmat`` maps camera to world.
"""

from __future__ import annotations

import numpy as np

from model.example import Example
from model.tokenizers.locations import LocationTokenizer
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

DEPTH_RANGE = (0.0, 2.0)  # metres from the camera
SIZE_RANGE = (0.0, 0.5)  # metres, full extent per axis
POSITION_RANGE = (-2.0, 2.0)  # metres, camera position per world axis
UNIT_RANGE = (-1.0, 1.0)  # rotation matrix entries


def value_token(v: float, lo_hi: tuple[float, float], loc: LocationTokenizer) -> str:
    lo, hi = lo_hi
    return loc.token(loc.quantize(float(np.clip(v, lo, hi)) - lo, hi - lo))


def camera_matrix(camera: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(position (3,), rotation camera->world (3, 3), vertical field of view in degrees)."""
    pos = np.asarray(camera["pos"], np.float64).reshape(3)
    rot = np.asarray(camera["xmat"], np.float64).reshape(3, 3)
    return pos, rot, float(camera["fovy"])


def project(point: np.ndarray, camera: dict, hw: tuple[int, int]) -> tuple[float, float, float]:
    """World point -> (x pixel, y pixel, depth in metres) for a MuJoCo camera."""
    pos, rot, fovy = camera_matrix(camera)
    p = rot.T @ (np.asarray(point, np.float64) - pos)
    depth = -p[2]
    h, w = hw
    f = (h / 2) / np.tan(np.deg2rad(fovy) / 2)
    return w / 2 + f * p[0] / max(depth, 1e-6), h / 2 - f * p[1] / max(depth, 1e-6), depth


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot6d(rot: np.ndarray) -> np.ndarray:
    return np.concatenate([rot[:, 0], rot[:, 1]])


def cuboid_tokens(obj: dict, camera: dict, hw: tuple[int, int], loc: LocationTokenizer) -> str:
    x, y, depth = project(obj["center"], camera, hw)
    h, w = hw
    tokens = [
        loc.token(loc.quantize(float(np.clip(y, 0, h - 1e-3)), h)),
        loc.token(loc.quantize(float(np.clip(x, 0, w - 1e-3)), w)),
        value_token(depth, DEPTH_RANGE, loc),
    ]
    tokens += [value_token(s, SIZE_RANGE, loc) for s in np.asarray(obj["size"], np.float64).reshape(3)]
    _, cam_rot, _ = camera_matrix(camera)
    rot = rot6d(cam_rot.T @ yaw_matrix(float(obj.get("yaw", 0.0))))
    tokens += [value_token(v, UNIT_RANGE, loc) for v in rot]
    return "".join(tokens)


def camera_tokens(camera: dict, loc: LocationTokenizer) -> str:
    pos, rot, _ = camera_matrix(camera)
    return "".join(
        [value_token(v, POSITION_RANGE, loc) for v in pos]
        + [value_token(v, UNIT_RANGE, loc) for v in rot6d(rot)]
    )


def _camera(ep: EpisodeData, t: int) -> dict | None:
    cam = (ep.annotations[t] if ep.annotations else {}).get("camera")
    return cam if cam and all(k in cam for k in ("pos", "xmat", "fovy")) else None


def make_boxes3d(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    camera = _camera(ep, t)
    named = [o for o in unique_names(visible_objects(ep, t)) if "center" in o and "size" in o]
    if camera is None or not named:
        return None
    o = named[int(rng.integers(len(named)))]
    image = frame(ep, t)
    return Example(
        target="text",
        target_value=cuboid_tokens(o, camera, image.shape[:2], ctx.locations),
        text=prompt("boxes3d", rng, name=object_name(o)),
        image=image,
        meta={
            "task": "boxes3d",
            "name": object_name(o),
            "source": ep.source,
            "episode": ep.index,
            "frame": t,
            # Only the projected centre is an image point; depth, size and rotation reuse the bins.
            "location_points": 1,
        },
    )


def make_camera_pose(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> Example | None:
    camera = _camera(ep, t)
    if camera is None:
        return None
    return Example(
        target="text",
        target_value=camera_tokens(camera, ctx.locations),
        text=prompt("camera_pose", rng),
        image=frame(ep, t),
        meta={
            "task": "camera_pose",
            "source": ep.source,
            "episode": ep.index,
            "frame": t,
            "location_points": 0,
        },
    )


FAMILIES = [
    TaskFamily("boxes3d", make_boxes3d, frozenset({ANNOTATIONS})),
    TaskFamily("camera_pose", make_camera_pose, frozenset({ANNOTATIONS})),
]
