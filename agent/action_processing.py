"""From predicted action chunks to the command executed at each step.

Two ways to execute a (K, D) chunk, both from the ACT/Octo line of work:

- receding horizon: run the first ``n_action_steps`` actions of a chunk, then re-plan;
- temporal ensembling (ACT): re-plan every step and average every chunk that covers
  the current step with weights ``exp(-m * i)``, ``i = 0`` for the oldest prediction.

Whatever the model produced, :func:`make_safe` is the last word: the command is
finite and inside ``[low, high]``.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def make_safe(
    action: np.ndarray, low: np.ndarray, high: np.ndarray, fallback: np.ndarray
) -> tuple[np.ndarray, int]:
    """Replace non-finite entries with ``fallback`` and clip into ``[low, high]``.

    Returns the safe action (float32) and how many entries had to be replaced.
    """
    action = np.asarray(action, dtype=np.float64)
    if action.shape != low.shape:
        raise ValueError(f"action must have shape {low.shape}, got {action.shape}")
    bad = ~np.isfinite(action)
    action = np.where(bad, fallback, action)
    return np.clip(action, low, high).astype(np.float32), int(bad.sum())


class ActionQueue:
    """Receding-horizon execution: pop actions of the current chunk, ask for a new one when empty."""

    def __init__(self, n_action_steps: int):
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def push_chunk(self, chunk: np.ndarray) -> None:
        if chunk.ndim != 2:
            raise ValueError(f"chunk must be (K, D), got shape {chunk.shape}")
        self._queue.clear()
        self._queue.extend(chunk[: self.n_action_steps])

    def pop(self) -> np.ndarray:
        if not self._queue:
            raise RuntimeError("action queue is empty: push a chunk first")
        return self._queue.popleft()


class TemporalEnsembler:
    """ACT temporal ensembling over the chunks predicted at every step."""

    def __init__(self, chunk_size: int, coeff: float = 0.01):
        self.chunk_size = chunk_size
        self.coeff = coeff
        self.reset()

    def reset(self) -> None:
        # chunks[i] predicted i steps ago (newest last); each keeps the actions still ahead.
        self._chunks: deque[np.ndarray] = deque(maxlen=self.chunk_size)

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk predicted now and return the ensembled action for the current step."""
        if chunk.shape[0] != self.chunk_size:
            raise ValueError(f"chunk must have {self.chunk_size} steps, got {chunk.shape[0]}")
        self._chunks.append(np.asarray(chunk, dtype=np.float64))
        # Oldest first: weights exp(-m * i) give the oldest prediction the most weight, as ACT does.
        actions = np.stack([c[0] for c in self._chunks])
        weights = np.exp(-self.coeff * np.arange(len(actions)))
        action = (weights[:, None] * actions).sum(0) / weights.sum()
        # Advance every stored chunk by one step; drop those that are used up.
        self._chunks = deque((c[1:] for c in self._chunks if len(c) > 1), maxlen=self.chunk_size)
        return action.astype(np.float32)
