"""Spoken instructions: espeak-ng text-to-speech at 16 kHz, several voices and speeds, cached.

espeak-ng writes a 22.05 kHz WAV; sox resamples it to 16 kHz float32. Results are cached in memory
(and on disk under ``$UIO2_SPEECH_CACHE`` or ``~/.cache/uio2/speech`` when writable) since the same
instruction is said many times in a dataset and a synthesis costs tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
SPEECH_SAMPLES = 65_536  # 4.096 s: the observation's fixed length
# espeak-ng voice variants of English: male and female, different timbres.
VOICES = ("en+m1", "en+m3", "en+f2", "en+f4", "en-us+m2", "en-us+f3")
SPEEDS = (130, 160, 190)  # words per minute


def _cache_dir() -> Path | None:
    path = Path(os.environ.get("UIO2_SPEECH_CACHE", Path.home() / ".cache" / "uio2" / "speech"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def synthesize(text: str, voice: str = VOICES[0], speed: int = SPEEDS[1], pitch: int = 50) -> np.ndarray:
    """The waveform of ``text`` spoken by espeak-ng: (N,) float32 in [-1, 1] at 16 kHz (a read-only array)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if not isinstance(speed, int | np.integer) or not 80 <= speed <= 450:
        raise ValueError(f"speed must be an int in [80, 450] words per minute, got {speed!r}")
    if not isinstance(pitch, int | np.integer) or not 0 <= pitch <= 99:
        raise ValueError(f"pitch must be an int in [0, 99], got {pitch!r}")
    return _synthesize(text, str(voice), int(speed), int(pitch))


@lru_cache(maxsize=4096)
def _synthesize(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    key = hashlib.sha1(f"{voice}|{speed}|{pitch}|{text}".encode()).hexdigest()
    cache = _cache_dir()
    file = cache / f"{key}.npy" if cache else None
    if file is not None and file.exists():
        try:
            wave = np.load(file, allow_pickle=False)
            wave.flags.writeable = False
            return wave
        except (OSError, ValueError):
            pass  # a torn file from a killed writer: synthesize again
    wave = _espeak(text, voice, speed, pitch)
    if file is not None:
        tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, wave)
        os.replace(tmp, file)
    wave.flags.writeable = False
    return wave


def _espeak(text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    if shutil.which("sox"):
        raw = subprocess.run(
            [
                "sox",
                "-t",
                "wav",
                "-",
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-e",
                "floating-point",
                "-b",
                "32",
                "-t",
                "raw",
                "-",
            ],
            input=wav,
            capture_output=True,
            check=True,
        ).stdout
        wave = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:  # linear-interpolation resampling; good enough for a tokenizer's log-mel input
        pcm = np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0
        n = int(len(pcm) * SAMPLE_RATE / 22050)
        wave = np.interp(np.linspace(0, len(pcm) - 1, n), np.arange(len(pcm)), pcm).astype(np.float32)
    return np.clip(wave, -1.0, 1.0)


def pad_or_cut(wave: np.ndarray, length: int = SPEECH_SAMPLES) -> np.ndarray:
    """A (length,) float32 copy of ``wave``, zero-padded at the end or cut."""
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(wave))
    out[:n] = wave[:n]
    return out
