"""The tabletop suite: Gymnasium compliance, seeding, observation contract, annotations, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.speech import SPEECH_SAMPLES

ALL = [*envs.SUITE, envs.TABLETOP]


@pytest.mark.parametrize("env_id", ALL)
def test_check_env(env_id):
    env = gym.make(env_id, image_size=32, render_mode="rgb_array")
    try:
        check_env(env.unwrapped, skip_render_check=False)
    finally:
        env.close()


def test_check_env_with_depth_and_segmentation():
    env = gym.make("uio2/Push-v0", image_size=32, depth=True, segmentation=True)
    try:
        check_env(env.unwrapped)
        obs, _ = env.reset(seed=3)
        for cam in ("scene", "wrist"):
            assert obs["depth"][cam].shape == (32, 32) and obs["depth"][cam].dtype == np.float32
            assert (
                0.05 < obs["depth"][cam].min() < np.median(obs["depth"][cam]) < 2.0
                and obs["depth"][cam].max() <= 10
            )
            seg = obs["segmentation"][cam]
            assert seg.shape == (32, 32) and seg.dtype == np.int32
        # every visible object of the scene camera shows up in its segmentation image
        ids = set(np.unique(env.unwrapped.cameras.segmentation(env.unwrapped.scene.data, "scene", (96, 96))))
        for obj in env.unwrapped.annotations("scene")["objects"]:
            assert obj["id"] in ids, obj["name"]
    finally:
        env.close()


def test_observation_contract():
    env = gym.make("uio2/Tabletop-v0")
    obs, info = env.reset(seed=0)
    assert set(obs) == {"images", "state", "instruction", "speech"}
    assert set(obs["images"]) == {"scene", "wrist"}
    for img in obs["images"].values():
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and img.std() > 5
    assert obs["state"].shape == (8,) and obs["state"].dtype == np.float32
    assert isinstance(obs["instruction"], str) and obs["instruction"] == info["instruction"]
    sp = obs["speech"]
    assert sp.shape == (SPEECH_SAMPLES,) and sp.dtype == np.float32 and np.abs(sp).max() <= 1.0
    assert np.abs(sp[:8000]).max() > 0.05 and np.all(sp[-100:] == 0)  # speech, then zero padding
    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    env.close()


def test_seeded_determinism():
    a, b = gym.make("uio2/Tabletop-v0", image_size=32), gym.make("uio2/Tabletop-v0", image_size=32)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (20, 4)).astype(np.float32)
    for seed in (1, 7):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        assert oa["instruction"] == ob["instruction"]
        for act in actions:
            oa, *_ = a.step(act)
            ob, *_ = b.step(act)
        np.testing.assert_array_equal(oa["state"], ob["state"])
        np.testing.assert_array_equal(oa["images"]["scene"], ob["images"]["scene"])
        np.testing.assert_array_equal(oa["speech"], ob["speech"])
    # different seeds give different episodes
    insts = {a.reset(seed=s)[0]["instruction"] for s in range(8)}
    assert len(insts) > 4
    a.close()
    b.close()


def test_targets_and_paraphrases_vary_per_episode():
    env = gym.make("uio2/PickPlace-v0", image_size=32)
    targets, texts = set(), set()
    for seed in range(12):
        env.reset(seed=seed)
        u = env.unwrapped
        targets.add(
            u.scene.items[u.episode.target["object"]].shape + u.episode.colours[u.episode.target["object"]]
        )
        texts.add(u.instruction.split(" the ")[0])
    assert len(targets) > 4 and len(texts) > 2
    env.close()


def test_annotations_project_objects_into_the_image():
    env = gym.make("uio2/Stack-v0")
    env.reset(seed=2)
    ann = env.unwrapped.annotations("scene")
    assert ann["task"] == "stack" and ann["instruction"] == env.unwrapped.instruction
    names = [o["name"] for o in ann["objects"]]
    assert len(names) == 3 and all(n.endswith("cube") for n in names)
    assert ann["target"]["top"] in names and ann["target"]["bottom"] in names
    for o in ann["objects"]:
        x1, y1, x2, y2 = o["box"]
        assert o["visible"] and 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
        assert x1 <= o["point"][0] <= x2 and y1 <= o["point"][1] <= y2
        np.testing.assert_allclose(o["size"], [0.04, 0.04, 0.04], atol=1e-6)
        assert abs(o["center"][2] - 0.02) < 0.005
    # the box really surrounds the object's pixels: the object's colour is inside, not far outside
    img = env.unwrapped.cameras.rgb(env.unwrapped.scene.data, "scene", (96, 96))
    seg = env.unwrapped.cameras.segmentation(env.unwrapped.scene.data, "scene", (96, 96))
    for o in ann["objects"]:
        ys, xs = np.nonzero(seg == o["id"])
        assert xs.min() >= o["box"][0] - 1 and xs.max() <= o["box"][2] + 1
        assert ys.min() >= o["box"][1] - 1 and ys.max() <= o["box"][3] + 1
    assert img.shape == (96, 96, 3)
    occluded = env.unwrapped.annotations("scene", occlusion=True)
    for o, plain in zip(occluded["objects"], ann["objects"]):
        assert o["visible_pixels"] == int((seg == o["id"]).sum()) > 0 and o["box"] == plain["box"]
    wrist = env.unwrapped.annotations("wrist")
    assert wrist["camera"]["name"] == "wrist" and wrist["camera"]["pos"] != ann["camera"]["pos"]
    env.close()


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(3, np.float32), r"shape \(4,\)"),
        (np.zeros((4, 1), np.float32), r"shape \(4,\)"),
        (np.array([0, np.nan, 0, 0], np.float32), "NaN/inf at index \\[1\\]"),
        (np.array([np.inf, 0, 0, 0], np.float32), "finite"),
        ("left", "numeric"),
    ],
)
def test_bad_actions_are_rejected_and_not_simulated(action, match):
    env = gym.make("uio2/Reach-v0", image_size=32)
    env.reset(seed=0)
    before = env.unwrapped.scene.data.qpos.copy()
    with pytest.raises(ValueError, match=match):
        env.unwrapped.step(action)
    np.testing.assert_array_equal(env.unwrapped.scene.data.qpos, before)
    env.close()


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="'juggle'"):
        envs.make_benchmark("tabletop", "juggle")
    with pytest.raises(ValueError, match="uio2/Nope-v0"):
        envs.make("uio2/Nope-v0")
    with pytest.raises(ValueError, match="'fly'"):
        gym.make("uio2/Tabletop-v0").reset(options={"task": "fly"})
    with pytest.raises(ValueError, match="camera 'top'"):
        gym.make("uio2/Reach-v0", cameras=("top",))


def test_fast_render_matches_default_render():
    fast = gym.make("uio2/Push-v0", image_size=64, fast_render=True)
    slow = gym.make("uio2/Push-v0", image_size=64, fast_render=False)
    a = fast.reset(seed=4)[0]["images"]["scene"].astype(float)
    b = slow.reset(seed=4)[0]["images"]["scene"].astype(float)
    assert np.abs(a - b).mean() < 12  # shadows and anti-aliasing only
    assert fast.unwrapped.scene.model.vis.quality.offsamples == 0
    fast.close()
    slow.close()
