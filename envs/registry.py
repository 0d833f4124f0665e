"""Registration of every environment with Gymnasium, and one factory for all of them."""

from __future__ import annotations

import gymnasium as gym

from envs.tasks import TASKS

# env id -> task name (our suite)
_SUITE_IDS = {
    "uio2/Reach-v0": "reach",
    "uio2/Push-v0": "push",
    "uio2/PickPlace-v0": "pick_place",
    "uio2/Stack-v0": "stack",
    "uio2/Drawer-v0": "drawer",
    "uio2/Button-v0": "button",
}
SUITE: list[str] = list(_SUITE_IDS)
TABLETOP = "uio2/Tabletop-v0"


def register_all() -> None:
    """Register the suite and the adapters (idempotent)."""
    for env_id, task in _SUITE_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point="envs.tabletop:TabletopEnv",
                kwargs={"task": task},
                max_episode_steps=TASKS[task].max_episode_steps,
            )
    if TABLETOP not in gym.registry:
        gym.register(
            TABLETOP,
            entry_point="envs.tabletop:TabletopEnv",
            kwargs={"task": None},
            max_episode_steps=max(t.max_episode_steps for t in TASKS.values()),
        )
    from envs.adapters import register_adapters

    register_adapters()


def make(env_id: str, **kwargs) -> gym.Env:
    """``gym.make`` with a clear error for unknown names (listing the uio2 ones)."""
    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("uio2/"))
        raise ValueError(f"unknown environment {env_id!r}; registered uio2 environments: {known}")
    return gym.make(env_id, **kwargs)


def make_benchmark(name: str, task: str | None = None, **kwargs) -> gym.Env:
    """One factory: ``make_benchmark("tabletop", "push")``, ``("metaworld", "pick-place-v3")``, ``("fetch", "Reach")``.

    ``name`` may also be a registered env id. Keyword arguments go to the env (image_size, cameras, ...).
    """
    key = name.lower()
    if key == "tabletop":
        if task is None:
            return make(TABLETOP, **kwargs)
        ids = {t: i for i, t in _SUITE_IDS.items()}
        if task not in ids:
            raise ValueError(f"unknown tabletop task {task!r}; expected one of {sorted(ids)}")
        return make(ids[task], **kwargs)
    if key == "metaworld":
        from envs.metaworld_env import METAWORLD_TASKS

        if task not in METAWORLD_TASKS:
            raise ValueError(
                f"unknown Meta-World task {task!r}; expected one of the MT50 names, e.g. 'reach-v3'"
            )
        return make(f"uio2/MetaWorld-{task}", **kwargs)
    if key == "fetch":
        if task not in ("Reach", "Push", "PickAndPlace", "Slide"):
            raise ValueError(f"unknown Fetch task {task!r}; expected Reach, Push, PickAndPlace or Slide")
        return make(f"uio2/Fetch{task}-v0", **kwargs)
    if task is None:
        return make(name, **kwargs)
    raise ValueError(f"unknown benchmark {name!r}; expected 'tabletop', 'metaworld', 'fetch' or an env id")
