"""The audio tokenizer: a VQ-GAN over log-mel spectrograms, with Griffin-Lim back to waveforms.

Unified-IO 2 tokenizes a 4.096 s clip as a 128-mel x 256-frame log-mel spectrogram into
512 codes (a ViT-VQGAN with 8x8 patches). We use the image tokenizer's convolutional
network with one input channel: at f=8, (128, 256) -> a 16 x 32 grid -> 512 codes; the
tiny model's tokenizer uses f=16 (8 x 16 = 128 codes). Codes are flattened row-major
(mel band major, then time).
"""

from __future__ import annotations

import numpy as np
import torch

from model.audio import LOG_FLOOR, N_FRAMES, N_MELS, check_log_mel, log_mel_spectrogram, log_mel_to_waveform
from model.vqgan import VQGAN, VQGANConfig

# Log-mel -> network input: silence (LOG_FLOOR, about -11.5) maps to about -1.2, loud speech (~+5) to ~+1.5.
MEL_CENTER = -4.0
MEL_SCALE = 6.0


def normalize_log_mel(log_mel: torch.Tensor) -> torch.Tensor:
    return (log_mel - MEL_CENTER) / MEL_SCALE


def denormalize_log_mel(x: torch.Tensor) -> torch.Tensor:
    # Nothing below the floor the forward transform can produce.
    return torch.clamp(x * MEL_SCALE + MEL_CENTER, min=LOG_FLOOR)


def audio_config(preset: str = "tiny", **overrides) -> VQGANConfig:
    """The image presets with one input channel (UIO-2's audio tokenizer has 8192 codes at paper scale)."""
    if preset == "paper":
        overrides.setdefault("codebook_size", 8192)
    return VQGANConfig.preset(preset, **{"in_channels": 1, **overrides})


class AudioVQGAN(VQGAN):
    """Log-mel (B, 128, T) <-> codes (B, (128/f) * (T/f)); waveforms through ``model.audio``.

    f is ``config.downsample_factor``: 8 gives UIO-2's 512 codes per clip, 16 the tiny model's 128.
    """

    def tokens_per_clip(self, n_frames: int = N_FRAMES) -> int:
        f = self.config.downsample_factor
        return (N_MELS // f) * (n_frames // f)

    def encode(self, log_mel) -> torch.Tensor:
        """Log-mel (128, T) or (B, 128, T), T a multiple of f -> int64 codes (B, (128/f) * (T/f))."""
        check_log_mel(log_mel)
        x = torch.as_tensor(log_mel, dtype=torch.float32)
        if x.ndim == 2:
            x = x[None]
        device = next(self.parameters()).device
        return self.encode_codes(normalize_log_mel(x)[:, None].to(device)).flatten(1)

    def decode(self, codes, n_frames: int | None = None) -> torch.Tensor:
        """Codes (B, (128/f) * (T/f)) -> log-mel (B, 128, T) float32 on the CPU; T defaults to the codes' count."""
        codes = torch.as_tensor(codes).long().to(next(self.parameters()).device)
        if codes.ndim == 1:
            codes = codes[None]
        f = self.config.downsample_factor
        rows = N_MELS // f
        if codes.ndim != 2 or codes.shape[1] % rows:
            raise ValueError(f"audio codes must be (B, {rows} * T/{f}), got {tuple(codes.shape)}")
        cols = codes.shape[1] // rows if n_frames is None else n_frames // f
        if rows * cols != codes.shape[1]:
            raise ValueError(
                f"{codes.shape[1]} codes do not make {n_frames} frames ({rows} x {cols} expected)"
            )
        x = self.decode_codes(codes.view(-1, rows, cols))
        return denormalize_log_mel(x[:, 0].float()).cpu()

    def encode_waveform(self, waveform) -> torch.Tensor:
        """16 kHz waveform (N,) or (B, N) -> codes (B, tokens_per_clip()) (padded / cut to 4.096 s first)."""
        log_mel = log_mel_spectrogram(waveform)
        return self.encode(log_mel)

    def decode_waveform(self, codes, n_iter: int = 32) -> np.ndarray:
        """Codes (B, tokens_per_clip()) -> float32 waveforms (B, 65536) in [-1, 1] through Griffin-Lim."""
        return log_mel_to_waveform(self.decode(codes), n_iter=n_iter)
