"""Waypoints written in a calibrated camera: (x, y, z, ...) <-> (v, u, z, ...).

An absolute waypoint (the grasp point's target in the table frame) is, for a fixed camera, a
pixel plus a height: ``v``, ``u`` are the image row and column (fractions of the image, 0..1, the
same fractions location tokens use) of the target's foot, the point below it on the table plane
``plane_z``; ``z`` stays metres. Written this way the acting skill is the pointing skill: the
model's pointer readout (model/pointer.py) reads ``v`` and ``u`` off where it looks. The foot,
not the target itself, because a waypoint hovering 10 cm above an object projects about a patch
away from the object's pixels (a tilted camera's parallax), while the foot of any waypoint over
an object lands on it. The calibration travels in the checkpoint (action_frame.json); decoding
intersects the pixel's ray with the table plane and takes the height as written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from model.tokenizers.actions import ActionStats


@dataclass
class CameraActionFrame:
    pos: list[float]  # camera position, table frame (m)
    xmat: list[list[float]]  # 3x3 rotation, columns = camera x, y, z axes; it looks along -z (MuJoCo)
    fovy: float  # vertical field of view (degrees)
    width: int
    height: int
    # The data's waypoints' range in the table frame: the policy's default command limits (the
    # action statistics hold the camera frame).
    low: list[float] | None = None
    high: list[float] | None = None
    plane_z: float = 0.0  # height of the table plane the feet lie on (m)
    # Where in the model's state a point [x, y, z] of this table frame begins (data.state_point: the
    # grasp point), or None. Its foot's pixel joins the image patches the pointer can look at
    # (model/pointer.py), so a waypoint can be written as "the hand, moved".
    state_point: int | None = None

    def __post_init__(self) -> None:
        pos, rot = np.asarray(self.pos, float), np.asarray(self.xmat, float)
        if (
            pos.shape != (3,)
            or rot.shape != (3, 3)
            or not (np.isfinite(pos).all() and np.isfinite(rot).all())
        ):
            raise ValueError(f"camera pos must be 3 and xmat 3x3 finite values, got {self.pos}, {self.xmat}")
        if not 0 < self.fovy < 180 or self.width < 1 or self.height < 1:
            raise ValueError(f"camera fovy must be in (0, 180) and its size positive, got {self.fovy}, "
                             f"{self.width}x{self.height}")  # fmt: skip
        if self.state_point is not None and (isinstance(self.state_point, bool) or self.state_point < 0):
            raise ValueError(
                f"state_point must be a state feature index >= 0 or None, got {self.state_point!r}"
            )

    @classmethod
    def from_annotation(cls, camera: dict, actions: np.ndarray | None = None) -> CameraActionFrame:
        """From a tabletop annotation's ``camera`` entry (envs/annotate.py), with the data's (N, D) waypoints' range."""
        low = high = None
        if actions is not None:
            low, high = np.min(actions, 0).tolist(), np.max(actions, 0).tolist()
        return cls(
            camera["pos"], camera["xmat"], camera["fovy"], camera["width"], camera["height"], low, high
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def _focal(self) -> float:
        return 0.5 * self.height / np.tan(np.deg2rad(self.fovy) / 2)

    def to_camera(self, actions: np.ndarray) -> np.ndarray:
        """(..., D >= 3) waypoints [x, y, z, ...] -> [v, u, z, ...] (row, column fractions of the foot)."""
        a = np.asarray(actions, np.float64)
        foot = np.concatenate([a[..., :2], np.full(a.shape[:-1] + (1,), self.plane_z)], -1)
        cam = (foot - np.asarray(self.pos)) @ np.asarray(self.xmat)
        depth = np.maximum(-cam[..., 2], 1e-6)
        u = (self.width / 2 + self._focal * cam[..., 0] / depth) / self.width
        v = (self.height / 2 - self._focal * cam[..., 1] / depth) / self.height
        return np.concatenate([v[..., None], u[..., None], a[..., 2:]], -1).astype(np.float32)

    def state_pixel(self, state: np.ndarray) -> np.ndarray | None:
        """(2,) row and column fractions of the foot of the state's point (``state_point``), or None
        without one."""
        if self.state_point is None:
            return None
        s = np.asarray(state, np.float32)
        if s.ndim != 1 or len(s) < self.state_point + 3:
            raise ValueError(
                f"state_point {self.state_point} needs features {self.state_point}..{self.state_point + 2} "
                f"([x, y, z] in the table frame), but the state has shape {s.shape}"
            )
        return self.to_camera(s[self.state_point : self.state_point + 3])[:2]

    def from_camera(self, actions: np.ndarray) -> np.ndarray:
        """(..., D >= 3) [v, u, z, ...] -> [x, y, z, ...]: the pixel's ray meets the table plane at the foot."""
        a = np.asarray(actions, np.float64)
        f = self._focal
        ray_cam = np.stack(
            [(a[..., 1] * self.width - self.width / 2) / f, -(a[..., 0] * self.height - self.height / 2) / f,
             -np.ones(a.shape[:-1])], -1,
        )  # fmt: skip
        ray = ray_cam @ np.asarray(self.xmat).T
        pos = np.asarray(self.pos)
        # A ray parallel to the plane (never for a camera looking down at the table) stays finite.
        dz = np.where(np.abs(ray[..., 2]) > 1e-9, ray[..., 2], -1e-9)
        t = (self.plane_z - pos[2]) / dz
        xy = pos[:2] + t[..., None] * ray[..., :2]
        return np.concatenate([xy, a[..., 2:]], -1).astype(np.float32)


def pixel_stats(stats: ActionStats) -> ActionStats:
    """Statistics of camera-frame waypoints: v and u bin the whole image (0..1), as location tokens
    do, so a bin is a fixed image place whatever the data's spread (the pointer relies on it)."""
    q01, q99 = list(stats.q01), list(stats.q99)
    q01[0] = q01[1] = 0.0
    q99[0] = q99[1] = 1.0
    return ActionStats(q01=q01, q99=q99, mean=stats.mean, std=stats.std, min=stats.min, max=stats.max)
