"""``TabletopEnv``: the instruction-following MuJoCo tabletop as a Gymnasium environment.

Observation (a dict, the project's contract, see /tmp/coord/API.md):
- ``images``: camera -> (H, W, 3) uint8 RGB, cameras "scene" (fixed, front) and "wrist" (on the hand).
- ``state``: (8,) float32 = grasp point xyz (m, world; table top at z = 0), its velocity xyz (m/s),
  finger opening (m, 0.013 closed .. 0.09 open), gripper closed (0/1).
- ``instruction``: str, a paraphrase of the episode's goal; ``speech``: (65536,) float32, that
  instruction spoken at 16 kHz (voice and speed drawn per episode), zero-padded.
- optional ``depth`` (metres, at most 10: background) and ``segmentation`` (root body ids, see ``annotations``) per camera.

Action, ``control="velocity"`` (the default): Box(-1, 1, (4,)): dx, dy, dz of the grasp point in units
of ``max_delta`` metres per step (0.015 m by default; one step is 20 ms of physics), gripper (> 0 close,
<= 0 open). ``control="waypoint"`` (UIO-2 acted on VIMA-Bench through poses): x, y, z, the grasp
point's absolute target in the table frame (metres; the table top is z = 0), inside the workspace, and
the gripper; the controller moves toward it by at most ``max_delta`` per axis and step (the experts'
own saturated law). Values outside the space are clipped; wrong shapes and NaN/inf raise ValueError
and are never simulated.
The episode terminates when the task's success predicate holds (``info["is_success"]``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.annotate import annotations as _annotations
from envs.instructions import CHARSET, MAX_LENGTH
from envs.render import Cameras
from envs.scene import WORKSPACE_HIGH, WORKSPACE_LOW, Scene
from envs.speech import SPEECH_SAMPLES, SPEEDS, VOICES, pad_or_cut, synthesize
from envs.tasks import TASKS, Task
from envs.validation import check_action

CAMERAS = ("scene", "wrist")
CONTROL_MODES = ("velocity", "waypoint")
MAX_DEPTH = 10.0  # metres; pixels that see nothing (the far plane) read this


class TabletopEnv(gym.Env):
    """One task of the suite (``task="push"``), or a task drawn per episode (``task=None``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    robot_type = "uio2_tabletop"
    state_names = [
        "grasp_x",
        "grasp_y",
        "grasp_z",
        "grasp_vx",
        "grasp_vy",
        "grasp_vz",
        "finger_opening",
        "gripper_closed",
    ]
    action_names = ["dx", "dy", "dz", "gripper"]

    def __init__(
        self,
        task: str | None = None,
        image_size: int | tuple[int, int] = 96,
        cameras: tuple[str, ...] = CAMERAS,
        depth: bool = False,
        segmentation: bool = False,
        render_mode: str | None = None,
        fast_render: bool = True,
        max_delta: float = 0.015,
        tasks: tuple[str, ...] | None = None,
        control: str = "velocity",
    ):
        if control not in CONTROL_MODES:
            raise ValueError(f"unknown control mode {control!r}; expected one of {CONTROL_MODES}")
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown tabletop task {task!r}; expected one of {sorted(TASKS)} or None")
        for name in tasks or ():
            if name not in TASKS:
                raise ValueError(
                    f"unknown tabletop task {name!r} in tasks; expected names from {sorted(TASKS)}"
                )
        for cam in cameras:
            if cam not in CAMERAS:
                raise ValueError(f"unknown camera {cam!r}; expected a subset of {CAMERAS}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"image_size must be an int or (height, width) >= 8, got {image_size!r}")
        self.task_name = task
        self.task_pool = tuple(tasks or TASKS)
        self.image_size = size
        self.camera_names = tuple(cameras)
        self.want_depth, self.want_segmentation = depth, segmentation
        self.render_mode = render_mode
        self.scene = Scene(max_delta=max_delta)
        self.cameras = Cameras(self.scene.model, fast=fast_render)
        self.task: Task = TASKS[task or self.task_pool[0]]()
        self.episode = None
        self.instruction = ""
        self._speech = np.zeros(SPEECH_SAMPLES, dtype=np.float32)

        h, w = size
        obs = {
            "images": spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in cameras}),
            "state": spaces.Box(-10.0, 10.0, (8,), np.float32),
            "instruction": spaces.Text(max_length=MAX_LENGTH, min_length=1, charset=CHARSET),
            "speech": spaces.Box(-1.0, 1.0, (SPEECH_SAMPLES,), np.float32),
        }
        if depth:
            obs["depth"] = spaces.Dict({c: spaces.Box(0, MAX_DEPTH, (h, w), np.float32) for c in cameras})
        if segmentation:
            obs["segmentation"] = spaces.Dict({c: spaces.Box(-1, 1 << 20, (h, w), np.int32) for c in cameras})
        self.observation_space = spaces.Dict(obs)
        self.control = control
        if control == "waypoint":
            low, high = np.r_[WORKSPACE_LOW, -1.0], np.r_[WORKSPACE_HIGH, 1.0]
            self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), (4,), np.float32)
            self.action_names = ["x", "y", "z", "gripper"]
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

    @property
    def max_episode_steps(self) -> int:
        return max(
            TASKS[t].max_episode_steps for t in ((self.task_name,) if self.task_name else self.task_pool)
        )

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        name = options.get("task") or self.task_name
        if name is None:
            name = self.task_pool[self.np_random.integers(len(self.task_pool))]
        if name not in TASKS:
            raise ValueError(f"unknown tabletop task {name!r} in options; expected one of {sorted(TASKS)}")
        self.task = TASKS[name]()
        self.episode = self.task.sample(self.np_random)
        rng = self.np_random
        hand = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.2, -0.12), rng.uniform(0.15, 0.22)])
        self.scene.reset(
            self.episode.layout, self.episode.colours, hand, self.episode.drawer_qpos, self.episode.yaws
        )
        self.instruction = self.episode.instruction
        self.voice = VOICES[rng.integers(len(VOICES))]
        self.speed = int(SPEEDS[rng.integers(len(SPEEDS))])
        self._speech = pad_or_cut(synthesize(self.instruction, self.voice, self.speed))
        self._steps = 0
        return self._observation(), self._info(False)

    def step(self, action):
        action = check_action(action, self.action_space)
        if self.control == "waypoint":
            err = action[:3] - self.scene.grasp_pos()
            delta = np.clip(err, -self.scene.max_delta, self.scene.max_delta)
        else:
            delta = action[:3] * self.scene.max_delta
        self.scene.step(delta, close=bool(action[3] > 0))
        self._steps += 1
        success = self.task.success(self.scene, self.episode.target)
        return self._observation(), float(success), success, False, self._info(success)

    def waypoint_toward(self, velocity: np.ndarray) -> np.ndarray:
        """The waypoint whose execution moves as the velocity action ``velocity`` would (for DART noise)."""
        v = np.asarray(velocity, dtype=np.float64)
        xyz = np.clip(self.scene.grasp_pos() + v[:3] * self.scene.max_delta, WORKSPACE_LOW, WORKSPACE_HIGH)
        return np.r_[xyz, v[3]].astype(np.float32)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.cameras.rgb(self.scene.data, "scene", self.image_size)
        return None

    def close(self):
        self.cameras.close()

    # ------------------------------------------------------------------ helpers
    def _observation(self) -> dict:
        d = self.scene.data
        obs = {
            "images": {c: self.cameras.rgb(d, c, self.image_size) for c in self.camera_names},
            "state": self.scene.state(),
            "instruction": self.instruction,
            "speech": self._speech.copy(),
        }
        if self.want_depth:
            obs["depth"] = {
                c: np.minimum(self.cameras.depth(d, c, self.image_size), MAX_DEPTH) for c in self.camera_names
            }
        if self.want_segmentation:
            obs["segmentation"] = {
                c: self.cameras.segmentation(d, c, self.image_size) for c in self.camera_names
            }
        return obs

    def _info(self, success: bool) -> dict:
        return {
            "is_success": bool(success),
            "stage": self.task.stage(self.scene, self.episode) if self.episode else "",
            "task": self.task.name,
            "instruction": self.instruction,
            "voice": self.voice if self.episode else "",
            "speed": self.speed if self.episode else 0,
        }

    def annotations(self, camera: str = "scene", occlusion: bool = False) -> dict:
        """Ground truth for ``camera``: objects (names, colours, boxes, points, 3D pose), camera pose, task.

        ``occlusion=True`` also renders the segmentation image and adds each object's ``visible_pixels``
        (``visible`` then also requires at least one pixel); it costs one more render.
        """
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; expected one of {CAMERAS}")
        if self.episode is None:
            raise RuntimeError("call reset() before annotations()")
        seg = self.cameras.segmentation(self.scene.data, camera, self.image_size) if occlusion else None
        return _annotations(
            self.scene, camera, self.image_size, self.task.name, self.instruction, self.episode.target, seg
        )
