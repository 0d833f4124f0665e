"""ROS messages (as rosbridge JSON dicts) <-> the policy's arrays.

Inbound: ``sensor_msgs/Image`` (rgb8, bgr8) and ``CompressedImage`` (jpeg, png)
-> (H, W, 3) uint8 RGB; ``JointState`` / ``Float64MultiArray`` -> (S,) float32
state; ``String`` -> instruction; ``Float32MultiArray`` of samples -> (N,) float32
speech at 16 kHz. Anything that does not fit raises ConversionError naming the
value and what was expected; callers log it and keep the last good input.

Outbound: a (D,) action -> ``Twist`` / ``Float64MultiArray`` / ``JointTrajectory`` / ``PoseStamped``
dicts, mapped from action dimensions by ``CommandConfig``.

Rosbridge sends ``uint8[]`` as a base64 string (a list of ints is accepted too).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

from .config import AudioConfig, CameraConfig, CommandConfig, StateConfig

AUDIO_RATE = 16_000


class ConversionError(ValueError):
    """A message that cannot become a policy input (or an action that cannot become a command)."""


class ImageSizeError(ConversionError):
    """A frame of another size than its camera's config: on a camera's first frames, a configuration error."""

    def __init__(self, text: str, got: tuple[int, int]) -> None:
        super().__init__(text)
        self.got = got


# ---------------------------------------------------------------- inbound


def header_stamp(msg: dict) -> tuple[int, int] | None:
    """``header.stamp`` as (sec, nanosec), or None when the message has no usable stamp."""
    try:
        stamp = msg["header"]["stamp"]
        sec, nsec = stamp["sec"], stamp["nanosec"]
    except (KeyError, TypeError):
        return None
    if not (_is_int(sec) and _is_int(nsec)):
        return None
    return int(sec), int(nsec)


def image_from_msg(msg: Any, cam: CameraConfig) -> np.ndarray:
    """A ``sensor_msgs/Image`` or ``CompressedImage`` dict -> (H, W, 3) uint8 RGB of the camera's size."""
    if not isinstance(msg, dict):
        raise ConversionError(f"{cam.topic}: message must be a JSON object, got {type(msg).__name__}")
    if cam.type == "sensor_msgs/CompressedImage":
        image = _decode_compressed(msg, cam)
    else:
        image = _decode_raw(msg, cam)
    if image.shape != (cam.height, cam.width, 3):
        raise ImageSizeError(
            f"{cam.topic}: image must be {cam.height}x{cam.width}x3 (camera {cam.name!r}), got {image.shape}",
            image.shape[:2],
        )
    return image


def _decode_raw(msg: dict, cam: CameraConfig) -> np.ndarray:
    encoding = msg.get("encoding")
    if encoding not in ("rgb8", "bgr8"):
        raise ConversionError(f"{cam.topic}: encoding must be 'rgb8' or 'bgr8', got {encoding!r}")
    height, width, step = msg.get("height"), msg.get("width"), msg.get("step")
    if not all(_is_int(v) for v in (height, width, step)):
        raise ConversionError(
            f"{cam.topic}: height, width, step must be integers, got {height!r}, {width!r}, {step!r}"
        )
    if (height, width) != (cam.height, cam.width):
        raise ImageSizeError(
            f"{cam.topic}: image must be {cam.height}x{cam.width} (camera {cam.name!r}), got {height}x{width}",
            (height, width),
        )
    if step < width * 3:
        raise ConversionError(f"{cam.topic}: step must be >= width*3 = {width * 3}, got {step}")
    data = _bytes_field(msg, "data", cam.topic, max_len=step * height)
    if len(data) != step * height:
        raise ConversionError(
            f"{cam.topic}: data must hold step*height = {step * height} bytes, got {len(data)}"
        )
    rows = np.frombuffer(data, np.uint8).reshape(height, step)
    image = rows[:, : width * 3].reshape(height, width, 3)
    if encoding == "bgr8":
        image = image[..., ::-1]
    return image.copy()  # writable and contiguous (frombuffer's view is read-only)


def _decode_compressed(msg: dict, cam: CameraConfig) -> np.ndarray:
    import cv2  # imported here: only compressed cameras need OpenCV

    fmt = msg.get("format")
    if not isinstance(fmt, str) or not any(k in fmt.lower() for k in ("jpeg", "jpg", "png")):
        raise ConversionError(f"{cam.topic}: format must name jpeg or png, got {fmt!r}")
    # A 4096x4096 PNG is at most ~50 MB; anything bigger is not a camera frame.
    data = _bytes_field(msg, "data", cam.topic, max_len=64 * 2**20)
    if not data:
        raise ConversionError(f"{cam.topic}: compressed data is empty")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConversionError(f"{cam.topic}: {len(data)} bytes do not decode as {fmt!r}")
    return np.ascontiguousarray(bgr[..., ::-1])


def _bytes_field(msg: dict, key: str, topic: str, max_len: int) -> bytes:
    raw = msg.get(key)
    if isinstance(raw, str):
        if len(raw) > 4 * (max_len // 3 + 2):  # refuse before decoding, not after
            raise ConversionError(
                f"{topic}: {key} holds {len(raw)} base64 chars, expected at most {max_len} bytes"
            )
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ConversionError(f"{topic}: {key} is not valid base64 ({e})") from None
    if isinstance(raw, list):
        if len(raw) > max_len:
            raise ConversionError(f"{topic}: {key} holds {len(raw)} bytes, expected at most {max_len}")
        if not all(_is_int(v) and 0 <= v <= 255 for v in raw):
            raise ConversionError(f"{topic}: {key} must be bytes 0..255")
        return bytes(raw)
    raise ConversionError(
        f"{topic}: {key} must be a base64 string or a list of bytes, got {type(raw).__name__}"
    )


def state_from_msg(msg: Any, cfg: StateConfig) -> np.ndarray:
    """A ``JointState`` (chosen fields, joint order) or ``Float*MultiArray`` dict -> (S,) finite float32."""
    if not isinstance(msg, dict):
        raise ConversionError(f"{cfg.topic}: message must be a JSON object, got {type(msg).__name__}")
    if cfg.type == "sensor_msgs/JointState":
        names = msg.get("name")
        if cfg.joint_names:
            if not isinstance(names, list):
                raise ConversionError(f"{cfg.topic}: name must be a list of joint names, got {names!r}")
            missing = [j for j in cfg.joint_names if j not in names]
            if missing:
                raise ConversionError(f"{cfg.topic}: joints {missing} missing from name {names}")
            order = [names.index(j) for j in cfg.joint_names]
        parts = []
        for f in cfg.fields:
            values = _float_list(msg.get(f), f"{cfg.topic}: {f}")
            if cfg.joint_names:
                if len(values) != len(names):
                    raise ConversionError(
                        f"{cfg.topic}: {f} must have one value per name ({len(names)}), got {len(values)}"
                    )
                values = [values[i] for i in order]
            parts.extend(values)
    else:
        parts = _float_list(msg.get("data"), f"{cfg.topic}: data")
    state = np.asarray(parts, np.float64)
    if cfg.size is not None and state.shape != (cfg.size,):
        raise ConversionError(f"{cfg.topic}: state must have {cfg.size} values, got {state.shape[0]}")
    if state.size == 0:
        raise ConversionError(f"{cfg.topic}: state is empty")
    if not np.isfinite(state).all() or np.abs(state).max() > np.finfo(np.float32).max:
        raise ConversionError(f"{cfg.topic}: state must be finite float32, got {state.tolist()}")
    return state.astype(np.float32)


def instruction_from_msg(msg: Any, max_chars: int = 1000, topic: str = "instruction") -> str:
    """A ``std_msgs/String`` dict -> the instruction text (stripped, non-empty, bounded)."""
    data = msg.get("data") if isinstance(msg, dict) else None
    if not isinstance(data, str):
        raise ConversionError(f"{topic}: data must be a string, got {type(data).__name__}")
    text = data.strip()
    if not text or len(text) > max_chars:
        raise ConversionError(f"{topic}: instruction must have 1..{max_chars} characters, got {len(text)}")
    return text


def audio_from_msg(msg: Any, cfg: AudioConfig) -> np.ndarray:
    """A ``Float32MultiArray`` of samples -> (num_samples,) float32 at 16 kHz in [-1, 1], zero-padded / cut."""
    if not isinstance(msg, dict):
        raise ConversionError(f"{cfg.topic}: message must be a JSON object, got {type(msg).__name__}")
    max_in = int(math.ceil(cfg.num_samples * cfg.sample_rate / AUDIO_RATE)) * 4
    samples = np.asarray(_float_list(msg.get("data"), f"{cfg.topic}: data", max_len=max_in), np.float64)
    if samples.size == 0 or not np.isfinite(samples).all():
        raise ConversionError(f"{cfg.topic}: audio must be non-empty and finite, got {samples.size} samples")
    if cfg.sample_rate != AUDIO_RATE:  # linear resampling: speech survives it, and it needs nothing extra
        n_out = max(1, round(samples.size * AUDIO_RATE / cfg.sample_rate))
        samples = np.interp(np.linspace(0, samples.size - 1, n_out), np.arange(samples.size), samples)
    out = np.zeros(cfg.num_samples, np.float32)
    n = min(cfg.num_samples, samples.size)
    out[:n] = np.clip(samples[:n], -1.0, 1.0)
    return out


def _float_list(values: Any, where: str, max_len: int = 1_000_000) -> list[float]:
    if not isinstance(values, list):
        raise ConversionError(f"{where} must be a list of numbers, got {type(values).__name__}")
    if len(values) > max_len:
        raise ConversionError(f"{where} holds {len(values)} values, expected at most {max_len}")
    # Rosbridge writes NaN/inf as null (JSON has neither): reject them here with the rest.
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        bad = next(v for v in values if not isinstance(v, int | float) or isinstance(v, bool))
        raise ConversionError(f"{where} must hold only numbers, got {bad!r}")
    return [float(v) for v in values]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------- outbound


def command_values(action: np.ndarray, cmd: CommandConfig) -> list[float]:
    """The action dims this command carries, scaled; raises ConversionError unless all finite."""
    if max(cmd.dims) >= action.shape[0]:
        raise ConversionError(f"{cmd.topic}: dims {cmd.dims} do not fit a {action.shape[0]}-dim action")
    scale = cmd.scale or [1.0] * len(cmd.dims)
    values = [float(action[d]) * s for d, s in zip(cmd.dims, scale, strict=True)]
    if not all(math.isfinite(v) for v in values):
        raise ConversionError(f"{cmd.topic}: command must be finite, got {values}")
    return values


def command_msg(action: np.ndarray, cmd: CommandConfig, stamp: tuple[int, int] | None = None) -> dict:
    """The ROS message (rosbridge dict) that carries ``action`` to the robot on ``cmd.topic``."""
    values = command_values(action, cmd)
    if cmd.type == "geometry_msgs/Twist":
        msg = {"linear": {"x": 0.0, "y": 0.0, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": 0.0}}
        for name, v in zip(cmd.twist_fields, values, strict=True):
            group, axis = name.split(".")
            msg[group][axis] = v
        return msg
    if cmd.type == "std_msgs/Float64MultiArray":
        n = len(values)
        return {
            "layout": {"dim": [{"label": "action", "size": n, "stride": n}], "data_offset": 0},
            "data": values,
        }
    sec, nsec = stamp or (0, 0)
    if cmd.type == "geometry_msgs/PoseStamped":  # a waypoint: where the end effector should go
        qx, qy, qz, qw = cmd.orientation
        return {
            "header": {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": cmd.frame_id},
            "pose": {
                "position": dict(zip("xyz", values, strict=True)),
                "orientation": {"x": qx, "y": qy, "z": qz, "w": qw},
            },
        }
    # trajectory_msgs/JointTrajectory: one point, reached after time_from_start
    t = cmd.time_from_start
    point = {"positions": [], "velocities": [], "accelerations": [], "effort": []}
    point[cmd.trajectory_field] = values
    point["time_from_start"] = {"sec": int(t), "nanosec": int(round((t - int(t)) * 1e9))}
    return {
        "header": {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": ""},
        "joint_names": list(cmd.joint_names),
        "points": [point],
    }


def image_to_msg(image: np.ndarray, stamp: tuple[int, int] = (0, 0), frame_id: str = "camera") -> dict:
    """(H, W, 3) uint8 RGB -> a ``sensor_msgs/Image`` rgb8 dict (for test publishers and benchmarks)."""
    if not (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ConversionError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    h, w, _ = image.shape
    return {
        "header": {"stamp": {"sec": stamp[0], "nanosec": stamp[1]}, "frame_id": frame_id},
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "data": base64.b64encode(np.ascontiguousarray(image).tobytes()).decode("ascii"),
    }
