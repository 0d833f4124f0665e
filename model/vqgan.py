"""Convolutional VQ-GAN (Esser et al. 2021) with downsampling factor 8, and its image tokenizer.

``VQGAN`` maps a (B, C, H, W) float tensor in about [-1, 1] to a grid of (H/8, W/8)
discrete codes and back. It is fully convolutional, so one model tokenizes 64x64,
128x128 and 256x256 frames (256x256 -> 1024 codes, as Unified-IO 2). ``ImageVQGAN``
adds the uint8 image interface the processor uses; ``model.audio_vqgan.AudioVQGAN``
reuses the same network over log-mel spectrograms.

Weights are saved as safetensors and the config as JSON: loading never unpickles.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.quantizer import EMAVectorQuantizer

CONFIG_NAME = "vqgan_config.json"
WEIGHTS_NAME = "vqgan.safetensors"


@dataclass
class VQGANConfig:
    in_channels: int = 3
    channels: int = 128
    # One entry per resolution level; every level but the last halves the size: 4 levels -> f = 8.
    channel_mult: tuple[int, ...] = (1, 1, 2, 4)
    num_res_blocks: int = 2
    embed_dim: int = 64
    codebook_size: int = 16384
    ema_decay: float = 0.99
    commitment: float = 0.25
    restart_after: int = 50

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def preset(cls, name: str, **overrides) -> VQGANConfig:
        """``tiny`` trains on 2 CPU cores in minutes; ``paper`` is UIO-2's f=8, 16384-code image tokenizer."""
        presets = {
            "test": dict(
                channels=8, channel_mult=(1, 2, 2, 2), num_res_blocks=1, embed_dim=8, codebook_size=32
            ),
            "tiny": dict(
                channels=32, channel_mult=(1, 2, 2, 4), num_res_blocks=1, embed_dim=32, codebook_size=1024
            ),
            "small": dict(
                channels=64, channel_mult=(1, 2, 2, 4), num_res_blocks=2, embed_dim=64, codebook_size=4096
            ),
            "paper": dict(channels=128, channel_mult=(1, 1, 2, 4), num_res_blocks=2, embed_dim=256),
        }
        if name not in presets:
            raise ValueError(f"VQ-GAN preset must be one of {sorted(presets)}, got {name!r}")
        return cls(**{**presets[name], **overrides})


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        chans = [cfg.channels * m for m in cfg.channel_mult]
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)]
        c = chans[0]
        for level, c_level in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(c, c_level))
                c = c_level
            if level < len(chans) - 1:
                layers.append(nn.Conv2d(c, c, 4, stride=2, padding=1))
        layers += [ResBlock(c, c), _norm(c), nn.SiLU(), nn.Conv2d(c, cfg.embed_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        chans = [cfg.channels * m for m in cfg.channel_mult][::-1]
        c = chans[0]
        layers: list[nn.Module] = [nn.Conv2d(cfg.embed_dim, c, 3, padding=1), ResBlock(c, c)]
        for level, c_level in enumerate(chans):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResBlock(c, c_level))
                c = c_level
            if level < len(chans) - 1:
                # Nearest-neighbour upsampling + conv avoids transposed-conv checkerboards.
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
        layers += [_norm(c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VQGAN(nn.Module):
    """Encoder -> EMA vector quantiser -> decoder over (B, C, H, W) floats in about [-1, 1]."""

    def __init__(self, config: VQGANConfig | None = None) -> None:
        super().__init__()
        self.config = config or VQGANConfig()
        self.encoder = Encoder(self.config)
        self.quantizer = EMAVectorQuantizer(
            self.config.codebook_size,
            self.config.embed_dim,
            decay=self.config.ema_decay,
            commitment=self.config.commitment,
            restart_after=self.config.restart_after,
        )
        self.decoder = Decoder(self.config)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _check_input(self, x: torch.Tensor) -> None:
        f, c = self.config.downsample_factor, self.config.in_channels
        if x.ndim != 4 or x.shape[1] != c or x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"input must be (B, {c}, H, W) with H and W multiples of {f}, got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor):
        """Return (reconstruction, commitment loss, codes (B, h, w), info) — the training step's view."""
        self._check_input(x)
        z_q, vq_loss, codes, info = self.quantizer(self.encoder(x))
        return self.decoder(z_q), vq_loss, codes, info

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float -> (B, H/8, W/8) int64 codes; never updates the codebook."""
        self._check_input(x)
        z = self.encoder(x)
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        return self.quantizer.nearest(flat).view(b, h, w)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int codes -> (B, C, 8h, 8w) float reconstruction."""
        if codes.ndim != 3:
            raise ValueError(f"codes must be (B, h, w), got {tuple(codes.shape)}")
        return self.decoder(self.quantizer.codes_to_vectors(codes.long()))

    # -- checkpoint I/O: safetensors + JSON, no pickle ---------------------------------------------
    def save_pretrained(self, directory) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"class": type(self).__name__, "config": dataclasses.asdict(self.config)}
        (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory, device: str | torch.device = "cpu"):
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(
                f"no {CONFIG_NAME} in {directory}; expected a directory from save_pretrained"
            )
        meta = json.loads(config_path.read_text())
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{directory} holds a {meta.get('class')}, not a {cls.__name__}")
        config = meta["config"]
        config["channel_mult"] = tuple(config["channel_mult"])
        model = cls(VQGANConfig(**config))
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME), device=str(device)))
        return model.to(device).eval()


def images_to_tensor(images) -> torch.Tensor:
    """uint8 (B, H, W, 3) or (H, W, 3) numpy/tensor -> float (B, 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if x.ndim == 3:
        x = x[None]
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) or (H, W, 3) uint8, got {tuple(x.shape)} {x.dtype}")
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3) numpy, rounded and clipped."""
    x = (x.detach().float().clamp(-1, 1) + 1.0) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class ImageVQGAN(VQGAN):
    """The image tokenizer: uint8 RGB images <-> flat code sequences (row-major over the h x w grid)."""

    def tokens_per_image(self, height: int, width: int) -> int:
        f = self.config.downsample_factor
        return (height // f) * (width // f)

    def encode(self, images) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> int64 codes (B, (H/8) * (W/8)) in [0, codebook_size); H, W multiples of 8."""
        device = next(self.parameters()).device
        codes = self.encode_codes(images_to_tensor(images).to(device))
        return codes.flatten(1)

    def decode(self, codes, grid: tuple[int, int] | None = None) -> np.ndarray:
        """int codes (B, h*w) (or (B, h, w)) -> uint8 (B, 8h, 8w, 3). ``grid`` (h, w) defaults to square."""
        codes = torch.as_tensor(codes).long().to(next(self.parameters()).device)
        if codes.ndim == 1:
            codes = codes[None]
        if codes.ndim == 2:
            n = codes.shape[1]
            if grid is None:
                side = int(round(n**0.5))
                if side * side != n:
                    raise ValueError(f"{n} codes are not a square grid; pass grid=(h, w)")
                grid = (side, side)
            if grid[0] * grid[1] != n:
                raise ValueError(f"grid {grid} does not hold {n} codes")
            codes = codes.view(codes.shape[0], *grid)
        return tensor_to_images(self.decode_codes(codes))
