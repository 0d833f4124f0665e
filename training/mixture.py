"""TaskMixture: example i of the stream, deterministically, from (seed, i) alone.

Every example is a pure function of its index, so a resumed run sees exactly the
examples an uninterrupted one would, and DDP ranks can take disjoint slices of the
same global batch without talking to each other.
"""

from __future__ import annotations

import logging

import numpy as np

from model.example import Example
from training.episodes import EpisodeData
from training.tasks import FAMILIES, TaskContext, select

log = logging.getLogger(__name__)
MAX_DRAWS = 64  # a family may decline a frame (nothing visible); draw again, but never loop forever


def mixture_weights(mixture: dict[str, float], speech_prob: float | None = None) -> dict[str, float]:
    """The configured weights; ``speech_prob`` re-splits the action weight between text and speech."""
    weights = dict(mixture)
    if speech_prob is not None:
        if not 0.0 <= speech_prob <= 1.0:
            raise ValueError(f"data.speech_prob must be in [0, 1], got {speech_prob}")
        total = weights.get("action", 0.0) + weights.get("action_speech", 0.0)
        weights["action"], weights["action_speech"] = (1 - speech_prob) * total, speech_prob * total
    return weights


class TaskMixture:
    def __init__(
        self,
        episodes: list[EpisodeData],
        mixture: dict[str, float],
        ctx: TaskContext,
        seed: int = 0,
        quiet: bool = False,
    ):
        if not episodes:
            raise ValueError("TaskMixture needs at least one episode")
        self.episodes = episodes
        self.ctx = ctx
        self.seed = seed
        self.weights, self.dropped = select(mixture, ctx.capabilities)
        for name, reason in self.dropped.items():
            (log.debug if quiet else log.warning)("task family %r skipped: %s", name, reason)
        if not self.weights:
            raise ValueError(
                f"no task family can run: every one in data.mixture was dropped ({self.dropped}) or weighted 0"
            )
        self.names = list(self.weights)
        p = np.array([self.weights[n] for n in self.names], np.float64)
        self.p = p / p.sum()
        self.drawn = dict.fromkeys(self.names, 0)

    def example(self, index: int) -> Example:
        """The ``index``-th example of the stream (same seed, same index: same example)."""
        rng = np.random.default_rng([self.seed, index])
        for _ in range(MAX_DRAWS):
            name = self.names[int(rng.choice(len(self.names), p=self.p))]
            ep = self.episodes[int(rng.integers(len(self.episodes)))]
            t = int(rng.integers(len(ep)))
            ex = FAMILIES[name].make(ep, t, rng, self.ctx)
            if ex is not None:
                self.drawn[name] += 1
                return ex
        raise RuntimeError(
            f"example {index}: {MAX_DRAWS} draws made no example; families {self.names} all declined the data"
        )
