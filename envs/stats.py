"""Feature statistics in LeRobot's layout: min, max, mean, std, count and quantiles q01 ... q99.

Low-dimensional features (state, action, reward) get exact statistics over every frame. Images get
per-channel statistics of values scaled to [0, 1] (shape (3, 1, 1), as LeRobot stores them) from a
pixel subsample of each episode, aggregated across episodes weighted by frame count.
"""

from __future__ import annotations

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def array_stats(x: np.ndarray) -> dict[str, list]:
    """Statistics over axis 0 of (N, ...) values."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    out = {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
        "count": np.array([len(x)]),
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(x, q, axis=0)
    return {k: v.tolist() for k, v in out.items()}


def image_stats(frames: np.ndarray, max_pixels: int = 20_000, seed: int = 0) -> dict[str, list]:
    """Per-channel stats of (T, H, W, 3) uint8 frames in [0, 1], shaped (3, 1, 1); ``count`` is T."""
    pixels = frames.reshape(-1, 3)
    if len(pixels) > max_pixels:
        idx = np.random.default_rng(seed).choice(len(pixels), max_pixels, replace=False)
        pixels = pixels[idx]
    s = array_stats(pixels.astype(np.float64) / 255.0)
    s = {k: [[[v]] for v in vals] for k, vals in s.items() if k != "count"}
    s["count"] = [len(frames)]
    return s


def aggregate(per_episode: list[dict[str, list]]) -> dict[str, list]:
    """Combine per-episode stats: exact min/max/mean/std, count-weighted mean of quantiles."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    w = counts / counts.sum()
    mins = np.stack([np.asarray(s["min"]) for s in per_episode])
    maxs = np.stack([np.asarray(s["max"]) for s in per_episode])
    means = np.stack([np.asarray(s["mean"]) for s in per_episode])
    stds = np.stack([np.asarray(s["std"]) for s in per_episode])
    shape = (-1,) + (1,) * (means.ndim - 1)
    mean = (means * w.reshape(shape)).sum(0)
    var = ((stds**2 + (means - mean) ** 2) * w.reshape(shape)).sum(0)
    out = {"min": mins.min(0), "max": maxs.max(0), "mean": mean, "std": np.sqrt(var), "count": [counts.sum()]}
    for name in QUANTILES:
        out[name] = (np.stack([np.asarray(s[name]) for s in per_episode]) * w.reshape(shape)).sum(0)
    return {k: np.asarray(v).tolist() if not isinstance(v, list) else [int(v[0])] for k, v in out.items()}
