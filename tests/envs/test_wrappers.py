"""Gymnasium's own wrappers and vectorisation, and ours (history, action chunks)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import RecordVideo, TimeLimit

import envs  # noqa: F401  (registers the suite)
from envs.experts import get_expert
from envs.rollout import record_episode
from envs.tabletop import TabletopEnv
from envs.wrappers import ActionChunk, ObservationHistory


def test_record_video_writes_an_mp4(tmp_path):
    env = RecordVideo(
        gym.make("uio2/Reach-v0", image_size=64, render_mode="rgb_array"),
        str(tmp_path / "videos"),
        episode_trigger=lambda i: True,
        disable_logger=True,
    )
    env.reset(seed=0)
    for _ in range(10):
        env.step(env.action_space.sample())
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 1000


def test_time_limit_truncates():
    env = TimeLimit(TabletopEnv("drawer", image_size=16, cameras=("scene",)), max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(4, np.float32))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    env.close()


def test_registered_envs_carry_a_time_limit():
    env = gym.make("uio2/Button-v0", image_size=16)
    assert env.spec.max_episode_steps == 80
    env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    # A process that has rendered with EGL must not fork workers (Mesa's threads do not survive a fork):
    # async vector envs use the "spawn" (or "forkserver") start method.
    kwargs = {"context": "spawn"} if mode == "async" else {}
    vec = gym.make_vec(
        "uio2/Tabletop-v0", num_envs=2, vectorization_mode=mode, image_size=16, vector_kwargs=kwargs
    )
    try:
        obs, info = vec.reset(seed=[0, 1])
        assert obs["images"]["scene"].shape == (2, 16, 16, 3)
        assert obs["state"].shape == (2, 8) and obs["speech"].shape == (2, 65536)
        assert len(obs["instruction"]) == 2 and all(isinstance(t, str) for t in obs["instruction"])
        obs, reward, terminated, truncated, info = vec.step(vec.action_space.sample())
        assert reward.shape == (2,) and "is_success" in info
    finally:
        vec.close()


def test_observation_history_is_oldest_first():
    env = ObservationHistory(TabletopEnv("reach", image_size=16), image_history=3, audio_history=2)
    obs, _ = env.reset(seed=0)
    assert obs["image_history"]["scene"].shape == (3, 16, 16, 3)
    assert obs["audio_history"].shape == (2, 65536)
    np.testing.assert_array_equal(obs["history_pad"], [1, 1, 0])
    first = obs["images"]["wrist"]
    seen = [first]
    for _ in range(3):
        obs, *_ = env.step(np.array([1, 0, 0, 0], np.float32))
        seen.append(obs["images"]["wrist"])
    np.testing.assert_array_equal(obs["history_pad"], [0, 0, 0])
    np.testing.assert_array_equal(obs["image_history"]["wrist"], np.stack(seen[-3:]))  # oldest first
    assert not np.array_equal(seen[-1], seen[-3])
    check_env(ObservationHistory(TabletopEnv("reach", image_size=16), image_history=2))
    env.close()


def test_action_chunk_executes_a_receding_horizon():
    env = ActionChunk(TabletopEnv("reach", image_size=16, cameras=("scene",)), chunk_size=4, execute=2)
    assert env.action_space.shape == (4, 4)
    env.reset(seed=0)
    z0 = env.unwrapped.scene.grasp_pos()[2]
    chunk = np.zeros((4, 4), np.float32)
    chunk[:, 2] = 1.0  # up, at full speed
    _, _, _, _, info = env.step(chunk)
    assert info["executed"] == 2
    dz = env.unwrapped.scene.grasp_pos()[2] - z0
    assert 0.02 < dz < 0.035  # two steps of at most 0.015 m, not four
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(4, np.float32))
    bad = chunk.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        env.step(bad)
    env.close()


def test_action_chunk_stops_at_termination():
    # replay an expert episode (deterministic under its seed) in chunks of 8: the last chunk stops early
    plain = TabletopEnv("reach", image_size=16, cameras=("scene",))
    episode = record_episode(plain, get_expert(plain), seed=1)
    assert episode.success and len(episode) % 8 != 0
    env = ActionChunk(TabletopEnv("reach", image_size=16, cameras=("scene",)), chunk_size=8, execute=8)
    env.reset(seed=1)
    actions = np.concatenate([episode.action, np.zeros((8, 4), np.float32)])
    for start in range(0, len(episode), 8):
        _, reward, terminated, _, info = env.step(actions[start : start + 8])
    assert terminated and info["is_success"] and info["executed"] == len(episode) % 8 and reward == 1.0
    env.close()
    plain.close()
