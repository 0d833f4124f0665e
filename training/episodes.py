"""EpisodeData: one demonstration as the task generators read it, checked on the way in.

Live rollouts (envs.rollout.record_episode), LeRobotDataset v3 folders and
robomimic/LIBERO HDF5 files all become this, so a task generator never guesses a
layout. ``validate`` raises a DatasetError naming the file, the episode and the key,
because "NaN in actions" is useless without knowing where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """Bad training data; the message names the source file, the episode and the key."""


@dataclass
class EpisodeData:
    source: str  # a file/folder path, or "rollout:<env id>" for live expert rollouts
    index: int  # episode index within the source
    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8, the frame each action was taken on
    state: np.ndarray  # (T, S) float32
    action: np.ndarray  # (T, D) float32
    instruction: str = ""
    speech: np.ndarray | None = None  # (N,) float32 16 kHz: the instruction spoken
    annotations: list[dict[str, Any]] | None = None  # per frame (envs' annotations(): objects, camera, ...)
    depth: dict[str, np.ndarray] | None = None  # camera -> (T, H, W) float32 metres
    segmentation: dict[str, np.ndarray] | None = None  # camera -> (T, H, W) int32 ids
    task: str = ""
    success: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    # More per-frame labels by name, (T, n) float32: e.g. ``waypoint`` beside velocity actions.
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def where(self, key: str) -> str:
        return f"{self.source}, episode {self.index}, key {key!r}"

    def __len__(self) -> int:
        return int(self.action.shape[0])

    @property
    def main_camera(self) -> str:
        """The camera whose frames are the model's image input: "scene" in our suite, else the first."""
        return "scene" if "scene" in self.images else next(iter(self.images))

    def validate(self) -> EpisodeData:
        """Raise DatasetError naming file, episode and key for anything a generator would trip on."""
        if not self.images:
            raise DatasetError(f"{self.where('images')}: no camera frames")
        a = self.action
        if not (isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] > 0):
            raise DatasetError(f"{self.where('action')}: must be a non-empty (T, D) array, got {_shape(a)}")
        if not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a.astype(np.float64)))
            first = f" (first at frame {bad[0][0]}, dimension {bad[0][1]})" if len(bad) else ""
            raise DatasetError(f"{self.where('action')}: NaN or inf in actions{first}")
        t = a.shape[0]
        s = self.state
        if not (isinstance(s, np.ndarray) and s.ndim == 2 and s.shape[0] == t):
            raise DatasetError(f"{self.where('state')}: must be ({t}, S) like the actions, got {_shape(s)}")
        if not np.isfinite(s).all():
            raise DatasetError(f"{self.where('state')}: NaN or inf in state")
        for cam, frames in self.images.items():
            if not (
                isinstance(frames, np.ndarray)
                and frames.ndim == 4
                and frames.shape[0] == t
                and frames.shape[-1] == 3
                and frames.dtype == np.uint8
            ):
                raise DatasetError(
                    f"{self.where(f'images.{cam}')}: must be ({t}, H, W, 3) uint8, got {_shape(frames)}"
                )
        if self.annotations is not None and len(self.annotations) != t:
            raise DatasetError(f"{self.where('annotations')}: {len(self.annotations)} frames, expected {t}")
        for name in ("depth", "segmentation"):
            for cam, maps in (getattr(self, name) or {}).items():
                if not (isinstance(maps, np.ndarray) and maps.ndim == 3 and maps.shape[0] == t):
                    raise DatasetError(
                        f"{self.where(f'{name}.{cam}')}: must be ({t}, H, W), got {_shape(maps)}"
                    )
        if self.speech is not None:
            sp = self.speech
            if not (isinstance(sp, np.ndarray) and sp.ndim == 1 and np.isfinite(sp).all()):
                raise DatasetError(
                    f"{self.where('speech')}: must be a finite (N,) waveform, got {_shape(sp)}"
                )
        return self


def _shape(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{tuple(x.shape)} {x.dtype}"
    return type(x).__name__
