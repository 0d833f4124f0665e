"""Wrappers every env of the observation contract can use (Octo-style).

- ``ObservationHistory``: the last T camera frames and audio clips, oldest first, as
  ``obs["image_history"][camera]`` (T, H, W, 3) uint8 and ``obs["audio_history"]`` (T_a, N) float32,
  plus ``obs["history_pad"]`` (T,) bool, True where a slot was padded (by repeating the first frame).
- ``ActionChunk``: the action is a (K, D) chunk of future actions; ``step`` executes the first
  ``execute`` of them (receding horizon) and returns after the last one, or earlier at termination.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.validation import check_action


class ObservationHistory(gym.Wrapper):
    """Adds frame and audio history (oldest first) to dict observations with "images" and "speech"."""

    def __init__(
        self, env: gym.Env, image_history: int = 2, audio_history: int = 1, audio_key: str = "speech"
    ):
        super().__init__(env)
        if image_history < 1 or audio_history < 0:
            raise ValueError(
                f"image_history must be >= 1 and audio_history >= 0, got {image_history}, {audio_history}"
            )
        self.image_history, self.audio_history, self.audio_key = image_history, audio_history, audio_key
        base = env.observation_space
        if not isinstance(base, spaces.Dict) or "images" not in base.spaces:
            raise ValueError(f"ObservationHistory needs a Dict observation space with 'images', got {base}")
        extra = {
            "image_history": spaces.Dict(
                {
                    c: spaces.Box(0, 255, (image_history, *s.shape), np.uint8)
                    for c, s in base["images"].spaces.items()
                }
            ),
            "history_pad": spaces.MultiBinary(image_history),
        }
        if audio_history:
            a = base[audio_key]
            extra["audio_history"] = spaces.Box(-1.0, 1.0, (audio_history, *a.shape), np.float32)
        self.observation_space = spaces.Dict({**base.spaces, **extra})
        self._frames: deque = deque(maxlen=image_history)
        self._audio: deque = deque(maxlen=max(audio_history, 1))
        self._count = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._frames.clear()
        self._audio.clear()
        self._count = 0
        return self._push(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._push(obs), reward, terminated, truncated, info

    def _push(self, obs: dict) -> dict:
        self._count += 1
        self._frames.append(obs["images"])
        if self.audio_history:
            self._audio.append(obs[self.audio_key])
        while len(self._frames) < self.image_history:  # pad at the old end by repeating the first frame
            self._frames.appendleft(self._frames[0])
        while self.audio_history and len(self._audio) < self.audio_history:
            self._audio.appendleft(self._audio[0])
        out = dict(obs)
        out["image_history"] = {c: np.stack([f[c] for f in self._frames]) for c in obs["images"]}
        pad = np.zeros(self.image_history, dtype=np.int8)
        pad[: max(0, self.image_history - self._count)] = 1
        out["history_pad"] = pad
        if self.audio_history:
            out["audio_history"] = np.stack(list(self._audio)).astype(np.float32)
        return out


class ActionChunk(gym.Wrapper):
    """Takes a (K, D) action chunk and executes its first ``execute`` rows (receding-horizon control)."""

    def __init__(self, env: gym.Env, chunk_size: int = 4, execute: int | None = None):
        super().__init__(env)
        base = env.action_space
        if not isinstance(base, spaces.Box) or len(base.shape) != 1:
            raise ValueError(f"ActionChunk needs a 1-D Box action space, got {base}")
        execute = chunk_size if execute is None else execute
        if not 1 <= execute <= chunk_size:
            raise ValueError(f"execute must be in [1, chunk_size={chunk_size}], got {execute}")
        self.chunk_size, self.execute = chunk_size, execute
        low = np.broadcast_to(base.low, (chunk_size, *base.shape))
        high = np.broadcast_to(base.high, (chunk_size, *base.shape))
        self.action_space = spaces.Box(low, high, dtype=base.dtype)

    def step(self, action):
        chunk = check_action(action, self.action_space)  # the whole chunk is checked before any row runs
        total = 0.0
        for i in range(self.execute):
            obs, reward, terminated, truncated, info = self.env.step(chunk[i])
            total += float(reward)
            if terminated or truncated:
                break
        info = dict(info, executed=i + 1)
        return obs, total, terminated, truncated, info
