"""Action tokens: per-dimension q01/q99 normalisation, clipping, uniform bins (OpenVLA style).

A value is normalised to [-1, 1] with the dataset's q01/q99, clipped (and counted when it was
outside), binned into ``bins`` uniform bins, and decoded back to the bin centre with the same
statistics. Decoding always returns finite values inside [q01, q99]: an unusable token is an
error, never a silent zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ActionStats:
    """Per-dimension statistics of a dataset's actions; travel inside every checkpoint."""

    q01: list[float]
    q99: list[float]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.q01, np.float64), np.asarray(self.q99, np.float64)
        if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
            raise ValueError(f"q01 and q99 must be equal-length 1-D lists, got {lo.shape} and {hi.shape}")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(f"action statistics must be finite, got q01={self.q01} q99={self.q99}")
        if (hi < lo).any():
            raise ValueError(f"q99 must be >= q01 in every dimension, got q01={self.q01} q99={self.q99}")

    @property
    def dim(self) -> int:
        return len(self.q01)

    @classmethod
    def from_actions(cls, actions: np.ndarray) -> ActionStats:
        """Statistics over (..., D) actions (all leading axes pooled)."""
        a = np.asarray(actions, np.float64)
        if a.ndim < 1 or a.size == 0:
            raise ValueError(f"actions must be a non-empty (..., D) array, got {a.shape}")
        a = a.reshape(-1, a.shape[-1])
        if not np.isfinite(a).all():
            raise ValueError("actions contain NaN or inf; clean the dataset before computing statistics")
        q01, q99 = np.quantile(a, 0.01, axis=0), np.quantile(a, 0.99, axis=0)
        return cls(
            q01=q01.tolist(),
            q99=q99.tolist(),
            mean=a.mean(0).tolist(),
            std=a.std(0).tolist(),
            min=a.min(0).tolist(),
            max=a.max(0).tolist(),
        )

    def to_dict(self) -> dict:
        return dict(q01=self.q01, q99=self.q99, mean=self.mean, std=self.std, min=self.min, max=self.max)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ActionStats:
        return cls(**json.loads(Path(path).read_text()))


class ActionTokenizer:
    """(K, D) float actions <-> K*D bin indices in [0, bins)."""

    def __init__(self, stats: ActionStats, bins: int = 256):
        if bins < 2:
            raise ValueError(f"action bins must be >= 2, got {bins}")
        self.stats = stats
        self.bins = bins
        self.low = np.asarray(stats.q01, np.float64)
        self.high = np.asarray(stats.q99, np.float64)
        # A constant dimension (q01 == q99) gets a unit range so the division stays finite.
        self.span = np.where(self.high > self.low, self.high - self.low, 1.0)
        self.clipped_count = 0  # values outside [q01, q99] seen by encode
        self.total_count = 0

    @property
    def dim(self) -> int:
        return self.stats.dim

    @property
    def bin_width(self) -> np.ndarray:
        """Width of one bin per dimension, in action units."""
        return self.span / self.bins

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(K, D) or (D,) actions -> int64 bins of the same shape; out-of-range values are clipped and counted."""
        a = np.asarray(actions, np.float64)
        if a.shape[-1:] != (self.dim,):
            raise ValueError(f"actions must be (..., {self.dim}) to match the statistics, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("actions must be finite, got NaN or inf")
        norm = (a - self.low) / self.span * 2.0 - 1.0
        outside = (norm < -1.0) | (norm > 1.0)
        self.clipped_count += int(outside.sum())
        self.total_count += int(a.size)
        norm = np.clip(norm, -1.0, 1.0)
        return np.clip(np.floor((norm + 1.0) / 2.0 * self.bins), 0, self.bins - 1).astype(np.int64)

    def decode(self, bins: np.ndarray) -> np.ndarray:
        """Bins (..., D) -> float32 actions at the bin centres, inside [q01, q99], always finite."""
        b = np.asarray(bins)
        if b.shape[-1:] != (self.dim,):
            raise ValueError(f"action bins must be (..., {self.dim}), got {b.shape}")
        if not np.issubdtype(b.dtype, np.integer) or (b < 0).any() or (b >= self.bins).any():
            raise ValueError(f"action bins must be integers in [0, {self.bins}), got {b.min()}..{b.max()}")
        norm = (b.astype(np.float64) + 0.5) / self.bins * 2.0 - 1.0
        out = (norm + 1.0) / 2.0 * self.span + self.low
        return np.where(self.high > self.low, out, self.low).astype(np.float32)

    def clip_rate(self) -> float:
        return self.clipped_count / max(self.total_count, 1)
