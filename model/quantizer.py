"""Vector quantiser with EMA codebook updates and dead-code restarts (shared by the image and audio VQ-GANs).

The codebook is not trained by gradients: each code moves to the exponential moving
average of the encoder vectors assigned to it (VQ-VAE-2, van den Oord et al. 2017
appendix), which is stable and needs no codebook loss. Codes that no vector has chosen
for ``restart_after`` training steps are re-seeded from random encoder vectors of the
current batch (as in Jukebox / SoundStream), so nearly the whole codebook stays in use.
The encoder gets a commitment loss and the straight-through gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class EMAVectorQuantizer(nn.Module):
    """Quantise (B, D, H, W) features to the nearest of ``codebook_size`` D-dim codes."""

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        decay: float = 0.99,
        commitment: float = 0.25,
        restart_after: int = 50,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if codebook_size < 2 or dim < 1:
            raise ValueError(f"codebook_size must be >= 2 and dim >= 1, got {codebook_size}, {dim}")
        self.codebook_size, self.dim = codebook_size, dim
        self.decay, self.commitment, self.restart_after, self.eps = decay, commitment, restart_after, eps
        self.register_buffer("embedding", torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed_sum", self.embedding.clone())
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))

    def codes_to_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int codes -> (B, D, H, W) code vectors."""
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(
                f"codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]"
            )
        return F.embedding(codes, self.embedding).permute(0, 3, 1, 2).contiguous()

    def nearest(self, flat: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """Index of the nearest code for each row of (N, D), in chunks so (N, K) never gets huge."""
        emb = self.embedding
        emb_sq = emb.pow(2).sum(1)
        out = []
        for part in flat.split(chunk):
            dist_ = part.pow(2).sum(1, keepdim=True) - 2 * part @ emb.t() + emb_sq[None]
            out.append(dist_.argmin(1))
        return torch.cat(out)

    def forward(self, z: torch.Tensor):
        """Return (quantised z with straight-through gradient, commitment loss, codes (B, H, W), info)."""
        b, d, h, w = z.shape
        if d != self.dim:
            raise ValueError(f"features must have {self.dim} channels, got {tuple(z.shape)}")
        flat = z.permute(0, 2, 3, 1).reshape(-1, d).float()
        if self.training and not bool(self.initialised):
            self._init_from(flat.detach())
        codes = self.nearest(flat.detach())
        quantised = self.embedding[codes]
        if self.training:
            self._ema_update(flat.detach(), codes)
        loss = self.commitment * F.mse_loss(flat, quantised.detach())
        quantised = flat + (quantised - flat).detach()  # straight-through estimator
        z_q = quantised.view(b, h, w, d).permute(0, 3, 1, 2).to(z.dtype)
        counts = torch.bincount(codes, minlength=self.codebook_size).float()
        probs = counts / counts.sum()
        info = {
            "perplexity": torch.exp(-(probs * torch.log(probs + 1e-10)).sum()),
            "batch_usage": (counts > 0).float().mean(),
        }
        return z_q, loss, codes.view(b, h, w), info

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        """Seed the codebook with encoder vectors (data-dependent init: no code starts far from the data)."""
        idx = torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)
        vectors = flat[idx] + 0.01 * flat.std() * torch.randn_like(flat[idx])
        vectors = self._broadcast(vectors)
        self.embedding.copy_(vectors)
        self.embed_sum.copy_(vectors)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot_sum = torch.zeros(self.codebook_size, device=flat.device).index_add_(
            0, codes, torch.ones_like(codes, dtype=torch.float)
        )
        vec_sum = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)
        if dist.is_available() and dist.is_initialized():  # every replica sees the same statistics
            dist.all_reduce(onehot_sum)
            dist.all_reduce(vec_sum)
        self.cluster_size.mul_(self.decay).add_(onehot_sum, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(vec_sum, alpha=1 - self.decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        n = self.cluster_size.sum()
        size = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embedding.copy_(self.embed_sum / size[:, None])
        self.steps_unused.add_(1).masked_fill_(onehot_sum > 0, 0)
        dead = self.steps_unused >= self.restart_after
        if dead.any():
            self._restart(dead, flat)

    @torch.no_grad()
    def _restart(self, dead: torch.Tensor, flat: torch.Tensor) -> None:
        """Re-seed dead codes from random encoder vectors of this batch."""
        n_dead = int(dead.sum())
        idx = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
        vectors = flat[idx] + 0.01 * flat.std() * torch.randn(n_dead, self.dim, device=flat.device)
        vectors = self._broadcast(vectors)
        self.embedding[dead] = vectors
        self.embed_sum[dead] = vectors
        self.cluster_size[dead] = 1.0
        self.steps_unused[dead] = 0

    @staticmethod
    def _broadcast(t: torch.Tensor) -> torch.Tensor:
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(t, src=0)
        return t
