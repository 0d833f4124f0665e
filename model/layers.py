"""Transformer building blocks: RMSNorm, RoPE (1D and 2D), attention with QK-norm, gated-SiLU MLP.

All projections are bias-free (UIO-2, following T5/LLaMA). Attention goes through
``F.scaled_dot_product_attention`` with boolean masks built from segment ids, in fp32.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context with autocast off: attention and logits stay fp32 under bf16 training (UIO-2).

    Outside autocast it is a no-op context: entering a real one costs ~50 us, paid 4x per decode step."""
    if not torch.is_autocast_enabled(x.device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise in fp32 (bf16 mean-of-squares loses the small components). The result is
        fp32 under autocast (fp32 weights): consumers want fp32 (attention) or cast anyway
        (autocast linears), so no round trip through bf16; a model cast to bf16 stays bf16."""
        out = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return out.to(torch.promote_types(x.dtype, self.weight.dtype))


# -- rotary position embeddings ---------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _rope_frequencies(head_dim: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    half = head_dim // 2
    f1 = base ** (-torch.arange(0, half, device=device, dtype=torch.float32) / half)
    f2 = base ** (-torch.arange(0, half // 2, device=device, dtype=torch.float32) / (half // 2))
    return f1, f2


def rope_angles(
    pos: torch.Tensor, is_2d: torch.Tensor | None, head_dim: int, base: float = 10000.0
) -> torch.Tensor:
    """Rotation angles (..., head_dim / 2) per token.

    1D tokens (text) rotate all head_dim/2 pairs by ``pos[..., 0]`` with the usual frequencies;
    2D tokens (patches) rotate the first half of the pairs by the row ``pos[..., 0]`` and the second
    half by the column ``pos[..., 1]``, each half with the frequencies of a head_dim/2 RoPE.
    ``is_2d`` None: all tokens are 1D (``pos`` may then be (..., 1)).
    """
    f1, f2 = _rope_frequencies(head_dim, float(base), pos.device)
    p = pos.float()
    a1 = p[..., :1] * f1
    if is_2d is None:  # every token 1D
        return a1
    a2 = torch.cat([p[..., :1] * f2, p[..., 1:2] * f2], -1)
    return torch.where(is_2d[..., None], a2, a1)


def rope_tables(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, hd/2) angles -> (cos, sin) shaped to broadcast over heads; compute once, use in every layer."""
    return angles.cos()[:, None], angles.sin()[:, None]


def apply_rope(x: torch.Tensor, rope: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate pairs (i, i + head_dim/2) of x (..., B, H, L, hd) by angles (B, L, hd/2) or their rope_tables."""
    cos, sin = rope if isinstance(rope, tuple) else rope_tables(rope)
    x1, x2 = x.float().chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).to(x.dtype)


# -- masks from segment ids -------------------------------------------------------------------
def encoder_mask(seg: torch.Tensor) -> torch.Tensor:
    """(B, L) segment ids -> (B, 1, L, L): attend within the same example. Padding queries attend
    everywhere so that no softmax row is empty (their outputs are discarded)."""
    m = seg[:, :, None] == seg[:, None, :]
    return (m | (seg == 0)[:, :, None])[:, None]


def decoder_mask(seg: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """Causal, same example, and (UIO-2 dynamic masking) hidden keys visible only to themselves."""
    n = seg.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=seg.device).tril()
    m = (seg[:, :, None] == seg[:, None, :]) & causal
    if hidden is not None:
        eye = torch.eye(n, dtype=torch.bool, device=seg.device)
        m = m & (~hidden[:, None, :] | eye)
    return (m | (seg == 0)[:, :, None])[:, None]


def cross_mask(dec_seg: torch.Tensor, enc_seg: torch.Tensor) -> torch.Tensor:
    m = dec_seg[:, :, None] == enc_seg[:, None, :]
    return (m | (dec_seg == 0)[:, :, None])[:, None]


# -- layers -----------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head attention with QK-norm (after projection, before RoPE).

    Self-attention projects q, k, v with one fused matrix; cross-attention (``cross=True``)
    projects q from the queries and k, v (fused) from the context, once per generation.
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        head_dim: int,
        kv_dim: int | None = None,
        eps: float = 1e-6,
        cross: bool = False,
    ):
        super().__init__()
        self.n_heads, self.head_dim, self.cross = n_heads, head_dim, cross
        inner = n_heads * head_dim
        if cross:
            self.q = nn.Linear(dim, inner, bias=False)
            self.kv = nn.Linear(kv_dim or dim, 2 * inner, bias=False)
        else:
            self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.o = nn.Linear(inner, dim, bias=False)
        self.q_norm = RMSNorm(head_dim, eps)
        self.k_norm = RMSNorm(head_dim, eps)

    def _split(self, x: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        b, n, _ = x.shape
        return x.view(b, n, parts, self.n_heads, self.head_dim).unbind(2)  # each (B, L, H, hd)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys and values (B, H, Lc, hd); no RoPE (encoder and decoder positions are unrelated)."""
        k, v = self._split(self.kv(context), 2)
        return self.k_norm(k).transpose(1, 2), v.transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        angles=None,
        context: torch.Tensor | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: dict | None = None,
    ) -> torch.Tensor:
        """Self-attention, or cross-attention to ``context`` (or to its precomputed ``kv``).

        ``angles``: RoPE angles or their rope_tables (self-attention). ``cache`` (self-attention
        only): a KV cache dict; with "capacity" set, keys and values go into buffers allocated once
        (no copy of the whole cache per step), without it they are concatenated.
        """
        if self.cross:
            q = self.q_norm(self._split(self.q(x), 1)[0]).transpose(1, 2)
            k, v = kv if kv is not None else self.project_kv(context)
        else:
            b, n, _ = x.shape
            qkv = self.qkv(x).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            # q and k go through QK-norm and RoPE together, (2, B, H, L, hd): half the elementwise
            # ops (and autograd nodes) of doing them one by one.
            qk = F.rms_norm(qkv[:2].float(), (self.head_dim,), eps=self.q_norm.eps)
            qk = qk * torch.stack([self.q_norm.weight, self.k_norm.weight])[:, None, None, None]
            if angles is not None:
                qk = apply_rope(qk, angles)
            (q, k), v = qk.unbind(0), qkv[2]
            if cache is not None:
                k, v = _update_cache(cache, k, v)
        # Attention in fp32 (UIO-2): bf16 logits overflow with long packed rows.
        with full_precision(q):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
        b, _, n, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(b, n, -1).to(x.dtype))


def _update_cache(cache: dict, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = cache.get("length", 0)
    end = n + k.shape[2]
    if "capacity" not in cache:
        if n:
            k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
        cache.update(k=k, v=v, length=end)
        return k, v
    if "k" not in cache:
        b, h, _, d = k.shape
        cache["k"] = k.new_empty(b, h, cache["capacity"], d)
        cache["v"] = v.new_empty(b, h, cache["capacity"], d)
    if end > cache["capacity"]:
        raise ValueError(f"KV cache holds {cache['capacity']} positions; step needs {end}")
    cache["k"][:, :, n:end] = k
    cache["v"][:, :, n:end] = v
    cache["length"] = end
    return cache["k"][:, :, :end], cache["v"][:, :, :end]


class CosineAttention(nn.Module):
    """Scaled cosine attention (perceiver resampler): cos(q, k) * exp(min(s, ln 100)), s per head."""

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"resampler dim {dim} must be divisible by {n_heads} heads")
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.logit_scale = nn.Parameter(torch.full((n_heads, 1, 1), math.log(10.0)))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.n_heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        with full_precision(q):
            q = F.normalize(q.float(), dim=-1) * scale
            out = F.scaled_dot_product_attention(q, F.normalize(k.float(), dim=-1), v.float(), scale=1.0)
        return self.o(out.transpose(1, 2).reshape(b, n, d).to(x.dtype))


class GatedMLP(nn.Module):
    """SiLU-gated MLP (SwiGLU), no biases."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)  # gate and up projections, fused
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.down(F.silu(gate) * up)


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, head_dim: int, mlp_dim: int, eps: float = 1e-6):
        super().__init__()
        self.attn_norm = RMSNorm(dim, eps)
        self.attn = Attention(dim, n_heads, head_dim, eps=eps)
        self.mlp_norm = RMSNorm(dim, eps)
        self.mlp = GatedMLP(dim, mlp_dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, angles: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), mask, angles)
        return x + self.mlp(self.mlp_norm(x))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, head_dim: int, mlp_dim: int, eps: float = 1e-6):
        super().__init__()
        self.self_norm = RMSNorm(dim, eps)
        self.self_attn = Attention(dim, n_heads, head_dim, eps=eps)
        self.cross_norm = RMSNorm(dim, eps)
        self.cross_attn = Attention(dim, n_heads, head_dim, eps=eps, cross=True)
        self.mlp_norm = RMSNorm(dim, eps)
        self.mlp = GatedMLP(dim, mlp_dim)

    def forward(
        self,
        y: torch.Tensor,
        self_mask: torch.Tensor | None,
        angles: torch.Tensor,
        enc: torch.Tensor | None,
        x_mask: torch.Tensor | None,
        cross_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: dict | None = None,
    ) -> torch.Tensor:
        y = y + self.self_attn(self.self_norm(y), self_mask, angles, cache=cache)
        y = y + self.cross_attn(self.cross_norm(y), x_mask, context=enc, kv=cross_kv)
        return y + self.mlp(self.mlp_norm(y))


class WordPool(nn.Module):
    """Attention pooling of each example's instruction tokens with learned queries (one a head):
    (N, d) tokens and their example ids -> (examples, d), through a zero-initialised output
    projection (``config.decoder_text``): a query can pick the verb out of an instruction, where a
    mean carries mostly what every instruction shares."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(heads, d // heads))
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, example: torch.Tensor, n: int) -> torch.Tensor:
        h = self.heads
        k = self.k(x).unflatten(-1, (h, -1))
        scores = (k * self.query).sum(-1) / k.shape[-1] ** 0.5  # (N, heads)
        index = example[:, None].expand(-1, h)
        top = scores.new_full((n, h), float("-inf")).scatter_reduce(0, index, scores, "amax")
        w = torch.exp(scores - top[example])
        w = w / scores.new_zeros(n, h).index_add(0, example, w)[example]
        pooled = x.new_zeros(n, h, x.shape[-1] // h).index_add(
            0, example, w[..., None] * self.v(x).unflatten(-1, (h, -1))
        )
        return self.out(pooled.flatten(1))
