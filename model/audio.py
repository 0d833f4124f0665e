"""Audio front end: 16 kHz waveforms <-> log-mel spectrograms, Griffin-Lim back, WAV files.

Unified-IO 2 reads and writes audio as a 128-mel x 256-frame log-mel spectrogram of a
4.096 s clip (n_fft 1024, hop 256 at 16 kHz). The mel filterbank is librosa's Slaney
filterbank (``htk=False, norm="slaney"``) written in numpy, so no librosa or torchaudio
is needed; the STFT is ``torch.stft`` with a periodic Hann window and centred frames.

Shapes: a waveform is (N,) or (B, N) float32 in [-1, 1]; a log-mel spectrogram is
(N_MELS, N_FRAMES) = (128, 256) or (B, 128, 256), natural log of mel power floored at
``LOG_FLOOR``. The inverse goes mel -> linear power through the filterbank's
pseudo-inverse, then Griffin-Lim (with librosa's "fast" momentum) -> waveform.
"""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP_LENGTH = 256
N_MELS = 128
CLIP_SAMPLES = 65_536  # 4.096 s; with centred frames this is 257 frames, the last one dropped
N_FRAMES = CLIP_SAMPLES // HOP_LENGTH  # 256
MEL_FLOOR = 1e-5
LOG_FLOOR = float(np.log(MEL_FLOOR))  # the value of a silent bin, about -11.51


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    above = hz >= min_log_hz
    mels = np.where(above, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    hz = f_sp * mels
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), hz)


@functools.lru_cache(maxsize=8)
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0, fmax=None
) -> np.ndarray:
    """Slaney-normalised triangular mel filters, (n_mels, n_fft // 2 + 1) float32, as librosa.filters.mel."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    # Slaney norm: each filter has unit area, so loudness doesn't depend on filter width.
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    weights.flags.writeable = False
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_pinv(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    pinv = np.linalg.pinv(mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float64)).astype(np.float32)
    pinv.flags.writeable = False
    return pinv


def check_waveform(waveform, name: str = "waveform") -> None:
    """Raise ValueError unless ``waveform`` is a finite (N,) or (B, N) float array/tensor."""
    shape = tuple(waveform.shape)
    dtype = waveform.dtype
    is_float = (
        torch.is_floating_point(waveform) if torch.is_tensor(waveform) else np.issubdtype(dtype, np.floating)
    )
    if len(shape) not in (1, 2) or not is_float:
        raise ValueError(f"{name} must be (N,) or (B, N) float at 16 kHz, got {shape} {dtype}")
    if shape[-1] == 0:
        raise ValueError(f"{name} must have at least one sample, got {shape}")
    finite = torch.isfinite(waveform).all() if torch.is_tensor(waveform) else np.isfinite(waveform).all()
    if not finite:
        raise ValueError(f"{name} must be finite, got NaN or inf")


def fit_clip(waveform: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad or cut the last axis to ``length`` samples (UIO-2's fixed 4.096 s clip), float32."""
    check_waveform(waveform)
    waveform = np.asarray(waveform, dtype=np.float32)
    n = waveform.shape[-1]
    if n >= length:
        return np.ascontiguousarray(waveform[..., :length])
    pad = [(0, 0)] * (waveform.ndim - 1) + [(0, length - n)]
    return np.pad(waveform, pad)


def _window(device=None) -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, device=device)


def log_mel_spectrogram(waveform, sample_rate: int = SAMPLE_RATE, fit: bool = True) -> torch.Tensor:
    """Waveform (N,) or (B, N) at 16 kHz -> log-mel (128, 256) or (B, 128, 256) float32 tensor.

    ``fit=True`` pads/cuts to the fixed 65536-sample clip first, so the result always has
    256 frames; with ``fit=False`` a clip of N samples gives N // 256 frames.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be {SAMPLE_RATE} Hz, got {sample_rate}; resample first (e.g. sox)"
        )
    check_waveform(waveform)
    if fit:
        waveform = fit_clip(waveform.detach().cpu().numpy() if torch.is_tensor(waveform) else waveform)
    x = torch.as_tensor(waveform, dtype=torch.float32)
    if x.shape[-1] < HOP_LENGTH:
        raise ValueError(f"waveform must have at least {HOP_LENGTH} samples, got {x.shape[-1]}")
    squeeze = x.ndim == 1
    x = x.reshape(-1, x.shape[-1])
    n_frames = x.shape[-1] // HOP_LENGTH
    spec = torch.stft(x, N_FFT, HOP_LENGTH, window=_window(x.device), center=True, return_complex=True)
    power = spec.abs().pow(2)[..., :n_frames]  # drop the extra centred frame: 65536 -> 256 frames
    mel = torch.matmul(torch.tensor(mel_filterbank(), device=x.device), power)
    log_mel = torch.log(torch.clamp(mel, min=MEL_FLOOR))
    return log_mel[0] if squeeze else log_mel


def check_log_mel(log_mel, name: str = "log_mel") -> None:
    """Raise ValueError unless ``log_mel`` is (128, T) or (B, 128, T) float."""
    shape = tuple(log_mel.shape)
    if len(shape) not in (2, 3) or shape[-2] != N_MELS:
        raise ValueError(f"{name} must be ({N_MELS}, T) or (B, {N_MELS}, T), got {shape}")


def mel_to_linear(log_mel) -> torch.Tensor:
    """Log-mel (…, 128, T) -> linear-frequency magnitude (…, 513, T) via the filterbank pseudo-inverse."""
    check_log_mel(log_mel)
    mel = torch.exp(torch.as_tensor(log_mel, dtype=torch.float32))
    pinv = torch.tensor(_mel_pinv(SAMPLE_RATE, N_FFT, N_MELS), device=mel.device)
    power = torch.clamp(torch.matmul(pinv, mel), min=0.0)  # the pseudo-inverse can go negative
    return power.sqrt()


def griffin_lim(
    magnitude: torch.Tensor, n_iter: int = 32, momentum: float = 0.99, length=None, seed: int = 0
):
    """Phase retrieval for a (…, 513, T) magnitude; returns (…, length) float32 waveform.

    Fast Griffin-Lim (Perraudin et al. 2013, as librosa): momentum on the projected
    spectrogram converges in far fewer iterations than plain alternating projections.
    """
    mag = torch.as_tensor(magnitude, dtype=torch.float32)
    batch_shape = mag.shape[:-2]
    mag = mag.reshape(-1, *mag.shape[-2:])
    length = length if length is not None else (mag.shape[-1] - 1) * HOP_LENGTH
    window = _window(mag.device)
    gen = torch.Generator().manual_seed(seed)
    angles = torch.exp(2j * np.pi * torch.rand(mag.shape, generator=gen)).to(mag.device)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wav = torch.istft(mag * angles, N_FFT, HOP_LENGTH, window=window, center=True, length=length)
        rebuilt = torch.stft(wav, N_FFT, HOP_LENGTH, window=window, center=True, return_complex=True)
        rebuilt = rebuilt[..., : mag.shape[-1]]
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    wav = torch.istft(mag * angles, N_FFT, HOP_LENGTH, window=window, center=True, length=length)
    return wav.reshape(*batch_shape, wav.shape[-1])


def log_mel_to_waveform(log_mel, n_iter: int = 32) -> np.ndarray:
    """Log-mel (128, T) or (B, 128, T) -> float32 waveform of T * 256 samples in [-1, 1] (Griffin-Lim)."""
    mag = mel_to_linear(log_mel)
    # The forward transform dropped the last centred frame; repeat the last one so the
    # inverse covers the whole clip (T frames of hop 256 -> T * 256 samples).
    mag = torch.cat([mag, mag[..., -1:]], dim=-1)
    n_samples = (mag.shape[-1] - 1) * HOP_LENGTH
    wav = griffin_lim(mag, n_iter=n_iter, length=n_samples)
    return np.clip(wav.numpy(), -1.0, 1.0).astype(np.float32)


def read_wav(path, expected_sample_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """Read a PCM WAV (8/16/32-bit, mono or multi-channel, averaged) -> (N,) float32 in [-1, 1].

    Raises ValueError if its rate differs from ``expected_sample_rate`` (None accepts any rate).
    """
    with wave.open(str(path), "rb") as f:
        rate, channels, width, n = f.getframerate(), f.getnchannels(), f.getsampwidth(), f.getnframes()
        raw = f.readframes(n)
    if expected_sample_rate is not None and rate != expected_sample_rate:
        raise ValueError(
            f"{path}: sample rate must be {expected_sample_rate} Hz, got {rate} Hz; "
            f"resample first, e.g. `sox in.wav -r {expected_sample_rate} out.wav`"
        )
    if width == 1:  # 8-bit WAV is unsigned
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise ValueError(f"{path}: sample width must be 1, 2 or 4 bytes, got {width}")
    return data.reshape(-1, channels).mean(axis=1).astype(np.float32)


def write_wav(path, waveform, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a (N,) float waveform in [-1, 1] as 16-bit mono PCM WAV; values outside are clipped."""
    if torch.is_tensor(waveform):
        waveform = waveform.detach().cpu().numpy()
    check_waveform(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"write_wav takes one mono clip (N,), got {waveform.shape}")
    pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767.0).astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return path
