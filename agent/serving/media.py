"""Images as PNG and speech as WAV bytes: what the HTTP endpoints return and the client reads back."""

from __future__ import annotations

import io
import wave

import numpy as np
from PIL import Image

SAMPLE_RATE = 16_000


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of an (H, W, 3) uint8 RGB image."""
    image = np.asarray(image)
    if not (image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8):
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def read_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def wav_bytes(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono PCM WAV of an (N,) float waveform in [-1, 1] (values outside are clipped)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be (N,) float, got {waveform.shape}")
    pcm = (np.clip(np.nan_to_num(waveform), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(waveform float32 in [-1, 1], sample rate) of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"expected 16-bit mono WAV, got {8 * w.getsampwidth()}-bit x{w.getnchannels()}")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return (pcm.astype(np.float32) / 32767.0), w.getframerate()
