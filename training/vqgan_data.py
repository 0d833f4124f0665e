"""Training data for the tokenizers: simulator frames (image VQ-GAN) and synthesised speech (audio VQ-GAN).

Frames come from our tabletop suite (``uio2/Tabletop-v0``, when ``envs`` provides it), its depth and
segmentation images as the depth and segmentation tasks draw them (``tabletop_maps``), and
from Meta-World, driven by random actions so the arm visits the whole workspace. Speech
comes from espeak-ng over many voices, speeds, pitches and sentences. Both are cached as
``.npz`` (plain arrays, no pickle) so a run re-uses what the last one rendered.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from model.audio import fit_clip

METAWORLD_TASKS = (
    "reach-v3", "push-v3", "pick-place-v3", "drawer-open-v3", "button-press-topdown-v3",
    "door-open-v3", "window-open-v3", "peg-insert-side-v3", "sweep-v3", "basketball-v3",
)  # fmt: skip
METAWORLD_CAMERAS = ("corner", "corner2", "corner3", "topview", "behindGripper")


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def render_metaworld(episodes: int, steps: int, size: int, seed: int, every: int = 2) -> np.ndarray:
    """(N, size, size, 3) uint8 frames from Meta-World tasks and cameras under random actions."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers Meta-World/*)

    rng = np.random.default_rng(seed)
    frames = []
    for ep in range(episodes):
        task = METAWORLD_TASKS[(seed + ep) % len(METAWORLD_TASKS)]
        camera = METAWORLD_CAMERAS[rng.integers(len(METAWORLD_CAMERAS))]
        env = gym.make(
            "Meta-World/MT1",
            env_name=task,
            render_mode="rgb_array",
            camera_name=camera,
            width=size,
            height=size,
        )
        env.reset(seed=int(rng.integers(1 << 30)))
        action = env.action_space.sample()
        for t in range(steps):
            # Smoothed random actions: the arm sweeps the workspace instead of jittering in place.
            action = np.clip(0.8 * action + 0.5 * rng.uniform(-1, 1, action.shape), -1, 1).astype(np.float32)
            env.step(action)
            if t % every == 0:
                # Meta-World's offscreen cameras render upside down.
                frames.append(np.ascontiguousarray(env.render()[::-1]))
        env.close()
    return np.stack(frames)


def _tabletop_walk(episodes: int, steps: int, size: int, seed: int, every: int, **env_kwargs):
    """Observations of ``uio2/Tabletop-v0`` every ``every`` steps of a smoothed random walk of the arm."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    import gymnasium as gym

    from envs.registry import register_all

    register_all()
    rng = np.random.default_rng(seed)
    env = gym.make("uio2/Tabletop-v0", image_size=size, **env_kwargs)
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed * 1000 + ep)
            action = env.action_space.sample()
            for t in range(steps):
                action = np.clip(0.8 * action + 0.5 * rng.uniform(-1, 1, action.shape), -1, 1).astype(
                    np.float32
                )
                obs, _, terminated, truncated, _ = env.step(action)
                if t % every == 0:
                    yield obs
                if terminated or truncated:
                    break
    finally:
        env.close()


def render_tabletop(episodes: int, steps: int, size: int, seed: int, every: int = 2) -> np.ndarray:
    """(N, size, size, 3) uint8 frames from ``uio2/Tabletop-v0`` (scene and wrist cameras), random actions."""
    walk = _tabletop_walk(episodes, steps, size, seed, every)
    return np.stack([np.asarray(img) for obs in walk for img in obs["images"].values()])


def render_tabletop_maps(episodes: int, steps: int, size: int, seed: int, every: int = 2) -> np.ndarray:
    """(N, size, size, 3) uint8 depth and segmentation images of the tabletop scene camera, random actions.

    They are the image targets of the depth and segmentation task families, drawn exactly as
    training/tasks/dense.py draws them: grey levels and flat palette colours that simulator frames
    never show, so a tokenizer trained on frames alone has no codes for them.
    """
    from training.tasks.dense import depth_to_image, segmentation_to_image

    walk = _tabletop_walk(
        episodes, steps, size, seed, every, cameras=("scene",), depth=True, segmentation=True
    )
    frames = []
    for obs in walk:
        frames.append(depth_to_image(obs["depth"]["scene"]))
        frames.append(segmentation_to_image(obs["segmentation"]["scene"]))
    return np.stack(frames)


def load_frames(source: str, episodes: int, steps: int, size: int, seed: int, cache_dir) -> np.ndarray:
    """Frames of one source ("metaworld", "tabletop", "tabletop_maps" or an .npz with ``frames``), cached by arguments."""
    if source.endswith(".npz"):
        frames = np.load(source)["frames"]
        return np.stack([_resize(f, size) for f in frames])
    render = {
        "metaworld": render_metaworld,
        "tabletop": render_tabletop,
        "tabletop_maps": render_tabletop_maps,
    }
    if source not in render:
        raise ValueError(f"frame source must be one of {sorted(render)} or a .npz path, got {source!r}")
    cache = Path(cache_dir) / f"{source}_e{episodes}_s{steps}_{size}px_seed{seed}.npz"
    if cache.is_file():
        return np.load(cache)["frames"]
    frames = render[source](episodes, steps, size, seed)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, frames=frames)
    return frames


# -- speech ---------------------------------------------------------------------------------------
VOICES = (
    "en-us", "en-us+f3", "en-us+m3", "en-gb", "en-gb+f2", "en-gb-scotland", "en-gb-scotland+f4",
    "en-gb-x-rp+m5", "en-029", "en-029+f1", "en-us-nyc", "en-gb-x-gbclan+f5",
)  # fmt: skip
_VERBS = ("pick up", "push", "move", "stack", "place", "grab", "open", "press", "slide", "lift")
_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
_OBJECTS = ("cube", "block", "ball", "cylinder", "drawer", "button", "mug", "bowl")
_PLACES = ("on the left", "to the right", "next to the bowl", "into the drawer", "on the green plate", "")
_EXTRA = (
    "what colour is the block on the table",
    "the quick brown fox jumps over the lazy dog",
    "how many objects are in front of the robot",
    "describe the scene in one sentence",
    "the gripper is open and the arm is above the table",
)


def make_sentences(n: int, seed: int) -> list[str]:
    """Robot instructions and questions from templates (so held-out seeds give unseen sentences)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.15:
            out.append(_EXTRA[rng.integers(len(_EXTRA))])
            continue
        words = [_VERBS[rng.integers(10)], "the", _COLOURS[rng.integers(8)], _OBJECTS[rng.integers(8)]]
        out.append(" ".join(words + [_PLACES[rng.integers(len(_PLACES))]]).strip())
    return out


def espeak(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by espeak-ng at 16 kHz -> (N,) float32 (envs.speech's cached synthesiser)."""
    from envs.speech import synthesize

    return np.array(synthesize(text, voice, speed, pitch))


def load_speech(n_clips: int, seed: int, cache_dir) -> tuple[np.ndarray, list[str]]:
    """(n_clips, 65536) float32 waveforms over random voices, speeds (110-220 wpm) and pitches, with texts."""
    cache = Path(cache_dir) / f"speech_n{n_clips}_seed{seed}.npz"
    if cache.is_file():
        data = np.load(cache)
        return data["waveforms"], [str(t) for t in data["texts"]]
    rng = np.random.default_rng(seed)
    texts = make_sentences(n_clips, seed)
    waves = []
    for text in texts:
        voice = VOICES[rng.integers(len(VOICES))]
        waves.append(fit_clip(espeak(text, voice, int(rng.integers(110, 221)), int(rng.integers(20, 81)))))
    waveforms = np.stack(waves)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, waveforms=waveforms, texts=np.array(texts))
    return waveforms, texts
