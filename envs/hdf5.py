"""robomimic / LIBERO HDF5 demonstrations: a reader producing ``Episode``s, and a small writer (for tests).

The layout both use::

    data/                      attrs: env_args (JSON), total; LIBERO: problem_info (JSON, language_instruction)
      demo_0/                  attrs: num_samples; optionally lang / language_instruction
        actions  (T, D)        rewards (T,), dones (T,)
        obs/<key>              images (T, H, W, 3) uint8 ("agentview_image", "agentview_rgb", ...),
                               low-dim (T, d) ("robot0_eef_pos", "joint_states", ...)

Images come back flipped or not as stored (robosuite's are upside down; pass ``flip_images=True``).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from envs.rollout import Episode
from envs.speech import pad_or_cut, synthesize


def _is_image(ds: h5py.Dataset) -> bool:
    return ds.dtype == np.uint8 and ds.ndim == 4 and ds.shape[-1] == 3


def _demo_key(k: str) -> tuple[int, str]:
    tail = k.rsplit("_", 1)[-1]
    return (int(tail), k) if tail.isdigit() else (1 << 30, k)


class RobomimicDataset:
    """Episodes of a robomimic or LIBERO HDF5 file: ``len(ds)``, ``ds.episode(i) -> Episode``."""

    def __init__(
        self,
        path: str | Path,
        state_keys: list[str] | None = None,
        image_keys: list[str] | None = None,
        flip_images: bool = False,
        speech: bool = True,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no HDF5 file at {self.path}")
        self.file = h5py.File(self.path, "r")
        if "data" not in self.file:
            raise ValueError(f"{self.path} has no 'data' group; expected the robomimic/LIBERO layout")
        data = self.file["data"]
        self.demos = sorted(data.keys(), key=_demo_key)
        self.env_args = json.loads(data.attrs.get("env_args", "{}") or "{}")
        problem = json.loads(data.attrs.get("problem_info", "{}") or "{}")
        self.default_instruction = problem.get("language_instruction", "")
        self.flip_images, self.speech = flip_images, speech
        obs = data[self.demos[0]]["obs"] if self.demos else {}
        keys = sorted(obs.keys()) if self.demos else []
        self.image_keys = image_keys or [k for k in keys if _is_image(obs[k])]
        self.state_keys = state_keys or [k for k in keys if k not in self.image_keys and obs[k].ndim <= 2]
        for k in [*self.image_keys, *self.state_keys]:
            if self.demos and k not in obs:
                raise ValueError(f"obs key {k!r} not in {self.path}; available: {keys}")

    def __len__(self) -> int:
        return len(self.demos)

    def close(self) -> None:
        self.file.close()

    def episode(self, i: int) -> Episode:
        if not 0 <= i < len(self):
            raise IndexError(f"episode index {i} out of range for {len(self)} demos")
        demo = self.file["data"][self.demos[i]]
        obs = demo["obs"]
        frames = {}
        for k in self.image_keys:
            img = obs[k][()]
            frames[k.removesuffix("_image").removesuffix("_rgb")] = (
                img[:, ::-1, ::-1] if self.flip_images else img
            )
        action = demo["actions"][()].astype(np.float32)
        n = len(action)
        parts = [obs[k][()].reshape(n, -1).astype(np.float32) for k in self.state_keys]
        state = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)
        reward = demo["rewards"][()].astype(np.float32) if "rewards" in demo else np.zeros(n, np.float32)
        text = demo.attrs.get("language_instruction", demo.attrs.get("lang", self.default_instruction))
        text = text.decode() if isinstance(text, bytes) else str(text)
        wave = pad_or_cut(synthesize(text)) if (self.speech and text.strip()) else pad_or_cut(np.zeros(0))
        success = bool(demo["dones"][()][-1]) if "dones" in demo else bool(reward[-1] > 0) if n else False
        return Episode(
            frames=frames,
            state=state,
            action=action,
            reward=reward,
            instruction=text,
            speech=wave,
            success=success,
            task=self.env_args.get("env_name", ""),
            env_id=str(self.path.name),
            meta={"demo": self.demos[i]},
        )


def write_robomimic(
    path: str | Path,
    episodes: list[Episode],
    env_name: str = "uio2",
    state_key: str = "state",
    language: bool = True,
) -> None:
    """Write episodes in the robomimic layout (images as obs/<camera>_image, state as obs/<state_key>)."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": env_name, "type": 1, "env_kwargs": {}})
        data.attrs["total"] = int(sum(len(e) for e in episodes))
        for i, ep in enumerate(episodes):
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = len(ep)
            if language:
                g.attrs["language_instruction"] = ep.instruction
            g.create_dataset("actions", data=ep.action)
            g.create_dataset("rewards", data=ep.reward)
            dones = np.zeros(len(ep), dtype=np.int64)
            dones[-1] = int(ep.success)
            g.create_dataset("dones", data=dones)
            obs = g.create_group("obs")
            for cam, frames in ep.frames.items():
                obs.create_dataset(f"{cam}_image", data=frames, compression="gzip")
            obs.create_dataset(state_key, data=ep.state)
