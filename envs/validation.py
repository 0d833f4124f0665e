"""Input checks shared by every environment: actions are validated before anything is simulated."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def check_action(action, space: spaces.Box) -> np.ndarray:
    """``action`` as a float32 array of ``space``'s shape, clipped to its bounds.

    Raises ValueError naming the value for a wrong shape, a non-numeric value or NaN/inf,
    so a bad action is never simulated.
    """
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"action must be numeric with shape {space.shape}, got {action!r}") from e
    if arr.shape != space.shape:
        raise ValueError(f"action must have shape {space.shape}, got {arr.shape}: {action!r}")
    if not np.isfinite(arr).all():
        bad = [i for i in range(arr.size) if not np.isfinite(arr.flat[i])]
        raise ValueError(f"action must be finite, got {arr.tolist()} (NaN/inf at index {bad})")
    return np.clip(arr, space.low, space.high).astype(np.float32)
