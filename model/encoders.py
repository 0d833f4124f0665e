"""Input encoders: the image ViT and the audio AST (one patch transformer), the perceiver
resampler for image / audio history, and the robot-state projection.

The ViT is trained from scratch here. As in UIO-2, its features of the 2nd layer and of the
penultimate layer are concatenated and projected to the transformer width. Patches carry 2D RoPE
(row, column) inside the encoder and, like CLIP's ViT and the AST that UIO-2 starts from, a learned
absolute position embedding: with RoPE alone a patch learns where it is only from edge effects
(identical patches get identical features), and the decoder's cross-attention has no positions,
so nothing downstream could tell well *where* in the frame an object is, which a policy must (the
named cube is left of the gripper: move left).
"""

from __future__ import annotations

import torch
from torch import nn

from model.layers import CosineAttention, EncoderBlock, GatedMLP, RMSNorm, rope_angles, rope_tables


class ConvStem(nn.Module):
    """Stride-2 3x3 convolutions down to one vector per patch: (N, C, H, W) -> (N, P, dim), gh, gw.

    Replaces the ViT's linear patch embedding where the ViT starts from scratch on little compute
    (the tiny preset): convolutions see the colour edges of a 3-pixel cube long before a linear
    embedding of a whole patch learns to, and ViTs with such a stem train much faster (Xiao et al.
    2021, "Early Convolutions Help Transformers See Better"). UIO-2 starts from a pretrained ViT.
    """

    def __init__(self, in_channels: int, patch: int, dim: int):
        super().__init__()
        steps = patch.bit_length() - 1
        if patch < 2 or 1 << steps != patch:
            raise ValueError(f"a convolutional stem needs a power-of-two patch size >= 2, got {patch}")
        widths = [min(dim, 24 << i) for i in range(steps)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *widths], widths):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(widths[-1], dim, bias=False)
        self.patch = patch

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        if x.ndim == 3:
            x = x[:, None]
        h, w = x.shape[-2:]
        if h % self.patch or w % self.patch:
            raise ValueError(f"input {h}x{w} must be a multiple of the patch size {self.patch}")
        y = self.convs(x.to(self.out.weight.dtype))
        n, c, gh, gw = y.shape
        return self.out(y.flatten(2).transpose(1, 2)), gh, gw


class PatchEncoder(nn.Module):
    """ViT over (N, C, H, W) images or AST over (N, mels, frames) spectrograms -> (N, P, out_dim)."""

    def __init__(
        self,
        in_channels: int,
        patch: int | tuple[int, int],
        dim: int,
        layers: int,
        heads: int,
        mlp_dim: int,
        out_dim: int,
        eps: float = 1e-6,
        rope_base: float = 10000.0,
        grid: tuple[int, int] | None = None,
        conv_stem: bool = False,
    ):
        super().__init__()
        if layers < 3:
            raise ValueError(f"a patch encoder needs >= 3 layers (2nd + penultimate features), got {layers}")
        ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)  # (rows, columns)
        if conv_stem and ph != pw:
            raise ValueError(f"a convolutional stem needs square patches, got {ph}x{pw}")
        self.patch, self.heads, self.rope_base = (ph, pw), heads, rope_base
        self.embed = (
            ConvStem(in_channels, ph, dim) if conv_stem else nn.Linear(in_channels * ph * pw, dim, bias=False)
        )
        # (rows, columns) of the patch grid this encoder is built for; None: RoPE only.
        self.grid = tuple(grid) if grid is not None else None
        self.pos_embed = nn.Parameter(torch.randn(grid[0] * grid[1], dim) * 0.02) if grid else None
        # The last layer's output is never read (features come from the 2nd and the penultimate
        # layers), so it is not built: ``layers`` counts it, as a ViT-B/16 has 12.
        n_built = layers - 1
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, dim // heads, mlp_dim, eps) for _ in range(n_built)
        )
        self.feature_norm = RMSNorm(2 * dim, eps)
        self.proj = nn.Linear(2 * dim, out_dim, bias=False)
        self.taps = (1, n_built - 1)  # with 3 layers the 2nd layer is the penultimate

    def patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        if x.ndim == 3:  # spectrograms: one channel
            x = x[:, None]
        n, c, h, w = x.shape
        ph, pw = self.patch
        if h % ph or w % pw:
            raise ValueError(f"input {h}x{w} must be a multiple of the patch size {ph}x{pw}")
        gh, gw = h // ph, w // pw
        x = x.reshape(n, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c * ph * pw)
        return x, gh, gw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised concatenation of the 2nd and penultimate layers, (N, P, 2 * dim), before projection."""
        if isinstance(self.embed, ConvStem):
            h, gh, gw = self.embed(x)
        else:
            patches, gh, gw = self.patchify(x)
            h = self.embed(patches.to(self.embed.weight.dtype))
        if self.pos_embed is not None:
            if (gh, gw) != self.grid:
                raise ValueError(
                    f"input makes a {gh}x{gw} patch grid; this encoder's position embedding is for "
                    f"{self.grid[0]}x{self.grid[1]} (resize the input to the model's size)"
                )
            h = h + self.pos_embed.to(h.dtype)
        rows = torch.arange(gh, device=x.device).repeat_interleave(gw)
        cols = torch.arange(gw, device=x.device).repeat(gh)
        pos = torch.stack([rows, cols], -1)[None].expand(len(h), -1, -1)
        head_dim = self.blocks[0].attn.head_dim
        angles = rope_tables(
            rope_angles(
                pos, torch.ones(pos.shape[:2], dtype=torch.bool, device=x.device), head_dim, self.rope_base
            )
        )
        second = None
        for i, blk in enumerate(self.blocks):
            h = blk(h, None, angles)
            if i == self.taps[0]:
                second = h
        return self.feature_norm(torch.cat([second, h], -1))


class PerceiverResampler(nn.Module):
    """Learned latents cross-attend (scaled cosine attention) to one frame's features.

    (N, P, in_dim) -> (N, n_latents, out_dim). It runs at the encoder's width (as UIO-2's runs at
    its ViT's), not the transformer's, and projects at the end.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        n_latents: int,
        layers: int,
        heads: int,
        mlp_dim: int,
        out_dim: int,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.inp = nn.Linear(in_dim, dim, bias=False)
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleDict(
                dict(
                    norm_x=RMSNorm(dim, eps),
                    norm_l=RMSNorm(dim, eps),
                    attn=CosineAttention(dim, heads),
                    mlp_norm=RMSNorm(dim, eps),
                    mlp=GatedMLP(dim, mlp_dim),
                )
            )
            for _ in range(layers)
        )
        self.norm = RMSNorm(dim, eps)
        self.proj = nn.Linear(dim, out_dim, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.inp(features)
        lat = self.latents[None].expand(len(features), -1, -1).to(features.dtype)
        for layer in self.layers:
            q = layer["norm_l"](lat)
            # Latents attend to the frame's features and to themselves (Flamingo's resampler).
            context = torch.cat([layer["norm_x"](features), q], 1)
            lat = lat + layer["attn"](q, context)
            lat = lat + layer["mlp"](layer["mlp_norm"](lat))
        return self.proj(self.norm(lat))


class StateEncoder(nn.Module):
    """(N, max_state_dim) zero-padded robot state -> (N, 1, d): one encoder token."""

    def __init__(self, state_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Linear(state_dim, dim, bias=False), nn.SiLU(), nn.Linear(dim, dim, bias=False)
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.proj(state.to(self.proj[0].weight.dtype))[:, None]
