"""Registration of the Meta-World and Fetch adapters (their packages load only when an env is made)."""

from __future__ import annotations

import gymnasium as gym


def register_adapters() -> None:
    from envs.metaworld_env import METAWORLD_TASKS

    for task in METAWORLD_TASKS:
        env_id = f"uio2/MetaWorld-{task}"  # task names already end in -v3
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="envs.metaworld_env:MetaWorldEnv",
                kwargs={"task": task},
                max_episode_steps=500,
            )
    for task in ("Reach", "Push", "PickAndPlace", "Slide"):
        env_id = f"uio2/Fetch{task}-v0"
        if env_id not in gym.registry:
            gym.register(
                env_id, entry_point="envs.fetch_env:FetchEnv", kwargs={"task": task}, max_episode_steps=50
            )
