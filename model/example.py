"""The Example: the one contract between data and model (see DESIGN.md).

Every dataset reader and task generator produces Examples; the model consumes
only Examples. Arrays are numpy, in the layouts users already have:

- ``image``: (H, W, 3) uint8 RGB; ``image_history``: (T, H, W, 3) uint8, oldest first.
- ``audio``: (N,) float32 waveform at 16 kHz in [-1, 1]; ``audio_history``: list of such, oldest first.
- ``state``: (S,) float32 robot proprioception.
- exactly one target modality: ``text`` (a string; boxes/points as location tokens
  inside it), ``image`` ((H, W, 3) uint8), ``audio`` ((N,) float32, 16 kHz) or
  ``action`` ((K, D) float32, K future steps of D dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TARGET_MODALITIES = ("text", "image", "audio", "action")
AUDIO_SAMPLE_RATE = 16_000


@dataclass
class Example:
    target: str
    target_value: Any
    text: str | None = None
    image: np.ndarray | None = None
    image_history: np.ndarray | None = None
    audio: np.ndarray | None = None
    audio_history: list[np.ndarray] | None = None
    state: np.ndarray | None = None
    # task, objective ("S", "R", "X"), source, ... Free-form but JSON-serialisable.
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field, its value's shape/dtype and what was expected."""
        if self.target not in TARGET_MODALITIES:
            raise ValueError(f"target must be one of {TARGET_MODALITIES}, got {self.target!r}")
        if self.image is not None:
            check_image(self.image, "image")
        if self.image_history is not None:
            h = self.image_history
            if not (isinstance(h, np.ndarray) and h.ndim == 4 and h.shape[-1] == 3 and h.dtype == np.uint8):
                raise ValueError(f"image_history must be (T, H, W, 3) uint8, got {_describe(h)}")
        if self.audio is not None:
            _check_audio(self.audio, "audio")
        for i, a in enumerate(self.audio_history or []):
            _check_audio(a, f"audio_history[{i}]")
        if self.state is not None:
            s = self.state
            if not (isinstance(s, np.ndarray) and s.ndim == 1 and np.issubdtype(s.dtype, np.floating)):
                raise ValueError(f"state must be a (S,) float array, got {_describe(s)}")
            if not np.isfinite(s).all():
                raise ValueError(f"state must be finite, got {s}")
        v = self.target_value
        if self.target == "text":
            if not isinstance(v, str):
                raise ValueError(f"a text target must be a str, got {type(v).__name__}")
        elif self.target == "image":
            check_image(v, "target image")
        elif self.target == "audio":
            _check_audio(v, "target audio")
        elif self.target == "action":
            if not (isinstance(v, np.ndarray) and v.ndim == 2 and np.issubdtype(v.dtype, np.floating)):
                raise ValueError(f"an action target must be (K, D) float, got {_describe(v)}")
            if not np.isfinite(v).all():
                raise ValueError("an action target must be finite, got NaN or inf")


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def check_image(x: Any, name: str = "image") -> None:
    """Raise ValueError unless ``x`` is an (H, W, 3) uint8 image, naming its shape and dtype."""
    if not (isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[-1] == 3 and x.dtype == np.uint8):
        raise ValueError(f"{name} must be HxWx3 uint8, got {_describe(x)}")


def _check_audio(x: Any, name: str) -> None:
    if not (isinstance(x, np.ndarray) and x.ndim == 1 and np.issubdtype(x.dtype, np.floating)):
        raise ValueError(
            f"{name} must be a (N,) float waveform at {AUDIO_SAMPLE_RATE} Hz, got {_describe(x)}"
        )


def previous_command(state: np.ndarray, action_dim: int, position_dims=(0, 1, 2)) -> np.ndarray:
    """The waypoint command "before the first" (training's data.previous_action, the policy's own
    feedback): the hand where it is (state ``position_dims``) with the gripper open (-1), for a
    waypoint action [x, y, z, gripper, ...] (other dimensions 0)."""
    state = np.asarray(state, np.float32)
    out = np.zeros(action_dim, np.float32)
    out[:3] = state[list(position_dims)]
    if action_dim > 3:
        out[3] = -1.0
    return out


WAYPOINT_JUMP = 0.01  # m: a waypoint command that moves further than this is a new waypoint
# The most waypoints reached a previous_action state may carry (data / PolicyConfig
# previous_action_depth); the policy's record (WaypointProgress) keeps this many.
MAX_PREVIOUS_WAYPOINTS = 4


def new_waypoint(before: np.ndarray, after: np.ndarray, jump: float = WAYPOINT_JUMP) -> bool:
    """Whether the command ``after`` starts a new waypoint after ``before`` ([x, y, z, gripper, ...]):
    it moved by more than ``jump`` metres or flipped the gripper. How a demonstration is cut into
    waypoints (training's ``previous_waypoints``) and how a policy follows its own (``WaypointProgress``)."""
    before, after = np.asarray(before), np.asarray(after)
    if np.linalg.norm(after[:3] - before[:3]) > jump:
        return True
    return len(after) > 3 and len(before) > 3 and (after[3] > 0) != (before[3] > 0)


def select_state(state: np.ndarray, dims) -> np.ndarray:
    """``state[dims]`` (all of it when ``dims`` is None), with an error naming a dim the state lacks."""
    state = np.asarray(state, np.float32)
    if dims is None:
        return state
    bad = [d for d in dims if not -len(state) <= d < len(state)]
    if bad:
        raise ValueError(f"state_dims {list(dims)} name {bad}, but the state has {len(state)} features")
    return state[list(dims)]
