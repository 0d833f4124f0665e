"""What the benchmark adapters share: our observation contract on top of another MuJoCo env.

An adapter wraps a Gymnasium env whose ``unwrapped`` has ``model``/``data`` (Meta-World, Fetch), renders
its named cameras with our fast ``Cameras`` (flipping those that come out rotated), and adds an
instruction (paraphrase templates) and its speech. Subclasses say how to build the inner env, which
part of its observation is proprioception, which instruction templates apply, and the expert.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.instructions import CHARSET, MAX_LENGTH
from envs.render import Cameras
from envs.speech import SPEECH_SAMPLES, SPEEDS, VOICES, pad_or_cut, synthesize
from envs.validation import check_action


class AdapterEnv(gym.Env):
    """Base class: subclasses set ``cameras_available``, ``rotated`` and implement the hooks below."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    cameras_available: tuple[str, ...] = ()
    rotated: frozenset[str] = frozenset()  # cameras whose image comes out rotated 180 degrees
    state_dim: int = 0

    def __init__(
        self,
        cameras: tuple[str, ...],
        image_size: int | tuple[int, int] = 96,
        render_mode: str | None = None,
        fast_render: bool = True,
    ):
        for cam in cameras:
            if cam not in self.cameras_available:
                raise ValueError(f"unknown camera {cam!r}; expected a subset of {self.cameras_available}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.camera_names = tuple(cameras)
        self.render_mode = render_mode
        self.inner = self._make_inner()
        u = self.inner.unwrapped
        # Control rate of the inner env (Meta-World 80 Hz, Fetch 25 Hz): the fps datasets record.
        self.metadata = {
            **self.metadata,
            "render_fps": u.metadata.get("render_fps", self.metadata["render_fps"]),
        }
        self.cameras = Cameras(u.model, fast=fast_render)
        h, w = self.image_size
        self.observation_space = spaces.Dict(
            {
                "images": spaces.Dict(
                    {c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.camera_names}
                ),
                "state": spaces.Box(-10.0, 10.0, (self.state_dim,), np.float32),
                "instruction": spaces.Text(max_length=MAX_LENGTH, min_length=1, charset=CHARSET),
                "speech": spaces.Box(-1.0, 1.0, (SPEECH_SAMPLES,), np.float32),
            }
        )
        inner_space = self.inner.action_space
        self.action_space = spaces.Box(
            inner_space.low.astype(np.float32), inner_space.high.astype(np.float32), dtype=np.float32
        )
        self.instruction = ""
        self.raw_obs: Any = None
        self._speech = np.zeros(SPEECH_SAMPLES, dtype=np.float32)

    # hooks -------------------------------------------------------------------
    def _make_inner(self) -> gym.Env:
        raise NotImplementedError

    def _state(self, raw) -> np.ndarray:
        raise NotImplementedError

    def _templates(self) -> list[str]:
        raise NotImplementedError

    def _success(self, info: dict) -> bool:
        return bool(info.get("is_success", info.get("success", False)))

    def expert(self):
        raise NotImplementedError

    def _before_reset(self, rng: np.random.Generator) -> None:
        """Pick per-episode variation of the inner env (Meta-World: its task)."""

    # gym API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self._before_reset(rng)
        raw, info = self.inner.reset(seed=int(rng.integers(2**31 - 1)))
        self.raw_obs = raw
        templates = self._templates()
        self.instruction = templates[rng.integers(len(templates))]
        self.voice = VOICES[rng.integers(len(VOICES))]
        self.speed = int(SPEEDS[rng.integers(len(SPEEDS))])
        self._speech = pad_or_cut(synthesize(self.instruction, self.voice, self.speed))
        return self._observation(), self._info(info)

    def step(self, action):
        action = check_action(action, self.action_space)
        raw, reward, terminated, truncated, info = self.inner.step(action)
        self.raw_obs = raw
        info = self._info(info)
        return self._observation(), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode == "rgb_array":
            return self._image(self.camera_names[0])
        return None

    def close(self):
        self.cameras.close()
        self.inner.close()

    # helpers -----------------------------------------------------------------
    def _image(self, camera: str) -> np.ndarray:
        img = self.cameras.rgb(self.inner.unwrapped.data, camera, self.image_size)
        return np.ascontiguousarray(img[::-1, ::-1]) if camera in self.rotated else img

    def _observation(self) -> dict:
        return {
            "images": {c: self._image(c) for c in self.camera_names},
            "state": np.clip(self._state(self.raw_obs), -10, 10).astype(np.float32),
            "instruction": self.instruction,
            "speech": self._speech.copy(),
        }

    def _info(self, info: dict) -> dict:
        out = {k: v for k, v in info.items() if isinstance(v, int | float | bool | str | np.number)}
        out.update(
            is_success=self._success(info),
            instruction=self.instruction,
            voice=getattr(self, "voice", ""),
            speed=getattr(self, "speed", 0),
        )
        return out


class RawObservationExpert:
    """Adapts a policy of the inner env's raw observation (``get_action(raw)``) to ``act(obs)``."""

    def __init__(self, env: AdapterEnv, policy):
        self.env, self.policy = env, policy

    def reset(self) -> None:
        if hasattr(self.policy, "reset"):
            self.policy.reset()

    def act(self, obs=None) -> np.ndarray:
        action = np.asarray(self.policy.get_action(self.env.raw_obs), dtype=np.float32)
        return np.clip(action, self.env.action_space.low, self.env.action_space.high)
