"""Meta-World and Fetch adapters: same observation contract, registration, experts, seeding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.experts import get_expert
from envs.metaworld_env import DESCRIPTIONS, METAWORLD_TASKS, MT10_TASKS
from envs.rollout import record_episode

# Making a Meta-World env builds its 50-goal MT1 benchmark (about 2 s, 8 s under check_env), so CI checks
# a sample; benchmarks/expert_success.py --metaworld runs the MT10 experts.
MW_SAMPLE = ["reach-v3", "pick-place-v3"]
FETCH = ["Reach", "Push", "PickAndPlace", "Slide"]


def test_every_adapter_is_registered():
    for task in METAWORLD_TASKS:
        assert f"uio2/MetaWorld-{task}" in gym.registry
        assert DESCRIPTIONS[task]
    assert set(MT10_TASKS) <= set(METAWORLD_TASKS) and len(METAWORLD_TASKS) == 50
    for task in ("Reach", "Push", "PickAndPlace", "Slide"):
        assert f"uio2/Fetch{task}-v0" in gym.registry


def _check_contract(obs, cameras, state_dim):
    assert set(obs["images"]) == set(cameras)
    for img in obs["images"].values():
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img.std() > 3
    assert obs["state"].shape == (state_dim,) and obs["state"].dtype == np.float32
    assert isinstance(obs["instruction"], str) and obs["instruction"]
    assert obs["speech"].shape == (65536,) and np.abs(obs["speech"]).max() > 0.05


@pytest.mark.slow
@pytest.mark.parametrize("task", MW_SAMPLE)
def test_metaworld_check_env_and_contract(task):
    env = envs.make_benchmark("metaworld", task, image_size=32)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    _check_contract(obs, ("corner", "gripperPOV"), 4)
    env.close()


@pytest.mark.parametrize("task", FETCH)
def test_fetch_check_env_and_contract(task):
    env = envs.make_benchmark("fetch", task, image_size=32)
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    _check_contract(obs, ("external_camera_0",), 10)
    env.close()


def test_metaworld_seeding_and_instruction_templates():
    env = gym.make("uio2/MetaWorld-push-v3", image_size=32, cameras=("corner",))
    a = env.reset(seed=5)[0]
    b = env.reset(seed=5)[0]
    np.testing.assert_array_equal(a["images"]["corner"], b["images"]["corner"])
    assert a["instruction"] == b["instruction"]
    # a second env (as in another process) draws the same goal for the same seed: MT1's goal set is seeded
    other = gym.make("uio2/MetaWorld-push-v3", image_size=32, cameras=("corner",))
    other.reset(seed=5)
    env.reset(seed=5)
    np.testing.assert_array_equal(
        other.unwrapped.inner.unwrapped._target_pos, env.unwrapped.inner.unwrapped._target_pos
    )
    other.close()
    goals = set()
    for s in range(4):
        env.reset(seed=s)
        goals.add(tuple(np.round(env.unwrapped.inner.unwrapped._target_pos, 4)))
    assert len(goals) > 1  # each seed draws one of the task's MT1 goals
    texts = {env.reset(seed=s)[0]["instruction"] for s in range(12)}
    assert len(texts) > 3 and all("puck" in t for t in texts)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0, 0, 0]))
    env.close()


def test_metaworld_corner_camera_is_upright():
    # The sky/backdrop (top rows) is brighter than the floor and table (bottom rows) once rotated back.
    env = gym.make("uio2/MetaWorld-reach-v3", image_size=64, cameras=("corner",))
    img = env.reset(seed=0)[0]["images"]["corner"].astype(float)
    raw = env.unwrapped.cameras.rgb(env.unwrapped.inner.unwrapped.data, "corner", (64, 64)).astype(float)
    np.testing.assert_array_equal(img, raw[::-1, ::-1])
    assert img[:16].mean() > img[-16:].mean()
    env.close()


@pytest.mark.parametrize("task", ["reach-v3", "drawer-open-v3"])
def test_metaworld_expert(task):
    env = gym.make(f"uio2/MetaWorld-{task}", image_size=16, cameras=("corner",))
    expert = get_expert(env)
    eps = [record_episode(env, expert, seed=s, annotate=False) for s in range(2)]
    assert all(e.success for e in eps) and all(len(e) < 500 for e in eps)  # terminates on success
    env.close()


@pytest.mark.parametrize("task", ["Reach", "PickAndPlace"])
def test_fetch_expert(task):
    env = gym.make(f"uio2/Fetch{task}-v0", image_size=16)
    expert = get_expert(env)
    results = [record_episode(env, expert, seed=s, annotate=False).success for s in range(5)]
    assert all(results), results
    env.close()


def test_unknown_adapter_tasks():
    with pytest.raises(ValueError, match="'fly-v3'"):
        envs.make_benchmark("metaworld", "fly-v3")
    with pytest.raises(ValueError, match="'Juggle'"):
        envs.make_benchmark("fetch", "Juggle")
    with pytest.raises(ValueError, match="'atari'"):
        envs.make_benchmark("atari", "pong")
