"""What the inference server accepts: the Observation contract (API.md) checked field by field.

Every check names the field, what it got and what was expected, because the caller is a robot program
on another machine and the error message is all it will see. The same checks run for websocket frames
(msgpack) and HTTP bodies (JSON, described by the pydantic models below for the OpenAPI page).
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from agent.serving.codec import WireError, decode_array


class ObservationError(ValueError):
    """An observation that does not match the contract; the message names the bad value."""


@dataclass(frozen=True)
class ObservationSpec:
    """What the served policy expects and the limits the server enforces (also shown by /metadata)."""

    cameras: tuple[str, ...] = ()  # cameras the policy needs; others may be sent too (and are ignored)
    max_cameras: int = 8
    max_image_side: int = 512
    max_state_dim: int = 256
    state_size: int | None = None  # the exact state length the checkpoint was trained on, when it says so
    min_state_size: int = 0  # the policy's state_dims read up to this many features
    max_speech_samples: int = 65_536 * 2
    max_instruction_chars: int = 1_000

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d


OBSERVATION_FIELDS = ("images", "state", "instruction", "speech", "depth", "segmentation")


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def _camera_maps(obs: dict, key: str, spec: ObservationSpec, required: bool) -> dict[str, Any]:
    maps = obs.get(key)
    if maps is None:
        if required:
            raise ObservationError(f"observation.{key} is required (a dict camera name -> array)")
        return {}
    if not isinstance(maps, dict) or not maps:
        raise ObservationError(
            f"observation.{key} must be a non-empty dict camera -> array, got {_describe(maps)}"
        )
    if len(maps) > spec.max_cameras:
        raise ObservationError(
            f"observation.{key} has {len(maps)} cameras, at most {spec.max_cameras} allowed"
        )
    for cam in maps:
        if not isinstance(cam, str) or not 0 < len(cam) <= 64:
            raise ObservationError(f"observation.{key} camera names must be 1-64 characters, got {cam!r}")
        check_unicode(cam, f"observation.{key} camera name")
    missing = sorted(set(spec.cameras) - set(maps)) if required else []
    if missing:
        raise ObservationError(
            f"observation.{key} lacks cameras {missing}; the policy needs {list(spec.cameras)}"
        )
    return maps


def check_unicode(text: str, name: str) -> str:
    """``text``, or ObservationError when it cannot be UTF-8 (a lone UTF-16 surrogate, valid in JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ObservationError(
            f"{name} must be valid Unicode, got a lone surrogate {text[e.start]!r} at character {e.start}"
        ) from None
    return text


def check_state_size(state: np.ndarray, spec: ObservationSpec) -> None:
    n = state.shape[0]
    if spec.state_size is not None and n != spec.state_size:
        raise ObservationError(
            f"observation.state has {n} values, the policy needs exactly {spec.state_size} "
            "(the features its checkpoint was trained on; see /v1/metadata observation.state_size)"
        )
    if n < spec.min_state_size:
        raise ObservationError(
            f"observation.state has {n} values, the policy needs at least {spec.min_state_size} "
            "(its state_dims read index {0}; see /v1/metadata observation.min_state_size)".format(
                spec.min_state_size - 1
            )
        )


def _check_side(name: str, shape: tuple[int, ...], spec: ObservationSpec) -> None:
    h, w = shape[:2]
    if not (1 <= h <= spec.max_image_side and 1 <= w <= spec.max_image_side):
        raise ObservationError(f"{name} must be at most {spec.max_image_side} pixels a side, got {h}x{w}")


def validate_observation(obs: Any, spec: ObservationSpec) -> dict[str, Any]:
    """The observation, checked against the contract and ``spec``; ObservationError naming the value if not."""
    if not isinstance(obs, dict):
        raise ObservationError(f"observation must be a dict, got {_describe(obs)}")
    unknown = sorted(set(obs) - set(OBSERVATION_FIELDS))
    if unknown:
        raise ObservationError(
            f"observation has unknown fields {unknown}, expected some of {list(OBSERVATION_FIELDS)}"
        )
    out: dict[str, Any] = {"images": {}}
    for cam, img in _camera_maps(obs, "images", spec, required=True).items():
        name = f"observation.images[{cam!r}]"
        if not (
            isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[-1] == 3 and img.dtype == np.uint8
        ):
            raise ObservationError(f"{name} must be HxWx3 uint8, got {_describe(img)}")
        _check_side(name, img.shape, spec)
        out["images"][cam] = img

    state = obs.get("state")
    if state is not None:
        if not (isinstance(state, np.ndarray) and state.ndim == 1 and state.dtype == np.float32):
            raise ObservationError(f"observation.state must be (S,) float32, got {_describe(state)}")
        if state.shape[0] > spec.max_state_dim:
            raise ObservationError(
                f"observation.state has {state.shape[0]} values, at most {spec.max_state_dim}"
            )
        if not np.isfinite(state).all():
            raise ObservationError("observation.state must be finite, got NaN or inf")
        check_state_size(state, spec)
        out["state"] = state

    text = obs.get("instruction", "")
    if not isinstance(text, str):
        raise ObservationError(f"observation.instruction must be a str, got {_describe(text)}")
    if len(text) > spec.max_instruction_chars:
        raise ObservationError(
            f"observation.instruction has {len(text)} characters, at most {spec.max_instruction_chars}"
        )
    out["instruction"] = check_unicode(text, "observation.instruction")

    speech = obs.get("speech")
    if speech is not None:
        if not (isinstance(speech, np.ndarray) and speech.ndim == 1 and speech.dtype == np.float32):
            raise ObservationError(
                f"observation.speech must be (N,) float32 at 16 kHz, got {_describe(speech)}"
            )
        if speech.shape[0] > spec.max_speech_samples:
            raise ObservationError(
                f"observation.speech has {speech.shape[0]} samples, at most {spec.max_speech_samples}"
            )
        if not np.isfinite(speech).all() or np.abs(speech).max(initial=0.0) > 1.0:
            raise ObservationError("observation.speech must be finite and within [-1, 1]")
        out["speech"] = speech

    for key, dtype in (("depth", np.float32), ("segmentation", np.int32)):
        maps = _camera_maps(obs, key, spec, required=False)
        if maps:
            out[key] = {}
        for cam, arr in maps.items():
            name = f"observation.{key}[{cam!r}]"
            if not (isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.dtype == dtype):
                raise ObservationError(f"{name} must be HxW {np.dtype(dtype).name}, got {_describe(arr)}")
            _check_side(name, arr.shape, spec)
            out[key][cam] = arr
    return out


# --- HTTP (JSON) request bodies: pydantic models, so FastAPI validates them and documents them ---


class ArrayIn(BaseModel):
    """A numpy array: dtype name, shape, and its raw little-endian C-order bytes in base64."""

    model_config = ConfigDict(extra="forbid", strict=True)
    dtype: StrictStr = Field(examples=["uint8"])
    shape: list[StrictInt] = Field(max_length=4, examples=[[96, 96, 3]])  # ints only: no "64", no true
    bytes: StrictStr = Field(description="base64 of the raw bytes (standard alphabet)")

    def to_numpy(self, name: str) -> np.ndarray:
        try:
            raw = base64.b64decode(self.bytes, validate=True)
        except ValueError:
            raise ObservationError(f"{name}.bytes is not valid base64") from None
        try:
            return decode_array({"dtype": self.dtype, "shape": self.shape, "bytes": raw}, name)
        except WireError as e:
            raise ObservationError(str(e)) from None


class ObservationIn(BaseModel):
    """The Observation of API.md: camera frames, state, instruction, optional speech, depth, segmentation."""

    model_config = ConfigDict(extra="forbid", strict=True)
    images: dict[str, ArrayIn] = Field(description="camera name -> (H, W, 3) uint8 RGB")
    state: ArrayIn | None = Field(None, description="(S,) float32 proprioception")
    instruction: str = Field("", description="the task instruction")
    speech: ArrayIn | None = Field(None, description="(N,) float32 waveform at 16 kHz in [-1, 1]")
    depth: dict[str, ArrayIn] | None = Field(None, description="camera name -> (H, W) float32 metres")
    segmentation: dict[str, ArrayIn] | None = Field(None, description="camera name -> (H, W) int32 ids")

    def to_observation(self, spec: ObservationSpec) -> dict[str, Any]:
        obs: dict[str, Any] = {"instruction": self.instruction}
        obs["images"] = {cam: a.to_numpy(f"observation.images[{cam!r}]") for cam, a in self.images.items()}
        if self.state is not None:
            obs["state"] = self.state.to_numpy("observation.state")
        if self.speech is not None:
            obs["speech"] = self.speech.to_numpy("observation.speech")
        for key in ("depth", "segmentation"):
            maps = getattr(self, key)
            if maps is not None:
                obs[key] = {cam: a.to_numpy(f"observation.{key}[{cam!r}]") for cam, a in maps.items()}
        return validate_observation(obs, spec)


class _Strict(BaseModel):
    """Request bodies: unknown fields refused, no type coercion, text that is valid Unicode."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _unicode(cls, v: Any, info: Any) -> Any:
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                raise ValueError(
                    f"must be valid Unicode, got a lone surrogate at character {e.start}"
                ) from None
        return v


class ObservationRequest(_Strict):
    observation: ObservationIn


class AnswerRequest(ObservationRequest):
    question: StrictStr = Field(min_length=1, max_length=1_000)


class BoxesRequest(ObservationRequest):
    name: StrictStr = Field(min_length=1, max_length=200, description="the object to locate, e.g. 'red cube'")


class GenerateRequest(_Strict):
    """Text, an image or speech generated from a prompt about the current observation."""

    prompt: StrictStr = Field(min_length=1, max_length=1_000)
    observation: ObservationIn
    listen: StrictBool = Field(
        False, description="give the model observation.speech too (to ask what was said)"
    )


class ArrayOut(BaseModel):
    dtype: str
    shape: list[int]
    bytes: str = Field(description="base64 of the raw little-endian C-order bytes")

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> ArrayOut:
        array = np.ascontiguousarray(array)
        return cls(
            dtype=array.dtype.name, shape=list(array.shape), bytes=base64.b64encode(array.tobytes()).decode()
        )


class ActionChunkOut(BaseModel):
    actions: ArrayOut = Field(description="(K, D) float32 action chunk")


class TextOut(BaseModel):
    text: str


class BoxOut(BaseModel):
    box: list[float] = Field(
        description="[x1, y1, x2, y2] in pixels of the policy camera's image; [] if none"
    )

    @field_validator("box")
    @classmethod
    def _four(cls, v: list[float]) -> list[float]:
        if len(v) not in (0, 4):
            raise ValueError(f"a box has 4 numbers (none when nothing was found), got {len(v)}")
        return v
