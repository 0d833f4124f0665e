"""MP4 encoding and decoding of RGB frames with PyAV, written atomically (temp file, then rename)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter


def _rgb(frame: av.VideoFrame, reformatter: VideoReformatter) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame. Through one reformatter per video: ``to_ndarray(format=)``
    sets up FFmpeg's converter for every frame, 3-4x the cost of decoding and converting a 64 px frame
    (a demo's training data loaded in 2.4 min, most of it that); the pixels are the same."""
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def write_video(path: str | Path, frames: np.ndarray, fps: int, codec: str = "libx264", crf: int = 0) -> None:
    """Encode (T, H, W, 3) uint8 frames to ``path``; the file appears only once it is complete.

    The default, lossless H.264 in 4:4:4 (crf 0), decodes within 2 levels of the input (RGB<->YUV rounding):
    the small coloured objects of 96 px frames keep their colours.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    height, width = frames.shape[1:3]
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p" if codec == "libx264" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def read_video(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames [start, stop) of an mp4 as (T, H, W, 3) uint8 RGB."""
    out, reformatter = [], VideoReformatter()
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if stop is not None and i >= stop:
                break
            if i >= start:
                out.append(_rgb(frame, reformatter))
    if not out:
        raise ValueError(f"no frames in [{start}, {stop}) of {path}")
    return np.stack(out)


class VideoTimestampError(ValueError):
    """A requested timestamp has no frame in the video (outside it, or a frame missing)."""


def read_video_at(path: str | Path, timestamps: np.ndarray, tolerance_s: float = 1e-4) -> np.ndarray:
    """The frames shown at ``timestamps`` (seconds, ascending) as (T, H, W, 3) uint8 RGB.

    Each timestamp must match a frame's presentation time within ``tolerance_s`` (lerobot's rule), so a
    timestamp outside the video or a dropped frame raises VideoTimestampError instead of returning a
    neighbour. Seeks to the keyframe before the first timestamp: episodes deep in a long mp4 (lerobot
    puts many back to back) do not decode everything before them. Any codec FFmpeg decodes (AV1, H.264).
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    out: list[np.ndarray] = []
    last = None
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if ts[0] > tolerance_s and stream.time_base is not None:
            container.seek(int((ts[0] - tolerance_s) / stream.time_base), stream=stream, backward=True)
        j = 0
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            last = frame.time
            if last < ts[j] - tolerance_s:
                continue
            if abs(last - ts[j]) > tolerance_s:
                raise VideoTimestampError(
                    f"no frame at {ts[j]:.4f} s (the nearest after it is at {last:.4f} s)"
                )
            out.append(_rgb(frame, reformatter))
            j += 1
            if j == len(ts):
                break
    if len(out) < len(ts):
        end = "no frames" if last is None else f"its last frame is at {last:.4f} s"
        raise VideoTimestampError(f"timestamp {ts[len(out)]:.4f} s is past the end of the video ({end})")
    return np.stack(out)
