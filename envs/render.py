"""Offscreen rendering and camera geometry for MuJoCo scenes.

``Cameras`` keeps one ``mujoco.Renderer`` per image size (a renderer owns a GL context and its
buffers; making one per frame costs far more than the frame) and closes them all in ``close()``.
Fast mode turns shadows and multisampling off, which on a CPU renderer (llvmpipe) gives 5-10x
the frame rate with nearly the same image; it has to happen before the first renderer exists.
"""

from __future__ import annotations

import atexit
import weakref

import mujoco
import numpy as np

# Renderers still open at exit are closed before the GL library shuts down (their __del__ would run
# after it and print EGL errors).
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _close_all() -> None:
    for cams in list(_LIVE):
        cams.close()


def set_fast_render(model: mujoco.MjModel) -> None:
    """Shadows and MSAA off: the two costs that dominate software rendering."""
    model.light_castshadow[:] = 0
    model.vis.quality.offsamples = 0


class Cameras:
    """Renders named cameras of one model to RGB, depth (metres) or segmentation (root body ids)."""

    def __init__(self, model: mujoco.MjModel, fast: bool = True):
        if fast:
            set_fast_render(model)
        self.model = model
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def _renderer(self, height: int, width: int) -> mujoco.Renderer:
        key = (height, width)
        if key not in self._renderers:
            vis = self.model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
            self._renderers[key] = mujoco.Renderer(self.model, height, width)
            if not _LIVE:
                atexit.register(_close_all)  # registered after mujoco's own GL exit handler, so it runs first
            _LIVE.add(self)
        return self._renderers[key]

    def rgb(self, data: mujoco.MjData, camera: str | int, size: tuple[int, int]) -> np.ndarray:
        r = self._renderer(*size)
        r.update_scene(data, camera=camera)
        return r.render()

    def depth(self, data: mujoco.MjData, camera: str | int, size: tuple[int, int]) -> np.ndarray:
        r = self._renderer(*size)
        r.enable_depth_rendering()
        try:
            r.update_scene(data, camera=camera)
            return r.render().astype(np.float32)
        finally:
            r.disable_depth_rendering()

    def segmentation(self, data: mujoco.MjData, camera: str | int, size: tuple[int, int]) -> np.ndarray:
        """(H, W) int32: the root body id of the geom seen at each pixel (0 = world/table), -1 = nothing."""
        r = self._renderer(*size)
        r.enable_segmentation_rendering()
        try:
            r.update_scene(data, camera=camera)
            ids = r.render()
        finally:
            r.disable_segmentation_rendering()
        obj, typ = ids[..., 0], ids[..., 1]
        out = np.full(obj.shape, -1, dtype=np.int32)
        is_geom = (typ == int(mujoco.mjtObj.mjOBJ_GEOM)) & (obj >= 0)
        out[is_geom] = self.model.body_rootid[self.model.geom_bodyid[obj[is_geom]]]
        return out

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def camera_pose(model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> dict:
    """World pose of a camera: position, 3x3 rotation (columns = camera x, y, z; it looks along -z), fovy (deg)."""
    cam = model.camera(camera).id
    return {
        "pos": data.cam_xpos[cam].tolist(),
        "xmat": data.cam_xmat[cam].reshape(3, 3).tolist(),
        "fovy": float(model.cam_fovy[cam]),
    }


def project(points: np.ndarray, pose: dict, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of (N, 3) world points to (N, 2) pixel (x, y); also (N,) depth in front of the camera."""
    height, width = size
    rot = np.asarray(pose["xmat"])
    cam = (np.asarray(points) - np.asarray(pose["pos"])) @ rot  # world -> camera frame (rows)
    depth = -cam[:, 2]
    f = 0.5 * height / np.tan(np.deg2rad(pose["fovy"]) / 2)
    safe = np.where(depth > 1e-6, depth, 1e-6)
    x = width / 2 + f * cam[:, 0] / safe
    y = height / 2 - f * cam[:, 1] / safe
    return np.stack([x, y], axis=1), depth


def geom_corners(model: mujoco.MjModel, data: mujoco.MjData, geom: int) -> np.ndarray:
    """The 8 world-frame corners of a geom's bounding box."""
    size = model.geom_size[geom]
    typ = model.geom_type[geom]
    if typ == mujoco.mjtGeom.mjGEOM_SPHERE:
        half = np.full(3, size[0])
    elif typ in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        half = np.array(
            [size[0], size[0], size[1] + (size[0] if typ == mujoco.mjtGeom.mjGEOM_CAPSULE else 0)]
        )
    else:
        half = size[:3]
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    local = signs * half
    return data.geom_xpos[geom] + local @ data.geom_xmat[geom].reshape(3, 3).T
