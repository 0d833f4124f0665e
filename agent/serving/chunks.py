"""Merging overlapping action chunks that arrive while earlier ones are still being executed.

Asynchronous chunked control (LeRobot async inference, real-time chunking): the next chunk is asked for
while the current one runs, so when it arrives some of its first actions are already in the past and
the rest overlap actions still queued. Each future step keeps every prediction made for it and executes
their ACT-weighted mean, ``w_i = exp(-m * i)`` with ``i = 0`` for the oldest prediction (ACT, Zhao et al.
2023), which is the same rule agent/action_processing.TemporalEnsembler applies when re-planning each step.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class ChunkMerger:
    """A queue of future actions, indexed by absolute step, into which chunks are merged."""

    def __init__(self, coeff: float = 0.01) -> None:
        self.coeff = coeff
        self.reset()

    def reset(self) -> None:
        self.step = 0  # absolute index of the next action to execute
        # For each queued step: [weighted sum, weight sum, number of predictions so far].
        self._slots: deque[list] = deque()

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, chunk: np.ndarray, start_step: int) -> int:
        """Merge a (K, D) chunk whose first action is for ``start_step``; returns how many actions were stale."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2:
            raise ValueError(f"chunk must be (K, D), got shape {chunk.shape}")
        stale = max(0, self.step - start_step)
        for offset, action in enumerate(chunk[stale:]):
            if offset < len(self._slots):
                slot = self._slots[offset]
                weight = np.exp(-self.coeff * slot[2])
                slot[0] = slot[0] + weight * action
                slot[1] += weight
                slot[2] += 1
            else:
                self._slots.append([action.copy(), 1.0, 1])
        return min(stale, len(chunk))

    def pop(self) -> np.ndarray:
        """The merged action for the current step; advances the step."""
        if not self._slots:
            raise RuntimeError("no queued action: merge a chunk first")
        total, weight, _ = self._slots.popleft()
        self.step += 1
        return (total / weight).astype(np.float32)
