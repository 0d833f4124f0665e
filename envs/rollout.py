"""Recording one expert episode: frames per camera, state, action, instruction, speech, annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Episode:
    """One demonstration; row t holds the observation at t and the action taken from it.

    frames: camera -> (T, H, W, 3) uint8; state: (T, S) float32; action: (T, D) float32;
    reward: (T,) float32; annotations: T dicts camera -> ``env.annotations(camera)`` (or empty);
    speech: (65536,) float32 16 kHz; success: whether the episode ended in success;
    depth / segmentation: camera -> (T, H, W) float32 metres / int32 ids, when the env renders them;
    extras: more per-frame float32 vectors (T, n) by feature name, e.g. ``waypoint``, the expert's current
    absolute target beside the velocity it executed (envs/experts.py).
    """

    frames: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    instruction: str
    speech: np.ndarray
    success: bool
    task: str = ""
    env_id: str = ""
    seed: int | None = None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    depth: dict[str, np.ndarray] | None = None
    segmentation: dict[str, np.ndarray] | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.action)


def record_episode(
    env,
    expert,
    seed: int | None = None,
    max_steps: int | None = None,
    annotate: bool = True,
    action_noise: float = 0.0,
) -> Episode:
    """Roll out ``expert`` in ``env`` from ``reset(seed=seed)`` until it terminates, truncates or hits ``max_steps``.

    Works with any env of the observation contract; annotations are recorded where the env
    provides ``annotations(camera)`` and ``annotate`` is set. ``action_noise`` > 0 executes the
    expert's action plus Gaussian noise of that standard deviation (in action units, clipped to the
    action space) but records the expert's own action: DART (Laskey et al. 2017). The states then
    cover the expert's corrections from off its path, and an action no longer follows from the
    previous one (a cloned policy cannot just copy its last move).
    """
    if not action_noise >= 0.0:
        raise ValueError(f"action_noise must be >= 0 (a standard deviation), got {action_noise}")
    noise_rng = np.random.default_rng(None if seed is None else seed + 7_777_777)
    obs, info = env.reset(seed=seed)
    expert.reset()
    u = env.unwrapped
    cams = list(obs["images"])
    can_annotate = annotate and hasattr(u, "annotations")
    limit = max_steps or getattr(env.spec, "max_episode_steps", None) or getattr(u, "max_episode_steps", 500)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    maps: dict[str, dict[str, list[np.ndarray]]] = {
        k: {c: [] for c in obs[k]} for k in ("depth", "segmentation") if k in obs
    }
    states, actions, rewards, annotations = [], [], [], []
    extras: dict[str, list[np.ndarray]] = {}
    success = False
    for _ in range(limit):
        for c in cams:
            frames[c].append(obs["images"][c])
        states.append(obs["state"])
        for k, per_cam in maps.items():
            for c in per_cam:
                per_cam[c].append(obs[k][c])
        if can_annotate:
            annotations.append({c: u.annotations(c) for c in cams})
        action = np.asarray(expert.act(obs), dtype=np.float32)
        for key, value in (getattr(expert, "extras", None) or {}).items():
            extras.setdefault(key, []).append(np.asarray(value, dtype=np.float32))
        executed = action
        if action_noise > 0 and getattr(u, "control", "velocity") == "waypoint":
            # The same perturbation as in velocity mode: a noisy velocity, executed as the waypoint
            # one step away (noise on a far target would barely change the motion).
            velocity = np.asarray(expert.extras["velocity"], dtype=np.float32)
            noisy = velocity + noise_rng.normal(0.0, action_noise, velocity.shape).astype(np.float32)
            executed = u.waypoint_toward(np.clip(noisy, -1.0, 1.0))
        elif action_noise > 0:
            space = env.action_space
            executed = action + noise_rng.normal(0.0, action_noise, action.shape).astype(np.float32)
            executed = np.clip(executed, space.low, space.high).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(executed)
        actions.append(action)
        rewards.append(reward)
        success = success or bool(info.get("is_success", False))
        if terminated or truncated:
            break
    return Episode(
        frames={c: np.stack(v) for c, v in frames.items()},
        state=np.stack(states).astype(np.float32),
        action=np.stack(actions).astype(np.float32),
        reward=np.asarray(rewards, dtype=np.float32),
        instruction=obs["instruction"],
        speech=np.asarray(obs["speech"], dtype=np.float32),
        success=success,
        task=getattr(getattr(u, "task", None), "name", "") or getattr(u, "task_name", "") or "",
        env_id=env.spec.id if env.spec else "",
        seed=seed,
        annotations=annotations,
        meta={
            **{k: info[k] for k in ("voice", "speed") if k in info},
            **({"action_noise": action_noise} if action_noise > 0 else {}),
        },
        depth={c: np.stack(v) for c, v in maps["depth"].items()} if "depth" in maps else None,
        segmentation={c: np.stack(v) for c, v in maps["segmentation"].items()}
        if "segmentation" in maps
        else None,
        extras={k: np.stack(v) for k, v in extras.items()},
    )
