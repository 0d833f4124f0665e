"""A cache of per-frame image encodings, so a policy encodes each camera frame once.

A policy sees frame t as its current image, then again as history at t+1 and t+2: without a
cache the ViT (and the history resampler) would run on the same pixels three times per frame.
Entries are keyed by the frame's processed pixels, so a hit is exactly what recomputing would
give, whichever session or batch row the frame comes from. The cache empties itself when the
weights change (any in-place update bumps a parameter's version counter), so a policy wrapped
around a model that is still training never reads stale features.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn


class FrameCache:
    """LRU maps frame pixels -> ViT features and -> resampled history latents (inference only)."""

    def __init__(self, max_frames: int = 64):
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        self.max_frames = max_frames
        self._tables: dict[str, OrderedDict] = {"features": OrderedDict(), "latents": OrderedDict()}
        self._version: tuple[int, ...] | None = None
        self.hits = self.misses = 0

    def clear(self) -> None:
        for table in self._tables.values():
            table.clear()

    def check_weights(self, *modules: nn.Module) -> None:
        """Forget everything if any parameter of ``modules`` changed since the last call."""
        version = tuple(p._version for m in modules for p in m.parameters())
        if version != self._version:
            self.clear()
            self._version = version

    def lookup(
        self, table: str, frames: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``compute(frames)`` (N, ...) -> (N, ...), running it only on the frames not cached yet."""
        cache = self._tables[table]
        # Raw bytes (any dtype, any device) plus the shape: equal keys mean equal inputs.
        keys = [(tuple(f.shape), f.contiguous().view(torch.uint8).cpu().numpy().tobytes()) for f in frames]
        missing = [i for i, k in enumerate(keys) if k not in cache]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            for i, out in zip(missing, compute(frames[missing])):
                cache[keys[i]] = out
        for k in keys:
            cache.move_to_end(k)
        while len(cache) > self.max_frames:
            cache.popitem(last=False)
        return torch.stack([cache[k] for k in keys])
